//! The settings table: each operator setting is one row, with its name, its default, who
//! reads it and one line of doc. `Settings::from_vars` is the rows read in order, the flags
//! that take a setting's variable take its name and default from its row, and README.md's
//! settings reference is the rows as a markdown table (a test keeps the two the same), so
//! that a setting cannot be documented, defaulted and parsed three different ways.
//!
//! Not rows: variables our own processes pass to each other, never set by an operator
//! (`CODEBUILDER_REQUEST` from codebuilder-receive to codebuilder-ops, `CODEBUILDER_PUSHER`
//! and `CODEBUILDER_PUSHER_FINGERPRINT` from codebuilder-receive to the hook and the
//! commands), and `CODEBUILDER_BUILD_ARGS`, which is an app's config var, not ours.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{AppCreators, AppQuota, ByteSize, DeployMode, Resources, Settings, SettingsError};
use crate::buildpack::{Buildpack, Origin};
use crate::home::DEFAULT_HOME;
use crate::pod_security::{Control, Level};
use crate::quantity::Quantity;
use crate::BranchName;

/// One operator setting: an environment variable, what it stands for when unset, and who
/// reads it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    /// What an unset (or empty) variable stands for.
    pub default: Fallback,
    /// Who reads the variable.
    pub reader: Reader,
    /// One line for the README's settings reference (markdown).
    pub doc: &'static str,
}

/// What an unset or empty setting stands for.
#[derive(Debug, Clone, Copy)]
pub enum Fallback {
    /// This value, read as if the operator had written it.
    Value(&'static str),
    /// Nothing: the setting is off, or the tool's own default holds.
    Nothing,
    /// A value made from the rows above it (the fn), as the text says in the README.
    Derived(fn(&Settings) -> String, &'static str),
}

impl Fallback {
    /// The value, for a flag's default (clap takes `None` as no default).
    pub const fn value(self) -> Option<&'static str> {
        match self {
            Self::Value(value) => Some(value),
            Self::Nothing | Self::Derived(..) => None,
        }
    }
}

/// Who reads a setting.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    /// `Settings::from_vars`: the fn checks the text (the variable's, or the default) and
    /// fills its field, or says what was expected instead.
    Settings(fn(&str, &mut Settings) -> Result<(), &'static str>),
    /// Whatever the doc names, which reads the variable itself: a flag every binary has, the
    /// logger, docker, helm or kubectl. ssh sessions get it too.
    Elsewhere,
    /// A flag of codebuilder-sshd alone, which ssh sessions do not get.
    SshdFlag,
}

impl Setting {
    /// Whether codebuilder-sshd passes the variable on to ssh sessions.
    pub fn for_sessions(&self) -> bool {
        !matches!(self.reader, Reader::SshdFlag)
    }
}

/// The variables codebuilder-sshd passes on to every ssh session, so that a push sees what
/// the operator set.
pub fn session_variables() -> impl Iterator<Item = &'static str> {
    TABLE
        .iter()
        .filter(|setting| setting.for_sessions())
        .map(|setting| setting.name)
}

const APP_QUOTA_DEFAULT: &str = "cpu=4,memory=8Gi,pods=20,services=10,persistentvolumeclaims=10";
const CONTAINER_REQUESTS_DEFAULT: &str = "cpu=100m,memory=128Mi";
const CONTAINER_LIMITS_DEFAULT: &str = "cpu=1,memory=512Mi";

pub const HOME: Setting = Setting {
    name: "CODEBUILDER_HOME",
    default: Fallback::Value(DEFAULT_HOME),
    reader: Reader::Elsewhere,
    doc: "the state directory: keys, repos, build records, host keys (also `--home`)",
};

pub const LISTEN: Setting = Setting {
    name: "CODEBUILDER_LISTEN",
    default: Fallback::Value("0.0.0.0:22"),
    reader: Reader::SshdFlag,
    doc: "where sshd listens (`codebuilder-sshd --listen`)",
};

pub const SSHD: Setting = Setting {
    name: "CODEBUILDER_SSHD",
    default: Fallback::Value("/usr/sbin/sshd"),
    reader: Reader::SshdFlag,
    doc: "the sshd binary codebuilder-sshd runs (`codebuilder-sshd --sshd`)",
};

pub const HOST_KEYS: Setting = Setting {
    name: "CODEBUILDER_HOST_KEYS",
    default: Fallback::Nothing,
    reader: Reader::SshdFlag,
    doc: "folder with `ssh_host_ed25519_key` / `ssh_host_rsa_key` to use (a mounted Secret); otherwise generated once into the home",
};

