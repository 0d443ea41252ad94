//! The one entry point that starts codebuilder, in the container and locally alike: prepare
//! the home, keep host keys, write an sshd_config for this home, and run stock sshd.

pub mod config;
pub mod hostkeys;
pub mod paths;
pub mod ready;
pub mod relay;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::{Home, Settings};

pub use config::SshdConfig;

pub struct Options {
    pub home: Home,
    pub listen: SocketAddr,
    pub sshd: PathBuf,
    /// Read-only folder of host keys (a mounted Secret); generated in the home when absent.
    pub host_keys: Option<PathBuf>,
}

/// Prepares everything, starts the sessions' log relay, then replaces this process with
/// `sshd -D -e`.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let config_path = prepare(options)?;
    let mut check = Command::new(&options.sshd);
    check.arg("-t").arg("-f").arg(&config_path);
    let check = codebuilder_process::run(check, codebuilder_process::QUICK)
        .context("is openssh-server installed?")?;
    if !check.success() {
        bail!(
            "sshd refuses the configuration {}: {}",
            config_path.display(),
            check.stderr_text()
        );
    }
    relay::start(&options.home, &Settings::from_env()?.ssh_user)?;
    eprintln!(
        "codebuilder: sshd listening on {} (home {})",
        options.listen,
        options.home.root().display()
    );
    let err = Command::new(&options.sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config_path)
        .exec();
    Err(err).with_context(|| format!("cannot run {}", options.sshd.display()))
}

/// Makes the home, host keys and sshd_config; returns the config's path.
pub fn prepare(options: &Options) -> anyhow::Result<PathBuf> {
    let settings = Settings::from_env()?;
    let home = &options.home;
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("no install directory")?;
    let keys_binary = bin_dir.join("codebuilder-keys");
    paths::check_command_path(&keys_binary)?;
    paths::prepare_home(home, &settings.ssh_user)?;
    let host_keys = hostkeys::ensure(home, options.host_keys.as_deref())?;
    std::fs::create_dir_all("/run/sshd").context("cannot create /run/sshd")?;
    let config = SshdConfig {
        listen: options.listen,
        home: home.root().to_path_buf(),
        keys_binary,
        ssh_user: settings.ssh_user.clone(),
        host_keys,
        config_keys: settings.config_keys.clone(),
        environment: config::session_environment(home.root())?,
    };
    let path = home.ssh_dir().join("sshd_config");
    write_atomic(&path, config.render()?.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
