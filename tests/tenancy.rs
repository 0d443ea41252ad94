//! Tenancy through a real sshd and real git: a key reaches only the apps its owner or an
//! admin let it reach, and a refusal says nothing about whether the app exists.

use std::fs;
use std::process::Command;

use codebuilder_tests::*;

/// The line a key without access gets, whether or not the app exists.
fn no_access(app: &str, key: &str) -> String {
    format!("error: app {app} does not exist or key {key} has no access to it: ask its owner or an admin to run 'access:add {app} {key}'")
}

fn not_manager(app: &str, key: &str) -> String {
    format!("error: key {key} cannot manage {app}: only its owner or an admin can change who has access to it")
}

/// The first line of stderr: the session's own line, before git's "fatal: Could not read".
fn first_line(stderr: &[u8]) -> String {
    text(stderr).lines().next().unwrap_or("").to_owned()
}

/// The session's line, and that it failed: the first of stderr, where git may add its own
/// after it (the harness's `refused` wants one line only).
fn refusal_line(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "not refused: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    first_line(&out.stderr)
}

/// The only line on stdout of a command that succeeded, without its newline (the harness's
/// `said` is all of stdout, as printed).
fn said_line(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim_end().to_owned()
}

fn fingerprint(server: &Server, name: &str) -> String {
    server
        .listed_keys()
        .iter()
        .find(|k| k["name"] == name && k["skipped"].is_null())
        .unwrap_or_else(|| panic!("no key {name}"))["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn clone(client: &Client, app: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let out = client.git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "feature",
            &client.url(app),
            dir.path().join("c").to_str().unwrap(),
        ],
    );
    (dir, out)
}

fn no_deploy() -> Server {
    Server::start_with(&[("CODEBUILDER_DEPLOY", "none")])
}

#[test]
fn strangers_get_the_same_line_as_for_a_missing_app_and_change_nothing() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let work = repo_with("main", &app_files("echo built"));
    let sha = head(work.path());
    let out = alice.git(
        work.path(),
        &["push", &alice.url("shop"), "main", "main:feature"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tags = registry.tags("shop");
    assert_eq!(tags, [format!("git-{}", short(&sha))]);
    // The build names the key that pushed, by name and fingerprint.
    let records = builds(&server, "shop");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["pusher"], "alice");
    assert_eq!(
        records[0]["pusher_fingerprint"],
        fingerprint(&server, "alice")
    );

    let (_dir, out) = clone(&bob, "shop");
    assert_eq!(refusal_line(&out), no_access("shop", "bob"));
    let (_dir, out) = clone(&bob, "ghost");
    assert_eq!(refusal_line(&out), no_access("ghost", "bob"));

    let other = repo_with("main", &app_files("echo bob was here"));
    for (app, args) in [
        ("shop", vec!["push", "main"]),
        ("shop", vec!["push", "--force", "main"]),
        ("shop", vec!["push", ":feature"]),
        ("shop", vec!["push", "main:refs/tags/v1"]),
    ] {
        let url = bob.url(app);
        let mut args = args;
        args.insert(1, &url);
        let out = bob.git(other.path(), &args);
        assert_eq!(refusal_line(&out), no_access(app, "bob"), "{args:?}");
    }
    for command in [
        "builds:cache:purge shop",
        "builds:cache:purge ghost",
        "access shop",
        "access ghost",
    ] {
        let app = command.rsplit(' ').next().unwrap();
        let out = bob.ssh(&[command], b"");
        assert_eq!(refusal_line(&out), no_access(app, "bob"), "{command}");
        assert!(out.stdout.is_empty());
    }
    let out = bob.ssh(&["access:add shop bob"], b"");
    assert_eq!(refusal_line(&out), no_access("shop", "bob"));

    assert_eq!(
        server.server_ref("shop", "refs/heads/main"),
        Some(sha.clone())
    );
    assert_eq!(server.server_ref("shop", "refs/heads/feature"), Some(sha));
    assert_eq!(server.server_ref("shop", "refs/tags/v1"), None);
    assert_eq!(registry.tags("shop"), tags);
    assert!(registry.tags("ghost").is_empty());
    assert_eq!(builds(&server, "shop").len(), 1);
    assert!(!server.repo("ghost").exists());
    assert!(!server.home.path().join("apps/ghost.json").exists());
    assert!(!server.home.path().join("locks/ghost.repo").exists());
}

