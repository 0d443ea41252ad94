//! Operator settings, all from `CODEBUILDER_*` environment variables with sane defaults. They
//! are read and checked once, before anything runs, so that a typo is one clear error instead
//! of a half-done build.

use std::collections::HashMap;
use std::time::Duration;

use crate::pod_security::{Control, Level};
use crate::quantity::Quantity;
use crate::BranchName;

/// Every variable codebuilder reads; the sshd runner passes these on to ssh sessions.
pub const VARIABLES: &[&str] = &[
    "CODEBUILDER_HOME",
    "CODEBUILDER_SSH_USER",
    "CODEBUILDER_CONFIG_KEYS",
    "CODEBUILDER_CONFIG_ACCESS",
    "CODEBUILDER_APP_CREATORS",
    "CODEBUILDER_NAMESPACE",
    "CODEBUILDER_REGISTRY",
    "CODEBUILDER_PULL_REGISTRY",
    "CODEBUILDER_REGISTRY_AUTH",
    "CODEBUILDER_DEPLOY",
    "CODEBUILDER_DEPLOY_BRANCH",
    "CODEBUILDER_BUILD_TIMEOUT",
    "CODEBUILDER_DEPLOY_TIMEOUT",
    "CODEBUILDER_DOCKER",
    "CODEBUILDER_HELM",
    "CODEBUILDER_KUBECTL",
    "CODEBUILDER_DEPLOY_VALUES",
    "CODEBUILDER_POD_SECURITY",
    "CODEBUILDER_POD_SECURITY_ALLOW",
    "CODEBUILDER_APP_QUOTA",
    "CODEBUILDER_CONTAINER_REQUESTS",
    "CODEBUILDER_CONTAINER_LIMITS",
    "CODEBUILDER_NETWORK_ISOLATION",
    "CODEBUILDER_INGRESS_NAMESPACES",
    "CODEBUILDER_BUILD_NETWORK",
    "CODEBUILDER_KEEP_BUILDS",
    "CODEBUILDER_KEEP_IMAGES",
    "CODEBUILDER_MAX_PUSH_SIZE",
    "CODEBUILDER_MAX_CONTEXT_SIZE",
    "CODEBUILDER_MAX_CHART_SIZE",
    "CODEBUILDER_MAX_CHART_FILES",
    "CODEBUILDER_BUILDPACKS",
    "CODEBUILDER_BUILDER_IMAGE",
    "CODEBUILDER_RUN_IMAGE",
    "CODEBUILDER_STACK",
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
        let app_creators = match get("CODEBUILDER_APP_CREATORS", "all").as_str() {
            "all" => AppCreators::All,
            "admins" => AppCreators::Admins,
            other => {
                return Err(bad(
                    "CODEBUILDER_APP_CREATORS",
                    other.to_owned(),
                    "all or admins",
                ))
            }
        };
        let deploy_branch = get("CODEBUILDER_DEPLOY_BRANCH", "main");
        let deploy_branch = BranchName::parse(&deploy_branch).map_err(|_| {
            bad(
                "CODEBUILDER_DEPLOY_BRANCH",
                deploy_branch,
                "a branch name such as main",
            )
        })?;
        let keep = get("CODEBUILDER_KEEP_BUILDS", "20");
        let keep_builds = keep
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("CODEBUILDER_KEEP_BUILDS", keep, "a whole number above 0"))?;
        let count = |variable: &'static str, default: &str| {
            let value = get(variable, default);
            value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(variable, value, "a whole number above 0"))
        };
        let size = |variable: &'static str, default: &str| {
            let value = get(variable, default);
            ByteSize::parse(&value).ok_or_else(|| {
                bad(
                    variable,
                    value,
                    "a size such as 500M or 2G (bytes, K, M or G)",
                )
            })
        };
        let registry_auth = match vars
            .get("CODEBUILDER_REGISTRY_AUTH")
            .filter(|v| !v.is_empty())
        {
            Some(dir) if dir.starts_with('/') && is_plain_word(dir) => Some(dir.into()),
            Some(dir) => {
                return Err(bad(
                    "CODEBUILDER_REGISTRY_AUTH",
                    dir.clone(),
                    "the absolute path of a folder with a docker config.json",
                ))
            }
            None => None,
        };
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
        let buildpacks = get("CODEBUILDER_BUILDPACKS", "");
        let buildpacks = Buildpack::parse_list(&buildpacks, Origin::Operator).map_err(|_| {
            bad(
                "CODEBUILDER_BUILDPACKS",
                buildpacks,
                "comma-separated buildpack git URLs (https://, http://, git://, ssh://, each with an optional #REF) or absolute paths of buildpack directories",
            )
        })?;
        let image = |variable: &'static str, default: &str| {
            let value = get(variable, default);
            if is_plain_word(&value) && !value.starts_with('-') {
                Ok(value)
            } else {
                Err(bad(
                    variable,
                    value,
                    "a docker image name such as heroku/heroku:24",
                ))
            }
        };
        let builder_image = image("CODEBUILDER_BUILDER_IMAGE", "heroku/heroku:24-build")?;
        let stack = get("CODEBUILDER_STACK", &stack_of(&builder_image));
        if !is_stack_name(&stack) {
            return Err(bad(
                "CODEBUILDER_STACK",
                stack,
                "a stack name such as heroku-24 (lowercase letters, digits, . and -)",
            ));
        }
        let pod_security = get("CODEBUILDER_POD_SECURITY", "baseline");
        let pod_security = Level::parse(&pod_security).ok_or_else(|| {
            bad(
                "CODEBUILDER_POD_SECURITY",
                pod_security,
                "restricted, baseline or privileged",
            )
        })?;
        let allow = get("CODEBUILDER_POD_SECURITY_ALLOW", "");
        let pod_security_allow = Control::parse_list(&allow).ok_or_else(|| {
            bad(
                "CODEBUILDER_POD_SECURITY_ALLOW",
                allow,
                "comma-separated Pod Security controls: hostProcess, hostNetwork, hostPID, hostIPC, privileged, capabilities, hostPath, hostPorts, appArmor, seLinux, procMount, seccomp, sysctls, volumeTypes, allowPrivilegeEscalation, runAsNonRoot, runAsUser",
            )
        })?;
        let app_quota = app_quota(vars)?;
        let network_isolation = match get("CODEBUILDER_NETWORK_ISOLATION", "on").as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(bad(
                    "CODEBUILDER_NETWORK_ISOLATION",
                    other.to_owned(),
                    "on or off",
                ))
            }
        };
        let ingress = get("CODEBUILDER_INGRESS_NAMESPACES", "");
        let ingress_namespaces: Vec<String> = ingress
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if !ingress_namespaces.iter().all(|n| is_dns_label(n)) {
            return Err(bad(
                "CODEBUILDER_INGRESS_NAMESPACES",
                ingress,
                "comma-separated namespace names such as ingress-nginx",
            ));
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
            registry_auth,
            ssh_user: word("CODEBUILDER_SSH_USER", "git", "a user name")?,
            namespace: word("CODEBUILDER_NAMESPACE", "codebuilder", "a namespace name")?,
            deploy,
            deploy_branch,
            build_timeout: duration("CODEBUILDER_BUILD_TIMEOUT", "30m")?,
            deploy_timeout: duration("CODEBUILDER_DEPLOY_TIMEOUT", "5m")?,
            docker: word("CODEBUILDER_DOCKER", "docker", "a program name or path")?,
            helm: word("CODEBUILDER_HELM", "helm", "a program name or path")?,
            kubectl: word("CODEBUILDER_KUBECTL", "kubectl", "a program name or path")?,
            deploy_values: vars
                .get("CODEBUILDER_DEPLOY_VALUES")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            pod_security,
            pod_security_allow,
            app_quota,
            network_isolation,
            ingress_namespaces,
            build_network,
            keep_builds,
            keep_images: count("CODEBUILDER_KEEP_IMAGES", "10")?,
            max_push_size: size("CODEBUILDER_MAX_PUSH_SIZE", "1G")?,
            max_context_size: size("CODEBUILDER_MAX_CONTEXT_SIZE", "500M")?,
            max_chart_size: size("CODEBUILDER_MAX_CHART_SIZE", "10M")?,
            max_chart_files: count("CODEBUILDER_MAX_CHART_FILES", "1000")?,
            config_keys: vars
                .get("CODEBUILDER_CONFIG_KEYS")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            config_access: vars
                .get("CODEBUILDER_CONFIG_ACCESS")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            app_creators,
            buildpacks,
            builder_image,
            run_image: image("CODEBUILDER_RUN_IMAGE", "heroku/heroku:24")?,
            stack,
        })
    }
}

