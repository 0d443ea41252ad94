//! The app's config vars, as Heroku hands them to `bin/compile`: an ENV_DIR with one file per
//! variable. codebuilder keeps them in `HOME/config/APP/NAME` (written by an admin, e.g. through
//! `kubectl exec`); `BUILDPACK_URL` among them picks the app's buildpack, as on Heroku.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{bail, Context};

/// Limits that keep a mistaken file (a log, a tarball) out of every build.
const MAX_VARS: usize = 256;
const MAX_VALUE: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub struct ConfigVars {
    vars: BTreeMap<String, Vec<u8>>,
}

impl ConfigVars {
    /// Reads `dir`; a missing directory is an app without config vars. Only regular files
    /// named like environment variables count: a symlink could point anywhere on the host.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        let mut vars = BTreeMap::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !is_var_name(&name) || !entry.file_type()?.is_file() {
                continue;
            }
            if vars.len() == MAX_VARS {
                bail!("{} holds more than {MAX_VARS} config vars", dir.display());
            }
            vars.insert(name, read_value(&entry.path())?);
        }
        Ok(Self { vars })
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.vars.get(name).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

fn read_value(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut value = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_VALUE + 1).read_to_end(&mut value))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if value.len() as u64 > MAX_VALUE {
        bail!(
            "{} is larger than {MAX_VALUE} bytes: a config var holds a value, not a file",
            path.display()
        );
    }
    Ok(value)
}

/// What a shell accepts as a variable name.
pub fn is_var_name(name: &str) -> bool {
    name.len() <= 256
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_named_like_variables() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("BUILDPACK_URL"), "https://x/bp\n").unwrap();
        fs::write(dir.path().join("not-a-name"), "x").unwrap();
        fs::create_dir(dir.path().join("DIR")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("LINK")).unwrap();
        let vars = ConfigVars::load(dir.path()).unwrap();
        let names: Vec<&str> = vars.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["BUILDPACK_URL"]);
        assert_eq!(vars.get("BUILDPACK_URL"), Some(&b"https://x/bp\n"[..]));
        assert!(ConfigVars::load(&dir.path().join("missing"))
            .unwrap()
            .get("X")
            .is_none());
        fs::write(dir.path().join("BIG"), vec![b'x'; 70 * 1024]).unwrap();
        assert!(ConfigVars::load(dir.path()).is_err());
    }

    #[test]
    fn variable_names() {
        for good in ["PATH", "_X", "a1_B"] {
            assert!(is_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä"] {
            assert!(!is_var_name(bad), "{bad}");
        }
    }
}
