//! Test harness: real sshd, real git, real docker, registry and helm, each on loopback.
//!
//! Tests need root (sshd switches to the `git` user) and the machine set up by
//! `scripts/deps.sh` and `scripts/services.sh`; `scripts/test.sh` runs both first.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod cluster;
pub mod image;
pub mod manifest;
pub mod standins;

pub const BINARIES: &[&str] = &[
    "codebuilder-keys",
    "codebuilder-receive",
    "codebuilder-build",
    "codebuilder-ops",
    "codebuilder-sshd",
];

/// A codebuilder that builds on this machine's engine and pushes to `registry`, deploying as
/// `deploy` says (`none`, `helm`), with `extra` settings after these. Builds use the host's
/// network: the engine here has no bridge.
pub fn server_for(registry: &Registry, deploy: &str, extra: &[(&str, &str)]) -> Server {
    let address = registry.address();
    let mut env = vec![
        ("CODEBUILDER_REGISTRY", address.as_str()),
        ("CODEBUILDER_DEPLOY", deploy),
        ("CODEBUILDER_BUILD_NETWORK", "host"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

/// The one line on stderr of a command that failed: a session's refusal.
pub fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "not refused: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_owned()
}

/// Standard output of a command that succeeded.
pub fn said(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The built binaries, linked (or copied) into a root-owned directory: sshd refuses an
/// AuthorizedKeysCommand anywhere else (and /tmp is world-writable). One directory per test
/// process, `bin-PID`; those of processes that have ended are removed first, so that runs
/// do not pile up copies of the binaries.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the end-to-end tests run sshd and need root: run scripts/test.sh as root"
        );
        let built = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let parent = Path::new("/run/codebuilder-tests");
        fs::create_dir_all(parent).unwrap();
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).unwrap();
        for entry in fs::read_dir(parent).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let alive = name
                .strip_prefix("bin-")
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = parent.join(format!("bin-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        for name in BINARIES {
            let source = built.join(name);
            assert!(
                source.is_file(),
                "{} is missing: run `cargo build --workspace` first",
                source.display()
            );
            let target = dir.join(name);
            let _ = fs::remove_file(&target);
            // A link costs nothing; another filesystem gets a copy.
            if fs::hard_link(&source, &target).is_err() {
                fs::copy(&source, &target).unwrap();
            }
        }
        dir
    })
}

/// Where test servers (sshd, registries, apps on the host network) listen: below the
/// kernel's ephemeral range (32768-60999 by default), from which every outgoing connection
/// (git, docker, the kubelet) takes its source port, and below the test cluster's port blocks
/// (26000-31999).
const TEST_PORTS: std::ops::Range<u16> = 10000..26000;

