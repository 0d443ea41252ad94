//! Runs one typed command of the table: an ssh session's (handed over by codebuilder-receive
//! once the key's access is decided) or an admin's at `kubectl exec`. Every name and value
//! arrives validated; nothing here reads words.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use codebuilder_apps::commands as access;
use codebuilder_apps::config::{check_value, MAX_VALUE};
use codebuilder_apps::{AppStore, ConfigKey};
use codebuilder_commands::{help, Command, ConfigValues, Request, Verb};
use codebuilder_core::{Actor, AppName, Home, Settings};
use codebuilder_keys::{commands, KeyStore};
use codebuilder_process::Output;

use crate::apps::{self, Viewer};
use crate::release::{self, Operator};
use crate::{builds, config, destroy, ps, quota};

/// What every command runs with.
pub struct Context<'a> {
    pub home: &'a Home,
    pub settings: &'a Settings,
    pub cancel: Arc<AtomicBool>,
}

/// Runs `request`; its exit code is the command's (a one-off `run` passes its own on).
pub fn run(cx: &Context, request: Request) -> anyhow::Result<ExitCode> {
    let Context {
        home,
        settings,
        cancel,
    } = cx;
    let output = Output::stdout();
    let by = Actor::key_or(
        std::env::var("CODEBUILDER_PUSHER").ok().as_deref(),
        Actor::Admin,
    )?;
    let operator = |app: AppName| Operator {
        home,
        settings,
        app,
        by: by.clone(),
        output: &output,
        cancel: Arc::clone(cancel),
    };
    let keys = || KeyStore::new(home).with_config_keys(settings.config_keys.clone());
    let apps = || AppStore::new(home, &settings.namespace, settings.config_access.clone());
    // Not locked for the whole command: a build's output thread writes to stdout too.
    let mut out = io::stdout();
    match request.command {
        Command::ReceivePack { .. } | Command::UploadPack { .. } => {
            bail!("git push and git clone go through ssh: git push ssh://git@HOST/APP")
        }
        Command::Help { verb } => {
            let text = match verb.as_deref().and_then(Verb::find) {
                Some(verb) => help::about(verb),
                None => help::overview(),
            };
            out.write_all(text.as_bytes())?;
        }
        Command::Apps { json } => {
            let viewer = Viewer::from_env(home, settings)?;
            apps::list(home, settings, &viewer, json, &mut out)?
        }
        Command::AppsInfo { app, json } => {
            let viewer = Viewer::from_env(home, settings)?;
            apps::info(home, settings, &app, &viewer, json, &mut out)?
        }
        Command::AppsDestroy { app, confirmed } => {
            let viewer = Viewer::from_env(home, settings)?;
            destroy::destroy(home, settings, &app, confirmed, &viewer, &output)?
        }
        Command::AppsTransfer { app, key } => writeln!(
            out,
            "{}",
            access::transfer(&apps(), &app, keys().key_id(&key)?)?
        )?,
        Command::Access { app, json } => access::show(&apps(), &app, json, &mut out)?,
        Command::AccessAdd { app, key, level } => writeln!(
            out,
            "{}",
            access::add(&apps(), &app, keys().key_id(&key)?, level)?
        )?,
        Command::AccessRemove { app, key } => {
            writeln!(out, "{}", access::remove(&apps(), &app, &key)?)?
        }
        Command::Builds { app, json } => {
            let viewer = Viewer::from_env(home, settings)?;
            let records = builds::readable(home, settings, &app, &viewer)?;
            builds::list(&records, &app, json, &mut out)?
        }
        Command::BuildsLog { app, number } => {
            let viewer = Viewer::from_env(home, settings)?;
            let records = builds::readable(home, settings, &app, &viewer)?;
            builds::log(&records, &app, number, &mut out)?
        }
        Command::CachePurge { app } => {
            codebuilder_build::commands::cache_purge(home, app.as_str())?
        }
        Command::Rebuild { app, revision } => {
            builds::rebuild(home, &app, revision.as_ref().map(|r| r.as_str()))?
        }
        Command::Config { app, json } => {
            config::show(&operator(app), json, request.read_only, &mut out)?
        }
        Command::ConfigGet { app, key } => config::get(&operator(app), &key, &mut out)?,
        Command::ConfigSet {
            app,
            values,
            no_deploy,
        } => {
            let set = match values {
                ConfigValues::Given(set) => set,
                ConfigValues::Stdin(key) => {
                    let value = value_from(io::stdin().lock(), &key)?;
                    vec![(key, value)]
                }
            };
            config::change(&operator(app), set, Vec::new(), !no_deploy)?
        }
        Command::ConfigUnset {
            app,
            keys,
            no_deploy,
        } => config::change(&operator(app), Vec::new(), keys, !no_deploy)?,
        Command::Releases { app, json } => release::releases(&operator(app), json, &mut out)?,
        Command::Rollback { app, version } => release::rollback(&operator(app), version)?,
        Command::Ps { app, json } => ps::ps(settings, &app, json, &mut out)?,
        Command::PsScale { app, scale } => {
            ps::scale(home, settings, &app, &scale, cancel, &mut out)?
        }
        Command::Logs {
            app,
            lines,
            follow,
            process,
        } => ps::logs(settings, &app, process.as_ref(), lines, follow, cancel)?,
        Command::Run { app, command } => {
            let status = ps::run(settings, &app, &command, cancel)?;
            return Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)));
        }
        Command::QuotaShow { app, json } => quota::show(settings, &app, json, &mut out)?,
        Command::KeysAdd { name } => {
            let added = commands::add(&keys(), name.as_str(), false, io::stdin())?;
            writeln!(out, "{}", commands::added_message(&added))?
        }
        Command::KeysList { json } => commands::list(&keys(), json, &mut out)?,
        Command::KeysRemove { key } => {
            let removed = commands::remove(&keys(), key.as_str())?;
            writeln!(out, "{}", commands::removed_message(&removed))?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `config:set APP KEY < FILE`: the value is the input, as `"$(cat FILE)"` would give it
/// (trailing newlines off), up to the config value limit.
fn value_from(input: impl Read, key: &ConfigKey) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_VALUE as u64 + 2)
        .read_to_end(&mut bytes)
        .context("cannot read the value from standard input")?;
    let mut value = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "the value of {key} on standard input is not UTF-8 text: a config var holds text"
        )
    })?;
    value.truncate(value.trim_end_matches(['\n', '\r']).len());
    // Most likely a KEY=VALUE that lost its `=`: an empty value is set as `KEY=`.
    if value.is_empty() {
        bail!("no value for {key} came on standard input: give it as 'config:set APP {key} < FILE', or as {key}=VALUE");
    }
    check_value(key, &value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_from_standard_input_is_the_text_without_its_last_newlines() {
        let key = ConfigKey::parse("TLS_CERT").unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(
            value_from(format!("{pem}\n\n").as_bytes(), &key).unwrap(),
            pem
        );
        let big = "x".repeat(MAX_VALUE);
        assert_eq!(value_from(big.as_bytes(), &key).unwrap(), big);
        assert_eq!(
            value_from("x".repeat(MAX_VALUE + 1).as_bytes(), &key)
                .unwrap_err()
                .to_string(),
            format!("config var TLS_CERT is longer than {MAX_VALUE} bytes: a config var holds a value, not a file")
        );
        assert_eq!(
            value_from(&b"a\0b"[..], &key).unwrap_err().to_string(),
            check_value(&key, "a\0b").unwrap_err().to_string()
        );
        assert!(value_from(&[0xff, 0xfe][..], &key).is_err());
        assert_eq!(
            value_from(&b"\n"[..], &key).unwrap_err().to_string(),
            "no value for TLS_CERT came on standard input: give it as 'config:set APP TLS_CERT < FILE', or as TLS_CERT=VALUE"
        );
    }
}