/// The per-app limits of `CODEBUILDER_APP_QUOTA` (`off`, or `cpu=4,memory=8Gi,...`: each key
/// once, the others at their defaults), with the container defaults of
/// `CODEBUILDER_CONTAINER_REQUESTS` and `CODEBUILDER_CONTAINER_LIMITS`.
fn app_quota(vars: &HashMap<String, String>) -> Result<Option<AppQuota>, SettingsError> {
    let text = |variable: &str| vars.get(variable).map_or("", String::as_str);
    let quota = text("CODEBUILDER_APP_QUOTA");
    if quota == "off" {
        return Ok(None);
    }
    let bad = |variable: &'static str, expected: &'static str| SettingsError {
        variable,
        value: text(variable).to_owned(),
        expected,
    };
    let expected = "off, or KEY=VALUE pairs such as cpu=4,memory=8Gi,pods=20,services=10,persistentvolumeclaims=10";
    let pairs = assignments(
        quota,
        &[
            "cpu",
            "memory",
            "pods",
            "services",
            "persistentvolumeclaims",
        ],
    )
    .ok_or_else(|| bad("CODEBUILDER_APP_QUOTA", expected))?;
    let quantity = |key: &str, default: &str| {
        Quantity::parse(pairs.get(key).map_or(default, |v| v))
            .filter(|q| *q > Quantity::ZERO)
            .ok_or_else(|| bad("CODEBUILDER_APP_QUOTA", expected))
    };
    let count = |key: &str, default: u64| match pairs.get(key) {
        None => Ok(default),
        Some(value) if value.bytes().all(|b| b.is_ascii_digit()) => value
            .parse()
            .map_err(|_| bad("CODEBUILDER_APP_QUOTA", expected)),
        Some(_) => Err(bad("CODEBUILDER_APP_QUOTA", expected)),
    };
    let resources = |variable: &'static str, cpu: &str, memory: &str| {
        let expected = "cpu=QUANTITY,memory=QUANTITY, such as cpu=100m,memory=128Mi";
        let pairs = assignments(text(variable), &["cpu", "memory"])
            .ok_or_else(|| bad(variable, expected))?;
        let quantity = |key: &str, default: &str| {
            Quantity::parse(pairs.get(key).map_or(default, |v| v))
                .filter(|q| *q > Quantity::ZERO)
                .ok_or_else(|| bad(variable, expected))
        };
        Ok(Resources {
            cpu: quantity("cpu", cpu)?,
            memory: quantity("memory", memory)?,
        })
    };
    let request = resources("CODEBUILDER_CONTAINER_REQUESTS", "100m", "128Mi")?;
    let limit = resources("CODEBUILDER_CONTAINER_LIMITS", "1", "512Mi")?;
    if request.cpu > limit.cpu || request.memory > limit.memory {
        return Err(bad(
            "CODEBUILDER_CONTAINER_REQUESTS",
            "requests at most CODEBUILDER_CONTAINER_LIMITS",
        ));
    }
    Ok(Some(AppQuota {
        cpu: quantity("cpu", "4")?,
        memory: quantity("memory", "8Gi")?,
        pods: count("pods", 20)?,
        services: count("services", 10)?,
        volume_claims: count("persistentvolumeclaims", 10)?,
        request,
        limit,
    }))
}

