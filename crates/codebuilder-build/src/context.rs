//! The build context as `docker build .` makes it: the pushed tree without what its
//! `.dockerignore` lists (for a buildpack build, what its `.slugignore` lists). `git archive`
//! streams the tree as a tar; `codebuilder-build context-filter` sits between it and `docker
//! build -` (or the builder container) and copies the entries that stay, one at a time, never
//! holding more than one entry's metadata. The Dockerfile and the `.dockerignore` always stay,
//! as docker's own client keeps them: the build needs them.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::main_support::{self, BUILD_BINARY};
use codebuilder_process::{Output, RunError, QUICK};

use crate::dockerignore::{IgnoreFile, Patterns};

/// Files that stay in the context whatever `.dockerignore` says.
const ALWAYS_SENT: &[&str] = &["Dockerfile", ".dockerignore"];
/// Largest pax or GNU long-name header kept while its entry is read.
const MAX_META: u64 = 1 << 20;

/// Copies the tar on `input` to `output` without the entries `patterns` exclude. Long names
/// (pax `path`, GNU `L` entries) are read for the decision and copied with their entry;
/// global pax headers (`git archive`'s commit id) are copied as they are.
pub fn filter(input: impl Read, output: impl Write, patterns: &Patterns) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    // The metadata entries that describe the next real entry, and the long name they give.
    let mut pending: Vec<(tar::Header, Vec<u8>)> = Vec::new();
    let mut long_name: Option<Vec<u8>> = None;
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions() {
            builder.append(&header, &mut entry)?;
            continue;
        }
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let mut data = Vec::new();
            (&mut entry).take(MAX_META + 1).read_to_end(&mut data)?;
            if data.len() as u64 > MAX_META {
                return Err(io::Error::other("a tar metadata entry is over 1 MiB"));
            }
            if kind.is_pax_local_extensions() {
                for extension in tar::PaxExtensions::new(&data) {
                    let extension = extension?;
                    if extension.key_bytes() == b"path" {
                        long_name = Some(extension.value_bytes().to_vec());
                    }
                }
            } else if kind.is_gnu_longname() {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                long_name = Some(data[..end].to_vec());
            }
            pending.push((header, data));
            continue;
        }
        let name = long_name
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        if keeps(patterns, &String::from_utf8_lossy(&name)) {
            for (meta, data) in pending.drain(..) {
                builder.append(&meta, data.as_slice())?;
            }
            builder.append(&header, &mut entry)?;
        } else {
            pending.clear();
        }
    }
    builder.into_inner()?.flush()
}

/// Whether the entry named `name` (as the tar has it) goes to the build.
fn keeps(patterns: &Patterns, name: &str) -> bool {
    let trimmed = name.trim_end_matches('/');
    let path = trimmed.strip_prefix("./").unwrap_or(trimmed);
    path.is_empty() || path == "." || ALWAYS_SENT.contains(&path) || !patterns.excludes(path)
}

/// The tree's `file` (`.dockerignore`, `.slugignore`) at `rev` of `repo`, checked and said,
/// in `.dockerignore`'s terms in a file for [`filter_command`]; `None` without one (the tree
/// then streams as it is) or when it lists nothing.
pub fn ignore_list(
    repo: &Path,
    rev: &str,
    file: IgnoreFile,
    output: &Output,
) -> anyhow::Result<Option<tempfile::NamedTempFile>> {
    let name = file.name();
    let git = |args: &[&str]| {
        let mut git = Command::new("git");
        git.arg("--git-dir").arg(repo).args(args);
        git
    };
    let blob = format!("{rev}:{name}");
    let read = match codebuilder_process::run(git(&["cat-file", "blob", &blob]), QUICK) {
        Err(RunError::TooMuchOutput { .. }) => {
            bail!(
                "{name} is too large to be a list of patterns: shorten it, commit, and push again"
            )
        }
        other => other?,
    };
    if !read.success() {
        if codebuilder_process::run(git(&["cat-file", "-e", &blob]), QUICK)?.success() {
            bail!("{name} is not a file: make it a file of patterns, commit, and push again");
        }
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&read.stdout);
    let (patterns, docker_text) = match file {
        IgnoreFile::Docker => (Patterns::parse(&text)?, text.into_owned()),
        IgnoreFile::Slug => Patterns::parse_slugignore(&text)?,
    };
    if patterns.is_empty() {
        return Ok(None);
    }
    let count = patterns.len();
    let noun = if count == 1 { "pattern" } else { "patterns" };
    output.step(&format!("Leaving out what {name} lists ({count} {noun})"));
    let list = tempfile::Builder::new()
        .prefix("codebuilder-ignore-")
        .tempfile()
        .context("cannot create a temporary file")?;
    std::fs::write(list.path(), docker_text).context("cannot write a temporary file")?;
    Ok(Some(list))
}

