//! `quota:show APP [--json]`: what the app may use of the cluster (its ResourceQuota), what
//! it uses now, and what each container gets when it asks for nothing (its LimitRange), as
//! the app's own account reads them.

use std::io::Write;

use anyhow::bail;
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{AppName, Settings};
use codebuilder_deploy::quota::{DEFAULTS, QUOTA};
use codebuilder_deploy::quota_state::{self, Share};
use serde_json::{json, Map, Value};

/// `quota:show APP [--json]`.
pub fn show(
    settings: &Settings,
    app: &AppName,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if settings.deploy == DeployMode::None {
        bail!("{app} has no quota here: codebuilder does not deploy (CODEBUILDER_DEPLOY=none)");
    }
    let Some(state) = quota_state::read(settings, app)? else {
        let why = match settings.app_quota {
            None => "apps have none (CODEBUILDER_APP_QUOTA=off)",
            Some(_) => "it gets one with its first deploy (git push)",
        };
        if json {
            writeln!(out, "null")?;
        } else {
            writeln!(out, "{app} has no quota: {why}")?;
        }
        return Ok(());
    };
    if json {
        let table = |shares: &[Share], first: &str, second: &str| -> Value {
            let rows: Map<String, Value> = shares
                .iter()
                .map(|s| {
                    let row = json!({first: s.first, second: s.second});
                    (s.resource.clone(), row)
                })
                .collect();
            Value::Object(rows)
        };
        let shown = json!({
            "quota": table(&state.resources, "used", "hard"),
            "defaults": table(&state.defaults, "request", "limit"),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        return Ok(());
    }
    let width = state
        .resources
        .iter()
        .chain(&state.defaults)
        .map(|s| s.resource.len())
        .max()
        .unwrap_or_default();
    writeln!(out, "=== {app}: used of its quota (resourcequota/{QUOTA})")?;
    for share in &state.resources {
        writeln!(
            out,
            "{:width$}  {} of {}",
            share.resource, share.first, share.second
        )?;
    }
    if !state.defaults.is_empty() {
        writeln!(
            out,
            "=== each container that asks for none gets (limitrange/{DEFAULTS})"
        )?;
        for share in &state.defaults {
            writeln!(
                out,
                "{:width$}  request {}, limit {}",
                share.resource, share.first, share.second
            )?;
        }
    }
    Ok(())
}
