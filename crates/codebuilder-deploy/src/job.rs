//! One-off processes as Kubernetes Jobs in the app's namespace, as the app's ServiceAccount:
//! `run APP -- CMD` and the release phase (a Procfile `release:` process) of every deploy.
//! The Job runs an image with the app's config (Secret `APP-config`) and the operator's pod
//! settings, confined as the default chart confines the app's pods (and checked against the
//! Pod Security level as a release is), its output streams as it comes, its exit status is
//! returned, and the Job is deleted afterwards, also when the caller is cancelled.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use codebuilder_core::pod_security::Control;
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, run_with_input, StepContext, StepError, QUICK};
use serde_json::{json, Value};

use crate::labels::{APP_LABEL, CODEBUILDER, MANAGED_BY};
use crate::podsecurity;
use crate::said::cluster_error;
use crate::said::tool_error;
use crate::tenancy::app_kubectl;
use crate::{config_secret, operator_refusal, runs_as_root, ImageUser};

/// The label that says what a Job's pod is: `run` or `release`.
pub const JOB_LABEL: &str = "codebuilder.io/job";
/// How often the Job's pod is looked at while it starts and ends.
const POLL: Duration = Duration::from_millis(500);
/// Waiting reasons of a container that will not start by itself (a config error may be a
/// moment's: the kubelet retries, and the deadline ends the wait).
const STUCK: &[&str] = &["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// What a Job is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `run APP -- CMD`.
    Run,
    /// The Procfile's `release:` process, before a rollout.
    Release,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Release => "release",
        }
    }
}

/// A one-off process of `app`: `command_line` run by `/bin/sh -c` (through the image's own
/// entrypoint, as `docker run IMAGE /bin/sh -c LINE` would) in `image`.
pub struct OneOff<'a> {
    pub settings: &'a Settings,
    pub app: &'a AppName,
    pub kind: JobKind,
    /// The full image reference, as the app's pods name it.
    pub image: &'a str,
    pub command_line: &'a str,
    /// The config vars the process gets (the release phase: those of the release about to
    /// roll out); `None`: those of the running release, from its Secret `APP-config`.
    pub config: Option<&'a BTreeMap<String, String>>,
    /// The longest the process may run (also the Job's `activeDeadlineSeconds`).
    pub timeout: Duration,
    /// Who the image runs as: a non-root user runs the process as that uid.
    pub user: ImageUser,
}

