//! The pre-receive hook: which pushed refs are accepted, and which one deploys.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::{AppName, ObjectId, Settings};

/// More ref updates than this in one push is not a deploy.
const MAX_UPDATES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: ObjectId,
    pub new: ObjectId,
    pub name: String,
}

impl RefUpdate {
    pub fn is_delete(&self) -> bool {
        self.new.is_zero()
    }
}

/// Reads git's `OLD NEW REF` lines.
pub fn read_updates(input: impl BufRead) -> anyhow::Result<Vec<RefUpdate>> {
    let mut updates = Vec::new();
    for line in input.lines() {
        let line = line.context("cannot read the pushed refs")?;
        if updates.len() == MAX_UPDATES {
            bail!("more than {MAX_UPDATES} refs in one push: push fewer at a time");
        }
        let update = parse_update(&line).with_context(|| {
            format!(
                "unexpected ref update line from git: {}",
                codebuilder_core::names::printable(&line)
            )
        })?;
        updates.push(update);
    }
    Ok(updates)
}

/// One `OLD NEW REF` line, its ids as git prints them.
fn parse_update(line: &str) -> Option<RefUpdate> {
    let mut fields = line.split(' ');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(old), Some(new), Some(name), None) if !name.is_empty() => Some(RefUpdate {
            old: ObjectId::parse(old).ok()?,
            new: ObjectId::parse(new).ok()?,
            name: name.into(),
        }),
        _ => None,
    }
}

/// What the hook does with a push.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The update of the deploy branch to build and deploy, if the push has one.
    pub deploy: Option<RefUpdate>,
    /// Branch the deploy happens from (for messages).
    pub deploy_branch: String,
    /// Other refs that are stored without a build.
    pub stored: Vec<String>,
    /// Refs the push deletes.
    pub deleted: Vec<String>,
}

/// Applies the ref rules: only branches and tags; the deploy branch cannot be deleted; the
/// deploy branch is `settings.deploy_branch`, or `master` for a repo that uses master and
/// not the default `main`.
pub fn plan(
    updates: &[RefUpdate],
    settings: &Settings,
    existing_branch: impl Fn(&str) -> bool,
) -> anyhow::Result<Plan> {
    for update in updates {
        let name = codebuilder_core::names::printable(&update.name);
        let short = update
            .name
            .strip_prefix("refs/heads/")
            .or_else(|| update.name.strip_prefix("refs/tags/"));
        match short {
            None => bail!("{name} cannot be pushed: only branches and tags are accepted"),
            Some("HEAD") => bail!(
                "{name} cannot be pushed: git reads HEAD as the checked-out commit, not as a branch or tag; rename it"
            ),
            Some(_) => {}
        }
    }
    let pushed = |branch: &str| {
        updates
            .iter()
            .any(|u| u.name == format!("refs/heads/{branch}") && !u.is_delete())
    };
    let configured = settings.deploy_branch.as_str();
    let deploy_branch = if configured == "main"
        && !existing_branch("main")
        && !pushed("main")
        && (pushed("master") || existing_branch("master"))
    {
        "master"
    } else {
        configured
    };
    let deploy_ref = format!("refs/heads/{deploy_branch}");
    let mut plan = Plan {
        deploy: None,
        deploy_branch: deploy_branch.to_owned(),
        stored: Vec::new(),
        deleted: Vec::new(),
    };
    for update in updates {
        if update.name == deploy_ref {
            if update.is_delete() {
                bail!(
                    "the deploy branch {deploy_branch} cannot be deleted: it is what is deployed"
                );
            }
            plan.deploy = Some(update.clone());
        } else if update.is_delete() {
            plan.deleted.push(update.name.clone());
        } else {
            plan.stored.push(update.name.clone());
        }
    }
    Ok(plan)
}

/// The app a hook runs for: git runs hooks inside the bare repository `APP.git`.
pub fn app_of_repo(repo: &Path, own_namespace: &str) -> anyhow::Result<AppName> {
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".git"));
    let name =
        name.with_context(|| format!("{} is not an app repository (APP.git)", repo.display()))?;
    Ok(AppName::parse(name, own_namespace)?)
}

