//! What an app may touch in the cluster: its own namespace, which codebuilder made and
//! labelled, and nothing else. codebuilder (as its own ServiceAccount) makes the namespace, a
//! ServiceAccount `codebuilder-app` in it, and a RoleBinding there to the ClusterRole
//! `codebuilder-app`; helm and kubectl then act as that ServiceAccount, so an app's chart
//! cannot reach other namespaces or cluster-scoped objects.
//!
//! What its pods may be is kept there too, on every deploy: the namespace's Pod Security
//! labels (`CODEBUILDER_POD_SECURITY`), its quota and container defaults
//! (`CODEBUILDER_APP_QUOTA`) and a NetworkPolicy that lets in only its own pods and those of
//! the operator's ingress namespaces (`CODEBUILDER_NETWORK_ISOLATION`). The app's account can
//! change none of them.

use std::process::Command;

use anyhow::{anyhow, bail, Context};
use codebuilder_core::pod_security::Level;
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, run_with_input, Captured, RunError, QUICK};
use serde_json::{json, Map, Value};

use crate::labels::{APP_ACCOUNT, APP_LABEL, CODEBUILDER, MANAGED_BY};
use crate::quota::{self, DEFAULTS, QUOTA};
use crate::said::{cluster_error, tool_error};

/// The NetworkPolicy that keeps other apps' pods out.
pub(crate) const ISOLATION: &str = "codebuilder-isolation";
/// The Pod Security labels' prefix, and the modes codebuilder sets a level for.
const POD_SECURITY: &str = "pod-security.kubernetes.io/";
const MODES: [&str; 3] = ["enforce", "warn", "audit"];
/// The version of the standards enforced: the cluster's own, as it is upgraded.
const VERSION: (&str, &str) = ("enforce-version", "latest");

/// The Pod Security labels of an app namespace held to `level`.
fn pod_security_labels(level: Level) -> Map<String, Value> {
    let mut labels: Map<String, Value> = MODES
        .iter()
        .map(|mode| (format!("{POD_SECURITY}{mode}"), json!(level.as_str())))
        .collect();
    labels.insert(format!("{POD_SECURITY}{}", VERSION.0), json!(VERSION.1));
    labels
}

/// A Pod Security label of `labels` that someone loosened below `level` (a lower level, a
/// value that is none, or a pinned version): its name and value.
fn loosened(labels: &Map<String, Value>, level: Level) -> Option<(String, String)> {
    labels.iter().find_map(|(name, value)| {
        let mode = name.strip_prefix(POD_SECURITY)?;
        let value = value.as_str().unwrap_or_default();
        let loose = if MODES.contains(&mode) {
            Level::parse(value).is_none_or(|set| set < level)
        } else {
            mode == VERSION.0 && value != VERSION.1
        };
        loose.then(|| (name.clone(), value.to_owned()))
    })
}

/// Who helm and kubectl are for an app's deploy.
pub(crate) fn app_user(app: &AppName) -> String {
    format!("system:serviceaccount:{app}:{APP_ACCOUNT}")
}

/// kubectl in the app's namespace as the app's own ServiceAccount: what the app's commands
/// (ps, logs, run, the release phase, a failed rollout's diagnosis) see of the cluster.
pub(crate) fn app_kubectl(settings: &Settings, app: &AppName) -> Command {
    let mut kubectl = Command::new(&settings.kubectl);
    kubectl
        .args(["--namespace", app.as_str()])
        .args(["--as", &app_user(app)]);
    kubectl
}

/// Where the app's namespace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    Missing,
    /// Made by codebuilder for this app (its labels say so).
    Ours,
    /// Made by someone else: never deployed into.
    Foreign,
}

/// The app's namespace and the account its deploys run as.
pub(crate) struct Tenancy<'a> {
    pub settings: &'a Settings,
    pub app: &'a AppName,
}

