//! The chart a deploy installs: the app's own `chart/` folder when its repository has one,
//! otherwise codebuilder's default chart, named after the app and versioned by release, so
//! that `helm list` says what is deployed (never a fixed `appname-v0.1.0`).
//!
//! The app's own chart is pushed by a key holder and handed to helm, which reads every file
//! of it (`.Files.Get`): it is unpacked from `git archive` as the archive streams, and only
//! files and folders inside `chart/` are written, within the operator's limits.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::settings::ByteSize;
use codebuilder_core::{yaml, AppName, Settings};
use codebuilder_process::{Output, QUICK};

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
    (CONFIG_SECRET_FILE, CONFIG_SECRET_TEMPLATE),
];

/// The template of the Secret holding the app's config vars, in every chart codebuilder
/// deploys: the default chart's, and added to an app's own chart.
const CONFIG_SECRET_FILE: &str = "templates/codebuilder-config.yaml";
const CONFIG_SECRET_TEMPLATE: &str = include_str!("../chart/templates/codebuilder-config.yaml");

/// Adds the config Secret's template to an app's own chart (replacing a file of that name):
/// the chart gets the Secret's name as the value `configSecret`, to use with `envFrom`.
pub fn add_config_secret(dir: &Path) -> anyhow::Result<()> {
    write(dir, CONFIG_SECRET_FILE, CONFIG_SECRET_TEMPLATE)
}

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

/// A chart whose one template is `manifest` (what `helm template` rendered of `chart` and
/// codebuilder checked), named and versioned as `chart`. The upgrade renders it back to the
/// same text: rendering `chart` again could give other objects than the ones checked, since
/// `lookup`, `rand*` and `now` answer differently each time.
pub fn flatten(manifest: &str, chart: &Path) -> anyhow::Result<tempfile::TempDir> {
    let read = fs::read_to_string(chart.join("Chart.yaml")).context("cannot read Chart.yaml")?;
    let source = yaml::document(&read).context("cannot read Chart.yaml")?;
    let mut meta = serde_json::Map::new();
    meta.insert("apiVersion".into(), "v2".into());
    for key in ["name", "version", "appVersion", "description"] {
        if let Some(value) = source.get(key) {
            meta.insert(key.into(), value.clone());
        }
    }
    meta.insert("type".into(), "application".into());
    let dir = tempfile::Builder::new()
        .prefix("codebuilder-checked-")
        .tempdir()
        .context("cannot create a folder for the chart")?;
    // JSON, which is YAML: helm reads Chart.yaml as it reads values files.
    let meta = serde_json::to_string(&meta).context("cannot write Chart.yaml")?;
    write(dir.path(), "Chart.yaml", &meta)?;
    // Text outside `{{ }}` is kept as it is; `{{` itself is written by an action.
    let template = manifest.replace("{{", "{{\"{{\"}}");
    write(dir.path(), "templates/release.yaml", &template)?;
    Ok(dir)
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

/// How large an app's own chart may be (`CODEBUILDER_MAX_CHART_SIZE`,
/// `CODEBUILDER_MAX_CHART_FILES`).
#[derive(Debug, Clone, Copy)]
pub struct ChartLimits {
    pub max_size: ByteSize,
    pub max_files: usize,
}

/// Unpacks the `chart/` folder of `archive` (`git archive --format=tar REV chart`) into `dir`,
/// which must be empty: `chart/templates/a.yaml` becomes `DIR/templates/a.yaml`. Refused, with
/// `dir` left empty, when the chart holds anything but files and folders, a path that leaves
/// `chart/`, or more than `limits` allow.
pub fn unpack_app_chart(
    archive: &mut dyn Read,
    dir: &Path,
    limits: ChartLimits,
) -> anyhow::Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(dir)
        .context("cannot create a folder for the chart")?;
    unpack_into(archive, staging.path(), limits)?;
    for entry in fs::read_dir(staging.path())? {
        let entry = entry?;
        fs::rename(entry.path(), dir.join(entry.file_name()))?;
    }
    Ok(())
}

