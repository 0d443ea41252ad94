//! Operator settings, all from `CODEBUILDER_*` environment variables with sane defaults. They
//! are read and checked once, before anything runs, so that a typo is one clear error instead
//! of a half-done build.

use std::collections::HashMap;
use std::time::Duration;

use crate::buildpack::Buildpack;
use crate::pod_security::{Control, Level};
use crate::quantity::Quantity;
use crate::BranchName;

pub mod table;

use table::{session_variables, Fallback, Reader, TABLE};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployMode {
    /// `helm upgrade --install` after the image is pushed.
    Helm,
    /// Stop once the image is in the registry.
    None,
}

/// Which keys may create an app by pushing to a new name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCreators {
    /// Every key: the pusher becomes the new app's owner.
    All,
    /// Admin keys only.
    Admins,
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
    /// A Docker client configuration folder (`config.json`) with the registry's push
    /// credentials: given to `docker push` as DOCKER_CONFIG, and to nothing a build runs.
    pub registry_auth: Option<std::path::PathBuf>,
    pub deploy: DeployMode,
    pub deploy_branch: BranchName,
    pub build_timeout: Duration,
    pub deploy_timeout: Duration,
    pub docker: String,
    pub helm: String,
    /// kubectl, to tell the pusher why a rollout failed (pods' events and logs).
    pub kubectl: String,
    /// A values file the operator merges into every deploy (resources, nodeSelector,
    /// tolerations, imagePullSecrets, hostNetwork, ...), before the build's own values.
    pub deploy_values: Option<std::path::PathBuf>,
    /// The Pod Security level of app namespaces: their labels, and codebuilder's own check of
    /// every release before it is applied.
    pub pod_security: Level,
    /// Controls the operator's values (`deploy_values`) may break; never an app's own chart.
    pub pod_security_allow: Vec<Control>,
    /// Each app's ResourceQuota and LimitRange; `None`: none (`CODEBUILDER_APP_QUOTA=off`).
    pub app_quota: Option<AppQuota>,
    /// Whether each app namespace gets a NetworkPolicy that lets in its own pods and those
    /// of `ingress_namespaces` only.
    pub network_isolation: bool,
    /// Namespaces whose pods may reach every app (the ingress controller's).
    pub ingress_namespaces: Vec<String>,
    pub build_network: Option<String>,
    pub keep_builds: usize,
    /// Images (`git-SHORT` tags) of each app kept in the registry and the engine, newest
    /// first; older ones are deleted.
    pub keep_images: usize,
    /// Largest pack a push may send (git's `receive.maxInputSize`).
    pub max_push_size: ByteSize,
    /// Largest build context: the pushed tree as `git archive` streams it into the build.
    pub max_context_size: ByteSize,
    /// Largest app's own `chart/`: the bytes of its files, as `git archive` streams them.
    pub max_chart_size: ByteSize,
    /// Most files (and folders) an app's own `chart/` may hold.
    pub max_chart_files: usize,
    /// Read-only file of declared keys (a mounted ConfigMap or Secret).
    pub config_keys: Option<std::path::PathBuf>,
    /// Read-only file of declared access to apps (`APP KEYNAME push|read` lines).
    pub config_access: Option<std::path::PathBuf>,
    /// Who may create an app by pushing to a new name.
    pub app_creators: AppCreators,
    /// Buildpacks tried, in order, on a repo without a Dockerfile (none by default: such a
    /// repo then needs a `.buildpacks` file).
    pub buildpacks: Vec<Buildpack>,
    /// The stack's "build" image: buildpacks run in a container of it, never on this host.
    pub builder_image: String,
    /// The stack's "run" image: the base of the images of buildpack apps.
    pub run_image: String,
    /// The stack's name, which buildpacks read as $STACK (`heroku-24`).
    pub stack: String,
}

/// What each app may use of the cluster, kept as a ResourceQuota and a LimitRange in its
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppQuota {
    /// The CPU all of the app's pods may request together.
    pub cpu: Quantity,
    /// The memory all of the app's pods may request together.
    pub memory: Quantity,
    pub pods: u64,
    pub services: u64,
    pub volume_claims: u64,
    /// What a container that names no request gets (the LimitRange's `defaultRequest`).
    pub request: Resources,
    /// What a container that names no limit gets (the LimitRange's `default`).
    pub limit: Resources,
}

