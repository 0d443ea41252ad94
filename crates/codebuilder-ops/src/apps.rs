//! `apps` and `apps:info`: the apps a key may reach, and what one of them is and runs.

use std::fs;
use std::io::{self, Write};
use std::process::Command;

use anyhow::Context;
use codebuilder_apps::records::{BuildResult, Records};
use codebuilder_apps::repo::has_branch;
use codebuilder_apps::{AppStore, KeyId, Level, Role};
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{AppName, Fingerprint, Home, ObjectId, Settings};
use codebuilder_keys::KeyStore;
use serde_json::{json, Value};

/// Who runs the command: the key of the ssh session (codebuilder-receive sets
/// CODEBUILDER_PUSHER_FINGERPRINT), or an admin at `kubectl exec` (no key).
pub struct Viewer {
    pub key: Option<KeyId>,
    pub admin: bool,
}

impl Viewer {
    /// The viewer the environment names, its admin-ness from the key store.
    pub fn from_env(home: &Home, settings: &Settings) -> anyhow::Result<Self> {
        let Ok(fingerprint) = std::env::var("CODEBUILDER_PUSHER_FINGERPRINT") else {
            return Ok(Self {
                key: None,
                admin: true,
            });
        };
        let fingerprint = Fingerprint::parse(&fingerprint)?;
        let store = KeyStore::new(home).with_config_keys(settings.config_keys.clone());
        let record = store
            .list()?
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
            .with_context(|| {
                format!("key {fingerprint} has been removed: ask an admin to add it again")
            })?;
        Ok(Self {
            key: Some(record.id()?),
            admin: record.admin,
        })
    }

    /// The role the viewer's key has on `app` (stored or declared); `None` without a key,
    /// or on an app that has no state.
    pub fn role_of(&self, apps: &AppStore, app: &AppName) -> anyhow::Result<Option<Role>> {
        Ok(match (&self.key, apps.state(app)?) {
            (Some(key), Some(state)) => state.role_of(key, &apps.declared(app)?),
            _ => None,
        })
    }

    /// What the viewer is to an app: `owner`, `push`, `read`, `admin`; `None` when the app
    /// is none of its business.
    fn role(&self, apps: &AppStore, app: &AppName) -> anyhow::Result<Option<&'static str>> {
        Ok(match self.role_of(apps, app)? {
            Some(Role::Owner) => Some("owner"),
            Some(Role::Collaborator(Level::Push)) => Some("push"),
            Some(Role::Collaborator(Level::Read)) => Some("read"),
            None if self.admin => Some("admin"),
            None => None,
        })
    }
}