/// `KEY=VALUE` pairs separated by commas, each key one of `keys` and named once.
fn assignments<'a>(text: &'a str, keys: &[&str]) -> Option<HashMap<&'a str, &'a str>> {
    let mut pairs = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        if !keys.contains(&key) || pairs.insert(key, value).is_some() {
            return None;
        }
    }
    Some(pairs)
}

/// A Kubernetes namespace name (a DNS-1123 label).
fn is_dns_label(value: &str) -> bool {
    value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The variables of `VARIABLES` among `vars`, each checked to be UTF-8.
fn ours(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<HashMap<String, String>, SettingsError> {
    let mut found = HashMap::new();
    for (name, value) in vars {
        let Some(variable) = VARIABLES
            .iter()
            .find(|v| name.as_encoded_bytes() == v.as_bytes())
        else {
            continue;
        };
        let value = value.into_string().map_err(|value| SettingsError {
            variable,
            value: value.to_string_lossy().into_owned(),
            expected: "UTF-8 text",
        })?;
        found.insert((*variable).to_owned(), value);
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

/// Who named a buildpack, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The operator (`CODEBUILDER_BUILDPACKS`): local directories are allowed.
    Operator,
    /// An app (its `.buildpacks` file, its `BUILDPACK_URL`): network git URLs only. A local
    /// path or `file://` URL would copy files of the codebuilder host (keys, other apps'
    /// repositories) into the app's build, where its owner can read them.
    App,
}

/// Where a buildpack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildpackSource {
    /// A git repository, cloned on the codebuilder host (nothing of it runs there).
    Git(String),
    /// A directory on the codebuilder host, used as it is (operator only).
    Local(std::path::PathBuf),
}

/// One buildpack as written by the operator or an app: `URL[#REF]` or `/PATH[#REF]`. Checked
/// before it reaches `git clone` or `docker`: no option-like, quoted, spaced or control
/// characters, only network git schemes, and a ref that is a plain git name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildpack {
    source: BuildpackSource,
    reference: Option<String>,
    text: String,
}

/// Why a buildpack URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildpackUrlError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_BUILDPACK_URL} characters")]
    TooLong,
    #[error("contains a space, quote, control or other character that has no place in a URL")]
    BadCharacter,
    #[error("is not a git URL: use https://, http://, git:// or ssh://")]
    UnsupportedScheme,
    #[error("has no host")]
    NoHost,
    #[error("has a percent-encoded host or user, or one that starts with '-'")]
    BadHost,
    #[error("is a local path, which only the operator's CODEBUILDER_BUILDPACKS may name")]
    LocalNotAllowed,
    #[error("is a tarball: only git URLs of buildpacks are supported")]
    Tarball,
    #[error("has a #REF that is not a branch, tag or commit name")]
    BadReference,
}

