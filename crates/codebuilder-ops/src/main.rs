use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use codebuilder_apps::ConfigKey;
use codebuilder_core::{home::DEFAULT_HOME, main_support, AppName, Home, Settings};
use codebuilder_ops::apps::{self, Viewer};
use codebuilder_ops::config;
use codebuilder_ops::ps;
use codebuilder_ops::release::{self, Operator};
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
    /// List APP's config vars.
    #[command(name = "config")]
    Config {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the value of APP's config var KEY.
    #[command(name = "config:get")]
    ConfigGet { app: String, key: String },
    /// Set config vars and deploy them as a new release.
    #[command(name = "config:set")]
    ConfigSet {
        app: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        /// Each VALUE is base64, for values with spaces or newlines.
        #[arg(long)]
        encoded: bool,
        /// Only store them: the next release gets them.
        #[arg(long)]
        no_deploy: bool,
    },
    /// Remove config vars and deploy that as a new release.
    #[command(name = "config:unset")]
    ConfigUnset {
        app: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// Only store the change: the next release gets it.
        #[arg(long)]
        no_deploy: bool,
    },
    /// List APP's releases, oldest first.
    #[command(name = "releases")]
    Releases {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Go back to release vN (default: the one before the current), its image and config.
    #[command(name = "rollback")]
    Rollback {
        app: String,
        #[arg(value_name = "vN")]
        version: Option<String>,
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
    /// Show APP's quota, what it uses of it, and its containers' default requests and limits.
    #[command(name = "quota:show")]
    QuotaShow {
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
        let output = Output::stdout();
        let cancel = main_support::stop_flag()?;
        let operator = |app: AppName| Operator {
            home: &home,
            settings: &settings,
            app,
            by: std::env::var("CODEBUILDER_PUSHER").unwrap_or_else(|_| "admin".into()),
            output: &output,
            cancel: Arc::clone(&cancel),
        };
        let mut out = io::stdout();
        match cli.command {
            Command::Builds { app: name, json } => {
                codebuilder_build::commands::builds(&home, app(&name)?.as_str(), json, &mut out)?
            }
            Command::Apps { json } => {
                let viewer = Viewer::from_env(&home, &settings)?;
                apps::list(&home, &settings, &viewer, json, &mut out)?
            }
            Command::AppsInfo { app: name, json } => {
                let app = app(&name)?;
                let viewer = Viewer::from_env(&home, &settings)?;
                apps::info(&home, &settings, &app, &viewer, json, &mut out)?
            }
            Command::AppsDestroy { app: name, confirm } => {
                destroy::destroy(&home, &settings, &app(&name)?, confirm.as_deref(), &output)?
            }
            Command::BuildsLog { app: name, number } => {
                builds::log(&home, &app(&name)?, number.as_deref(), &mut out)?
            }
            Command::Rebuild {
                app: name,
                revision,
            } => builds::rebuild(&home, &app(&name)?, revision.as_deref())?,
            Command::Config { app: name, json } => {
                config::show(&operator(app(&name)?), json, &mut out)?
            }
            Command::ConfigGet { app: name, key } => {
                let (app, key) = (app(&name)?, ConfigKey::parse(&key)?);
                config::get(&operator(app), &key, &mut out)?
            }
            Command::ConfigSet {
                app: name,
                assignments,
                encoded,
                no_deploy,
            } => {
                let app = app(&name)?;
                let set = assignments
                    .iter()
                    .map(|a| config::parse_assignment(a, encoded))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                config::change(&operator(app), set, Vec::new(), !no_deploy)?
            }
            Command::ConfigUnset {
                app: name,
                keys,
                no_deploy,
            } => {
                let app = app(&name)?;
                let unset = keys
                    .iter()
                    .map(|k| ConfigKey::parse(k))
                    .collect::<Result<Vec<_>, _>>()?;
                config::change(&operator(app), Vec::new(), unset, !no_deploy)?
            }
            Command::Releases { app: name, json } => {
                release::releases(&operator(app(&name)?), json, &mut out)?
            }
            Command::Rollback { app: name, version } => {
                let app = app(&name)?;
                let version = version.as_deref().map(release::parse_version).transpose()?;
                release::rollback(&operator(app), version)?
            }
            Command::Ps { app: name, json } => {
                ps::ps(&settings, &app(&name)?, json, &mut out)?;
            }
            Command::PsScale { app: name, scale } => {
                ps::scale(&home, &settings, &app(&name)?, &scale, &cancel, &mut out)?;
            }
            Command::Logs {
                app: name,
                tail,
                follow,
                process,
            } => {
                ps::logs(
                    &settings,
                    &app(&name)?,
                    process.as_deref(),
                    tail,
                    follow,
                    &cancel,
                )?;
            }
            Command::QuotaShow { app: name, json } => {
                codebuilder_ops::quota::show(&settings, &app(&name)?, json, &mut out)?
            }
            Command::Run { app: name, command } => {
                let status = ps::run(&settings, &app(&name)?, &command, &cancel)?;
                return Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)));
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
