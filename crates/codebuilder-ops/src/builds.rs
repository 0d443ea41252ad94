//! `builds APP`, `builds:log APP [N]` and `rebuild APP [REV]`.

use std::fs::File;
use std::io::{self, Write};

use anyhow::{bail, Context};
use codebuilder_apps::records::Records;
use codebuilder_apps::{AppStore, Refusal};
use codebuilder_core::{Actor, AppName, Fingerprint, Home, KeyName, Settings};

use crate::apps::Viewer;

/// The build records of `app` that `viewer` reads, decided again here (the app may have
/// ended, or been pushed anew by another key, since the session was let in): the app's own
/// when the viewer may reach it; while the name is free, those the viewer's key pushed
/// before the app ended. Anyone else gets the line a key without access gets.
pub fn readable(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    viewer: &Viewer,
) -> anyhow::Result<Records> {
    let Some(key) = &viewer.key else {
        // An admin at `kubectl exec`.
        return Ok(Records::new(home, app));
    };
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    let exists = apps.state(app)?.is_some() || home.repo(app).is_dir();
    if exists && (viewer.admin || viewer.role_of(&apps, app)?.is_some()) {
        return Ok(Records::new(home, app));
    }
    if !exists {
        if let Some(freed) = freed_of(home, app, &key.fingerprint)? {
            return Ok(freed);
        }
        if viewer.admin {
            return Err(Refusal::NoSuchApp(app.clone()).into());
        }
    }
    Err(Refusal::NoAccess {
        app: app.clone(),
        key: key.name.clone(),
    }
    .into())
}

/// The records of builds of `app` that `pusher` pushed before the app ended without
/// `apps:destroy`; `None` when it left none. They are the key's own while the name is free.
pub fn freed_of(
    home: &Home,
    app: &AppName,
    pusher: &Fingerprint,
) -> anyhow::Result<Option<Records>> {
    let freed = Records::freed(home, app, pusher);
    Ok((!freed.list()?.is_empty()).then_some(freed))
}

/// `builds APP [--json]`: `records` of the app, oldest first.
pub fn list(
    records: &Records,
    app: &AppName,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let records = records.list()?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    if records.is_empty() {
        writeln!(out, "no builds of {app} yet")?;
    }
    for r in &records {
        let started = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.started_at),
        );
        let result = serde_json::to_value(r.result)?;
        let took = r
            .finished_at
            .map(|f| format!("{}s", f.saturating_sub(r.started_at)))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:>4}  {}  {:<11}  {}  {:>6}  {}",
            r.number,
            r.rev.short(),
            result.as_str().unwrap_or(""),
            started,
            took,
            r.pusher
        )?;
    }
    Ok(())
}

/// `builds:log APP [N]`: the whole log of build N among `records` of `app`, by default of
/// the last.
pub fn log(
    records: &Records,
    app: &AppName,
    wanted: Option<u64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let listed = records.list()?;
    let record = match wanted {
        None => listed
            .last()
            .with_context(|| format!("{app} has no builds yet: push to its deploy branch"))?,
        Some(n) => listed
            .iter()
            .find(|r| r.number == n)
            .with_context(|| format!("{app} has no build {n}: 'builds {app}' lists them"))?,
    };
    // The record names its log beside it; nothing else is read.
    let Some(path) = records.log_path(record) else {
        bail!(
            "the record of build {} of {app} names no log file",
            record.number
        );
    };
    let mut file = File::open(&path).with_context(|| {
        format!(
            "the log of build {} of {app} is gone ({})",
            record.number,
            path.display()
        )
    })?;
    io::copy(&mut file, out)?;
    Ok(())
}

/// `rebuild APP [REV]`: builds and deploys REV (the deploy branch by default) again, as the
/// key of the session (or the admin at `kubectl exec`), with a push's lock, output and record.
pub fn rebuild(home: &Home, app: &AppName, rev: Option<&str>) -> anyhow::Result<()> {
    let fingerprint = std::env::var("CODEBUILDER_PUSHER_FINGERPRINT")
        .ok()
        .map(|fp| Fingerprint::parse(&fp))
        .transpose()?;
    let by = match std::env::var("CODEBUILDER_PUSHER") {
        Ok(name) if fingerprint.is_some() => Some(KeyName::parse(&name)?),
        _ => None,
    };
    let pusher = Actor::Rebuild { by };
    codebuilder_build::commands::rebuild(home, app.as_str(), rev, pusher, fingerprint)
}
