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
use codebuilder_core::{AppName, Home, KeyName, Settings};
use codebuilder_keys::{commands, KeyRecord, KeyStore};
use codebuilder_process::group::Group;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::repo::{ensure_repo, hook_script, RepoUse, BUILD_BINARY};
use crate::request::{parse_request, Request};

/// How long the process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Serves one session for the key named `user`.
pub fn serve(home: &Home, user: &str, command: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let user = KeyName::parse(user)?;
    let store = KeyStore::new(home).with_config_keys(settings.config_keys.clone());
    let record = store
        .by_name(&user)?
        .with_context(|| format!("key {user} has been removed"))?;
    let request = parse_request(command, &settings.namespace)?;
    tracing::info!(%user, ?request, "ssh request");
    if let Some(app) = request.app() {
        authorize_app(&record, app)?;
    }
    let require_admin = || -> anyhow::Result<()> {
        if !record.admin {
            bail!("key {user} is not an admin key: only admins can manage keys (codebuilder-keys add --admin)");
        }
        Ok(())
    };
    match request {
        Request::ReceivePack(app) => {
            let build = sibling(BUILD_BINARY)?;
            let using = RepoUse::enter(home, &app)?;
            let repo = ensure_repo(
                home,
                &app,
                &hook_script(&build, home.root())?,
                &settings.deploy_branch,
            )?;
            // A pack over the limit is refused by git before anything is stored or built.
            let max_input = format!("receive.maxInputSize={}", settings.max_push_size.bytes());
            let code = run_git(&["-c", &max_input, "receive-pack"], &repo, home, &user);
            using.leave();
            code
        }
        Request::CachePurge(app) => {
            let mut purge = Command::new(sibling(BUILD_BINARY)?);
            purge
                .arg("--home")
                .arg(home.root())
                .args(["cache", "purge", app.as_str()])
                .stdin(std::process::Stdio::null());
            run_supervised(purge, BUILD_BINARY)
        }
        Request::UploadPack(app) => {
            let repo = home.repo(&app);
            if !repo.is_dir() {
                bail!("app {app} does not exist: push to it first");
            }
            run_git(&["upload-pack"], &repo, home, &user)
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
    user: &KeyName,
) -> anyhow::Result<ExitCode> {
    let mut command = Command::new("git");
    command
        .args(args)
        .arg(repo)
        .env("CODEBUILDER_HOME", home.root())
        .env("CODEBUILDER_PUSHER", user.as_str());
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

/// Whether the key may act on `app` (push, fetch, purge its cache): the one place where
/// access to apps is decided. Every key reaches every app; admin rights are for keys.
fn authorize_app(_record: &KeyRecord, _app: &AppName) -> anyhow::Result<()> {
    Ok(())
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
