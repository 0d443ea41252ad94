use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codebuilder_core::settings::table::{HOME, HOST_KEYS, LISTEN, SSHD};
use codebuilder_core::{main_support, Home};

/// Starts codebuilder: prepares the home and host keys, writes sshd_config, runs sshd.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = HOME.name, default_value = HOME.default.value())]
    home: PathBuf,
    /// Address and port sshd listens on.
    #[arg(long, env = LISTEN.name, default_value = LISTEN.default.value())]
    listen: SocketAddr,
    /// The sshd binary.
    #[arg(long, env = SSHD.name, default_value = SSHD.default.value())]
    sshd: PathBuf,
    /// Folder with ssh_host_*_key files to use instead of generated ones (a mounted Secret).
    #[arg(long, env = HOST_KEYS.name)]
    host_keys: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The log relay codebuilder-sshd starts beside sshd: the sessions' log lines, from the
    /// socket on stdin, to stderr.
    #[command(name = codebuilder_sshd::relay::RELAY_COMMAND, hide = true)]
    LogRelay,
    /// Exits 0 when sshd listens on the address it was given (`--listen`), opening no
    /// connection: the container's readiness and liveness probe.
    Ready,
}

fn main() -> ExitCode {
    main_support::run(|| {
        let cli = Cli::parse();
        match cli.command {
            Some(Command::LogRelay) => {
                codebuilder_sshd::relay::run()?;
                return Ok(ExitCode::SUCCESS);
            }
            Some(Command::Ready) => {
                codebuilder_sshd::ready::check(cli.listen)?;
                return Ok(ExitCode::SUCCESS);
            }
            None => {}
        }
        let options = codebuilder_sshd::Options {
            home: Home::new(cli.home),
            listen: cli.listen,
            sshd: cli.sshd,
            host_keys: cli.host_keys,
        };
        codebuilder_sshd::run(&options)?;
        Ok(ExitCode::SUCCESS)
    })
}
