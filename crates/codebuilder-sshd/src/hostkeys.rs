//! SSH host keys: the server's identity must survive restarts, or every user gets sshd's
//! "REMOTE HOST IDENTIFICATION HAS CHANGED" warning after a pod is rescheduled.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::Home;

const KEY_TYPES: &[&str] = &["ed25519", "rsa"];

/// Returns the host key files sshd should use. Keys from `provided` (a read-only Secret
/// mount) are copied into the home with the 0600 mode sshd insists on; otherwise keys are
/// generated once into the home and reused on every start.
pub fn ensure(home: &Home, provided: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let dir = home.ssh_dir();
    let mut keys = Vec::new();
    for key_type in KEY_TYPES {
        let name = format!("ssh_host_{key_type}_key");
        let path = dir.join(&name);
        match provided.map(|p| p.join(&name)).filter(|p| p.is_file()) {
            Some(source) => {
                let bytes = fs::read(&source)
                    .with_context(|| format!("cannot read host key {}", source.display()))?;
                write_atomic(&path, &bytes, 0o600)?;
            }
            None if path.is_file() => {}
            None if provided.is_some_and(|p| p.join("ssh_host_ed25519_key").is_file()) => continue,
            None => generate(&path, key_type)?,
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        keys.push(path);
    }
    Ok(keys)
}

fn generate(path: &Path, key_type: &str) -> anyhow::Result<()> {
    // ssh-keygen writes in place; generate aside and rename so that a crash cannot leave half a key.
    let aside = path.with_extension("new");
    let _ = fs::remove_file(&aside);
    let _ = fs::remove_file(aside.with_extension("new.pub"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", key_type, "-N", "", "-C", "codebuilder", "-f"])
        .arg(&aside)
        .status()
        .context("cannot run ssh-keygen: is openssh-client installed?")?;
    if !status.success() {
        bail!("ssh-keygen failed to make a {key_type} host key");
    }
    fs::rename(aside.with_extension("new.pub"), path.with_extension("pub"))?;
    fs::rename(&aside, path)?;
    eprintln!(
        "codebuilder: generated {key_type} host key {}",
        path.display()
    );
    Ok(())
}
