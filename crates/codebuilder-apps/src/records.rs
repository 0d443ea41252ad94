//! A record of every build: who pushed what, when, how it ended, and its full log. Kept in
//! the home as `builds/APP/NNNNNN.json` and `.log`, the last N per app. When an app ends
//! without `apps:destroy` (its first push stored no ref, or its last ref was deleted), the
//! records that name the key that pushed them are kept apart in `freed/APP/`, where that key
//! alone reads its own, until the name is taken again (`AppStore::create` wipes them).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use codebuilder_core::fsutil::{remove_tree, write_atomic};
use codebuilder_core::{Actor, AppName, Fingerprint, Home, ObjectId};
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
    pub rev: ObjectId,
    /// Who pushed, or who ran `rebuild`: stored and printed as `alice`, `rebuild by admin`.
    pub pusher: Actor,
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

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Records {
    home: Home,
    app: AppName,
    dir: PathBuf,
    /// Only the records this key pushed: those kept apart for it.
    only: Option<Fingerprint>,
}

impl Records {
    /// The records of the app `app`.
    pub fn new(home: &Home, app: &AppName) -> Self {
        Self {
            home: home.clone(),
            app: app.clone(),
            dir: home.builds_dir(app),
            only: None,
        }
    }

    /// The records of builds of `app` that `pusher` pushed, kept apart when the app ended
    /// without `apps:destroy` (read-only: nothing starts a build there).
    pub fn freed(home: &Home, app: &AppName, pusher: &Fingerprint) -> Self {
        Self {
            home: home.clone(),
            app: app.clone(),
            dir: home.freed_builds_dir(app),
            only: Some(pusher.clone()),
        }
    }

    /// Where the log of `record` is: beside it, by the plain file name the record gives;
    /// `None` when the record names anything else.
    pub fn log_path(&self, record: &BuildRecord) -> Option<PathBuf> {
        (Path::new(&record.log).file_name() == Some(record.log.as_ref()))
            .then(|| self.dir.join(&record.log))
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
        if let Some(pusher) = &self.only {
            records.retain(|r| r.pusher_fingerprint.as_ref() == Some(pusher));
        }
        records.sort_by_key(|r| r.number);
        Ok(records)
    }

