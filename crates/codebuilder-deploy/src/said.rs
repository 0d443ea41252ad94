//! What the cluster and its tools said, in our words: one line that names a permission and
//! where to grant it, says that an app's chart stays in its namespace, or that the API server
//! cannot be reached; else the tool's own last error line.

use anyhow::anyhow;
use codebuilder_process::RunError;

use crate::labels::APP_ACCOUNT;

/// A cluster tool (helm, kubectl) that did not run to its end: its own reason, and for one
/// that could not be started, the setting that names it.
pub(crate) fn tool_error(error: RunError, setting: &str) -> anyhow::Error {
    match error {
        RunError::Spawn { .. } => anyhow!("{error} (is it installed? {setting})"),
        other => other.into(),
    }
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
