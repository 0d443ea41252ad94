//! The helm commands a deploy runs, and what helm's answers mean.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, QUICK};
use serde::Deserialize;

use crate::labels::{CODEBUILDER, MANAGED_BY};
use crate::said::{cluster_error, last_error_line, tool_error};
use crate::tenancy::app_user;

/// The helm of the settings, pointed at one app's release (named after the app, in the
/// namespace of its name), acting as the app's ServiceAccount.
pub(crate) struct Helm<'a> {
    pub settings: &'a Settings,
    pub app: &'a AppName,
}

/// Where a release stands, from `helm status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseState {
    pub revision: u64,
    pub status: String,
}

impl ReleaseState {
    /// A deploy that was interrupted (helm killed mid-`--wait`) leaves its release pending,
    /// and helm then refuses every later operation as "another operation is in progress".
    pub fn is_pending(&self) -> bool {
        self.status.starts_with("pending-")
    }
}

/// One revision of `helm history`.
#[derive(Debug, Deserialize)]
pub(crate) struct Revision {
    pub revision: u64,
    pub status: String,
}

#[derive(Deserialize)]
struct Status {
    version: u64,
    info: StatusInfo,
}

#[derive(Deserialize)]
struct StatusInfo {
    status: String,
}

/// How upgrades and rollbacks apply what they render: server-side, taking over the fields
/// another manager set. `ps:scale` patches `spec.replicas` as kubectl; a rollback to a release
/// made at another scale would otherwise fail on that field ("conflict with kubectl-patch"),
/// and the stored scale is put back after it.
const APPLY: [&str; 3] = ["--server-side", "true", "--force-conflicts"];

/// How upgrades and rollbacks wait for the rollout: helm 3's waiter, which asks the API server
/// itself (a quorum read) until the new ReplicaSet of every Deployment has its pods ready. Helm
/// 4's default (`watcher`) starts from a list served by the API server's watch cache, which can
/// still hold the Deployment from before the upgrade and call it ready: `Done ... is live` was
/// then printed while the old pod still served (seen in CI, and 1 upgrade in 25 under load on
/// one node; none in 30 with this waiter).
const WAIT: &str = "--wait=legacy";

