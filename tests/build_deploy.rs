//! Build and deploy, end to end: a real `git push` over a real sshd, a real `docker build`
//! on the machine's Docker Engine, a real registry, and the real helm binary.
//! Deploys against a real cluster are in tests/cluster.rs; here, helm meets a cluster address
//! that refuses connections.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codebuilder_tests::cluster::error_line;
use codebuilder_tests::*;

/// A codebuilder whose builds push to `registry`; `deploy` is CODEBUILDER_DEPLOY.
/// Runs `git push` and returns each stderr line with the time it arrived.
fn push_timed(client: &Client, dir: &Path, args: &[&str]) -> (bool, Vec<(Duration, String)>) {
    let started = Instant::now();
    let mut child = client
        .git_command(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).split(b'\n') {
        let line = String::from_utf8_lossy(&line.unwrap()).into_owned();
        for part in line.split('\r').filter(|p| !p.is_empty()) {
            lines.push((started.elapsed(), part.to_owned()));
        }
    }
    (child.wait().unwrap().success(), lines)
}

/// Whether a process whose command line matches `pattern` still runs after `patience`: a
/// BuildKit RUN step runs as a process of the host (not a container `docker ps` lists).
fn process_outlives(pattern: &str, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let out = Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .unwrap();
        let running = !text(&out.stdout).trim().is_empty();
        if !running || Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn joined(lines: &[(Duration, String)]) -> String {
    lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn push_builds_the_image_streams_output_and_records_the_build() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let work = repo_with(
        "main",
        &app_files("echo compiling; sleep 3; echo compiled > /built"),
    );
    let sha = head(work.path());

    let (ok, lines) = push_timed(&dev, work.path(), &["push", &dev.url("webapp"), "main"]);
    let all = joined(&lines);
    assert!(ok, "push failed:\n{all}");
    assert_eq!(
        server.server_ref("webapp", "refs/heads/main"),
        Some(sha.clone())
    );
    // One tag, one push.
    assert_eq!(registry.tags("webapp"), [format!("git-{}", short(&sha))]);

    let at = |needle: &str| {
        lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{all}"))
            .0
    };
    let building = at(&format!(
        "remote: -----> Building webapp ({}) with Dockerfile",
        short(&sha)
    ));
    // BuildKit's plain output: the RUN step's own line, after its number and time.
    let compiled = lines
        .iter()
        .find(|(_, l)| l.starts_with("remote:        #") && l.trim_end().ends_with(" compiling"))
        .unwrap_or_else(|| panic!("no RUN output in:\n{all}"))
        .0;
    let pushing = at(&format!(
        "remote: -----> Pushing {}/webapp:git-{}",
        registry.address(),
        short(&sha)
    ));
    at("remote: -----> Done: webapp");
    // Streamed as it happened: the RUN step's sleep separates its first line from the push step.
    assert!(
        building <= compiled && compiled + Duration::from_secs(2) < pushing,
        "output was buffered:\n{lines:?}"
    );

    let records = builds(&server, "webapp");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["result"], "succeeded");
    assert_eq!(records[0]["rev"], sha.as_str());
    assert_eq!(records[0]["pusher"], "dev");
    assert_eq!(
        records[0]["image"],
        format!("{}/webapp:git-{}", registry.address(), short(&sha)).as_str()
    );
    let log = fs::read_to_string(
        server
            .home
            .path()
            .join("builds/webapp")
            .join(records[0]["log"].as_str().unwrap()),
    )
    .unwrap();
    assert!(log.contains("compiling"), "{log}");

    // The image runs: busybox httpd serves its own filesystem on $PORT.
    let image = format!("{}/webapp:git-{}", registry.address(), short(&sha));
    let out = run_in_image(&image, &["/bin/busybox", "cat", "/built"]);
    assert_eq!(text(&out.stdout), "compiled\n", "{}", text(&out.stderr));

    // A second push redeploys: new tag, ref moves.
    fs::write(work.path().join("VERSION"), "2").unwrap();
    let second = commit_all(work.path(), "second");
    let out = dev.git(work.path(), &["push", &dev.url("webapp"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        server.server_ref("webapp", "refs/heads/main"),
        Some(second.clone())
    );
    assert!(registry
        .tags("webapp")
        .contains(&format!("git-{}", short(&second))));

    // An admin's rebuild builds the head again, with the same output and a new record.
    let out = server.ops_cli(&["rebuild", "webapp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("-----> Building webapp ({})", short(&second))),
        "{}",
        text(&out.stdout)
    );
    let records = builds(&server, "webapp");
    assert_eq!(records.len(), 3);
    assert_eq!(records[2]["pusher"], "rebuild by admin");
    let out = server.ops_cli(&["rebuild", "webapp", &sha]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(builds(&server, "webapp")[3]["rev"], sha.as_str());
    for bad in [
        &["rebuild", "webapp", "nosuchrev"][..],
        &["rebuild", "webapp", "--output=/etc/x"],
        &["rebuild", "nosuchapp"],
    ] {
        let out = server.ops_cli(bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{bad:?}: {}",
            text(&out.stderr)
        );
    }

    // Other branches are stored, not built; the deploy branch cannot be deleted.
    let out = dev.git(work.path(), &["push", &dev.url("webapp"), "main:feature"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("Stored refs/heads/feature (not deployed"),
        "{}",
        text(&out.stderr)
    );
    let out = dev.git(work.path(), &["push", &dev.url("webapp"), ":main"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("deploy branch main cannot be deleted"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.server_ref("webapp", "refs/heads/main"), Some(second));
    assert_eq!(builds(&server, "webapp").len(), 4);
}

#[test]
fn failed_builds_reject_the_push_and_leave_refs_alone() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);

    // No Dockerfile.
    let work = make_repo("main", &[("README", b"no dockerfile here")]);
    let out = dev.git(work.path(), &["push", &dev.url("broken"), "main"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("has no Dockerfile"), "{stderr}");
    assert_eq!(server.server_ref("broken", "refs/heads/main"), None);

    // A failing build step, first push and later push.
    let good = repo_with("main", &app_files("echo ok"));
    let out = dev.git(good.path(), &["push", &dev.url("broken"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deployed = head(good.path());
    fs::write(good.path().join("Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo about to fail; exit 7\"]\n").unwrap();
    let failing = commit_all(good.path(), "break the build");
    let out = dev.git(good.path(), &["push", &dev.url("broken"), "main"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("about to fail"), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: docker build failed (exit status: 1): fix the Dockerfile or the code, commit, and push again",
        "{stderr}"
    );
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");
    assert_eq!(
        server.server_ref("broken", "refs/heads/main"),
        Some(deployed.clone())
    );
    assert!(!registry
        .tags("broken")
        .contains(&format!("git-{}", short(&failing))));
    let records = builds(&server, "broken");
    assert_eq!(records.last().unwrap()["result"], "failed");
    assert!(records.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("docker build failed"));

    // A registry that is not there.
    let gone = server_for(
        &registry,
        "none",
        &[("CODEBUILDER_REGISTRY", "127.0.0.1:1")],
    );
    let dev2 = gone.add_user("dev", false);
    let work = repo_with("main", &app_files("echo ok"));
    let out = dev2.git(work.path(), &["push", &dev2.url("noregistry"), "main"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("check that the registry 127.0.0.1:1 is running"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(gone.server_ref("noregistry", "refs/heads/main"), None);

    // A bad setting is one clear error before anything runs: sshd does not even start.
    let home = shared_tempdir();
    let out = Command::new(bin_dir().join("codebuilder-sshd"))
        .arg("--home")
        .arg(home.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("CODEBUILDER_BUILD_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), "error: CODEBUILDER_BUILD_TIMEOUT=\"soon\" is not valid: a duration such as 90s, 30m or 1h\n");
}

#[test]
fn deploy_to_an_unreachable_cluster_rejects_the_push_with_the_image_in_the_registry() {
    require_docker();
    let registry = Registry::start();
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(scratch.path());
    fs::set_permissions(
        scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(
        &kubeconfig,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let server = server_for(
        &registry,
        "helm",
        &[
            ("KUBECONFIG", &kubeconfig),
            ("CODEBUILDER_DEPLOY_TIMEOUT", "20s"),
        ],
    );
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo ok"));
    let sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("helmapp"), "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // The release number comes from the cluster: without one, no release is announced.
    assert!(!stderr.contains("-----> Deploying release"), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .map(str::trim_end)
            .find(|l| l.starts_with("remote: error:")),
        Some("remote: error: cannot reach the Kubernetes API server (The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?): check KUBECONFIG and that the cluster is up"),
        "{stderr}"
    );
    assert!(registry
        .tags("helmapp")
        .contains(&format!("git-{}", short(&sha))));
    assert_eq!(server.server_ref("helmapp", "refs/heads/main"), None);

    // A repository with its own chart deploys that chart.
    let mut files = app_files("echo ok");
    let chart = tempfile::tempdir().unwrap();
    let out = server.build_cli(&["chart", "helmapp", chart.path().join("c").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in [
        "Chart.yaml",
        "values.yaml",
        "templates/deployment.yaml",
        "templates/service.yaml",
        "templates/_helpers.tpl",
    ] {
        let contents = fs::read(chart.path().join("c").join(name)).unwrap();
        files.push((
            Box::leak(format!("chart/{name}").into_boxed_str()),
            contents,
        ));
    }
    let work = repo_with("main", &files);
    let out = dev.git(work.path(), &["push", &dev.url("helmapp"), "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    // The chart was unpacked and accepted before the build; the cluster is what fails.
    assert!(stderr.contains("-----> Building helmapp"), "{stderr}");
    assert!(
        stderr.contains("remote: error: cannot reach the Kubernetes API server"),
        "{stderr}"
    );
    assert_eq!(server.server_ref("helmapp", "refs/heads/main"), None);
}

#[test]
fn default_chart_lints_and_renders_valid_manifests() {
    let registry_free = tempfile::tempdir().unwrap();
    let dir = registry_free.path().join("chart");
    write_default_chart("myapp", &dir);
    let manifests = render_chart(&dir, &[]);
    assert!(
        manifests.contains("image: \"127.0.0.1:5000/myapp:git-abc1234\""),
        "{manifests}"
    );
    assert!(manifests.contains("app.kubernetes.io/name: myapp"));
    assert!(manifests.contains("kind: Service"));
    assert_valid_manifests(&manifests);
}

#[test]
fn pushes_to_one_app_wait_for_each_other_and_different_apps_build_in_parallel() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let base = repo_with("main", &app_files("echo base"));
    assert!(dev
        .git(base.path(), &["push", &dev.url("shared"), "main"])
        .status
        .success());

    // Two siblings of the deployed commit, pushed at once: one builds, the other waits, then
    // finds main moved and is rejected without deploying over the first.
    let pushes: Vec<_> = ["one", "two"]
        .iter()
        .map(|name| {
            let clone = tempfile::tempdir().unwrap();
            let target = clone.path().join("c");
            assert!(dev
                .git(
                    clone.path(),
                    &[
                        "clone",
                        "--quiet",
                        &dev.url("shared"),
                        target.to_str().unwrap()
                    ]
                )
                .status
                .success());
            for args in [
                &["config", "user.email", "d@x"][..],
                &["config", "user.name", "d"],
            ] {
                Command::new("git")
                    .current_dir(&target)
                    .args(args)
                    .status()
                    .unwrap();
            }
            fs::write(
                target.join("Dockerfile"),
                String::from_utf8(app_files(&format!("echo {name}; sleep 4")).remove(0).1).unwrap(),
            )
            .unwrap();
            commit_all(&target, name);
            let child = dev
                .git_command(&target, &["push", &dev.url("shared"), "main"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (clone, child)
        })
        .collect();
    let results: Vec<(bool, String)> = pushes
        .into_iter()
        .map(|(_clone, child)| {
            let out = child.wait_with_output().unwrap();
            (out.status.success(), text(&out.stderr))
        })
        .collect();
    assert_eq!(
        results.iter().filter(|(ok, _)| *ok).count(),
        1,
        "{results:?}"
    );
    let (_, loser) = results.iter().find(|(ok, _)| !*ok).unwrap();
    assert!(
        loser.contains("Waiting for the build of shared that is already running (build 2 of"),
        "{loser}"
    );
    assert!(
        loser.contains("main moved while this push waited"),
        "{loser}"
    );
    let records = builds(&server, "shared");
    assert_eq!(
        records.len(),
        2,
        "the waiting push must not build: {records:?}"
    );

    // Two apps at once overlap in time.
    let children: Vec<_> = ["para-a", "para-b"]
        .iter()
        .map(|app| {
            let work = repo_with("main", &app_files("sleep 4"));
            let child = dev
                .git_command(work.path(), &["push", &dev.url(app), "main"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (work, child)
        })
        .collect();
    for (_work, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let a = &builds(&server, "para-a")[0];
    let b = &builds(&server, "para-b")[0];
    let (a0, a1, b0, b1) = (
        a["started_at"].as_u64().unwrap(),
        a["finished_at"].as_u64().unwrap(),
        b["started_at"].as_u64().unwrap(),
        b["finished_at"].as_u64().unwrap(),
    );
    assert!(
        a0 < b1 && b0 < a1,
        "builds of two apps did not overlap: {a0}-{a1} and {b0}-{b1}"
    );
}

#[test]
fn a_client_that_disconnects_mid_build_stops_the_build_and_releases_the_lock() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let marker = format!("marker{}", std::process::id());
    // The quotes keep the Dockerfile's own "Step" line from matching what the step prints.
    let work = repo_with(
        "main",
        &app_files(&format!(
            "echo st''arted-{marker}; sleep 120; echo {marker}"
        )),
    );
    let (mut child, _stderr, _) = dev.push_until_started(work.path(), "slow", &marker);
    assert!(
        process_outlives(&marker, Duration::ZERO),
        "the RUN step is not seen running"
    );
    // The developer's machine goes away: git and ssh die at once.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let killed_at = Instant::now();

    let patience = Duration::from_secs(5).saturating_sub(killed_at.elapsed());
    assert!(
        !process_outlives(&marker, patience),
        "the build's RUN step still runs 5 s after the client disconnected"
    );
    let patience = Duration::from_secs(5).saturating_sub(killed_at.elapsed());
    assert!(
        !process_outlives(&format!("{}.*hook", server.home.path().display()), patience),
        "the hook still runs 5 s after the client disconnected"
    );
    // The session ends too, once it has ended the app its first push did not store.
    let session = format!(
        "codebuilder-receive --home {}",
        server.home.path().display()
    );
    let patience = Duration::from_secs(5).saturating_sub(killed_at.elapsed());
    assert!(
        !process_outlives(&session, patience),
        "the session still runs 5 s after the client disconnected"
    );
    // The lock is free: flock -n succeeds at once.
    let lock = server.home.path().join("locks/slow.lock");
    let status = Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert!(status.success(), "the app's lock is still held");
    assert_eq!(server.server_ref("slow", "refs/heads/main"), None);
    let records = dev.builds("slow");
    assert_eq!(records[0]["result"], "cancelled", "{records:?}");
}

#[test]
fn a_build_over_its_time_limit_is_stopped_and_rejected() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[("CODEBUILDER_BUILD_TIMEOUT", "4s")]);
    let dev = server.add_user("dev", false);
    let marker = format!("overtime{}", std::process::id());
    let work = repo_with("main", &app_files(&format!("sleep 60; echo {marker}")));
    let started = Instant::now();
    let out = dev.git(work.path(), &["push", &dev.url("overtime"), "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the limit was not enforced"
    );
    assert_eq!(
        error_line(&stderr),
        "remote: error: docker build took longer than 4s and was stopped: raise CODEBUILDER_BUILD_TIMEOUT if it needs longer",
        "{stderr}"
    );
    assert_eq!(server.server_ref("overtime", "refs/heads/main"), None);
    assert!(
        !process_outlives(&marker, Duration::from_secs(5)),
        "the build's RUN step still runs"
    );
    assert_eq!(dev.builds("overtime")[0]["result"], "failed");
}

/// What git printed, line by line, without the padding git adds to the remote's lines.
fn remote_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

#[test]
fn a_shallow_push_is_refused_before_anything_is_built() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let full = repo_with("main", &app_files("echo shallow"));
    fs::write(full.path().join("second"), "2").unwrap();
    commit_all(full.path(), "second");
    let clones = tempfile::tempdir().unwrap();
    let shallow = clones.path().join("shallow");
    let out = Command::new("git")
        .args(["clone", "--quiet", "--depth", "1"])
        .arg(format!("file://{}", full.path().display()))
        .arg(&shallow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sha = head(&shallow);

    let out = dev.git(&shallow, &["push", &dev.url("shallowapp"), "main"]);
    assert!(!out.status.success());
    let lines = remote_lines(&out.stderr);
    let errors: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("remote: error"))
        .collect();
    assert_eq!(
        errors,
        ["remote: error: refs/heads/main was pushed from a shallow clone, and git here keeps only whole histories: run 'git fetch --unshallow', then push again"],
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("Building")), "{lines:?}");
    assert_eq!(registry.tags("shallowapp"), Vec::<String>::new());
    assert!(!server.repo("shallowapp").exists());
    assert!(!server.home.path().join("builds/shallowapp").exists());

    // The hint works.
    let out = Command::new("git")
        .current_dir(&shallow)
        .args(["fetch", "--quiet", "--unshallow"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = dev.git(&shallow, &["push", &dev.url("shallowapp"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(registry
        .tags("shallowapp")
        .contains(&format!("git-{}", short(&sha))));

    // A shallow clone of the app itself pushes: the server has the history it stops at.
    let ci = clones.path().join("ci");
    let out = dev
        .git_command(clones.path(), &["clone", "--quiet", "--depth", "1"])
        .arg(dev.url("shallowapp"))
        .arg(&ci)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["config", "user.email", "ci@example.com"][..],
        &["config", "user.name", "CI"],
    ] {
        assert!(Command::new("git")
            .current_dir(&ci)
            .args(args)
            .status()
            .unwrap()
            .success());
    }
    let next = commit_all(&ci, "from ci");
    let out = dev.git(&ci, &["push", &dev.url("shallowapp"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        server.server_ref("shallowapp", "refs/heads/main"),
        Some(next)
    );
}

#[test]
fn an_unreachable_docker_engine_is_named_as_the_cause() {
    require_docker();
    let registry = Registry::start();
    let dead = shared_tempdir();
    let socket = dead.path().join("docker.sock");
    // A socket anyone may connect to, that no engine listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
    let engine = format!("unix://{}", socket.display());
    let server = server_for(&registry, "none", &[("DOCKER_HOST", &engine)]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo never"));
    let out = dev.git(work.path(), &["push", &dev.url("noengine"), "main"]);
    assert!(!out.status.success());
    let lines = remote_lines(&out.stderr);
    let errors: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("remote: error"))
        .collect();
    assert_eq!(
        errors,
        [&format!("remote: error: the Docker engine at {engine} does not answer: is dockerd running? start it, or set DOCKER_HOST to a running engine")],
        "{lines:?}"
    );
    assert_eq!(server.server_ref("noengine", "refs/heads/main"), None);
    assert_eq!(registry.tags("noengine"), Vec::<String>::new());
    let records = builds(&server, "noengine");
    assert_eq!(records[0]["result"], "failed");
}

#[test]
fn a_master_only_app_deploys_from_master_and_clones_check_it_out() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let work = repo_with("master", &app_files("echo master"));
    let sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("legacy"), "master"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(registry
        .tags("legacy")
        .contains(&format!("git-{}", short(&sha))));
    let clones = tempfile::tempdir().unwrap();
    let clone = clones.path().join("legacy");
    let out = dev
        .git_command(clones.path(), &["clone", "--quiet"])
        .arg(dev.url("legacy"))
        .arg(&clone)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert!(clone.join("Dockerfile").is_file());
    assert_eq!(head(&clone), sha);
}

#[test]
fn a_killed_hook_leaves_no_build_running_and_the_next_push_builds() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let marker = format!("killed{}", std::process::id());
    let work = repo_with(
        "main",
        &app_files(&format!(
            "echo st''arted-{marker}; sleep 120; echo {marker}"
        )),
    );
    let (mut child, mut stderr, seen) = dev.push_until_started(work.path(), "hookkill", &marker);
    // The hook dies without a chance to clean up (the OOM killer, an operator's kill -9).
    let hook = Command::new("pgrep")
        .args(["-f", &format!("{}.*hook", server.home.path().display())])
        .output()
        .unwrap();
    let hooks: Vec<i32> = text(&hook.stdout)
        .lines()
        .map(|pid| pid.trim().parse().unwrap())
        .collect();
    assert!(!hooks.is_empty(), "no hook runs:\n{seen}");
    for pid in hooks {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let killed_at = Instant::now();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(!child.wait().unwrap().success(), "{seen}{rest}");

    std::thread::sleep(Duration::from_secs(5).saturating_sub(killed_at.elapsed()));
    let builds_left = Command::new("pgrep")
        .args([
            "-f",
            &format!("build --tag {}/hookkill", registry.address()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&builds_left.stdout).trim(),
        "",
        "docker build still runs 5 s after the hook was killed"
    );
    assert!(
        !process_outlives(&marker, Duration::ZERO),
        "the build's RUN step still runs 5 s after the hook was killed"
    );
    let lock = server.home.path().join("locks/hookkill.lock");
    let status = Command::new("flock")
        .arg("-n")
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert!(status.success(), "the app's lock is still held");
    assert_eq!(server.server_ref("hookkill", "refs/heads/main"), None);
    // The killed hook's temporary files are in its folder under the home, not in /tmp.
    let tmp = server.home.path().join("tmp");
    let left = |what: &str| -> Vec<String> {
        fs::read_dir(&tmp)
            .unwrap_or_else(|e| panic!("{} ({what}): {e}", tmp.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        left("after the kill").len(),
        1,
        "{:?}",
        left("after the kill")
    );

    // The next push builds at once.
    write_files(
        work.path(),
        &[("Dockerfile", app_files("echo next").remove(0).1.as_slice())],
    );
    let sha = commit_all(work.path(), "next");
    let out = dev.git(work.path(), &["push", &dev.url("hookkill"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.server_ref("hookkill", "refs/heads/main"), Some(sha));
    // The next hook removed the killed one's folder, and its own when it ended.
    assert_eq!(left("after the next push"), Vec::<String>::new());
}

/// A file of `size` bytes that no compression shrinks.
fn random_bytes(size: usize) -> Vec<u8> {
    let mut bytes = vec![0; size];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    bytes
}

#[test]
fn pushes_over_the_size_limits_are_refused_and_name_the_setting() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(
        &registry,
        "none",
        &[
            ("CODEBUILDER_MAX_PUSH_SIZE", "2M"),
            ("CODEBUILDER_MAX_CONTEXT_SIZE", "8M"),
        ],
    );
    let dev = server.add_user("dev", false);

    // 3 MB that git cannot compress: over the pack limit, refused before the hook runs.
    let mut files = app_files("echo big");
    files.push(("blob", random_bytes(3 << 20)));
    let work = repo_with("main", &files);
    let out = dev.git(work.path(), &["push", &dev.url("limits"), "main"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("remote: fatal: pack exceeds maximum allowed size"),
        "{stderr}"
    );
    assert!(!stderr.contains("Building"), "{stderr}");
    assert_eq!(server.server_ref("limits", "refs/heads/main"), None);

    // 64 MB of zeros are a small pack but a large build context: the build is stopped.
    let mut files = app_files("echo bomb");
    files.push(("zeros", vec![0; 64 << 20]));
    let work = repo_with("main", &files);
    let out = dev.git(work.path(), &["push", &dev.url("limits"), "main"]);
    assert!(!out.status.success());
    let stderr: String = text(&out.stderr)
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect();
    assert!(
        stderr.contains("remote: error: docker build was stopped: the pushed tree is over the 8M limit of a build context (CODEBUILDER_MAX_CONTEXT_SIZE): remove large files from the repository, or raise CODEBUILDER_MAX_CONTEXT_SIZE\n"),
        "{stderr}"
    );
    assert_eq!(server.server_ref("limits", "refs/heads/main"), None);
    assert!(registry.tags("limits").is_empty());
    let records = dev.builds("limits");
    assert_eq!(records.last().unwrap()["result"], "failed", "{records:?}");

    // What fits builds.
    let work = repo_with("main", &app_files("echo small"));
    let out = dev.git(work.path(), &["push", &dev.url("limits"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The tags of `REGISTRY/APP` the engine holds, sorted.
fn engine_tags(registry: &Registry, app: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["image", "ls", "--format", "{{.Tag}}"])
        .arg(format!("{}/{app}", registry.address()))
        .output()
        .unwrap();
    let mut tags: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    tags.sort();
    tags
}

#[test]
fn only_the_newest_images_are_kept_in_the_registry_and_the_engine() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[("CODEBUILDER_KEEP_IMAGES", "2")]);
    let dev = server.add_user("dev", false);
    let work = repo_with("main", &app_files("echo 1"));
    let mut pushed = Vec::new();
    for round in 1..=4 {
        if round > 1 {
            write_files(
                work.path(),
                &[(
                    "Dockerfile",
                    app_files(&format!("echo {round}")).remove(0).1.as_slice(),
                )],
            );
            commit_all(work.path(), &format!("round {round}"));
        }
        let out = dev.git(work.path(), &["push", &dev.url("keep"), "main"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("warning"),
            "{}",
            text(&out.stderr)
        );
        pushed.push(format!("git-{}", short(&head(work.path()))));
    }
    let mut expected = pushed[2..].to_vec();
    expected.sort();
    let mut tags = registry.tags("keep");
    tags.sort();
    assert_eq!(tags, expected);
    assert_eq!(engine_tags(&registry, "keep"), expected);
    // What is kept still pulls: the registry serves its manifest.
    for tag in &expected {
        http_get(registry.port, &format!("/v2/keep/manifests/{tag}")).unwrap();
    }
}

#[test]
fn a_record_that_cannot_be_written_after_the_push_is_a_warning_not_a_rejected_push() {
    use std::os::unix::fs::PermissionsExt;
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let marker = format!("record{}", std::process::id());
    let work = repo_with(
        "main",
        &app_files(&format!("echo st''arted-{marker}; sleep 3")),
    );
    let sha = head(work.path());
    let (mut child, mut stderr, mut seen) =
        dev.push_until_started(work.path(), "norecord", &marker);
    // The build's records can no longer be written (as on a full disk); the build goes on.
    let records = server.home.path().join("builds/norecord");
    fs::set_permissions(&records, fs::Permissions::from_mode(0o555)).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    let ok = child.wait().unwrap().success();
    fs::set_permissions(&records, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(ok, "{seen}");
    let lines: Vec<&str> = seen.lines().map(str::trim_end).collect();
    let expected = format!(
        "remote:  !     warning: cannot write {}/000001.json: Permission denied",
        records.display()
    );
    let warning = lines
        .iter()
        .position(|l| l.starts_with(&expected))
        .unwrap_or_else(|| panic!("no warning in:\n{seen}"));
    let done = lines
        .iter()
        .position(|l| l.starts_with("remote: -----> Done: norecord"))
        .unwrap_or_else(|| panic!("no Done in:\n{seen}"));
    assert!(warning < done, "{seen}");
    assert_eq!(
        server.server_ref("norecord", "refs/heads/main"),
        Some(sha.clone())
    );
    assert!(registry
        .tags("norecord")
        .contains(&format!("git-{}", short(&sha))));
}

#[test]
fn a_build_cannot_write_to_the_registry_and_another_apps_image_stays() {
    require_docker();
    let registry = Registry::start_authenticated();
    let config = registry.docker_config();
    let server = server_for(
        &registry,
        "none",
        &[
            ("CODEBUILDER_REGISTRY_AUTH", config.as_str()),
            ("CODEBUILDER_KEEP_IMAGES", "1"),
        ],
    );
    let dev = server.add_user("dev", false);
    let carol = repo_with("main", &app_files("echo carol"));
    let out = dev.git(carol.path(), &["push", &dev.url("carol"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tag = format!("git-{}", short(&head(carol.path())));
    let before = registry
        .digest("carol", &tag)
        .expect("carol's image is not in the registry");
    // Without the credentials, nothing reads the registry either.
    assert!(http_get(registry.port, "/v2/carol/tags/list").is_err());

    // Another app's RUN step speaks HTTP to the registry on the build's network.
    let put = format!(
        "printf 'PUT /v2/carol/manifests/{tag} HTTP/1.0\\\\r\\\\nContent-Type: application/vnd.docker.distribution.manifest.v2+json\\\\r\\\\nContent-Length: 2\\\\r\\\\n\\\\r\\\\n{{}}' | nc 127.0.0.1 {} | head -n 1",
        registry.port
    );
    let mallory = repo_with("main", &app_files(&put));
    let out = dev.git(mallory.path(), &["push", &dev.url("mallory"), "main"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // BuildKit prefixes the step's lines with its number and time.
    assert!(
        stderr.lines().any(|l| l.starts_with("remote:        #")
            && l.trim_end().ends_with(" HTTP/1.0 401 Unauthorized")),
        "{stderr}"
    );
    assert_eq!(registry.digest("carol", &tag), Some(before));
    // codebuilder itself pushed mallory's image with its credentials.
    assert!(registry
        .digest("mallory", &format!("git-{}", short(&head(mallory.path()))))
        .is_some());

    // Retention deletes with the same credentials.
    write_files(
        carol.path(),
        &[(
            "Dockerfile",
            app_files("echo carol 2").remove(0).1.as_slice(),
        )],
    );
    let next = format!("git-{}", short(&commit_all(carol.path(), "next")));
    let out = dev.git(carol.path(), &["push", &dev.url("carol"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(registry.digest("carol", &tag), None);
    assert!(registry.digest("carol", &next).is_some());
}

/// The files under /ctx of `image` (its Dockerfile copies the build context there).
fn context_files(image: &str) -> Vec<String> {
    let out = run_in_image(image, &["/bin/busybox", "find", "/ctx", "-type", "f"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut files: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    files.sort();
    files
}

#[test]
fn dockerignore_keeps_listed_files_out_of_the_image_as_docker_build_does() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /ctx/\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/\"]\n";
    let busybox = fs::read("/bin/busybox").expect("busybox-static is not installed");
    let tree: Vec<(&str, &[u8])> = vec![
        ("Dockerfile", dockerfile.as_bytes()),
        ("busybox", &busybox),
        ("app.txt", b"app"),
        ("secret.env", b"TOKEN=hunter2"),
        ("logs/today.log", b"noise"),
        ("logs/keep.log", b"kept"),
        ("certs/deep/server.pem", b"key"),
        ("src/main.txt", b"main"),
    ];
    let dockerignore: &[u8] =
        b"# secrets stay out of the image\nsecret.env\n/logs/\n!logs/keep.log\n**/*.pem\nDockerfile\n";
    let mut ignored = tree.clone();
    ignored.push((".dockerignore", dockerignore));
    let work = make_repo("main", &ignored);
    let sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("ignoring"), "main"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_end()
                == "remote: -----> Leaving out what .dockerignore lists (5 patterns)"),
        "{stderr}"
    );
    let image = format!("{}/ignoring:git-{}", registry.address(), short(&sha));
    // The Dockerfile and .dockerignore are sent whatever it says, as docker's client does.
    let filtered = [
        "/ctx/.dockerignore",
        "/ctx/Dockerfile",
        "/ctx/app.txt",
        "/ctx/busybox",
        "/ctx/logs/keep.log",
        "/ctx/src/main.txt",
    ];
    assert_eq!(context_files(&image), filtered);

    // A rebuild over ssh builds the same context as the push.
    let output = said(&dev.ssh(&["rebuild", "ignoring"], b""));
    assert!(
        output
            .lines()
            .any(|l| l == "-----> Leaving out what .dockerignore lists (5 patterns)"),
        "{output}"
    );
    assert_eq!(context_files(&image), filtered);
    assert_eq!(builds(&server, "ignoring")[1]["pusher"], "rebuild by dev");

    // Without a .dockerignore, everything is in the context.
    let work = make_repo("main", &tree);
    let sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("keeping"), "main"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(".dockerignore"), "{stderr}");
    let image = format!("{}/keeping:git-{}", registry.address(), short(&sha));
    assert_eq!(
        context_files(&image),
        [
            "/ctx/Dockerfile",
            "/ctx/app.txt",
            "/ctx/busybox",
            "/ctx/certs/deep/server.pem",
            "/ctx/logs/keep.log",
            "/ctx/logs/today.log",
            "/ctx/secret.env",
            "/ctx/src/main.txt",
        ]
    );

    // A pattern docker would refuse refuses the push, before anything is built.
    let mut bad = tree.clone();
    bad.push((".dockerignore", b"ok\n[a-\n"));
    let work = make_repo("main", &bad);
    let out = dev.git(work.path(), &["push", &dev.url("badignore"), "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr
            .lines()
            .map(str::trim_end)
            .find(|l| l.starts_with("remote: error:")),
        Some("remote: error: .dockerignore line 2 (\"[a-\") is not a valid pattern: fix it (docker's pattern rules), commit, and push again"),
        "{stderr}"
    );
    assert_eq!(server.server_ref("badignore", "refs/heads/main"), None);
}

#[test]
fn dockerignore_context_counts_against_the_limit_after_filtering() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[("CODEBUILDER_MAX_CONTEXT_SIZE", "8M")]);
    let dev = server.add_user("dev", false);
    // 64 MB of zeros that .dockerignore leaves out: the build receives a few MB and builds.
    let mut files = app_files("echo fits");
    files.push(("zeros", vec![0; 64 << 20]));
    files.push((".dockerignore", b"zeros\n".to_vec()));
    let work = repo_with("main", &files);
    let out = dev.git(work.path(), &["push", &dev.url("filtered"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The port an image EXPOSEs, as the push names it (tests/cluster.rs deploys one for real).
#[test]
fn the_push_names_the_port_the_image_exposes() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let port_lines = |app: &str, expose: &str| {
        let mut files = app_files("echo ok");
        let dockerfile = String::from_utf8(files[0].1.clone())
            .unwrap()
            .replace("CMD", &format!("{expose}CMD"));
        files[0].1 = dockerfile.into_bytes();
        let work = repo_with("main", &files);
        let out = dev.git(work.path(), &["push", &dev.url(app), "main"]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        stderr
            .lines()
            .map(str::trim_end)
            .filter(|l| l.starts_with("remote: -----> Port"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        port_lines("exposed", "EXPOSE 8080\n"),
        ["remote: -----> Port 8080 (EXPOSE in the Dockerfile)"]
    );
    // Several: the lowest TCP port, and the others named.
    assert_eq!(
        port_lines("several", "EXPOSE 9090 8443/tcp 53/udp\nEXPOSE 3000\n"),
        ["remote: -----> Port 3000 (the lowest EXPOSE in the Dockerfile; not routed: 8443, 9090)"]
    );
    // None: the chart's own port, nothing said.
    assert!(port_lines("unexposed", "").is_empty());
}
