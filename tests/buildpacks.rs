//! Buildpack builds, end to end: a real `git push` over a real sshd of a repository without a
//! Dockerfile, Heroku buildpacks run for real inside a container of a stack "build" image, the
//! app's image made on a stack "run" image, pushed to a real registry, and run with docker.
//!
//! No image can be pulled and no buildpack fetched from the internet here: the stack images
//! are a debootstrapped Debian (`scripts/base-image.sh`, cached), and the buildpacks are the
//! small ones in tests/fixtures/buildpacks, made into git repositories at test time (served
//! over git:// on loopback where a test needs URLs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use codebuilder_tests::cluster::{error_line, processes_with};
use codebuilder_tests::*;

const BUILDER_IMAGE: &str = "codebuilder-test/stack-build";
const RUN_IMAGE: &str = "codebuilder-test/stack-run";
const WEB: &str = "bin/busybox httpd -f -p \"$PORT\" -h \"$WEB_ROOT\"";

/// Makes the stack images once per run; `base-image.sh` does nothing for an image that exists.
fn stack_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_docker();
        for image in [BUILDER_IMAGE, RUN_IMAGE] {
            let out = Command::new("bash")
                .arg(repo_root().join("scripts/base-image.sh"))
                .arg(image)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "base-image.sh {image}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    });
}

/// Copies of the test buildpacks, each a git repository with a tag `v1`, where the `git`
/// user (sshd runs the build as git) can read them.
struct Buildpacks {
    dir: tempfile::TempDir,
}