/// CPU and memory of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpu: Quantity,
    pub memory: Quantity,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {expected}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Settings {
    /// Reads the settings from the environment. Other variables may hold any bytes (a
    /// client's, a shell's): they are not ours and are left alone; one of ours that is not
    /// UTF-8 is refused.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&ours(std::env::vars_os())?)
    }

    /// Reads the table's rows in order: each row's text (the variable's, or its default) is
    /// checked by its parser, which fills its field.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut settings = Self::blank();
        for setting in TABLE {
            let Reader::Settings(parse) = setting.reader else {
                continue;
            };
            let text = match vars.get(setting.name).filter(|v| !v.is_empty()) {
                Some(value) => value.clone(),
                None => match setting.default {
                    Fallback::Value(value) => value.to_owned(),
                    Fallback::Nothing => String::new(),
                    Fallback::Derived(derive, _) => derive(&settings),
                },
            };
            parse(&text, &mut settings).map_err(|expected| SettingsError {
                variable: setting.name,
                value: text,
                expected,
            })?;
        }
        table::requests_within_limits(vars, &settings)?;
        Ok(settings)
    }

    /// What `from_vars` starts from: every field is some row's, and that row fills it, so
    /// none of these values is ever seen.
    fn blank() -> Self {
        Self {
            ssh_user: String::new(),
            namespace: String::new(),
            registry: String::new(),
            pull_registry: String::new(),
            registry_auth: None,
            deploy: DeployMode::Helm,
            deploy_branch: BranchName::default(),
            build_timeout: Duration::ZERO,
            deploy_timeout: Duration::ZERO,
            docker: String::new(),
            helm: String::new(),
            kubectl: String::new(),
            deploy_values: None,
            pod_security: Level::Baseline,
            pod_security_allow: Vec::new(),
            app_quota: None,
            network_isolation: true,
            ingress_namespaces: Vec::new(),
            build_network: None,
            keep_builds: 0,
            keep_images: 0,
            max_push_size: ByteSize(0),
            max_context_size: ByteSize(0),
            max_chart_size: ByteSize(0),
            max_chart_files: 0,
            config_keys: None,
            config_access: None,
            app_creators: AppCreators::All,
            buildpacks: Vec::new(),
            builder_image: String::new(),
            run_image: String::new(),
            stack: String::new(),
        }
    }
}

