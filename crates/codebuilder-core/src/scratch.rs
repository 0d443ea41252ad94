//! A process's own folder for temporary files, under the home (`HOME/tmp/PID`): its own
//! temporary files and those of the programs it runs go there (`TMPDIR`). A process killed
//! before it could clean up (a hook stopped with SIGKILL in the middle of a deploy) leaves
//! its folder there, not in the machine's /tmp, and the next one removes the folders of
//! processes that are gone.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Home;

/// This process's folder; removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Makes this process's folder, removes those of processes that are gone, and points
    /// `TMPDIR` at it. Call it first in `main`, before any thread starts: it sets the
    /// process's environment. `None` when the home has no folder for it that this user can
    /// write (a home prepared by an older codebuilder-sshd): temporary files then stay where
    /// they were.
    pub fn enter(home: &Home) -> Option<Self> {
        let scratch = Self::make(home)?;
        std::env::set_var("TMPDIR", &scratch.dir);
        Some(scratch)
    }

    /// Makes this process's folder and removes those of processes that are gone.
    fn make(home: &Home) -> Option<Self> {
        let root = home.tmp_dir();
        let dir = root.join(std::process::id().to_string());
        if let Err(e) = fs::create_dir(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "no folder of our own for temporary files");
            return None;
        }
        sweep(&root);
        Some(Self { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes the folders under `root` whose process is gone. A folder of a process this user
/// may not remove (an admin's, at `kubectl exec`) is left for that user.
fn sweep(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folders_of_processes_that_are_gone_are_swept_and_ours_goes_with_us() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        fs::create_dir(home.tmp_dir()).unwrap();
        // No process has this id (above the kernel's pid_max).
        let gone = home.tmp_dir().join("4194305");
        fs::create_dir_all(gone.join("codebuilder-chart-x")).unwrap();
        let alive = home.tmp_dir().join("1");
        fs::create_dir(&alive).unwrap();
        // `make`, not `enter`: the test leaves the test runner's environment alone.
        let scratch = Scratch::make(&home).unwrap();
        let ours = home.tmp_dir().join(std::process::id().to_string());
        assert!(ours.is_dir());
        assert!(!gone.exists());
        assert!(alive.exists());
        drop(scratch);
        assert!(!ours.exists());
    }
}
