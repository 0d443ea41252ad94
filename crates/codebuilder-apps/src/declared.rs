//! Access a cluster admin declares in a read-only file (a mounted ConfigMap or Secret), one
//! grant per line: `APP KEYNAME push|read`. Merged with the stored grants at lookup time, and
//! changed only in that file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use codebuilder_core::{AppName, KeyName};

use crate::level::Level;

/// One declared grant of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGrant {
    pub key: KeyName,
    pub level: Level,
    /// The file it comes from.
    pub path: PathBuf,
}

/// The grants `path` declares for `app`. A line that does not parse is skipped with a
/// warning: one typo must not take everyone else's access away.
pub fn read(path: &Path, app: &AppName, own_namespace: &str) -> io::Result<Vec<DeclaredGrant>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut grants = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, own_namespace) {
            Ok((name, key, level)) if &name == app => grants.push(DeclaredGrant {
                key,
                level,
                path: path.to_path_buf(),
            }),
            Ok(_) => {}
            Err(reason) => tracing::warn!("{}:{}: skipped: {reason}", path.display(), number + 1),
        }
    }
    Ok(grants)
}

fn parse_line(line: &str, own_namespace: &str) -> Result<(AppName, KeyName, Level), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [app, key, level] = words.as_slice() else {
        return Err("expected APP KEYNAME push|read".into());
    };
    let app = AppName::parse(app, own_namespace).map_err(|e| e.to_string())?;
    let key = KeyName::parse(key).map_err(|e| e.to_string())?;
    let level = Level::parse(level).ok_or_else(|| {
        format!(
            "unknown access {:?}: use push or read",
            codebuilder_core::names::printable(level)
        )
    })?;
    Ok((app, key, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_apps_lines_and_skips_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access");
        fs::write(
            &path,
            "# team\n\nshop bob read\nshop carol push\nblog bob push\nshop dave admin\nshop Eve read\nkube-system bob push\nshop\n",
        )
        .unwrap();
        let app = AppName::parse("shop", "codebuilder").unwrap();
        let grants = read(&path, &app, "codebuilder").unwrap();
        let found: Vec<_> = grants.iter().map(|g| (g.key.as_str(), g.level)).collect();
        assert_eq!(found, [("bob", Level::Read), ("carol", Level::Push)]);
        assert!(read(&dir.path().join("missing"), &app, "codebuilder")
            .unwrap()
            .is_empty());
    }
}