    /// The newest record still marked running: the build that holds the app's lock.
    /// `build 3 of abc1234 by alice`: the running build, for whoever waits for the app's lock.
    pub fn describe_running(&self) -> Option<String> {
        self.running()
            .map(|r| format!("build {} of {} by {}", r.number, r.rev.short(), r.pusher))
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
        rev: &ObjectId,
        pusher: &Actor,
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
            app: self.app.to_string(),
            rev: rev.clone(),
            pusher: pusher.clone(),
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

    /// Keeps the records that name the key that pushed them, with their logs, apart in
    /// `freed/APP/` in place of what was kept there before; the app's own go with the app.
    /// Call it at the app's end, under its lock.
    pub fn keep_apart(&self) -> anyhow::Result<()> {
        let freed = self.home.freed_builds_dir(&self.app);
        let mut kept = Vec::new();
        for record in self.list()? {
            if let (Some(_), Some(log)) = (&record.pusher_fingerprint, self.log_path(&record)) {
                kept.push((self.dir.join(format!("{:06}.json", record.number)), log));
            }
        }
        remove_tree(&freed).with_context(|| format!("cannot remove {}", freed.display()))?;
        if kept.is_empty() {
            return Ok(());
        }
        let parent = freed.parent().context("the kept builds have a parent")?;
        self.home
            .ensure_dir(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // Made aside and renamed into place, so that no one reads half of it.
        let aside = tempfile::Builder::new()
            .prefix(&format!(".new-{}-", self.app))
            .tempdir_in(parent)?;
        for path in kept.into_iter().flat_map(|(record, log)| [record, log]) {
            if let Some(name) = path.file_name().filter(|_| path.is_file()) {
                fs::hard_link(&path, aside.path().join(name))?;
            }
        }
        fs::rename(aside.path(), &freed)
            .with_context(|| format!("cannot create {}", freed.display()))?;
        // The directory lives on as the kept records.
        let _ = aside.keep();
        self.home.give_to_owner(&freed)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(tail: char) -> Fingerprint {
        Fingerprint::parse(&format!("SHA256:{}", tail.to_string().repeat(43))).unwrap()
    }

    fn commit() -> ObjectId {
        ObjectId::parse(&"abc1234".repeat(6)[..40]).unwrap()
    }

    fn someone() -> Actor {
        Actor::Key(codebuilder_core::KeyName::parse("someone").unwrap())
    }

    #[test]
    fn records_from_before_read_their_pusher_as_an_actor() {
        let earlier = |pusher: &str| {
            format!(
                r#"{{"number": 2, "app": "web", "rev": "{}", "pusher": "{pusher}",
                "started_at": 1, "finished_at": 2, "result": "succeeded", "error": null,
                "image": null, "helm_revision": 2, "log": "000002.log"}}"#,
                commit()
            )
        };
        let alice = codebuilder_core::KeyName::parse("alice").unwrap();
        for (pusher, actor) in [
            ("alice", Actor::Key(alice.clone())),
            ("admin", Actor::Admin),
            ("unknown", Actor::Unknown),
            ("rebuild by alice", Actor::Rebuild { by: Some(alice) }),
            ("rebuild by admin", Actor::Rebuild { by: None }),
        ] {
            let record: BuildRecord = serde_json::from_str(&earlier(pusher)).unwrap();
            assert_eq!(record.pusher, actor);
            assert_eq!(record.pusher_fingerprint, None);
            // Written back (and printed by `builds --json`) as the same string.
            let written = serde_json::to_value(&record).unwrap();
            assert_eq!(written["pusher"], pusher);
        }
    }

    #[test]
    fn kept_apart_records_are_read_by_their_pusher_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let app = AppName::parse("shop", "codebuilder").unwrap();
        let records = Records::new(&home, &app);
        let (alice, bob) = (key('a'), key('b'));
        for pusher in [Some(&alice), Some(&bob), None] {
            let (mut record, mut log) = records.start(&commit(), &someone(), pusher).unwrap();
            writeln!(log, "log of build {}", record.number).unwrap();
            record.result = BuildResult::Failed;
            records.save(&record).unwrap();
        }
        records.keep_apart().unwrap();

        let kept = Records::freed(&home, &app, &alice);
        let listed = kept.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].number, 1);
        let log = kept.log_path(&listed[0]).unwrap();
        assert_eq!(fs::read_to_string(log).unwrap(), "log of build 1\n");
        let theirs = Records::freed(&home, &app, &bob).list().unwrap();
        assert_eq!(theirs.iter().map(|r| r.number).collect::<Vec<_>>(), [2]);
        // The record that names no key is not kept; nothing staged is left.
        let freed = home.freed_builds_dir(&app);
        assert_eq!(fs::read_dir(&freed).unwrap().count(), 4);
        assert_eq!(fs::read_dir(dir.path().join("freed")).unwrap().count(), 1);

        // Kept again, with nothing to keep: what was kept before goes, it is not merged.
        fs::remove_dir_all(home.builds_dir(&app)).unwrap();
        records.keep_apart().unwrap();
        assert!(!freed.exists());
        assert_eq!(fs::read_dir(dir.path().join("freed")).unwrap().count(), 0);
    }

    #[test]
    fn a_log_is_named_beside_its_record_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let app = AppName::parse("shop", "codebuilder").unwrap();
        let records = Records::new(&home, &app);
        let (mut record, _) = records.start(&commit(), &someone(), None).unwrap();
        assert_eq!(
            records.log_path(&record),
            Some(home.builds_dir(&app).join("000001.log"))
        );
        for bad in ["../x.log", "/etc/passwd", "a/b", ""] {
            record.log = bad.to_owned();
            assert_eq!(records.log_path(&record), None, "{bad}");
        }
    }
}