pub const CONFIG_KEYS: Setting = Setting {
    name: "CODEBUILDER_CONFIG_KEYS",
    default: Fallback::Nothing,
    reader: Reader::Settings(config_keys),
    doc: "read-only file of declared keys (see Keys)",
};

pub const CONFIG_ACCESS: Setting = Setting {
    name: "CODEBUILDER_CONFIG_ACCESS",
    default: Fallback::Nothing,
    reader: Reader::Settings(config_access),
    doc: "read-only file of declared access to apps, `APP KEYNAME push|read` lines (see Who may do what)",
};

pub const SSH_USER: Setting = Setting {
    name: "CODEBUILDER_SSH_USER",
    default: Fallback::Value("git"),
    reader: Reader::Settings(ssh_user),
    doc: "the only user sshd lets in",
};

pub const LOG: Setting = Setting {
    name: "CODEBUILDER_LOG",
    default: Fallback::Value("warn"),
    reader: Reader::Elsewhere,
    doc: "log filter for codebuilder's log (`info`, `debug`, ...): the pod's log; at `kubectl exec`, stderr",
};

/// The rows, in the README's order, which is also the order `Settings::from_vars` reads them
/// in: a derived default reads only rows above its own.
pub const TABLE: &[Setting] = &[
HOME,
LISTEN,
SSHD,
HOST_KEYS,
CONFIG_KEYS,
CONFIG_ACCESS,
Setting {
    name: "CODEBUILDER_APP_CREATORS",
    default: Fallback::Value("all"),
    reader: Reader::Settings(app_creators),
    doc: "who may create an app by pushing to a new name: `all` keys or `admins`",
},
SSH_USER,
Setting {
    name: "CODEBUILDER_NAMESPACE",
    default: Fallback::Value("codebuilder"),
    reader: Reader::Settings(namespace),
    doc: "codebuilder's own namespace, never an app",
},
Setting {
    name: "CODEBUILDER_REGISTRY",
    default: Fallback::Value("127.0.0.1:5000"),
    reader: Reader::Settings(registry),
    doc: "registry images are pushed to",
},
Setting {
    name: "CODEBUILDER_PULL_REGISTRY",
    default: Fallback::Derived(registry_of, "`CODEBUILDER_REGISTRY`"),
    reader: Reader::Settings(pull_registry),
    doc: "registry the cluster's nodes pull from (the chart's image)",
},
Setting {
    name: "CODEBUILDER_REGISTRY_AUTH",
    default: Fallback::Nothing,
    reader: Reader::Settings(registry_auth),
    doc: "folder with a docker `config.json` holding the registry's push credentials: `DOCKER_CONFIG` of `docker push` (and retention's deletions), never given to a build",
},
Setting {
    name: "CODEBUILDER_DEPLOY",
    default: Fallback::Value("helm"),
    reader: Reader::Settings(deploy),
    doc: "`helm` deploys after the push; `none` stops once the image is in the registry",
},
Setting {
    name: "CODEBUILDER_DEPLOY_BRANCH",
    default: Fallback::Value("main"),
    reader: Reader::Settings(deploy_branch),
    doc: "the branch that deploys",
},
Setting {
    name: "CODEBUILDER_BUILD_TIMEOUT",
    default: Fallback::Value("30m"),
    reader: Reader::Settings(build_timeout),
    doc: "limit for build and push (`90s`, `30m`, `1h`)",
},
Setting {
    name: "CODEBUILDER_DEPLOY_TIMEOUT",
    default: Fallback::Value("5m"),
    reader: Reader::Settings(deploy_timeout),
    doc: "limit for the rollout (helm `--timeout`); with `strategy: Recreate` it includes the old pods' termination (their grace period, and the kubelet removing them)",
},
Setting {
    name: "CODEBUILDER_DOCKER",
    default: Fallback::Value("docker"),
    reader: Reader::Settings(docker),
    doc: "docker CLI (talks to `DOCKER_HOST` if set); with BuildKit built in (20.10) or the buildx plugin",
},
Setting {
    name: "CODEBUILDER_HELM",
    default: Fallback::Value("helm"),
    reader: Reader::Settings(helm),
    doc: "helm binary (Helm 4 or 3)",
},
Setting {
    name: "CODEBUILDER_KUBECTL",
    default: Fallback::Value("kubectl"),
    reader: Reader::Settings(kubectl),
    doc: "kubectl binary: reads the pods' events and logs when a rollout fails",
},
Setting {
    name: "CODEBUILDER_DEPLOY_VALUES",
    default: Fallback::Nothing,
    reader: Reader::Settings(deploy_values),
    doc: "a helm values file merged into every deploy, before the build's own values: `resources`, `nodeSelector`, `tolerations`, `affinity`, `imagePullSecrets`, `hostNetwork`, `strategy`, `readinessProbe`, `terminationGracePeriodSeconds`, `podAnnotations` for the default chart (an app's own chart gets the same file)",
},
Setting {
    name: "CODEBUILDER_POD_SECURITY",
    default: Fallback::Value("baseline"),
    reader: Reader::Settings(pod_security),
    doc: "the Pod Security level of app namespaces: `restricted`, `baseline` or `privileged`; their labels and codebuilder's own check of every release (see What an app's pods may be)",
},
Setting {
    name: "CODEBUILDER_POD_SECURITY_ALLOW",
    default: Fallback::Nothing,
    reader: Reader::Settings(pod_security_allow),
    doc: "comma-separated controls that the operator's values (`CODEBUILDER_DEPLOY_VALUES`) may break, never an app's own chart: `hostNetwork,hostPorts` for apps on the host's network",
},
Setting {
    name: "CODEBUILDER_APP_QUOTA",
    default: Fallback::Value(APP_QUOTA_DEFAULT),
    reader: Reader::Settings(app_quota),
    doc: "each app's ResourceQuota (requests of all its pods); a key left out keeps its default; `off`: no quota and no container defaults",
},
Setting {
    name: "CODEBUILDER_CONTAINER_REQUESTS",
    default: Fallback::Value(CONTAINER_REQUESTS_DEFAULT),
    reader: Reader::Settings(container_requests),
    doc: "what a container that names no requests gets (the app's LimitRange)",
},
Setting {
    name: "CODEBUILDER_CONTAINER_LIMITS",
    default: Fallback::Value(CONTAINER_LIMITS_DEFAULT),
    reader: Reader::Settings(container_limits),
    doc: "what a container that names no limits gets; at least the requests",
},
Setting {
    name: "CODEBUILDER_NETWORK_ISOLATION",
    default: Fallback::Value("on"),
    reader: Reader::Settings(network_isolation),
    doc: "`on`: a NetworkPolicy per app lets in only its own pods and those of `CODEBUILDER_INGRESS_NAMESPACES`; `off`: none",
},
Setting {
    name: "CODEBUILDER_INGRESS_NAMESPACES",
    default: Fallback::Nothing,
    reader: Reader::Settings(ingress_namespaces),
    doc: "comma-separated namespaces whose pods may reach every app (the ingress controller's)",
},
Setting {
    name: "CODEBUILDER_BUILD_NETWORK",
    default: Fallback::Nothing,
    reader: Reader::Settings(build_network),
    doc: "network for builds (`docker build --network`, the buildpack builder): the engine's default unless set. `scripts/start.sh` sets `host` only when the engine has no bridge network, and says so",
},
Setting {
    name: "CODEBUILDER_KEEP_BUILDS",
    default: Fallback::Value("20"),
    reader: Reader::Settings(keep_builds),
    doc: "build records kept per app",
},
Setting {
    name: "CODEBUILDER_KEEP_IMAGES",
    default: Fallback::Value("10"),
    reader: Reader::Settings(keep_images),
    doc: "images kept per app, in the registry and the engine: the newest builds' `git-SHORT` tags, in push order (`HOME/builds/APP/images.txt`); older ones are deleted (registry manifest by digest, `docker image rm`). The registry must allow deletes (`storage.delete.enabled: true`); its blobs are freed by `registry garbage-collect`",
},
Setting {
    name: "CODEBUILDER_MAX_PUSH_SIZE",
    default: Fallback::Value("1G"),
    reader: Reader::Settings(max_push_size),
    doc: "largest pack a push may send (git's `receive.maxInputSize`): git refuses a larger one before anything is stored or built (`512K`, `500M`, `2G`; powers of 1024)",
},
Setting {
    name: "CODEBUILDER_MAX_CONTEXT_SIZE",
    default: Fallback::Value("500M"),
    reader: Reader::Settings(max_context_size),
    doc: "largest build context: the bytes `docker build` (or the buildpack builder) receives from `git archive`, after `.dockerignore` for a Dockerfile app, are counted, and past this the build is stopped with one error line naming the setting",
},
Setting {
    name: "CODEBUILDER_MAX_CHART_SIZE",
    default: Fallback::Value("10M"),
    reader: Reader::Settings(max_chart_size),
    doc: "largest app's own `chart/`: its files' bytes are counted as `git archive` streams them, and past this the push is refused with one error line naming the setting, before helm sees anything (a release's record must fit a Kubernetes Secret, 1 MiB compressed)",
},
Setting {
    name: "CODEBUILDER_MAX_CHART_FILES",
    default: Fallback::Value("1000"),
    reader: Reader::Settings(max_chart_files),
    doc: "most files and folders an app's own `chart/` may hold; past this the push is refused the same way",
},
Setting {
    name: "CODEBUILDER_BUILDPACKS",
    default: Fallback::Nothing,
    reader: Reader::Settings(buildpacks),
    doc: "buildpacks for repositories without a Dockerfile: comma-separated git URLs (`#ref` pins) or local directories",
},
Setting {
    name: "CODEBUILDER_BUILDER_IMAGE",
    default: Fallback::Value("heroku/heroku:24-build"),
    reader: Reader::Settings(builder_image),
    doc: "the stack's build image, in which buildpacks run",
},
Setting {
    name: "CODEBUILDER_RUN_IMAGE",
    default: Fallback::Value("heroku/heroku:24"),
    reader: Reader::Settings(run_image),
    doc: "the stack's run image, the base of buildpack apps' images",
},
Setting {
    name: "CODEBUILDER_STACK",
    default: Fallback::Derived(stack_of_builder_image, "from `CODEBUILDER_BUILDER_IMAGE`: `heroku-24`"),
    reader: Reader::Settings(stack),
    doc: "the stack's name, `$STACK` to the buildpacks; by default the build image's name and tag without `-build` (`heroku/heroku:22-build` is `heroku-22`)",
},
LOG,
Setting {
    name: "KUBECONFIG",
    default: Fallback::Nothing,
    reader: Reader::Elsewhere,
    doc: "cluster helm deploys to (in a pod: the service account)",
},
Setting {
    name: "DOCKER_HOST",
    default: Fallback::Nothing,
    reader: Reader::Elsewhere,
    doc: "the Docker engine the build uses (in a pod: the dind sidecar)",
},
];

