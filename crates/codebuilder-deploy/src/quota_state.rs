//! An app's quota and container defaults as its own account reads them back (`quota:show`).

use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{run, QUICK};
use serde_json::Value as Json;

use crate::quota::{DEFAULTS, QUOTA};
use crate::said::{cluster_error, tool_error};
use crate::tenancy::{app_kubectl, Namespace, Tenancy};

/// The quota of an app and what it uses, as its own account reads them.
pub struct QuotaState {
    /// Each resource of the quota (`requests.cpu`), what the app uses and what it may use.
    pub resources: Vec<Share>,
    /// What a container that names none gets (`cpu`), as request and as limit.
    pub defaults: Vec<Share>,
}

/// One resource: its name and two amounts (used and allowed, or request and limit).
pub struct Share {
    pub resource: String,
    pub first: String,
    pub second: String,
}

/// Reads the app's ResourceQuota and LimitRange; `None` when it has none (never deployed, or
/// `CODEBUILDER_APP_QUOTA=off`).
pub fn read(settings: &Settings, app: &AppName) -> anyhow::Result<Option<QuotaState>> {
    if (Tenancy { settings, app }).namespace()? != Namespace::Ours {
        return Ok(None);
    }
    let get = |kind: &str, name: &str| -> anyhow::Result<Option<Json>> {
        let mut kubectl: Command = app_kubectl(settings, app);
        kubectl.args(["get", kind, name, "--output", "json"]);
        let out = run(kubectl, QUICK).map_err(|e| tool_error(e, "CODEBUILDER_KUBECTL"))?;
        if !out.success() {
            let said = out.stderr_text();
            if said.contains("(NotFound)") {
                return Ok(None);
            }
            bail!(
                "{}",
                cluster_error(&said, format_args!("cannot read the {kind} of {app}"))
            );
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .with_context(|| format!("cannot read kubectl get {kind}"))
    };
    let Some(quota) = get("resourcequota", QUOTA)? else {
        return Ok(None);
    };
    let text = |v: &Json| v.as_str().unwrap_or("0").to_owned();
    let order = [
        "requests.cpu",
        "requests.memory",
        "pods",
        "services",
        "persistentvolumeclaims",
    ];
    let resources = order
        .iter()
        .filter(|r| !quota["spec"]["hard"][**r].is_null())
        .map(|r| Share {
            resource: (*r).to_owned(),
            first: text(&quota["status"]["used"][*r]),
            second: text(&quota["spec"]["hard"][*r]),
        })
        .collect();
    let limits = get("limitrange", DEFAULTS)?.unwrap_or_default();
    let container = limits["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["type"] == "Container")
        .cloned()
        .unwrap_or_default();
    let defaults = ["cpu", "memory"]
        .iter()
        .filter(|r| !container["default"][**r].is_null())
        .map(|r| Share {
            resource: (*r).to_owned(),
            first: text(&container["defaultRequest"][*r]),
            second: text(&container["default"][*r]),
        })
        .collect();
    Ok(Some(QuotaState {
        resources,
        defaults,
    }))
}
