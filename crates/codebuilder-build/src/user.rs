//! Who an image runs as: its `USER` (`.Config.User`), a name read as a uid from the image's
//! own `/etc/passwd`, as the container runtime would. A non-root user lets the app's pods run
//! as non-root (`runAsNonRoot` needs a uid to check), which the restricted Pod Security level
//! asks.

use std::io::Read;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_deploy::ImageUser;
use codebuilder_process::QUICK;

use crate::engine;

/// The user `image` is configured to run as, as written (`app`, `1000:1000`, ""), checked to
/// be a plain name or number.
pub fn configured(docker: &str, image: &str) -> anyhow::Result<String> {
    let user = engine::inspect_image(docker, image, "{{.Config.User}}", "the user")?;
    if user.starts_with('-')
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        bail!("the image {image} runs as the user {user:?}, which is neither a name nor a number: set USER to a user name or uid");
    }
    Ok(user)
}

/// Who `image` runs as. A user name that its `/etc/passwd` does not hold counts as root: the
/// container runtime refuses it anyway.
pub fn of_image(docker: &str, image: &str) -> anyhow::Result<ImageUser> {
    let configured = configured(docker, image)?;
    let user = configured.split(':').next().unwrap_or_default();
    let uid = match user.parse::<u32>() {
        Ok(uid) => Some(uid),
        Err(_) if user.is_empty() || user == "root" => None,
        Err(_) => {
            let passwd = passwd_of(docker, image)?;
            uid_in(&passwd, user)
        }
    };
    Ok(uid
        .filter(|uid| *uid > 0)
        .map_or(ImageUser::Root, ImageUser::NonRoot))
}

/// The uid of `name` in a passwd file.
fn uid_in(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The image's `/etc/passwd` ("" when it has none), copied out of a container that is made
/// for it and removed again, never started.
fn passwd_of(docker: &str, image: &str) -> anyhow::Result<String> {
    let mut create = Command::new(docker);
    create.args([
        "create",
        "--network",
        "none",
        "--entrypoint",
        "/codebuilder-never-started",
        image,
    ]);
    let out = codebuilder_process::run(create, QUICK)?;
    if !out.success() {
        bail!(
            "cannot read the users of {image}: {}: check the Docker engine",
            out.stderr_text()
        );
    }
    let container = out.stdout_text();
    let mut copy = Command::new(docker);
    copy.args([
        "cp",
        "--follow-link",
        &format!("{container}:/etc/passwd"),
        "-",
    ]);
    let copied = codebuilder_process::run(copy, QUICK);
    let mut remove = Command::new(docker);
    remove.args(["rm", "--force", &container]);
    let removed = codebuilder_process::run(remove, QUICK)?;
    if !removed.success() {
        bail!(
            "cannot remove the container {container}: {}: check the Docker engine",
            removed.stderr_text()
        );
    }
    let copied = copied?;
    if !copied.success() {
        return Ok(String::new());
    }
    let mut archive = tar::Archive::new(copied.stdout.as_slice());
    let mut passwd = String::new();
    if let Some(entry) = archive.entries().context("cannot read /etc/passwd")?.next() {
        entry
            .context("cannot read /etc/passwd")?
            .read_to_string(&mut passwd)
            .context("cannot read /etc/passwd")?;
    }
    Ok(passwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nheroku:x:1000:1000::/app:/bin/bash\nbad:x:nope:0::/:/bin/sh\n";
        assert_eq!(uid_in(passwd, "heroku"), Some(1000));
        assert_eq!(uid_in(passwd, "root"), Some(0));
        assert_eq!(uid_in(passwd, "bad"), None);
        assert_eq!(uid_in(passwd, "missing"), None);
        assert_eq!(uid_in("", "heroku"), None);
    }
}
