//! Processes over the real sshd against the real cluster (tests/support/cluster.rs): the
//! release phase runs before the rollout and a failing one rejects the push with the old pod
//! serving; `ps` shows the process types; `run` returns the command's output and exit status
//! and leaves no Job; `logs -f` streams and stops when the client goes; `ps:scale` is kept
//! across the next push; a config change and a rollback run the release phase too; bad input
//! is refused with one line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codebuilder_tests::cluster::{
    app_name, cluster, deploying_server, error_line, processes_with, push, HostPort, ACCOUNT,
    ROLLOUT,
};
use codebuilder_tests::*;

/// A web app on busybox that says it started, with a `/bin/sh` for one-off processes, and
/// the Procfile `procfile`.
fn app_files(body: &str, procfile: &str) -> Vec<(&'static str, Vec<u8>)> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is not installed");
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY www /www\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo listening on $PORT; exec /bin/busybox httpd -f -p \\\"$PORT\\\" -h /www\"]\n".to_vec(),
        ),
        ("www/index.html", body.as_bytes().to_vec()),
        ("Procfile", procfile.as_bytes().to_vec()),
        ("busybox", busybox),
    ]
}

/// Waits (boundedly) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn release_phase_ps_run_logs_and_a_kept_scale() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("ps");
    let work = repo_with("main", &app_files("v1\n", "release: echo migrating\n"));

    // The release phase prints its output before the rollout.
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "first push: {stderr}");
    let at = |line: &str| {
        stderr
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} in {stderr}"))
    };
    let deploying = at("remote: -----> Deploying release 1");
    let release = at("remote: -----> Running the release command: echo migrating");
    let output = at("remote:        migrating");
    let done = at(&format!("remote: -----> Done: {app} "));
    assert!(
        deploying < release && release < output && output < done,
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v1\n");
    assert_eq!(
        cluster
            .kubectl_ok(&["get", "deployments", "-n", &app, "-o", "name"])
            .trim(),
        format!("deployment.apps/{app}"),
        "a release: line is no Deployment"
    );

    // ps: the process types and their pods.
    let out = dev.ssh(&["ps", &app], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(
        shown.lines().next(),
        Some("=== web: 1 desired, 1 ready"),
        "{shown}"
    );
    assert!(shown.contains("  Running  restarts 0"), "{shown}");
    let out = dev.ssh(&["ps", &app, "--json"], b"");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["type"], "web");
    assert_eq!(listed[0]["desired"], 1);

    // run: the command's output and exit status; no Job is left.
    let out = dev.ssh(&["run", &app, "--", "echo hi; exit 3"], b"");
    assert_eq!(text(&out.stdout), "hi\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    eventually("the Job is removed", || {
        cluster
            .kubectl_ok(&["get", "jobs", "-n", &app, "-o", "name"])
            .trim()
            .is_empty()
    });

    // A run whose client goes is cancelled: its Job is deleted, no kubectl is left.
    let mut running = Command::new("ssh")
        .args(dev.ssh_options())
        .arg("git@127.0.0.1")
        .args(["run", &app, "--", "echo started; sleep 600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(running.stdout.take().unwrap()).lines();
    let Some(Ok(first)) = lines.next() else {
        let mut said = String::new();
        std::io::Read::read_to_string(&mut running.stderr.take().unwrap(), &mut said).unwrap();
        panic!("run printed nothing: {said}");
    };
    assert_eq!(first, "started");
    assert!(!cluster
        .kubectl_ok(&["get", "jobs", "-n", &app, "-o", "name"])
        .trim()
        .is_empty());
    running.kill().unwrap();
    running.wait().unwrap();
    eventually("the cancelled run's Job is removed", || {
        cluster
            .kubectl_ok(&["get", "jobs", "-n", &app, "-o", "name"])
            .trim()
            .is_empty()
    });
    eventually("no kubectl of the run is left", || {
        processes_with(&["kubectl", &app, "pod/run-"]).is_empty()
    });

    // logs -f streams until the client goes, and leaves no kubectl behind.
    let mut following = Command::new("ssh")
        .args(dev.ssh_options())
        .arg("git@127.0.0.1")
        .args(["logs", &app, "-t", "-n", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read on the side: a pod whose log file is gone (kubelets sharing /var/log/pods may
    // remove one another's) prints nothing, and the test says so instead of waiting forever.
    let stdout = following.stdout.take().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let first = received
        .recv_timeout(Duration::from_secs(60))
        .expect("logs -f printed no line of the web pod");
    assert!(first.starts_with(&format!("[pod/{app}-")), "{first}");
    assert!(
        first.ends_with(&format!("/web] listening on {}", host.port)),
        "{first}"
    );
    let selector = format!("app.kubernetes.io/instance={app}");
    assert!(!processes_with(&["kubectl", "logs", &selector]).is_empty());
    following.kill().unwrap();
    following.wait().unwrap();
    eventually("kubectl logs ends with the client", || {
        processes_with(&["kubectl", "logs", &selector]).is_empty()
    });

    // A failing release phase rejects the push; the old pod keeps serving.
    write_files(
        work.path(),
        &[
            ("www/index.html", b"v2\n"),
            ("Procfile", b"release: echo cannot migrate; exit 4\n"),
        ],
    );
    commit_all(work.path(), "v2 with a failing release");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("remote:        cannot migrate"), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: the release command failed (exit status 4): the running release is untouched; fix it, commit, and push again"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v1\n");
    assert_eq!(cluster.release(&app)["version"], 1);
    assert!(cluster
        .kubectl_ok(&["get", "jobs", "-n", &app, "-o", "name"])
        .trim()
        .is_empty());

    // ps:scale applies at once and is kept across the next push.
    let out = dev.ssh(&["ps:scale", &app, "web=0"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("Scaled {app} web to 0 (was 1)\n")
    );
    write_files(
        work.path(),
        &[
            ("www/index.html", b"v3\n"),
            (
                "Procfile",
                b"release: echo \"migrating for [$STAGE]\"; test \"$STAGE\" != broken\n",
            ),
        ],
    );
    commit_all(work.path(), "v3");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "push after scaling: {stderr}");
    assert_eq!(cluster.release(&app)["version"], 2);
    let out = dev.ssh(&["ps", &app], b"");
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some("=== web: 0 desired, 0 ready"),
        "{}",
        text(&out.stderr)
    );
    // ps:scale does not wait for the pod to serve.
    let out = dev.ssh(&["ps:scale", &app, "web=1"], b"");
    assert_eq!(
        text(&out.stdout),
        format!("Scaled {app} web to 1 (was 0)\n")
    );
    assert_eq!(host.served(ROLLOUT), "v3\n");

    // A config change and a rollback run the release phase too, with the config of the
    // release they make; when it fails, the config and the running release stay as they were.
    let release_line = "-----> Running the release command: echo \"migrating for [$STAGE]\"; test \"$STAGE\" != broken\n";
    let out = said(&dev.ssh(&["config:set", &app, "STAGE=two"], b""));
    assert!(out.contains(release_line), "{out}");
    assert!(out.contains("migrating for [two]\n"), "{out}");
    assert!(
        out.ends_with(&format!("-----> Done: {app} release 3 is live\n")),
        "{out}"
    );
    let out = dev.ssh(&["config:set", &app, "STAGE=broken"], b"");
    assert!(
        text(&out.stdout).contains("migrating for [broken]\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        refused(&out),
        "error: the release command failed (exit status 1): the running release is untouched; the config change was not kept: fix the release command or the config, and set it again"
    );
    assert_eq!(said(&dev.ssh(&["config:get", &app, "STAGE"], b"")), "two\n");
    assert_eq!(cluster.release(&app)["version"], 3);
    let out = said(&dev.ssh(&["rollback", &app, "v2"], b""));
    assert!(out.contains(release_line), "{out}");
    assert!(out.contains("migrating for []\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "-----> Done: {app} release 4 is live (rollback to v2: its image and config)\n"
        )),
        "{out}"
    );
    assert_eq!(host.served(Duration::from_secs(20)), "v3\n");

    // Bad input: one line each, before anything runs.
    assert_eq!(
        refused(&dev.ssh(&["ps:scale", &app, "web2"], b"")),
        "error: \"web2\" is not TYPE=COUNT: name each process type with its number of pods, as in ps:scale APP web=2 worker=1"
    );
    assert_eq!(
        refused(&dev.ssh(&["ps:scale", &app, "web=100"], b"")),
        "error: web=100 is more than 50 pods: scale web to at most 50"
    );
    assert_eq!(
        refused(&dev.ssh(&["ps:scale", &app, "worker=1"], b"")),
        format!("error: {app} has no process type worker: scale one of web")
    );
    assert_eq!(
        refused(&dev.ssh(&["run", &app, "--"], b"")),
        "error: run needs a command: usage: run APP -- COMMAND [ARGS...]"
    );
    assert_eq!(
        refused(&dev.ssh(&["logs", &app, "--process", "Web"], b"")),
        "error: \"Web\" is not a process type: use lowercase letters, digits and -, starting with a letter, as in the Procfile"
    );
    assert_eq!(
        refused(&dev.ssh(&["logs", &app, "--num", "many"], b"")),
        "error: many is not a number of lines: give 0 to 10000"
    );
    assert_eq!(
        refused(&dev.ssh(&["run", &app, "--", "bash"], b"")),
        format!("error: run has no terminal, so bash alone would exit at once: give it a command, e.g. 'run {app} -- bash -c \"ls -la\"'")
    );
    cluster.remove_app(&app);
}
