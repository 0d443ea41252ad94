//! The app commands over a real sshd (`ssh git@HOST VERB APP ...`): run by codebuilder-ops
//! once the key's access to the app is checked, with one `error:` line for anything wrong.

use codebuilder_tests::*;

#[test]
fn builds_lists_an_apps_builds_for_those_with_access_only() {
    let server = Server::start_with(&[("CODEBUILDER_DEPLOY", "none")]);
    let owner = server.add_user("owner", false);
    let stranger = server.add_user("stranger", false);
    // A branch that does not deploy creates the app without a build.
    let work = repo_with("feature", &[("README", b"hello\n".to_vec())]);
    let out = owner.git(work.path(), &["push", &owner.url("listed"), "feature"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = owner.ssh(&["builds", "listed", "--json"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");

    let no_access = |app: &str| {
        format!("error: app {app} does not exist or key stranger has no access to it: ask its owner or an admin to run 'access:add {app} stranger'")
    };
    assert_eq!(
        refused(&stranger.ssh(&["builds", "listed"], b"")),
        no_access("listed")
    );
    assert_eq!(
        refused(&stranger.ssh(&["builds", "missing"], b"")),
        no_access("missing")
    );
    assert_eq!(
        refused(&owner.ssh(&["builds"], b"")),
        "error: builds needs the app it acts on: usage: builds APP [--json]"
    );
    assert_eq!(
        refused(&owner.ssh(&["builds", "listed", "--yaml"], b"")),
        "error: builds does not take --yaml: usage: builds APP [--json]"
    );
}
