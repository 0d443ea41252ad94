//! Each app's share of the cluster (`CODEBUILDER_APP_QUOTA`): a ResourceQuota and a
//! LimitRange in its namespace, which its own account may read and not change, and the check
//! that a release's pods fit in it before anything is applied, so that a push over quota is
//! refused at once instead of waiting out the rollout.

use codebuilder_core::quantity::Quantity;
use codebuilder_core::settings::AppQuota;
use codebuilder_core::AppName;
use serde_json::{json, Value};

use crate::labels::{APP_LABEL, CODEBUILDER, MANAGED_BY};
use crate::manifest::{at, elements, fields, kinds, pod_templates, text};

/// The ResourceQuota codebuilder keeps in every app namespace.
pub const QUOTA: &str = "codebuilder-quota";
/// The LimitRange that gives containers their default requests and limits.
pub const DEFAULTS: &str = "codebuilder-defaults";

/// The ResourceQuota and LimitRange of `app` for `quota`.
pub(crate) fn objects(app: &AppName, quota: &AppQuota) -> [Value; 2] {
    let labels = json!({MANAGED_BY: CODEBUILDER, APP_LABEL: app.as_str()});
    [
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": QUOTA, "namespace": app.as_str(), "labels": labels},
            "spec": {"hard": {
                "requests.cpu": quota.cpu.cpu(),
                "requests.memory": quota.memory.memory(),
                "pods": quota.pods.to_string(),
                "services": quota.services.to_string(),
                "persistentvolumeclaims": quota.volume_claims.to_string(),
            }},
        }),
        json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": DEFAULTS, "namespace": app.as_str(), "labels": labels},
            "spec": {"limits": [{
                "type": "Container",
                "defaultRequest": {"cpu": quota.request.cpu.cpu(), "memory": quota.request.memory.memory()},
                "default": {"cpu": quota.limit.cpu.cpu(), "memory": quota.limit.memory.memory()},
            }]},
        }),
    ]
}

/// Why a release does not fit in its app's quota.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("asks for {resource}: {needed}, over its quota of {allowed} (resourcequota/{QUOTA}, CODEBUILDER_APP_QUOTA)")]
    Over {
        resource: &'static str,
        needed: String,
        allowed: String,
    },
    #[error("has {field} {value:?} in {object}, which is not a Kubernetes quantity")]
    Unreadable {
        object: String,
        field: String,
        value: String,
    },
}

impl QuotaError {
    /// What the app's author does about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Self::Over { .. } => "ask for fewer replicas or smaller requests, commit, and push again; or have the operator raise CODEBUILDER_APP_QUOTA",
            Self::Unreadable { .. } => "fix it, commit, and push again",
        }
    }
}

/// What a release's objects ask of the quota: pods and their requests at full scale,
/// Services and claims. Helm hooks are not counted: they run before or after the rollout.
#[derive(Debug, Default, PartialEq, Eq)]
struct Usage {
    cpu: Quantity,
    memory: Quantity,
    pods: u64,
    services: u64,
    volume_claims: u64,
}

/// Checks that `objects` (a rendered release) fit in `quota`, counting the LimitRange's
/// default request for a container that names none.
pub(crate) fn check_fit(objects: &[Value], quota: &AppQuota) -> Result<(), QuotaError> {
    let usage = usage(objects, quota)?;
    let over = |resource, needed: u64, allowed: u64| {
        (needed > allowed).then(|| QuotaError::Over {
            resource,
            needed: needed.to_string(),
            allowed: allowed.to_string(),
        })
    };
    let error = over("pods", usage.pods, quota.pods)
        .or_else(|| {
            (usage.cpu > quota.cpu).then(|| QuotaError::Over {
                resource: "requests.cpu",
                needed: usage.cpu.cpu(),
                allowed: quota.cpu.cpu(),
            })
        })
        .or_else(|| {
            (usage.memory > quota.memory).then(|| QuotaError::Over {
                resource: "requests.memory",
                needed: usage.memory.memory(),
                allowed: quota.memory.memory(),
            })
        })
        .or_else(|| over("services", usage.services, quota.services))
        .or_else(|| {
            over(
                "persistentvolumeclaims",
                usage.volume_claims,
                quota.volume_claims,
            )
        });
    error.map_or(Ok(()), Err)
}

fn is_hook(object: &Value) -> bool {
    at(object, &["metadata", "annotations"])
        .iter()
        .any(|a| a.get("helm.sh/hook").is_some())
}

/// How many pods `object` runs at once: its replicas (1 unless given), one for a DaemonSet
/// (per node), a Job's parallelism; none for a CronJob until it fires.
fn replicas(object: &Value, kind: &str) -> u64 {
    let count = |field: &str| {
        at(object, &["spec", field])
            .first()
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
    };
    match kind {
        "cronjob" => 0,
        "pod" | "daemonset" => 1,
        "job" => count("parallelism"),
        _ => count("replicas"),
    }
}