fn ssh_user(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.ssh_user = word(text, "a user name")?;
    Ok(())
}

fn config_keys(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.config_keys = path(text);
    Ok(())
}

fn config_access(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.config_access = path(text);
    Ok(())
}

fn app_creators(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.app_creators = match text {
        "all" => AppCreators::All,
        "admins" => AppCreators::Admins,
        _ => return Err("all or admins"),
    };
    Ok(())
}

fn namespace(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.namespace = word(text, "a namespace name")?;
    Ok(())
}

const REGISTRY_ADDRESS: &str = "a registry address such as 127.0.0.1:5000";

fn registry(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.registry = word(text, REGISTRY_ADDRESS)?;
    Ok(())
}

fn registry_of(settings: &Settings) -> String {
    settings.registry.clone()
}

fn pull_registry(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.pull_registry = word(text, REGISTRY_ADDRESS)?;
    Ok(())
}

fn registry_auth(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.registry_auth = match text {
        "" => None,
        dir if dir.starts_with('/') && is_plain_word(dir) => Some(dir.into()),
        _ => return Err("the absolute path of a folder with a docker config.json"),
    };
    Ok(())
}

fn deploy(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.deploy = match text {
        "helm" => DeployMode::Helm,
        "none" => DeployMode::None,
        _ => return Err("helm or none"),
    };
    Ok(())
}

