//! The helm commands a deploy runs, and what helm's answers mean.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, QUICK};
use serde::Deserialize;

use crate::tenancy::{app_user, APP_ACCOUNT, CODEBUILDER, MANAGED_BY};
use crate::tool_error;

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

/// The line of helm's output that says what went wrong (`Error: ...`), or the last one.
pub(crate) fn last_error_line(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Error:"))
        .or(lines.last())
        .map(|l| l.trim_start_matches("Error:").trim().to_owned())
        .unwrap_or_else(|| "no output".to_owned())
}

/// One line for a cluster tool that failed: the refusal explained when the cluster refused,
/// else `failed` and the tool's own last error line.
pub(crate) fn cluster_error(said: &str, failed: impl std::fmt::Display) -> String {
    explain_cluster_error(said).unwrap_or_else(|| format!("{failed}: {}", last_error_line(said)))
}

/// One line for the errors that are about the cluster rather than the app: a permission
/// codebuilder's account or the app's lacks (naming it and where to grant it, or that an app's
/// chart stays in its namespace), or an API server that cannot be reached.
pub(crate) fn explain_cluster_error(said: &str) -> Option<String> {
    if let Some(forbidden) = said.lines().find_map(Forbidden::parse) {
        return Some(forbidden.to_string());
    }
    let unreachable = [
        "Kubernetes cluster unreachable",
        "kubernetes cluster unreachable",
        "connection refused",
        "no such host",
        "i/o timeout",
        "certificate signed by unknown authority",
        "Unauthorized",
    ];
    if unreachable.iter().any(|marker| said.contains(marker)) {
        return Some(format!(
            "cannot reach the Kubernetes API server ({}): check KUBECONFIG and that the cluster is up",
            last_error_line(said)
        ));
    }
    None
}

/// The API server's "forbidden" answer, taken apart:
/// `namespaces "myapp" is forbidden: User "system:serviceaccount:codebuilder:codebuilder"
/// cannot patch resource "namespaces" in API group "" in the namespace "myapp"`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Forbidden {
    user: String,
    verb: String,
    resource: String,
    group: String,
    namespace: Option<String>,
}

impl Forbidden {
    fn parse(line: &str) -> Option<Self> {
        let rest = &line[line.find("is forbidden: User \"")? + "is forbidden: User \"".len()..];
        let (user, rest) = rest.split_once("\" cannot ")?;
        let (verb, rest) = rest.split_once(" resource \"")?;
        let (resource, rest) = rest.split_once('"')?;
        let group = quoted_after(rest, "in API group \"").unwrap_or_default();
        let namespace = quoted_after(rest, "in the namespace \"");
        Some(Self {
            user: user.to_owned(),
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            group,
            namespace,
        })
    }
}

fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Forbidden {
    /// The app whose ServiceAccount was refused, when it was an app's.
    fn app(&self) -> Option<&str> {
        let account = self.user.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = account.split_once(':')?;
        (name == APP_ACCOUNT).then_some(namespace)
    }
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let place = self
            .namespace
            .as_ref()
            .map(|ns| format!(" in namespace {ns}"))
            .unwrap_or_default();
        let (verb, user) = (&self.verb, &self.user);
        match self.app() {
            Some(app) if self.namespace.as_deref() != Some(app) => write!(
                f,
                "the cluster refused: the chart of {app} may not {verb} {resource}{}: an app's chart manages objects in its own namespace {app} only; remove that object from chart/, commit, and push again",
                if place.is_empty() { " (cluster-wide)" } else { &place }
            ),
            Some(_) => write!(
                f,
                "the cluster refused: {user} may not {verb} {resource}{place}: grant it (verb {verb}, resource {resource}) in the ClusterRole {APP_ACCOUNT} of codebuilder.yaml"
            ),
            None => write!(
                f,
                "the cluster refused: {user} may not {verb} {resource}{place}: grant it (verb {verb}, resource {resource}) in the ClusterRole codebuilder-deployer of codebuilder.yaml"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_the_permission_and_where_to_grant_it() {
        let said = r#"Error: namespaces "myapp" is forbidden: User "system:serviceaccount:codebuilder:codebuilder" cannot patch resource "namespaces" in API group "" in the namespace "myapp""#;
        assert_eq!(
            explain_cluster_error(said).unwrap(),
            "the cluster refused: system:serviceaccount:codebuilder:codebuilder may not patch namespaces in namespace myapp: grant it (verb patch, resource namespaces) in the ClusterRole codebuilder-deployer of codebuilder.yaml"
        );
        let said = r#"Error: UPGRADE FAILED: deployments.apps "x" is forbidden: User "u" cannot create resource "deployments" in API group "apps" at the cluster scope"#;
        assert_eq!(
            explain_cluster_error(said).unwrap(),
            "the cluster refused: u may not create deployments.apps: grant it (verb create, resource deployments.apps) in the ClusterRole codebuilder-deployer of codebuilder.yaml"
        );
    }

    #[test]
    fn an_apps_chart_is_told_to_stay_in_its_namespace() {
        let said = r#"Error: UPGRADE FAILED: daemonsets.apps "x" is forbidden: User "system:serviceaccount:myapp:codebuilder-app" cannot patch resource "daemonsets" in API group "apps" in the namespace "kube-system""#;
        assert_eq!(
            explain_cluster_error(said).unwrap(),
            "the cluster refused: the chart of myapp may not patch daemonsets.apps in namespace kube-system: an app's chart manages objects in its own namespace myapp only; remove that object from chart/, commit, and push again"
        );
        let said = r#"Error: clusterroles.rbac.authorization.k8s.io "x" is forbidden: User "system:serviceaccount:myapp:codebuilder-app" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#;
        assert_eq!(
            explain_cluster_error(said).unwrap(),
            "the cluster refused: the chart of myapp may not get clusterroles.rbac.authorization.k8s.io (cluster-wide): an app's chart manages objects in its own namespace myapp only; remove that object from chart/, commit, and push again"
        );
        let said = r#"Error: roles.rbac.authorization.k8s.io "x" is forbidden: User "system:serviceaccount:myapp:codebuilder-app" cannot patch resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "myapp""#;
        assert_eq!(
            explain_cluster_error(said).unwrap(),
            "the cluster refused: system:serviceaccount:myapp:codebuilder-app may not patch roles.rbac.authorization.k8s.io in namespace myapp: grant it (verb patch, resource roles.rbac.authorization.k8s.io) in the ClusterRole codebuilder-app of codebuilder.yaml"
        );
    }

    #[test]
    fn unreachable_clusters_point_at_kubeconfig() {
        let said = "Error: Kubernetes cluster unreachable: Get \"https://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused";
        let line = explain_cluster_error(said).unwrap();
        assert!(
            line.starts_with(
                "cannot reach the Kubernetes API server (Kubernetes cluster unreachable: "
            ),
            "{line}"
        );
        assert!(
            line.ends_with("): check KUBECONFIG and that the cluster is up"),
            "{line}"
        );
        assert_eq!(
            explain_cluster_error("Error: chart requires kubeVersion"),
            None
        );
    }

    #[test]
    fn the_error_line_is_found_among_helm_output() {
        assert_eq!(
            last_error_line("Release \"a\" does not exist.\nError: UPGRADE FAILED: boom\n"),
            "UPGRADE FAILED: boom"
        );
        assert_eq!(last_error_line("one\ntwo\n\n"), "two");
        assert_eq!(last_error_line(""), "no output");
    }
}
