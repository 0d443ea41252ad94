//! What every `main.rs` does the same way: logs to codebuilder's log with tracing, and a
//! failure becomes one `error: ...` line and a non-zero exit, never a panic or a backtrace.

use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing_subscriber::fmt::MakeWriter;

use crate::home::{Home, DEFAULT_HOME};
use crate::settings::table::LOG;

/// Installs the logger (`CODEBUILDER_LOG`, e.g. `debug`; default `warn`), runs `body`, and
/// turns an error into `error: CAUSE: CAUSE...` on stderr with exit status 1.
pub fn run(body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    init_logging();
    match body() {
        Ok(code) => code,
        Err(err) => {
            // The reader may be gone (a client that hung up): never panic over that.
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                one_line(&format!("{err:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// codebuilder's log is codebuilder-sshd's stderr (the pod's log). In an ssh session (sshd
/// sets `SSH_CONNECTION`, and git passes it on to the hook) stderr is the client's terminal:
/// there the lines go to the relay codebuilder-sshd runs beside sshd, through the home's
/// [`Home::log_socket`] (the home as sshd sets `CODEBUILDER_HOME` for sessions), and a line
/// the relay cannot take is lost, never shown to the client. Elsewhere (codebuilder-sshd
/// itself, an admin at `kubectl exec`) they go to stderr.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG.name).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(LOG.default.value().unwrap_or_default())
    });
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time();
    let _ = if std::env::var_os("SSH_CONNECTION").is_some() {
        let home =
            std::env::var_os("CODEBUILDER_HOME").map_or_else(|| DEFAULT_HOME.into(), PathBuf::from);
        logger
            .with_ansi(false)
            .with_writer(ToRelay::new(Home::new(home).log_socket()))
            .try_init()
    } else {
        logger
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init()
    };
}

/// A session's way to codebuilder's log: each line one datagram to the relay's socket, sent
/// without waiting.
struct ToRelay {
    socket: Option<UnixDatagram>,
    path: PathBuf,
}

impl ToRelay {
    fn new(path: PathBuf) -> Self {
        let socket = UnixDatagram::unbound()
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .ok();
        Self { socket, path }
    }
}

impl<'a> MakeWriter<'a> for ToRelay {
    type Writer = RelayLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RelayLine(self)
    }
}

/// tracing writes each line with one `write_all`: one `write`, one datagram.
struct RelayLine<'a>(&'a ToRelay);

impl Write for RelayLine<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if let Some(socket) = &self.0.socket {
            let _ = socket.send_to(line, &self.0.path);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A flag set on SIGTERM, SIGINT or SIGHUP: the client went away, sshd or an admin asked us
/// to stop. Long-running work polls it and stops its children cleanly instead of dying
/// with them still running.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// The binary that builds: git's pre-receive hook, and the build context's filter.
pub const BUILD_BINARY: &str = "codebuilder-build";

/// The codebuilder binary `name`, installed beside the running one (the image keeps them all
/// in /usr/local/lib/codebuilder; a symlink on PATH resolves to it).
pub fn sibling(name: &str) -> std::io::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// Folds a message onto one line, so that it cannot forge further lines of output.
pub fn one_line(message: &str) -> String {
    message.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_line_is_one_datagram_to_the_relay_or_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let relay = UnixDatagram::bind(&path).unwrap();
        let to_relay = ToRelay::new(path.clone());
        let line = b" WARN codebuilder_apps::declared: access:2: skipped\n";
        to_relay.make_writer().write_all(line).unwrap();
        let mut received = [0u8; 128];
        let length = relay.recv(&mut received).unwrap();
        assert_eq!(&received[..length], line);
        // No relay: the line is lost, and the session goes on.
        drop(relay);
        std::fs::remove_file(&path).unwrap();
        to_relay.make_writer().write_all(line).unwrap();
    }
}