impl Buildpacks {
    fn new() -> Self {
        let dir = shared_tempdir();
        let fixtures = repo_root().join("tests/fixtures/buildpacks");
        for name in ["busybox-web", "failing", "nothing", "hostile"] {
            let target = dir.path().join(name);
            copy_tree(&fixtures.join(name), &target);
            git_in(&target, &["init", "--quiet", "--initial-branch=main"]);
            git_in(&target, &["config", "user.email", "bp@example.com"]);
            git_in(&target, &["config", "user.name", "Buildpack"]);
            git_in(&target, &["add", "-A"]);
            git_in(&target, &["commit", "--quiet", "-m", "buildpack"]);
            git_in(&target, &["tag", "v1"]);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            // Whatever mode the checkout gave them, a buildpack's programs are programs.
            let mode = if from.ends_with("bin") { 0o755 } else { 0o644 };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

fn git_in(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// A codebuilder that builds with the test stack and `buildpacks` (CODEBUILDER_BUILDPACKS).
fn buildpack_server(registry: &Registry, buildpacks: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("CODEBUILDER_BUILDER_IMAGE", BUILDER_IMAGE),
        ("CODEBUILDER_RUN_IMAGE", RUN_IMAGE),
        ("CODEBUILDER_BUILDPACKS", buildpacks),
    ];
    env.extend_from_slice(extra);
    server_for(registry, "none", &env)
}

/// A busybox-web app: the marker, the busybox it carries, a Procfile with web and worker.
fn web_app(message: &str, extra: &[(&str, &[u8])]) -> tempfile::TempDir {
    let busybox = fs::read("/bin/busybox").expect("busybox-static is not installed");
    let procfile =
        format!("web: {WEB}\nworker: bin/busybox sh -c 'while true; do sleep 60; done'\n");
    let mut files: Vec<(&str, &[u8])> = vec![
        ("busybox-web.marker", b""),
        ("busybox", &busybox),
        ("Procfile", procfile.as_bytes()),
        ("message", message.as_bytes()),
    ];
    files.extend_from_slice(extra);
    make_repo("main", &files)
}

/// Pushes main; returns whether it was accepted and git's output, without the blanks git
/// pads `remote:` lines with.
fn push(client: &Client, dir: &Path, app: &str) -> (bool, String) {
    let out = client.git(dir, &["push", &client.url(app), "main"]);
    let stderr: String = text(&out.stderr)
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect();
    (out.status.success(), stderr)
}

/// The hash that names what `server`'s builds of an app make in the engine
/// (`codebuilder-build-APP-HASH`, `codebuilder-compiled/APP:HASH`, `codebuilder-cache-APP-HASH`),
/// so that what other runs on the same engine left is never counted.
fn engine_hash(server: &Server, app: &str) -> String {
    let volume = server.cache_volume(app);
    volume[format!("codebuilder-cache-{app}-").len()..].to_owned()
}

/// `server`'s builder containers of `app`, running or not.
fn builder_containers(server: &Server, app: &str) -> Vec<String> {
    let name = format!("codebuilder-build-{app}-{}", engine_hash(server, app));
    let out = Command::new("docker")
        .args(["ps", "--all", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|n| *n == name)
        .map(String::from)
        .collect()
}

fn compiled_images(server: &Server, app: &str) -> String {
    let image = format!("codebuilder-compiled/{app}:{}", engine_hash(server, app));
    let out = Command::new("docker")
        .args(["images", "--quiet", &image])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_owned()
}

fn inspect(image: &str, format: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", format, image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A container of `image` on the host network, removed on drop.
struct Running(String);

impl Running {
    fn start(image: &str, port: u16) -> Self {
        let name = format!("cbtest-{}-{port}", std::process::id());
        let out = Command::new("docker")
            .args([
                "run",
                "--detach",
                "--rm",
                "--network",
                "host",
                "--name",
                &name,
            ])
            .args(["--env", &format!("PORT={port}"), image])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        Self(name)
    }

    fn logs(&self) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.0])
            .output()
            .unwrap();
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// GET / on loopback, retried while the app starts.
fn page(port: u16) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(port, "/") {
            Ok(body) => return Ok(body),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn a_push_without_a_dockerfile_builds_with_buildpacks_and_the_image_serves_on_port() {
    stack_images();
    let bps = Buildpacks::new();
    let registry = Registry::start();
    // The first buildpack does not detect the app; the second does.
    let list = format!("{},{}", bps.path("nothing"), bps.path("busybox-web"));
    let server = buildpack_server(&registry, &list, &[]);
    let dev = server.add_user("dev", false);
    // .slugignore: a name anywhere, a path from the root, as on Heroku.
    let work = web_app(
        "first push",
        &[
            (".slugignore", b"# not for the slug\n*.psd\n/docs/\n"),
            ("art/logo.psd", b"layers"),
            ("docs/guide.txt", b"guide"),
            ("lib/docs/kept.txt", b"kept\n"),
        ],
    );
    // The app's config vars (config:set) reach bin/compile as its ENV_DIR: a branch that does
    // not deploy creates the app first.
    let out = dev.git(work.path(), &["push", &dev.url("bpweb"), "main:feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = dev.ssh(
        &[
            "config:set",
            "bpweb",
            "GREETING=hello-from-the-config",
            "--no-deploy",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sha = head(work.path());

    let (ok, stderr) = push(&dev, work.path(), "bpweb");
    assert!(ok, "push failed:\n{stderr}");
    assert_eq!(
        server.server_ref("bpweb", "refs/heads/main"),
        Some(sha.clone())
    );
    let lines: Vec<&str> = stderr.lines().collect();
    for expected in [
        format!(
            "remote: -----> Building bpweb ({}) with buildpacks",
            short(&sha)
        ),
        "remote: -----> Leaving out what .slugignore lists (2 patterns)".to_owned(),
        "remote: -----> Busybox web app detected".to_owned(),
        "remote: -----> Installing busybox".to_owned(),
        "remote: -----> Discovering process types".to_owned(),
        "remote:        Procfile declares types -> web, worker".to_owned(),
        format!("remote: -----> Making the image on {RUN_IMAGE}"),
        format!(
            "remote: -----> Pushing {}/bpweb:git-{}",
            registry.address(),
            short(&sha)
        ),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "no {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("remote:        cache miss: making dependencies"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote:        GREETING from ENV_DIR: hello-from-the-config\n"),
        "{stderr}"
    );
    // STACK (from the builder image's name) and SOURCE_VERSION, under the buildpack's set -u.
    assert!(
        lines.contains(&format!("remote:        STACK=stack SOURCE_VERSION={sha}").as_str()),
        "{stderr}"
    );
    // The buildpack's own headers are steps, never indented under another step.
    assert!(!stderr.contains("       -----> "), "{stderr}");
    let mut tags = registry.tags("bpweb");
    tags.sort();
    assert_eq!(tags, [format!("git-{}", short(&sha))]);

    // The Procfile's web command is the image's start command, through the launcher.
    let image = format!("{}/bpweb:git-{}", registry.address(), short(&sha));
    assert_eq!(
        inspect(&image, "{{json .Config.Cmd}}"),
        serde_json::json!([WEB])
    );
    assert_eq!(
        inspect(&image, "{{json .Config.Entrypoint}}"),
        serde_json::json!(["/codebuilder/launch"])
    );
    let env = inspect(&image, "{{json .Config.Env}}");
    assert!(
        env.as_array()
            .unwrap()
            .contains(&"BUSYBOX_WEB=ready".into()),
        "bin/release's config var is missing: {env}"
    );

    // What .slugignore lists never reached the buildpacks, nor the image.
    let slug_check =
        "find /app -name '*.psd'; find /app -path /app/docs; cat /app/lib/docs/kept.txt";
    let out = run_in_image(&image, &["/app/bin/busybox", "sh", "-c", slug_check]);
    assert_eq!(text(&out.stdout), "kept\n", "{}", text(&out.stderr));

    // It serves on $PORT, with WEB_ROOT from .profile.d.
    let port = free_port();
    let running = Running::start(&image, port);
    let body = page(port).unwrap_or_else(|e| panic!("{e}\n{}", running.logs()));
    assert_eq!(body, "hello from first push\n");
    drop(running);

    // Nothing of the build is left: no builder container, no committed image.
    assert_eq!(builder_containers(&server, "bpweb"), Vec::<String>::new());
    assert_eq!(compiled_images(&server, "bpweb"), "");

    // The second push finds the cache the first one filled.
    fs::write(work.path().join("message"), "second push").unwrap();
    let second = commit_all(work.path(), "second");
    let (ok, stderr) = push(&dev, work.path(), "bpweb");
    assert!(ok, "second push failed:\n{stderr}");
    assert!(
        stderr.contains("remote:        cache hit: reusing dependencies"),
        "{stderr}"
    );
    assert!(!stderr.contains("cache miss"), "{stderr}");
    assert_eq!(
        server.server_ref("bpweb", "refs/heads/main"),
        Some(second.clone())
    );

    // A rebuild over ssh builds what the push built: without what .slugignore lists.
    let output = said(&dev.ssh(&["rebuild", "bpweb"], b""));
    assert!(
        output
            .lines()
            .any(|l| l == "-----> Leaving out what .slugignore lists (2 patterns)"),
        "{output}"
    );
    let image = format!("{}/bpweb:git-{}", registry.address(), short(&second));
    let out = run_in_image(&image, &["/app/bin/busybox", "sh", "-c", slug_check]);
    assert_eq!(text(&out.stdout), "kept\n", "{}", text(&out.stderr));
    let records = builds(&server, "bpweb");
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|r| r["result"] == "succeeded"),
        "{records:?}"
    );
    assert_eq!(records[2]["pusher"], "rebuild by dev");
    // The cache is a volume of the engine, not a folder of the home.
    assert!(!server.home.path().join("cache").exists());
    let volume = cache_volume(&server, "bpweb");
    remove_volume(&volume);
}

/// `server`'s cache volume of `app`, if the engine has it.
fn cache_volumes(server: &Server, app: &str) -> Vec<String> {
    let name = server.cache_volume(app);
    let out = Command::new("docker")
        .args(["volume", "ls", "--quiet"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|n| *n == name)
        .map(String::from)
        .collect()
}

/// `server`'s cache volume of `app`, which must exist.
fn cache_volume(server: &Server, app: &str) -> String {
    let volumes = cache_volumes(server, app);
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    volumes[0].clone()
}

fn remove_volume(volume: &str) {
    let out = Command::new("docker")
        .args(["volume", "rm", volume])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Every path below `dir` (symlinks not followed), with its metadata.
fn walk(dir: &Path, found: &mut Vec<(std::path::PathBuf, fs::Metadata)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, found);
        }
        found.push((path, meta));
    }
}

/// Whether `nobody` can reach `path` at all (`stat` as uid and gid 65534).
fn nobody_can_stat(path: &Path) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "stat"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_hostile_buildpack_cannot_leave_a_set_id_file_device_or_symlink_on_the_host() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    stack_images();
    let bps = Buildpacks::new();
    let daemon = GitDaemon::start(bps.dir.path());
    let registry = Registry::start();
    let server = buildpack_server(&registry, &bps.path("nothing"), &[]);
    let dev = server.add_user("dev", false);
    let list = format!("{}\n{}\n", daemon.url("hostile"), daemon.url("busybox-web"));
    let work = web_app(
        "hostile",
        &[(".buildpacks", list.as_bytes()), ("hostile.marker", b"")],
    );
    let (ok, stderr) = push(&dev, work.path(), "bphostile");
    assert!(ok, "{stderr}");
    for expected in [
        "remote:        compile runs as uid 32767 gid 32767",
        "remote:        set-id shell: -rwsr-sr-x 32767",
        "remote:        chown to root: refused",
        "remote:        mknod: refused",
        "remote:        symlink to /etc/shadow: made",
    ] {
        assert!(
            stderr.contains(&format!("{expected}\n")),
            "no {expected:?} in:\n{stderr}"
        );
    }

    // Nothing set-id, no device and no symlink out of the home anywhere under the home.
    let mut found = Vec::new();
    walk(server.home.path(), &mut found);
    for (path, meta) in &found {
        assert_eq!(meta.mode() & 0o6000, 0, "set-id file {}", path.display());
        let kind = meta.file_type();
        assert!(
            !kind.is_block_device() && !kind.is_char_device(),
            "device {}",
            path.display()
        );
        if kind.is_symlink() {
            let target = fs::read_link(path).unwrap();
            assert!(
                !target.is_absolute(),
                "{} -> {}",
                path.display(),
                target.display()
            );
        }
    }

    // The cache is the engine's volume: the shell there belongs to the build user, not root,
    // there is no device, and no user of the host can reach any of it.
    let volume = cache_volume(&server, "bphostile");
    let out = Command::new("docker")
        .args(["volume", "inspect", "--format", "{{.Mountpoint}}", &volume])
        .output()
        .unwrap();
    let mountpoint = std::path::PathBuf::from(text(&out.stdout).trim());
    assert!(
        !mountpoint.starts_with(server.home.path()),
        "{}",
        mountpoint.display()
    );
    let mut cached = Vec::new();
    walk(&mountpoint, &mut cached);
    let shell = mountpoint.join("sh");
    assert!(cached.iter().any(|(path, _)| *path == shell), "{cached:?}");
    for (path, meta) in &cached {
        assert!(
            meta.uid() != 0 || meta.mode() & 0o6000 == 0,
            "root's set-id file {}",
            path.display()
        );
        let kind = meta.file_type();
        assert!(
            !kind.is_block_device() && !kind.is_char_device(),
            "device {}",
            path.display()
        );
    }
    assert!(
        !nobody_can_stat(&shell),
        "nobody reaches {}",
        shell.display()
    );
    remove_volume(&volume);
}

#[test]
fn detect_and_compile_failures_reject_the_push_and_leave_refs_alone() {
    stack_images();
    let bps = Buildpacks::new();
    let registry = Registry::start();

    // No buildpack detects the app.
    let server = buildpack_server(&registry, &bps.path("nothing"), &[]);
    let dev = server.add_user("dev", false);
    let work = web_app("never built", &[]);
    let (ok, stderr) = push(&dev, work.path(), "bpnone");
    assert!(!ok, "{stderr}");
    let last = stderr
        .lines()
        .find(|l| l.starts_with("remote: error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert_eq!(
        last,
        format!(
            "remote: error: no buildpack detected this app (tried {}): add a Dockerfile, or a .buildpacks file with the git URL of the buildpack to use, commit, and push again",
            bps.path("nothing")
        )
    );
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");
    assert_eq!(server.server_ref("bpnone", "refs/heads/main"), None);
    assert_eq!(builder_containers(&server, "bpnone"), Vec::<String>::new());

    // A failing compile, after a good build: the ref stays on the good one.
    let list = format!("{},{}", bps.path("failing"), bps.path("busybox-web"));
    let server = buildpack_server(&registry, &list, &[]);
    let dev = server.add_user("dev", false);
    let work = web_app("good", &[]);
    let (ok, stderr) = push(&dev, work.path(), "bpfail");
    assert!(ok, "{stderr}");
    let good = head(work.path());
    fs::write(work.path().join("failing.marker"), "").unwrap();
    let failing = commit_all(work.path(), "now the failing buildpack applies");
    let (ok, stderr) = push(&dev, work.path(), "bpfail");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("remote: -----> Failing on purpose\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote:        about to fail\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: bin/compile of buildpack {} failed: fix the app",
            bps.path("failing")
        )),
        "{stderr}"
    );
    assert_eq!(server.server_ref("bpfail", "refs/heads/main"), Some(good));
    assert!(!registry
        .tags("bpfail")
        .contains(&format!("git-{}", short(&failing))));
    assert_eq!(builds(&server, "bpfail")[1]["result"], "failed");
    assert_eq!(builder_containers(&server, "bpfail"), Vec::<String>::new());

    // An app cannot name a local path: it would copy host files into its build.
    fs::remove_file(work.path().join("failing.marker")).unwrap();
    fs::write(
        work.path().join(".buildpacks"),
        format!("{}\n", bps.path("busybox-web")),
    )
    .unwrap();
    commit_all(work.path(), "local buildpack");
    let (ok, stderr) = push(&dev, work.path(), "bpfail");
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "remote: error: .buildpacks line 1: \"{}\" is a local path, which only the operator's CODEBUILDER_BUILDPACKS may name: fix .buildpacks, commit, and push again",
            bps.path("busybox-web")
        ),
        "{stderr}"
    );

