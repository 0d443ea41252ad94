//! `apps`, `apps:info`, `apps:destroy`, `builds:log` and `rebuild` over a real sshd: each key
//! sees the apps it may reach, and a destroyed app leaves nothing behind.

use std::process::{Command, Output};

use codebuilder_tests::*;

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
