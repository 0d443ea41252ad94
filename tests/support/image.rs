//! codebuilder's container image, built as README's cluster step 1 says, and what its sshd
//! serves.

use std::fs;
use std::process::Command;
use std::time::Instant;

use crate::{both, output, repo_root, run_with_stdin, text};

/// Builds the image from the release binaries and the Dockerfile under `tag`, with
/// `--build-arg` for each of `build_args` (`NAME=VALUE`). `--network host`: this machine's
/// engine has no bridge.
pub fn build(tag: &str, build_args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    // The Dockerfile copies target/release/codebuilder-*: make sure they are the current code.
    // A no-op (about a second) when nothing changed.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = output(Command::new(cargo).current_dir(repo_root()).args([
        "build",
        "--release",
        "--workspace",
        "--bins",
    ]));
    if !out.status.success() {
        return Err(format!(
            "cargo build --release --workspace --bins failed:\n{}",
            both(&out)
        ));
    }
    // `FROM debian:bookworm-slim`: imported from a cached debootstrap, never pulled.
    let out = output(
        Command::new("bash")
            .current_dir(repo_root())
            .arg("scripts/base-image.sh"),
    );
    if !out.status.success() {
        return Err(format!("scripts/base-image.sh failed:\n{}", both(&out)));
    }
    let mut build = Command::new("docker");
    build
        .current_dir(repo_root())
        .args(["build", "--network", "host", "--tag", tag]);
    for arg in build_args {
        build.args(["--build-arg", arg]);
    }
    // Behind a TLS-intercepting proxy, helm's download from PyPI must trust its CA.
    let extra = local_ca_certificates();
    if !extra.is_empty() {
        build.args(["--build-arg", &format!("EXTRA_CA_CERTS={extra}")]);
    }
    let out = output(build.arg("."));
    if !out.status.success() {
        return Err(format!("docker build failed:\n{}", both(&out)));
    }
    eprintln!("built {tag} in {:.1?}", started.elapsed());
    Ok(())
}

/// The certificates this machine's admin added to its trust store (update-ca-certificates).
fn local_ca_certificates() -> String {
    let mut pem = String::new();
    let Ok(entries) = fs::read_dir("/usr/local/share/ca-certificates") else {
        return pem;
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    for path in paths {
        if let Ok(text) = fs::read_to_string(&path) {
            pem.push_str(text.trim_end());
            pem.push('\n');
        }
    }
    pem
}

/// The host keys sshd on `port` serves, as `TYPE BASE64`, sorted.
pub fn host_keys(port: u16) -> Vec<String> {
    let out = output(Command::new("ssh-keyscan").args([
        "-T",
        "5",
        "-t",
        "rsa,ed25519",
        "-p",
        &port.to_string(),
        "127.0.0.1",
    ]));
    let mut keys: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split_whitespace().skip(1);
            Some(format!("{} {}", fields.next()?, fields.next()?))
        })
        .collect();
    keys.sort();
    keys
}

/// SHA256 fingerprints of public keys (`TYPE BASE64` lines), as `ssh-keygen -lf` prints them.
pub fn fingerprints(keys: &[String]) -> Vec<String> {
    let out = run_with_stdin(
        Command::new("ssh-keygen").args(["-l", "-f", "-"]),
        format!("{}\n", keys.join("\n")).as_bytes(),
    );
    assert!(out.status.success(), "ssh-keygen -lf: {}", both(&out));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect()
}
