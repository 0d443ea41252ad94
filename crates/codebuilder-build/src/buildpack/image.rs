//! The image of a buildpack app: the stack's run image, the compiled /app copied from the
//! builder container (committed as an image), codebuilder's launcher as the entrypoint and
//! the `web` process as the command. Built by `docker build` from a context of two small
//! files, so that it streams and tags like a Dockerfile build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// The launcher's place in the image.
pub const LAUNCHER: &str = "/codebuilder/launch";
const LAUNCHER_SCRIPT: &str = include_str!("launch.sh");

/// What the generated Dockerfile needs.
pub struct ImageSpec<'a> {
    pub run_image: &'a str,
    /// The committed builder container, whose /app is the compiled app.
    pub compiled: &'a str,
    /// The run image's own user, who must own /app to write there, as on Heroku.
    pub user: Option<&'a str>,
    pub web: &'a str,
    pub config_vars: &'a BTreeMap<String, String>,
}

/// Writes the build context: the Dockerfile and the launcher.
pub fn write_context(dir: &Path, spec: &ImageSpec) -> anyhow::Result<()> {
    fs::write(dir.join("Dockerfile"), dockerfile(spec))
        .with_context(|| format!("cannot write {}", dir.display()))?;
    let launcher = dir.join("launch");
    fs::write(&launcher, LAUNCHER_SCRIPT)?;
    fs::set_permissions(&launcher, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The Dockerfile. The image names were checked as settings; the user, the command and the
/// config vars come from the build and are written so that docker reads them as data:
/// JSON for the command, quoted and escaped values for ENV.
pub fn dockerfile(spec: &ImageSpec) -> String {
    let chown = spec
        .user
        .map(|user| format!(" --chown={user}"))
        .unwrap_or_default();
    let mut text = format!("FROM {}\n", spec.run_image);
    let _ = writeln!(text, "COPY{chown} --from={} /app /app", spec.compiled);
    let _ = writeln!(text, "COPY launch {LAUNCHER}");
    text.push_str("ENV HOME=/app PORT=5000\n");
    for (name, value) in spec.config_vars {
        let _ = writeln!(text, "ENV {name}=\"{}\"", escape_env(value));
    }
    text.push_str("WORKDIR /app\n");
    let _ = writeln!(text, "ENTRYPOINT {}", serde_json::json!([LAUNCHER]));
    let _ = writeln!(text, "CMD {}", serde_json::json!([spec.web]));
    text
}

/// Inside a double-quoted ENV value, docker gives `\`, `"` and `$` a meaning.
fn escape_env(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether the Docker engine has `image` already (else it has to be pulled).
pub fn image_present(docker: &str, image: &str) -> bool {
    let mut inspect = Command::new(docker);
    inspect.args(["image", "inspect", "--format", "{{.Id}}", image]);
    codebuilder_process::run(inspect, codebuilder_process::QUICK).is_ok_and(|out| out.success())
}

/// The run image's configured user, if it is not root: `/app` is handed to that user.
pub fn run_image_user(docker: &str, run_image: &str) -> anyhow::Result<Option<String>> {
    let user = crate::user::configured(docker, run_image)?;
    if user.is_empty() || matches!(user.as_str(), "root" | "0" | "0:0" | "root:root") {
        return Ok(None);
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_values_stay_data() {
        let mut config_vars = BTreeMap::new();
        config_vars.insert("PATH".to_owned(), "/app/bin:$PATH".to_owned());
        config_vars.insert("QUOTE".to_owned(), "a \"b\" \\c 'd' `e` #f".to_owned());
        let text = dockerfile(&ImageSpec {
            run_image: "heroku/heroku:24",
            compiled: "codebuilder-compiled/myapp:abc",
            user: Some("heroku"),
            web: "bin/web -p \"$PORT\"\nRUN evil",
            config_vars: &config_vars,
        });
        assert_eq!(
            text,
            "FROM heroku/heroku:24\n\
             COPY --chown=heroku --from=codebuilder-compiled/myapp:abc /app /app\n\
             COPY launch /codebuilder/launch\n\
             ENV HOME=/app PORT=5000\n\
             ENV PATH=\"/app/bin:\\$PATH\"\n\
             ENV QUOTE=\"a \\\"b\\\" \\\\c 'd' `e` #f\"\n\
             WORKDIR /app\n\
             ENTRYPOINT [\"/codebuilder/launch\"]\n\
             CMD [\"bin/web -p \\\"$PORT\\\"\\nRUN evil\"]\n"
        );
    }
}