impl Tenancy<'_> {
    /// kubectl as codebuilder itself.
    fn kubectl(&self) -> Command {
        Command::new(&self.settings.kubectl)
    }

    /// Whether the app's namespace exists, and whether codebuilder made it.
    pub fn namespace(&self) -> anyhow::Result<Namespace> {
        Ok(self.lookup()?.0)
    }

    /// The app's namespace and its labels.
    pub fn lookup(&self) -> anyhow::Result<(Namespace, Map<String, Value>)> {
        let app = self.app;
        let mut get = self.kubectl();
        get.args(["get", "namespace", app.as_str(), "--output", "json"]);
        let out = run(get, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            let said = out.stderr_text();
            if said.contains("(NotFound)") {
                return Ok((Namespace::Missing, Map::new()));
            }
            bail!(
                "{}",
                cluster_error(&said, format_args!("cannot look up the namespace {app}"))
            );
        }
        let namespace: Value = serde_json::from_slice(&out.stdout)
            .context("cannot read the output of kubectl get namespace")?;
        let labels = namespace["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ours = labels.get(MANAGED_BY) == Some(&json!(CODEBUILDER))
            && labels.get(APP_LABEL) == Some(&json!(app.as_str()));
        let namespace = if ours {
            Namespace::Ours
        } else {
            Namespace::Foreign
        };
        Ok((namespace, labels))
    }

    /// Why codebuilder does not deploy into the namespace (`lookup`'s answer), if it does not:
    /// someone else made it, or loosened its Pod Security labels.
    pub fn refusal(
        &self,
        namespace: Namespace,
        labels: &Map<String, Value>,
    ) -> Option<anyhow::Error> {
        if namespace == Namespace::Foreign {
            return Some(self.foreign());
        }
        let level = self.settings.pod_security;
        let (label, value) = loosened(labels, level)?;
        let app = self.app;
        let ours = pod_security_labels(level)[&label].clone();
        let ours = ours.as_str().unwrap_or_default();
        Some(anyhow!("the namespace {app} is labelled {label}={value}, looser than the {level} Pod Security level codebuilder keeps on app namespaces (CODEBUILDER_POD_SECURITY): a cluster admin puts it back with `kubectl label namespace {app} {label}={ours} --overwrite`"))
    }

    /// The refusal of a namespace that codebuilder did not make.
    fn foreign(&self) -> anyhow::Error {
        let app = self.app;
        anyhow::anyhow!("the namespace {app} exists and codebuilder did not make it (it lacks the labels {MANAGED_BY}={CODEBUILDER} and {APP_LABEL}={app}): push the app under another name; if that namespace is this app's, a cluster admin labels it with `kubectl label namespace {app} {MANAGED_BY}={CODEBUILDER} {APP_LABEL}={app}`")
    }

    /// Makes the app's namespace (labelled), its ServiceAccount and RoleBinding, unless they
    /// are there, and keeps its Pod Security labels, quota and NetworkPolicy as the settings
    /// say; refuses a namespace that codebuilder did not make or whose labels were loosened.
    pub fn ensure(&self) -> anyhow::Result<()> {
        let app = self.app.as_str();
        let settings = self.settings;
        let (namespace, labels) = self.lookup()?;
        if let Some(refusal) = self.refusal(namespace, &labels) {
            return Err(refusal);
        }
        let pod_security = pod_security_labels(settings.pod_security);
        if namespace == Namespace::Missing {
            let mut all = pod_security;
            all.insert(MANAGED_BY.into(), json!(CODEBUILDER));
            all.insert(APP_LABEL.into(), json!(app));
            let namespace = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": app, "labels": all},
            });
            self.kubectl_with(
                &["create", "--filename", "-"],
                &namespace,
                &format!("create the namespace {app}"),
            )?;
        } else if pod_security.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            let patch = json!({"metadata": {"labels": pod_security}});
            let mut kubectl = self.kubectl();
            kubectl.args(["patch", "namespace", app, "--type", "merge", "--patch"]);
            kubectl.arg(patch.to_string());
            succeeded(run(kubectl, QUICK), &format!("label the namespace {app}"))?;
        }
        let labels = json!({MANAGED_BY: CODEBUILDER, APP_LABEL: app});
        let mut items = vec![
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": APP_ACCOUNT, "namespace": app, "labels": labels},
                "automountServiceAccountToken": false,
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": APP_ACCOUNT, "namespace": app, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": APP_ACCOUNT,
                },
                "subjects": [{"kind": "ServiceAccount", "name": APP_ACCOUNT, "namespace": app}],
            }),
        ];
        let mut removed = Vec::new();
        match &settings.app_quota {
            Some(limits) => items.extend(quota::objects(self.app, limits)),
            None => removed.extend([
                format!("resourcequota/{QUOTA}"),
                format!("limitrange/{DEFAULTS}"),
            ]),
        }
        if settings.network_isolation {
            items.push(self.network_policy());
        } else {
            removed.push(format!("networkpolicy/{ISOLATION}"));
        }
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": items});
        self.kubectl_with(
            &["apply", "--filename", "-"],
            &objects,
            &format!("make the ServiceAccount, RoleBinding, quota and NetworkPolicy of {app}"),
        )?;
        if !removed.is_empty() {
            let mut delete = self.kubectl();
            delete
                .args([
                    "delete",
                    "--namespace",
                    app,
                    "--ignore-not-found",
                    "--wait=false",
                ])
                .args(&removed);
            succeeded(
                run(delete, QUICK),
                &format!("remove what the settings turned off in {app}"),
            )?;
        }
        Ok(())
    }

    /// Lets in the app's own pods and those of the operator's ingress namespaces; nothing of
    /// other apps.
    fn network_policy(&self) -> Value {
        let app = self.app.as_str();
        let mut from = vec![json!({"podSelector": {}})];
        if !self.settings.ingress_namespaces.is_empty() {
            from.push(json!({"namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": self.settings.ingress_namespaces,
            }]}}));
        }
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {
                "name": ISOLATION, "namespace": app,
                "labels": {MANAGED_BY: CODEBUILDER, APP_LABEL: app},
            },
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": from}]},
        })
    }

    fn kubectl_with(&self, args: &[&str], objects: &Value, what: &str) -> anyhow::Result<()> {
        let mut kubectl = self.kubectl();
        kubectl.args(args);
        succeeded(
            run_with_input(kubectl, objects.to_string().as_bytes(), QUICK),
            what,
        )
    }
}

