//! An app's git repository (`HOME/repos/APP.git`), as the state the commands ask about.

use std::path::Path;
use std::process::Command;

/// Whether the repository `repo` has the branch (in the hook: before this push).
pub fn has_branch(repo: &Path, branch: &str) -> bool {
    let mut rev_parse = Command::new("git");
    rev_parse.arg("--git-dir").arg(repo).args([
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("refs/heads/{branch}"),
    ]);
    codebuilder_process::run(rev_parse, codebuilder_process::QUICK).is_ok_and(|out| out.success())
}