/// A free port on 127.0.0.1 for a server a test starts. Never one this process handed out
/// before, and outside the ephemeral range: between this call and the server's bind, neither
/// another test's server nor an outgoing connection takes it (a port the kernel picked, then
/// freed, could be either, and the test would talk to the wrong server).
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    // Processes side by side (a test binary, a benchmark) start at different places.
    let start = u64::from(std::process::id()) * 499 % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port left in {TEST_PORTS:?}");
        let port = TEST_PORTS.start + ((start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on port {port}")
}

/// A temporary directory the `git` user can read (sshd runs everything as git).
pub fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("codebuilder-test-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Debian bookworm's docker CLI (docker.io 20.10), the one the image ships: BuildKit is
/// built in. A newer CLI earlier on the PATH would need the buildx plugin.
pub const DEBIAN_DOCKER: &str = "/usr/bin/docker";

/// A private codebuilder: its own home and sshd on a free loopback port.
pub struct Server {
    pub home: tempfile::TempDir,
    pub port: u16,
    pub env: Vec<(String, String)>,
    sshd: Option<Child>,
}

impl Server {
    /// The engine volume that keeps `app`'s buildpack cache for this server: named after the
    /// app and a hash of the home (`codebuilder-cache-APP-HASH`).
    pub fn cache_volume(&self, app: &str) -> String {
        format!("codebuilder-cache-{app}-{}", self.home_hash())
    }

    /// The hash of the home that the engine objects of this server carry in their names.
    fn home_hash(&self) -> String {
        let digest = Command::new("sh")
            .arg("-c")
            .arg("printf %s \"$1\" | sha256sum")
            .arg("sh")
            .arg(self.home.path())
            .output()
            .unwrap();
        text(&digest.stdout)[..12].to_owned()
    }

    /// Removes the buildpack cache volumes of this server's apps: what its builds left in
    /// the engine on purpose, for the next build, which no test will run.
    fn remove_cache_volumes(&self) {
        let Ok(listed) = Command::new(DEBIAN_DOCKER)
            .args([
                "volume",
                "ls",
                "--quiet",
                "--filter",
                "name=codebuilder-cache-",
            ])
            .output()
        else {
            return;
        };
        let suffix = format!("-{}", self.home_hash());
        let mine: Vec<String> = text(&listed.stdout)
            .lines()
            .filter(|v| v.ends_with(&suffix))
            .map(String::from)
            .collect();
        if !mine.is_empty() {
            let _ = Command::new(DEBIAN_DOCKER)
                .args(["volume", "rm", "--force"])
                .args(&mine)
                .output();
        }
    }

    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra `CODEBUILDER_*` settings, as an operator would set them.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_in(shared_tempdir(), env)
    }

    /// Starts with `home` as it is: new, empty, or with files of its own. Builds use the
    /// docker CLI the image ships ([`DEBIAN_DOCKER`]) unless CODEBUILDER_DOCKER is given.
    pub fn start_in(home: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !env.iter().any(|(k, _)| k == "CODEBUILDER_DOCKER") {
            env.push(("CODEBUILDER_DOCKER".into(), DEBIAN_DOCKER.into()));
        }
        let mut server = Self {
            home,
            port: 0,
            env,
            sshd: None,
        };
        server.launch();
        server
    }

    /// (Re)starts sshd on the same home.
    pub fn launch(&mut self) {
        self.stop();
        self.port = free_port();
        let mut command = Command::new(bin_dir().join("codebuilder-sshd"));
        command
            .arg("--home")
            .arg(self.home.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let log = fs::File::create(self.home.path().join("sshd.log")).unwrap();
        command.stdout(log.try_clone().unwrap()).stderr(log);
        let mut child = command.spawn().expect("cannot start codebuilder-sshd");
        if let Err(e) = wait_for_port(self.port, &mut child, "codebuilder-sshd") {
            panic!("{e}\n{}", self.log());
        }
        self.sshd = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.home.path().join("sshd.log")).unwrap_or_default()
    }

    /// codebuilder's log once it has `line`: a session's lines reach it through the relay,
    /// which may write them after the session has ended. Panics with the log if 10 s pass
    /// without it.
    pub fn log_with(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(line) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {line:?} in the log:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `codebuilder-keys` against this home, as an admin through `kubectl exec` would.
    pub fn keys(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(
            Command::new(bin_dir().join("codebuilder-keys"))
                .arg("--home")
                .arg(self.home.path())
                .args(args),
            stdin,
        )
    }

    /// The keys `codebuilder-keys list --json` shows.
    pub fn listed_keys(&self) -> Vec<serde_json::Value> {
        json_array(&self.keys(&["list", "--json"], b""))
    }

    /// Starts `codebuilder-keys add NAME` with `key` already written to its stdin.
    pub fn spawn_add(&self, name: &str, key: &str) -> Child {
        let mut child = Command::new(bin_dir().join("codebuilder-keys"))
            .arg("--home")
            .arg(self.home.path())
            .args(["add", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(key.as_bytes())
            .unwrap();
        child
    }

    /// Runs `codebuilder-build` against this home, as an admin would.
    pub fn build_cli(&self, args: &[&str]) -> Output {
        self.admin_cli("codebuilder-build", args)
    }

    /// Runs `codebuilder-ops` against this home, as an admin through `kubectl exec` would.
    pub fn ops_cli(&self, args: &[&str]) -> Output {
        self.admin_cli("codebuilder-ops", args)
    }

    fn admin_cli(&self, binary: &str, args: &[&str]) -> Output {
        let mut command = Command::new(bin_dir().join(binary));
        command.arg("--home").arg(self.home.path()).args(args);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.output().unwrap()
    }

    /// Adds a new key pair under `name` and returns a client that uses it.
    pub fn add_user(&self, name: &str, admin: bool) -> Client {
        let client = Client::new(self.port);
        let mut args = vec!["add"];
        if admin {
            args.push("--admin");
        }
        args.push(name);
        let out = self.keys(&args, client.public_key().as_bytes());
        assert!(out.status.success(), "add {name}: {}", text(&out.stderr));
        client
    }

    pub fn repo(&self, app: &str) -> PathBuf {
        self.home.path().join("repos").join(format!("{app}.git"))
    }

    /// The object a ref of an app's repository points at on the server, if any.
    pub fn server_ref(&self, app: &str, reference: &str) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(self.repo(app))
            .args(["rev-parse", "--verify", "--quiet", reference])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| text(&out.stdout).trim().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        self.remove_cache_volumes();
    }
}

pub fn run_with_stdin(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs `command` to its end; a program that cannot start fails the test with its name.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Standard output then standard error, for a failure's message.
pub fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A developer: an ssh key pair and the ssh options to reach the test server.
pub struct Client {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self::with_key(port, &["-t", "ed25519"])
    }

    /// A client whose key `ssh-keygen KEYGEN_ARGS` makes (`-t ecdsa -b 384`, ...).
    pub fn with_key(port: u16, keygen_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "test@client"])
            .args(keygen_args)
            .arg("-f")
            .arg(dir.path().join("id"))
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen {keygen_args:?}");
        Self { dir, port }
    }

    pub fn public_key(&self) -> String {
        fs::read_to_string(self.dir.path().join("id.pub")).unwrap()
    }

    pub fn ssh_options(&self) -> Vec<String> {
        let mut options = vec![
            "-i".to_string(),
            self.dir.path().join("id").display().to_string(),
            "-p".to_string(),
            self.port.to_string(),
        ];
        for option in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "IdentitiesOnly=yes",
            "BatchMode=yes",
            "LogLevel=ERROR",
            "IdentityAgent=none",
        ] {
            options.push("-o".into());
            options.push(option.into());
        }
        options
    }

    /// `ssh git@127.0.0.1 ARGS...` with `stdin`.
    pub fn ssh(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = Command::new("ssh");
        command
            .args(self.ssh_options())
            .arg("git@127.0.0.1")
            .args(args);
        run_with_stdin(&mut command, stdin)
    }

    /// Starts `ssh git@127.0.0.1 ARGS...` with no input, its output piped, in its own
    /// process group.
    pub fn spawn_ssh(&self, args: &[&str]) -> Child {
        Command::new("ssh")
            .args(self.ssh_options())
            .arg("git@127.0.0.1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// The build records of `app` this key reads (`ssh git@HOST builds APP --json`), oldest
    /// first: those of a first push that failed too, which only its pusher reads.
    pub fn builds(&self, app: &str) -> Vec<serde_json::Value> {
        json_array(&self.ssh(&["builds", app, "--json"], b""))
    }

    /// The value for GIT_SSH_COMMAND.
    pub fn git_ssh_command(&self) -> String {
        format!("ssh {}", self.ssh_options().join(" "))
    }

    pub fn url(&self, app: &str) -> String {
        format!("ssh://git@127.0.0.1:{}/{app}", self.port)
    }

    /// Runs git in `dir` with this client's ssh key.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        self.git_command(dir, args).output().unwrap()
    }

    /// `git push` of `dir`'s main to `app`, started in its own process group and read until
    /// the build printed `started-MARKER` (a step that echoes `st''arted-MARKER`, so that the
    /// command line itself does not match): the build is running. Returns the push, the rest
    /// of its stderr, and what was read.
    pub fn push_until_started(
        &self,
        dir: &Path,
        app: &str,
        marker: &str,
    ) -> (Child, BufReader<ChildStderr>, String) {
        let mut push = self.git_command(dir, &["push", &self.url(app), "main"]);
        push.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = push.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains(&format!("started-{marker}")) {
            let mut line = Vec::new();
            if stderr.read_until(b'\n', &mut line).unwrap() == 0 {
                panic!("push ended before the build started:\n{seen}");
            }
            seen.push_str(&String::from_utf8_lossy(&line));
        }
        (child, stderr, seen)
    }

    pub fn git_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(dir)
            .args(args)
            .env("GIT_SSH_COMMAND", self.git_ssh_command());
        command
    }
}