impl OneOff<'_> {
    fn kubectl(&self) -> Command {
        app_kubectl(self.settings, self.app)
    }

    /// Runs the process, handing each line of its output to `step`'s line handler `lines`,
    /// and returns its exit status. The Job is gone afterwards whatever happened.
    pub fn run(
        &self,
        step: &StepContext,
        lines: &mut (dyn FnMut(&str) -> bool + Send),
    ) -> anyhow::Result<i32> {
        let name = job_name(self.kind);
        let job = self.manifest(&name)?;
        self.check(&job)?;
        let mut create = self.kubectl();
        create.args(["create", "--filename", "-"]);
        let out = run_with_input(create, job.to_string().as_bytes(), QUICK)
            .map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            bail!("{}", self.cluster_error(&out.stderr_text(), "create a Job"));
        }
        let outcome = self.follow(&name, step, lines);
        let removed = self.remove(&name);
        let status = outcome?;
        removed?;
        Ok(status)
    }

    fn follow(
        &self,
        name: &str,
        step: &StepContext,
        lines: &mut (dyn FnMut(&str) -> bool + Send),
    ) -> anyhow::Result<i32> {
        let deadline = Instant::now() + self.timeout;
        let pod = self.started_pod(name, step, deadline)?;
        let mut logs = self.kubectl();
        logs.args(["logs", "--follow", &format!("pod/{}", pod_name(&pod))]);
        let left = deadline.saturating_duration_since(Instant::now());
        match step.run_lines(
            vec![logs],
            left.max(Duration::from_secs(1)),
            "running",
            None,
            lines,
        ) {
            Ok(()) => {}
            Err(StepError::Cancelled) => bail!("the {} process was cancelled", self.kind.as_str()),
            Err(StepError::TimedOut(limit)) => bail!(
                "the {} process ran longer than {limit} and was stopped",
                self.kind.as_str()
            ),
            Err(e) => bail!(
                "cannot read the output of the {} process: {e}",
                self.kind.as_str()
            ),
        }
        // The log ends as the container does; its status follows a moment later.
        loop {
            if let Some(code) = exit_code(&self.pod(name)?) {
                return Ok(code);
            }
            self.wait(step, deadline)?;
        }
    }

    /// The Job's pod once its container started (or already ended).
    fn started_pod(
        &self,
        name: &str,
        step: &StepContext,
        deadline: Instant,
    ) -> anyhow::Result<Value> {
        loop {
            let pod = self.pod(name)?;
            if let Some(reason) = stuck(&pod) {
                bail!(
                    "the {} process cannot start ({reason}): is the image {} in the registry?",
                    self.kind.as_str(),
                    self.image
                );
            }
            let phase = pod["status"]["phase"].as_str().unwrap_or_default();
            if !phase.is_empty() && phase != "Pending" {
                return Ok(pod);
            }
            self.wait(step, deadline).map_err(|e| match pending(&pod) {
                Some(why) => anyhow!("{e:#} ({why})"),
                None => e,
            })?;
        }
    }

    fn wait(&self, step: &StepContext, deadline: Instant) -> anyhow::Result<()> {
        if step.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            bail!("the {} process was cancelled", self.kind.as_str());
        }
        if Instant::now() > deadline {
            bail!(
                "the {} process did not end within {}s: it was stopped",
                self.kind.as_str(),
                self.timeout.as_secs()
            );
        }
        std::thread::sleep(POLL);
        Ok(())
    }

    /// The Job's pod; `null` until the Job controller made it.
    fn pod(&self, name: &str) -> anyhow::Result<Value> {
        let mut get = self.kubectl();
        get.args([
            "get",
            "pods",
            "--selector",
            &format!("job-name={name}"),
            "--output",
            "json",
        ]);
        let out = run(get, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            bail!(
                "{}",
                self.cluster_error(&out.stderr_text(), "look at the Job's pod")
            );
        }
        let pods: Value =
            serde_json::from_slice(&out.stdout).context("cannot read kubectl get pods")?;
        Ok(pods["items"][0].clone())
    }

    /// Deletes the Job and its pod.
    fn remove(&self, name: &str) -> anyhow::Result<()> {
        let mut delete = self.kubectl();
        delete.args([
            "delete",
            "job",
            name,
            "--cascade=background",
            "--ignore-not-found",
            "--wait=false",
        ]);
        let out = run(delete, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            bail!(
                "{}",
                self.cluster_error(&out.stderr_text(), &format!("delete the Job {name}"))
            );
        }
        Ok(())
    }

    /// Holds the Job to the Pod Security level: only the operator's values and the image's
    /// user can break it, and the operator's exceptions apply.
    fn check(&self, job: &Value) -> anyhow::Result<()> {
        let settings = self.settings;
        let level = settings.pod_security;
        match podsecurity::check(
            std::slice::from_ref(job),
            level,
            &settings.pod_security_allow,
        ) {
            Ok(()) => Ok(()),
            Err(v) if v.control == Control::RunAsNonRoot && self.user == ImageUser::Root => {
                Err(runs_as_root(self.app, level))
            }
            Err(v) => Err(operator_refusal(self.app, &v)),
        }
    }

    fn cluster_error(&self, said: &str, what: &str) -> String {
        cluster_error(said, format_args!("cannot {what} in {}", self.app))
    }

    fn manifest(&self, name: &str) -> anyhow::Result<Value> {
        let app = self.app.as_str();
        let labels =
            json!({MANAGED_BY: CODEBUILDER, APP_LABEL: app, JOB_LABEL: self.kind.as_str()});
        let mut pod = pod_settings(self.settings)?;
        pod.insert("restartPolicy".into(), json!("Never"));
        pod.insert("automountServiceAccountToken".into(), json!(false));
        let mut pod_context = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        let mut container_context = json!({"allowPrivilegeEscalation": false});
        if let Some(uid) = self.user.uid() {
            pod_context["runAsNonRoot"] = json!(true);
            pod_context["runAsUser"] = json!(uid);
            container_context["capabilities"] = json!({"drop": ["ALL"]});
        }
        pod.insert("securityContext".into(), pod_context);
        let mut container = json!({
            "name": self.kind.as_str(),
            "image": self.image,
            "args": ["/bin/sh", "-c", self.command_line],
            "securityContext": container_context,
        });
        match self.config {
            Some(vars) => {
                container["env"] = vars
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
            }
            None => {
                container["envFrom"] =
                    json!([{"secretRef": {"name": config_secret(self.app), "optional": true}}]);
            }
        }
        pod.insert("containers".into(), json!([container]));
        Ok(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": self.timeout.as_secs().max(1),
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }))
    }
}

/// A Job name of its own: the kind, the time and our process id.
fn job_name(kind: JobKind) -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{}-{seconds}-{}", kind.as_str(), std::process::id())
}

