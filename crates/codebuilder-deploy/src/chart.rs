//! The chart a deploy installs: the app's own `chart/` folder when its repository has one,
//! otherwise codebuilder's default chart, named after the app and versioned by release, so
//! that `helm list` says what is deployed (never a fixed `appname-v0.1.0`).

use std::fs;
use std::path::Path;

use anyhow::Context;
use codebuilder_core::AppName;

/// Files of the default chart, embedded in the binary.
const DEFAULT_FILES: &[(&str, &str)] = &[
    ("values.yaml", include_str!("../chart/values.yaml")),
    (
        "templates/_helpers.tpl",
        include_str!("../chart/templates/_helpers.tpl"),
    ),
    (
        "templates/deployment.yaml",
        include_str!("../chart/templates/deployment.yaml"),
    ),
    (
        "templates/service.yaml",
        include_str!("../chart/templates/service.yaml"),
    ),
    (
        "templates/processes.yaml",
        include_str!("../chart/templates/processes.yaml"),
    ),
];

/// Writes the default chart for `app` into `dir`: chart name = app, version = release
/// number, appVersion = the short git sha.
pub fn write_default(
    dir: &Path,
    app: &AppName,
    release: u64,
    short_sha: &str,
) -> anyhow::Result<()> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {app}\ndescription: {app}, built and deployed by codebuilder\ntype: application\nversion: {release}.0.0\nappVersion: \"{short_sha}\"\n"
    );
    write(dir, "Chart.yaml", &chart_yaml)?;
    for (name, contents) in DEFAULT_FILES {
        write(dir, name, contents)?;
    }
    Ok(())
}

/// Writes helm values (JSON, which is YAML) to a temporary file for `helm --values`: data
/// from the build (Procfile commands) reaches helm as a file, never as a `--set` string that
/// helm would parse for commas, dots and brackets.
pub fn write_values(values: &serde_json::Value) -> anyhow::Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("codebuilder-values-")
        .suffix(".json")
        .tempfile()
        .context("cannot create a temporary file")?;
    serde_json::to_writer(file.as_file(), values).context("cannot write helm values")?;
    Ok(file)
}

fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_named_after_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppName::parse("myapp", "codebuilder").unwrap();
        write_default(dir.path(), &app, 3, "abc1234").unwrap();
        let chart = fs::read_to_string(dir.path().join("Chart.yaml")).unwrap();
        assert!(chart.contains("name: myapp\n"));
        assert!(chart.contains("version: 3.0.0\n"));
        assert!(chart.contains("appVersion: \"abc1234\"\n"));
        assert!(dir.path().join("templates/deployment.yaml").is_file());
        assert!(dir.path().join("templates/processes.yaml").is_file());
    }

    #[test]
    fn values_are_json() {
        let values = serde_json::json!({"processes": {"web": {"command": "a, b[0].c=d"}}});
        let file = write_values(&values).unwrap();
        let read: serde_json::Value =
            serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(read, values);
    }
}
