//! The one command table over a real sshd: every word a session sends is an argument of its
//! verb or refused with the verb's usage line, `help` prints the table, and each verb is
//! decided by the access the table gives it, for owner, collaborators, strangers and admins.

use std::fs;

use codebuilder_tests::*;

/// Every verb people type, with an app where it takes one, as `help` lists them.
fn verbs(client: &Client) -> Vec<(String, String)> {
    let out = client.ssh(&["help"], b"");
    let listing = said(&out);
    listing
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("      "))
        .map(|l| {
            let usage = l.trim().to_owned();
            (usage.split(' ').next().unwrap().to_owned(), usage)
        })
        .collect()
}

/// A server that does not deploy, and the app `shop` owned by alice, with bob reading it
/// and carol pushing to it; dave has no access, root is an admin.
struct Shop {
    server: Server,
    alice: Client,
    bob: Client,
    carol: Client,
    dave: Client,
    root: Client,
}

fn shop() -> Shop {
    let server = Server::start_with(&[("CODEBUILDER_DEPLOY", "none")]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let carol = server.add_user("carol", false);
    let dave = server.add_user("dave", false);
    let root = server.add_user("root", true);
    let work = repo_with("feature", &[("README", b"hello\n".to_vec())]);
    let out = alice.git(work.path(), &["push", &alice.url("shop"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    said(&alice.ssh(&["access:add", "shop", "bob", "--read"], b""));
    said(&alice.ssh(&["access:add", "shop", "carol"], b""));
    Shop {
        server,
        alice,
        bob,
        carol,
        dave,
        root,
    }
}

#[test]
fn no_word_of_a_session_reaches_an_option_parser_or_the_home() {
    let Shop { server, alice, .. } = shop();
    // A folder the session would like codebuilder to take as its home.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir_all(elsewhere.path().join("builds/shop")).unwrap();
    let home = elsewhere.path().to_str().unwrap().to_owned();
    let verbs = verbs(&alice);
    assert!(verbs.len() >= 25, "{verbs:?}");
    for (verb, usage) in &verbs {
        let app: &[&str] = if usage.contains(" APP") {
            &["shop"]
        } else {
            &[]
        };
        for words in [
            &["--home", home.as_str()][..],
            &[format!("--home={home}").as_str()][..],
            &["--help"][..],
            &["-h"][..],
            &["--version"][..],
            &["--bogus"][..],
            &["--"][..],
        ] {
            let mut command = vec![verb.as_str()];
            command.extend_from_slice(app);
            command.extend_from_slice(words);
            let out = alice.ssh(&command, b"");
            if verb == "run" && words == ["--"] {
                assert_eq!(
                    refused(&out),
                    "error: run needs a command: usage: run APP -- COMMAND [ARGS...]"
                );
                continue;
            }
            let line = refused(&out);
            assert_eq!(
                line,
                format!("error: {verb} does not take {}: usage: {usage}", words[0]),
                "{command:?}"
            );
            assert!(out.stdout.is_empty(), "{command:?}");
            // Nor is the server's own home shown to a session.
            let real_home = server.home.path().to_str().unwrap();
            assert!(!text(&out.stderr).contains(real_home), "{command:?}");
        }
    }
    // Nothing was made in the other folder, and the real home still has its app.
    assert_eq!(
        fs::read_dir(elsewhere.path().join("builds/shop"))
            .unwrap()
            .count(),
        0
    );
    assert!(server.repo("shop").is_dir());
}

#[test]
fn help_lists_the_table_and_help_verb_says_who_may_run_it() {
    let Shop { server, dave, .. } = shop();
    let listing = said(&dave.ssh(&["help"], b""));
    assert!(listing.starts_with(
        "Push to deploy: git push ssh://git@HOST/APP BRANCH. Then, as ssh git@HOST COMMAND:\n"
    ));
    assert!(
        listing.contains(
            "\n  config:set APP [--encoded] [--no-deploy] KEY=VALUE...\n      Set config vars"
        ),
        "{listing}"
    );
    assert!(!listing.contains("git-receive-pack"));
    // No path of the server's is shown to a session.
    assert!(!listing.contains(server.home.path().to_str().unwrap()));
    assert_eq!(
        said(&dave.ssh(&["help", "config:get"], b"")),
        "usage: config:get APP KEY\nPrint the value of one config var.\nWho may run it: push access to the app (its owner, push collaborators, admins).\n"
    );
    assert_eq!(
        refused(&dave.ssh(&["help", "shell"], b"")),
        "error: unknown command shell: 'help' lists the commands"
    );
    assert_eq!(
        refused(&dave.ssh(&["sh", "-c", "id"], b"")),
        "error: unknown command sh: 'help' lists the commands"
    );
    assert_eq!(
        refused(&dave.ssh(&["config:set", "shop"], b"")),
        "error: config:set needs KEY=VALUE: usage: config:set APP [--encoded] [--no-deploy] KEY=VALUE..."
    );
}

#[test]
fn each_verb_is_decided_by_the_access_its_row_needs() {
    let Shop {
        server,
        alice,
        bob,
        carol,
        dave,
        root,
    } = shop();
    let no_access = |key: &str| {
        format!("error: app shop does not exist or key {key} has no access to it: ask its owner or an admin to run 'access:add shop {key}'")
    };
    let read_only = |verb: &str| {
        format!("error: key bob has read access to shop only, and {verb} needs push access: ask its owner or an admin to run 'access:add shop bob'")
    };
    let not_manager = |key: &str, what: &str| {
        format!("error: key {key} cannot manage shop: only its owner or an admin can {what}")
    };
    let not_admin = |key: &str| {
        format!("error: key {key} is not an admin key: only admins can manage keys (codebuilder-keys add --admin)")
    };
    // One command of each verb that acts on shop, and what it needs.
    let read = [
        "apps:info shop",
        "builds shop",
        "builds:log shop",
        "config shop",
        "releases shop",
        "ps shop",
        "logs shop",
    ];
    let push = [
        "builds:cache:purge shop",
        "rebuild shop",
        "config:get shop A",
        "config:set shop --no-deploy A=1",
        "config:unset shop --no-deploy A",
        "rollback shop",
        "ps:scale shop web=1",
        "run shop -- true",
    ];
    let manage = [
        ("access shop", "change who has access to it"),
        ("access:add shop dave", "change who has access to it"),
        ("access:remove shop dave", "change who has access to it"),
        ("apps:transfer shop dave", "change who has access to it"),
        ("apps:destroy shop --confirm shop", "destroy it"),
    ];
    let admin = ["keys:list", "keys:remove dave", "keys:add eve"];
    let refusal = |client: &Client, command: &str| refused(&client.ssh(&[command], b""));
    // A command that gets past access fails, if at all, for what the app lacks.
    let passes = |client: &Client, command: &str| {
        let out = client.ssh(&[command], b"");
        let first = text(&out.stderr).lines().next().unwrap_or("").to_owned();
        assert!(
            !first.contains("access") && !first.contains("admin key"),
            "{command}: {first}"
        );
    };
    for command in read {
        assert_eq!(refusal(&dave, command), no_access("dave"), "{command}");
        passes(&bob, command);
        passes(&carol, command);
    }
    for command in push {
        assert_eq!(refusal(&dave, command), no_access("dave"), "{command}");
        let verb = command.split(' ').next().unwrap();
        assert_eq!(refusal(&bob, command), read_only(verb), "{command}");
        passes(&carol, command);
    }
    for (command, what) in manage {
        assert_eq!(refusal(&dave, command), no_access("dave"), "{command}");
        assert_eq!(
            refusal(&bob, command),
            not_manager("bob", what),
            "{command}"
        );
        assert_eq!(
            refusal(&carol, command),
            not_manager("carol", what),
            "{command}"
        );
    }
    for command in admin {
        for (client, key) in [(&alice, "alice"), (&bob, "bob"), (&dave, "dave")] {
            assert_eq!(refusal(client, command), not_admin(key), "{command}");
        }
    }
    passes(&root, "keys:list");
    passes(&alice, "access shop");
    // Nothing a refused key sent changed anything.
    assert!(server.repo("shop").is_dir());
    let listed = said(&alice.ssh(&["access", "shop"], b""));
    assert!(
        listed.contains("bob") && listed.contains("carol"),
        "{listed}"
    );
    assert!(!listed.contains("dave"), "{listed}");
}

#[test]
fn read_access_sees_config_names_not_values() {
    let Shop {
        server: _server,
        alice,
        bob,
        carol,
        ..
    } = shop();
    said(&carol.ssh(
        &[
            "config:set",
            "shop",
            "--no-deploy",
            "DATABASE_URL=postgres://s3cret",
            "PLAIN=1",
        ],
        b"",
    ));
    assert_eq!(
        said(&alice.ssh(&["config", "shop"], b"")),
        "DATABASE_URL=postgres://s3cret\nPLAIN=1\n"
    );
    let names = bob.ssh(&["config", "shop"], b"");
    assert_eq!(said(&names), "DATABASE_URL\nPLAIN\n");
    let json = said(&bob.ssh(&["config", "shop", "--json"], b""));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!(["DATABASE_URL", "PLAIN"])
    );
    let out = bob.ssh(&["config:get", "shop", "DATABASE_URL"], b"");
    assert_eq!(
        refused(&out),
        "error: key bob has read access to shop only, and config:get needs push access: ask its owner or an admin to run 'access:add shop bob'"
    );
    assert!(!text(&out.stdout).contains("s3cret") && !text(&out.stderr).contains("s3cret"));
}

#[test]
fn config_set_reads_a_value_of_up_to_32_kib_from_standard_input() {
    let Shop {
        server: _server,
        alice,
        ..
    } = shop();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    while pem.len() < 32 * 1024 - 64 {
        pem.push_str("MIIBszCCAVmgAwIBAgIUZ2l0IHB1c2ggdG8gZGVwbG95IG9uIGt1YmVybmV0ZXM=\n");
    }
    pem.push_str("-----END CERTIFICATE-----");
    let value = format!("{pem}{}", "x".repeat(32 * 1024 - pem.len()));
    assert_eq!(value.len(), 32 * 1024);
    let out = alice.ssh(
        &["config:set", "shop", "TLS_CERT", "--no-deploy"],
        format!("{value}\n").as_bytes(),
    );
    assert_eq!(
        said(&out),
        "-----> Stored on shop: set TLS_CERT (not deployed: --no-deploy)\n"
    );
    let got = alice.ssh(&["config:get", "shop", "TLS_CERT"], b"");
    assert_eq!(said(&got), format!("{value}\n"));
    let out = alice.ssh(
        &["config:set", "shop", "BIG", "--no-deploy"],
        "y".repeat(32 * 1024 + 1).as_bytes(),
    );
    assert_eq!(
        refused(&out),
        "error: config var BIG is longer than 32768 bytes: a config var holds a value, not a file"
    );
    let out = alice.ssh(&["config:set", "shop", "NUL", "--no-deploy"], b"a\0b");
    assert_eq!(
        refused(&out),
        "error: config var NUL holds a NUL byte, which no environment variable can: leave it out"
    );
    let names = said(&alice.ssh(&["config", "shop"], b""));
    assert!(!names.contains("BIG") && !names.contains("NUL"), "{names}");
}

#[test]
fn a_name_the_declared_access_file_grants_is_kept_for_the_keys_it_names() {
    let dir = shared_tempdir();
    let file = dir.path().join("access");
    fs::write(&file, "reserved alice push\nreserved bob read\n").unwrap();
    let server = Server::start_with(&[
        ("CODEBUILDER_DEPLOY", "none"),
        ("CODEBUILDER_CONFIG_ACCESS", file.to_str().unwrap()),
    ]);
    let alice = server.add_user("alice", false);
    let bob = server.add_user("bob", false);
    let mallory = server.add_user("mallory", false);
    let work = repo_with("feature", &[("README", b"hello\n".to_vec())]);
    for (client, key) in [(&mallory, "mallory"), (&bob, "bob")] {
        let out = client.git(work.path(), &["push", &client.url("reserved"), "feature"]);
        assert!(!out.status.success());
        // The session's own line, before git's "fatal: Could not read".
        assert_eq!(
            text(&out.stderr).lines().next().unwrap_or_default(),
            format!("error: app reserved does not exist or key {key} has no access to it: ask its owner or an admin to run 'access:add reserved {key}'")
        );
    }
    assert!(!server.repo("reserved").exists());
    let out = alice.git(work.path(), &["push", &alice.url("reserved"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = said(&alice.ssh(&["apps:info", "reserved"], b""));
    assert!(info.contains("Owner:         alice"), "{info}");
}