/// `codebuilder-build context-filter LIST`, to put between `git archive` and what reads the
/// tree; a failure of it is told apart with [`is_filter`].
pub fn filter_command(list: &Path) -> anyhow::Result<Command> {
    let mut filter = Command::new(filter_program()?);
    filter.arg("context-filter").arg(list);
    Ok(filter)
}

/// Whether `program` (as a failed step names it) is the filter of [`filter_command`].
pub fn is_filter(program: &str) -> bool {
    filter_program().is_ok_and(|filter| filter.to_string_lossy() == program)
}

/// codebuilder-build, which has the filter: the hook runs in it, a rebuild in codebuilder-ops
/// (over ssh, or at `kubectl exec`), installed beside it.
fn filter_program() -> anyhow::Result<PathBuf> {
    main_support::sibling(BUILD_BINARY)
        .context("cannot tell where codebuilder-build is, to filter the build context")
}

/// `codebuilder-build context-filter IGNORE_FILE`: the filter between `git archive` and
/// `docker build -`. When the build stops reading, the filter ends as `git archive` would
/// (SIGPIPE), so that the build's own failure is the one reported.
pub fn filter_stdio(ignore_file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read(ignore_file)
        .with_context(|| format!("cannot read {}", ignore_file.display()))?;
    let patterns = Patterns::parse(&String::from_utf8_lossy(&text))?;
    let input = io::BufReader::with_capacity(1 << 16, io::stdin().lock());
    let output = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match filter(input, output, &patterns) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGPIPE)?;
            Err(e.into())
        }
        other => other.context("cannot filter the build context"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_ustar();
            if name.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                builder.append_data(&mut header, name, io::empty()).unwrap();
            } else {
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                builder
                    .append_data(&mut header, name, data.as_bytes())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    fn names_and_data(archive: &[u8]) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(archive);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut data = String::new();
                entry.read_to_string(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn leaves_out_what_dockerignore_lists() {
        let long = format!("deep/{}/kept.txt", "d".repeat(120));
        let long_secret = format!("deep/{}/x.secret", "s".repeat(120));
        let input = tar_of(&[
            ("Dockerfile", "FROM x"),
            (".dockerignore", "ignored"),
            ("app.txt", "app"),
            ("secret.env", "TOKEN=1"),
            ("secrets/", ""),
            ("secrets/private.pem", "private"),
            ("secrets/public.pem", "public"),
            (&long, "long"),
            (&long_secret, "long secret"),
        ]);
        let patterns = Patterns::parse(
            "Dockerfile\n.dockerignore\nsecret.env\nsecrets\n!secrets/public.pem\n**/*.secret\n",
        )
        .unwrap();
        let mut output = Vec::new();
        filter(input.as_slice(), &mut output, &patterns).unwrap();
        let kept: Vec<(String, String)> = names_and_data(&output);
        let expected: Vec<(String, String)> = [
            ("Dockerfile", "FROM x"),
            (".dockerignore", "ignored"),
            ("app.txt", "app"),
            ("secrets/public.pem", "public"),
            (long.as_str(), "long"),
        ]
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
        assert_eq!(kept, expected);
    }

    #[test]
    fn keeps_git_archive_global_header() {
        let mut builder = tar::Builder::new(Vec::new());
        let comment = b"52 comment=0123456789012345678901234567890123456789\n";
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XGlobalHeader);
        header.set_size(comment.len() as u64);
        builder
            .append_data(&mut header, "pax_global_header", &comment[..])
            .unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_size(1);
        file.set_mode(0o644);
        builder.append_data(&mut file, "a", &b"a"[..]).unwrap();
        let input = builder.into_inner().unwrap();
        let mut output = Vec::new();
        let patterns = Patterns::parse("b\n").unwrap();
        filter(input.as_slice(), &mut output, &patterns).unwrap();
        assert_eq!(output, input);
    }
}
