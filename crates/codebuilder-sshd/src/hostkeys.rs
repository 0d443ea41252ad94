//! SSH host keys: the server's identity must survive restarts, or every user gets sshd's
//! "REMOTE HOST IDENTIFICATION HAS CHANGED" warning after a pod is rescheduled.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::Home;

/// Served in this order. ECDSA is there for clients that know nothing newer (JSch: older
/// JGit/EGit, Jenkins); a home made before it was added gets it at its next start.
const KEY_TYPES: &[&str] = &["ed25519", "ecdsa", "rsa"];

/// Returns the host key files sshd should use. Keys in `provided` (a read-only Secret
/// mount) are the server's identity, and only they are served: they are copied into the home
/// with the 0600 mode sshd insists on. Without them, keys are generated once into the home
/// and reused on every start.
pub fn ensure(home: &Home, provided: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let dir = home.ssh_dir();
    let file_name = |key_type: &str| format!("ssh_host_{key_type}_key");
    let supplied: Vec<(PathBuf, PathBuf)> = KEY_TYPES
        .iter()
        .filter_map(|t| provided.map(|p| (p.join(file_name(t)), dir.join(file_name(t)))))
        .filter(|(source, _)| source.is_file())
        .collect();
    let mut keys = Vec::new();
    if supplied.is_empty() {
        for key_type in KEY_TYPES {
            let path = dir.join(file_name(key_type));
            if !path.is_file() {
                generate(&path, key_type)?;
            }
            keys.push(path);
        }
    } else {
        for (source, path) in supplied {
            let bytes = fs::read(&source)
                .with_context(|| format!("cannot read host key {}", source.display()))?;
            write_atomic(&path, &bytes, 0o600)?;
            keys.push(path);
        }
    }
    for path in &keys {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(keys)
}

fn generate(path: &Path, key_type: &str) -> anyhow::Result<()> {
    // ssh-keygen writes in place; generate aside and rename so that a crash cannot leave half a key.
    let aside = path.with_extension("new");
    let _ = fs::remove_file(&aside);
    let _ = fs::remove_file(aside.with_extension("new.pub"));
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", key_type, "-N", "", "-C", "codebuilder", "-f"])
        .arg(&aside);
    let keygen = codebuilder_process::run(keygen, codebuilder_process::QUICK)
        .context("is openssh-client installed?")?;
    if !keygen.success() {
        bail!(
            "ssh-keygen failed to make a {key_type} host key: {}",
            keygen.stderr_text()
        );
    }
    fs::rename(aside.with_extension("new.pub"), path.with_extension("pub"))?;
    fs::rename(&aside, path)?;
    eprintln!(
        "codebuilder: generated {key_type} host key {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_kept_and_provided_keys_replace_them() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        fs::create_dir_all(home.ssh_dir()).unwrap();
        let first = ensure(&home, None).unwrap();
        let names: Vec<_> = first.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            [
                "ssh_host_ed25519_key",
                "ssh_host_ecdsa_key",
                "ssh_host_rsa_key"
            ]
        );
        // A home from before ECDSA was served gets that key, and keeps the others.
        fs::remove_file(&first[1]).unwrap();
        assert_eq!(ensure(&home, None).unwrap(), first);
        assert!(first[1].is_file());
        let ed25519 = fs::read(&first[0]).unwrap();
        assert_eq!(ensure(&home, None).unwrap(), first);
        assert_eq!(
            fs::read(&first[0]).unwrap(),
            ed25519,
            "a restart must keep the identity"
        );

        let secret = dir.path().join("secret");
        fs::create_dir_all(&secret).unwrap();
        fs::write(secret.join("ssh_host_ed25519_key"), "provided").unwrap();
        let served = ensure(&home, Some(&secret)).unwrap();
        assert_eq!(served, vec![home.ssh_dir().join("ssh_host_ed25519_key")]);
        assert_eq!(fs::read_to_string(&served[0]).unwrap(), "provided");
        assert_eq!(
            fs::metadata(&served[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