/// A local git repository with files, committed on `branch`.
pub fn make_repo(branch: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "--quiet", &format!("--initial-branch={branch}")]);
    git(&["config", "user.email", "dev@example.com"]);
    git(&["config", "user.name", "Dev"]);
    write_files(dir.path(), files);
    git(&["add", "-A"]);
    git(&["commit", "--quiet", "-m", "initial"]);
    dir
}

/// Writes `files` below `dir`; programs (ELF files) are made executable.
pub fn write_files(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, contents) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        if contents.starts_with(b"\x7fELF") {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// Commits everything in `dir` and returns the new HEAD.
pub fn commit_all(dir: &Path, message: &str) -> String {
    for args in [
        vec!["add", "-A"],
        vec!["commit", "--quiet", "--allow-empty", "-m", message],
    ] {
        let out = Command::new("git")
            .current_dir(dir)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    head(dir)
}

pub fn head(dir: &Path) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_owned()
}

/// Runs `command` (a program of the image, then its arguments) once in a container of `image`,
/// without a network, and returns its output; the container is removed.
pub fn run_in_image(image: &str, command: &[&str]) -> Output {
    let (program, args) = command.split_first().expect("a command to run");
    Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            program,
            image,
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Fails the test with a clear message when no Docker Engine answers.
pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Docker Engine answers `docker info`: run scripts/services.sh (scripts/test.sh does)"
    );
}

