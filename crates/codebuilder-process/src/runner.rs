//! Runs the tools a build needs (git, docker, helm) as a pipeline in a process group of its
//! own, streams their merged output line by line, and stops the whole group on timeout or
//! cancel: nothing they started outlives the build.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, PipeReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::group::Group;
use nix::errno::Errno;
use nix::fcntl::{splice, SpliceFFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::output::Output;

/// How often a running step checks for cancel, timeout and silence; its end is seen at once.
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
    /// The last command was given more than this many bytes (`run_limited`).
    #[error("more than {0} bytes of input")]
    TooLarge(u64),
}

/// The last lines a step printed, kept so that a failure can be explained from the tool's own
/// words (helm's "forbidden" or "context deadline exceeded") after they were shown.
#[derive(Default)]
pub struct Tail {
    lines: Mutex<VecDeque<String>>,
}

impl Tail {
    /// How many lines are kept.
    pub const LINES: usize = 40;

    fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

/// How long a step may stay silent before the pusher gets a progress line: well under the
/// idle timeouts of common load balancers.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// Limits and signals every step of one build shares.
pub struct StepContext<'a> {
    pub output: &'a Output,
    /// Set when the pusher disconnected or an admin pressed Ctrl-C.
    pub cancel: Arc<AtomicBool>,
    /// How long a step may stay silent before a progress line is printed.
    pub heartbeat: Duration,
    /// How the tools' lines reach the pusher: `Output::detail` indents them under the step;
    /// `Output::heroku_line` keeps the layout of tools that print Heroku-style themselves.
    pub show: fn(&Output, &str),
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
        self.run_lines(commands, timeout, activity, None, &mut |line| {
            (self.show)(self.output, line);
            true
        })
    }

    /// [`run`](Self::run), keeping the last lines shown in `tail`.
    pub fn run_keeping(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
        activity: &str,
        tail: &Tail,
    ) -> Result<(), StepError> {
        self.run_lines(commands, timeout, activity, None, &mut |line| {
            tail.push(line);
            (self.show)(self.output, line);
            true
        })
    }

    /// Like [`run`](Self::run), with the bytes the last command reads counted on the way:
    /// past `limit`, the whole pipeline is killed before the last command sees the end of its
    /// input, and the step fails with `TooLarge` (`git archive`, maybe through a filter,
    /// feeding a build: what the build receives is what counts).
    pub fn run_limited(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
        activity: &str,
        limit: u64,
    ) -> Result<(), StepError> {
        self.run_lines(commands, timeout, activity, Some(limit), &mut |line| {
            (self.show)(self.output, line);
            true
        })
    }

    /// Like [`run`](Self::run), with each line of output handed to `lines`, which shows it
    /// (or folds it) and says whether the pusher saw something: only what is shown counts
    /// against the heartbeat's silence. With a `limit`, counts as
    /// [`run_limited`](Self::run_limited) does.
    pub fn run_lines(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
        activity: &str,
        limit: Option<u64>,
        lines: &mut (dyn FnMut(&str) -> bool + Send),
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
        // The last command's input and what feeds it, when a limit is counted.
        let mut feed: Option<(ChildStdout, ChildStdin)> = None;
        let mut feed_from = None;
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
            if index > 0 && index + 1 == count && limit.is_some() {
                feed_from = previous_stdout.take();
                command.stdin(Stdio::piped());
            } else if let Some(stdin) = previous_stdout.take() {
                command.stdin(Stdio::from(stdin));
            } else {
                command.stdin(Stdio::null());
            }
            command.process_group(group.map_or(0, Pid::as_raw));
            crate::group::die_with_parent(&mut command);
            let spawned = command.spawn();
            // Drop our copies of the pipe's write end, or the reader would never see its end.
            drop(command);
            let mut child = match spawned {
                Ok(child) => child,
                Err(source) => {
                    if let Some(id) = group {
                        let started: Vec<Child> = children.into_iter().map(|(_, c)| c).collect();
                        Group::new(id, started).stop(KILL_GRACE);
                    }
                    return Err(StepError::Spawn { program, source });
                }
            };
            group.get_or_insert(Pid::from_raw(child.id() as i32));
            if let (Some(from), Some(to)) = (feed_from.take(), child.stdin.take()) {
                feed = Some((from, to));
            }
            previous_stdout = child.stdout.take();
            children.push((program, child));
        }
        drop(writer);
        let (programs, children): (Vec<String>, Vec<Child>) = children.into_iter().unzip();
        let id = group.expect("a pipeline has at least one command");
        let group = Group::new(id, children);
        let last_output = AtomicU64::new(0);
        let over = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| stream(reader, started, &last_output, lines));
            if let (Some((from, to)), Some(limit)) = (feed, limit) {
                let over = &over;
                scope.spawn(move || copy_limited(from, to, limit, id, over));
            }
            self.wait(programs, &group, started, timeout, &last_output, activity)
        });
        match limit {
            Some(limit) if over.load(Ordering::SeqCst) => Err(StepError::TooLarge(limit)),
            _ => result,
        }
    }

    /// Waits for the pipeline, stopping it on cancel or timeout, and printing a progress
    /// line whenever it has been silent for a heartbeat.
    fn wait(
        &self,
        programs: Vec<String>,
        group: &Group,
        started: Instant,
        timeout: Duration,
        last_output: &AtomicU64,
        activity: &str,
    ) -> Result<(), StepError> {
        let mut next_heartbeat = self.heartbeat;
        let statuses = loop {
            if let Some(statuses) = group.wait_timeout(POLL) {
                break statuses;
            }
            if self.cancel.load(Ordering::Relaxed) {
                group.stop(KILL_GRACE);
                return Err(StepError::Cancelled);
            }
            let elapsed = started.elapsed();
            if elapsed > timeout {
                group.stop(KILL_GRACE);
                return Err(StepError::TimedOut(timeout.into()));
            }
            let silent_for =
                elapsed.saturating_sub(Duration::from_millis(last_output.load(Ordering::Relaxed)));
            if silent_for >= self.heartbeat && elapsed >= next_heartbeat {
                self.output
                    .detail(&format!("... still {activity} ({}s)", elapsed.as_secs()));
                next_heartbeat = elapsed + self.heartbeat;
            }
        };
        // Report the first program that failed on its own: with `git archive | docker build`,
        // a broken archive explains the build's failure, but an archive cut off by SIGPIPE
        // only says that the build stopped reading.
        let mut failures = Vec::new();
        for (program, status) in programs.into_iter().zip(statuses) {
            let status = status.map_err(|source| StepError::Spawn {
                program: program.clone(),
                source,
            })?;
            if !status.success() {
                failures.push((program, status));
            }
        }
        let broken_pipe = |status: &ExitStatus| status.signal() == Some(Signal::SIGPIPE as i32);
        let cause = failures
            .iter()
            .position(|(_, status)| !broken_pipe(status))
            .unwrap_or(0);
        if let Some((program, status)) = failures.into_iter().nth(cause) {
            return Err(StepError::Failed { program, status });
        }
        Ok(())
    }
}