/// Refuses a push whose history git will not store: one from a shallow clone, whose oldest
/// commits name parents that were never sent. git keeps such objects in the push's quarantine
/// and only refuses the refs after this hook ("shallow update not allowed"), so without this
/// check the hook would build and deploy what git then drops.
pub fn check_whole_history(repo: &Path, updates: &[RefUpdate]) -> anyhow::Result<()> {
    for update in updates.iter().filter(|u| !u.is_delete()) {
        let mut rev_list = Command::new("git");
        rev_list.arg("--git-dir").arg(repo).args([
            "rev-list",
            "--quiet",
            update.new.as_str(),
            "--not",
            "--all",
        ]);
        if !codebuilder_process::run(rev_list, codebuilder_process::QUICK)?.success() {
            bail!(
                "{} was pushed from a shallow clone, and git here keeps only whole histories: run 'git fetch --unshallow', then push again",
                codebuilder_core::names::printable(&update.name)
            );
        }
    }
    Ok(())
}

/// Points HEAD at `branch`, so that clones of an app that deploys from it check it out.
pub fn point_head_at(repo: &Path, branch: &str) -> anyhow::Result<()> {
    let mut symbolic_ref = Command::new("git");
    symbolic_ref
        .arg("--git-dir")
        .arg(repo)
        .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])
        // git forbids ref updates from a push's quarantine; HEAD names no object of it.
        .env_remove("GIT_QUARANTINE_PATH");
    let done = codebuilder_process::run(symbolic_ref, codebuilder_process::QUICK)?;
    if !done.success() {
        bail!("cannot point HEAD at {branch}: {}", done.stderr_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn update(old: &str, new: &str, name: &str) -> RefUpdate {
        RefUpdate {
            old: ObjectId::parse(old).unwrap(),
            new: ObjectId::parse(new).unwrap(),
            name: name.into(),
        }
    }

    fn settings() -> Settings {
        Settings::from_vars(&HashMap::new()).unwrap()
    }

    #[test]
    fn reads_lines() {
        let input = format!("{Z} {A} refs/heads/main\n{A} {B} refs/tags/v1\n");
        assert_eq!(
            read_updates(input.as_bytes()).unwrap(),
            vec![
                update(Z, A, "refs/heads/main"),
                update(A, B, "refs/tags/v1")
            ]
        );
        for bad in [
            "x y z",
            &format!("{A} {B}"),
            &format!("{A} {B} refs/heads/a extra"),
            &format!("{} {B} r", "G".repeat(40)),
        ] {
            assert!(read_updates(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn deploy_branch_rules() {
        let s = settings();
        let none = |_: &str| false;
        let p = plan(
            &[
                update(Z, A, "refs/heads/main"),
                update(Z, B, "refs/heads/feature"),
            ],
            &s,
            none,
        )
        .unwrap();
        assert_eq!(p.deploy, Some(update(Z, A, "refs/heads/main")));
        assert_eq!(p.stored, vec!["refs/heads/feature".to_string()]);
        // A master-only repo deploys from master.
        let p = plan(&[update(Z, A, "refs/heads/master")], &s, none).unwrap();
        assert_eq!(p.deploy_branch, "master");
        assert!(p.deploy.is_some());
        // Once main exists, master is just a branch.
        let p = plan(&[update(Z, A, "refs/heads/master")], &s, |b| b == "main").unwrap();
        assert_eq!(p.deploy, None);
        assert!(plan(&[update(A, Z, "refs/heads/main")], &s, |b| b == "main").is_err());
        assert!(
            plan(&[update(A, Z, "refs/heads/feature")], &s, |b| b == "main")
                .unwrap()
                .deploy
                .is_none()
        );
        for name in [
            "refs/notes/x",
            "refs/pull/1/head",
            "HEAD",
            "refs/remotes/origin/main",
            "refs/heads/HEAD",
            "refs/tags/HEAD",
        ] {
            assert!(plan(&[update(Z, A, name)], &s, none).is_err(), "{name}");
        }
        let p = plan(
            &[
                update(A, Z, "refs/heads/feature"),
                update(Z, B, "refs/tags/v1"),
            ],
            &s,
            |b| b == "main",
        )
        .unwrap();
        assert_eq!(p.deleted, vec!["refs/heads/feature".to_string()]);
        assert_eq!(p.stored, vec!["refs/tags/v1".to_string()]);
    }
}
