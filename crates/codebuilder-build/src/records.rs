//! A record of every build: who pushed what, when, how it ended, and its full log. Kept in
//! the home as `builds/APP/NNNNNN.json` and `.log`, the last N per app.

use std::fs::{self, File};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::{AppName, Fingerprint, Home};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildResult {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The build's process died without recording an end (found by the next build).
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub number: u64,
    pub app: String,
    pub rev: String,
    /// Name of the key that pushed, or [`REBUILT_BY`] and who ran `rebuild`.
    pub pusher: String,
    /// Fingerprint of the key that pushed or rebuilt over ssh (none for an admin's rebuild at
    /// `kubectl exec`, or a record from before).
    #[serde(default)]
    pub pusher_fingerprint: Option<Fingerprint>,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    pub result: BuildResult,
    pub error: Option<String>,
    pub image: Option<String>,
    pub helm_revision: Option<u64>,
    /// File name of the log beside the record.
    pub log: String,
}

/// How the pusher of a rebuild's record begins: `rebuild by alice`, `rebuild by admin`.
pub const REBUILT_BY: &str = "rebuild by ";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Records {
    home: Home,
    dir: PathBuf,
}

impl Records {
    pub fn new(home: &Home, app: &AppName) -> Self {
        Self {
            home: home.clone(),
            dir: home.builds_dir(app),
        }
    }

    /// Every record, oldest first.
    pub fn list(&self) -> anyhow::Result<Vec<BuildRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.dir.display())),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path)?;
                match serde_json::from_slice::<BuildRecord>(&bytes) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        tracing::warn!("skipping unreadable build record {}: {e}", path.display())
                    }
                }
            }
        }
        records.sort_by_key(|r| r.number);
        Ok(records)
    }

    /// The newest record still marked running: the build that holds the app's lock.
    /// `build 3 of abc1234 by alice`: the running build, for whoever waits for the app's lock.
    pub fn describe_running(&self) -> Option<String> {
        self.running().map(|r| {
            format!(
                "build {} of {} by {}",
                r.number,
                &r.rev[..7.min(r.rev.len())],
                r.pusher
            )
        })
    }

    pub fn running(&self) -> Option<BuildRecord> {
        self.list()
            .ok()?
            .into_iter()
            .rev()
            .find(|r| r.result == BuildResult::Running)
    }

    /// Starts the next record (call with the app's build lock held). Earlier records still
    /// marked running belong to builds that died: they are marked interrupted.
    pub fn start(
        &self,
        rev: &str,
        pusher: &str,
        pusher_fingerprint: Option<&Fingerprint>,
    ) -> anyhow::Result<(BuildRecord, File)> {
        self.home
            .ensure_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let existing = self.list()?;
        for stale in existing.iter().filter(|r| r.result == BuildResult::Running) {
            let mut stale = stale.clone();
            stale.result = BuildResult::Interrupted;
            self.save(&stale)?;
        }
        let number = existing.last().map_or(1, |r| r.number + 1);
        let log = format!("{number:06}.log");
        let record = BuildRecord {
            number,
            app: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            rev: rev.to_owned(),
            pusher: pusher.to_owned(),
            pusher_fingerprint: pusher_fingerprint.cloned(),
            started_at: now(),
            finished_at: None,
            result: BuildResult::Running,
            error: None,
            image: None,
            helm_revision: None,
            log: log.clone(),
        };
        self.save(&record)?;
        let file = File::create(self.dir.join(&log)).context("cannot create the build log")?;
        Ok((record, file))
    }

    pub fn save(&self, record: &BuildRecord) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{:06}.json", record.number));
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&path, &json, 0o644)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Deletes all but the newest `keep` records and their logs.
    pub fn prune(&self, keep: usize) -> anyhow::Result<()> {
        let records = self.list()?;
        let excess = records.len().saturating_sub(keep);
        for record in &records[..excess] {
            let _ = fs::remove_file(self.dir.join(format!("{:06}.json", record.number)));
            let _ = fs::remove_file(self.dir.join(&record.log));
        }
        Ok(())
    }
}
