//! What runs of an app, read from its namespace as the app's ServiceAccount: its process
//! types (the default chart's Deployments: `APP` is web, `APP-TYPE` the others), their
//! replicas and pods; scaling one of them; the command that streams their logs.

use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, QUICK};
use serde::Serialize;
use serde_json::{json, Value};

use crate::said::cluster_error;
use crate::said::tool_error;
use crate::tenancy::{app_kubectl, Namespace, Tenancy};
use crate::ImageUser;

/// The label the default chart gives the pods of a process type other than web.
const COMPONENT: &str = "app.kubernetes.io/component";
const INSTANCE: &str = "app.kubernetes.io/instance";
const NAME: &str = "app.kubernetes.io/name";
/// Most pods whose logs one `logs` follows at once.
const MAX_LOG_PODS: &str = "20";

/// One process type and its pods.
#[derive(Debug, Serialize)]
pub struct Process {
    #[serde(rename = "type")]
    pub kind: String,
    pub desired: u64,
    pub ready: u64,
    pub pods: Vec<Pod>,
    /// The image its pods run.
    #[serde(skip)]
    pub image: String,
    /// Who its pods run as: a one-off process runs as they do.
    #[serde(skip)]
    pub user: ImageUser,
    #[serde(skip)]
    deployment: String,
}

#[derive(Debug, Serialize)]
pub struct Pod {
    pub name: String,
    pub state: String,
    pub restarts: u64,
}

/// The app's namespace, seen as the app's ServiceAccount.
pub struct AppPods<'a> {
    pub settings: &'a Settings,
    pub app: &'a AppName,
}

