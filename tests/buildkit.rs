//! BuildKit builds, push options and the cache purge, end to end: real `git push` over a real
//! sshd, the machine's Docker Engine and a real registry.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use codebuilder_tests::cluster::error_line;
use codebuilder_tests::*;

fn nonce() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A two-stage app: `deps` "downloads" what deps.lock names into a cache mount of its own,
/// the final stage copies the result and builds src/main.
fn multi_stage_app() -> Vec<(&'static str, Vec<u8>)> {
    let id = nonce();
    let dockerfile = format!(
        "FROM scratch AS deps
COPY busybox /bin/busybox
COPY deps.lock /deps.lock
RUN --mount=type=cache,id={id},target=/cache [\"/bin/busybox\", \"sh\", \"-c\", \"echo downloading; if [ -f /cache/seen ]; then echo cache mount kept; fi; cp /deps.lock /cache/seen; cp /deps.lock /deps.done\"]
FROM scratch
COPY --from=deps /bin/busybox /bin/busybox
COPY --from=deps /deps.done /deps.done
COPY src /src
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo building $(cat /src/main); cat /src/main > /built\"]
"
    );
    vec![
        ("Dockerfile", dockerfile.into_bytes()),
        ("deps.lock", format!("left-pad 1.3.0 {id}\n").into_bytes()),
        ("src/main", b"v1\n".to_vec()),
        ("busybox", fs::read("/bin/busybox").unwrap()),
    ]
}

/// The lines git showed from the server, without git's padding.
fn remote_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote: "))
        .map(str::trim_end)
        .collect()
}

/// The `error:` lines the hook printed: a refusal is exactly one.
fn error_lines(stderr: &str) -> Vec<&str> {
    remote_lines(stderr)
        .into_iter()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// The `#N` BuildKit gave to the step whose header contains `step`.
fn step_number<'a>(lines: &[&'a str], step: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.trim_start().starts_with('#') && l.contains(step))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {step:?} in:\n{}", lines.join("\n")))
}

/// Whether a RUN step printed `output` (its own line, not the step's header that names it).
fn printed(lines: &[&str], output: &str) -> bool {
    lines.iter().any(|l| l.ends_with(&format!(" {output}")))
}

/// Whether BuildKit's step digests (`#3 sha256:...`) were shown.
fn digests(lines: &[&str]) -> bool {
    lines.iter().any(|l| {
        let l = l.trim_start();
        l.starts_with('#')
            && l.split_whitespace()
                .nth(1)
                .is_some_and(|w| w.starts_with("sha256:"))
    })
}

fn has(lines: &[&str], wanted: &str) -> bool {
    lines.iter().any(|l| l.trim_start() == wanted)
}

fn push(dev: &Client, dir: &std::path::Path, app: &str, options: &[&str]) -> (bool, String) {
    let mut args = vec!["push"];
    for option in options {
        args.extend(["-o", option]);
    }
    let url = dev.url(app);
    args.extend([url.as_str(), "main"]);
    let out = dev.git(dir, &args);
    (out.status.success(), text(&out.stderr))
}