/// Longest buildpack URL accepted, `#REF` included.
pub const MAX_BUILDPACK_URL: usize = 1024;

impl Buildpack {
    pub fn parse(text: &str, origin: Origin) -> Result<Self, BuildpackUrlError> {
        if text.is_empty() {
            return Err(BuildpackUrlError::Empty);
        }
        if text.len() > MAX_BUILDPACK_URL {
            return Err(BuildpackUrlError::TooLong);
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=~%#".contains(&b))
        {
            return Err(BuildpackUrlError::BadCharacter);
        }
        let (location, reference) = match text.split_once('#') {
            Some((location, reference)) if BranchName::parse(reference).is_ok() => {
                (location, Some(reference.to_owned()))
            }
            Some(_) => return Err(BuildpackUrlError::BadReference),
            None => (text, None),
        };
        let source = if location.starts_with('/') {
            if origin == Origin::App {
                return Err(BuildpackUrlError::LocalNotAllowed);
            }
            BuildpackSource::Local(location.into())
        } else {
            check_git_url(location)?;
            BuildpackSource::Git(location.to_owned())
        };
        Ok(Self {
            source,
            reference,
            text: text.to_owned(),
        })
    }

    /// Parses a comma-separated list (the operator's setting); empty entries are skipped.
    pub fn parse_list(text: &str, origin: Origin) -> Result<Vec<Self>, BuildpackUrlError> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Self::parse(entry, origin))
            .collect()
    }

    pub fn source(&self) -> &BuildpackSource {
        &self.source
    }

    /// The `#REF` to check out, if one was pinned.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// As it was written, `#REF` included: how messages name it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Buildpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn check_git_url(url: &str) -> Result<(), BuildpackUrlError> {
    let rest = ["https://", "http://", "git://", "ssh://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or(BuildpackUrlError::UnsupportedScheme)?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(BuildpackUrlError::NoHost);
    }
    // A user or host that starts with `-` would reach ssh as an option, and git decodes
    // `%2D` into `-` before it calls ssh: no percent-encoding in the authority at all.
    if authority.starts_with('-') || host.starts_with('-') || authority.contains('%') {
        return Err(BuildpackUrlError::BadHost);
    }
    if [".tgz", ".tar.gz", ".tar", ".zip"]
        .iter()
        .any(|suffix| url.ends_with(suffix))
    {
        return Err(BuildpackUrlError::Tarball);
    }
    Ok(())
}

