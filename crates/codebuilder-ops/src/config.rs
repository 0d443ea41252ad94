//! `config`, `config:get`, `config:set`, `config:unset`: an app's config vars. A change is
//! stored, then deployed as a new release with the current release's image (unless
//! `--no-deploy`, or the app has no release yet).

use std::io::Write;

use anyhow::bail;
use codebuilder_apps::{ConfigKey, ConfigStore};
use codebuilder_deploy::Cause;

use crate::release::Operator;

/// `config APP [--json]`; with `names_only` (a key with `read` access), the names alone.
pub fn show(
    op: &Operator,
    json: bool,
    names_only: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    op.check_app()?;
    let config = ConfigStore::new(op.home).load(&op.app)?;
    if names_only && json {
        serde_json::to_writer_pretty(&mut *out, &config.vars.keys().collect::<Vec<_>>())?;
        writeln!(out)?;
    } else if names_only && !config.vars.is_empty() {
        for key in config.vars.keys() {
            writeln!(out, "{key}")?;
        }
    } else if json {
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