#[test]
fn buildkit_multi_stage_cache_mounts_cached_steps_and_push_options() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &multi_stage_app());

    let (ok, stderr) = push(&dev, work.path(), "bkapp", &[]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    let deps = step_number(&lines, "[deps 3/3] RUN --mount=type=cache");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("       {deps} ")) && l.ends_with(" downloading")),
        "{stderr}"
    );
    assert!(!printed(&lines, "cache mount kept"), "{stderr}");
    // BuildKit's own steps and the digests are folded.
    assert!(!stderr.contains("[internal]"), "{stderr}");
    assert!(!digests(&lines), "{stderr}");

    // A one-line source change: the dependency step comes from the cache.
    fs::write(work.path().join("src/main"), "v2\n").unwrap();
    let second = commit_all(work.path(), "v2");
    let (ok, stderr) = push(&dev, work.path(), "bkapp", &[]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    let deps = step_number(&lines, "[deps 3/3] RUN --mount=type=cache");
    assert!(has(&lines, &format!("{deps} CACHED")), "{stderr}");
    assert!(!printed(&lines, "downloading"), "{stderr}");
    assert!(printed(&lines, "building v2"), "{stderr}");

    // Both stages made the image.
    let image = format!("{}/bkapp:git-{}", registry.address(), short(&second));
    let out = run_in_image(&image, &["/bin/busybox", "cat", "/deps.done", "/built"]);
    assert!(
        text(&out.stdout).ends_with("v2\n") && text(&out.stdout).starts_with("left-pad 1.3.0"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // A changed lockfile runs the dependency step again. Whether its cache mount still holds
    // what the first build left is the engine's call, not codebuilder's: BuildKit treats cache
    // mounts as performance-only and at times starts one empty (moby/buildkit#7088; seen here
    // about once in three runs), so that is not asserted.
    let lock = fs::read_to_string(work.path().join("deps.lock")).unwrap();
    fs::write(
        work.path().join("deps.lock"),
        format!("{lock}is-even 1.0.0\n"),
    )
    .unwrap();
    commit_all(work.path(), "new dependency");
    let (ok, stderr) = push(&dev, work.path(), "bkapp", &[]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    assert!(printed(&lines, "downloading"), "{stderr}");

    // -o no-cache runs every step again: with nothing changed, both RUN steps would otherwise
    // be CACHED. (BuildKit may still show a COPY as CACHED when it merges it with an identical
    // step of the same build, as it does with the two `COPY busybox`.)
    commit_all(work.path(), "again");
    let (ok, stderr) = push(&dev, work.path(), "bkapp", &["no-cache"]);
    assert!(ok, "{stderr}");
    let lines = remote_lines(&stderr);
    assert!(printed(&lines, "downloading"), "{stderr}");
    assert!(printed(&lines, "building v2"), "{stderr}");

    // -o verbose shows what is otherwise folded.
    commit_all(work.path(), "verbose");
    let (ok, stderr) = push(&dev, work.path(), "bkapp", &["verbose"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("[internal] load remote build context"),
        "{stderr}"
    );
    assert!(digests(&remote_lines(&stderr)), "{stderr}");

    // A repository made before push options were advertised gets them at its next push.
    let repo = server.repo("bkapp");
    let unset = Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["config", "--unset", "receive.advertisePushOptions"])
        .status()
        .unwrap();
    assert!(unset.success());
    let head = commit_all(work.path(), "after an upgrade");
    let (ok, stderr) = push(&dev, work.path(), "bkapp", &["verbose"]);
    assert!(ok, "{stderr}");
    assert_eq!(server.server_ref("bkapp", "refs/heads/main"), Some(head));
}

#[test]
fn unknown_push_options_are_refused_before_anything_runs() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo ok"));
    let (ok, stderr) = push(&dev, work.path(), "optapp", &["verbose", "nocache"]);
    assert!(!ok, "{stderr}");
    assert!(
        remote_lines(&stderr).contains(&"error: unknown push option \"nocache\": the known ones are no-cache, skip-deploy, verbose (git push -o no-cache)"),
        "{stderr}"
    );
    assert!(!stderr.contains("-----> "), "{stderr}");
    assert_eq!(server.server_ref("optapp", "refs/heads/main"), None);
    assert!(builds(&server, "optapp").is_empty());

    // Once deployed, a refused push leaves the ref where it was.
    let (ok, stderr) = push(&dev, work.path(), "optapp", &[]);
    assert!(ok, "{stderr}");
    let deployed = head(work.path());
    commit_all(work.path(), "next");
    let (ok, stderr) = push(&dev, work.path(), "optapp", &["skip-deploy", "Verbose"]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: unknown push option \"Verbose\": the known ones are no-cache, skip-deploy, verbose (git push -o no-cache)",
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("optapp", "refs/heads/main"),
        Some(deployed)
    );
    assert_eq!(builds(&server, "optapp").len(), 1);
}

#[test]
fn skip_deploy_builds_and_pushes_without_deploying() {
    require_docker();
    let registry = Registry::start();
    let scratch = shared_tempdir();
    let kubeconfig = unreachable_kubeconfig(scratch.path());
    let server = server_for(&registry, "helm", &[("KUBECONFIG", &kubeconfig)]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo ok"));
    let sha = head(work.path());
    let (ok, stderr) = push(&dev, work.path(), "skipapp", &["skip-deploy"]);
    assert!(ok, "{stderr}");
    let done = format!(
        "-----> Done: skipapp {} is in the registry as {}/skipapp:git-{} (deploy skipped: git push -o skip-deploy)",
        short(&sha),
        registry.address(),
        short(&sha)
    );
    assert!(remote_lines(&stderr).contains(&done.as_str()), "{stderr}");
    assert!(!stderr.contains("Deploying"), "{stderr}");
    assert_eq!(registry.tags("skipapp"), [format!("git-{}", short(&sha))]);
    assert_eq!(server.server_ref("skipapp", "refs/heads/main"), Some(sha));
}

#[test]
fn a_syntax_line_whose_frontend_cannot_be_pulled_is_one_clear_error() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    // The frontend is asked of the loopback registry, which does not have it: no traffic
    // leaves the machine, and the failure is the one a pull from anywhere else would give.
    let frontend = format!("{}/docker/dockerfile:1", registry.address());
    let mut files = app_files("echo ok");
    files[0].1 = [
        format!("# syntax={frontend}\n").into_bytes(),
        files[0].1.clone(),
    ]
    .concat();
    let work = repo_with("main", &files);
    let (ok, stderr) = push(&dev, work.path(), "syntaxapp", &[]);
    assert!(!ok, "{stderr}");
    let expected = format!("error: the Dockerfile's `# syntax=` line needs the frontend image {frontend}, which the builder cannot pull: remove the line (the built-in frontend runs RUN --mount and multi-stage builds), or make the image reachable");
    assert_eq!(error_lines(&stderr), [expected.as_str()], "{stderr}");
    assert_eq!(server.server_ref("syntaxapp", "refs/heads/main"), None);
}

/// A docker CLI of 28.x without the buildx plugin, as this machine kind's first `docker` on
/// PATH is: a script that answers `--version` as that CLI does, refuses `buildx` as it does,
/// and hands the rest to Debian's CLI, so that the test runs also where the real one has the
/// plugin or is not installed.
fn cli_without_buildx(dir: &std::path::Path) -> String {
    let path = dir.join("docker");
    fs::write(
        &path,
        format!("#!/bin/sh\ncase \"$1\" in\n  --version) echo 'Docker version 28.2.2, build e6534b4' ;;\n  buildx) echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1 ;;\n  *) exec {DEBIAN_DOCKER} \"$@\" ;;\nesac\n"),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn a_docker_cli_that_needs_buildx_says_so() {
    require_docker();
    let dir = shared_tempdir();
    let docker = cli_without_buildx(dir.path());
    let version = "28.2.2";
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[("CODEBUILDER_DOCKER", &docker)]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo ok"));
    let (ok, stderr) = push(&dev, work.path(), "buildxapp", &[]);
    assert!(!ok, "{stderr}");
    let expected = format!("error: the docker CLI {docker} ({version}) builds with BuildKit only through the buildx plugin, which is missing: install it (Debian: docker-buildx; Docker's packages: docker-buildx-plugin), or set CODEBUILDER_DOCKER to a docker CLI with BuildKit built in (20.10, Debian bookworm's docker.io)");
    assert_eq!(error_lines(&stderr), [expected.as_str()], "{stderr}");
    assert!(!stderr.contains("-----> Building"), "{stderr}");
}

#[test]
fn builds_cache_purge_empties_the_apps_cache() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let out = dev.ssh(&["builds:cache:purge", "purgeapp"], b"");
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "error: app purgeapp does not exist or key dev has no access to it: ask its owner or an admin to run 'access:add purgeapp dev'\n"
    );
    let work = repo_with("main", &app_files("echo ok"));
    let (ok, stderr) = push(&dev, work.path(), "purgeapp", &[]);
    assert!(ok, "{stderr}");

    // The cache a buildpack build of the app keeps: an engine volume named after the app and
    // the home.
    let volume = server.cache_volume("purgeapp");
    let volume_exists = || {
        Command::new("docker")
            .args(["volume", "inspect", &volume])
            .output()
            .unwrap()
            .status
            .success()
    };
    let create = || {
        let out = Command::new("docker")
            .args(["volume", "create", &volume])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    create();
    let out = dev.ssh(&["builds:cache:purge", "purgeapp"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "-----> Emptied the build cache of purgeapp\n"
    );
    assert!(!volume_exists());
    let out = dev.ssh(&["builds:cache:purge", "purgeapp"], b"");
    assert_eq!(
        text(&out.stdout),
        "-----> The build cache of purgeapp is already empty\n"
    );

    // The same from the command line, as through kubectl exec.
    create();
    let out = server.build_cli(&["cache", "purge", "purgeapp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!volume_exists());
    let out = dev.ssh(&["builds:cache:purge", "../x"], b"");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
}
