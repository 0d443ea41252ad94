//! The SSH front door, through a real sshd and real git: who gets in, and what they can do.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use codebuilder_tests::*;

fn assert_one_error_line(stderr: &[u8], context: &str) {
    let stderr = text(stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{context}: expected one line, got {stderr:?}"
    );
    assert!(lines[0].starts_with("error: "), "{context}: {stderr:?}");
}

#[test]
fn added_key_pushes_a_branch_and_clones_it_back() {
    let server = Server::start();
    let alice = server.add_user("alice", false);
    let work = make_repo("feature", &[("hello.txt", b"hello from alice\n")]);
    let pushed = head(work.path());
    let out = alice.git(work.path(), &["push", &alice.url("myapp"), "feature"]);
    assert!(out.status.success(), "push failed: {}", text(&out.stderr));
    assert_eq!(
        server.server_ref("myapp", "refs/heads/feature"),
        Some(pushed.clone())
    );
    // The repository has our hook and none of git's samples.
    let hooks: Vec<_> = fs::read_dir(server.repo("myapp").join("hooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(hooks, ["pre-receive"]);
    assert!(
        fs::read_to_string(server.repo("myapp").join("hooks/pre-receive"))
            .unwrap()
            .contains("codebuilder-build")
    );

    let clones = tempfile::tempdir().unwrap();
    for url in [
        alice.url("myapp"),
        alice.url("myapp.git"),
        "git@127.0.0.1:myapp".to_string(),
        "git@127.0.0.1:/myapp.git".to_string(),
    ] {
        let target = clones.path().join(url.replace(['/', ':', '@'], "_"));
        let out = alice.git(
            clones.path(),
            &[
                "clone",
                "--quiet",
                "--branch",
                "feature",
                &url,
                target.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "clone {url}: {}", text(&out.stderr));
        assert_eq!(
            fs::read_to_string(target.join("hello.txt")).unwrap(),
            "hello from alice\n"
        );
        assert_eq!(head(&target), pushed);
    }
}

#[test]
fn scp_like_url_pushes_too_and_two_first_pushes_race_safely() {
    let server = Server::start();
    let alice = server.add_user("alice", false);
    let work = make_repo("feature", &[("a", b"a")]);
    let out = alice.git(work.path(), &["push", "git@127.0.0.1:racer", "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pushes: Vec<_> = (0..4)
        .map(|i| {
            let repo = make_repo(&format!("b{i}"), &[("f", format!("{i}").as_bytes())]);
            let child = alice
                .git_command(
                    repo.path(),
                    &["push", &alice.url("fresh"), &format!("b{i}")],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (repo, child)
        })
        .collect();
    for (i, (_repo, child)) in pushes.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "push {i}: {}", text(&out.stderr));
        assert!(server
            .server_ref("fresh", &format!("refs/heads/b{i}"))
            .is_some());
    }
    let leftovers: Vec<_> = fs::read_dir(server.home.path().join("repos"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[test]
fn unknown_and_removed_keys_are_refused() {
    let server = Server::start();
    let stranger = Client::new(server.port);
    let out = stranger.ssh(&["git-upload-pack", "'myapp'"], b"");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    let bob = server.add_user("bob", false);
    let work = make_repo("feature", &[("f", b"1")]);
    let out = bob.git(work.path(), &["push", &bob.url("app1"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.keys(&["remove", "bob"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = bob.git(work.path(), &["push", &bob.url("app1"), "feature:other"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.server_ref("app1", "refs/heads/other"), None);
}

#[test]
fn no_shell_no_forwarding_no_scp() {
    let server = Server::start();
    let alice = server.add_user("alice", false);

    let out = alice.ssh(&["id"], b"");
    assert!(!out.status.success());
    assert_one_error_line(&out.stderr, "ssh id");
    assert!(!text(&out.stdout).contains("uid="));

    // An interactive login: no command at all.
    let out = alice.ssh(&[], b"echo pwned\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no shell access"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("pwned"));

    // ssh -W: a direct TCP channel to sshd itself.
    let mut command = Command::new("ssh");
    command.args(alice.ssh_options()).args([
        "-W",
        &format!("127.0.0.1:{}", server.port),
        "git@127.0.0.1",
    ]);
    let out = run_with_stdin(&mut command, b"");
    assert!(!out.status.success());
    assert!(
        !text(&out.stdout).contains("SSH-2.0"),
        "forwarding reached sshd: {}",
        text(&out.stdout)
    );

    // ssh -L: the local end listens, but the server must refuse to open the channel.
    let local = free_port();
    let mut tunnel = Command::new("ssh")
        .args(alice.ssh_options())
        .args([
            "-N",
            "-L",
            &format!("127.0.0.1:{local}:127.0.0.1:{}", server.port),
            "git@127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = Vec::new();
    for _ in 0..50 {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", local)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let _ = stream.read_to_end(&mut banner);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    assert!(
        !String::from_utf8_lossy(&banner).contains("SSH-2.0"),
        "-L forwarding worked"
    );

    // scp and sftp: nothing may be written anywhere.
    let target = server.home.path().join("scp-target");
    let source = server.home.path().join("scp-source");
    fs::write(&source, "x").unwrap();
    let scp_port = server.port.to_string();
    let mut options = alice.ssh_options();
    let port_at = options.iter().position(|o| o == "-p").unwrap();
    options.drain(port_at..port_at + 2);
    for legacy in [true, false] {
        let mut command = Command::new("scp");
        command.args(&options).args(["-P", &scp_port]);
        if legacy {
            command.arg("-O");
        }
        let out = command
            .arg(&source)
            .arg(format!("git@127.0.0.1:{}", target.display()))
            .output()
            .unwrap();
        assert!(!out.status.success(), "scp (legacy={legacy}) succeeded");
        assert!(!target.exists());
    }
}

#[test]
fn admins_manage_keys_over_ssh_and_others_cannot() {
    let server = Server::start();
    let admin = server.add_user("root-admin", true);
    let bob_key = Client::new(server.port);

    let out = admin.ssh(&["keys:add", "bob"], bob_key.public_key().as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added key bob"),
        "{}",
        text(&out.stdout)
    );

    let out = admin.ssh(&["keys:list", "--json"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["bob", "root-admin"]);
    assert_eq!(listed[0]["admin"], false);
    assert_eq!(listed[1]["admin"], true);
    // The fingerprint is the one ssh-keygen prints.
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(bob_key.dir.path().join("id.pub"))
        .output()
        .unwrap();
    assert_eq!(
        text(&keygen.stdout).split(' ').nth(1).unwrap(),
        listed[0]["fingerprint"].as_str().unwrap()
    );

    // bob is in, but cannot manage keys.
    let stranger = Client::new(server.port);
    for command in [
        &["keys:list"][..],
        &["keys:add", "eve"],
        &["keys:remove", "root-admin"],
    ] {
        let out = bob_key.ssh(command, stranger.public_key().as_bytes());
        assert!(!out.status.success(), "{command:?}");
        assert_one_error_line(&out.stderr, &format!("{command:?}"));
        assert!(
            text(&out.stderr).contains("not an admin key"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(!stranger.ssh(&["keys:list"], b"").status.success());

    let out = admin.ssh(&["keys:remove", "bob"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = bob_key.ssh(&["git-upload-pack", "'x'"], b"");
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );

    // Bad input over ssh is refused like on the command line.
    let out = admin.ssh(&["keys:add", "Bad_Name"], bob_key.public_key().as_bytes());
    assert_one_error_line(&out.stderr, "bad name over ssh");
    let out = admin.ssh(&["keys:add", "eve"], b"not a key");
    assert_one_error_line(&out.stderr, "bad key over ssh");
}

#[test]
fn hostile_commands_are_refused_and_create_nothing() {
    let server = Server::start();
    let alice = server.add_user("alice", false);
    let long = format!("git-receive-pack '{}'", "a".repeat(54));
    let cases: Vec<&str> = vec![
        // other programs and shell syntax
        "id",
        "sh",
        "/bin/sh",
        "bash -i",
        "sh -c id",
        "echo hi; id",
        "id && id",
        "id | sh",
        "$(id)",
        "`id`",
        "git-upload-archive 'app'",
        "git-shell -c id",
        "rsync --server . /tmp",
        "scp -t /tmp",
        "internal-sftp",
        // git with options or extra arguments
        "git-receive-pack",
        "git-receive-pack 'app' 'other'",
        "git-upload-pack --help",
        "git-receive-pack '--upload-pack=id'",
        "git -c core.pager=id upload-pack 'app'",
        "git-receive-pack 'app' ; id",
        "git-receive-pack 'app' && id",
        "git-receive-pack 'app'|id",
        "git-receive-pack 'app$(id)'",
        "git-receive-pack 'app`id`'",
        // traversal and odd paths
        "git-receive-pack '../app'",
        "git-receive-pack '/../../etc'",
        "git-receive-pack '/tmp/app'",
        "git-receive-pack 'a/b'",
        "git-receive-pack '~/app'",
        "git-receive-pack '~git/app'",
        "git-receive-pack '.git'",
        "git-receive-pack '/'",
        "git-receive-pack ''",
        "git-receive-pack 'app.git/'",
        "git-receive-pack 'a..b'",
        "git-receive-pack 'app.git.git'",
        // names that are not DNS-1123 labels
        "git-receive-pack 'MyApp'",
        "git-receive-pack 'APP'",
        "git-receive-pack '-app'",
        "git-receive-pack 'app-'",
        "git-receive-pack 'my_app'",
        "git-receive-pack 'my app'",
        "git-receive-pack 'app\"'",
        "git-receive-pack 'a\\b'",
        &long,
        // namespaces that are not ours
        "git-receive-pack 'default'",
        "git-receive-pack 'kube-system'",
        "git-receive-pack 'kube-public'",
        "git-receive-pack 'kube-node-lease'",
        "git-receive-pack 'codebuilder'",
        // non-ASCII and control characters
        "git-receive-pack 'äpp'",
        "git-receive-pack 'app\u{7}'",
        "git-receive-pack 'app\u{1b}[2J'",
        "git-receive-pack 'app\u{202e}'",
        // a clone of an app that does not exist
        "git-upload-pack 'nothing-here'",
    ];
    for command in &cases {
        let out = alice.ssh(&[command], b"");
        assert!(!out.status.success(), "{command:?} succeeded");
        assert_one_error_line(&out.stderr, command);
        assert!(
            !text(&out.stdout).contains("uid="),
            "{command:?} ran a program"
        );
    }
    let repos = server.home.path().join("repos");
    let created: Vec<_> = fs::read_dir(&repos)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(created.is_empty(), "created {created:?}");
}

#[test]
fn hostile_keys_and_names_are_refused_and_nothing_is_written() {
    let server = Server::start();
    let good = Client::new(server.port);
    let good_key = good.public_key();
    let (key_type, data) = {
        let mut parts = good_key.split_whitespace();
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        )
    };
    let keygen = |args: &[&str]| -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-N", ""])
            .args(args)
            .arg("-f")
            .arg(&path)
            .status()
            .ok()?
            .success();
        ok.then(|| {
            (
                fs::read_to_string(&path).unwrap(),
                fs::read_to_string(path.with_extension("pub")).unwrap(),
            )
        })
    };
    let (private_key, _) = keygen(&["-t", "ed25519"]).unwrap();
    let small_rsa = keygen(&["-t", "rsa", "-b", "1024"])
        .map(|(_, public)| public)
        .unwrap();
    let dsa = keygen(&["-t", "dsa"])
        .map(|(_, public)| public)
        .unwrap_or_else(|| format!("ssh-dss {data}"));
    let cases: Vec<(String, String, &str)> = vec![
        ("k1".into(), private_key, "private key"),
        ("k2".into(), dsa, "DSA"),
        ("k3".into(), small_rsa, "too small"),
        (
            "k4".into(),
            format!("{key_type} {}!!", &data[..20]),
            "base64",
        ),
        (
            "k5".into(),
            format!("{key_type} {}", &data[..data.len() - 8]),
            "malformed",
        ),
        ("k6".into(), format!("ssh-rsa {data}"), "says it is"),
        (
            "k7".into(),
            format!("ecdsa-sha2-nistp256 {data}"),
            "says it is",
        ),
        (
            "k8".into(),
            format!("command=\"/bin/sh\" {good_key}"),
            "options",
        ),
        (
            "k9".into(),
            format!("no-pty,restrict {good_key}"),
            "options",
        ),
        (
            "k10".into(),
            format!("environment=\"A=B\" {good_key}"),
            "options",
        ),
        (
            "k11".into(),
            format!("{good_key}{good_key}"),
            "more than one",
        ),
        ("k12".into(), String::new(), "no key"),
        ("k13".into(), "\n\n".into(), "no key"),
        ("k14".into(), "hello".into(), "not a public key"),
        (
            "k15".into(),
            format!("ssh-ed25519-cert-v01@openssh.com {data}"),
            "certificates",
        ),
        ("k16".into(), "x".repeat(20_000), "larger"),
        ("Alice".into(), good_key.clone(), "not valid"),
        ("-alice".into(), good_key.clone(), "not valid"),
        (".alice".into(), good_key.clone(), "not valid"),
        ("al ice".into(), good_key.clone(), "not valid"),
        ("al\"ice".into(), good_key.clone(), "not valid"),
        ("al\\ice".into(), good_key.clone(), "not valid"),
        ("alice,command=x".into(), good_key.clone(), "not valid"),
        ("äl".into(), good_key.clone(), "not valid"),
        ("../alice".into(), good_key.clone(), "not valid"),
        ("a".repeat(65), good_key.clone(), "not valid"),
        (String::new(), good_key.clone(), "empty"),
    ];
    for (name, key, expected) in &cases {
        let out = server.keys(&["add", "--", name], key.as_bytes());
        assert!(!out.status.success(), "{name:?} {key:?} was accepted");
        assert_one_error_line(&out.stderr, &format!("{name:?} {key:?}"));
        assert!(
            text(&out.stderr).contains(expected),
            "{name:?}: {}",
            text(&out.stderr)
        );
    }
    let fp_dir = server.home.path().join("keys/fp");
    assert_eq!(fs::read_dir(&fp_dir).unwrap().count(), 0);

    // The same key under a second name.
    assert!(server
        .keys(&["add", "alice"], good_key.as_bytes())
        .status
        .success());
    let out = server.keys(&["add", "alice2"], good_key.as_bytes());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already stored as alice"),
        "{}",
        text(&out.stderr)
    );
    // A second key under the same name.
    let out = server.keys(
        &["add", "alice"],
        Client::new(server.port).public_key().as_bytes(),
    );
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.listed_keys().len(), 1);

    // sshd's side: unknown or malformed keys print nothing.
    for (user, ty, key) in [
        ("git", "ssh-ed25519", "AAAA"),
        ("root", key_type.as_str(), data.as_str()),
        ("git", "ssh-dss", data.as_str()),
    ] {
        let out = server.keys(&["authorized-keys", user, ty, key], b"");
        assert!(out.stdout.is_empty(), "{user} {ty}: {}", text(&out.stdout));
    }
    let out = server.keys(&["authorized-keys", "git", &key_type, &data], b"");
    let line = text(&out.stdout);
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("restrict,command=\""), "{line}");
    assert!(
        line.contains(" --user alice --fingerprint SHA256:"),
        "{line}"
    );
    assert!(line.contains(&format!("\" {key_type} {data}")), "{line}");
}

#[test]
fn concurrent_adds_lose_nothing() {
    let server = Server::start();
    let clients: Vec<Client> = (0..24).map(|_| Client::new(server.port)).collect();
    let children: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| server.spawn_add(&format!("user{i}"), &client.public_key()))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(server.listed_keys().len(), 24);
    // Every one of them can log in.
    for client in clients.iter().step_by(6) {
        let out = client.ssh(&["git-upload-pack", "'none'"], b"");
        assert!(
            text(&out.stderr).contains("does not exist"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn kill_during_add_leaves_a_readable_store() {
    let server = Server::start();
    for round in 0..40 {
        let client = Client::new(server.port);
        let mut child = server.spawn_add(&format!("k{round}"), &client.public_key());
        std::thread::sleep(Duration::from_micros(200 * (round % 10)));
        let _ = child.kill();
        let _ = child.wait();
        // The store reads back whole: if the killed add got as far as listing the key, sshd's
        // lookup finds it too.
        let name = format!("k{round}");
        if server
            .listed_keys()
            .iter()
            .any(|k| k["name"] == name.as_str())
        {
            let public_key = client.public_key();
            let mut parts = public_key.split_whitespace();
            let (key_type, data) = (parts.next().unwrap(), parts.next().unwrap());
            let out = server.keys(&["authorized-keys", "git", key_type, data], b"");
            assert!(
                text(&out.stdout).contains(&format!("--user {name} --fingerprint SHA256:")),
                "round {round}: {}",
                text(&out.stderr)
            );
        }
        // A killed add never blocks the next one.
        let retry = server.keys(
            &["add", &format!("k{round}")],
            client.public_key().as_bytes(),
        );
        let retry_text = text(&retry.stderr);
        assert!(
            retry.status.success() || retry_text.contains("already"),
            "round {round}: {retry_text}"
        );
    }
    assert_eq!(server.listed_keys().len(), 40);
    // What killed writers left in the staging folder was swept by the next writer.
    let staging = server.home.path().join("keys/tmp");
    assert_eq!(fs::read_dir(staging).unwrap().count(), 0);
}

#[test]
fn declared_keys_from_a_read_only_file_log_in_and_cannot_be_removed_over_ssh() {
    let declared = shared_tempdir();
    let ops = Client::new(0);
    let dev = Client::new(0);
    let file = declared.path().join("authorized_keys");
    fs::write(
        &file,
        format!(
            "# managed by the cluster admin\nops:admin {}dev {}",
            ops.public_key(),
            dev.public_key()
        ),
    )
    .unwrap();
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let server = Server::start_with(&[("CODEBUILDER_CONFIG_KEYS", file.to_str().unwrap())]);
    let (ops, dev) = (
        Client {
            port: server.port,
            ..ops
        },
        Client {
            port: server.port,
            ..dev
        },
    );

    let work = make_repo("feature", &[("f", b"1")]);
    let out = dev.git(work.path(), &["push", &dev.url("declared"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ops.ssh(&["keys:list", "--json"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["source"], file.to_str().unwrap());
    let out = ops.ssh(&["keys:remove", "dev"], b"");
    assert!(!out.status.success());
    assert_one_error_line(&out.stderr, "remove declared");
    assert!(
        text(&out.stderr).contains("comes from"),
        "{}",
        text(&out.stderr)
    );
    assert!(dev
        .git(
            work.path(),
            &["push", &dev.url("declared"), "feature:again"]
        )
        .status
        .success());
}

/// What git printed, line by line, without the padding git adds to the remote's lines.
fn remote_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// `base64` of `bytes`, or the bytes of `text` (coreutils' base64).
fn base64(bytes: &[u8], decode: bool) -> Vec<u8> {
    let mut command = Command::new("base64");
    command.arg(if decode { "-d" } else { "-w0" });
    let out = run_with_stdin(&mut command, bytes);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out.stdout
}

/// The length-prefixed strings of an ssh wire-format blob.
fn wire_strings(blob: &[u8]) -> Vec<Vec<u8>> {
    let mut strings = Vec::new();
    let mut rest = blob;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        strings.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    strings
}

fn wire(strings: &[&[u8]]) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| {
            let mut part = (s.len() as u32).to_be_bytes().to_vec();
            part.extend_from_slice(s);
            part
        })
        .collect()
}

/// The `SHA256:...` fingerprint `ssh-keygen -lf` prints for a public key file.
fn keygen_fingerprint(path: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).split(' ').nth(1).unwrap().to_owned()
}

#[test]
fn every_openssh_key_type_is_accepted_and_an_ecdsa_host_key_is_served() {
    let server = Server::start();
    for (name, keygen) in [
        ("ed", &["-t", "ed25519"][..]),
        ("ec256", &["-t", "ecdsa", "-b", "256"]),
        ("ec384", &["-t", "ecdsa", "-b", "384"]),
        ("ec521", &["-t", "ecdsa", "-b", "521"]),
        ("rsa", &["-t", "rsa", "-b", "2048"]),
    ] {
        let client = Client::with_key(server.port, keygen);
        let out = server.keys(&["add", name], client.public_key().as_bytes());
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let fingerprint = keygen_fingerprint(&client.dir.path().join("id.pub"));
        assert!(
            text(&out.stdout).contains(&fingerprint),
            "{name}: {}",
            text(&out.stdout)
        );
        // Logged in: the forced command answers.
        let out = client.ssh(&["git-upload-pack", "'nothing-here'"], b"");
        assert_eq!(
            text(&out.stderr),
            format!("error: app nothing-here does not exist or key {name} has no access to it: ask its owner or an admin to run 'access:add nothing-here {name}'\n"),
            "{name}"
        );
    }

    // Security keys cannot sign here: their public keys, written from the wire format, are
    // stored and found by sshd's lookup.
    let ecdsa = Client::with_key(0, &["-t", "ecdsa", "-b", "256"]);
    let ecdsa_blob = base64(
        ecdsa.public_key().split(' ').nth(1).unwrap().as_bytes(),
        true,
    );
    let point = wire_strings(&ecdsa_blob)[2].clone();
    let ed = Client::new(0);
    let ed_blob = base64(ed.public_key().split(' ').nth(1).unwrap().as_bytes(), true);
    let ed_key = wire_strings(&ed_blob)[1].clone();
    let keys_dir = tempfile::tempdir().unwrap();
    for (name, key_type, blob) in [
        (
            "sk-ed",
            "sk-ssh-ed25519@openssh.com",
            wire(&[b"sk-ssh-ed25519@openssh.com", &ed_key, b"ssh:"]),
        ),
        (
            "sk-ec",
            "sk-ecdsa-sha2-nistp256@openssh.com",
            wire(&[
                b"sk-ecdsa-sha2-nistp256@openssh.com",
                b"nistp256",
                &point,
                b"ssh:",
            ]),
        ),
    ] {
        let data = text(&base64(&blob, false));
        let file = keys_dir.path().join(format!("{name}.pub"));
        fs::write(&file, format!("{key_type} {data} me@token\n")).unwrap();
        let out = server.keys(&["add", name, file.to_str().unwrap()], b"");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!(
                "added key {name} ({key_type} {})\n",
                keygen_fingerprint(&file)
            )
        );
        let out = server.keys(&["authorized-keys", "git", key_type, &data], b"");
        assert!(
            text(&out.stdout).ends_with(&format!(
                "--user {name} --fingerprint {}\" {key_type} {data}\n",
                keygen_fingerprint(&file)
            )),
            "{name}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    // A key saved with a byte order mark is the key; an RFC 4716 key is explained.
    let bom = Client::new(server.port);
    let out = server.keys(
        &["add", "bom"],
        format!("\u{feff}{}", bom.public_key()).as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bom
        .ssh(&["git-upload-pack", "'x'"], b"")
        .stderr
        .starts_with(b"error: app x does not exist"));
    let out = Command::new("ssh-keygen")
        .args(["-e", "-f"])
        .arg(bom.dir.path().join("id.pub"))
        .output()
        .unwrap();
    let out = server.keys(&["add", "rfc"], &out.stdout);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "error: this key is in the RFC 4716 (SSH2) form: convert it to one line with 'ssh-keygen -i -f FILE' and add that line\n"
    );

    // The server's ECDSA host key, for clients that know no newer type (JSch).
    let client = Client::new(server.port);
    let out = server.keys(&["add", "jsch"], client.public_key().as_bytes());
    assert!(out.status.success());
    let mut command = Command::new("ssh");
    command
        .args(client.ssh_options())
        .args(["-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256"])
        .args(["git@127.0.0.1", "git-upload-pack 'x'"]);
    let out = run_with_stdin(&mut command, b"");
    assert_eq!(
        text(&out.stderr),
        "error: app x does not exist or key jsch has no access to it: ask its owner or an admin to run 'access:add x jsch'\n"
    );
    let served = fs::read_to_string(server.home.path().join("ssh/ssh_host_ecdsa_key.pub")).unwrap();
    assert!(served.starts_with("ecdsa-sha2-nistp256 "), "{served}");
}

#[test]
fn input_that_is_not_utf8_gets_one_line_never_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let server = Server::start();
    let alice = server.add_user("alice", false);
    let mut command = Command::new("ssh");
    command
        .args(alice.ssh_options())
        .arg("git@127.0.0.1")
        .arg(OsStr::from_bytes(b"git-upload-pack 'a\xff'"));
    let out = run_with_stdin(&mut command, b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: the command contains control characters or non-ASCII text: for such a config value, run 'config:set APP KEY < FILE' or use --encoded\n"
    );

    let mut command = Command::new("ssh");
    command
        .args(alice.ssh_options())
        .arg("-o")
        .arg(OsStr::from_bytes(b"SetEnv=GIT_PROTOCOL=version=2\xff"))
        .args(["git@127.0.0.1", "git-upload-pack 'nothing'"]);
    let out = run_with_stdin(&mut command, b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: app nothing does not exist or key alice has no access to it: ask its owner or an admin to run 'access:add nothing alice'\n"
    );
    assert!(!server.log().contains("panicked"));
}

#[test]
fn sixteen_simultaneous_pushes_all_get_in() {
    let server = Server::start();
    let dev = server.add_user("dev", false);
    let repos: Vec<_> = (0..16)
        .map(|i| make_repo(&format!("ci{i}"), &[("f", format!("{i}").as_bytes())]))
        .collect();
    let pushes: Vec<_> = repos
        .iter()
        .enumerate()
        .map(|(i, repo)| {
            dev.git_command(
                repo.path(),
                &[
                    "push",
                    &dev.url(&format!("burst{}", i % 4)),
                    &format!("ci{i}"),
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, push) in pushes.into_iter().enumerate() {
        let out = push.wait_with_output().unwrap();
        assert!(out.status.success(), "push {i}: {}", text(&out.stderr));
        assert!(server
            .server_ref(&format!("burst{}", i % 4), &format!("refs/heads/ci{i}"))
            .is_some());
    }
}

#[test]
fn pushes_of_nothing_leave_no_repository_and_refused_refs_are_named() {
    let server = Server::start();
    let dev = server.add_user("dev", false);
    let repos = server.home.path().join("repos");
    let listed = || -> Vec<String> {
        fs::read_dir(&repos)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    // A bare connection, a dry run and a clone of nothing.
    dev.ssh(&["git-receive-pack 'ghost'"], b"");
    let work = make_repo("feature", &[("f", b"1")]);
    let out = dev.git(
        work.path(),
        &["push", "--dry-run", &dev.url("ghost"), "feature"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = dev.git(work.path(), &["ls-remote", &dev.url("ghost")]);
    assert!(!out.status.success());
    assert_eq!(listed(), Vec::<String>::new());

    // A branch or tag named HEAD.
    for spec in ["feature:refs/heads/HEAD", "feature:refs/tags/HEAD"] {
        let out = dev.git(work.path(), &["push", &dev.url("ghost"), spec]);
        assert!(!out.status.success());
        let reference = spec.split(':').nth(1).unwrap();
        let lines = remote_lines(&out.stderr);
        assert!(
            lines.contains(&format!("remote: error: {reference} cannot be pushed: git reads HEAD as the checked-out commit, not as a branch or tag; rename it")),
            "{lines:?}"
        );
    }
    assert_eq!(listed(), Vec::<String>::new());

    // A deleted branch is reported as deleted.
    let out = dev.git(
        work.path(),
        &["push", &dev.url("kept"), "feature", "feature:other"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(listed(), ["kept.git"]);
    let out = dev.git(work.path(), &["push", &dev.url("kept"), ":other"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = remote_lines(&out.stderr);
    assert!(
        lines.contains(&"remote: -----> Deleted refs/heads/other".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("Stored")), "{lines:?}");
    assert_eq!(server.server_ref("kept", "refs/heads/other"), None);
    assert!(server.server_ref("kept", "refs/heads/feature").is_some());
}

#[test]
fn an_existing_home_keeps_its_owner() {
    use std::os::unix::fs::MetadataExt;
    let home = shared_tempdir();
    fs::write(home.path().join("notes.txt"), "the operator's").unwrap();
    let server = Server::start_in(home, &[]);
    let root = fs::metadata(server.home.path()).unwrap();
    assert_eq!((root.uid(), root.gid()), (0, 0));
    assert_eq!(
        fs::metadata(server.home.path().join("notes.txt"))
            .unwrap()
            .uid(),
        0
    );
    let git_uid = fs::metadata(server.home.path().join("repos"))
        .unwrap()
        .uid();
    assert_ne!(git_uid, 0);
    // Sessions still work in it.
    let dev = server.add_user("dev", false);
    let work = make_repo("feature", &[("f", b"1")]);
    let out = dev.git(work.path(), &["push", &dev.url("app"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
