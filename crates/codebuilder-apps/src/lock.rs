//! One build per app at a time. The lock is an flock on a file in the home: the kernel drops
//! it when the holder exits, however it exits, so a lock can never be left behind.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use codebuilder_core::{AppName, Home};
use nix::fcntl::{Flock, FlockArg};

use codebuilder_process::Output;

pub struct AppLock {
    _lock: Flock<File>,
}

impl AppLock {
    /// Takes the app's build lock, telling the pusher when it has to wait for another build
    /// (`holder` describes that build, when it can). Gives up if `cancel` is set while waiting.
    pub fn acquire(
        home: &Home,
        app: &AppName,
        output: &Output,
        cancel: &AtomicBool,
        holder: impl Fn() -> Option<String>,
    ) -> anyhow::Result<Self> {
        let dir = home.locks_dir();
        home.ensure_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{app}.lock"));
        let mut file = home
            .open_lock(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut told = false;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Self { _lock: lock }),
                Err((returned, nix::errno::Errno::EWOULDBLOCK)) => {
                    file = returned;
                    if !told {
                        let running = holder().map(|h| format!(" ({h})")).unwrap_or_default();
                        output.step(&format!(
                            "Waiting for the build of {app} that is already running{running}..."
                        ));
                        told = true;
                    }
                    if cancel.load(Ordering::Relaxed) {
                        anyhow::bail!("cancelled while waiting for the running build of {app}");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, errno)) => {
                    return Err(errno).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
        }
    }
}