/// A Docker distribution registry (Debian's docker-registry) on a free loopback port.
pub struct Registry {
    pub port: u16,
    _storage: tempfile::TempDir,
    child: Child,
    /// With authentication: base64 of `USER:PASSWORD`, and a DOCKER_CONFIG folder with it
    /// that the `git` user (the build hook) can read.
    auth: Option<(String, tempfile::TempDir)>,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_inner(false)
    }

    /// A registry that lets only codebuilder's user (htpasswd) read or write.
    pub fn start_authenticated() -> Self {
        Self::start_inner(true)
    }

    fn start_inner(authenticated: bool) -> Self {
        let storage = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = storage.path().join("config.yml");
        let mut yaml = format!("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n", storage.path().display());
        let auth = authenticated.then(|| {
            let password = format!("pw{}{port}", std::process::id());
            let out = Command::new("python3")
                .args(["-W", "ignore", "-c", "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))", &password])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            let htpasswd = storage.path().join("htpasswd");
            fs::write(&htpasswd, format!("codebuilder:{}", text(&out.stdout))).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: codebuilder\n    path: {}\n",
                htpasswd.display()
            ));
            let token = base64(format!("codebuilder:{password}").as_bytes());
            let docker_config = shared_tempdir();
            fs::write(
                docker_config.path().join("config.json"),
                format!("{{\"auths\":{{\"127.0.0.1:{port}\":{{\"auth\":\"{token}\"}}}}}}"),
            )
            .unwrap();
            let git = nix::unistd::User::from_name("git").unwrap().expect("no git user: run scripts/deps.sh");
            for path in [docker_config.path().to_path_buf(), docker_config.path().join("config.json")] {
                nix::unistd::chown(&path, Some(git.uid), Some(git.gid)).unwrap();
            }
            fs::set_permissions(docker_config.path(), fs::Permissions::from_mode(0o700)).unwrap();
            (token, docker_config)
        });
        fs::write(&config, yaml).unwrap();
        let log = fs::File::create(storage.path().join("registry.log")).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start docker-registry: run scripts/deps.sh");
        wait_for_port(port, &mut child, "docker-registry").unwrap();
        Self {
            port,
            _storage: storage,
            child,
            auth,
        }
    }

    /// The DOCKER_CONFIG folder with codebuilder's credentials (CODEBUILDER_REGISTRY_AUTH).
    pub fn docker_config(&self) -> String {
        let (_, dir) = self.auth.as_ref().expect("an authenticated registry");
        dir.path().display().to_string()
    }

    /// The digest of the manifest `repository:tag` names (with the credentials, if any).
    pub fn digest(&self, repository: &str, tag: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let authorization = self
            .auth
            .as_ref()
            .map(|(token, _)| format!("Authorization: Basic {token}\r\n"))
            .unwrap_or_default();
        write!(stream, "HEAD /v2/{repository}/manifests/{tag} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\n{authorization}\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .lines()
            .find_map(|line| line.strip_prefix("Docker-Content-Digest: "))
            .map(|digest| digest.trim().to_owned())
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The tags of `repository`, from the registry's HTTP API.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let body = http_get(self.port, &format!("/v2/{repository}/tags/list")).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        value["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64, padded.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A plain HTTP/1.0 GET on loopback; returns the body of a 200 answer.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_owned())
}

/// A web app that builds from scratch with a static busybox: no image pull needed. Its RUN
/// step carries a nonce, so that docker's build cache never skips it.
pub fn app_files(run_step: &str) -> Vec<(&'static str, Vec<u8>)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nonce = format!(
        "{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"{run_step}; : {nonce}\"]\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/\"]\n"
    );
    vec![
        ("Dockerfile", dockerfile.into_bytes()),
        (
            "busybox",
            fs::read("/bin/busybox").expect("busybox-static is not installed"),
        ),
    ]
}

