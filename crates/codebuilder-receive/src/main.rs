use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use codebuilder_core::settings::table::HOME;
use codebuilder_core::{main_support, Home};

/// sshd's forced command: serves git push/clone and admin key commands for one key.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = HOME.name, default_value = HOME.default.value())]
    home: PathBuf,
    /// Name of the key the client authenticated with (set by codebuilder-keys).
    #[arg(long)]
    user: String,
    /// SHA256 fingerprint of that key: the session's identity (set by codebuilder-keys).
    #[arg(long)]
    fingerprint: String,
}

fn main() -> ExitCode {
    main_support::run(|| {
        let cli = Cli::parse();
        // Not UTF-8 is bad input, not "no command": keep it so that the parser refuses it.
        let command =
            std::env::var_os("SSH_ORIGINAL_COMMAND").map(|c| c.to_string_lossy().into_owned());
        codebuilder_receive::session::serve(
            &Home::new(cli.home),
            &cli.user,
            &cli.fingerprint,
            command.as_deref(),
        )
    })
}
