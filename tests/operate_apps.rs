//! `apps`, `apps:info`, `apps:destroy`, `builds:log` and `rebuild` over a real sshd: each key
//! sees the apps it may reach, and an app that ends (destroyed, emptied of refs, or never
//! stored by its first push) leaves nothing behind for the next key that takes its name.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use codebuilder_tests::*;
use nix::fcntl::{Flock, FlockArg};

/// Creates `app` owned by `client` with a branch that does not deploy: no build.
fn create(client: &Client, app: &str) {
    let work = repo_with("feature", &[("README", b"hello\n".to_vec())]);
    let out = client.git(work.path(), &["push", &client.url(app), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn names(listing: &str) -> Vec<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(listing).unwrap();
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(name: &str, role: &str) -> (String, String) {
    (name.to_owned(), role.to_owned())
}

#[test]
fn apps_lists_what_each_key_may_reach_and_info_tells_about_one() {
    let server = Server::start_with(&[("CODEBUILDER_DEPLOY", "none")]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let carol = server.add_user("carol", false);
    let admin = server.add_user("root", true);
    create(&alice, "shop");
    create(&alice, "blog");
    create(&bob, "wiki");
    said(&alice.ssh(&["access:add", "shop", "bob", "--read"], b""));

    let listed = |client: &Client| names(&said(&client.ssh(&["apps", "--json"], b"")));
    assert_eq!(
        listed(&alice),
        [pair("blog", "owner"), pair("shop", "owner")]
    );
    assert_eq!(listed(&bob), [pair("shop", "read"), pair("wiki", "owner")]);
    assert!(listed(&carol).is_empty());
    assert_eq!(
        listed(&admin),
        [
            pair("blog", "admin"),
            pair("shop", "admin"),
            pair("wiki", "admin")
        ]
    );
    assert_eq!(
        said(&bob.ssh(&["apps"], b"")),
        "shop                            read   owner alice\nwiki                            owner  owner bob\n"
    );
    assert_eq!(
        said(&carol.ssh(&["apps"], b"")),
        "no apps yet: push to ssh://git@HOST/APP to create one\n"
    );
    assert_eq!(
        refused(&carol.ssh(&["apps", "shop"], b"")),
        "error: apps does not take shop: usage: apps [--json]"
    );

    assert_eq!(
        said(&bob.ssh(&["apps:info", "shop"], b"")),
        "=== shop\nOwner:         alice\nYour role:     read\nDeploy branch: main (not pushed yet)\nLast build:    none yet\nImage:         none\nRelease:       not deployed (CODEBUILDER_DEPLOY=none)\nNamespace:     shop\n"
    );
    let info: serde_json::Value =
        serde_json::from_str(&said(&admin.ssh(&["apps:info", "shop", "--json"], b""))).unwrap();
    assert_eq!(info["owner"], "alice");
    assert_eq!(info["role"], "admin");
    assert_eq!(info["deploy_branch"], "main");
    assert!(info["head"].is_null());
    assert_eq!(
        refused(&carol.ssh(&["apps:info", "shop"], b"")),
        "error: app shop does not exist or key carol has no access to it: ask its owner or an admin to run 'access:add shop carol'"
    );
    assert_eq!(
        refused(&alice.ssh(&["apps:info"], b"")),
        "error: apps:info needs the app it acts on: usage: apps:info APP [--json]"
    );
    assert_eq!(
        refused(&alice.ssh(&["builds:log", "shop"], b"")),
        "error: shop has no builds yet: push to its deploy branch"
    );
    assert_eq!(
        refused(&alice.ssh(&["builds:log", "shop", "x1"], b"")),
        "error: x1 is not a build number: 'builds shop' lists them"
    );
    assert_eq!(
        refused(&alice.ssh(&["rebuild", "shop"], b"")),
        "error: app shop has no main branch to rebuild: push it first, or name a revision"
    );
    assert_eq!(
        refused(&bob.ssh(&["rebuild", "shop", "feature"], b"")),
        "error: key bob has read access to shop only, and rebuild needs push access: ask its owner or an admin to run 'access:add shop bob'"
    );
    assert_eq!(
        refused(&alice.ssh(&["rebuild", "shop", "a", "b"], b"")),
        "error: rebuild does not take b: usage: rebuild APP [REVISION]"
    );
    assert_eq!(
        refused(&alice.ssh(&["rebuild", "shop", "nosuch"], b"")),
        "error: nosuch is not a commit of shop: name a commit, branch or tag that was pushed to it"
    );

    // Destroy: owners and admins, with the app's name twice.
    said(&alice.ssh(&["access:add", "shop", "bob"], b""));
    assert_eq!(
        refused(&bob.ssh(&["apps:destroy", "shop", "--confirm", "shop"], b"")),
        "error: key bob cannot manage shop: only its owner or an admin can destroy it"
    );
    let confirm = "error: apps:destroy removes shop, its repository, builds, images and deployment for good: to confirm, run 'apps:destroy shop --confirm shop'";
    assert_eq!(refused(&alice.ssh(&["apps:destroy", "shop"], b"")), confirm);
    assert_eq!(
        refused(&alice.ssh(&["apps:destroy", "shop", "--confirm", "blog"], b"")),
        confirm
    );
    assert_eq!(
        refused(&alice.ssh(&["apps:destroy", "shop", "--confirm"], b"")),
        "error: --confirm needs a value: usage: apps:destroy APP --confirm APP"
    );
    assert!(server.repo("shop").is_dir());
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

#[test]
fn builds_log_rebuild_and_destroy_without_a_cluster() {
    require_docker();
    let registry = Registry::start();
    let address = registry.address();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let work = repo_with("main", &app_files("echo compiling-gone"));
    let sha = head(work.path());
    let out = alice.git(work.path(), &["push", &alice.url("gone"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tag = format!("git-{}", short(&sha));
    assert_eq!(registry.tags("gone"), [tag.as_str()]);

    let log = said(&alice.ssh(&["builds:log", "gone"], b""));
    assert!(log.contains("compiling-gone"), "{log}");
    assert_eq!(said(&alice.ssh(&["builds:log", "gone", "1"], b"")), log);
    assert_eq!(
        refused(&alice.ssh(&["builds:log", "gone", "2"], b"")),
        "error: gone has no build 2: 'builds gone' lists them"
    );

    // rebuild: the push's output, and a record of who.
    let out = alice.ssh(&["rebuild", "gone"], b"");
    let output = said(&out);
    assert!(output.contains("compiling-gone"), "{output}");
    let records = builds(&server, "gone");
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["rev"], sha.as_str());
    assert_eq!(records[1]["pusher"], "rebuild by alice");
    assert_eq!(records[1]["result"], "succeeded");
    let info: serde_json::Value =
        serde_json::from_str(&said(&alice.ssh(&["apps:info", "gone", "--json"], b""))).unwrap();
    assert_eq!(info["head"], sha.as_str());
    assert_eq!(info["last_build"]["number"], 2);
    assert_eq!(info["image"], format!("{address}/gone:{tag}"));

    // The cache a buildpack build would have kept.
    let volume = server.cache_volume("gone");
    assert!(docker(&["volume", "create", &volume]).status.success());
    let image = format!("{address}/gone:{tag}");
    assert!(docker(&["image", "inspect", &image]).status.success());

    // Its config vars.
    said(&alice.ssh(&["config:set", "gone", "SECRET=s3cret", "--no-deploy"], b""));
    let config = server.home.path().join("apps/config/gone.json");
    assert!(config.exists());

    let output = said(&alice.ssh(&["apps:destroy", "gone", "--confirm", "gone"], b""));
    assert_eq!(
        output,
        "-----> Removing the images of gone\n-----> Removing the build cache of gone\n-----> Removing the builds and the repository of gone\n-----> Destroyed gone\n"
    );
    assert!(registry.tags("gone").is_empty());
    assert!(registry.digest("gone", &tag).is_none());
    assert!(!docker(&["image", "inspect", &image]).status.success());
    assert!(!docker(&["volume", "inspect", &volume]).status.success());
    assert!(!server.repo("gone").exists());
    assert!(!server.home.path().join("builds/gone").exists());
    assert!(!server.home.path().join("apps/gone.json").exists());
    assert!(!config.exists());
    assert!(names(&said(&alice.ssh(&["apps", "--json"], b""))).is_empty());
    assert_eq!(
        refused(&alice.ssh(&["apps:destroy", "gone", "--confirm", "gone"], b"")),
        "error: app gone does not exist or key alice has no access to it: ask its owner or an admin to run 'access:add gone alice'"
    );
    // The name is free again.
    let out = alice.git(work.path(), &["push", &alice.url("gone"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn apps_destroy_removes_the_release_and_the_namespace_codebuilder_made_only() {
    use codebuilder_tests::cluster::{
        app_name, cluster, deploying_server, push, web_app_files, HostPort, ACCOUNT,
    };
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("destroyed");
    let work = repo_with("main", &web_app_files("destroy me"));
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    assert_eq!(cluster.release(&app)["info"]["status"], "deployed");
    let info: serde_json::Value =
        serde_json::from_str(&said(&dev.ssh(&["apps:info", &app, "--json"], b""))).unwrap();
    assert_eq!(info["release"]["revision"], 1);
    assert_eq!(info["release"]["status"], "deployed");

    let output = said(&dev.ssh(&["apps:destroy", &app, "--confirm", &app], b""));
    assert_eq!(
        output,
        format!("-----> Uninstalling the helm release {app}\n-----> Removing the namespace {app}\n-----> Removing the images of {app}\n-----> Removing the build cache of {app}\n-----> Removing the builds and the repository of {app}\n-----> Destroyed {app}\n")
    );
    let helm = cluster.helm(&["status", &app, "-n", &app]);
    assert!(!helm.status.success());
    let namespace = cluster.kubectl(&["get", "namespace", &app]);
    assert!(
        text(&namespace.stderr).contains("NotFound"),
        "{}",
        text(&namespace.stdout)
    );
    assert!(!server.repo(&app).exists());

    // A namespace of the app's name that codebuilder did not make stays.
    let foreign = app_name("foreign");
    create(&dev, &foreign);
    cluster.kubectl_ok(&["create", "namespace", &foreign]);
    let output = said(&dev.ssh(&["apps:destroy", &foreign, "--confirm", &foreign], b""));
    assert!(
        output.starts_with(&format!(
            "-----> Leaving the namespace {foreign} alone: codebuilder did not make it\n"
        )),
        "{output}"
    );
    cluster.kubectl_ok(&["get", "namespace", &foreign]);
    assert!(!server.repo(&foreign).exists());
    cluster.remove_app(&foreign);
}

/// The line a key gets for an app it has no access to, or that does not exist.
fn no_access(app: &str, key: &str) -> String {
    format!("error: app {app} does not exist or key {key} has no access to it: ask its owner or an admin to run 'access:add {app} {key}'")
}

/// Reads `reader` until a line has `needle`; returns what was read.
fn read_until(reader: &mut impl BufRead, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            panic!("ended before {needle:?}:\n{seen}");
        }
        seen.push_str(&String::from_utf8_lossy(&line));
    }
    seen
}

/// Holds the build lock of `app`, which a push has made, as a running build does.
fn hold_builds(server: &Server, app: &str) -> Flock<File> {
    let locks = server.home.path().join("locks");
    assert!(locks.is_dir(), "no push to {app} yet");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join(format!("{app}.lock")))
        .unwrap();
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .unwrap()
}

/// Waits until a process waits for the lock `path` shared, as a push waits to get into an
/// app's repository (`/proc/locks` lists the waiters).
fn wait_for_shared_waiter(path: &Path) {
    let inode = format!(":{}", fs::metadata(path).unwrap().ino());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        let waits = locks.lines().any(|line| {
            line.contains("->")
                && line.contains(" READ ")
                && line.split_whitespace().any(|f| f.ends_with(&inode))
        });
        if waits {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no push waits for {}:\n{locks}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `ps:scale APP web=3` stores (there is no cluster here to scale on), as the ssh user.
fn scaled(server: &Server, app: &str) -> std::path::PathBuf {
    let apps = server.home.path().join("apps");
    let owner = fs::metadata(&apps).unwrap();
    let dir = apps.join("formation");
    let path = dir.join(format!("{app}.json"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(&path, "{\"web\":3}").unwrap();
    for made in [&dir, &path] {
        nix::unistd::chown(
            made,
            Some(nix::unistd::Uid::from_raw(owner.uid())),
            Some(nix::unistd::Gid::from_raw(owner.gid())),
        )
        .unwrap();
    }
    path
}

/// What a key that takes a free name sees of it: nothing of an earlier app of that name.
fn assert_nothing_of_the_past(server: &Server, registry: &Registry, key: &Client, app: &str) {
    assert_eq!(
        said(&key.ssh(&["config", app], b"")),
        format!("{app} has no config vars\n")
    );
    assert_eq!(
        said(&key.ssh(&["builds", app], b"")),
        format!("no builds of {app} yet\n")
    );
    assert_eq!(
        refused(&key.ssh(&["builds:log", app], b"")),
        format!("error: {app} has no builds yet: push to its deploy branch")
    );
    assert!(registry.tags(app).is_empty());
    let volume = server.cache_volume(app);
    assert!(!docker(&["volume", "inspect", &volume]).status.success());
    let formation = server
        .home
        .path()
        .join(format!("apps/formation/{app}.json"));
    assert!(!formation.exists());
    assert!(!server.home.path().join("freed").join(app).exists());
}

/// An app that ended leaves nothing in the home but what its pushers may still read.
fn assert_ended(server: &Server, app: &str) {
    let home = server.home.path();
    assert!(!server.repo(app).exists());
    assert!(!home.join(format!("apps/{app}.json")).exists());
    assert!(!home.join(format!("apps/config/{app}.json")).exists());
    assert!(!home.join(format!("apps/formation/{app}.json")).exists());
    assert!(!home.join("builds").join(app).exists());
}

#[test]
fn a_failed_first_push_frees_its_name_and_only_its_pusher_reads_its_build() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    // The build waits at a port of ours, then fails.
    let gate = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = gate.local_addr().unwrap().port();
    drop(gate);
    let marker = format!("first{}", std::process::id());
    let work = repo_with(
        "main",
        &app_files(&format!(
            "echo st''arted-{marker}; until nc 127.0.0.1 {port} </dev/null 2>/dev/null; do sleep 0.2; done; echo alice-build-output; exit 7"
        )),
    );
    let (mut push, mut rest, _) = alice.push_until_started(work.path(), "first", &marker);
    // Meanwhile alice sets a config var, and the app has a scale and a build cache.
    let formation = scaled(&server, "first");
    let volume = server.cache_volume("first");
    assert!(docker(&["volume", "create", &volume]).status.success());
    let mut config = alice.spawn_ssh(&[
        "config:set",
        "first",
        "DATABASE_URL=alice-secret",
        "--no-deploy",
    ]);
    let mut config_out = BufReader::new(config.stdout.take().unwrap());
    read_until(&mut config_out, "Waiting for the build of first");
    let gate = TcpListener::bind(("127.0.0.1", port)).unwrap();
    drop(gate.accept().unwrap());
    let mut seen = String::new();
    rest.read_to_string(&mut seen).unwrap();
    assert!(!push.wait().unwrap().success(), "{seen}");
    assert!(seen.contains("alice-build-output"), "{seen}");
    // The config var was stored before the end, or refused after it: either way it is gone.
    let _ = config.wait().unwrap();
    assert!(!formation.exists());
    assert!(!docker(&["volume", "inspect", &volume]).status.success());
    assert_ended(&server, "first");

    // Alice reads her failed build; no one else does.
    let listed = said(&alice.ssh(&["builds", "first"], b""));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(" failed "), "{listed}");
    assert!(listed.trim_end().ends_with("alice"), "{listed}");
    let log = said(&alice.ssh(&["builds:log", "first"], b""));
    assert!(log.contains("alice-build-output"), "{log}");
    assert_eq!(said(&alice.ssh(&["builds:log", "first", "1"], b"")), log);
    for command in ["builds", "builds:log", "config", "apps:info"] {
        assert_eq!(
            refused(&bob.ssh(&[command, "first"], b"")),
            no_access("first", "bob"),
            "{command}"
        );
    }
    assert_eq!(
        refused(&alice.ssh(&["config", "first"], b"")),
        no_access("first", "alice")
    );

    // Bob takes the name: nothing of alice's app, and alice no longer reads her build.
    let other = repo_with("feature", &[("README", b"bob's\n".to_vec())]);
    let out = bob.git(other.path(), &["push", &bob.url("first"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_nothing_of_the_past(&server, &registry, &bob, "first");
    assert_eq!(
        refused(&alice.ssh(&["builds:log", "first"], b"")),
        no_access("first", "alice")
    );
}

#[test]
fn an_app_whose_last_branch_is_deleted_leaves_nothing_to_the_next_key() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let work = repo_with("feature", &app_files("echo built-by-alice"));
    let sha = head(work.path());
    let out = alice.git(work.path(), &["push", &alice.url("second"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    said(&alice.ssh(&["rebuild", "second", "feature"], b""));
    let tag = format!("git-{}", short(&sha));
    assert_eq!(registry.tags("second"), [tag.as_str()]);
    let image = format!("{}/second:{tag}", registry.address());
    assert!(docker(&["image", "inspect", &image]).status.success());
    said(&alice.ssh(
        &[
            "config:set",
            "second",
            "DATABASE_URL=alice-secret",
            "--no-deploy",
        ],
        b"",
    ));
    scaled(&server, "second");
    let volume = server.cache_volume("second");
    assert!(docker(&["volume", "create", &volume]).status.success());

    let out = alice.git(work.path(), &["push", &alice.url("second"), ":feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ended(&server, "second");
    assert!(registry.tags("second").is_empty());
    assert!(!docker(&["image", "inspect", &image]).status.success());
    assert!(!docker(&["volume", "inspect", &volume]).status.success());
    // Her rebuild is hers to read while the name is free.
    let listed = said(&alice.ssh(&["builds", "second"], b""));
    assert!(listed.contains("rebuild by alice"), "{listed}");
    let log = said(&alice.ssh(&["builds:log", "second"], b""));
    assert!(log.contains("built-by-alice"), "{log}");
    assert_eq!(
        refused(&bob.ssh(&["builds:log", "second"], b"")),
        no_access("second", "bob")
    );

    let other = repo_with("feature", &[("README", b"bob's\n".to_vec())]);
    let out = bob.git(other.path(), &["push", &bob.url("second"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_nothing_of_the_past(&server, &registry, &bob, "second");
    assert_eq!(
        refused(&alice.ssh(&["builds", "second"], b"")),
        no_access("second", "alice")
    );
}

#[test]
fn a_destroyed_app_leaves_nothing_to_the_next_key() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let work = repo_with("main", &app_files("echo built-by-alice"));
    let out = alice.git(work.path(), &["push", &alice.url("third"), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    said(&alice.ssh(
        &[
            "config:set",
            "third",
            "DATABASE_URL=alice-secret",
            "--no-deploy",
        ],
        b"",
    ));
    scaled(&server, "third");
    let volume = server.cache_volume("third");
    assert!(docker(&["volume", "create", &volume]).status.success());

    said(&alice.ssh(&["apps:destroy", "third", "--confirm", "third"], b""));
    assert_ended(&server, "third");
    // Destroyed: not even its builds are kept.
    assert_eq!(
        refused(&alice.ssh(&["builds", "third"], b"")),
        no_access("third", "alice")
    );

    let other = repo_with("feature", &[("README", b"bob's\n".to_vec())]);
    let out = bob.git(other.path(), &["push", &bob.url("third"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_nothing_of_the_past(&server, &registry, &bob, "third");
}

#[test]
fn destroy_racing_a_push_leaves_the_app_destroyed_or_owned_by_the_pusher() {
    require_docker();
    let registry = Registry::start();
    let server = server_for(&registry, "none", &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let work = repo_with("feature", &[("README", b"alice's\n".to_vec())]);
    let out = alice.git(work.path(), &["push", &alice.url("race"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    said(&alice.ssh(&["access:add", "race", "bob"], b""));

    // The destroy holds the app and waits for a build of it; bob's push, let in before the
    // destroy ends, waits to get into the app's repository.
    let build = hold_builds(&server, "race");
    let mut destroy = alice.spawn_ssh(&["apps:destroy", "race", "--confirm", "race"]);
    let mut destroyed = BufReader::new(destroy.stdout.take().unwrap());
    let mut said_so = read_until(&mut destroyed, "Waiting for the build of race");
    let theirs = repo_with("feature2", &[("README", b"bob's\n".to_vec())]);
    let push = bob
        .git_command(theirs.path(), &["push", &bob.url("race"), "feature2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_shared_waiter(&server.home.path().join("locks/race.repo"));
    drop(build);
    destroyed.read_to_string(&mut said_so).unwrap();
    assert!(destroy.wait().unwrap().success(), "{said_so}");
    assert!(said_so.ends_with("-----> Destroyed race\n"), "{said_so}");
    let out = push.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Bob's push made a new app of the free name: his, with nothing of alice's.
    let access = said(&bob.ssh(&["access", "race"], b""));
    assert!(access.starts_with("owner  bob  SHA256:"), "{access}");
    assert_eq!(access.lines().count(), 1, "{access}");
    assert_eq!(server.server_ref("race", "refs/heads/feature"), None);
    assert_eq!(
        server.server_ref("race", "refs/heads/feature2"),
        Some(head(theirs.path()))
    );
    assert_eq!(
        refused(&alice.ssh(&["access", "race"], b"")),
        no_access("race", "alice")
    );

    // A destroy while a push is in the app is refused; the push goes on.
    let build = hold_builds(&server, "race");
    let deploy = repo_with("main", &app_files("echo bob-deploys"));
    let mut push = bob
        .git_command(deploy.path(), &["push", &bob.url("race"), "main"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pushing = BufReader::new(push.stderr.take().unwrap());
    let mut seen = read_until(&mut pushing, "Waiting for the build of race");
    assert_eq!(
        refused(&bob.ssh(&["apps:destroy", "race", "--confirm", "race"], b"")),
        "error: a push to race is in progress: run 'apps:destroy race --confirm race' again when it has ended"
    );
    drop(build);
    pushing.read_to_string(&mut seen).unwrap();
    assert!(push.wait().unwrap().success(), "{seen}");
    assert_eq!(
        server.server_ref("race", "refs/heads/main"),
        Some(head(deploy.path()))
    );
    assert!(said(&bob.ssh(&["access", "race"], b"")).starts_with("owner  bob  SHA256:"));
}

/// The tags of `app` in the registry at `address` (`127.0.0.1:PORT`); none when it has none.
fn tags_at(address: &str, app: &str) -> Vec<String> {
    let port = address.rsplit(':').next().unwrap().parse().unwrap();
    let body = http_get(port, &format!("/v2/{app}/tags/list")).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    value["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

#[test]
fn a_name_freed_on_the_cluster_carries_nothing_to_the_next_key() {
    use codebuilder_tests::cluster::{
        app_name, cluster, deploying_server, push, web_app_files, HostPort, ACCOUNT, ROLLOUT,
    };
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let carol = server.add_user("carol", false);
    let app = app_name("freed");
    let gone = |app: &str| {
        let namespace = cluster.kubectl(&["get", "namespace", app]);
        assert!(
            text(&namespace.stderr).contains("NotFound"),
            "{}",
            text(&namespace.stdout)
        );
        assert!(!cluster.helm(&["status", app, "-n", app]).status.success());
        assert!(tags_at(&cluster.registry, app).is_empty());
    };

    // Alice's first push deploys an image that cannot run: the push fails, and the app ends
    // with its namespace, release and image.
    let mut crashing = web_app_files("never served\n");
    crashing[0].1 = b"FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo 'boom: alice was here'; exit 3\"]\n".to_vec();
    let work = repo_with("main", &crashing);
    let (ok, stderr) = push(&alice, work.path(), &app);
    assert!(!ok, "{stderr}");
    gone(&app);
    assert_ended(&server, &app);
    let log = said(&alice.ssh(&["builds:log", &app], b""));
    assert!(log.contains("boom: alice was here"), "{log}");
    assert_eq!(
        refused(&bob.ssh(&["builds:log", &app], b"")),
        no_access(&app, "bob")
    );

    // Bob takes the name: release 1 of his own, and he scales it down.
    let work = repo_with("main", &web_app_files("bob's\n"));
    let (ok, stderr) = push(&bob, work.path(), &app);
    assert!(ok, "{stderr}");
    assert_eq!(cluster.release(&app)["version"], 1);
    let listed = said(&bob.ssh(&["builds", &app], b""));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.trim_end().ends_with("bob"), "{listed}");
    assert_eq!(
        refused(&alice.ssh(&["builds:log", &app], b"")),
        no_access(&app, "alice")
    );
    said(&bob.ssh(&["ps:scale", &app, "web=0"], b""));
    said(&bob.ssh(&["config:set", &app, "GREETING=bob", "--no-deploy"], b""));
    said(&bob.ssh(&["apps:destroy", &app, "--confirm", &app], b""));
    gone(&app);
    assert_ended(&server, &app);

    // Carol takes it: one pod serves her app, as for any new app, with no config of bob's.
    let work = repo_with("main", &web_app_files("carol's\n"));
    let (ok, stderr) = push(&carol, work.path(), &app);
    assert!(ok, "{stderr}");
    assert_eq!(host.served(ROLLOUT), "carol's\n");
    assert_eq!(
        said(&carol.ssh(&["ps", &app], b"")).lines().next(),
        Some("=== web: 1 desired, 1 ready")
    );
    assert_eq!(
        said(&carol.ssh(&["config", &app], b"")),
        format!("{app} has no config vars\n")
    );
    cluster.remove_app(&app);
}