    // Nor a host that git decodes into an ssh option.
    fs::write(
        work.path().join(".buildpacks"),
        "ssh://%2DoProxyCommand=id/bp\n",
    )
    .unwrap();
    commit_all(work.path(), "percent-encoded host");
    let (ok, stderr) = push(&dev, work.path(), "bpfail");
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: .buildpacks line 1: \"ssh://%2DoProxyCommand=id/bp\" has a percent-encoded host or user, or one that starts with '-': fix .buildpacks, commit, and push again",
        "{stderr}"
    );
}

/// `git daemon` serving the test buildpacks on a loopback port: buildpacks by URL.
struct GitDaemon {
    port: u16,
    child: Child,
}

impl GitDaemon {
    fn start(base: &Path) -> Self {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `git daemon` runs git-daemon as its child: the group is ended, not the wrapper.
            .process_group(0)
            .spawn()
            .expect("cannot start git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[test]
fn a_buildpacks_file_overrides_the_default_and_pins_refs_of_cloned_buildpacks() {
    stack_images();
    let bps = Buildpacks::new();
    // After v1, the busybox-web buildpack breaks: only a checkout of v1 builds.
    let busybox = bps.dir.path().join("busybox-web");
    fs::write(
        busybox.join("bin/compile"),
        "#!/bin/bash\necho 'main is broken'\nexit 9\n",
    )
    .unwrap();
    git_in(&busybox, &["commit", "--quiet", "-am", "broken after v1"]);
    let daemon = GitDaemon::start(bps.dir.path());
    let registry = Registry::start();
    // The operator's default would fail; the app's .buildpacks replaces it.
    let server = buildpack_server(&registry, &bps.path("failing"), &[]);
    let dev = server.add_user("dev", false);
    let list = format!(
        "# tried in order, each one that detects the app compiles it\n{}\n{}#v1\n",
        daemon.url("nothing"),
        daemon.url("busybox-web")
    );
    let work = web_app(
        "cloned",
        &[(".buildpacks", list.as_bytes()), ("failing.marker", b"")],
    );
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(ok, "{stderr}");
    for expected in [
        format!(
            "remote: -----> Fetching buildpack {}",
            daemon.url("nothing")
        ),
        format!(
            "remote: -----> Fetching buildpack {}#v1",
            daemon.url("busybox-web")
        ),
        format!(
            "remote: -----> {} does not apply to this app (its bin/detect did not pass): skipped",
            daemon.url("nothing")
        ),
        "remote: -----> Busybox web app detected".to_owned(),
    ] {
        assert!(
            stderr.contains(&format!("{expected}\n")),
            "no {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("main is broken"), "{stderr}");
    assert!(!stderr.contains("Failing on purpose"), "{stderr}");
    // Each URL and ref is cloned once into the home, and fetched again on the next build.
    let cached = fs::read_dir(server.home.path().join("buildpacks"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join(".git").is_dir())
        .count();
    assert_eq!(cached, 2);
    commit_all(work.path(), "again");
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cache hit"), "{stderr}");

    // Without the #v1 pin, the broken head of the buildpack is what runs.
    let list = format!("{}\n", daemon.url("busybox-web"));
    fs::write(work.path().join(".buildpacks"), list).unwrap();
    let sha = commit_all(work.path(), "unpinned");
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("remote:        main is broken\n"),
        "{stderr}"
    );
    assert_ne!(server.server_ref("bpclone", "refs/heads/main"), Some(sha));

    // The app's BUILDPACK_URL config var wins over its .buildpacks file.
    let pinned = format!("{}#v1", daemon.url("busybox-web"));
    let config = |args: &[&str]| {
        let out = dev.ssh(args, b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    config(&[
        "config:set",
        "bpclone",
        &format!("BUILDPACK_URL={pinned}"),
        "--no-deploy",
    ]);
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("remote: -----> Fetching buildpack {pinned}\n")),
        "{stderr}"
    );
    assert!(!stderr.contains("main is broken"), "{stderr}");
    config(&["config:set", "bpclone", "BUILDPACK_URL=/etc", "--no-deploy"]);
    commit_all(work.path(), "local path in the config");
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: the config var BUILDPACK_URL=\"/etc\" is a local path, which only the operator's CODEBUILDER_BUILDPACKS may name: set it to the git URL of a buildpack",
        "{stderr}"
    );
    config(&["config:unset", "bpclone", "BUILDPACK_URL", "--no-deploy"]);

    // A URL that cannot be fetched is named, with the fix.
    fs::write(
        work.path().join(".buildpacks"),
        format!("{}\n", daemon.url("missing")),
    )
    .unwrap();
    commit_all(work.path(), "missing buildpack");
    let (ok, stderr) = push(&dev, work.path(), "bpclone");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: fetching buildpack {} failed (exit status: 128): check the buildpack's URL",
            daemon.url("missing")
        )),
        "{stderr}"
    );
}

#[test]
fn a_buildpack_build_over_its_time_limit_is_stopped_and_its_container_removed() {
    stack_images();
    let bps = Buildpacks::new();
    let registry = Registry::start();
    let server = buildpack_server(
        &registry,
        &bps.path("busybox-web"),
        &[("CODEBUILDER_BUILD_TIMEOUT", "8s")],
    );
    let dev = server.add_user("dev", false);
    let work = web_app("slow", &[("compile-sleep", b"overtime")]);
    let started = Instant::now();
    let (ok, stderr) = push(&dev, work.path(), "bpslow");
    assert!(!ok, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the limit was not enforced"
    );
    assert!(
        stderr.contains("remote:        started-overtime\n"),
        "{stderr}"
    );
    assert_eq!(
        error_line(&stderr),
        "remote: error: the buildpack build took longer than 8s and was stopped: raise CODEBUILDER_BUILD_TIMEOUT if it needs longer",
        "{stderr}"
    );
    // The hook removed the container before it exited.
    assert_eq!(builder_containers(&server, "bpslow"), Vec::<String>::new());
    assert_eq!(server.server_ref("bpslow", "refs/heads/main"), None);
    assert_eq!(dev.builds("bpslow")[0]["result"], "failed");
}

#[test]
fn a_client_that_disconnects_mid_compile_leaves_no_builder_container() {
    stack_images();
    let bps = Buildpacks::new();
    let registry = Registry::start();
    let server = buildpack_server(&registry, &bps.path("busybox-web"), &[]);
    let dev = server.add_user("dev", false);
    let marker = format!("gone{}", std::process::id());
    let work = web_app("disconnect", &[("compile-sleep", marker.as_bytes())]);
    let (mut child, _stderr, seen) = dev.push_until_started(work.path(), "bpgone", &marker);
    assert_eq!(builder_containers(&server, "bpgone").len(), 1, "{seen}");
    // The developer's machine goes away: git and ssh die at once.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let killed_at = Instant::now();
    while !builder_containers(&server, "bpgone").is_empty()
        && killed_at.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        builder_containers(&server, "bpgone"),
        Vec::<String>::new(),
        "the builder container outlived the push by 5 s"
    );
    // The build's record says cancelled once the session is done (it ends the app its first
    // push did not store, and keeps the record for its pusher).
    let session = format!("--home {}", server.home.path().display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with(&["codebuilder-receive", &session]).is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dev.builds("bpgone")[0]["result"], "cancelled");
    assert_eq!(server.server_ref("bpgone", "refs/heads/main"), None);
}