fn unpack_into(archive: &mut dyn Read, dir: &Path, limits: ChartLimits) -> anyhow::Result<()> {
    let fix_size = "move large files out of chart/, or raise CODEBUILDER_MAX_CHART_SIZE";
    let mut archive = tar::Archive::new(archive);
    let (mut size, mut files) = (0u64, 0usize);
    for entry in archive.entries().context("cannot read chart/")? {
        let mut entry = entry.context("cannot read chart/")?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let path = entry.path().context("cannot read chart/")?.into_owned();
        let shown = printable(&path);
        let Some(inside) = inside_chart(&path) else {
            bail!("{shown} is outside chart/: a chart may only hold paths inside chart/; rename it, commit, and push again");
        };
        if inside.as_os_str().is_empty() {
            continue;
        }
        let link = match kind {
            tar::EntryType::Symlink => Some("a symbolic link"),
            tar::EntryType::Link => Some("a hard link"),
            tar::EntryType::Directory | tar::EntryType::Regular => None,
            _ => Some("neither a file nor a folder"),
        };
        if let Some(what) = link {
            bail!("{shown} is {what}: a chart may only hold files and folders; put the file itself there, commit, and push again");
        }
        files += 1;
        if files > limits.max_files {
            bail!("chart/ has more than {} files and folders (CODEBUILDER_MAX_CHART_FILES): remove files from chart/, or raise CODEBUILDER_MAX_CHART_FILES", limits.max_files);
        }
        let target = dir.join(&inside);
        if kind == tar::EntryType::Directory {
            fs::create_dir_all(&target)?;
            continue;
        }
        size = size.saturating_add(entry.header().size()?);
        if size > limits.max_size.bytes() {
            bail!(
                "chart/ is over the {} limit of a chart (CODEBUILDER_MAX_CHART_SIZE): {fix_size}",
                limits.max_size
            );
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file = fs::File::create_new(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        std::io::copy(&mut entry, &mut file).context("cannot read chart/")?;
    }
    Ok(())
}

/// The part of `path` under `chart/` (empty for `chart/` itself), or `None` when the path is
/// absolute, climbs with `..`, or is not in `chart/`.
fn inside_chart(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    if components.next()? != Component::Normal("chart".as_ref()) {
        return None;
    }
    let mut inside = PathBuf::new();
    for component in components {
        match component {
            Component::Normal(part) => inside.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(inside)
}

/// A path from the pusher, made safe for the pusher's terminal.
fn printable(path: &Path) -> String {
    path.to_string_lossy()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// The chart a release deploys: the app's own `chart/` at the revision deployed, unpacked
/// before the build starts, with the config Secret's template added; otherwise the default
/// chart, numbered 0 until the release number is known (`chart::write_default`).
pub struct Chart {
    pub dir: tempfile::TempDir,
    /// The app's own `chart/`, not the default chart.
    pub own: bool,
}

impl Chart {
    /// Readies the chart for release `next` of `app`, built from commit `short` (the default
    /// chart takes that number and sha), and tells the user which chart deploys it.
    pub fn ready_for(
        &self,
        output: &Output,
        app: &AppName,
        next: u64,
        short: &str,
    ) -> anyhow::Result<()> {
        let source = if self.own {
            "the app's own chart"
        } else {
            write_default(self.dir.path(), app, next, short)?;
            "the default chart"
        };
        output.step(&format!(
            "Deploying release {next} to namespace {app} with {source}"
        ));
        Ok(())
    }

    /// The chart of commit `rev` of `app`, whose repository is `repo`; `short` is how
    /// messages and the default chart name that commit (a full id's short form, or the short
    /// sha an image tag keeps).
    pub fn at(
        settings: &Settings,
        app: &AppName,
        repo: &Path,
        rev: &str,
        short: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("codebuilder-chart-")
            .tempdir()?;
        let git = || {
            let mut command = Command::new("git");
            command.arg("--git-dir").arg(repo);
            command
        };
        let mut cat_file = git();
        cat_file.args(["cat-file", "-e", &format!("{rev}:chart/Chart.yaml")]);
        let own = codebuilder_process::run(cat_file, QUICK)?.success();
        if own {
            let mut archive = git();
            archive.args(["archive", "--format=tar", rev, "chart"]);
            let limits = ChartLimits {
                max_size: settings.max_chart_size,
                max_files: settings.max_chart_files,
            };
            let (output, unpacked) = codebuilder_process::run_reading(archive, QUICK, |tar| {
                unpack_app_chart(tar, dir.path(), limits)
            })
            .with_context(|| format!("cannot read chart/ from {short}"))?;
            unpacked?;
            if !output.success() {
                bail!("cannot read chart/ from {short}: {}", output.stderr_text());
            }
            add_config_secret(dir.path())?;
        } else {
            write_default(dir.path(), app, 0, short)?;
        }
        Ok(Self { dir, own })
    }
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

    const LIMITS: ChartLimits = ChartLimits {
        max_size: ByteSize(1024),
        max_files: 4,
    };

    /// A tar entry: path, type, contents.
    type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

    fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                header.set_size(0);
                header.set_link_name("/etc/passwd").unwrap();
            }
            // set_path refuses `..`: write the name as a hostile archive would.
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            let body: &[u8] = if header.entry_size().unwrap() == 0 {
                &[]
            } else {
                data
            };
            tar.append(&header, body).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn unpack(entries: &[Entry]) -> (tempfile::TempDir, Result<(), String>) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(entries);
        let result = unpack_app_chart(&mut bytes.as_slice(), dir.path(), LIMITS)
            .map_err(|e| format!("{e:#}"));
        (dir, result)
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn the_chart_folder_is_unpacked_at_the_top() {
        let (dir, result) = unpack(&[
            ("chart/", Directory, b""),
            ("chart/Chart.yaml", Regular, b"name: x\n"),
            ("chart/templates/a.yaml", Regular, b"kind: A\n"),
        ]);
        result.unwrap();
        assert_eq!(
            fs::read(dir.path().join("Chart.yaml")).unwrap(),
            b"name: x\n"
        );
        assert!(dir.path().join("templates/a.yaml").is_file());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn links_and_escaping_paths_are_refused_and_nothing_is_left() {
        let cases: [(&[Entry], &str); 5] = [
            (&[("chart/Chart.yaml", Regular, b"x"), ("chart/files/x", Symlink, b"")],
             "chart/files/x is a symbolic link: a chart may only hold files and folders; put the file itself there, commit, and push again"),
            (&[("chart/files/x", Link, b"")],
             "chart/files/x is a hard link: a chart may only hold files and folders; put the file itself there, commit, and push again"),
            (&[("chart/../../x", Regular, b"x")],
             "chart/../../x is outside chart/: a chart may only hold paths inside chart/; rename it, commit, and push again"),
            (&[("/etc/cron.d/x", Regular, b"x")],
             "/etc/cron.d/x is outside chart/: a chart may only hold paths inside chart/; rename it, commit, and push again"),
            (&[("chart/a", Regular, b"x"), ("chart/b", Regular, b"x"), ("chart/c", Regular, b"x"), ("chart/d/", Directory, b""), ("chart/d/e", Regular, b"x")],
             "chart/ has more than 4 files and folders (CODEBUILDER_MAX_CHART_FILES): remove files from chart/, or raise CODEBUILDER_MAX_CHART_FILES"),
        ];
        for (entries, line) in cases {
            let (dir, result) = unpack(entries);
            assert_eq!(result.unwrap_err(), line);
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{line}");
        }
    }

    #[test]
    fn a_chart_over_the_size_limit_is_refused_before_it_is_written() {
        let big = vec![b'x'; 1000];
        let (dir, result) = unpack(&[("chart/a", Regular, &big), ("chart/b", Regular, &big)]);
        assert_eq!(
            result.unwrap_err(),
            "chart/ is over the 1K limit of a chart (CODEBUILDER_MAX_CHART_SIZE): move large files out of chart/, or raise CODEBUILDER_MAX_CHART_SIZE"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_flattened_chart_keeps_the_name_and_the_text() {
        let source = tempfile::tempdir().unwrap();
        fs::write(
            source.path().join("Chart.yaml"),
            "apiVersion: v2\nname: hostile\nversion: 1.2.3\nappVersion: \"abc\"\ndependencies: [{name: x}]\n",
        )
        .unwrap();
        let flat = flatten("kind: ConfigMap\ndata: {a: \"{{ x }}\"}\n", source.path()).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(flat.path().join("Chart.yaml")).unwrap())
                .unwrap();
        assert_eq!(meta["name"], "hostile");
        assert_eq!(meta["version"], "1.2.3");
        assert_eq!(meta["appVersion"], "abc");
        assert_eq!(meta.get("dependencies"), None);
        assert_eq!(
            fs::read_to_string(flat.path().join("templates/release.yaml")).unwrap(),
            "kind: ConfigMap\ndata: {a: \"{{\"{{\"}} x }}\"}\n"
        );
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
