//! One ssh session: authorize the request, then run git or a key command.
//!
//! git runs as a child in its own process group, sharing our standard streams, so nothing is
//! copied in between. Meanwhile we watch standard output: when the client goes away, sshd
//! closes its end, and we stop the whole group (git, the pre-receive hook, its docker build
//! and helm) instead of letting an orphaned build run on.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use codebuilder_apps::{AppError, AppStore, Level, Refusal, Role};
use codebuilder_core::settings::AppCreators;
use codebuilder_core::{AppName, Fingerprint, Home, KeyName, Settings};
use codebuilder_keys::{access, commands, KeyRecord, KeyStore};
use codebuilder_ops::Need;
use codebuilder_process::group::Group;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::repo::{ensure_repo, hook_script, RepoUse, BUILD_BINARY};
use crate::request::{parse_request, Request};

/// Runs the app commands (`builds APP`, ...).
const OPS_BINARY: &str = "codebuilder-ops";

/// How long the process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Serves one session for the key named `user` whose fingerprint is `fingerprint` (both
/// from the forced command that codebuilder-keys gave sshd for the key the client proved).
pub fn serve(
    home: &Home,
    user: &str,
    fingerprint: &str,
    command: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let user = KeyName::parse(user)?;
    let fingerprint = Fingerprint::parse(fingerprint)?;
    let store = KeyStore::new(home).with_config_keys(settings.config_keys.clone());
    let record = store
        .by_name(&user)?
        .with_context(|| format!("key {user} has been removed"))?;
    // The name is only a label: the key that authenticated is the fingerprint.
    if record.fingerprint != fingerprint.as_str() {
        bail!("key {user} is no longer the key this session authenticated with ({fingerprint}): reconnect, or ask an admin to check 'keys:list'");
    }
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    let request = parse_request(command, &settings.namespace)?;
    tracing::info!(%user, %fingerprint, ?request, "ssh request");
    authorize_app(home, &settings, &apps, &record, &request)?;
    let require_admin = || -> anyhow::Result<()> {
        if !record.admin {
            bail!("key {user} is not an admin key: only admins can manage keys (codebuilder-keys add --admin)");
        }
        Ok(())
    };
    match request {
        Request::ReceivePack(app) => receive_pack(home, &settings, &apps, &record, &app),
        Request::CachePurge(app) => {
            let mut purge = Command::new(sibling(BUILD_BINARY)?);
            purge
                .arg("--home")
                .arg(home.root())
                .args(["cache", "purge", app.as_str()])
                .stdin(std::process::Stdio::null());
            run_supervised(purge, BUILD_BINARY)
        }
        Request::Operate { op, app, args } => {
            let mut operate = Command::new(sibling(OPS_BINARY)?);
            operate
                .arg("--home")
                .arg(home.root())
                .args([op.verb, app.as_str()])
                .args(&args)
                .env("CODEBUILDER_PUSHER", user.as_str())
                .env("CODEBUILDER_PUSHER_FINGERPRINT", fingerprint.as_str());
            run_supervised(operate, OPS_BINARY)
        }
        Request::Apps { args } => {
            let mut list = Command::new(sibling(OPS_BINARY)?);
            list.arg("--home")
                .arg(home.root())
                .arg(codebuilder_ops::operation::APPS)
                .args(&args)
                .env("CODEBUILDER_PUSHER", user.as_str())
                .env("CODEBUILDER_PUSHER_FINGERPRINT", fingerprint.as_str())
                .stdin(std::process::Stdio::null());
            run_supervised(list, OPS_BINARY)
        }
        Request::UploadPack(app) => {
            let repo = home.repo(&app);
            if !repo.is_dir() {
                bail!("app {app} does not exist: push to it first");
            }
            run_git(&["upload-pack"], &repo, home, &record)
        }
        Request::Access { app, json } => {
            access::show(&store, &apps, &app, json, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Request::AccessAdd { app, key, level } => {
            println!("{}", access::add(&store, &apps, &app, &key, level)?);
            Ok(ExitCode::SUCCESS)
        }
        Request::AccessRemove { app, key } => {
            println!("{}", access::remove(&store, &apps, &app, &key)?);
            Ok(ExitCode::SUCCESS)
        }
        Request::AppsTransfer { app, key } => {
            println!("{}", access::transfer(&store, &apps, &app, &key)?);
            Ok(ExitCode::SUCCESS)
        }
        Request::KeysAdd { name } => {
            require_admin()?;
            let added = commands::add(&store, &name, false, io::stdin())?;
            println!("{}", commands::added_message(&added));
            Ok(ExitCode::SUCCESS)
        }
        Request::KeysList { json } => {
            require_admin()?;
            commands::list(&store, json, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Request::KeysRemove { key } => {
            require_admin()?;
            let removed = commands::remove(&store, &key)?;
            println!("{}", commands::removed_message(&removed));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `git push`: the session holds the app's repository (no end of the app runs meanwhile)
/// from before the push is decided again to after git is done, then leaves it, which ends
/// the app if it holds no ref.
fn receive_pack(
    home: &Home,
    settings: &Settings,
    apps: &AppStore,
    record: &KeyRecord,
    app: &AppName,
) -> anyhow::Result<ExitCode> {
    let build = sibling(BUILD_BINARY)?;
    let using = RepoUse::enter(home, app)?;
    let pushed = push_into(home, settings, apps, record, app, &build);
    using.leave(home, settings, apps);
    pushed
}

/// Decides the push again, now that the app cannot end: it may have ended while the session
/// waited, and the push then goes to a free name, which it creates, with this key as its
/// owner, if the key may create apps. Then runs git.
fn push_into(
    home: &Home,
    settings: &Settings,
    apps: &AppStore,
    record: &KeyRecord,
    app: &AppName,
    build: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let request = Request::ReceivePack(app.clone());
    if authorize_app(home, settings, apps, record, &request)? == Decision::Create {
        match apps.create(app, record.id()?) {
            Ok(_) => tracing::info!(%app, owner = %record.name, "new app"),
            // Another first push won: this one is now decided against its owner.
            Err(AppError::Exists(_)) => {
                authorize_app(home, settings, apps, record, &request)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let repo = ensure_repo(
        home,
        app,
        &hook_script(build, home.root())?,
        &settings.deploy_branch,
    )?;
    // A pack over the limit is refused by git before anything is stored or built.
    let max_input = format!("receive.maxInputSize={}", settings.max_push_size.bytes());
    run_git(&["-c", &max_input, "receive-pack"], &repo, home, record)
}

fn sibling(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe =
        std::env::current_exe().context("cannot find where codebuilder-receive is installed")?;
    Ok(exe.with_file_name(name))
}

/// `git ARGS... REPO`: ARGS end with the service (receive-pack, upload-pack).
fn run_git(
    args: &[&str],
    repo: &std::path::Path,
    home: &Home,
    key: &KeyRecord,
) -> anyhow::Result<ExitCode> {
    let mut command = Command::new("git");
    command
        .args(args)
        .arg(repo)
        .env("CODEBUILDER_HOME", home.root())
        .env("CODEBUILDER_PUSHER", key.name.as_str())
        .env("CODEBUILDER_PUSHER_FINGERPRINT", &key.fingerprint);
    // Protocol v2 is negotiated through this variable; pass it only in the form git uses.
    match std::env::var("GIT_PROTOCOL") {
        Ok(value)
            if value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=:.".contains(&b)) =>
        {
            command.env("GIT_PROTOCOL", value);
        }
        _ => {
            command.env_remove("GIT_PROTOCOL");
        }
    }
    run_supervised(command, "git")
}

/// What the session may go on to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allowed,
    /// Allowed, and the push creates the app, with this key as its owner.
    Create,
}

/// Whether the key may do what it asked with the app the request names: the one place where
/// access to apps is decided. Admins may do everything; an app's owner everything with it;
/// a collaborator what its grant says; anyone else nothing, with the same line whether or
/// not the app exists. A push to a new name creates the app when the key may create apps.
/// An app that predates owners has no state: only admins reach it.
fn authorize_app(
    home: &Home,
    settings: &Settings,
    apps: &AppStore,
    record: &KeyRecord,
    request: &Request,
) -> anyhow::Result<Decision> {
    let Some(app) = request.app() else {
        return Ok(Decision::Allowed);
    };
    let need = match request {
        Request::UploadPack(_) => Need::Read,
        Request::ReceivePack(_) | Request::CachePurge(_) => Need::Push,
        Request::Operate { op, .. } => op.need,
        _ => Need::Manage,
    };
    let state = apps.state(app)?;
    let exists = state.is_some() || home.repo(app).is_dir();
    if !exists && reads_own_freed_builds(home, record, request)? {
        return Ok(Decision::Allowed);
    }
    let creates = !exists && matches!(request, Request::ReceivePack(_));
    if record.admin {
        return match (exists, creates) {
            (true, _) => Ok(Decision::Allowed),
            (false, true) => Ok(Decision::Create),
            (false, false) => Err(Refusal::NoSuchApp(app.clone()).into()),
        };
    }
    let (app, key) = (app.clone(), record.name.clone());
    if creates && settings.app_creators == AppCreators::All {
        return Ok(Decision::Create);
    }
    let Some(state) = state else {
        return Err(Refusal::NoAccess { app, key }.into());
    };
    let role = state.role_of(&record.id()?, &apps.declared(&app)?);
    match (role, need) {
        (Some(Role::Owner), _)
        | (Some(Role::Collaborator(Level::Push)), Need::Read | Need::Push)
        | (Some(Role::Collaborator(Level::Read)), Need::Read) => Ok(Decision::Allowed),
        (Some(Role::Collaborator(Level::Read)), Need::Push) => {
            Err(Refusal::ReadOnly { app, key }.into())
        }
        (Some(Role::Collaborator(_)), Need::Manage) => {
            let what = match request {
                Request::Operate { op, .. } if op.verb == "apps:destroy" => "destroy it",
                _ => "change who has access to it",
            };
            Err(Refusal::NotManager { app, key, what }.into())
        }
        (None, _) => Err(Refusal::NoAccess { app, key }.into()),
    }
}

/// Whether the request reads builds (`builds`, `builds:log`) of a free name that the key
/// pushed before the app of that name ended: the key whose first push failed reads that
/// build until the name is taken again, and no one else does.
fn reads_own_freed_builds(
    home: &Home,
    record: &KeyRecord,
    request: &Request,
) -> anyhow::Result<bool> {
    let Request::Operate { op, app, .. } = request else {
        return Ok(false);
    };
    if !matches!(op.verb, "builds" | "builds:log") {
        return Ok(false);
    }
    let key = record.id()?;
    Ok(codebuilder_ops::builds::freed_of(home, app, &key.fingerprint)?.is_some())
}

/// Runs `command` in a process group of its own, stopped when the client goes away; its
/// exit status is the session's.
fn run_supervised(mut command: Command, program: &str) -> anyhow::Result<ExitCode> {
    command.process_group(0);
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {program}: is it installed?"))?;
    let status = supervise(child)?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// Waits for `child`, stopping its process group when the client hangs up or we are told to stop.
fn supervise(child: Child) -> anyhow::Result<ExitStatus> {
    let stop_requested = codebuilder_core::main_support::stop_flag()?;
    let id = Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?);
    let group = Group::new(id, vec![child]);
    let statuses = loop {
        if let Some(statuses) = group.wait_timeout(WATCH_INTERVAL) {
            break statuses;
        }
        if stop_requested.load(Ordering::Relaxed) || client_gone() {
            // Stop first, and write nothing on the way: the client's end is gone.
            let statuses = group.stop(STOP_GRACE);
            tracing::debug!("client disconnected: stopped git and the build");
            break statuses;
        }
    };
    let status = statuses
        .into_iter()
        .next()
        .context("git was not waited for")?;
    Ok(status?)
}

/// True once the reader of our standard output (sshd) has closed it.
fn client_gone() -> bool {
    let stdout = io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        Err(_) => false,
    }
}
