//! The access commands, shared by the `codebuilder-keys` CLI and `access*`/`apps:transfer`
//! over ssh (where the session has already checked that the key is the app's owner or an
//! admin): who may use an app, granting, taking back, changing the owner. Keys are named by
//! the caller, which looks them up in the key store.

use std::io::Write;

use codebuilder_core::{AppName, KeyName};

use crate::{AppStore, KeyId, Level};

/// `access APP [--json]`: the owner, then each collaborator and what it may do.
pub fn show(apps: &AppStore, app: &AppName, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    apps.existing(app)?;
    let state = apps.state(app)?;
    let declared = apps.declared(app)?;
    if json {
        let stored = state.iter().flat_map(|s| &s.access).map(|g| {
            serde_json::json!({
                "name": g.key.name, "fingerprint": g.key.fingerprint,
                "access": g.level, "source": "store",
            })
        });
        let declared = declared.iter().map(|g| {
            serde_json::json!({
                "name": g.key, "fingerprint": null, "access": g.level,
                "source": g.path.display().to_string(),
            })
        });
        let value = serde_json::json!({
            "app": app.as_str(),
            "owner": state.as_ref().map(|s| &s.owner),
            "access": stored.chain(declared).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut rows: Vec<(String, String, String)> = Vec::new();
    match &state {
        Some(state) => {
            rows.push((
                "owner".into(),
                state.owner.name.to_string(),
                state.owner.fingerprint.to_string(),
            ));
            for g in &state.access {
                rows.push((
                    g.level.to_string(),
                    g.key.name.to_string(),
                    g.key.fingerprint.to_string(),
                ));
            }
        }
        None => rows.push((
            "owner".into(),
            "-".into(),
            format!("none: only admins reach {app} until one runs 'apps:transfer {app} KEYNAME'"),
        )),
    }
    for g in &declared {
        rows.push((
            g.level.to_string(),
            g.key.to_string(),
            format!("declared in {}", g.path.display()),
        ));
    }
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (role, name, detail) in rows {
        writeln!(out, "{role:<5}  {name:width$}  {detail}")?;
    }
    Ok(())
}

/// `access:add APP KEYNAME [--read]`, for `key` (the stored key of that name).
pub fn add(apps: &AppStore, app: &AppName, key: KeyId, level: Level) -> anyhow::Result<String> {
    apps.existing(app)?;
    let name = key.name.clone();
    apps.grant(app, key, level)?;
    Ok(match level {
        Level::Read => format!("key {name} can now clone {app}"),
        Level::Push => format!("key {name} can now clone and push to {app}"),
    })
}

/// `access:remove APP KEYNAME`: works for a key that no longer exists, too.
pub fn remove(apps: &AppStore, app: &AppName, name: &KeyName) -> anyhow::Result<String> {
    apps.existing(app)?;
    apps.revoke(app, name)?;
    Ok(format!("key {name} no longer has access to {app}"))
}

/// `apps:transfer APP KEYNAME`, to `key` (the stored key of that name).
pub fn transfer(apps: &AppStore, app: &AppName, key: KeyId) -> anyhow::Result<String> {
    apps.existing(app)?;
    let name = key.name.clone();
    Ok(match apps.transfer(app, key)? {
        Some(previous) => format!(
            "{app} now belongs to key {name}; key {} keeps push access ('access:remove {app} {}' takes it away)",
            previous.name, previous.name
        ),
        None => format!("{app} now belongs to key {name}"),
    })
}
