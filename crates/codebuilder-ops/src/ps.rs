//! Processes: `ps APP`, `ps:scale APP web=2 worker=1`, `logs APP`, `run APP -- CMD`.
//! The cluster is read and changed as the app's ServiceAccount (codebuilder-deploy); the
//! wanted scale is kept in the app's state (codebuilder-apps `formation`), which every deploy
//! applies.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use codebuilder_apps::formation::{Formation, ProcessType};
use codebuilder_apps::lock::AppLock;
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_deploy::job::{JobKind, OneOff};
use codebuilder_deploy::ps::{AppPods, Process};
use codebuilder_deploy::quota::QUOTA;
use codebuilder_process::{Output, StepContext};

/// The longest a one-off process runs (Heroku's one-off dynos get a day).
const RUN_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `logs -f` follows.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `logs` without `-f` reads.
const LOGS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest command line of `run`.
const MAX_COMMAND: usize = 4096;

/// The processes of a deployed app, or why there are none.
fn deployed(settings: &Settings, app: &AppName) -> anyhow::Result<Vec<Process>> {
    if settings.deploy == DeployMode::None {
        bail!("{app} has no processes here: codebuilder does not deploy (CODEBUILDER_DEPLOY=none)");
    }
    let processes = AppPods { settings, app }.processes()?;
    if processes.is_empty() {
        bail!("{app} has no running processes: push it first (git push)");
    }
    Ok(processes)
}

/// `ps APP [--json]`: each process type, its desired and ready pods, and each pod's state.
pub fn ps(
    settings: &Settings,
    app: &AppName,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let processes = deployed(settings, app)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&processes)?)?;
        return Ok(());
    }
    for process in &processes {
        writeln!(
            out,
            "=== {}: {} desired, {} ready",
            process.kind, process.desired, process.ready
        )?;
        for pod in &process.pods {
            writeln!(
                out,
                "{}  {}  restarts {}",
                pod.name, pod.state, pod.restarts
            )?;
        }
    }
    Ok(())
}

/// `ps:scale APP TYPE=COUNT...`: checked against the release's process types and the app's
/// quota of pods, stored for every later deploy, and applied at once, under the app's lock.
pub fn scale(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    wanted: &[(ProcessType, u32)],
    cancel: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let output = Output::new(Box::new(std::io::stderr()));
    let _lock = AppLock::acquire(home, app, &output, cancel, || None)?;
    let processes = deployed(settings, app)?;
    let find = |kind: &ProcessType| processes.iter().find(|p| p.kind == kind.as_str());
    for (kind, _) in wanted {
        if find(kind).is_none() {
            let known: Vec<&str> = processes.iter().map(|p| p.kind.as_str()).collect();
            bail!(
                "{app} has no process type {kind}: scale one of {}",
                known.join(", ")
            );
        }
    }
    if let Some(quota) = &settings.app_quota {
        let total: u64 = processes
            .iter()
            .map(|p| {
                wanted
                    .iter()
                    .find(|(kind, _)| kind.as_str() == p.kind)
                    .map_or(p.desired, |(_, count)| u64::from(*count))
            })
            .sum();
        if total > quota.pods {
            bail!(
                "{app} would run {total} pods, over its quota of {} (resourcequota/{QUOTA}, CODEBUILDER_APP_QUOTA): scale to fewer, or have the operator raise CODEBUILDER_APP_QUOTA",
                quota.pods
            );
        }
    }
    let mut formation = Formation::load(home, app)?;
    for (kind, count) in wanted {
        formation.set(kind, *count);
    }
    formation.save(home, app)?;
    let pods = AppPods { settings, app };
    for (kind, count) in wanted {
        if let Some(process) = find(kind) {
            pods.scale(process, *count)?;
            writeln!(
                out,
                "Scaled {app} {kind} to {count} (was {})",
                process.desired
            )?;
        }
    }
    Ok(())
}

fn streaming<'a>(output: &'a Output, cancel: &Arc<AtomicBool>) -> StepContext<'a> {
    StepContext {
        output,
        cancel: Arc::clone(cancel),
        // Never a progress line in the middle of a program's own output.
        heartbeat: Duration::MAX,
        show: Output::detail,
    }
}

/// `logs APP [-n N] [-t|-f] [--process TYPE]`: the last `lines` of each pod's log, each line
/// naming its pod; following (`-t`, `-f`), until the client goes away.
pub fn logs(
    settings: &Settings,
    app: &AppName,
    process: Option<&ProcessType>,
    lines: u32,
    follow: bool,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let pods = AppPods { settings, app };
    let processes = deployed(settings, app)?;
    if let Some(kind) = process {
        if !processes.iter().any(|p| p.kind == kind.as_str()) {
            let known: Vec<&str> = processes.iter().map(|p| p.kind.as_str()).collect();
            bail!(
                "{app} has no process type {kind}: name one of {}",
                known.join(", ")
            );
        }
    }
    let command = pods.logs(process.map(ProcessType::as_str), lines, follow);
    let output = Output::new(Box::new(std::io::stdout()));
    let step = streaming(&output, cancel);
    let limit = if follow { FOLLOW_TIMEOUT } else { LOGS_TIMEOUT };
    let mut stdout = std::io::stdout();
    let shown = step.run_lines(vec![command], limit, "reading logs", None, &mut |line| {
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
        true
    });
    match shown {
        Ok(()) | Err(codebuilder_process::StepError::Cancelled) => Ok(()),
        Err(codebuilder_process::StepError::TimedOut(_)) if follow => Ok(()),
        Err(e) => bail!("cannot read the logs of {app} ({e}): see the lines above"),
    }
}

/// `run APP -- CMD ARGS...`: a one-off process with the current release's image and config;
/// its exit status is returned.
pub fn run(
    settings: &Settings,
    app: &AppName,
    command: &[String],
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<i32> {
    let line = command.join(" ");
    if line.len() > MAX_COMMAND || line.chars().any(char::is_control) {
        bail!(
            "the command is longer than {MAX_COMMAND} bytes or has control characters: shorten it"
        );
    }
    let processes = deployed(settings, app)?;
    let Some(web) = processes
        .iter()
        .find(|p| p.kind == "web" && !p.image.is_empty())
    else {
        bail!("{app} has no web process to take the image from: push it first (git push)");
    };
    let output = Output::new(Box::new(std::io::stdout()));
    let step = streaming(&output, cancel);
    let mut stdout = std::io::stdout();
    OneOff {
        settings,
        app,
        kind: JobKind::Run,
        image: &web.image,
        command_line: &line,
        config: None,
        timeout: RUN_TIMEOUT,
        user: web.user,
    }
    .run(&step, &mut |line| {
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
        true
    })
}
