//! codebuilder.yaml as the tests read it: its documents as JSON, and the parts they look at.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{repo_root, text};

/// The venv of kubernetes-validate, which has PyYAML: it turns codebuilder.yaml into JSON.
const VENV_PYTHON: &str = "/opt/codebuilder-venv/bin/python";

/// The documents of codebuilder.yaml, as JSON.
pub fn manifests() -> Vec<Value> {
    documents(&repo_root().join("codebuilder.yaml"))
}

/// The documents of a YAML file, as JSON.
pub fn documents(path: &Path) -> Vec<Value> {
    let out = Command::new(VENV_PYTHON)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {VENV_PYTHON} (scripts/deps.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "cannot read {}: {}",
        path.display(),
        text(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("{} is not a list of documents: {other}", path.display()),
    }
}

pub fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("codebuilder.yaml has no {kind} {name}"))
}

pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("the pod has no container {name}"))
}