fn deploy_branch(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.deploy_branch = BranchName::parse(text).map_err(|_| "a branch name such as main")?;
    Ok(())
}

fn build_timeout(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.build_timeout = duration(text)?;
    Ok(())
}

fn deploy_timeout(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.deploy_timeout = duration(text)?;
    Ok(())
}

const PROGRAM: &str = "a program name or path";

fn docker(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.docker = word(text, PROGRAM)?;
    Ok(())
}

fn helm(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.helm = word(text, PROGRAM)?;
    Ok(())
}

fn kubectl(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.kubectl = word(text, PROGRAM)?;
    Ok(())
}

fn deploy_values(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.deploy_values = path(text);
    Ok(())
}

fn pod_security(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.pod_security = Level::parse(text).ok_or("restricted, baseline or privileged")?;
    Ok(())
}

fn pod_security_allow(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.pod_security_allow = Control::parse_list(text).ok_or(
        "comma-separated Pod Security controls: hostProcess, hostNetwork, hostPID, hostIPC, privileged, capabilities, hostPath, hostPorts, appArmor, seLinux, procMount, seccomp, sysctls, volumeTypes, allowPrivilegeEscalation, runAsNonRoot, runAsUser",
    )?;
    Ok(())
}

/// The per-app limits (`off`, or `cpu=4,memory=8Gi,...`: each key once, the others at their
/// defaults). The container defaults are the next two rows'.
fn app_quota(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    if text == "off" {
        settings.app_quota = None;
        return Ok(());
    }
    let expected = "off, or KEY=VALUE pairs such as cpu=4,memory=8Gi,pods=20,services=10,persistentvolumeclaims=10";
    let keys = [
        "cpu",
        "memory",
        "pods",
        "services",
        "persistentvolumeclaims",
    ];
    let pairs = over_defaults(text, APP_QUOTA_DEFAULT, &keys).ok_or(expected)?;
    let quantity = |key: &str| positive_quantity(pairs[key]).ok_or(expected);
    let count = |key: &str| {
        let value = pairs[key];
        if value.bytes().all(|b| b.is_ascii_digit()) {
            value.parse().map_err(|_| expected)
        } else {
            Err(expected)
        }
    };
    // Until the next two rows fill them.
    let unset = Resources {
        cpu: Quantity::ZERO,
        memory: Quantity::ZERO,
    };
    settings.app_quota = Some(AppQuota {
        cpu: quantity("cpu")?,
        memory: quantity("memory")?,
        pods: count("pods")?,
        services: count("services")?,
        volume_claims: count("persistentvolumeclaims")?,
        request: unset,
        limit: unset,
    });
    Ok(())
}

