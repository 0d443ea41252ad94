use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codebuilder_build::commands;
use codebuilder_core::scratch::Scratch;
use codebuilder_core::settings::table::HOME;
use codebuilder_core::{main_support, Home};

/// Builds, pushes and deploys apps: git's pre-receive hook, and admin commands.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = HOME.name, default_value = HOME.default.value(), global = true)]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// git's pre-receive hook: reads "OLD NEW REF" lines on standard input.
    Hook,
    /// Write the default chart for APP into DIR: a start for the app's own chart/ folder.
    Chart { app: String, dir: PathBuf },
    /// The apps' build caches.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The build context filter: the tar on stdin to stdout without what IGNORE_FILE (a
    /// .dockerignore) lists. Run by the build between `git archive` and `docker build -`.
    #[command(hide = true)]
    ContextFilter { ignore_file: PathBuf },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Empty APP's buildpack cache: its next build starts cold.
    Purge { app: String },
}

fn main() -> ExitCode {
    main_support::run(|| {
        let cli = Cli::parse();
        let home = Home::new(cli.home);
        let _scratch = Scratch::enter(&home);
        match cli.command {
            Command::Hook => commands::hook(&home, io::stdin().lock())?,
            Command::Chart { app, dir } => commands::write_chart(&app, &dir)?,
            Command::Cache(CacheCommand::Purge { app }) => commands::cache_purge(&home, &app)?,
            Command::ContextFilter { ignore_file } => {
                codebuilder_build::context::filter_stdio(&ignore_file)?
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
