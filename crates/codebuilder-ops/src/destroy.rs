//! `apps:destroy APP --confirm APP`: the end of an app (`end`), on its owner's or an admin's
//! word, with no push or build of it running.

use anyhow::bail;
use codebuilder_apps::{AppStore, Refusal, Role};
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_process::Output;

use crate::apps::Viewer;
use crate::end::{end, Ending, NoPush};

/// The one line that says how to confirm.
fn confirm_line(app: &AppName) -> String {
    format!("apps:destroy removes {app}, its repository, builds, images and deployment for good: to confirm, run 'apps:destroy {app} --confirm {app}'")
}

/// Destroys `app` once `confirmed` (`--confirm` named it), if `viewer` may.
pub fn destroy(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    confirmed: bool,
    viewer: &Viewer,
    output: &Output,
) -> anyhow::Result<()> {
    if !confirmed {
        bail!("{}", confirm_line(app));
    }
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    // Decided before the locks, so that a name that is no app gets no lock files, and again
    // once they are held: the app may have ended, or been pushed anew by another key, while
    // this waited.
    may_destroy(&apps, app, viewer)?;
    let cancel = codebuilder_core::main_support::stop_flag()?;
    let Some(no_push) = NoPush::take(home, app)? else {
        bail!("a push to {app} is in progress: run 'apps:destroy {app} --confirm {app}' again when it has ended");
    };
    let hold = no_push.hold(home, app, output, &cancel)?;
    may_destroy(&apps, app, viewer)?;
    end(home, settings, app, Ending::Destroyed, &hold, output)?;
    output.step(&format!("Destroyed {app}"));
    Ok(())
}

/// Whether `viewer` may destroy `app`, as codebuilder-receive decides it: admins and its
/// owner may, when it exists.
fn may_destroy(apps: &AppStore, app: &AppName, viewer: &Viewer) -> anyhow::Result<()> {
    let exists = apps.exists(app)?;
    let Some(key) = &viewer.key else {
        // An admin at `kubectl exec`.
        return Ok(apps.existing(app)?);
    };
    let (app, name) = (app.clone(), key.name.clone());
    let refusal = match viewer.role_of(apps, &app)? {
        _ if viewer.admin && exists => return Ok(()),
        _ if viewer.admin => Refusal::NoSuchApp(app),
        Some(Role::Owner) => return Ok(()),
        Some(Role::Collaborator(_)) => Refusal::NotManager {
            app,
            key: name,
            what: "destroy it",
        },
        None => Refusal::NoAccess { app, key: name },
    };
    Err(refusal.into())
}
