//! Operator settings, all from `CODEBUILDER_*` environment variables with sane defaults. They
//! are read and checked once, before anything runs, so that a typo is one clear error instead
//! of a half-done build.

use std::collections::HashMap;
use std::time::Duration;

/// Every variable codebuilder reads; the sshd runner passes these on to ssh sessions.
pub const VARIABLES: &[&str] = &[
    "CODEBUILDER_HOME",
    "CODEBUILDER_SSH_USER",
    "CODEBUILDER_CONFIG_KEYS",
    "CODEBUILDER_NAMESPACE",
    "CODEBUILDER_REGISTRY",
    "CODEBUILDER_PULL_REGISTRY",
    "CODEBUILDER_DEPLOY",
    "CODEBUILDER_DEPLOY_BRANCH",
    "CODEBUILDER_BUILD_TIMEOUT",
    "CODEBUILDER_DEPLOY_TIMEOUT",
    "CODEBUILDER_DOCKER",
    "CODEBUILDER_HELM",
    "CODEBUILDER_BUILD_NETWORK",
    "CODEBUILDER_KEEP_BUILDS",
    "CODEBUILDER_LOG",
    "KUBECONFIG",
    "DOCKER_HOST",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployMode {
    /// `helm upgrade --install` after the image is pushed.
    Helm,
    /// Stop once the image is in the registry.
    None,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The only user sshd lets in; keys offered for any other user match nothing.
    pub ssh_user: String,
    /// The namespace codebuilder itself runs in: never an app.
    pub namespace: String,
    /// Where images are pushed.
    pub registry: String,
    /// Where the cluster's nodes pull them from (the chart's image); defaults to `registry`.
    pub pull_registry: String,
    pub deploy: DeployMode,
    pub deploy_branch: String,
    pub build_timeout: Duration,
    pub deploy_timeout: Duration,
    pub docker: String,
    pub helm: String,
    pub build_network: Option<String>,
    pub keep_builds: usize,
    /// Read-only file of declared keys (a mounted ConfigMap or Secret).
    pub config_keys: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {expected}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |name: &str, default: &str| -> String {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        let bad = |variable: &'static str, value: String, expected: &'static str| SettingsError {
            variable,
            value,
            expected,
        };
        let word = |variable: &'static str, default: &str, expected: &'static str| {
            let value = get(variable, default);
            if is_plain_word(&value) {
                Ok(value)
            } else {
                Err(bad(variable, value, expected))
            }
        };
        let duration = |variable: &'static str, default: &str| {
            let value = get(variable, default);
            parse_duration(&value)
                .ok_or_else(|| bad(variable, value, "a duration such as 90s, 30m or 1h"))
        };
        let deploy = match get("CODEBUILDER_DEPLOY", "helm").as_str() {
            "helm" => DeployMode::Helm,
            "none" => DeployMode::None,
            other => return Err(bad("CODEBUILDER_DEPLOY", other.to_owned(), "helm or none")),
        };
        let deploy_branch = get("CODEBUILDER_DEPLOY_BRANCH", "main");
        if !is_branch_name(&deploy_branch) {
            return Err(bad(
                "CODEBUILDER_DEPLOY_BRANCH",
                deploy_branch,
                "a branch name such as main",
            ));
        }
        let keep = get("CODEBUILDER_KEEP_BUILDS", "20");
        let keep_builds = keep
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("CODEBUILDER_KEEP_BUILDS", keep, "a whole number above 0"))?;
        let build_network = vars
            .get("CODEBUILDER_BUILD_NETWORK")
            .filter(|v| !v.is_empty())
            .cloned();
        if let Some(network) = &build_network {
            if !is_plain_word(network) {
                return Err(bad(
                    "CODEBUILDER_BUILD_NETWORK",
                    network.clone(),
                    "a docker network name such as host",
                ));
            }
        }
        let registry = word(
            "CODEBUILDER_REGISTRY",
            "127.0.0.1:5000",
            "a registry address such as 127.0.0.1:5000",
        )?;
        Ok(Self {
            pull_registry: word(
                "CODEBUILDER_PULL_REGISTRY",
                &registry,
                "a registry address such as 127.0.0.1:5000",
            )?,
            registry,
            ssh_user: word("CODEBUILDER_SSH_USER", "git", "a user name")?,
            namespace: word("CODEBUILDER_NAMESPACE", "codebuilder", "a namespace name")?,
            deploy,
            deploy_branch,
            build_timeout: duration("CODEBUILDER_BUILD_TIMEOUT", "30m")?,
            deploy_timeout: duration("CODEBUILDER_DEPLOY_TIMEOUT", "5m")?,
            docker: word("CODEBUILDER_DOCKER", "docker", "a program name or path")?,
            helm: word("CODEBUILDER_HELM", "helm", "a program name or path")?,
            build_network,
            keep_builds,
            config_keys: vars
                .get("CODEBUILDER_CONFIG_KEYS")
                .filter(|v| !v.is_empty())
                .map(Into::into),
        })
    }
}

/// A value that is safe as one argument and on one line of sshd_config: no space, quote,
/// control character or shell syntax.
fn is_plain_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=".contains(&b))
}

fn is_branch_name(value: &str) -> bool {
    is_plain_word(value)
        && !value.starts_with(['-', '/', '.'])
        && !value.ends_with(['/', '.'])
        && !value.contains("..")
        && !value.contains("//")
        && !value.ends_with(".lock")
        && !value.contains(['@', ':', '='])
}

/// Parses `90`, `90s`, `30m`, `1h` into a duration greater than zero.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.registry, "127.0.0.1:5000");
        assert_eq!(s.pull_registry, "127.0.0.1:5000");
        assert_eq!(s.deploy, DeployMode::Helm);
        assert_eq!(s.deploy_branch, "main");
        assert_eq!(s.build_timeout, Duration::from_secs(1800));
        assert_eq!(s.deploy_timeout, Duration::from_secs(300));
        assert_eq!(s.ssh_user, "git");
        assert_eq!(s.build_network, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("CODEBUILDER_DEPLOY", "kubectl"),
            ("CODEBUILDER_BUILD_TIMEOUT", "soon"),
            ("CODEBUILDER_BUILD_TIMEOUT", "0"),
            ("CODEBUILDER_DEPLOY_TIMEOUT", "5d"),
            ("CODEBUILDER_DEPLOY_BRANCH", "../main"),
            ("CODEBUILDER_DEPLOY_BRANCH", "a b"),
            ("CODEBUILDER_REGISTRY", "host:5000; rm -rf /"),
            ("CODEBUILDER_KEEP_BUILDS", "-1"),
            ("CODEBUILDER_BUILD_NETWORK", "host\nMatch all"),
        ] {
            let err = Settings::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }
}