/// Read only with a quota: `CODEBUILDER_APP_QUOTA=off` leaves containers without defaults.
fn container_requests(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    if let Some(quota) = &mut settings.app_quota {
        quota.request = resources(text, CONTAINER_REQUESTS_DEFAULT)?;
    }
    Ok(())
}

fn container_limits(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    if let Some(quota) = &mut settings.app_quota {
        quota.limit = resources(text, CONTAINER_LIMITS_DEFAULT)?;
    }
    Ok(())
}

/// The rule across the two rows above: a container's default requests fit in its default
/// limits. It names the requests' variable as the operator set it (empty when unset).
pub(super) fn requests_within_limits(
    vars: &HashMap<String, String>,
    settings: &Settings,
) -> Result<(), SettingsError> {
    let Some(quota) = &settings.app_quota else {
        return Ok(());
    };
    if quota.request.cpu > quota.limit.cpu || quota.request.memory > quota.limit.memory {
        let variable = "CODEBUILDER_CONTAINER_REQUESTS";
        return Err(SettingsError {
            variable,
            value: vars.get(variable).cloned().unwrap_or_default(),
            expected: "requests at most CODEBUILDER_CONTAINER_LIMITS",
        });
    }
    Ok(())
}

fn network_isolation(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.network_isolation = match text {
        "on" => true,
        "off" => false,
        _ => return Err("on or off"),
    };
    Ok(())
}

fn ingress_namespaces(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    let namespaces: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if !namespaces.iter().all(|n| is_dns_label(n)) {
        return Err("comma-separated namespace names such as ingress-nginx");
    }
    settings.ingress_namespaces = namespaces;
    Ok(())
}

fn build_network(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.build_network = match text {
        "" => None,
        network if is_plain_word(network) => Some(network.to_owned()),
        _ => return Err("a docker network name such as host"),
    };
    Ok(())
}

fn keep_builds(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.keep_builds = count(text)?;
    Ok(())
}

fn keep_images(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.keep_images = count(text)?;
    Ok(())
}

fn max_push_size(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.max_push_size = size(text)?;
    Ok(())
}

fn max_context_size(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.max_context_size = size(text)?;
    Ok(())
}

fn max_chart_size(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.max_chart_size = size(text)?;
    Ok(())
}

fn max_chart_files(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.max_chart_files = count(text)?;
    Ok(())
}

fn buildpacks(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.buildpacks = Buildpack::parse_list(text, Origin::Operator).map_err(|_| {
        "comma-separated buildpack git URLs (https://, http://, git://, ssh://, each with an optional #REF) or absolute paths of buildpack directories"
    })?;
    Ok(())
}

