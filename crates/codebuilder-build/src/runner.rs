//! Runs the tools a build needs (git, docker, helm) as a pipeline in a process group of its
//! own, streams their merged output line by line, and stops the whole group on timeout or
//! cancel: nothing they started outlives the build.

use std::io::{BufRead, BufReader, PipeReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::output::Output;

const POLL: Duration = Duration::from_millis(100);
/// Time between SIGTERM and SIGKILL for a stopped step.
const KILL_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status})")]
    Failed { program: String, status: ExitStatus },
    #[error("stopped after {0}")]
    TimedOut(humantime::Duration),
    #[error("cancelled")]
    Cancelled,
}

/// Limits and signals every step of one build shares.
pub struct StepContext<'a> {
    pub output: &'a Output,
    /// Set when the pusher disconnected or an admin pressed Ctrl-C.
    pub cancel: Arc<AtomicBool>,
    /// How long a step may stay silent before a progress line is printed.
    pub heartbeat: Duration,
}

impl StepContext<'_> {
    /// Runs `commands` as a pipeline (each one's stdout feeding the next one's stdin), with
    /// `timeout` for the whole pipeline. `activity` words the progress line (`still building`).
    pub fn run(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
        activity: &str,
    ) -> Result<(), StepError> {
        let started = Instant::now();
        let (reader, writer) = std::io::pipe().map_err(|source| StepError::Spawn {
            program: "pipe".into(),
            source,
        })?;
        let mut children: Vec<(String, Child)> = Vec::new();
        let mut group: Option<Pid> = None;
        let count = commands.len();
        let mut previous_stdout = None;
        for (index, mut command) in commands.into_iter().enumerate() {
            let program = command.get_program().to_string_lossy().into_owned();
            let clone = || {
                writer.try_clone().map_err(|source| StepError::Spawn {
                    program: program.clone(),
                    source,
                })
            };
            command.stderr(clone()?);
            if index + 1 == count {
                command.stdout(clone()?);
            } else {
                command.stdout(Stdio::piped());
            }
            if let Some(stdin) = previous_stdout.take() {
                command.stdin(Stdio::from(stdin));
            } else {
                command.stdin(Stdio::null());
            }
            command.process_group(group.map_or(0, Pid::as_raw));
            let spawned = command.spawn();
            // Drop our copies of the pipe's write end, or the reader would never see its end.
            drop(command);
            let mut child = match spawned {
                Ok(child) => child,
                Err(source) => {
                    stop_group(group, &mut children);
                    return Err(StepError::Spawn { program, source });
                }
            };
            group.get_or_insert(Pid::from_raw(child.id() as i32));
            previous_stdout = child.stdout.take();
            children.push((program, child));
        }
        drop(writer);
        let last_output = AtomicU64::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| self.stream(reader, started, &last_output));
            self.wait(
                &mut children,
                group,
                started,
                timeout,
                &last_output,
                activity,
            )
        })
    }

    /// Copies the pipeline's output to the pusher, line by line, as it comes.
    fn stream(&self, reader: PipeReader, started: Instant, last_output: &AtomicU64) {
        let mut reader = BufReader::new(reader);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            last_output.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            let text = String::from_utf8_lossy(&buffer);
            // Progress bars redraw with \r; keep the last state of the line.
            let line = text.trim_end_matches(['\n', '\r']);
            self.output.detail(
                line.rsplit('\r')
                    .find(|part| !part.is_empty())
                    .unwrap_or(""),
            );
        }
    }

    fn wait(
        &self,
        children: &mut [(String, Child)],
        group: Option<Pid>,
        started: Instant,
        timeout: Duration,
        last_output: &AtomicU64,
        activity: &str,
    ) -> Result<(), StepError> {
        let mut next_heartbeat = self.heartbeat;
        loop {
            let mut running = false;
            for (_, child) in children.iter_mut() {
                if child.try_wait().ok().flatten().is_none() {
                    running = true;
                }
            }
            if !running {
                break;
            }
            if self.cancel.load(Ordering::Relaxed) {
                stop_group(group, children);
                return Err(StepError::Cancelled);
            }
            let elapsed = started.elapsed();
            if elapsed > timeout {
                stop_group(group, children);
                return Err(StepError::TimedOut(timeout.into()));
            }
            let silent_for =
                elapsed.saturating_sub(Duration::from_millis(last_output.load(Ordering::Relaxed)));
            if silent_for >= self.heartbeat && elapsed >= next_heartbeat {
                self.output
                    .detail(&format!("... still {activity} ({}s)", elapsed.as_secs()));
                next_heartbeat = elapsed + self.heartbeat;
            }
            std::thread::sleep(POLL);
        }
        // Report the first program that failed: with `git archive | docker build`, a broken
        // archive explains the build's failure, not the other way round.
        for (program, child) in children.iter_mut() {
            let status = child.wait().map_err(|source| StepError::Spawn {
                program: program.clone(),
                source,
            })?;
            if !status.success() {
                return Err(StepError::Failed {
                    program: program.clone(),
                    status,
                });
            }
        }
        Ok(())
    }
}

/// SIGTERM to the whole group, then SIGKILL to what is left, then reap.
fn stop_group(group: Option<Pid>, children: &mut [(String, Child)]) {
    let Some(group) = group else { return };
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline
        && children
            .iter_mut()
            .any(|(_, c)| c.try_wait().ok().flatten().is_none())
    {
        std::thread::sleep(POLL);
    }
    let _ = killpg(group, Signal::SIGKILL);
    for (_, child) in children.iter_mut() {
        let _ = child.wait();
    }
}
