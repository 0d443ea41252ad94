//! codebuilder's log for what ssh sessions run. Their stderr is the client's terminal, so
//! their log lines come through the home's log socket instead (see
//! `codebuilder_core::main_support`), one datagram each, to a relay that writes them to its
//! own stderr, sshd's: the pod's log.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use codebuilder_core::Home;
use nix::unistd::chown;

/// The hidden subcommand of codebuilder-sshd that runs the relay.
pub const RELAY_COMMAND: &str = "log-relay";
/// The longest path a unix socket can have (`sun_path`, less its final NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Makes the log socket, for the ssh user (and root) only, and starts the relay on it
/// (`codebuilder-sshd log-relay`, the socket on its stdin), to run as long as sshd does.
pub fn start(home: &Home, ssh_user: &str) -> anyhow::Result<()> {
    let path = home.log_socket();
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "the home {} is too long a path for the sessions' log socket {} (at most {MAX_SOCKET_PATH} bytes): choose a shorter CODEBUILDER_HOME",
            home.root().display(),
            path.display()
        );
    }
    let cannot = || format!("cannot make the sessions' log socket {}", path.display());
    // One left by the last start.
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(cannot),
    }
    let socket = UnixDatagram::bind(&path).with_context(cannot)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).with_context(cannot)?;
    if let Some(user) = crate::paths::owner(ssh_user)? {
        chown(&path, Some(user.uid), Some(user.gid)).with_context(cannot)?;
    }
    let mut relay = Command::new(std::env::current_exe()?);
    relay
        .arg(RELAY_COMMAND)
        .stdin(Stdio::from(OwnedFd::from(socket)));
    codebuilder_process::group::companion(relay).context("cannot start the log relay")
}

/// `codebuilder-sshd log-relay`: the lines that come on the socket on stdin, to stderr.
pub fn run() -> anyhow::Result<()> {
    let socket = UnixDatagram::from(io::stdin().as_fd().try_clone_to_owned()?);
    relay(&socket, &mut io::stderr().lock()).context("the log relay stopped")
}

/// Writes each datagram of `socket` to `out` as a line, until one of them fails.
fn relay(socket: &UnixDatagram, out: &mut impl Write) -> io::Result<()> {
    let mut buffer = vec![0; 1 << 16];
    loop {
        let length = match socket.recv(&mut buffer) {
            Ok(length) => length,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let line = &buffer[..length];
        out.write_all(line.strip_suffix(b"\n").unwrap_or(line))?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_datagram_is_one_line() {
        let (session, relayed) = UnixDatagram::pair().unwrap();
        for line in ["WARN one\n", "WARN two", "WARN three\n"] {
            session.send(line.as_bytes()).unwrap();
        }
        // Room for the first two lines: the third one ends the relay.
        let mut log = [0u8; 18];
        let stopped = relay(&relayed, &mut log.as_mut_slice()).unwrap_err();
        assert_eq!(stopped.kind(), io::ErrorKind::WriteZero);
        assert_eq!(&log, b"WARN one\nWARN two\n");
    }
}
