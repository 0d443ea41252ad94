//! The key commands, shared by the `codebuilder-keys` CLI and the admin `keys:*` commands over ssh.

use std::io::{Read, Write};

use anyhow::{bail, Context};
use codebuilder_core::KeyName;

use crate::keytext::PublicKeyEntry;
use crate::record::{KeyRecord, KeySource};
use crate::store::{KeySelector, KeyStore};

/// A public key line is well under this; anything larger is not a key.
const MAX_KEY_TEXT: u64 = 16 * 1024;

/// Reads one public key from `input` and stores it as `name`.
pub fn add(
    store: &KeyStore,
    name: &str,
    admin: bool,
    input: impl Read,
) -> anyhow::Result<KeyRecord> {
    let name = KeyName::parse(name)?;
    let mut text = String::new();
    input
        .take(MAX_KEY_TEXT + 1)
        .read_to_string(&mut text)
        .context("the key is not UTF-8 text")?;
    if text.len() as u64 > MAX_KEY_TEXT {
        bail!("the input is larger than {MAX_KEY_TEXT} bytes: it is not one public key");
    }
    let key = PublicKeyEntry::parse_text(&text)?;
    Ok(store.add(name, &key, admin)?)
}

pub fn remove(store: &KeyStore, selector: &str) -> anyhow::Result<KeyRecord> {
    Ok(store.remove(&KeySelector::parse(selector)?)?)
}

pub fn list(store: &KeyStore, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let records = store.list()?;
    let conflicts = store.conflicts()?;
    let source = |r: &KeyRecord| match &r.source {
        KeySource::Store => "store".to_string(),
        KeySource::Config(p) => p.display().to_string(),
    };
    if json {
        let served = records.iter().map(|r| (r, None));
        let skipped = conflicts.iter().map(|c| (&c.record, Some(c.reason_text())));
        let items: Vec<_> = served
            .chain(skipped)
            .map(|(r, skipped)| {
                serde_json::json!({
                    "name": r.name, "fingerprint": r.fingerprint, "type": r.key_type,
                    "admin": r.admin, "added_at": r.added_at_rfc3339(),
                    "source": source(r), "skipped": skipped,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &items)?;
        writeln!(out)?;
        return Ok(());
    }
    if records.is_empty() {
        writeln!(
            out,
            "no keys: add one with 'codebuilder-keys add NAME < key.pub'"
        )?;
    }
    let width = records
        .iter()
        .map(|r| r.name.as_str().len())
        .max()
        .unwrap_or(0);
    for r in &records {
        let role = if r.admin { "admin" } else { "user" };
        writeln!(
            out,
            "{:width$}  {}  {:<11}  {:<5}  {}",
            r.name,
            r.fingerprint,
            r.key_type,
            role,
            r.added_at_rfc3339()
        )?;
    }
    for c in &conflicts {
        writeln!(
            out,
            "skipped: {} (in {})",
            c.reason_text(),
            source(&c.record)
        )?;
    }
    Ok(())
}

/// What `add` reports on success.
pub fn added_message(record: &KeyRecord) -> String {
    let role = if record.admin { "admin key" } else { "key" };
    format!(
        "added {role} {} ({} {})",
        record.name, record.key_type, record.fingerprint
    )
}

pub fn removed_message(record: &KeyRecord) -> String {
    format!("removed key {} ({})", record.name, record.fingerprint)
}