fn usage(objects: &[Value], quota: &AppQuota) -> Result<Usage, QuotaError> {
    let mut usage = Usage::default();
    for object in objects.iter().filter(|o| !is_hook(o)) {
        for kind in kinds(object) {
            match kind.as_str() {
                "service" => usage.services += 1,
                "persistentvolumeclaim" => usage.volume_claims += 1,
                "statefulset" => {
                    let claims = at(object, &["spec", "volumeClaimTemplates"])
                        .into_iter()
                        .flat_map(elements)
                        .count() as u64;
                    usage.volume_claims += claims * replicas(object, &kind);
                }
                _ => {}
            }
        }
    }
    for pod in pod_templates(objects) {
        if is_hook(pod.holder) {
            continue;
        }
        let kind = pod.object.split('/').next().unwrap_or_default();
        let count = replicas(pod.holder, kind);
        let (mut cpu, mut memory) = (Quantity::ZERO, Quantity::ZERO);
        let (mut init_cpu, mut init_memory) = (Quantity::ZERO, Quantity::ZERO);
        for (list, init) in [("containers", false), ("initContainers", true)] {
            for container in fields(pod.spec, list).into_iter().flat_map(elements) {
                let request = |resource: &str, default: Quantity| {
                    let given = at(container, &["resources", "requests", resource])
                        .into_iter()
                        .chain(at(container, &["resources", "limits", resource]))
                        .next();
                    match given {
                        None => Ok(default),
                        Some(value) => {
                            Quantity::parse(&text(value)).ok_or_else(|| QuotaError::Unreadable {
                                object: pod.object.clone(),
                                field: format!("resources.requests.{resource}"),
                                value: text(value),
                            })
                        }
                    }
                };
                let c = request("cpu", quota.request.cpu)?;
                let m = request("memory", quota.request.memory)?;
                if init {
                    init_cpu = init_cpu.max(c);
                    init_memory = init_memory.max(m);
                } else {
                    cpu = cpu.plus(c);
                    memory = memory.plus(m);
                }
            }
        }
        usage.cpu = usage.cpu.plus(cpu.max(init_cpu).times(count));
        usage.memory = usage.memory.plus(memory.max(init_memory).times(count));
        usage.pods += count;
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::read as read_manifest;
    use codebuilder_core::Settings;
    use std::collections::HashMap;

    fn quota() -> AppQuota {
        let vars = HashMap::from([(
            "CODEBUILDER_APP_QUOTA".to_owned(),
            "cpu=2,memory=1Gi,pods=5,services=2,persistentvolumeclaims=1".to_owned(),
        )]);
        Settings::from_vars(&vars).unwrap().app_quota.unwrap()
    }

    fn fit(manifest: &str) -> Result<(), String> {
        check_fit(&read_manifest(manifest).unwrap(), &quota()).map_err(|e| e.to_string())
    }

    fn deployment(replicas: u32, resources: &str) -> String {
        format!("kind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers: [{{name: a, resources: {resources}}}]\n---\nkind: Service\nmetadata: {{name: web}}\n")
    }

    #[test]
    fn pods_and_requests_are_counted_at_full_scale() {
        assert_eq!(fit(&deployment(5, "{}")), Ok(()));
        assert_eq!(
            fit(&deployment(6, "{}")),
            Err("asks for pods: 6, over its quota of 5 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA)".into())
        );
        assert_eq!(
            fit(&deployment(3, "{requests: {cpu: 700m}}")),
            Err("asks for requests.cpu: 2100m, over its quota of 2 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA)".into())
        );
        // A limit without a request is the request, as the API server defaults it.
        assert_eq!(
            fit(&deployment(3, "{limits: {memory: 512Mi}}")),
            Err("asks for requests.memory: 1536Mi, over its quota of 1Gi (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA)".into())
        );
        assert_eq!(
            fit(&deployment(1, "{requests: {cpu: lots}}")),
            Err("has resources.requests.cpu \"lots\" in deployment/web, which is not a Kubernetes quantity".into())
        );
    }

    #[test]
    fn services_claims_hooks_and_cronjobs() {
        let many = format!("{}---\nkind: Service\nmetadata: {{name: b}}\n---\nkind: Service\nmetadata: {{name: c}}\n", deployment(1, "{}"));
        assert_eq!(
            fit(&many),
            Err("asks for services: 3, over its quota of 2 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA)".into())
        );
        assert_eq!(
            fit("kind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  volumeClaimTemplates: [{metadata: {name: data}}]\n  template: {spec: {containers: [{name: a}]}}\n"),
            Err("asks for persistentvolumeclaims: 2, over its quota of 1 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA)".into())
        );
        let hook = "kind: Job\nmetadata: {name: migrate, annotations: {helm.sh/hook: pre-upgrade}}\nspec: {parallelism: 9, template: {spec: {containers: [{name: a}]}}}\n";
        assert_eq!(fit(hook), Ok(()));
        assert_eq!(fit("kind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: a}]}}}}}\n"), Ok(()));
    }

    #[test]
    fn the_objects_say_what_the_settings_say() {
        let app = AppName::parse("myapp", "codebuilder").unwrap();
        let [quota, limits] = objects(&app, &quota());
        assert_eq!(
            quota["spec"]["hard"],
            json!({"requests.cpu": "2", "requests.memory": "1Gi", "pods": "5", "services": "2", "persistentvolumeclaims": "1"})
        );
        assert_eq!(
            limits["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "100m", "memory": "128Mi"})
        );
        assert_eq!(
            limits["spec"]["limits"][0]["default"],
            json!({"cpu": "1", "memory": "512Mi"})
        );
    }
}
