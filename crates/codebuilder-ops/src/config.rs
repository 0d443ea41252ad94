//! `config`, `config:get`, `config:set`, `config:unset`: an app's config vars. A change is
//! stored, then deployed as a new release with the current release's image (unless
//! `--no-deploy`, or the app has no release yet).

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use base64ct::{Base64, Encoding};
use codebuilder_apps::{config::check_value, ConfigKey, ConfigStore};
use codebuilder_deploy::Cause;

use crate::release::Operator;

/// `KEY=VALUE`, validated; with `encoded`, VALUE is base64 (as Dokku's `--encoded`), for
/// values ssh would split: spaces, newlines.
pub fn parse_assignment(text: &str, encoded: bool) -> anyhow::Result<(ConfigKey, String)> {
    let (key, value) = text.split_once('=').with_context(|| {
        format!(
            "\"{text}\" is not KEY=VALUE: config:set APP [--encoded] KEY=VALUE... [--no-deploy]"
        )
    })?;
    let key = ConfigKey::parse(key)?;
    let value = if encoded {
        let bytes = Base64::decode_vec(value).map_err(|_| {
            anyhow!("the value of {key} is not base64: with --encoded, give each value as `base64 -w0` prints it")
        })?;
        String::from_utf8(bytes).map_err(|_| {
            anyhow!("the value of {key} is not UTF-8 text once decoded: a config var holds text")
        })?
    } else {
        value.to_owned()
    };
    check_value(&key, &value)?;
    Ok((key, value))
}

/// `config APP [--json]`.
pub fn show(op: &Operator, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    op.check_app()?;
    let config = ConfigStore::new(op.home).load(&op.app)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &config.env())?;
        writeln!(out)?;
    } else if config.vars.is_empty() {
        writeln!(out, "{} has no config vars", op.app)?;
    } else {
        for (key, value) in &config.vars {
            writeln!(out, "{key}={value}")?;
        }
    }
    Ok(())
}

/// `config:get APP KEY`: the value alone.
pub fn get(op: &Operator, key: &ConfigKey, out: &mut impl Write) -> anyhow::Result<()> {
    op.check_app()?;
    let config = ConfigStore::new(op.home).load(&op.app)?;
    let Some(value) = config.vars.get(key) else {
        bail!(
            "{} has no config var {key}: 'config {}' lists them",
            op.app,
            op.app
        );
    };
    writeln!(out, "{value}")?;
    Ok(())
}

/// `config:set` (`set` non-empty) and `config:unset` (`unset` non-empty).
pub fn change(
    op: &Operator,
    set: Vec<(ConfigKey, String)>,
    unset: Vec<ConfigKey>,
    deploy: bool,
) -> anyhow::Result<()> {
    op.check_app()?;
    let app = &op.app;
    let _lock = op.lock()?;
    let store = ConfigStore::new(op.home);
    let before = store.load(app)?;
    let mut config = before.clone();
    let names = |keys: &mut dyn Iterator<Item = &ConfigKey>| -> Vec<String> {
        let mut names: Vec<String> = keys.map(|k| k.to_string()).collect();
        names.sort();
        names.dedup();
        names
    };
    let cause = Cause::Config {
        set: names(&mut set.iter().map(|(k, _)| k)),
        unset: names(&mut unset.iter()),
    };
    for (key, value) in set {
        config.vars.insert(key, value);
    }
    for key in &unset {
        config.vars.remove(key);
    }
    store.save(app, &config)?;
    let what = cause.to_string();
    let what = what.strip_prefix("config ").unwrap_or(&what);
    if !deploy {
        op.output.step(&format!(
            "Stored on {app}: {what} (not deployed: --no-deploy)"
        ));
        return Ok(());
    }
    op.with_deployer(|deployer| {
        if let Some(why) = op.not_deployed(deployer)? {
            op.output
                .step(&format!("Stored on {app}: {what} (not deployed: {why})"));
            return Ok(());
        }
        op.output.step(&format!("Stored on {app}: {what}"));
        // A release that does not go live leaves the config of the one that serves.
        let release = op.redeploy(deployer, &config, &cause).inspect_err(|_| {
            let restored = store.load(app).and_then(|mut now| {
                now.vars = before.vars.clone();
                store.save(app, &now)
            });
            if let Err(e) = restored {
                op.output.warning(&format!("{e}"));
            }
        })?;
        op.output
            .step(&format!("Done: {app} release {release} is live"));
        Ok(())
    })
}