impl Helm<'_> {
    fn command(&self) -> Command {
        let mut helm = Command::new(&self.settings.helm);
        helm.args(["--namespace", self.app.as_str()])
            .args(["--kube-as-user", &app_user(self.app)]);
        helm
    }

    /// Whether codebuilder made the release: its label, which every upgrade sets and
    /// rollbacks keep.
    pub fn is_ours(&self) -> anyhow::Result<bool> {
        let mut metadata = self.command();
        metadata.args(["get", "metadata", self.app.as_str(), "--output", "json"]);
        let out = run(metadata, QUICK)?;
        if !out.success() {
            let said = out.stderr_text();
            bail!("{}", cluster_error(&said, "helm get metadata failed"));
        }
        let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
            .context("cannot read the output of helm get metadata")?;
        Ok(metadata["labels"][MANAGED_BY] == CODEBUILDER)
    }

    /// The release's state, or `None` when there is no release of the app yet. A cluster
    /// that cannot be reached or refuses is an error naming the cause.
    pub fn state(&self) -> anyhow::Result<Option<ReleaseState>> {
        let mut status = self.command();
        status.args(["status", self.app.as_str(), "--output", "json"]);
        let out = run(status, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_HELM"))?;
        if !out.success() {
            let said = out.stderr_text();
            if said.contains("release: not found") {
                return Ok(None);
            }
            bail!("{}", cluster_error(&said, "helm status failed"));
        }
        let status: Status =
            serde_json::from_slice(&out.stdout).context("cannot read the output of helm status")?;
        Ok(Some(ReleaseState {
            revision: status.version,
            status: status.info.status,
        }))
    }

    /// The release's revisions, oldest first.
    pub fn history(&self) -> anyhow::Result<Vec<Revision>> {
        let mut history = self.command();
        history.args(["history", self.app.as_str(), "--output", "json"]);
        let out = run(history, QUICK)?;
        if !out.success() {
            bail!(
                "helm history failed: {}",
                last_error_line(&out.stderr_text())
            );
        }
        serde_json::from_slice(&out.stdout).context("cannot read the output of helm history")
    }

    /// The release's revisions with what made them, oldest first.
    pub fn history_entries(&self) -> anyhow::Result<Vec<crate::HistoryEntry>> {
        let mut history = self.command();
        history.args(["history", self.app.as_str(), "--output", "json"]);
        let out = run(history, QUICK)?;
        if !out.success() {
            let said = out.stderr_text();
            if said.contains("release: not found") {
                return Ok(Vec::new());
            }
            bail!("{}", cluster_error(&said, "helm history failed"));
        }
        serde_json::from_slice(&out.stdout).context("cannot read the output of helm history")
    }

    /// The user-supplied values of `revision`.
    pub fn values(&self, revision: u64) -> anyhow::Result<serde_json::Value> {
        let mut values = self.command();
        values
            .args(["get", "values", self.app.as_str(), "--output", "json"])
            .args(["--revision", &revision.to_string()]);
        let out = run(values, QUICK)?;
        if !out.success() {
            let said = out.stderr_text();
            bail!("{}", cluster_error(&said, "helm get values failed"));
        }
        serde_json::from_slice(&out.stdout).context("cannot read the output of helm get values")
    }

    /// The last revision that was live: the one to go back to.
    pub fn last_good(&self) -> anyhow::Result<Option<u64>> {
        Ok(self
            .history()?
            .into_iter()
            .rev()
            .find(|r| matches!(r.status.as_str(), "deployed" | "superseded"))
            .map(|r| r.revision))
    }

    /// `helm upgrade --install` of `chart` (what [`Helm::template`] rendered and codebuilder
    /// checked) waiting for the rollout, labelled as codebuilder's, into the namespace
    /// codebuilder made. No `--rollback-on-failure`: on a failure the pods that did not become
    /// ready are looked at first, then rolled back.
    pub fn upgrade(
        &self,
        chart: &Path,
        values: &[&Path],
        image_tag: &str,
        description: &str,
    ) -> Command {
        let settings = self.settings;
        let app = self.app.as_str();
        let mut helm = self.command();
        helm.args(["upgrade", "--install", app])
            .arg(chart)
            .args(APPLY)
            .args(["--labels", &format!("{MANAGED_BY}={CODEBUILDER}")])
            .arg(WAIT)
            .args(["--timeout", &seconds(settings.deploy_timeout)]);
        self.release_values(&mut helm, values, image_tag);
        helm.args(["--description", description]);
        helm
    }

    /// `helm template` of the release an upgrade with `chart` and `values` would make:
    /// offline (`lookup` finds nothing), or `online`, asking the cluster as the app's account
    /// what `lookup` and the capabilities find.
    pub fn template(
        &self,
        chart: &Path,
        values: &[&Path],
        image_tag: &str,
        online: bool,
    ) -> Command {
        let mut helm = self.command();
        helm.args(["template", self.app.as_str()])
            .arg(chart)
            .arg("--skip-tests");
        if online {
            helm.arg("--dry-run=server");
        }
        self.release_values(&mut helm, values, image_tag);
        helm
    }

    /// The values of a release: the files in order, then the image codebuilder built.
    fn release_values(&self, helm: &mut Command, values: &[&Path], image_tag: &str) {
        for file in values {
            helm.arg("--values").arg(file);
        }
        let repository = format!(
            "image.repository={}/{}",
            self.settings.pull_registry, self.app
        );
        helm.args(["--set-string", &repository])
            .args(["--set-string", &format!("image.tag={image_tag}")]);
    }

    /// What `revision` applied: its manifest.
    pub fn manifest(&self, revision: u64) -> anyhow::Result<String> {
        let mut manifest = self.command();
        manifest
            .args(["get", "manifest", self.app.as_str()])
            .args(["--revision", &revision.to_string()]);
        let out = run(manifest, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_HELM"))?;
        if !out.success() {
            let said = out.stderr_text();
            bail!("{}", cluster_error(&said, "helm get manifest failed"));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `helm rollback` to `revision`, waiting for its pods.
    pub fn rollback(&self, revision: u64) -> Command {
        let mut helm = self.command();
        helm.args(["rollback", self.app.as_str(), &revision.to_string(), WAIT])
            .args(APPLY)
            .args(["--timeout", &seconds(self.settings.deploy_timeout)]);
        helm
    }

    /// `helm uninstall`, for a first install that never became ready: nothing is left
    /// half-deployed, and the next push installs afresh.
    pub fn uninstall(&self) -> Command {
        let mut helm = self.command();
        helm.args(["uninstall", self.app.as_str(), "--wait"])
            .args(["--timeout", &seconds(self.settings.deploy_timeout)]);
        helm
    }
}

fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}
