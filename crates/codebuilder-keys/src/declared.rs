//! Keys a cluster admin declares in a read-only file (a mounted ConfigMap or Secret), one per
//! line: `NAME[:admin] TYPE BASE64 [COMMENT]`. They are merged with the store at lookup
//! time and cannot be changed over ssh: the file is their only source of truth.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use codebuilder_core::KeyName;

use crate::keytext::PublicKeyEntry;
use crate::record::{KeyRecord, KeySource};

/// The keys of a configuration file. A line that does not parse is skipped with a warning:
/// one typo must not lock every other user out.
pub fn read(path: &Path) -> io::Result<Vec<KeyRecord>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let added_at = fs::metadata(path)?
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut records = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, path, added_at) {
            Ok(record) => records.push(record),
            Err(reason) => tracing::warn!("{}:{}: skipped: {reason}", path.display(), number + 1),
        }
    }
    Ok(records)
}

fn parse_line(line: &str, path: &Path, added_at: u64) -> Result<KeyRecord, String> {
    let (label, key_text) = line
        .split_once(char::is_whitespace)
        .ok_or("expected NAME[:admin] TYPE BASE64")?;
    let (name, admin) = match label.split_once(':') {
        Some((name, "admin")) => (name, true),
        Some((_, role)) => return Err(format!("unknown role {role:?}: the only role is admin")),
        None => (label, false),
    };
    let name = KeyName::parse(name).map_err(|e| e.to_string())?;
    let key = PublicKeyEntry::parse_text(key_text).map_err(|e| e.to_string())?;
    Ok(KeyRecord {
        name,
        fingerprint: key.fingerprint(),
        key_type: key.key_type().to_owned(),
        key: key.base64(),
        admin,
        added_at,
        source: KeySource::Config(PathBuf::from(path)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_roles_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        fs::write(
            &path,
            "# team keys\n\nops:admin ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/ ops@x\n\
             dev ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA8QyjcuTMGx+T0Qj1jrQBI506T6ElrD94MeN1tHSizm\n\
             Bad ssh-ed25519 AAAA\nx:root ssh-ed25519 AAAA\nlonely\n",
        )
        .unwrap();
        let records = read(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].name.as_str(), records[0].admin), ("ops", true));
        assert_eq!((records[1].name.as_str(), records[1].admin), ("dev", false));
        assert!(read(&dir.path().join("missing")).unwrap().is_empty());
    }
}