/// A value that is safe as one argument and on one line of sshd_config: no space, quote,
/// control character or shell syntax.
/// The stack a build image is for, as Heroku names stacks: the image's name and tag
/// without `-build` (`heroku/heroku:24-build` is `heroku-24`); a `latest` or missing tag
/// leaves the name alone.
fn stack_of(image: &str) -> String {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last = image.rsplit('/').next().unwrap_or(image);
    let (name, tag) = last.split_once(':').unwrap_or((last, "latest"));
    let name = name.strip_suffix("-build").unwrap_or(name);
    let tag = tag.strip_suffix("-build").unwrap_or(tag);
    match tag {
        "latest" | "" => name.to_owned(),
        tag => format!("{name}-{tag}"),
    }
}

fn is_stack_name(value: &str) -> bool {
    value.len() <= 64
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

fn is_plain_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=".contains(&b))
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
    fn buildpack_urls() {
        use BuildpackUrlError::*;
        let app = |text: &str| Buildpack::parse(text, Origin::App).map(|_| ());
        assert_eq!(
            app("https://github.com/heroku/heroku-buildpack-ruby.git"),
            Ok(())
        );
        assert_eq!(app("git://127.0.0.1:9418/bp.git#0123abc"), Ok(()));
        assert_eq!(app("ssh://git@example.com/bp#release/v2"), Ok(()));
        for (text, error) in [
            ("", Empty),
            ("/opt/buildpacks/go", LocalNotAllowed),
            (
                "file:///var/lib/codebuilder/repos/other.git",
                UnsupportedScheme,
            ),
            ("ext::sh -c touch% /tmp/pwned", BadCharacter),
            ("--upload-pack=touch /tmp/x", BadCharacter),
            ("-uhttps://x", UnsupportedScheme),
            ("ssh://-oProxyCommand=x/bp", BadHost),
            ("ssh://%2DoProxyCommand=x/bp", BadHost),
            ("ssh://%2doProxyCommand=x/bp", BadHost),
            ("https://git%40x@%2Dx/bp", BadHost),
            ("ssh://-oProxyCommand=x@example.com/bp", BadHost),
            ("git://exa%6Dple.com/bp", BadHost),
            ("https:///bp", NoHost),
            ("https://x/bp.git#--orphan", BadReference),
            ("https://x/bp.git#a..b", BadReference),
            ("https://x/bp.git#", BadReference),
            ("https://x/bp.git#a#b", BadReference),
            ("https://x/bp.git\n", BadCharacter),
            ("https://x/bp.git\u{0}", BadCharacter),
            ("https://x/b p.git", BadCharacter),
            ("https://x/\"bp", BadCharacter),
            ("https://x/bp.tgz", Tarball),
        ] {
            assert_eq!(app(text), Err(error), "{text}");
        }
        assert_eq!(
            app(&format!("https://x/{}", "a".repeat(1100))),
            Err(TooLong)
        );
        assert!(Buildpack::parse("/opt/bp#main", Origin::Operator).is_ok());
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