#[test]
fn the_default_chart_runs_every_process_type() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart");
    write_default_chart("myapp", &chart);
    let values = dir.path().join("values.json");
    fs::write(
        &values,
        serde_json::json!({"processes": {
            "web": {"command": WEB},
            "worker": {"command": "bin/worker --queue \"a, b\""},
        }})
        .to_string(),
    )
    .unwrap();
    let values_arg = values.to_str().unwrap();
    let manifests = render_chart(&chart, &["--values", values_arg, "--set", "replicas=2"]);
    let documents: Vec<serde_json::Value> = manifests
        .split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(yaml_to_json)
        .collect();
    let deployments: Vec<&serde_json::Value> = documents
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .collect();
    assert_eq!(deployments.len(), 2, "{manifests}");
    let web = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == "myapp")
        .unwrap();
    let worker = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == "myapp-worker")
        .unwrap_or_else(|| panic!("no myapp-worker Deployment:\n{manifests}"));
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(worker["spec"]["replicas"], 0);
    let container = &worker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "worker");
    assert_eq!(container["image"], "127.0.0.1:5000/myapp:git-abc1234");
    assert_eq!(
        container["args"],
        serde_json::json!(["bin/worker --queue \"a, b\""])
    );
    // The web Deployment's selector and the Service's do not reach the worker's pods.
    let worker_labels = &worker["spec"]["template"]["metadata"]["labels"];
    let service = documents.iter().find(|d| d["kind"] == "Service").unwrap();
    for selector in [
        &web["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"],
    ] {
        let matches = selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &worker_labels[k] == v);
        assert!(
            !matches,
            "{selector} selects the worker's pods {worker_labels}"
        );
    }
    assert_valid_manifests(&manifests);
}

