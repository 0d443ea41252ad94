//! Why a rollout did not become ready, in the pods' own words: their containers' states, the
//! events the cluster recorded about them, and the last lines they logged. helm only says
//! "not ready"; the reason (an image that cannot be pulled, a crash loop, a failing readiness
//! probe, a port already taken) is in these.

use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, QUICK};
use serde_json::Value;

use crate::tenancy::app_kubectl;

/// Pods looked at: the newest ones that are not ready.
const MAX_PODS: usize = 3;
/// Events shown per pod, the latest ones.
const MAX_EVENTS: usize = 5;
/// Log lines shown per container.
const LOG_LINES: &str = "10";
/// What the kubelet answers for a container whose log file is gone.
const NO_LOGS: &str = "unable to retrieve container logs";

/// What the pods say: lines for the pusher and the one reason that sums them up.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    pub lines: Vec<String>,
    /// `ImagePullBackOff`, `CrashLoopBackOff`, `readiness probe failing`, ...
    pub reason: Option<String>,
}

/// Looks at the app's pods that are not ready. Best effort: what kubectl cannot tell is left
/// out, and the deploy's own error still follows.
pub(crate) fn not_ready_pods(settings: &Settings, app: &AppName) -> Diagnosis {
    let kubectl = |args: &[&str]| {
        let mut kubectl = app_kubectl(settings, app);
        kubectl.args(args);
        run(kubectl, QUICK).ok().filter(|out| out.success())
    };
    let json = |args: &[&str]| -> Value {
        kubectl(args)
            .and_then(|out| serde_json::from_slice(&out.stdout).ok())
            .unwrap_or(Value::Null)
    };
    let pods = json(&["get", "pods", "--output", "json"]);
    let events = json(&["get", "events", "--output", "json"]);
    let mut diagnosis = Diagnosis::default();
    for pod in stuck_pods(&pods) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        diagnosis.lines.push(format!("pod {}:", printable(name)));
        for event in pod_events(&events, name) {
            diagnosis
                .lines
                .push(format!("  event: {}", printable(&event)));
        }
        for container in containers(pod) {
            let (line, reason) = describe(container);
            diagnosis.lines.push(format!("  {line}"));
            if diagnosis.reason.is_none() {
                diagnosis.reason = reason;
            }
            let cname = container["name"].as_str().unwrap_or_default();
            let logs_of = |previous: bool| {
                let mut args = vec!["logs", name, "--container", cname, "--tail", LOG_LINES];
                if previous {
                    args.push("--previous");
                }
                kubectl(&args)
                    .map(|out| out.stdout_text())
                    .filter(|text| !text.starts_with(NO_LOGS))
                    .unwrap_or_default()
            };
            // A container waiting to restart (a crash loop) logs nothing new: its logs are
            // those of the attempt that just ended, which kubelets may already have removed
            // as "previous". A running one that restarted: the attempt before it, or its own
            // when that one is gone.
            let restarted = container["restartCount"].as_u64().unwrap_or(0) > 0;
            let running = container["state"]["running"].is_object();
            let mut logs = if restarted && running {
                logs_of(true)
            } else {
                String::new()
            };
            if logs.is_empty() {
                logs = logs_of(false);
            }
            if !logs.is_empty() {
                diagnosis
                    .lines
                    .push(format!("  last lines of {}:", printable(cname)));
                for line in logs.lines() {
                    diagnosis.lines.push(format!("    {}", printable(line)));
                }
            }
        }
        if diagnosis.reason.is_none() {
            diagnosis.reason = pending_reason(pod, &events);
        }
    }
    diagnosis
}

/// The newest pods that are neither ready nor on their way out.
fn stuck_pods(pods: &Value) -> Vec<&Value> {
    let mut stuck: Vec<&Value> = pods["items"]
        .as_array()
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    stuck.retain(|pod| pod["metadata"]["deletionTimestamp"].is_null() && !is_ready(pod));
    stuck.sort_by(|a, b| {
        let created = |p: &Value| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_owned)
        };
        created(b).cmp(&created(a))
    });
    stuck.truncate(MAX_PODS);
    stuck
}

fn is_ready(pod: &Value) -> bool {
    if pod["status"]["phase"] == "Succeeded" {
        return true;
    }
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .filter_map(|key| pod["status"][key].as_array())
        .flatten()
}