/// The variables of the table's session rows among `vars`, each checked to be UTF-8.
fn ours(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<HashMap<String, String>, SettingsError> {
    let mut found = HashMap::new();
    for (name, value) in vars {
        let Some(variable) = session_variables().find(|v| name.as_encoded_bytes() == v.as_bytes())
        else {
            continue;
        };
        let value = value.into_string().map_err(|value| SettingsError {
            variable,
            value: value.to_string_lossy().into_owned(),
            expected: "UTF-8 text",
        })?;
        found.insert(variable.to_owned(), value);
    }
    Ok(found)
}

/// A size in bytes as an operator writes it: `1048576`, `512K`, `500M`, `2G` (powers of
/// 1024), shown back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    const UNITS: [(char, u64); 3] = [('G', 1 << 30), ('M', 1 << 20), ('K', 1 << 10)];

    pub fn parse(text: &str) -> Option<Self> {
        let (number, multiplier) = match text.char_indices().last()? {
            (at, unit) if unit.is_ascii_alphabetic() => {
                let unit = unit.to_ascii_uppercase();
                let (_, multiplier) = Self::UNITS.iter().find(|(u, _)| *u == unit)?;
                (&text[..at], *multiplier)
            }
            _ => (text, 1),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let bytes = number.parse::<u64>().ok()?.checked_mul(multiplier)?;
        (bytes > 0).then_some(Self(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Self::UNITS.iter().find(|(_, m)| self.0.is_multiple_of(*m)) {
            Some((unit, multiplier)) => write!(f, "{}{unit}", self.0 / multiplier),
            None => write!(f, "{}", self.0),
        }
    }
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
    use crate::buildpack::BuildpackSource;

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
        assert_eq!(s.deploy_branch.as_str(), "main");
        assert_eq!(s.build_timeout, Duration::from_secs(1800));
        assert_eq!(s.deploy_timeout, Duration::from_secs(300));
        assert_eq!(s.ssh_user, "git");
        assert_eq!(s.build_network, None);
        assert!(s.buildpacks.is_empty());
        assert_eq!(s.builder_image, "heroku/heroku:24-build");
        assert_eq!(s.run_image, "heroku/heroku:24");
        assert_eq!(s.stack, "heroku-24");
        assert_eq!(s.keep_images, 10);
        assert_eq!(s.max_push_size.to_string(), "1G");
        assert_eq!(s.max_context_size.bytes(), 500 << 20);
        assert_eq!(s.app_creators, AppCreators::All);
        assert_eq!(s.config_access, None);
        assert_eq!(s.max_chart_size.to_string(), "10M");
        assert_eq!(s.max_chart_files, 1000);
        assert_eq!(s.pod_security, Level::Baseline);
        assert!(s.pod_security_allow.is_empty());
        let quota = s.app_quota.unwrap();
        assert_eq!(
            (quota.cpu.cpu(), quota.memory.memory(), quota.pods),
            ("4".into(), "8Gi".into(), 20)
        );
        assert_eq!((quota.services, quota.volume_claims), (10, 10));
        assert_eq!(
            (quota.request.cpu.cpu(), quota.request.memory.memory()),
            ("100m".into(), "128Mi".into())
        );
        assert_eq!(
            (quota.limit.cpu.cpu(), quota.limit.memory.memory()),
            ("1".into(), "512Mi".into())
        );
        assert!(s.network_isolation);
        assert!(s.ingress_namespaces.is_empty());
    }

    #[test]
    fn pod_security_quota_and_isolation() {
        let s = Settings::from_vars(&vars(&[
            ("CODEBUILDER_POD_SECURITY", "restricted"),
            ("CODEBUILDER_POD_SECURITY_ALLOW", "hostNetwork,hostPorts"),
            ("CODEBUILDER_APP_QUOTA", "pods=3, memory=1Gi"),
            ("CODEBUILDER_CONTAINER_LIMITS", "memory=256Mi"),
            ("CODEBUILDER_NETWORK_ISOLATION", "off"),
            (
                "CODEBUILDER_INGRESS_NAMESPACES",
                "ingress-nginx, monitoring",
            ),
        ]))
        .unwrap();
        assert_eq!(s.pod_security, Level::Restricted);
        assert_eq!(
            s.pod_security_allow,
            vec![Control::HostNetwork, Control::HostPorts]
        );
        let quota = s.app_quota.unwrap();
        assert_eq!((quota.pods, quota.memory.memory()), (3, "1Gi".into()));
        assert_eq!(quota.cpu.cpu(), "4");
        assert_eq!(quota.limit.memory.memory(), "256Mi");
        assert!(!s.network_isolation);
        assert_eq!(s.ingress_namespaces, vec!["ingress-nginx", "monitoring"]);
        let off = Settings::from_vars(&vars(&[("CODEBUILDER_APP_QUOTA", "off")])).unwrap();
        assert_eq!(off.app_quota, None);
        let refused =
            |pairs: &[(&str, &str)]| Settings::from_vars(&vars(pairs)).unwrap_err().to_string();
        assert_eq!(
            refused(&[("CODEBUILDER_CONTAINER_REQUESTS", "memory=1Gi")]),
            "CODEBUILDER_CONTAINER_REQUESTS=\"memory=1Gi\" is not valid: requests at most CODEBUILDER_CONTAINER_LIMITS"
        );
        assert_eq!(
            refused(&[("CODEBUILDER_APP_QUOTA", "cpu=4,cpu=5")]),
            "CODEBUILDER_APP_QUOTA=\"cpu=4,cpu=5\" is not valid: off, or KEY=VALUE pairs such as cpu=4,memory=8Gi,pods=20,services=10,persistentvolumeclaims=10"
        );
    }

    #[test]
    fn app_creators() {
        let creators = |value: &str| {
            Settings::from_vars(&vars(&[("CODEBUILDER_APP_CREATORS", value)]))
                .map(|s| s.app_creators)
                .map_err(|e| e.to_string())
        };
        assert_eq!(creators("admins"), Ok(AppCreators::Admins));
        assert_eq!(creators("all"), Ok(AppCreators::All));
        assert_eq!(
            creators("owners"),
            Err("CODEBUILDER_APP_CREATORS=\"owners\" is not valid: all or admins".into())
        );
    }

    #[test]
    fn stack_follows_the_builder_image() {
        let stack = |pairs: &[(&str, &str)]| Settings::from_vars(&vars(pairs)).map(|s| s.stack);
        for (image, expected) in [
            ("heroku/heroku:22-build", "heroku-22"),
            ("registry.example:5000/heroku/heroku:24-build", "heroku-24"),
            ("heroku/heroku:24-build@sha256:0123", "heroku-24"),
            ("codebuilder-test/stack-build", "stack"),
            ("gliderlabs/herokuish:latest", "herokuish"),
        ] {
            assert_eq!(
                stack(&[("CODEBUILDER_BUILDER_IMAGE", image)]).unwrap(),
                expected,
                "{image}"
            );
        }
        assert_eq!(
            stack(&[("CODEBUILDER_STACK", "cedar-14")]).unwrap(),
            "cedar-14"
        );
        let err = stack(&[("CODEBUILDER_STACK", "Heroku 24")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CODEBUILDER_STACK=\"Heroku 24\" is not valid: a stack name such as heroku-24 (lowercase letters, digits, . and -)"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(
            ByteSize::parse("1048576").map(ByteSize::bytes),
            Some(1 << 20)
        );
        assert_eq!(
            ByteSize::parse("512k").map(ByteSize::bytes),
            Some(512 << 10)
        );
        assert_eq!(
            ByteSize::parse("2G").map(|s| s.to_string()),
            Some("2G".into())
        );
        assert_eq!(
            ByteSize::parse("1536M").map(|s| s.to_string()),
            Some("1536M".into())
        );
        assert_eq!(
            ByteSize::parse("1000").map(|s| s.to_string()),
            Some("1000".into())
        );
        for bad in [
            "",
            "M",
            "0",
            "-1M",
            "1.5G",
            "1T",
            "1 M",
            "99999999999999999999G",
        ] {
            assert_eq!(ByteSize::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn buildpack_lists() {
        let s = Settings::from_vars(&vars(&[(
            "CODEBUILDER_BUILDPACKS",
            "https://github.com/heroku/heroku-buildpack-python#v1, /opt/buildpacks/go,",
        )]))
        .unwrap();
        assert_eq!(s.buildpacks.len(), 2);
        assert_eq!(
            s.buildpacks[0].source(),
            &BuildpackSource::Git("https://github.com/heroku/heroku-buildpack-python".into())
        );
        assert_eq!(s.buildpacks[0].reference(), Some("v1"));
        assert_eq!(
            s.buildpacks[1].source(),
            &BuildpackSource::Local("/opt/buildpacks/go".into())
        );
        assert_eq!(s.buildpacks[1].reference(), None);
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
            ("CODEBUILDER_KEEP_IMAGES", "0"),
            ("CODEBUILDER_REGISTRY_AUTH", "relative/dir"),
            ("CODEBUILDER_MAX_PUSH_SIZE", "lots"),
            ("CODEBUILDER_MAX_CONTEXT_SIZE", "0M"),
            ("CODEBUILDER_BUILD_NETWORK", "host\nMatch all"),
            ("CODEBUILDER_BUILDPACKS", "https://x/bp,relative/path"),
            ("CODEBUILDER_BUILDPACKS", "file:///etc"),
            ("CODEBUILDER_BUILDER_IMAGE", "--privileged"),
            ("CODEBUILDER_RUN_IMAGE", "a b"),
            ("CODEBUILDER_POD_SECURITY", "strict"),
            ("CODEBUILDER_POD_SECURITY_ALLOW", "hostNetwork,everything"),
            ("CODEBUILDER_APP_QUOTA", "gpus=1"),
            ("CODEBUILDER_APP_QUOTA", "cpu=lots"),
            ("CODEBUILDER_APP_QUOTA", "pods=-1"),
            ("CODEBUILDER_CONTAINER_LIMITS", "cpu=0"),
            ("CODEBUILDER_NETWORK_ISOLATION", "yes"),
            ("CODEBUILDER_INGRESS_NAMESPACES", "Ingress_Nginx"),
        ] {
            let err = Settings::from_vars(&vars(&[(k, v)])).unwrap_err();
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }

    #[test]
    fn only_our_variables_are_read_and_they_must_be_utf8() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        let environment = vec![
            (
                bytes(b"SSH_ORIGINAL_COMMAND"),
                bytes(b"git-upload-pack 'a\xff'"),
            ),
            (bytes(b"GIT_PROTOCOL"), bytes(b"version=\xff")),
            (bytes(b"\xfe"), bytes(b"x")),
            (bytes(b"CODEBUILDER_DEPLOY"), bytes(b"none")),
        ];
        let found = ours(environment.into_iter()).unwrap();
        assert_eq!(found, vars(&[("CODEBUILDER_DEPLOY", "none")]));
        let err = ours([(bytes(b"CODEBUILDER_REGISTRY"), bytes(b"reg\xff:5000"))].into_iter())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CODEBUILDER_REGISTRY=\"reg\u{fffd}:5000\" is not valid: UTF-8 text"
        );
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