/// One rendered manifest as JSON, through python3's yaml (PyYAML ships with Debian's python3
/// packages that kubernetes-validate needs).
fn yaml_to_json(document: &str) -> serde_json::Value {
    let out = run_with_stdin(
        Command::new("/opt/codebuilder-venv/bin/python3").args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ]),
        document.as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_buildpack_build_over_the_context_limit_is_stopped_with_the_setting_named() {
    stack_images();
    let bps = Buildpacks::new();
    let registry = Registry::start();
    // The app carries a 2 MB busybox: over a 1M build context.
    let server = buildpack_server(
        &registry,
        &bps.path("busybox-web"),
        &[("CODEBUILDER_MAX_CONTEXT_SIZE", "1M")],
    );
    let dev = server.add_user("dev", false);
    let work = web_app("too big", &[]);
    let (ok, stderr) = push(&dev, work.path(), "bpbig");
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("remote: error: the buildpack build was stopped: the pushed tree is over the 1M limit of a build context (CODEBUILDER_MAX_CONTEXT_SIZE): remove large files from the repository, or raise CODEBUILDER_MAX_CONTEXT_SIZE\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("Installing busybox"), "{stderr}");
    assert_eq!(server.server_ref("bpbig", "refs/heads/main"), None);
    assert_eq!(builder_containers(&server, "bpbig"), Vec::<String>::new());
    // The first push stored nothing: the app is gone, with its build cache.
    assert_eq!(cache_volumes(&server, "bpbig"), Vec::<String>::new());
}