#[test]
fn read_access_clones_push_access_pushes_and_remove_takes_it_back() {
    let server = no_deploy();
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let _carol = server.add_user("carol", false);
    let work = make_repo("feature", &[("a", b"1")]);
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert_eq!(
        said_line(&alice.ssh(&["access:add", "shop", "bob", "--read"], b"")),
        "key bob can now clone shop"
    );
    let (dir, out) = clone(&bob, "shop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mine = dir.path().join("c");
    write_files(&mine, &[("b", b"2")]);
    commit_all(&mine, "bob's change");
    let out = bob.git(&mine, &["push", "origin", "feature"]);
    assert_eq!(
        refusal_line(&out),
        "error: key bob has read access to shop only, and git push needs push access: ask its owner or an admin to run 'access:add shop bob'"
    );
    assert_eq!(
        server.server_ref("shop", "refs/heads/feature"),
        Some(head(work.path()))
    );

    assert_eq!(
        said_line(&alice.ssh(&["access:add", "shop", "bob"], b"")),
        "key bob can now clone and push to shop"
    );
    let out = bob.git(&mine, &["push", "origin", "feature", "feature:other"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        server.server_ref("shop", "refs/heads/feature"),
        Some(head(&mine))
    );
    let out = bob.git(&mine, &["push", "origin", ":other"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.server_ref("shop", "refs/heads/other"), None);

    // A collaborator cannot grant, take away, list or give the app away.
    for command in [
        "access:add shop carol",
        "access:add shop carol --read",
        "access:remove shop alice",
        "apps:transfer shop bob",
        "access shop",
    ] {
        let out = bob.ssh(&[command], b"");
        assert_eq!(refusal_line(&out), not_manager("shop", "bob"), "{command}");
    }

    let bob_fp = fingerprint(&server, "bob");
    let alice_fp = fingerprint(&server, "alice");
    let listed = said_line(&alice.ssh(&["access", "shop"], b""));
    assert_eq!(
        listed,
        format!("owner  alice  {alice_fp}\npush   bob    {bob_fp}")
    );
    let json: serde_json::Value =
        serde_json::from_str(&said_line(&alice.ssh(&["access", "shop", "--json"], b""))).unwrap();
    assert_eq!(json["owner"]["name"], "alice");
    assert_eq!(json["access"][0]["name"], "bob");
    assert_eq!(json["access"][0]["access"], "push");

    assert_eq!(
        said_line(&alice.ssh(&["access:remove", "shop", "bob"], b"")),
        "key bob no longer has access to shop"
    );
    let out = bob.git(&mine, &["fetch", "origin"]);
    assert_eq!(refusal_line(&out), no_access("shop", "bob"));
    let out = alice.ssh(&["access:remove", "shop", "bob"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: key bob has no access to shop to remove: 'access shop' lists who has"
    );
    let out = alice.ssh(&["access:remove", "shop", "alice"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: key alice owns shop: to give the app away, use 'apps:transfer shop KEYNAME'"
    );
    let out = alice.ssh(&["access:add", "shop", "nobody"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: no key nobody is stored: 'codebuilder-keys list' shows the stored keys"
    );
}

#[test]
fn admins_do_everything_transfer_apps_and_give_old_apps_an_owner() {
    let server = no_deploy();
    let admin = server.add_user("boss", true);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let work = make_repo("feature", &[("a", b"1")]);
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (dir, out) = clone(&admin, "shop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let theirs = dir.path().join("c");
    write_files(&theirs, &[("fix", b"by the admin")]);
    commit_all(&theirs, "fix");
    let out = admin.git(&theirs, &["push", "--force", "origin", "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said_line(&admin.ssh(&["access", "shop"], b"")).starts_with("owner  alice  SHA256:"));
    assert_eq!(
        said_line(&admin.ssh(&["access:add", "shop", "bob", "--read"], b"")),
        "key bob can now clone shop"
    );
    let out = admin.ssh(&["access", "ghost"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: app ghost does not exist: push to it first"
    );

    assert_eq!(
        said_line(&admin.ssh(&["apps:transfer", "shop", "bob"], b"")),
        "shop now belongs to key bob; key alice keeps push access ('access:remove shop alice' takes it away)"
    );
    assert_eq!(
        said_line(&bob.ssh(&["access:remove", "shop", "alice"], b"")),
        "key alice no longer has access to shop"
    );
    let out = alice.ssh(&["access", "shop"], b"");
    assert_eq!(refusal_line(&out), no_access("shop", "alice"));

    // An app from before owners: admins only, until an admin gives it one.
    let out = alice.git(work.path(), &["push", &alice.url("old"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    fs::remove_file(server.home.path().join("apps/old.json")).unwrap();
    let (_dir, out) = clone(&alice, "old");
    assert_eq!(refusal_line(&out), no_access("old", "alice"));
    assert_eq!(
        said_line(&admin.ssh(&["access", "old"], b"")),
        "owner  -  none: only admins reach old until one runs 'apps:transfer old KEYNAME'"
    );
    let out = admin.ssh(&["access:add", "old", "bob"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: app old has no owner yet (it predates owners): give it one first with 'apps:transfer old KEYNAME'"
    );
    // The same commands for `kubectl exec`, on codebuilder-keys.
    assert_eq!(
        said_line(&server.keys(&["apps-transfer", "old", "alice"], b"")),
        "old now belongs to key alice"
    );
    let (_dir, out) = clone(&alice, "old");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        said_line(&server.keys(&["access-add", "old", "bob", "--read"], b"")),
        "key bob can now clone old"
    );
    assert_eq!(
        said_line(&server.keys(&["access-remove", "old", "bob"], b"")),
        "key bob no longer has access to old"
    );
    let listed = said_line(&server.keys(&["access", "old"], b""));
    assert_eq!(
        listed,
        format!("owner  alice  {}", fingerprint(&server, "alice"))
    );
}

#[test]
fn only_admins_create_apps_when_so_set() {
    let server = Server::start_with(&[
        ("CODEBUILDER_DEPLOY", "none"),
        ("CODEBUILDER_APP_CREATORS", "admins"),
    ]);
    let admin = server.add_user("boss", true);
    let bob = server.add_user("bob", false);
    let work = make_repo("feature", &[("a", b"1")]);
    let out = bob.git(work.path(), &["push", &bob.url("fresh"), "feature"]);
    assert_eq!(refusal_line(&out), no_access("fresh", "bob"));
    assert!(!server.repo("fresh").exists());
    assert!(!server.home.path().join("apps/fresh.json").exists());

    let out = admin.git(work.path(), &["push", &admin.url("fresh"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said_line(&admin.ssh(&["access", "fresh"], b"")).starts_with("owner  boss  SHA256:"));
    assert_eq!(
        said_line(&admin.ssh(&["access:add", "fresh", "bob"], b"")),
        "key bob can now clone and push to fresh"
    );
    let out = bob.git(work.path(), &["push", &bob.url("fresh"), "feature:second"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A key that may not create apps learns nothing of which names are taken: a taken name
    // and a free one get the same line, to a push, a clone and a command.
    let carol = server.add_user("carol", false);
    for app in ["fresh", "free"] {
        let out = carol.git(work.path(), &["push", &carol.url(app), "feature"]);
        assert_eq!(refusal_line(&out), no_access(app, "carol"));
        let target = tempfile::tempdir().unwrap();
        let out = carol.git(
            work.path(),
            &[
                "clone",
                "--quiet",
                &carol.url(app),
                target.path().to_str().unwrap(),
            ],
        );
        assert_eq!(refusal_line(&out), no_access(app, "carol"));
        let out = carol.ssh(&["builds", app], b"");
        assert_eq!(refusal_line(&out), no_access(app, "carol"));
    }
    assert!(!server.repo("free").exists());
}

#[test]
fn declared_access_is_merged_and_cannot_be_removed_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access");
    // A bad line is skipped, and said in codebuilder's log, never to a client. A declared
    // name is kept for the keys the file lets push: alice creates it.
    fs::write(&file, "shop alice push\nshop carol read\nshop dave admin\n").unwrap();
    let server = Server::start_with(&[
        ("CODEBUILDER_DEPLOY", "none"),
        ("CODEBUILDER_CONFIG_ACCESS", file.to_str().unwrap()),
    ]);
    let alice = server.add_user("alice", false);
    let carol = server.add_user("carol", false);
    let work = make_repo("feature", &[("a", b"1")]);
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_dir, out) = clone(&carol, "shop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = carol.git(work.path(), &["push", &carol.url("shop"), "feature:x"]);
    assert_eq!(
        refusal_line(&out),
        "error: key carol has read access to shop only, and git push needs push access: ask its owner or an admin to run 'access:add shop carol'"
    );
    let out = alice.ssh(&["access:remove", "shop", "carol"], b"");
    assert_eq!(
        refusal_line(&out),
        format!(
            "error: the access of key carol to shop is declared in {} (a ConfigMap or Secret): change it there",
            file.display()
        )
    );
    assert_eq!(
        said_line(&alice.ssh(&["access", "shop"], b""))
            .lines()
            .last()
            .unwrap(),
        format!("read   carol  declared in {}", file.display())
    );
    let out = alice.ssh(&["access", "shop"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let skipped = format!(
        "{}:3: skipped: unknown access \"admin\": use push or read",
        file.display()
    );
    let log = server.log_with(&skipped);
    let line = log.lines().find(|l| l.contains(&skipped)).unwrap();
    assert_eq!(line, format!(" WARN codebuilder_apps::declared: {skipped}"));
}

#[test]
fn a_declared_key_never_gets_a_taken_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    // Keys made before the server: their port is set once it runs.
    let (ops, mallory, dave, twin) = (
        Client::new(0),
        Client::new(0),
        Client::new(0),
        Client::new(0),
    );
    fs::write(
        &file,
        format!(
            "ops:admin {}dev {}dev:admin {}",
            mallory.public_key(),
            dave.public_key(),
            twin.public_key()
        ),
    )
    .unwrap();
    let server = Server::start_with(&[
        ("CODEBUILDER_DEPLOY", "none"),
        ("CODEBUILDER_CONFIG_KEYS", file.to_str().unwrap()),
    ]);
    let at_server = |client: Client| Client {
        dir: client.dir,
        port: server.port,
    };
    let (ops, mallory, dave, twin) = (
        at_server(ops),
        at_server(mallory),
        at_server(dave),
        at_server(twin),
    );
    let out = server.keys(&["add", "--admin", "ops"], ops.public_key().as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The declared ops is not the stored admin ops: it does not get in at all.
    for client in [&mallory, &twin] {
        let out = client.ssh(&["keys:list"], b"");
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = dave.ssh(&["keys:list"], b"");
    assert_eq!(
        refusal_line(&out),
        "error: key dev is not an admin key: only admins can manage keys (codebuilder-keys add --admin)"
    );

    let listed = said_line(&ops.ssh(&["keys:list"], b""));
    let skipped: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("skipped: "))
        .collect();
    let keys: serde_json::Value =
        serde_json::from_str(&said_line(&ops.ssh(&["keys:list", "--json"], b""))).unwrap();
    let keys = keys.as_array().unwrap();
    let skipped_fp = |name: &str| {
        keys.iter()
            .find(|k| k["name"] == name && !k["skipped"].is_null())
            .unwrap()["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        skipped,
        [
            format!(
                "skipped: declared key ops ({}) is not served: its name is taken by a stored key (in {})",
                skipped_fp("ops"),
                file.display()
            ),
            format!(
                "skipped: declared key dev ({}) is not served: its name is taken by an earlier declared key (in {})",
                skipped_fp("dev"),
                file.display()
            ),
        ]
    );
    // And a log line says so.
    let out = server.keys(&["--config-keys", file.to_str().unwrap(), "list"], b"");
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: skipped: declared key ops ({}) is not served: its name is taken by a stored key",
            file.display(),
            skipped_fp("ops")
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_forced_command_whose_fingerprint_is_not_the_names_is_refused() {
    let server = no_deploy();
    let alice = server.add_user("alice", false);
    let _bob = server.add_user("bob", false);
    let alice_fp = fingerprint(&server, "alice");
    let bob_fp = fingerprint(&server, "bob");
    // What sshd is told to run for alice's key.
    let key: Vec<String> = alice
        .public_key()
        .split_whitespace()
        .map(String::from)
        .collect();
    let out = server.keys(&["authorized-keys", "git", &key[0], &key[1]], b"");
    assert!(
        said_line(&out).contains(&format!("--user alice --fingerprint {alice_fp}\"")),
        "{}",
        text(&out.stdout)
    );

    let receive = |user: &str, fingerprint: &str, extra: &[(&str, &str)]| {
        let mut command = Command::new(bin_dir().join("codebuilder-receive"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("SSH_ORIGINAL_COMMAND", "git-upload-pack 'shop'")
            .args(["--home", server.home.path().to_str().unwrap()])
            .args(["--user", user, "--fingerprint", fingerprint]);
        for (k, v) in extra {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = receive("alice", &bob_fp, &[]);
    assert_eq!(
        refusal_line(&out),
        format!("error: key alice is no longer the key this session authenticated with ({bob_fp}): reconnect, or ask an admin to check 'keys:list'")
    );
    assert_eq!(text(&out.stderr).lines().count(), 1);
    let out = receive("alice", "SHA256:x", &[]);
    assert_eq!(
        refusal_line(&out),
        "error: \"SHA256:x\" is not a SHA256 fingerprint as 'ssh-keygen -lf' prints it"
    );
    let out = receive(
        "alice",
        &alice_fp,
        &[("CODEBUILDER_APP_CREATORS", "owners")],
    );
    assert_eq!(
        refusal_line(&out),
        "error: CODEBUILDER_APP_CREATORS=\"owners\" is not valid: all or admins"
    );
}

#[test]
fn a_force_push_stays_in_the_reflog() {
    let server = no_deploy();
    let alice = server.add_user("alice", false);
    let work = make_repo("feature", &[("a", b"1")]);
    let first = head(work.path());
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = |repo: &std::path::Path| {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["config", "--get", "core.logAllRefUpdates"])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_owned()
    };
    assert_eq!(config(&server.repo("shop")), "always");

    let unrelated = make_repo("feature", &[("b", b"2")]);
    let second = head(unrelated.path());
    let out = alice.git(
        unrelated.path(),
        &["push", "--force", &alice.url("shop"), "feature"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reflog = Command::new("git")
        .arg("--git-dir")
        .arg(server.repo("shop"))
        .args(["reflog", "show", "--format=%H", "refs/heads/feature"])
        .output()
        .unwrap();
    assert_eq!(text(&reflog.stdout), format!("{second}\n{first}\n"));

    // A repository made before keeps its reflog from the next push on.
    let unset = Command::new("git")
        .arg("--git-dir")
        .arg(server.repo("shop"))
        .args(["config", "--unset", "core.logAllRefUpdates"])
        .status()
        .unwrap();
    assert!(unset.success());
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature:again"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(config(&server.repo("shop")), "always");
}