/// Hands the pipeline's output to `lines`, line by line, as it comes.
fn stream(
    reader: PipeReader,
    started: Instant,
    last_output: &AtomicU64,
    lines: &mut (dyn FnMut(&str) -> bool + Send),
) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buffer);
        // Progress bars redraw with \r; keep the last state of the line.
        let line = text.trim_end_matches(['\n', '\r']);
        let last_state = line
            .rsplit('\r')
            .find(|part| !part.is_empty())
            .unwrap_or("");
        if lines(last_state) {
            last_output.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Moves `from` into `to` (`splice`: the bytes stay in the kernel), counting. Past `limit`,
/// kills the group `id` before `to` is closed, so that its reader is stopped rather than
/// handed a cut stream as if it were whole; it never gets more than `limit + 1` bytes.
fn copy_limited(from: ChildStdout, to: ChildStdin, limit: u64, id: Pid, over: &AtomicBool) {
    const CHUNK: u64 = 1 << 20;
    let mut total: u64 = 0;
    loop {
        let room = (limit - total).saturating_add(1).min(CHUNK) as usize;
        match splice(&from, None, &to, None, room, SpliceFFlags::SPLICE_F_MOVE) {
            Ok(0) => return,
            Ok(moved) => total += moved as u64,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
        if total > limit {
            over.store(true, Ordering::SeqCst);
            let _ = killpg(id, Signal::SIGKILL);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Screen;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    fn context(output: &Output, heartbeat: Duration) -> StepContext<'_> {
        StepContext {
            output,
            cancel: Arc::new(AtomicBool::new(false)),
            heartbeat,
            show: Output::detail,
        }
    }

    #[test]
    fn streams_lines_and_heartbeats_during_silence() {
        let captured = Screen::default();
        let output = Output::new(Box::new(captured.clone()));
        let step = context(&output, Duration::from_millis(400));
        step.run(
            vec![sh("echo one; echo two >&2; sleep 1.2; printf 'a\\rb\\n'")],
            Duration::from_secs(10),
            "testing",
        )
        .unwrap();
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       one");
        assert_eq!(lines[1], "       two");
        assert!(lines[2].starts_with("       ... still testing ("), "{text}");
        assert_eq!(lines.last().unwrap(), &"       b");

        let tail = Tail::default();
        let script = format!("seq 1 {}", Tail::LINES + 5);
        step.run_keeping(vec![sh(&script)], Duration::from_secs(10), "testing", &tail)
            .unwrap();
        let kept = tail.lines();
        assert_eq!(kept.len(), Tail::LINES);
        assert_eq!(kept.first().unwrap(), "6");
        assert_eq!(kept.last().unwrap(), &(Tail::LINES + 5).to_string());
    }

    #[test]
    fn pipeline_feeds_stdin_and_reports_the_first_failure() {
        let captured = Screen::default();
        let output = Output::new(Box::new(captured.clone()));
        let step = context(&output, Duration::from_secs(60));
        step.run(
            vec![sh("echo piped"), sh("tr a-z A-Z")],
            Duration::from_secs(10),
            "testing",
        )
        .unwrap();
        assert_eq!(captured.text(), "       PIPED\n");
        let err = step
            .run(
                vec![sh("exit 3"), sh("cat")],
                Duration::from_secs(10),
                "testing",
            )
            .unwrap_err();
        assert!(
            matches!(err, StepError::Failed { ref program, .. } if program == "sh"),
            "{err}"
        );
        // A reader that fails makes its writer die of SIGPIPE: the reader is the cause.
        let err = step
            .run(
                vec![Command::new("yes"), sh("head -c 1 >/dev/null; exit 5")],
                Duration::from_secs(10),
                "testing",
            )
            .unwrap_err();
        assert!(
            matches!(err, StepError::Failed { ref program, status } if program == "sh" && status.code() == Some(5)),
            "{err}"
        );
        let err = step
            .run(
                vec![Command::new("/nonexistent/program")],
                Duration::from_secs(10),
                "testing",
            )
            .unwrap_err();
        assert!(matches!(err, StepError::Spawn { .. }));
    }

    #[test]
    fn a_limited_pipeline_passes_what_fits_and_stops_what_does_not() {
        let captured = Screen::default();
        let output = Output::new(Box::new(captured.clone()));
        let step = context(&output, Duration::from_secs(60));
        step.run_limited(
            vec![sh("head -c 1000 /dev/zero"), sh("wc -c")],
            Duration::from_secs(10),
            "testing",
            1000,
        )
        .unwrap();
        assert_eq!(captured.text().trim(), "1000");
        let started = Instant::now();
        let err = step
            .run_limited(
                vec![
                    Command::new("yes"),
                    sh("cat >/dev/null; echo reached the end"),
                ],
                Duration::from_secs(10),
                "testing",
                1 << 20,
            )
            .unwrap_err();
        assert!(
            matches!(err, StepError::TooLarge(limit) if limit == 1 << 20),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            !captured.text().contains("reached the end"),
            "{}",
            captured.text()
        );
        // Through a filter, what the last command receives is what counts.
        let filtered = Screen::default();
        let output = Output::new(Box::new(filtered.clone()));
        let step = context(&output, Duration::from_secs(60));
        step.run_limited(
            vec![
                sh("head -c 5000 /dev/zero"),
                sh("head -c 1000"),
                sh("wc -c"),
            ],
            Duration::from_secs(10),
            "testing",
            1000,
        )
        .unwrap();
        assert_eq!(filtered.text().trim(), "1000");
        let err = step
            .run_limited(
                vec![
                    sh("head -c 500 /dev/zero"),
                    sh("cat; cat /dev/zero | head -c 2000"),
                    sh("wc -c"),
                ],
                Duration::from_secs(10),
                "testing",
                1000,
            )
            .unwrap_err();
        assert!(matches!(err, StepError::TooLarge(1000)), "{err}");
    }

    #[test]
    fn timeout_and_cancel_stop_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let output = Output::new(Box::new(Screen::default()));
        let step = context(&output, Duration::from_secs(60));
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let err = step
            .run(vec![sh(&script)], Duration::from_secs(1), "testing")
            .unwrap_err();
        assert!(matches!(err, StepError::TimedOut(_)));
        assert!(started.elapsed() < Duration::from_secs(5));
        let background: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Dead, or a zombie waiting for init to reap it, once the signal has been delivered.
        let state = || {
            let stat =
                std::fs::read_to_string(format!("/proc/{background}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next()
        };
        let signalled = Instant::now();
        while !matches!(state(), None | Some('Z') | Some('X'))
            && signalled.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let state = state();
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "the background sleep survived: {state:?}"
        );

        let cancel = Arc::new(AtomicBool::new(false));
        let step = StepContext {
            output: &output,
            cancel: Arc::clone(&cancel),
            heartbeat: Duration::from_secs(60),
            show: Output::detail,
        };
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let err = step
            .run(vec![sh("sleep 30")], Duration::from_secs(60), "testing")
            .unwrap_err();
        setter.join().unwrap();
        assert!(matches!(err, StepError::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
