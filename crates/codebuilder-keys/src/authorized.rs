//! The one line sshd gets back from `AuthorizedKeysCommand`.

use std::path::Path;

use anyhow::Context;

use codebuilder_core::sshd_quoting::quotable_path;

use crate::keytext::PublicKeyEntry;
use crate::record::KeyRecord;
use crate::store::KeyStore;

/// Name of the forced command, installed beside `codebuilder-keys`.
pub const RECEIVE_BINARY: &str = "codebuilder-receive";

/// Answers sshd's `AuthorizedKeysCommand ... %u %t %k`: the line for a known key offered for
/// the configured user, or `None` (print nothing) for anything else.
pub fn authorized_keys(
    store: &KeyStore,
    ssh_user: &str,
    user: &str,
    key_type: &str,
    key_data: &str,
) -> anyhow::Result<Option<String>> {
    if user != ssh_user {
        return Ok(None);
    }
    let key = PublicKeyEntry::parse_parts(key_type, key_data)
        .context("sshd offered a key that cannot be used")?;
    let Some(record) = store.lookup(&key)? else {
        // Says (in sshd's log) why a declared key whose name is taken does not get in.
        store.conflicts()?;
        return Ok(None);
    };
    let dir = std::env::current_exe()
        .context("cannot find where codebuilder-keys is installed")?
        .parent()
        .map(Path::to_path_buf)
        .context("codebuilder-keys has no parent directory")?;
    forced_command_line(&record, &dir.join(RECEIVE_BINARY), store.home().root()).map(Some)
}

/// `restrict,command="RECEIVE --home HOME --user NAME --fingerprint SHA256:..." TYPE KEY`. The
/// fingerprint is the session's identity; the name is checked against it. Every part is
/// checked so that nothing can leave the quotes: the name and the fingerprint by their
/// patterns, the paths by a strict character set, and the key by parsing it again.
pub fn forced_command_line(
    record: &KeyRecord,
    receive: &Path,
    home: &Path,
) -> anyhow::Result<String> {
    let receive = quotable_path(receive)?;
    let home = quotable_path(home)?;
    let key = record
        .public_key()
        .with_context(|| format!("stored key {} is damaged", record.name))?;
    let fingerprint = key.fingerprint();
    Ok(format!(
        "restrict,command=\"{receive} --home {home} --user {name} --fingerprint {fingerprint}\" {key_type} {data}",
        name = record.name,
        key_type = key.key_type(),
        data = key.base64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebuilder_core::{Fingerprint, KeyName};

    fn record() -> KeyRecord {
        KeyRecord {
            name: KeyName::parse("alice").unwrap(),
            fingerprint: Fingerprint::parse("SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ")
                .unwrap(),
            key_type: "ssh-ed25519".into(),
            key: "AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/".into(),
            admin: false,
            added_at: 0,
            source: Default::default(),
        }
    }

    #[test]
    fn line_format() {
        let line = forced_command_line(
            &record(),
            Path::new("/usr/local/bin/codebuilder-receive"),
            Path::new("/var/lib/codebuilder"),
        )
        .unwrap();
        assert_eq!(
            line,
            "restrict,command=\"/usr/local/bin/codebuilder-receive --home /var/lib/codebuilder --user alice --fingerprint SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/"
        );
    }

    #[test]
    fn hostile_paths_and_records_are_refused() {
        for home in [
            "relative", "/a b", "/a\"b", "/a\nb", "/a;b", "/a$b", "/a\\b",
        ] {
            assert!(
                forced_command_line(&record(), Path::new("/bin/r"), Path::new(home)).is_err(),
                "{home:?}"
            );
        }
        let mut damaged = record();
        damaged.key = "AAAA\" command=\"sh".into();
        assert!(forced_command_line(&damaged, Path::new("/bin/r"), Path::new("/h")).is_err());
        damaged = record();
        damaged.key_type = "ssh-ed25519\" x".into();
        assert!(forced_command_line(&damaged, Path::new("/bin/r"), Path::new("/h")).is_err());
        let json = r#"{"name":"a\" b","fingerprint":"","type":"ssh-ed25519","key":"x","admin":false,"added_at":0}"#;
        assert!(serde_json::from_str::<KeyRecord>(json).is_err());
    }
}
