//! Config vars, releases and rollback over a real sshd: `config:set` stores the vars and
//! deploys them as a new release that the running pod sees in its environment; `releases`
//! says what made each release; `rollback` brings back a release's image and config, and the
//! stored config follows. Bad input is one `error:` line, without the cluster.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use codebuilder_tests::cluster::{app_name, cluster, deploying_server, push, HostPort, ACCOUNT};
use codebuilder_tests::*;

/// A web app that serves `body` at / and, at /env.txt, the environment it started with; it
/// exits at once when CRASH is set.
fn env_app_files(body: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"[ -z \\\"$CRASH\\\" ] || exit 3; /bin/busybox env > /www/env.txt; exec /bin/busybox httpd -f -p \\\"$PORT\\\" -h /www\"]\n".to_vec(),
        ),
        ("www/index.html", body.as_bytes().to_vec()),
        (
            "busybox",
            std::fs::read("/bin/busybox").expect("busybox-static is not installed"),
        ),
    ]
}

/// The environment the app's pod started with, once it serves.
fn pod_env(host: &HostPort) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(host.port, "/env.txt") {
            Ok(body) => return body.lines().map(str::to_owned).collect(),
            Err(e) if Instant::now() > deadline => panic!("no /env.txt: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn config_set_reaches_the_pod_as_a_release_and_rollback_restores_image_and_config() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("config");
    let work = repo_with("main", &env_app_files("v1\n"));
    let first = short(&head(work.path())).to_owned();
    let (pushed, stderr) = push(&dev, work.path(), &app);
    assert!(pushed, "first push: {stderr}");
    assert!(
        stderr.contains(&format!(
            "remote: -----> Deploying release 1 to namespace {app} with the default chart"
        )),
        "{stderr}"
    );
    assert!(!pod_env(&host).iter().any(|l| l.starts_with("GREETING=")));

    // A value with spaces cannot cross ssh's argument splitting; = and quotes can.
    let out = said(&dev.ssh(&["config:set", &app, "GREETING=hello=\"world\""], b""));
    assert!(
        out.contains(&format!("-----> Stored on {app}: set GREETING\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "-----> Deploying release 2 to namespace {app} with the default chart\n"
        )),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("-----> Done: {app} release 2 is live\n")),
        "{out}"
    );
    assert!(pod_env(&host).contains(&"GREETING=hello=\"world\"".to_owned()));
    assert_eq!(host.served(Duration::from_secs(5)), "v1\n");
    let secret = cluster.kubectl_ok(&[
        "get",
        "secret",
        &format!("{app}-config"),
        "-n",
        &app,
        "-o",
        "jsonpath={.data.GREETING}",
    ]);
    assert_eq!(secret, base64(b"hello=\"world\""));

    // The next push keeps the config.
    write_files(work.path(), &[("www/index.html", b"v2\n")]);
    let second = short(&commit_all(work.path(), "v2")).to_owned();
    let (pushed, stderr) = push(&dev, work.path(), &app);
    assert!(pushed, "second push: {stderr}");
    assert!(
        stderr.contains(&format!(
            "remote: -----> Deploying release 3 to namespace {app}"
        )),
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(5)), "v2\n");
    assert!(pod_env(&host).contains(&"GREETING=hello=\"world\"".to_owned()));

    // --no-deploy only stores.
    let out = said(&dev.ssh(&["config:set", &app, "LATER=1", "--no-deploy"], b""));
    assert_eq!(
        out,
        format!("-----> Stored on {app}: set LATER (not deployed: --no-deploy)\n")
    );
    assert!(!pod_env(&host).iter().any(|l| l.starts_with("LATER=")));

    let releases: Vec<serde_json::Value> =
        serde_json::from_str(&said(&dev.ssh(&["releases", &app, "--json"], b""))).unwrap();
    let made: Vec<(u64, &str, &str, &str)> = releases
        .iter()
        .map(|r| {
            (
                r["version"].as_u64().unwrap(),
                r["description"].as_str().unwrap(),
                r["by"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    let build1 = format!("build 1 of {first}");
    let build2 = format!("build 2 of {second}");
    assert_eq!(
        made,
        [
            (1, build1.as_str(), "dev", "superseded"),
            (2, "config set GREETING", "dev", "superseded"),
            (3, build2.as_str(), "dev", "deployed"),
        ]
    );
    let listed = said(&dev.ssh(&["releases", &app], b""));
    let line = listed.lines().nth(1).unwrap();
    assert!(line.starts_with("v2    "), "{listed}");
    assert!(
        line.ends_with("  superseded  config set GREETING by dev"),
        "{listed}"
    );

    // Back to v1: its image and its config (none), and the store follows.
    let out = said(&dev.ssh(&["rollback", &app, "v1"], b""));
    assert!(
        out.starts_with(&format!("-----> Rolling back {app} to v1\n")),
        "{out}"
    );
    assert!(
        out.ends_with(&format!(
            "-----> Done: {app} release 4 is live (rollback to v1: its image and config)\n"
        )),
        "{out}"
    );
    assert_eq!(host.served(Duration::from_secs(5)), "v1\n");
    assert!(!pod_env(&host).iter().any(|l| l.starts_with("GREETING=")));
    assert_eq!(
        said(&dev.ssh(&["config", &app], b"")),
        format!("{app} has no config vars\n")
    );

    // The default is the release before the current one: v3, v2's image with GREETING.
    said(&dev.ssh(&["rollback", &app], b""));
    assert_eq!(host.served(Duration::from_secs(5)), "v2\n");
    assert!(pod_env(&host).contains(&"GREETING=hello=\"world\"".to_owned()));
    assert_eq!(
        said(&dev.ssh(&["config:get", &app, "GREETING"], b"")),
        "hello=\"world\"\n"
    );
    let listed = said(&dev.ssh(&["releases", &app], b""));
    let last: Vec<&str> = listed.lines().skip(3).collect();
    assert_eq!(last.len(), 2, "{listed}");
    assert!(last[0].ends_with("rollback to v1 by dev"), "{listed}");
    assert!(
        last[1].ends_with("  deployed    rollback to v3 by dev"),
        "{listed}"
    );
    assert_eq!(
        refused(&dev.ssh(&["rollback", &app, "v9"], b"")),
        format!("error: {app} has no release v9: 'releases {app}' lists them")
    );

    // A config the app cannot run with: the release before serves on, and the stored config
    // stays that release's.
    let out = dev.ssh(&["config:set", &app, "CRASH=1"], b"");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).starts_with("error: the new release did not become ready ("),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v2\n");
    assert!(!pod_env(&host).iter().any(|l| l.starts_with("CRASH=")));
    assert_eq!(
        said(&dev.ssh(&["config", &app], b"")),
        "GREETING=hello=\"world\"\n"
    );
    let releases: Vec<serde_json::Value> =
        serde_json::from_str(&said(&dev.ssh(&["releases", &app, "--json"], b""))).unwrap();
    let last: Vec<(&serde_json::Value, &serde_json::Value)> = releases[5..]
        .iter()
        .map(|r| (&r["description"], &r["status"]))
        .collect();
    assert_eq!(
        last,
        [
            (&"config set CRASH".into(), &"failed".into()),
            (&"rollback to v5".into(), &"deployed".into()),
        ]
    );
    cluster.remove_app(&app);
}

#[test]
fn config_commands_store_privately_and_refuse_bad_input_in_one_line() {
    let server = Server::start_with(&[("CODEBUILDER_DEPLOY", "none")]);
    let owner = server.add_user("owner", false);
    let stranger = server.add_user("stranger", false);
    let work = repo_with("feature", &[("README", b"hello\n".to_vec())]);
    let out = owner.git(work.path(), &["push", &owner.url("conf"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert_eq!(
        said(&owner.ssh(&["config", "conf"], b"")),
        "conf has no config vars\n"
    );
    assert_eq!(
        said(&owner.ssh(&["config:set", "conf", "B=2", "A=x=y"], b"")),
        "-----> Stored on conf: set A, B (not deployed: CODEBUILDER_DEPLOY=none)\n"
    );
    assert_eq!(said(&owner.ssh(&["config", "conf"], b"")), "A=x=y\nB=2\n");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&said(
            &owner.ssh(&["config", "conf", "--json"], b"")
        ))
        .unwrap(),
        serde_json::json!({"A": "x=y", "B": "2"})
    );
    assert_eq!(said(&owner.ssh(&["config:get", "conf", "A"], b"")), "x=y\n");
    // A value with spaces and a newline crosses ssh base64-encoded ("two words\nsecond line").
    assert_eq!(
        said(&owner.ssh(
            &[
                "config:set",
                "conf",
                "--encoded",
                "C=dHdvIHdvcmRzCnNlY29uZCBsaW5l"
            ],
            b""
        )),
        "-----> Stored on conf: set C (not deployed: CODEBUILDER_DEPLOY=none)\n"
    );
    assert_eq!(
        said(&owner.ssh(&["config:get", "conf", "C"], b"")),
        "two words\nsecond line\n"
    );
    said(&owner.ssh(&["config:unset", "conf", "C", "--no-deploy"], b""));
    assert_eq!(
        said(&owner.ssh(&["config:unset", "conf", "B", "--no-deploy"], b"")),
        "-----> Stored on conf: unset B (not deployed: --no-deploy)\n"
    );
    let stored = server.home.path().join("apps/config/conf.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&stored), 0o600);
    assert_eq!(mode(stored.parent().unwrap()), 0o700);

    for (args, line) in [
        (
            &["config:set", "conf", "1BAD=x"][..],
            "error: invalid config var name \"1BAD\": use letters, digits and _, not starting with a digit, at most 128 characters",
        ),
        (
            &["config:set", "conf", "NOVALUE"][..],
            "error: no value for NOVALUE came on standard input: give it as 'config:set APP NOVALUE < FILE', or as NOVALUE=VALUE",
        ),
        (
            &["config:set", "conf", "--encoded", "A=not*base64"][..],
            "error: the value of A is not base64: with --encoded, give each value as `base64 -w0` prints it",
        ),
        (
            // The bytes ff fe.
            &["config:set", "conf", "--encoded", "A=//4="][..],
            "error: the value of A is not UTF-8 text once decoded: a config var holds text",
        ),
        (
            // "a", NUL, "b".
            &["config:set", "conf", "--encoded", "A=YQBi"][..],
            "error: config var A holds a NUL byte, which no environment variable can: leave it out",
        ),
        (
            &["config:unset", "conf", "A-B"][..],
            "error: invalid config var name \"A-B\": use letters, digits and _, not starting with a digit, at most 128 characters",
        ),
        (
            &["config:get", "conf", "MISSING"][..],
            "error: conf has no config var MISSING: 'config conf' lists them",
        ),
        (
            &["config:set", "conf"][..],
            "error: config:set needs KEY=VALUE: usage: config:set APP [--encoded] [--no-deploy] KEY=VALUE...",
        ),
        (
            &["rollback", "conf", "x1"][..],
            "error: invalid release \"x1\": name one as vN, as 'releases' lists them",
        ),
        (
            &["config"][..],
            "error: config needs the app it acts on: usage: config APP [--json]",
        ),
        (
            &["releases", "conf"][..],
            "error: conf has no releases here: codebuilder does not deploy (CODEBUILDER_DEPLOY=none)",
        ),
    ] {
        assert_eq!(refused(&owner.ssh(args, b"")), line, "{args:?}");
    }
    let no_access = |app: &str| {
        format!("error: app {app} does not exist or key stranger has no access to it: ask its owner or an admin to run 'access:add {app} stranger'")
    };
    assert_eq!(
        refused(&stranger.ssh(&["config:set", "conf", "A=1"], b"")),
        no_access("conf")
    );
    assert_eq!(
        refused(&stranger.ssh(&["config", "missing"], b"")),
        no_access("missing")
    );
    // Nothing refused was stored.
    assert_eq!(said(&owner.ssh(&["config", "conf"], b"")), "A=x=y\n");
}

#[test]
fn config_vars_marked_as_build_args_reach_a_dockerfile_build() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let dev = server.add_user("dev", false);
    let work = repo_with(
        "main",
        &[
            (
                "Dockerfile",
                // Unique, so that no earlier run's cached step hides the echo.
                format!("FROM scratch\nCOPY busybox /bin/busybox\nARG GREETING=none\nARG SECRET=unset\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo \\\"greeting=$GREETING secret=$SECRET\\\"; : {}\"]\n", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()).into_bytes(),
            ),
            (
                "busybox",
                std::fs::read("/bin/busybox").expect("busybox-static is not installed"),
            ),
        ],
    );
    let out = dev.git(work.path(), &["push", &dev.url("args"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(" greeting=none secret=unset"),
        "{}",
        text(&out.stderr)
    );

    // Only the vars CODEBUILDER_BUILD_ARGS names are build args.
    said(&dev.ssh(
        &[
            "config:set",
            "args",
            "GREETING=hello,world",
            "SECRET=s3",
            "CODEBUILDER_BUILD_ARGS=GREETING",
        ],
        b"",
    ));
    write_files(work.path(), &[("README", b"again\n")]);
    commit_all(work.path(), "again");
    let out = dev.git(work.path(), &["push", &dev.url("args"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(" greeting=hello,world secret=unset"),
        "{}",
        text(&out.stderr)
    );

    // A name that is not set refuses the push before docker runs.
    said(&dev.ssh(
        &[
            "config:set",
            "args",
            "CODEBUILDER_BUILD_ARGS=GREETING,MISSING",
        ],
        b"",
    ));
    write_files(work.path(), &[("README", b"third\n")]);
    commit_all(work.path(), "third");
    let out = dev.git(work.path(), &["push", &dev.url("args"), "main"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("remote: error: CODEBUILDER_BUILD_ARGS names MISSING, which is not set: set it with config:set, or remove it from CODEBUILDER_BUILD_ARGS"),
        "{stderr}"
    );
}
