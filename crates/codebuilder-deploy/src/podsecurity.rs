//! codebuilder's own Pod Security check: every pod template of a rendered release (Pods,
//! Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs)
//! against the rules of the Pod Security Standards (`latest`) for the app namespaces' level.
//! It holds on clusters older than 1.23 and where Pod Security admission is off, and it holds
//! before any image is built; on clusters that enforce it, the API server is a second wall.
//!
//! A field whose value helm's YAML reader could take as true (`yes`, `on`, a string) counts
//! as set: what cannot be read as allowed is refused.

use codebuilder_core::pod_security::{Control, Level};
use serde_json::Value;

use crate::manifest::{at, elements, fields, pod_templates, text, PodTemplate};

/// Capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// Sysctls the baseline level allows: namespaced, and isolated from the node.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
/// SELinux types the baseline level allows.
const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
/// Volume types the restricted level allows.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// A field of a pod template that breaks a level, or one that the level needs and that is
/// missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `daemonset/t`.
    pub object: String,
    pub control: Control,
    /// The level that was checked.
    pub level: Level,
    /// `securityContext.privileged`.
    pub field: String,
    /// The level needs the field (and it is missing), rather than forbids it.
    pub required: bool,
}

impl Violation {
    /// `runs daemonset/t with securityContext.privileged, which the baseline Pod Security
    /// level forbids`.
    pub fn describe(&self) -> String {
        let (with, verb) = if self.required {
            ("without", "requires")
        } else {
            ("with", "forbids")
        };
        format!(
            "runs {} {with} {}, which the {} Pod Security level {verb}",
            self.object, self.field, self.level
        )
    }

    /// What the chart's author does about it.
    pub fn fix(&self) -> &'static str {
        if self.required {
            "set it"
        } else {
            "remove it"
        }
    }
}

/// One finding: the control, the lowest level that has the rule, the field, and whether the
/// rule needs the field.
struct Finding {
    control: Control,
    level: Level,
    field: String,
    required: bool,
}

fn forbidden(control: Control, level: Level, field: String) -> Finding {
    Finding {
        control,
        level,
        field,
        required: false,
    }
}

fn required(control: Control, field: &str) -> Finding {
    Finding {
        control,
        level: Level::Restricted,
        field: field.to_owned(),
        required: true,
    }
}

/// Checks every pod template of `objects` against `level`; `allowed` controls are not
/// checked. The first violation, in the objects' order.
pub fn check(objects: &[Value], level: Level, allowed: &[Control]) -> Result<(), Violation> {
    for pod in pod_templates(objects) {
        let found = findings(&pod)
            .into_iter()
            .find(|f| f.level <= level && !allowed.contains(&f.control));
        if let Some(finding) = found {
            return Err(Violation {
                object: pod.object,
                control: finding.control,
                level,
                field: finding.field,
                required: finding.required,
            });
        }
    }
    Ok(())
}

