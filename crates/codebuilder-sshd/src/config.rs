//! The sshd_config codebuilder runs with. The image's `rootfs/etc/ssh/sshd_config` carries the
//! same hardening; a test keeps the two in step.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use codebuilder_core::settings::table::{session_variables, HOME};
use codebuilder_core::sshd_quoting::quotable_path;

pub struct SshdConfig {
    pub listen: SocketAddr,
    pub home: PathBuf,
    pub keys_binary: PathBuf,
    pub ssh_user: String,
    pub host_keys: Vec<PathBuf>,
    /// Read-only file of declared keys, passed on to the key lookup.
    pub config_keys: Option<PathBuf>,
    /// `NAME=VALUE` pairs every session gets (the operator's CODEBUILDER_* settings).
    pub environment: Vec<String>,
}

/// Settings every codebuilder sshd runs with, whatever the home or port: keys only, one user,
/// no forwarding, no tty, no shell beyond the forced command.
pub const HARDENING: &[&str] = &[
    "AuthorizedKeysFile none",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "PermitEmptyPasswords no",
    "PermitRootLogin no",
    "DisableForwarding yes",
    "AllowTcpForwarding no",
    "AllowAgentForwarding no",
    "AllowStreamLocalForwarding no",
    "X11Forwarding no",
    "PermitTunnel no",
    "PermitTTY no",
    "PermitUserRC no",
    "PermitUserEnvironment no",
    "UsePAM no",
    "AcceptEnv GIT_PROTOCOL",
    // Unauthenticated connections sshd holds before it starts dropping some: a CI burst of
    // pushes must all get in (sshd's default, 10:30:100, dropped some of 16).
    "MaxStartups 100:30:200",
    "LoginGraceTime 30",
    "MaxAuthTries 6",
    "ClientAliveInterval 15",
    "ClientAliveCountMax 4",
];

impl SshdConfig {
    pub fn render(&self) -> anyhow::Result<String> {
        let home = quotable_path(&self.home)?;
        let keys = quotable_path(&self.keys_binary)?;
        if !self
            .ssh_user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("ssh user {:?} is not a plain user name", self.ssh_user);
        }
        let mut out =
            String::from("# Written by codebuilder-sshd at every start: edits are lost.\n");
        writeln!(out, "ListenAddress {}", self.listen)?;
        for key in &self.host_keys {
            writeln!(out, "HostKey {}", quotable_path(key)?)?;
        }
        writeln!(out, "PidFile none")?;
        writeln!(out, "AllowUsers {}", self.ssh_user)?;
        // sshd gives the command no environment: everything it needs is on its command line.
        let declared = match &self.config_keys {
            Some(path) => format!(" --config-keys {}", quotable_path(path)?),
            None => String::new(),
        };
        writeln!(
            out,
            "AuthorizedKeysCommand {keys} --home {home}{declared} authorized-keys --ssh-user {} %u %t %k",
            self.ssh_user
        )?;
        writeln!(out, "AuthorizedKeysCommandUser {}", self.ssh_user)?;
        for line in HARDENING {
            writeln!(out, "{line}")?;
        }
        if !self.environment.is_empty() {
            writeln!(out, "SetEnv {}", self.environment.join(" "))?;
        }
        Ok(out)
    }
}

/// The operator's settings, passed on to every session, so that a push sees what was set.
/// Values were checked by `Settings::from_env`; paths are checked here.
pub fn session_environment(home: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut pairs = vec![format!("{}={}", HOME.name, quotable_path(home)?)];
    for name in session_variables().filter(|n| *n != HOME.name) {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=,#".contains(&b))
        {
            bail!("{name}={value:?} cannot be passed to ssh sessions: it contains spaces, quotes or control characters");
        }
        pairs.push(format!("{name}={value}"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_hardened_config() {
        let config = SshdConfig {
            listen: "127.0.0.1:2222".parse().unwrap(),
            home: "/var/lib/codebuilder".into(),
            keys_binary: "/usr/local/bin/codebuilder-keys".into(),
            ssh_user: "git".into(),
            host_keys: vec!["/var/lib/codebuilder/ssh/ssh_host_ed25519_key".into()],
            config_keys: Some("/etc/codebuilder/keys".into()),
            environment: vec!["CODEBUILDER_HOME=/var/lib/codebuilder".into()],
        };
        let text = config.render().unwrap();
        for line in HARDENING {
            assert!(text.lines().any(|l| l == *line), "{line}");
        }
        assert!(text.contains("AuthorizedKeysCommand /usr/local/bin/codebuilder-keys --home /var/lib/codebuilder --config-keys /etc/codebuilder/keys authorized-keys --ssh-user git %u %t %k\n"));
        assert!(text.contains("ListenAddress 127.0.0.1:2222\n"));
        assert!(text.contains("SetEnv CODEBUILDER_HOME=/var/lib/codebuilder\n"));
    }

    /// The image's sshd_config carries the same hardening, line for line, and serves the same
    /// host key types.
    #[test]
    fn the_images_sshd_config_matches() {
        let image = include_str!("../../../rootfs/etc/ssh/sshd_config");
        let lines: Vec<&str> = image
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let start = lines
            .iter()
            .position(|l| *l == HARDENING[0])
            .expect("no hardening block");
        assert_eq!(&lines[start..start + HARDENING.len()], HARDENING);
        let host_keys: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("HostKey /var/lib/codebuilder/ssh/ssh_host_"))
            .collect();
        assert_eq!(host_keys, ["ed25519_key", "ecdsa_key", "rsa_key"]);
    }

    #[test]
    fn refuses_unsafe_paths() {
        let config = SshdConfig {
            listen: "127.0.0.1:2222".parse().unwrap(),
            home: "/var/lib/code builder".into(),
            keys_binary: "/usr/local/bin/codebuilder-keys".into(),
            ssh_user: "git".into(),
            host_keys: vec![],
            config_keys: None,
            environment: vec![],
        };
        assert!(config.render().is_err());
    }
}
