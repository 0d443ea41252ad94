use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use codebuilder_core::{home::DEFAULT_HOME, main_support, AppName, Home, Settings};

/// Operates apps: what `ssh git@HOST VERB APP ...` runs once codebuilder-receive has checked
/// the key's access, and what admins run with `kubectl exec`.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = "CODEBUILDER_HOME", default_value = DEFAULT_HOME, global = true)]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List APP's builds, oldest first.
    #[command(name = "builds")]
    Builds {
        app: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    main_support::run(|| {
        let cli = match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
                e.print()?;
                return Ok(ExitCode::SUCCESS);
            }
            // clap's first line says what was wrong; the usage lines follow with --help.
            Err(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                bail!(
                    "{}: see codebuilder-ops --help",
                    first.trim_start_matches("error: ")
                )
            }
        };
        let home = Home::new(cli.home);
        let settings = Settings::from_env()?;
        let app = |name: &str| AppName::parse(name, &settings.namespace);
        match cli.command {
            Command::Builds { app: name, json } => codebuilder_build::commands::builds(
                &home,
                app(&name)?.as_str(),
                json,
                &mut io::stdout().lock(),
            )?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
