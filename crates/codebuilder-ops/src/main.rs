use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use codebuilder_core::{home::DEFAULT_HOME, main_support, AppName, Home, Settings};
use codebuilder_ops::apps::{self, Viewer};
use codebuilder_ops::{builds, destroy};
use codebuilder_process::Output;

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
    /// List the apps this key may reach (admins: all).
    #[command(name = "apps")]
    Apps {
        #[arg(long)]
        json: bool,
    },
    /// Show APP's owner, your role, deploy branch, last build and what runs.
    #[command(name = "apps:info")]
    AppsInfo {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove APP and everything of it: release, namespace, repository, builds, images, cache.
    #[command(name = "apps:destroy")]
    AppsDestroy {
        app: String,
        /// APP again.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Show the log of APP's build NUMBER (by default its last).
    #[command(name = "builds:log")]
    BuildsLog { app: String, number: Option<String> },
    /// Build and deploy REVISION of APP again (by default its deploy branch).
    #[command(name = "rebuild")]
    Rebuild {
        app: String,
        revision: Option<String>,
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
            Command::Apps { json } => {
                let viewer = Viewer::from_env(&home, &settings)?;
                apps::list(&home, &settings, &viewer, json, &mut io::stdout().lock())?
            }
            Command::AppsInfo { app: name, json } => {
                let app = app(&name)?;
                let viewer = Viewer::from_env(&home, &settings)?;
                apps::info(
                    &home,
                    &settings,
                    &app,
                    &viewer,
                    json,
                    &mut io::stdout().lock(),
                )?
            }
            Command::AppsDestroy { app: name, confirm } => destroy::destroy(
                &home,
                &settings,
                &app(&name)?,
                confirm.as_deref(),
                &Output::stdout(),
            )?,
            Command::BuildsLog { app: name, number } => builds::log(
                &home,
                &app(&name)?,
                number.as_deref(),
                &mut io::stdout().lock(),
            )?,
            Command::Rebuild {
                app: name,
                revision,
            } => builds::rebuild(&home, &app(&name)?, revision.as_deref())?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
