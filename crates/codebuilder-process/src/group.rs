//! A process group we started and must be able to stop: git and its hook, or a build step's
//! pipeline. Its processes are reaped by a thread of their own, so that the end of the group
//! is seen the moment it happens, while the caller keeps watching for reasons to stop it
//! (a client that hung up, a timeout, Ctrl-C).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, getppid, Pid};

/// The exit status of each process, in the order they were given.
pub type Statuses = Vec<io::Result<ExitStatus>>;

pub struct Group {
    id: Pid,
    done: Receiver<Statuses>,
}

impl Group {
    /// Takes over `children`, all in the process group `id`.
    pub fn new(id: Pid, children: Vec<Child>) -> Self {
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            let statuses: Statuses = children.into_iter().map(|mut child| child.wait()).collect();
            let _ = sender.send(statuses);
        });
        Self { id, done }
    }

    /// The statuses once every process has exited, or `None` if some still run after `limit`.
    pub fn wait_timeout(&self, limit: Duration) -> Option<Statuses> {
        match self.done.recv_timeout(limit) {
            Ok(statuses) => Some(statuses),
            Err(RecvTimeoutError::Timeout) => None,
            // The reaper cannot go away without sending: treat it as "all gone".
            Err(RecvTimeoutError::Disconnected) => Some(Vec::new()),
        }
    }

    /// SIGTERM to the whole group, SIGKILL to what is left after `grace`; returns once all
    /// the processes we started are reaped.
    pub fn stop(&self, grace: Duration) -> Statuses {
        let _ = killpg(self.id, Signal::SIGTERM);
        if let Some(statuses) = self.wait_timeout(grace) {
            return statuses;
        }
        let _ = killpg(self.id, Signal::SIGKILL);
        self.done.recv().unwrap_or_default()
    }
}

/// Starts `command` to run beside this process for as long as it lives, through an `exec`
/// too (codebuilder-sshd becomes sshd): no deadline, in our process group (a Ctrl-C stops both),
/// SIGKILL when we end. Whatever we become reaps it (sshd reaps every child).
pub fn companion(mut command: Command) -> io::Result<()> {
    die_with_parent(&mut command);
    command.spawn().map(drop)
}

/// Makes `command` get SIGKILL when the thread that starts it dies (`PR_SET_PDEATHSIG`): a
/// killed codebuilder (`kill -9` of the hook) leaves no step running in a group of its own,
/// and a killed `docker` client makes the engine cancel its build. Spawn from the thread that
/// waits for the process, as `run` and `StepContext::run` do.
#[allow(unsafe_code)]
pub fn die_with_parent(command: &mut Command) {
    let parent = getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid), allocates nothing and
    // takes no lock. A parent that died before the prctl is seen by getppid, and the spawn
    // then fails instead of leaving an orphan.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != parent {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::Instant;

    fn spawn(script: &str) -> (Pid, Child) {
        let child = Command::new("sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .unwrap();
        (Pid::from_raw(child.id() as i32), child)
    }

    #[test]
    fn sees_the_end_at_once() {
        let (id, child) = spawn("exit 3");
        let started = Instant::now();
        let statuses = Group::new(id, vec![child])
            .wait_timeout(Duration::from_secs(10))
            .unwrap();
        assert_eq!(statuses[0].as_ref().unwrap().code(), Some(3));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let pid = std::thread::spawn(|| {
            let mut command = Command::new("sleep");
            command.arg("30");
            die_with_parent(&mut command);
            let child = command.spawn().unwrap();
            let pid = Pid::from_raw(child.id() as i32);
            std::mem::forget(child);
            pid
        })
        .join()
        .unwrap();
        let status = nix::sys::wait::waitpid(pid, None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Signaled(pid, Signal::SIGKILL, false)
        );
    }

    #[test]
    fn stop_kills_what_ignores_sigterm() {
        let (id, child) = spawn("trap '' TERM; sleep 30");
        let group = Group::new(id, vec![child]);
        assert!(group.wait_timeout(Duration::from_millis(100)).is_none());
        let started = Instant::now();
        let statuses = group.stop(Duration::from_millis(300));
        assert!(!statuses[0].as_ref().unwrap().success());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
