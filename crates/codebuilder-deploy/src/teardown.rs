//! What the app commands need of the cluster besides a deploy: where an app's release stands
//! (`apps:info`), and the removal of the release and of the namespace codebuilder made for it
//! (`apps:destroy`, and any other end of an app). A namespace codebuilder did not make is never
//! looked into nor removed, nor one that holds a helm release codebuilder did not make.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, Output, QUICK};

use crate::helm::Helm;
use crate::said::cluster_error;
use crate::said::tool_error;
use crate::tenancy::{app_user, Namespace, Tenancy};
use crate::HELM_MARGIN;

/// The app's helm release, as `helm status` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseStatus {
    pub revision: u64,
    /// `deployed`, `failed`, `pending-upgrade`, ...
    pub status: String,
}

/// The app's release, or `None` when nothing of it is deployed (no namespace of codebuilder's,
/// or no release in it).
pub fn release(settings: &Settings, app: &AppName) -> anyhow::Result<Option<ReleaseStatus>> {
    if (Tenancy { settings, app }).namespace()? != Namespace::Ours {
        return Ok(None);
    }
    Ok((Helm { settings, app }).state()?.map(|s| ReleaseStatus {
        revision: s.revision,
        status: s.status,
    }))
}

/// Uninstalls the app's release and removes its namespace, if codebuilder made both; says on
/// `output` what it did. Both run as the app's own ServiceAccount, which can name no other
/// namespace. Running it again after a failure finishes the job.
pub fn remove(settings: &Settings, app: &AppName, output: &Output) -> anyhow::Result<()> {
    let tenancy = Tenancy { settings, app };
    match tenancy.namespace()? {
        Namespace::Missing => return Ok(()),
        Namespace::Foreign => {
            output.step(&format!(
                "Leaving the namespace {app} alone: codebuilder did not make it"
            ));
            return Ok(());
        }
        Namespace::Ours => {}
    }
    let helm = Helm { settings, app };
    let limit = settings.deploy_timeout + HELM_MARGIN;
    if helm.state()?.is_some() {
        // Never deployed over, never removed: a release someone else installed there.
        if !helm.is_ours()? {
            output.step(&format!(
                "Leaving the namespace {app} alone: it holds a helm release codebuilder did not make"
            ));
            return Ok(());
        }
        output.step(&format!("Uninstalling the helm release {app}"));
        let out = run(helm.uninstall(), limit).map_err(|e| tool_error(e, "CODEBUILDER_HELM"))?;
        if !out.success() {
            let said = out.stderr_text();
            bail!(
                "{}",
                cluster_error(&said, format_args!("helm uninstall {app} failed"))
            );
        }
    }
    output.step(&format!("Removing the namespace {app}"));
    // Asked as the app, which can name no other namespace; not waited for as the app, whose
    // RoleBinding goes with the namespace: kubectl would wait on, refused, to its timeout.
    let mut delete = Command::new(&settings.kubectl);
    delete
        .args(["--as", &app_user(app)])
        .args(["delete", "namespace", app.as_str(), "--ignore-not-found"])
        .arg("--wait=false");
    let out = run(delete, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
    if !out.success() {
        let said = out.stderr_text();
        bail!(
            "{}",
            cluster_error(&said, format_args!("cannot remove the namespace {app}"))
        );
    }
    // Gone once the namespace controller has removed what it held: codebuilder's own
    // account may read namespaces.
    let deadline = Instant::now() + limit;
    while tenancy.namespace()? != Namespace::Missing {
        if Instant::now() > deadline {
            bail!("the namespace {app} is still being removed after {}s: run 'apps:destroy {app} --confirm {app}' again later to finish", limit.as_secs());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