/// Every app: those with state and those that predate owners (a repository only).
fn all_apps(home: &Home, namespace: &str) -> anyhow::Result<Vec<AppName>> {
    let mut names = Vec::new();
    for (dir, suffix) in [(home.apps_dir(), ".json"), (home.repos_dir(), ".git")] {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        for entry in entries {
            let file = entry?.file_name();
            let name = file.to_str().and_then(|f| f.strip_suffix(suffix));
            if let Some(app) = name.and_then(|n| AppName::parse(n, namespace).ok()) {
                names.push(app);
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn store(home: &Home, settings: &Settings) -> AppStore {
    AppStore::new(home, &settings.namespace, settings.config_access.clone())
}

/// `apps [--json]`: the apps the viewer may reach (admins: all), by name.
pub fn list(
    home: &Home,
    settings: &Settings,
    viewer: &Viewer,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let apps = store(home, settings);
    let mut listed = Vec::new();
    for app in all_apps(home, &settings.namespace)? {
        if let Some(role) = viewer.role(&apps, &app)? {
            let owner = apps.state(&app)?.map(|s| s.owner.name.to_string());
            listed.push((app, role, owner));
        }
    }
    if json {
        let value: Vec<Value> = listed
            .iter()
            .map(|(app, role, owner)| json!({"name": app.as_str(), "role": role, "owner": owner}))
            .collect();
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    if listed.is_empty() {
        writeln!(out, "no apps yet: push to ssh://git@HOST/APP to create one")?;
    }
    for (app, role, owner) in &listed {
        let owner = owner.as_deref().unwrap_or("-");
        writeln!(out, "{:<30}  {:<5}  owner {owner}", app.as_str(), role)?;
    }
    Ok(())
}

/// The branch the app deploys from: the setting's, or `master` for an app that has that
/// and not the other (as pushes and `rebuild` decide).
pub(crate) fn deploy_branch(home: &Home, settings: &Settings, app: &AppName) -> String {
    let repo = home.repo(app);
    if !has_branch(&repo, settings.deploy_branch.as_str()) && has_branch(&repo, "master") {
        return "master".to_owned();
    }
    settings.deploy_branch.to_string()
}

fn branch_head(home: &Home, app: &AppName, branch: &str) -> anyhow::Result<Option<ObjectId>> {
    let mut rev_parse = Command::new("git");
    rev_parse.arg("--git-dir").arg(home.repo(app)).args([
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("refs/heads/{branch}"),
    ]);
    let out = codebuilder_process::run(rev_parse, codebuilder_process::QUICK)?;
    if !out.success() {
        return Ok(None);
    }
    Ok(Some(ObjectId::parse(&out.stdout_text())?))
}

fn rfc3339(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}

/// `apps:info APP [--json]`: owner, the viewer's role, deploy branch and head, last build,
/// what runs, namespace.
pub fn info(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    viewer: &Viewer,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let apps = store(home, settings);
    let state = apps.state(app)?;
    let role = viewer.role(&apps, app)?;
    let branch = deploy_branch(home, settings, app);
    let head = branch_head(home, app, &branch)?;
    let records = Records::new(home, app).list()?;
    let last = records.last();
    let running = records
        .iter()
        .rev()
        .find(|r| r.result == BuildResult::Succeeded)
        .and_then(|r| r.image.clone());
    let release = match settings.deploy {
        DeployMode::Helm => codebuilder_deploy::teardown::release(settings, app)?,
        DeployMode::None => None,
    };
    let owner = state.as_ref().map(|s| s.owner.name.to_string());
    if json {
        let value = json!({
            "name": app.as_str(),
            "owner": owner,
            "role": role,
            "deploy_branch": branch,
            "head": head,
            "last_build": last.map(|r| json!({
                "number": r.number,
                "rev": r.rev,
                "result": r.result,
                "started_at": r.started_at,
            })),
            "image": running,
            "release": release.as_ref().map(|r| json!({"revision": r.revision, "status": r.status})),
            "namespace": app.as_str(),
        });
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    let last = match last {
        Some(r) => format!(
            "{} ({}), {} of {}",
            r.number,
            serde_json::to_value(r.result)?.as_str().unwrap_or(""),
            rfc3339(r.started_at),
            r.rev.short()
        ),
        None => "none yet".to_owned(),
    };
    let release = match (&release, &settings.deploy) {
        (Some(r), _) => format!("helm revision {}, {}", r.revision, r.status),
        (None, DeployMode::Helm) => "not deployed".to_owned(),
        (None, DeployMode::None) => "not deployed (CODEBUILDER_DEPLOY=none)".to_owned(),
    };
    let rows = [
        (
            "Owner",
            owner.unwrap_or_else(|| "none (predates owners)".into()),
        ),
        ("Your role", role.unwrap_or("-").to_owned()),
        (
            "Deploy branch",
            match &head {
                Some(head) => format!("{branch} at {}", head.short()),
                None => format!("{branch} (not pushed yet)"),
            },
        ),
        ("Last build", last),
        ("Image", running.unwrap_or_else(|| "none".into())),
        ("Release", release),
        ("Namespace", app.to_string()),
    ];
    writeln!(out, "=== {app}")?;
    for (label, value) in rows {
        writeln!(out, "{:<14} {value}", format!("{label}:"))?;
    }
    Ok(())
}