/// A kubectl call that had to succeed; when it did not, one line of what it could not do.
fn succeeded(out: Result<Captured, RunError>, what: &str) -> anyhow::Result<()> {
    let out = out.map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
    if !out.success() {
        let said = out.stderr_text();
        bail!("{}", cluster_error(&said, format_args!("cannot {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hold_the_level_and_a_looser_one_is_found() {
        let labels = pod_security_labels(Level::Baseline);
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"pod-security.kubernetes.io/audit":"baseline","pod-security.kubernetes.io/enforce":"baseline","pod-security.kubernetes.io/enforce-version":"latest","pod-security.kubernetes.io/warn":"baseline"}"#
        );
        assert_eq!(loosened(&labels, Level::Baseline), None);
        assert_eq!(loosened(&Map::new(), Level::Restricted), None);
        assert_eq!(
            loosened(&pod_security_labels(Level::Restricted), Level::Baseline),
            None
        );
        let with = |name: &str, value: &str| {
            let mut labels = labels.clone();
            labels.insert(format!("{POD_SECURITY}{name}"), json!(value));
            loosened(&labels, Level::Baseline)
        };
        assert_eq!(
            with("enforce", "privileged"),
            Some((
                "pod-security.kubernetes.io/enforce".into(),
                "privileged".into()
            ))
        );
        assert_eq!(
            with("warn", "none"),
            Some(("pod-security.kubernetes.io/warn".into(), "none".into()))
        );
        assert_eq!(
            with("enforce-version", "v1.22"),
            Some((
                "pod-security.kubernetes.io/enforce-version".into(),
                "v1.22".into()
            ))
        );
        assert_eq!(with("audit-version", "v1.22"), None);
    }
}
