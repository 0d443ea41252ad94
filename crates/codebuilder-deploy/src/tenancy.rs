//! What an app may touch in the cluster: its own namespace, which codebuilder made and
//! labelled, and nothing else. codebuilder (as its own ServiceAccount) makes the namespace, a
//! ServiceAccount `codebuilder-app` in it, and a RoleBinding there to the ClusterRole
//! `codebuilder-app`; helm and kubectl then act as that ServiceAccount, so an app's chart
//! cannot reach other namespaces or cluster-scoped objects.

use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, run_with_input, QUICK};
use serde_json::{json, Value};

use crate::helm::cluster_error;
use crate::tool_error;

/// The label of everything codebuilder makes: namespaces, helm releases.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const CODEBUILDER: &str = "codebuilder";
/// The label that names the app a namespace belongs to.
pub(crate) const APP_LABEL: &str = "codebuilder.io/app";
/// The app's ServiceAccount, its RoleBinding and the ClusterRole they bind (codebuilder.yaml).
pub(crate) const APP_ACCOUNT: &str = "codebuilder-app";

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
        let app = self.app;
        let mut get = self.kubectl();
        get.args(["get", "namespace", app.as_str(), "--output", "json"]);
        let out = run(get, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            let said = out.stderr_text();
            if said.contains("(NotFound)") {
                return Ok(Namespace::Missing);
            }
            bail!(
                "{}",
                cluster_error(&said, format_args!("cannot look up the namespace {app}"))
            );
        }
        let namespace: Value = serde_json::from_slice(&out.stdout)
            .context("cannot read the output of kubectl get namespace")?;
        let labels = &namespace["metadata"]["labels"];
        Ok(
            if labels[MANAGED_BY] == CODEBUILDER && labels[APP_LABEL] == app.as_str() {
                Namespace::Ours
            } else {
                Namespace::Foreign
            },
        )
    }

    /// The refusal of a namespace that codebuilder did not make.
    pub fn foreign(&self) -> anyhow::Error {
        let app = self.app;
        anyhow::anyhow!("the namespace {app} exists and codebuilder did not make it (it lacks the labels {MANAGED_BY}={CODEBUILDER} and {APP_LABEL}={app}): push the app under another name; if that namespace is this app's, a cluster admin labels it with `kubectl label namespace {app} {MANAGED_BY}={CODEBUILDER} {APP_LABEL}={app}`")
    }

    /// Makes the app's namespace (labelled), its ServiceAccount and RoleBinding, unless they
    /// are there; refuses a namespace that codebuilder did not make.
    pub fn ensure(&self) -> anyhow::Result<()> {
        let app = self.app.as_str();
        let namespace = self.namespace()?;
        if namespace == Namespace::Foreign {
            return Err(self.foreign());
        }
        if namespace == Namespace::Missing {
            let namespace = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": app, "labels": {MANAGED_BY: CODEBUILDER, APP_LABEL: app}},
            });
            self.kubectl_with(
                &["create", "--filename", "-"],
                &namespace,
                &format!("create the namespace {app}"),
            )?;
        }
        let labels = json!({MANAGED_BY: CODEBUILDER, APP_LABEL: app});
        let objects = json!({
            "apiVersion": "v1", "kind": "List",
            "items": [
                {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": APP_ACCOUNT, "namespace": app, "labels": labels},
                    "automountServiceAccountToken": false,
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": APP_ACCOUNT, "namespace": app, "labels": labels},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": APP_ACCOUNT,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": APP_ACCOUNT, "namespace": app}],
                },
            ],
        });
        self.kubectl_with(
            &["apply", "--filename", "-"],
            &objects,
            &format!("make the ServiceAccount and RoleBinding {APP_ACCOUNT} in {app}"),
        )
    }

    fn kubectl_with(&self, args: &[&str], objects: &Value, what: &str) -> anyhow::Result<()> {
        let mut kubectl = self.kubectl();
        kubectl.args(args);
        let out = run_with_input(kubectl, objects.to_string().as_bytes(), QUICK)
            .map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            let said = out.stderr_text();
            bail!("{}", cluster_error(&said, format_args!("cannot {what}")));
        }
        Ok(())
    }
}