/// Whether a boolean field is anything but unset or false.
fn is_set(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// Every rule `pod` breaks, at its own level.
fn findings(pod: &PodTemplate) -> Vec<Finding> {
    use Control::*;
    use Level::{Baseline, Restricted};
    let spec = pod.spec;
    let mut found = Vec::new();
    let host_network = fields(spec, "hostNetwork").into_iter().any(is_set);
    for (control, name) in [
        (HostNetwork, "hostNetwork"),
        (HostPid, "hostPID"),
        (HostIpc, "hostIPC"),
    ] {
        if fields(spec, name).into_iter().any(is_set) {
            found.push(forbidden(control, Baseline, name.to_owned()));
        }
    }
    let pod_contexts = fields(spec, "securityContext");
    for context in &pod_contexts {
        found.extend(context_findings(context));
        for sysctl in at(context, &["sysctls"]).into_iter().flat_map(elements) {
            for name in fields(sysctl, "name") {
                if !SAFE_SYSCTLS.contains(&sysctl_name(&text(name)).as_str()) {
                    found.push(forbidden(
                        Sysctls,
                        Baseline,
                        format!("sysctl {}", text(name)),
                    ));
                }
            }
        }
    }
    for annotations in pod.metadata.iter().flat_map(|m| fields(m, "annotations")) {
        found.extend(annotation_findings(annotations));
    }
    for volume in fields(spec, "volumes").into_iter().flat_map(elements) {
        let name = fields(volume, "name")
            .first()
            .map(|n| text(n))
            .unwrap_or_default();
        let Some(map) = volume.as_object() else {
            continue;
        };
        for (key, value) in map {
            let key = key.as_str();
            if key.eq_ignore_ascii_case("name") || value.is_null() {
                continue;
            }
            if key.eq_ignore_ascii_case("hostPath") {
                found.push(forbidden(
                    HostPath,
                    Baseline,
                    format!("hostPath volume {name}"),
                ));
            } else if !RESTRICTED_VOLUMES
                .iter()
                .any(|v| v.eq_ignore_ascii_case(key))
            {
                found.push(forbidden(
                    VolumeTypes,
                    Restricted,
                    format!("volume {name} of type {key}"),
                ));
            }
        }
    }
    // Restricted: non-root and a seccomp profile, on the pod or on every container.
    let pod_non_root = !pod_contexts.is_empty()
        && pod_contexts
            .iter()
            .all(|c| fields(c, "runAsNonRoot") == [&Value::Bool(true)]);
    let pod_seccomp = !pod_contexts.is_empty() && pod_contexts.iter().all(|c| confined_seccomp(c));
    for list in CONTAINER_LISTS {
        for container in fields(spec, list).into_iter().flat_map(elements) {
            found.extend(container_findings(container, host_network));
            let contexts = fields(container, "securityContext");
            let own = |name: &str| -> Vec<&Value> {
                contexts.iter().flat_map(|c| fields(c, name)).collect()
            };
            let non_root = own("runAsNonRoot");
            if non_root.iter().any(|v| **v != Value::Bool(true))
                || (non_root.is_empty() && !pod_non_root)
            {
                found.push(required(RunAsNonRoot, "securityContext.runAsNonRoot: true"));
            }
            let seccomp_set = contexts
                .iter()
                .any(|c| !at(c, &["seccompProfile", "type"]).is_empty());
            if (seccomp_set && !contexts.iter().all(|c| confined_seccomp(c)))
                || (!seccomp_set && !pod_seccomp)
            {
                found.push(required(
                    Seccomp,
                    "securityContext.seccompProfile.type: RuntimeDefault",
                ));
            }
            let escalation = own("allowPrivilegeEscalation");
            if escalation.is_empty() || escalation.iter().any(|v| **v != Value::Bool(false)) {
                found.push(required(
                    AllowPrivilegeEscalation,
                    "securityContext.allowPrivilegeEscalation: false",
                ));
            }
            let drops: Vec<String> = contexts
                .iter()
                .flat_map(|c| at(c, &["capabilities", "drop"]))
                .flat_map(elements)
                .map(text)
                .collect();
            if !drops.iter().any(|d| d == "ALL") {
                found.push(required(
                    Capabilities,
                    "securityContext.capabilities.drop: [ALL]",
                ));
            }
        }
    }
    found.sort_by_key(|f| f.level);
    found
}

/// A seccomp profile that confines: set, and RuntimeDefault or Localhost.
fn confined_seccomp(context: &Value) -> bool {
    let types = at(context, &["seccompProfile", "type"]);
    !types.is_empty()
        && types
            .iter()
            .all(|t| matches!(t.as_str(), Some("RuntimeDefault" | "Localhost")))
}

/// Rules of a security context that are the same for a pod and a container.
fn context_findings(context: &Value) -> Vec<Finding> {
    use Control::*;
    use Level::{Baseline, Restricted};
    let mut found = Vec::new();
    if at(context, &["windowsOptions", "hostProcess"])
        .into_iter()
        .any(is_set)
    {
        found.push(forbidden(
            HostProcess,
            Baseline,
            "securityContext.windowsOptions.hostProcess".into(),
        ));
    }
    for selinux in fields(context, "seLinuxOptions") {
        for kind in fields(selinux, "type") {
            if !SELINUX_TYPES.contains(&text(kind).as_str()) {
                found.push(forbidden(
                    SeLinux,
                    Baseline,
                    format!("securityContext.seLinuxOptions.type {}", text(kind)),
                ));
            }
        }
        for part in ["user", "role"] {
            if fields(selinux, part).iter().any(|v| !text(v).is_empty()) {
                found.push(forbidden(
                    SeLinux,
                    Baseline,
                    format!("securityContext.seLinuxOptions.{part}"),
                ));
            }
        }
    }
    for kind in at(context, &["seccompProfile", "type"]) {
        if !matches!(kind.as_str(), Some("RuntimeDefault" | "Localhost")) {
            found.push(forbidden(
                Seccomp,
                Baseline,
                format!("securityContext.seccompProfile.type {}", text(kind)),
            ));
        }
    }
    for kind in at(context, &["appArmorProfile", "type"]) {
        if !matches!(kind.as_str(), Some("RuntimeDefault" | "Localhost")) {
            found.push(forbidden(
                AppArmor,
                Baseline,
                format!("securityContext.appArmorProfile.type {}", text(kind)),
            ));
        }
    }
    for non_root in fields(context, "runAsNonRoot") {
        if *non_root != Value::Bool(true) && !non_root.is_null() {
            found.push(forbidden(
                RunAsNonRoot,
                Restricted,
                format!("securityContext.runAsNonRoot: {}", text(non_root)),
            ));
        }
    }
    for user in fields(context, "runAsUser") {
        if !user.is_null() && user.as_u64().is_none_or(|uid| uid == 0) {
            found.push(forbidden(
                RunAsUser,
                Restricted,
                format!("securityContext.runAsUser: {}", text(user)),
            ));
        }
    }
    found
}

/// Rules of one container.
fn container_findings(container: &Value, host_network: bool) -> Vec<Finding> {
    use Control::*;
    use Level::{Baseline, Restricted};
    let mut found = Vec::new();
    for context in fields(container, "securityContext") {
        if fields(context, "privileged").into_iter().any(is_set) {
            found.push(forbidden(
                Privileged,
                Baseline,
                "securityContext.privileged".into(),
            ));
        }
        for added in at(context, &["capabilities", "add"])
            .into_iter()
            .flat_map(elements)
        {
            let name = text(added);
            let plain = name.to_ascii_uppercase();
            let plain = plain.strip_prefix("CAP_").unwrap_or(&plain);
            let field = format!("securityContext.capabilities.add {name}");
            if !BASELINE_CAPABILITIES.contains(&plain) {
                found.push(forbidden(Capabilities, Baseline, field));
            } else if plain != "NET_BIND_SERVICE" {
                found.push(forbidden(Capabilities, Restricted, field));
            }
        }
        for mount in fields(context, "procMount") {
            if !mount.is_null() && mount.as_str() != Some("Default") {
                found.push(forbidden(
                    ProcMount,
                    Baseline,
                    format!("securityContext.procMount {}", text(mount)),
                ));
            }
        }
        found.extend(context_findings(context));
    }
    for port in fields(container, "ports").into_iter().flat_map(elements) {
        for host_port in fields(port, "hostPort") {
            if !matches!(host_port, Value::Null) && host_port.as_u64() != Some(0) {
                found.push(forbidden(
                    HostPorts,
                    Baseline,
                    format!("hostPort {}", text(host_port)),
                ));
            }
        }
        if host_network {
            for container_port in fields(port, "containerPort") {
                found.push(forbidden(
                    HostPorts,
                    Baseline,
                    format!(
                        "hostPort {} (a containerPort under hostNetwork)",
                        text(container_port)
                    ),
                ));
            }
        }
    }
    found
}

/// The annotations that set AppArmor and seccomp profiles before their fields existed.
fn annotation_findings(annotations: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    for (key, value) in annotations.as_object().into_iter().flatten() {
        let (key, value) = (key.as_str(), text(value));
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && value != "runtime/default"
            && !value.starts_with("localhost/")
        {
            found.push(forbidden(
                Control::AppArmor,
                Level::Baseline,
                format!("annotation {key}: {value}"),
            ));
        }
        if (key == "seccomp.security.alpha.kubernetes.io/pod"
            || key.starts_with("container.seccomp.security.alpha.kubernetes.io/"))
            && value == "unconfined"
        {
            found.push(forbidden(
                Control::Seccomp,
                Level::Baseline,
                format!("annotation {key}: {value}"),
            ));
        }
    }
    found
}

/// A sysctl's name with dots: the kubelet reads `net/ipv4/x` as `net.ipv4.x`.
fn sysctl_name(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(at) if name.as_bytes()[at] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::read;

    /// A DaemonSet `t` whose pod spec is `spec` (YAML, indented under `spec:`).
    fn daemonset(spec: &str) -> Vec<Value> {
        let indented: String = spec.lines().map(|l| format!("      {l}\n")).collect();
        read(&format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: t\nspec:\n  template:\n    spec:\n{indented}"
        ))
        .unwrap()
    }

    fn line(objects: &[Value], level: Level, allowed: &[Control]) -> Option<String> {
        check(objects, level, allowed).err().map(|v| v.describe())
    }

    /// A container that passes restricted.
    const CONFINED: &str = "securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, seccompProfile: {type: RuntimeDefault}, capabilities: {drop: [ALL]}}";

    #[test]
    fn every_baseline_field_is_refused_by_name() {
        let cases = [
            ("hostPID: true\ncontainers: [{name: a}]", "hostPID"),
            ("hostIPC: yes\ncontainers: [{name: a}]", "hostIPC"),
            ("hostNetwork: true\ncontainers: [{name: a}]", "hostNetwork"),
            ("containers: [{name: a, securityContext: {privileged: true}}]", "securityContext.privileged"),
            ("containers: [{name: a, securityContext: {capabilities: {add: [SYS_ADMIN]}}}]", "securityContext.capabilities.add SYS_ADMIN"),
            ("containers: [{name: a, securityContext: {capabilities: {add: [cap_net_admin]}}}]", "securityContext.capabilities.add cap_net_admin"),
            ("volumes: [{name: host, hostPath: {path: /}}]\ncontainers: [{name: a}]", "hostPath volume host"),
            ("containers: [{name: a, ports: [{containerPort: 80, hostPort: 80}]}]", "hostPort 80"),
            ("securityContext: {sysctls: [{name: kernel.msgmax, value: '1'}]}\ncontainers: [{name: a}]", "sysctl kernel.msgmax"),
            ("containers: [{name: a, securityContext: {procMount: Unmasked}}]", "securityContext.procMount Unmasked"),
            ("containers: [{name: a, securityContext: {seLinuxOptions: {type: spc_t}}}]", "securityContext.seLinuxOptions.type spc_t"),
            ("securityContext: {seLinuxOptions: {user: system_u}}\ncontainers: [{name: a}]", "securityContext.seLinuxOptions.user"),
            ("containers: [{name: a, securityContext: {seccompProfile: {type: Unconfined}}}]", "securityContext.seccompProfile.type Unconfined"),
            ("securityContext: {appArmorProfile: {type: Unconfined}}\ncontainers: [{name: a}]", "securityContext.appArmorProfile.type Unconfined"),
            ("containers: [{name: a, securityContext: {windowsOptions: {hostProcess: true}}}]", "securityContext.windowsOptions.hostProcess"),
        ];
        for (spec, field) in cases {
            assert_eq!(
                line(&daemonset(spec), Level::Baseline, &[]),
                Some(format!(
                    "runs daemonset/t with {field}, which the baseline Pod Security level forbids"
                )),
                "{spec}"
            );
        }
        let annotated = read("kind: Pod\nmetadata:\n  name: p\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/a: unconfined\nspec:\n  containers: [{name: a}]\n").unwrap();
        assert_eq!(
            line(&annotated, Level::Baseline, &[]),
            Some("runs pod/p with annotation container.apparmor.security.beta.kubernetes.io/a: unconfined, which the baseline Pod Security level forbids".into())
        );
    }

    #[test]
    fn what_baseline_allows_passes_and_privileged_checks_nothing() {
        let allowed = daemonset(
            "securityContext: {sysctls: [{name: net/ipv4/ip_local_port_range, value: '1 2'}], seccompProfile: {type: RuntimeDefault}}\nvolumes: [{name: c, configMap: {name: x}}]\ncontainers: [{name: a, ports: [{containerPort: 80, hostPort: 0}], securityContext: {privileged: false, capabilities: {add: [NET_BIND_SERVICE, CHOWN]}, procMount: Default, seLinuxOptions: {type: container_t, level: 's0:c1'}}}]",
        );
        assert_eq!(line(&allowed, Level::Baseline, &[]), None);
        let privileged = daemonset(
            "hostPID: true\ncontainers: [{name: a, securityContext: {privileged: true}}]",
        );
        assert_eq!(line(&privileged, Level::Privileged, &[]), None);
    }

    #[test]
    fn every_kind_that_runs_pods_is_checked() {
        for (kind, path) in [
            ("Pod", ""),
            ("Deployment", "template: "),
            ("StatefulSet", "template: "),
            ("ReplicaSet", "template: "),
            ("ReplicationController", "template: "),
            ("Job", "template: "),
        ] {
            let spec = "{containers: [{name: a, securityContext: {privileged: true}}]}";
            let body = if path.is_empty() {
                format!("spec: {spec}")
            } else {
                format!("spec: {{template: {{spec: {spec}}}}}")
            };
            let objects = read(&format!("kind: {kind}\nmetadata: {{name: x}}\n{body}\n")).unwrap();
            let lowered = kind.to_ascii_lowercase();
            assert_eq!(
                line(&objects, Level::Baseline, &[]),
                Some(format!("runs {lowered}/x with securityContext.privileged, which the baseline Pod Security level forbids"))
            );
        }
        let cron = read("kind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {spec: {hostNetwork: true, containers: [{name: a}]}}}}}\n").unwrap();
        assert_eq!(
            line(&cron, Level::Baseline, &[]),
            Some(
                "runs cronjob/c with hostNetwork, which the baseline Pod Security level forbids"
                    .into()
            )
        );
    }

    #[test]
    fn restricted_needs_non_root_seccomp_no_escalation_and_dropped_capabilities() {
        let confined = daemonset(&format!("containers: [{{name: a, {CONFINED}}}]"));
        assert_eq!(line(&confined, Level::Restricted, &[]), None);
        let on_the_pod = daemonset("securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}}]");
        assert_eq!(line(&on_the_pod, Level::Restricted, &[]), None);
        let cases = [
            ("containers: [{name: a}]", "without securityContext.runAsNonRoot: true, which the restricted Pod Security level requires"),
            ("containers: [{name: a, securityContext: {runAsNonRoot: true}}]", "without securityContext.seccompProfile.type: RuntimeDefault, which the restricted Pod Security level requires"),
            ("securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a}]", "without securityContext.allowPrivilegeEscalation: false, which the restricted Pod Security level requires"),
            ("securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a, securityContext: {allowPrivilegeEscalation: false}}]", "without securityContext.capabilities.drop: [ALL], which the restricted Pod Security level requires"),
            ("securityContext: {runAsUser: 0}\ncontainers: [{name: a, securityContext: {runAsNonRoot: true}}]", "with securityContext.runAsUser: 0, which the restricted Pod Security level forbids"),
            ("securityContext: {runAsNonRoot: true}\ncontainers: [{name: a, securityContext: {runAsNonRoot: false}}]", "with securityContext.runAsNonRoot: false, which the restricted Pod Security level forbids"),
            ("volumes: [{name: data, nfs: {server: x, path: /}}]\ncontainers: [{name: a}]", "with volume data of type nfs, which the restricted Pod Security level forbids"),
            (&format!("containers: [{{name: a, {}}}]", CONFINED.replace("drop: [ALL]", "drop: [ALL], add: [CHOWN]")), "with securityContext.capabilities.add CHOWN, which the restricted Pod Security level forbids"),
        ];
        for (spec, rest) in cases {
            assert_eq!(
                line(&daemonset(spec), Level::Restricted, &[]),
                Some(format!("runs daemonset/t {rest}")),
                "{spec}"
            );
            assert_eq!(line(&daemonset(spec), Level::Baseline, &[]), None, "{spec}");
        }
        // Baseline rules come first under restricted.
        assert_eq!(
            line(
                &daemonset("hostPID: true\ncontainers: [{name: a}]"),
                Level::Restricted,
                &[]
            ),
            Some(
                "runs daemonset/t with hostPID, which the restricted Pod Security level forbids"
                    .into()
            )
        );
    }

    #[test]
    fn exceptions_and_host_network_ports() {
        let host =
            daemonset("hostNetwork: true\ncontainers: [{name: a, ports: [{containerPort: 5000}]}]");
        assert_eq!(
            line(&host, Level::Baseline, &[Control::HostNetwork]),
            Some("runs daemonset/t with hostPort 5000 (a containerPort under hostNetwork), which the baseline Pod Security level forbids".into())
        );
        assert_eq!(
            line(
                &host,
                Level::Baseline,
                &[Control::HostNetwork, Control::HostPorts]
            ),
            None
        );
        let violation = check(&host, Level::Baseline, &[]).unwrap_err();
        assert_eq!(
            (violation.control, violation.fix()),
            (Control::HostNetwork, "remove it")
        );
    }

    #[test]
    fn nothing_hides_in_case_strings_or_duplicates() {
        for spec in [
            "HostNetwork: true\ncontainers: [{name: a}]",
            "hostNetwork: 'true'\ncontainers: [{name: a}]",
            "hostNetwork: false\nHOSTNETWORK: true\ncontainers: [{name: a}]",
        ] {
            assert_eq!(
                check(&daemonset(spec), Level::Baseline, &[])
                    .unwrap_err()
                    .control,
                Control::HostNetwork,
                "{spec}"
            );
        }
        let twice = read("kind: ConfigMap\nKind: DaemonSet\nmetadata: {name: t}\nspec: {template: {spec: {containers: [{name: a}]}, Spec: {hostPID: true}}}\n").unwrap();
        assert_eq!(
            line(&twice, Level::Baseline, &[]),
            Some(
                "runs daemonset/t with hostPID, which the baseline Pod Security level forbids"
                    .into()
            )
        );
    }
}
