//! One ssh session: authorize the request, then run git or a key command.
//!
//! git runs as a child in its own process group, sharing our standard streams, so nothing is
//! copied in between. Meanwhile we watch standard output: when the client goes away, sshd
//! closes its end, and we stop the whole group (git, the pre-receive hook, its docker build
//! and helm) instead of letting an orphaned build run on.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use codebuilder_apps::{AppError, AppStore, Level, Refusal, Role};
use codebuilder_commands::{parse_request, Command, Need, Request, REQUEST_ENV};
use codebuilder_core::settings::AppCreators;
use codebuilder_core::{AppName, Fingerprint, Home, KeyName, Settings};
use codebuilder_keys::{KeyRecord, KeyStore};
use codebuilder_process::group::Group;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::repo::{ensure_repo, hook_script, RepoUse, BUILD_BINARY};

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
    if record.fingerprint != fingerprint {
        bail!("key {user} is no longer the key this session authenticated with ({fingerprint}): reconnect, or ask an admin to check 'keys:list'");
    }
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    let command = parse_request(command, &settings.namespace)?;
    tracing::info!(%user, %fingerprint, ?command, "ssh request");
    let decision = authorize(home, &settings, &apps, &record, &command)?;
    match command {
        Command::ReceivePack { app } => receive_pack(home, &settings, &apps, &record, &app),
        Command::UploadPack { app } => {
            let repo = home.repo(&app);
            // A first push records the owner before git makes the repository: until then
            // there is nothing to clone.
            if !repo.is_dir() {
                return Err(Refusal::NoSuchApp(app).into());
            }
            run_git(&["upload-pack"], &repo, home, &record)
        }
        command => {
            // Every other command runs as the typed request, never as words to parse again;
            // the home and the settings are the ones this session was started with.
            let stdin = if command.reads_stdin() {
                Stdio::inherit()
            } else {
                Stdio::null()
            };
            let request = Request {
                command,
                read_only: decision == Decision::ReadOnly,
            };
            let mut operate = std::process::Command::new(sibling(OPS_BINARY)?);
            operate
                .env("CODEBUILDER_HOME", home.root())
                .env(REQUEST_ENV, request.to_env()?)
                .env("CODEBUILDER_PUSHER", user.as_str())
                .env("CODEBUILDER_PUSHER_FINGERPRINT", fingerprint.as_str())
                .stdin(stdin);
            run_supervised(operate, OPS_BINARY)
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
    let push = Command::ReceivePack { app: app.clone() };
    if authorize(home, settings, apps, record, &push)? == Decision::Create {
        match apps.create(app, record.id()?) {
            Ok(_) => tracing::info!(%app, owner = %record.name, "new app"),
            // Another first push won: this one is now decided against its owner.
            Err(AppError::Exists(_)) => {
                authorize(home, settings, apps, record, &push)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let repo = ensure_repo(
        home,
        app,
        &hook_script(build, home.root())?,
        settings.deploy_branch.as_str(),
    )?;
    // A pack over the limit is refused by git before anything is stored or built.
    let max_input = format!("receive.maxInputSize={}", settings.max_push_size.bytes());
    run_git(&["-c", &max_input, "receive-pack"], &repo, home, record)
}

fn sibling(name: &str) -> anyhow::Result<std::path::PathBuf> {
    codebuilder_core::main_support::sibling(name)
        .context("cannot find where codebuilder-receive is installed")
}

/// `git ARGS... REPO`: ARGS end with the service (receive-pack, upload-pack).
fn run_git(
    args: &[&str],
    repo: &std::path::Path,
    home: &Home,
    key: &KeyRecord,
) -> anyhow::Result<ExitCode> {
    let mut command = std::process::Command::new("git");
    command
        .args(args)
        .arg(repo)
        .env("CODEBUILDER_HOME", home.root())
        .env("CODEBUILDER_PUSHER", key.name.as_str())
        .env("CODEBUILDER_PUSHER_FINGERPRINT", key.fingerprint.as_str());
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
    /// Allowed, with `read` access to the app: config names, not values.
    ReadOnly,
    /// Allowed, and the push creates the app, with this key as its owner.
    Create,
}

/// Whether the key may run `command`: the one place where access is decided, from the need
/// the command table gives the verb. Admins may do everything; an app's owner everything
/// with it; a collaborator what its grant says; anyone else nothing, with the same line
/// whether or not the app exists. A push to a new name creates the app when the key may
/// create apps and the declared-access file does not keep the name for other keys. An app
/// that predates owners has no state: only admins reach it.
fn authorize(
    home: &Home,
    settings: &Settings,
    apps: &AppStore,
    record: &KeyRecord,
    command: &Command,
) -> anyhow::Result<Decision> {
    let verb = command.verb();
    let key = record.name.clone();
    if verb.need == Need::Admin && !record.admin {
        return Err(Refusal::NotAdmin(key).into());
    }
    let Some(app) = command.app() else {
        return Ok(Decision::Allowed);
    };
    let state = apps.state(app)?;
    let exists = state.is_some() || home.repo(app).is_dir();
    if !exists && reads_own_freed_builds(home, record, command)? {
        return Ok(Decision::Allowed);
    }
    let creates = !exists && matches!(command, Command::ReceivePack { .. });
    if record.admin {
        return match (exists, creates) {
            (true, _) => Ok(Decision::Allowed),
            (false, true) => Ok(Decision::Create),
            (false, false) => Err(Refusal::NoSuchApp(app.clone()).into()),
        };
    }
    let declared = apps.declared(app)?;
    let app = app.clone();
    if creates && settings.app_creators == AppCreators::All {
        // A name the declared-access file grants is kept for the keys it names.
        let kept_for_others = !declared.is_empty()
            && !declared
                .iter()
                .any(|g| g.key == key && g.level == Level::Push);
        if kept_for_others {
            return Err(Refusal::NoAccess { app, key }.into());
        }
        return Ok(Decision::Create);
    }
    let Some(state) = state else {
        return Err(Refusal::NoAccess { app, key }.into());
    };
    match (state.role_of(&record.id()?, &declared), verb.need) {
        (Some(Role::Owner), _)
        | (Some(Role::Collaborator(Level::Push)), Need::Read | Need::Push)
        | (Some(_), Need::Anyone | Need::Admin) => Ok(Decision::Allowed),
        (Some(Role::Collaborator(Level::Read)), Need::Read) => Ok(Decision::ReadOnly),
        (Some(Role::Collaborator(Level::Read)), Need::Push) => Err(Refusal::ReadOnly {
            app,
            key,
            verb: match command {
                Command::ReceivePack { .. } => "git push",
                _ => verb.name,
            },
        }
        .into()),
        (Some(Role::Collaborator(_)), Need::Manage) => {
            let what = match command {
                Command::AppsDestroy { .. } => "destroy it",
                _ => "change who has access to it",
            };
            Err(Refusal::NotManager { app, key, what }.into())
        }
        (None, _) => Err(Refusal::NoAccess { app, key }.into()),
    }
}

/// Whether the command reads builds (`builds`, `builds:log`) of a free name that the key
/// pushed before the app of that name ended: the key whose first push failed reads that
/// build until the name is taken again, and no one else does.
fn reads_own_freed_builds(
    home: &Home,
    record: &KeyRecord,
    command: &Command,
) -> anyhow::Result<bool> {
    let (Command::Builds { app, .. } | Command::BuildsLog { app, .. }) = command else {
        return Ok(false);
    };
    let key = record.id()?;
    Ok(codebuilder_ops::builds::freed_of(home, app, &key.fingerprint)?.is_some())
}

/// Runs `command` in a process group of its own, stopped when the client goes away; its
/// exit status is the session's.
fn run_supervised(mut command: std::process::Command, program: &str) -> anyhow::Result<ExitCode> {
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
