//! One command run to its end, its output kept: the short questions codebuilder asks its
//! tools (`git rev-parse`, `docker image inspect`, `ssh-keygen`, `sshd -t`). Like a build
//! step, it runs in a process group of its own with stdin closed unless input is given, and
//! the whole group is stopped when its deadline passes.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::unistd::Pid;

use crate::group::Group;

/// Most output kept from one stream: what these commands print is small; more is a fault.
pub const MAX_CAPTURE: usize = 16 << 20;
/// Deadline for a question to a local tool (`git rev-parse`, `docker image inspect`): long
/// enough for a loaded machine, short enough that a hung tool cannot hold a push forever.
pub const QUICK: Duration = Duration::from_secs(60);
/// Time between SIGTERM and SIGKILL for a command past its deadline.
const KILL_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} took longer than {limit} and was stopped")]
    TimedOut {
        program: String,
        limit: humantime::Duration,
    },
    #[error("{program} printed more than {MAX_CAPTURE} bytes and was stopped")]
    TooMuchOutput { program: String },
}

/// What a finished command left.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output as text, without surrounding whitespace.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_owned()
    }

    /// Standard error as text, without surrounding whitespace: the tool's own reason.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_owned()
    }
}

/// Runs `command` with stdin closed and waits at most `limit` for it.
pub fn run(command: Command, limit: Duration) -> Result<Captured, RunError> {
    kept(run_inner(command, None, limit, |out| {
        read_capped(Some(out))
    })?)
}

/// Runs `command` with `input` on its stdin and waits at most `limit` for it.
pub fn run_with_input(
    command: Command,
    input: &[u8],
    limit: Duration,
) -> Result<Captured, RunError> {
    kept(run_inner(command, Some(input), limit, |out| {
        read_capped(Some(out))
    })?)
}

/// Runs `command` with stdin closed, handing its standard output to `read` as it comes instead
/// of keeping it (a `git archive` unpacked on the fly), and waits at most `limit` for it. When
/// `read` returns before the end, the stream is closed and the command stops with SIGPIPE;
/// past the deadline the group is stopped and `read` sees the end of its input. The returned
/// [`Captured`] has standard error only.
pub fn run_reading<T: Send>(
    command: Command,
    limit: Duration,
    read: impl FnOnce(&mut dyn Read) -> T + Send,
) -> Result<(Captured, T), RunError> {
    let ran = run_inner(command, None, limit, read)?;
    Ok((
        Captured {
            status: ran.status,
            stdout: Vec::new(),
            stderr: ran.stderr,
        },
        ran.read,
    ))
}

/// A command that ran to its end: its status, what `read` made of its standard output, and
/// its standard error.
struct Ran<T> {
    program: String,
    status: ExitStatus,
    read: T,
    stderr: Vec<u8>,
}

/// The output kept by [`read_capped`], or the error of a command that printed too much.
fn kept(ran: Ran<Option<Vec<u8>>>) -> Result<Captured, RunError> {
    let stdout = ran.read.ok_or(RunError::TooMuchOutput {
        program: ran.program,
    })?;
    Ok(Captured {
        status: ran.status,
        stdout,
        stderr: ran.stderr,
    })
}

/// Runs `command` in a process group of its own, `input` (if any) on its stdin, its standard
/// output handed to `read` and its standard error kept, and stops the group past `limit`.
fn run_inner<T: Send>(
    mut command: Command,
    input: Option<&[u8]>,
    limit: Duration,
    read: impl FnOnce(&mut dyn Read) -> T + Send,
) -> Result<Ran<T>, RunError> {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::group::die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let id = Pid::from_raw(child.id() as i32);
    let group = Group::new(id, vec![child]);
    let (statuses, read, stderr) = std::thread::scope(|scope| {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            // A command that exits without reading all of it is its own business.
            scope.spawn(move || stdin.write_all(input));
        }
        let reader = scope.spawn(move || {
            let mut stdout = stdout?;
            let read = read(&mut stdout);
            // Closed before the wait: a writer with more to say stops with SIGPIPE.
            drop(stdout);
            Some(read)
        });
        let err = scope.spawn(move || read_capped(stderr));
        let statuses = match group.wait_timeout(limit) {
            Some(statuses) => statuses,
            None => {
                group.stop(KILL_GRACE);
                return Err(RunError::TimedOut {
                    program: program.clone(),
                    limit: limit.into(),
                });
            }
        };
        let read = reader.join().unwrap_or(None);
        Ok((statuses, read, join(err)))
    })?;
    let (Some(read), Some(stderr)) = (read, stderr) else {
        return Err(RunError::TooMuchOutput { program });
    };
    let status = statuses
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(std::io::Error::other("the process was not reaped")))
        .map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
    Ok(Ran {
        program,
        status,
        read,
        stderr,
    })
}

/// All of `stream` up to [`MAX_CAPTURE`] bytes, or `None` when there was more (the stream is
/// closed then, so its writer stops with SIGPIPE instead of filling memory).
fn read_capped<R: Read>(stream: Option<R>) -> Option<Vec<u8>> {
    let mut kept = Vec::new();
    let Some(stream) = stream else {
        return Some(kept);
    };
    let limit = MAX_CAPTURE as u64 + 1;
    let _ = stream.take(limit).read_to_end(&mut kept);
    (kept.len() <= MAX_CAPTURE).then_some(kept)
}

fn join(handle: std::thread::ScopedJoinHandle<'_, Option<Vec<u8>>>) -> Option<Vec<u8>> {
    handle.join().unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn keeps_output_and_status() {
        let out = run(
            sh("echo out; echo err >&2; exit 4"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(out.stdout_text(), "out");
        assert_eq!(out.stderr_text(), "err");
    }

    #[test]
    fn stdin_is_closed_unless_given() {
        let out = run(sh("cat"), Duration::from_secs(10)).unwrap();
        assert!(out.success());
        assert!(out.stdout.is_empty());
        let out = run_with_input(sh("tr a-z A-Z"), b"given", Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout_text(), "GIVEN");
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped_with_its_group() {
        let started = Instant::now();
        let err = run(sh("sleep 30 & sleep 30; wait"), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn too_much_output_is_an_error_not_a_memory_leak() {
        let err = run(Command::new("yes"), Duration::from_secs(30)).unwrap_err();
        assert!(matches!(err, RunError::TooMuchOutput { .. }), "{err}");
    }

    #[test]
    fn output_is_read_as_it_comes_and_a_reader_may_stop_early() {
        let (out, read) = run_reading(sh("echo one; echo two >&2"), Duration::from_secs(10), |r| {
            let mut text = String::new();
            r.read_to_string(&mut text).map(|_| text).unwrap()
        })
        .unwrap();
        assert!(out.success());
        assert_eq!(read, "one\n");
        assert_eq!(out.stderr_text(), "two");
        let (out, read) = run_reading(Command::new("yes"), Duration::from_secs(30), |r| {
            let mut first = [0; 2];
            r.read_exact(&mut first).map(|()| first).unwrap()
        })
        .unwrap();
        assert!(!out.success());
        assert_eq!(&read, b"y\n");
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run(
            Command::new("/nonexistent/program"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot run /nonexistent/program: "),
            "{err}"
        );
    }
}
