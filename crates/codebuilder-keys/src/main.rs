use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codebuilder_apps::commands as access;
use codebuilder_apps::{AppStore, Level};
use codebuilder_core::settings::table::{CONFIG_ACCESS, CONFIG_KEYS, HOME, SSH_USER};
use codebuilder_core::{main_support, AppName, Home, KeyName, Settings};
use codebuilder_keys::{authorized, commands, KeyStore};

/// The codebuilder key store, and sshd's AuthorizedKeysCommand.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// State directory (keys, repos, builds, host keys).
    #[arg(long, env = HOME.name, default_value = HOME.default.value(), global = true)]
    home: PathBuf,
    /// Read-only file of declared keys (`NAME[:admin] TYPE BASE64` lines), merged in.
    #[arg(long, env = CONFIG_KEYS.name, global = true)]
    config_keys: Option<PathBuf>,
    /// Read-only file of declared access to apps (`APP KEYNAME push|read` lines), merged in.
    #[arg(long, env = CONFIG_ACCESS.name, global = true)]
    config_access: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a public key under NAME, read from FILE or standard input.
    Add {
        /// May manage keys over ssh (keys:add, keys:list, keys:remove).
        #[arg(long)]
        admin: bool,
        name: String,
        file: Option<PathBuf>,
    },
    /// List the stored keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a key by name or by SHA256 fingerprint.
    Remove { key: String },
    /// Show who may use APP: its owner and collaborators.
    Access {
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Let the key NAME clone and push to APP (clone only with --read).
    AccessAdd {
        app: String,
        name: String,
        #[arg(long)]
        read: bool,
    },
    /// Take back what the key NAME may do with APP.
    AccessRemove { app: String, name: String },
    /// Make the key NAME the owner of APP.
    AppsTransfer { app: String, name: String },
    /// For sshd: AuthorizedKeysCommand PATH --home HOME authorized-keys %u %t %k.
    AuthorizedKeys {
        /// The only user keys are valid for (sshd gives commands no environment: pass it here).
        #[arg(long, env = SSH_USER.name, default_value = SSH_USER.default.value())]
        ssh_user: String,
        user: String,
        key_type: String,
        key: String,
    },
}

fn main() -> ExitCode {
    main_support::run(|| {
        let cli = Cli::parse();
        let home = Home::new(cli.home);
        let store = KeyStore::new(&home).with_config_keys(cli.config_keys);
        let apps = |app: &str| -> anyhow::Result<(AppStore, AppName)> {
            let namespace = Settings::from_env()?.namespace;
            let app = AppName::parse(app, &namespace)?;
            Ok((
                AppStore::new(&home, &namespace, cli.config_access.clone()),
                app,
            ))
        };
        match cli.command {
            Command::Add { admin, name, file } => {
                let input: Box<dyn Read> = match &file {
                    Some(path) => Box::new(
                        File::open(path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    ),
                    None => Box::new(io::stdin()),
                };
                println!(
                    "{}",
                    commands::added_message(&commands::add(&store, &name, admin, input)?)
                );
            }
            Command::List { json } => commands::list(&store, json, &mut io::stdout().lock())?,
            Command::Remove { key } => println!(
                "{}",
                commands::removed_message(&commands::remove(&store, &key)?)
            ),
            Command::Access { app, json } => {
                let (apps, app) = apps(&app)?;
                access::show(&apps, &app, json, &mut io::stdout().lock())?;
            }
            Command::AccessAdd { app, name, read } => {
                let (apps, app) = apps(&app)?;
                let level = if read { Level::Read } else { Level::Push };
                let key = store.key_id(&KeyName::parse(&name)?)?;
                println!("{}", access::add(&apps, &app, key, level)?);
            }
            Command::AccessRemove { app, name } => {
                let (apps, app) = apps(&app)?;
                println!("{}", access::remove(&apps, &app, &KeyName::parse(&name)?)?);
            }
            Command::AppsTransfer { app, name } => {
                let (apps, app) = apps(&app)?;
                let key = store.key_id(&KeyName::parse(&name)?)?;
                println!("{}", access::transfer(&apps, &app, key)?);
            }
            Command::AuthorizedKeys {
                ssh_user,
                user,
                key_type,
                key,
            } => {
                if let Some(line) =
                    authorized::authorized_keys(&store, &ssh_user, &user, &key_type, &key)?
                {
                    println!("{line}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