impl AppPods<'_> {
    fn kubectl(&self) -> Command {
        app_kubectl(self.settings, self.app)
    }

    fn get(&self, what: &str) -> anyhow::Result<Value> {
        let mut get = self.kubectl();
        get.args(["get", what, "--output", "json"]);
        let out = run(get, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            bail!(
                "{}",
                self.cluster_error(&out.stderr_text(), &format!("list the {what}"))
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("cannot read kubectl get {what}"))
    }

    fn cluster_error(&self, said: &str, what: &str) -> String {
        cluster_error(said, format_args!("cannot {what} of {}", self.app))
    }

    /// The app's process types, web first, each with its pods; none while codebuilder has
    /// not made the app's namespace.
    pub fn processes(&self) -> anyhow::Result<Vec<Process>> {
        let tenancy = Tenancy {
            settings: self.settings,
            app: self.app,
        };
        if tenancy.namespace()? != Namespace::Ours {
            return Ok(Vec::new());
        }
        let deployments = self.get("deployments")?;
        let pods = self.get("pods")?;
        let app = self.app.as_str();
        let mut processes = Vec::new();
        for deployment in deployments["items"].as_array().into_iter().flatten() {
            let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
            let kind = match deployment["metadata"]["labels"][COMPONENT].as_str() {
                _ if name == app => "web",
                Some(kind) if name == format!("{app}-{kind}") => kind,
                _ => continue,
            };
            let selector = deployment["spec"]["selector"]["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut own: Vec<Pod> = pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|pod| {
                    !selector.is_empty()
                        && selector
                            .iter()
                            .all(|(k, v)| pod["metadata"]["labels"][k] == *v)
                })
                .map(pod_status)
                .collect();
            own.sort_by(|a, b| a.name.cmp(&b.name));
            let pod = &deployment["spec"]["template"]["spec"];
            let uid = [
                &pod["securityContext"]["runAsUser"],
                &pod["containers"][0]["securityContext"]["runAsUser"],
            ]
            .into_iter()
            .find_map(|uid| uid.as_u64().and_then(|uid| u32::try_from(uid).ok()))
            .filter(|uid| *uid > 0);
            processes.push(Process {
                kind: kind.to_owned(),
                desired: deployment["spec"]["replicas"].as_u64().unwrap_or(0),
                ready: deployment["status"]["readyReplicas"].as_u64().unwrap_or(0),
                pods: own,
                image: deployment["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                user: uid.map_or(ImageUser::Root, ImageUser::NonRoot),
                deployment: name.to_owned(),
            });
        }
        processes.sort_by(|a, b| (a.kind != "web", &a.kind).cmp(&(b.kind != "web", &b.kind)));
        Ok(processes)
    }

    /// Sets the replicas of `process` at once (the next deploy keeps them from the app's
    /// stored scale).
    pub fn scale(&self, process: &Process, count: u32) -> anyhow::Result<()> {
        let mut patch = self.kubectl();
        patch.args([
            "patch",
            "deployment",
            &process.deployment,
            "--type",
            "merge",
            "--patch",
            &json!({"spec": {"replicas": count}}).to_string(),
        ]);
        let out = run(patch, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            bail!(
                "{}",
                self.cluster_error(&out.stderr_text(), &format!("scale {}", process.kind))
            );
        }
        Ok(())
    }

    /// Puts back the stored scale (`wanted`: pods per process type) where the Deployments
    /// differ: after a `helm rollback`, which restores the replicas of the release it goes
    /// back to.
    pub fn keep_scale<'k>(
        &self,
        wanted: impl IntoIterator<Item = (&'k str, u32)>,
    ) -> anyhow::Result<()> {
        let processes = self.processes()?;
        for (kind, count) in wanted {
            let differs = processes
                .iter()
                .find(|p| p.kind == kind && p.desired != u64::from(count));
            if let Some(process) = differs {
                self.scale(process, count)?;
            }
        }
        Ok(())
    }

    /// `kubectl logs` of the app's pods (of one process type with `process`), each line
    /// prefixed with the pod it comes from.
    pub fn logs(&self, process: Option<&str>, tail: u32, follow: bool) -> Command {
        let app = self.app.as_str();
        let selector = match process {
            None => format!("{INSTANCE}={app}"),
            Some("web") => format!("{INSTANCE}={app},{NAME}={app}"),
            Some(kind) => format!("{INSTANCE}={app},{COMPONENT}={kind}"),
        };
        let mut logs = self.kubectl();
        logs.args([
            "logs",
            "--selector",
            &selector,
            "--prefix",
            "--all-containers",
            "--max-log-requests",
            MAX_LOG_PODS,
            "--tail",
            &tail.to_string(),
        ]);
        if follow {
            logs.arg("--follow");
        }
        logs
    }
}

/// A pod's name, what it is doing, and how often its containers restarted.
fn pod_status(pod: &Value) -> Pod {
    let statuses = pod["status"]["containerStatuses"].as_array();
    let restarts = statuses
        .into_iter()
        .flatten()
        .map(|s| s["restartCount"].as_u64().unwrap_or(0))
        .sum();
    let first = statuses.and_then(|s| s.first());
    let state = if !pod["metadata"]["deletionTimestamp"].is_null() {
        "Terminating".to_owned()
    } else if let Some(reason) = first.and_then(|s| {
        s["state"]["waiting"]["reason"]
            .as_str()
            .or(s["state"]["terminated"]["reason"].as_str())
    }) {
        reason.to_owned()
    } else {
        pod["status"]["phase"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned()
    };
    Pod {
        name: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        state,
        restarts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_states_name_what_keeps_a_pod_from_running() {
        let crashing = json!({
            "metadata": {"name": "a-1"},
            "status": {"phase": "Running", "containerStatuses": [
                {"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
        });
        let status = pod_status(&crashing);
        assert_eq!(
            (status.state.as_str(), status.restarts),
            ("CrashLoopBackOff", 4)
        );
        let running = json!({"metadata": {"name": "a-2"}, "status": {"phase": "Running",
            "containerStatuses": [{"restartCount": 0, "state": {"running": {}}}]}});
        assert_eq!(pod_status(&running).state, "Running");
        let leaving = json!({"metadata": {"name": "a-3", "deletionTimestamp": "x"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&leaving).state, "Terminating");
    }
}
