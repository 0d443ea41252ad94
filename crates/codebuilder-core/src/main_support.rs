//! What every `main.rs` does the same way: logs to stderr with tracing, and a failure becomes
//! one `error: ...` line and a non-zero exit, never a panic or a backtrace.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Installs the stderr logger (`CODEBUILDER_LOG`, e.g. `debug`; default `warn`), runs `body`,
/// and turns an error into `error: CAUSE: CAUSE...` on stderr with exit status 1.
pub fn run(body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODEBUILDER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
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