fn builder_image(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.builder_image = image(text)?;
    Ok(())
}

fn run_image(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    settings.run_image = image(text)?;
    Ok(())
}

fn stack_of_builder_image(settings: &Settings) -> String {
    stack_of(&settings.builder_image)
}

fn stack(text: &str, settings: &mut Settings) -> Result<(), &'static str> {
    if !is_stack_name(text) {
        return Err("a stack name such as heroku-24 (lowercase letters, digits, . and -)");
    }
    settings.stack = text.to_owned();
    Ok(())
}

fn word(text: &str, expected: &'static str) -> Result<String, &'static str> {
    if is_plain_word(text) {
        Ok(text.to_owned())
    } else {
        Err(expected)
    }
}

/// A path the operator gives as it is; empty is none.
fn path(text: &str) -> Option<PathBuf> {
    (!text.is_empty()).then(|| text.into())
}

fn duration(text: &str) -> Result<std::time::Duration, &'static str> {
    super::parse_duration(text).ok_or("a duration such as 90s, 30m or 1h")
}

fn count(text: &str) -> Result<usize, &'static str> {
    text.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or("a whole number above 0")
}

fn size(text: &str) -> Result<ByteSize, &'static str> {
    ByteSize::parse(text).ok_or("a size such as 500M or 2G (bytes, K, M or G)")
}

fn image(text: &str) -> Result<String, &'static str> {
    if is_plain_word(text) && !text.starts_with('-') {
        Ok(text.to_owned())
    } else {
        Err("a docker image name such as heroku/heroku:24")
    }
}

fn positive_quantity(text: &str) -> Option<Quantity> {
    Quantity::parse(text).filter(|q| *q > Quantity::ZERO)
}

/// A container's CPU and memory: `cpu=QUANTITY,memory=QUANTITY`, either left out for its
/// value in `defaults`.
fn resources(text: &str, defaults: &'static str) -> Result<Resources, &'static str> {
    let expected = "cpu=QUANTITY,memory=QUANTITY, such as cpu=100m,memory=128Mi";
    let pairs = over_defaults(text, defaults, &["cpu", "memory"]).ok_or(expected)?;
    Ok(Resources {
        cpu: positive_quantity(pairs["cpu"]).ok_or(expected)?,
        memory: positive_quantity(pairs["memory"]).ok_or(expected)?,
    })
}

/// The `KEY=VALUE` pairs of `text` over those of `defaults`, which name every key.
fn over_defaults<'a>(
    text: &'a str,
    defaults: &'static str,
    keys: &[&str],
) -> Option<HashMap<&'a str, &'a str>> {
    let mut pairs = assignments(defaults, keys)?;
    pairs.extend(assignments(text, keys)?);
    Some(pairs)
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

/// A value that is safe as one argument and on one line of sshd_config: no space, quote,
/// control character or shell syntax.
fn is_plain_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows as README.md's settings reference shows them.
    fn markdown() -> String {
        let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
        for setting in TABLE {
            let default = match setting.default {
                Fallback::Value(value) => format!("`{value}`"),
                Fallback::Nothing => "—".to_owned(),
                Fallback::Derived(_, text) => text.to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                setting.name,
                default.replace('|', "\\|"),
                setting.doc.replace('|', "\\|")
            ));
        }
        out
    }

    #[test]
    fn the_readme_settings_reference_is_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let section = readme
            .find("\n## Settings\n")
            .expect("README.md has ## Settings");
        let start = section + readme[section..].find("| variable |").expect("a table");
        let end = start + readme[start..].find("\n\n").expect("a blank line after it") + 1;
        let table = markdown();
        if readme[start..end] == table {
            return;
        }
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "README.md's settings reference is not the table of crates/codebuilder-core/src/settings/table.rs: \
             write it from the table with `UPDATE_README=1 cargo test -p codebuilder-core the_readme_settings_reference_is_the_table`"
        );
    }

    #[test]
    fn every_default_value_is_valid() {
        let settings = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(
            settings.app_quota.map(|q| (q.request, q.limit)),
            Some((
                resources(CONTAINER_REQUESTS_DEFAULT, CONTAINER_REQUESTS_DEFAULT).unwrap(),
                resources(CONTAINER_LIMITS_DEFAULT, CONTAINER_LIMITS_DEFAULT).unwrap()
            ))
        );
        let names: Vec<&str> = TABLE.iter().map(|s| s.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "a variable has two rows");
    }
}