/// One line for a container's state, and its reason when it is a problem.
fn describe(container: &Value) -> (String, Option<String>) {
    let name = printable(container["name"].as_str().unwrap_or_default());
    let restarts = container["restartCount"].as_u64().unwrap_or(0);
    let restarted = match restarts {
        0 => String::new(),
        1 => ", restarted once".to_owned(),
        n => format!(", restarted {n} times"),
    };
    let exited = |terminated: &Value| {
        terminated["exitCode"]
            .as_i64()
            .map(|code| format!(", last exit code {code}"))
            .unwrap_or_default()
    };
    let state = &container["state"];
    if let Some(waiting) = state["waiting"].as_object() {
        let reason = waiting["reason"].as_str().unwrap_or("Waiting").to_owned();
        let message = waiting
            .get("message")
            .and_then(Value::as_str)
            .map(|m| format!(": {}", printable(m)))
            .unwrap_or_default();
        let last = exited(&container["lastState"]["terminated"]);
        return (
            format!("container {name}: {reason}{last}{restarted}{message}"),
            Some(reason),
        );
    }
    if let Some(terminated) = state["terminated"].as_object() {
        let reason = terminated
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("Terminated")
            .to_owned();
        let last = exited(&state["terminated"]);
        return (
            format!("container {name}: {reason}{last}{restarted}"),
            Some(reason),
        );
    }
    if state["running"].is_object() && container["ready"] != true {
        return (
            format!(
                "container {name}: running but not ready (its readiness probe fails){restarted}"
            ),
            Some("readiness probe failing".to_owned()),
        );
    }
    (format!("container {name}: running{restarted}"), None)
}

/// A pod with no container yet: why it is not scheduled or started.
fn pending_reason(pod: &Value, events: &Value) -> Option<String> {
    let name = pod["metadata"]["name"].as_str()?;
    let reason = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["status"] == "False" && c["reason"].is_string())
        .and_then(|c| c["reason"].as_str().map(str::to_owned));
    reason.or_else(|| {
        warnings(events, name)
            .last()
            .and_then(|e| e["reason"].as_str().map(str::to_owned))
    })
}

fn warnings<'a>(events: &'a Value, pod: &str) -> Vec<&'a Value> {
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["kind"] == "Pod" && e["involvedObject"]["name"] == pod)
        .filter(|e| e["type"] == "Warning")
        .collect()
}

/// The latest warnings about `pod`: `Failed: Failed to pull image ...`.
fn pod_events(events: &Value, pod: &str) -> Vec<String> {
    let found = warnings(events, pod);
    let skip = found.len().saturating_sub(MAX_EVENTS);
    found
        .into_iter()
        .skip(skip)
        .map(|e| {
            let count = e["count"].as_u64().unwrap_or(1);
            let times = if count > 1 {
                format!(" (x{count})")
            } else {
                String::new()
            };
            format!(
                "{}: {}{times}",
                e["reason"].as_str().unwrap_or("Warning"),
                e["message"].as_str().unwrap_or_default().trim()
            )
        })
        .collect()
}

/// Text from the cluster or the app, made safe for the pusher's terminal: control characters
/// (escape sequences included) become `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, created: &str, statuses: Value, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "containerStatuses": statuses,
            }
        })
    }

    #[test]
    fn a_crash_loop_names_its_exit_code_and_restarts() {
        let (line, reason) = describe(&json!({
            "name": "web", "restartCount": 3, "ready": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
        }));
        assert_eq!(line, "container web: CrashLoopBackOff, last exit code 3, restarted 3 times: back-off 40s restarting failed container");
        assert_eq!(reason.as_deref(), Some("CrashLoopBackOff"));
    }

    #[test]
    fn a_running_container_that_is_not_ready_fails_its_probe() {
        let (line, reason) = describe(&json!({
            "name": "web", "restartCount": 0, "ready": false, "state": {"running": {}},
        }));
        assert_eq!(
            line,
            "container web: running but not ready (its readiness probe fails)"
        );
        assert_eq!(reason.as_deref(), Some("readiness probe failing"));
    }

    #[test]
    fn only_the_newest_stuck_pods_are_looked_at() {
        let pods = json!({"items": [
            pod("old-ready", "2026-01-01T00:00:00Z", json!([]), true),
            pod("a", "2026-01-01T00:00:01Z", json!([]), false),
            pod("b", "2026-01-01T00:00:03Z", json!([]), false),
            pod("c", "2026-01-01T00:00:02Z", json!([]), false),
            pod("d", "2026-01-01T00:00:04Z", json!([]), false),
        ]});
        let names: Vec<&str> = stuck_pods(&pods)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["d", "b", "c"]);
    }

    #[test]
    fn events_are_the_pods_latest_warnings() {
        let event = |pod: &str, kind: &str, reason: &str, count: u64| {
            json!({"involvedObject": {"kind": "Pod", "name": pod}, "type": kind,
                   "reason": reason, "message": format!("{reason} happened"), "count": count})
        };
        let events = json!({"items": [
            event("p", "Normal", "Scheduled", 1),
            event("p", "Warning", "Failed", 2),
            event("q", "Warning", "Other", 1),
            event("p", "Warning", "BackOff", 1),
        ]});
        assert_eq!(
            pod_events(&events, "p"),
            ["Failed: Failed happened (x2)", "BackOff: BackOff happened"]
        );
    }

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(printable("a\u{1b}[31mred\r"), "a?[31mred?");
    }
}
