use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use codebuilder_commands::{help, parse_words, Request, REQUEST_ENV};
use codebuilder_core::scratch::Scratch;
use codebuilder_core::settings::table::HOME;
use codebuilder_core::{main_support, Home, Settings};
use codebuilder_ops::dispatch::{self, Context};

/// Operates apps: what `ssh git@HOST COMMAND` runs once codebuilder-receive has checked the
/// key's access, and what admins run with `kubectl exec`: codebuilder-ops COMMAND [ARGS...],
/// the same commands as over ssh, as an admin.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = HOME.name, default_value = HOME.default.value())]
    home: PathBuf,
    /// The command and its words, as over ssh: they are read by the command table alone.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    words: Vec<String>,
}

fn main() -> ExitCode {
    main_support::run(|| {
        let matches = Cli::command().after_help(help::overview()).get_matches();
        let cli = Cli::from_arg_matches(&matches)?;
        let home = Home::new(cli.home);
        let _scratch = Scratch::enter(&home);
        let settings = Settings::from_env()?;
        let request = match std::env::var(REQUEST_ENV) {
            // What codebuilder-receive decided for an ssh session.
            Ok(json) if cli.words.is_empty() => serde_json::from_str::<Request>(&json)?,
            Ok(_) => anyhow::bail!("{REQUEST_ENV} is set: give no command words with it"),
            Err(_) => {
                let words: Vec<&str> = cli.words.iter().map(String::as_str).collect();
                let command = match words.as_slice() {
                    [] => parse_words(&["help"], &settings.namespace)?,
                    _ => parse_words(&words, &settings.namespace)?,
                };
                Request {
                    command,
                    read_only: false,
                }
            }
        };
        let cx = Context {
            home: &home,
            settings: &settings,
            cancel: main_support::stop_flag()?,
        };
        dispatch::run(&cx, request)
    })
}
