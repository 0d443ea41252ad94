use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use codebuilder_core::{home::DEFAULT_HOME, main_support, AppName, Home, Settings};
use codebuilder_ops::ps;

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
    /// List APP's process types, their desired and ready pods, and each pod's state.
    #[command(name = "ps")]
    Ps {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Set how many pods each process type runs, now and for every later deploy.
    #[command(name = "ps:scale")]
    PsScale { app: String, scale: Vec<String> },
    /// Show the logs of APP's pods, each line naming its pod.
    #[command(name = "logs")]
    Logs {
        app: String,
        /// Lines of each pod's past log to show first.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
        tail: u32,
        /// Keep following new lines until the client disconnects.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the pods of this process type.
        #[arg(long)]
        process: Option<String>,
    },
    /// Run a one-off process with the current release's image and config; its exit status is
    /// the command's.
    #[command(name = "run")]
    Run {
        app: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
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
            Command::Ps { app: name, json } => {
                ps::ps(&settings, &app(&name)?, json, &mut io::stdout().lock())?;
            }
            Command::PsScale { app: name, scale } => {
                let cancel = main_support::stop_flag()?;
                ps::scale(
                    &home,
                    &settings,
                    &app(&name)?,
                    &scale,
                    &cancel,
                    &mut io::stdout().lock(),
                )?;
            }
            Command::Logs {
                app: name,
                tail,
                follow,
                process,
            } => {
                let cancel = main_support::stop_flag()?;
                ps::logs(
                    &settings,
                    &app(&name)?,
                    process.as_deref(),
                    tail,
                    follow,
                    &cancel,
                )?;
            }
            Command::Run { app: name, command } => {
                let cancel = main_support::stop_flag()?;
                let status = ps::run(&settings, &app(&name)?, &command, &cancel)?;
                return Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
