//! `builds APP`, `builds:log APP [N]` and `rebuild APP [REV]`.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context};
use codebuilder_build::records::{Records, REBUILT_BY};
use codebuilder_core::names::printable;
use codebuilder_core::{AppName, Fingerprint, Home};

/// `builds APP [--json]`: the app's build records, oldest first.
pub fn list(home: &Home, app: &AppName, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let records = Records::new(home, app).list()?;
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
            &r.rev[..7.min(r.rev.len())],
            result.as_str().unwrap_or(""),
            started,
            took,
            r.pusher
        )?;
    }
    Ok(())
}

/// `builds:log APP [N]`: the whole log of build N of `app`, by default of its last build.
pub fn log(
    home: &Home,
    app: &AppName,
    wanted: Option<u64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let records = Records::new(home, app).list()?;
    let record = match wanted {
        None => records
            .last()
            .with_context(|| format!("{app} has no builds yet: push to its deploy branch"))?,
        Some(n) => records
            .iter()
            .find(|r| r.number == n)
            .with_context(|| format!("{app} has no build {n}: 'builds {app}' lists them"))?,
    };
    // The record names its log beside it; nothing else is read.
    if Path::new(&record.log).file_name() != Some(record.log.as_ref()) {
        bail!(
            "the record of build {} of {app} names no log file",
            record.number
        );
    }
    let path = home.builds_dir(app).join(&record.log);
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
    let pusher = match std::env::var("CODEBUILDER_PUSHER") {
        Ok(name) if fingerprint.is_some() => format!("{REBUILT_BY}{}", printable(&name)),
        _ => format!("{REBUILT_BY}admin"),
    };
    codebuilder_build::commands::rebuild(home, app.as_str(), rev, pusher, fingerprint)
}