fn pod_name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

/// The exit status of the pod's container, once it ended.
fn exit_code(pod: &Value) -> Option<i32> {
    let code = pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64()?;
    Some(i32::try_from(code).unwrap_or(1))
}

/// Why the pod's container cannot start, when it cannot by itself.
fn stuck(pod: &Value) -> Option<String> {
    let reason = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()?;
    STUCK.contains(&reason).then(|| reason.to_owned())
}

/// Why the pod has not started, if the scheduler or the kubelet said.
fn pending(pod: &Value) -> Option<String> {
    let unscheduled = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
        .and_then(|c| c["message"].as_str())
        .map(|m| format!("its pod was never scheduled: {m}"));
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    let why = unscheduled.or_else(|| {
        let reason = waiting["reason"].as_str()?;
        Some(match waiting["message"].as_str() {
            Some(message) => format!("{reason}: {message}"),
            None => reason.to_owned(),
        })
    })?;
    Some(
        codebuilder_core::main_support::one_line(&why)
            .trim_end()
            .trim_end_matches('.')
            .to_owned(),
    )
}

/// The operator's pod settings (CODEBUILDER_DEPLOY_VALUES), as the default chart applies them
/// to every process: host network, node placement, pull secrets.
fn pod_settings(settings: &Settings) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut pod = serde_json::Map::new();
    pod.insert("terminationGracePeriodSeconds".into(), json!(30));
    let Some(file) = &settings.deploy_values else {
        return Ok(pod);
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow!(
            "cannot read the values file {} ({e}): fix CODEBUILDER_DEPLOY_VALUES",
            file.display()
        )
    })?;
    let values = codebuilder_core::yaml::document(&text).map_err(|e| {
        anyhow!(
            "the values file {} is not YAML ({e}): fix CODEBUILDER_DEPLOY_VALUES",
            file.display()
        )
    })?;
    if values["hostNetwork"] == json!(true) {
        pod.insert("hostNetwork".into(), json!(true));
        pod.insert("dnsPolicy".into(), json!("ClusterFirstWithHostNet"));
    }
    for key in [
        "terminationGracePeriodSeconds",
        "nodeSelector",
        "tolerations",
        "affinity",
        "imagePullSecrets",
    ] {
        if let Some(value) = values.get(key).filter(|v| !v.is_null()) {
            pod.insert(key.into(), value.clone());
        }
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_job_is_confined_as_the_default_chart_confines_pods() {
        let vars = HashMap::from([(
            "CODEBUILDER_POD_SECURITY".to_owned(),
            "restricted".to_owned(),
        )]);
        let settings = Settings::from_vars(&vars).unwrap();
        let app = AppName::parse("myapp", "codebuilder").unwrap();
        let job = |user| OneOff {
            settings: &settings,
            app: &app,
            kind: JobKind::Run,
            image: "127.0.0.1:5000/myapp:git-abc1234",
            command_line: "true",
            config: None,
            timeout: Duration::from_secs(60),
            user,
        };
        let confined = job(ImageUser::NonRoot(1000));
        let manifest = confined.manifest("run-1").unwrap();
        let pod = &manifest["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert_eq!(
            pod["containers"][0]["securityContext"],
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
        confined.check(&manifest).unwrap();
        let root = job(ImageUser::Root);
        assert_eq!(
            root.check(&root.manifest("run-1").unwrap()).unwrap_err().to_string(),
            "myapp runs as root (its image has no USER, or USER root), which the restricted Pod Security level forbids: give the image a non-root USER, commit, and push again"
        );
    }

    #[test]
    fn exit_codes_and_stuck_pods_are_read_from_the_status() {
        let ended =
            json!({"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}});
        assert_eq!(exit_code(&ended), Some(3));
        assert_eq!(exit_code(&Value::Null), None);
        let pulling = json!({"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(stuck(&pulling).as_deref(), Some("ImagePullBackOff"));
        let creating = json!({"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(stuck(&creating), None);
        let config = json!({"status": {"containerStatuses": [{"state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": "secret \"x\" not found"}}}]}});
        assert_eq!(stuck(&config), None);
        assert_eq!(
            pending(&config).as_deref(),
            Some("CreateContainerConfigError: secret \"x\" not found")
        );
        let unplaced = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
            "message": "0/1 nodes are available: 1 node(s) had taint.\n"}]}});
        assert_eq!(
            pending(&unplaced).as_deref(),
            Some("its pod was never scheduled: 0/1 nodes are available: 1 node(s) had taint")
        );
        assert!(job_name(JobKind::Release).starts_with("release-"));
    }
}