pub fn repo_with(branch: &str, files: &[(&'static str, Vec<u8>)]) -> tempfile::TempDir {
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    make_repo(branch, &borrowed)
}

/// The JSON array a command that succeeded printed.
pub fn json_array(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The build records of `app`, oldest first (`codebuilder-ops builds APP --json`).
pub fn builds(server: &Server, app: &str) -> Vec<serde_json::Value> {
    json_array(&server.ops_cli(&["builds", app, "--json"]))
}

/// The short sha codebuilder tags images with.
pub fn short(sha: &str) -> &str {
    &sha[..7]
}

/// The root of this repository.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes codebuilder's default chart for `app` into `dir` (`codebuilder-build chart`).
pub fn write_default_chart(app: &str, dir: &Path) {
    let out = Command::new(bin_dir().join("codebuilder-build"))
        .args(["chart", app])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `helm lint` and `helm template` of `chart` with the image codebuilder sets and `values`
/// (extra helm arguments); returns the rendered manifests.
pub fn render_chart(chart: &Path, values: &[&str]) -> String {
    let image = [
        "--set-string",
        "image.repository=127.0.0.1:5000/myapp",
        "--set-string",
        "image.tag=git-abc1234",
    ];
    let out = Command::new("helm")
        .arg("lint")
        .arg(chart)
        .args(values)
        .output()
        .expect("helm is not installed: run scripts/deps.sh");
    assert!(
        out.status.success(),
        "helm lint: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = Command::new("helm")
        .args(["template", "myapp"])
        .arg(chart)
        .args(["--namespace", "myapp"])
        .args(image)
        .args(values)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm template: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Checks `manifests` against the Kubernetes schemas (`kubernetes-validate --strict`).
pub fn assert_valid_manifests(manifests: &str) {
    let out = run_with_stdin(
        Command::new("/opt/codebuilder-venv/bin/kubernetes-validate").args(["--strict", "-"]),
        manifests.as_bytes(),
    );
    assert!(
        out.status.success(),
        "kubernetes-validate: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A kubeconfig for a cluster that refuses connections (nothing listens on port 1).
pub fn unreachable_kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    path.display().to_string()
}
