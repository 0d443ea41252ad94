//! Stand-ins for the three public images that `codebuilder.yaml` runs beside codebuilder
//! (`registry:2`, `docker:28-dind`, `nginx:1.28-alpine`): no registry that has them can be
//! reached from these machines. Each is built from Debian packages (`tests/fixtures/standins`)
//! and behaves as the official image does for the way the manifest uses it, then is imported
//! into a node's containerd under the official name, so that the kubelet finds it there and
//! never pulls (`IfNotPresent`, the default for a tag other than `latest`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{repo_root, text};

/// Each stand-in's folder under `tests/fixtures/standins`, and the official image it replaces:
/// the name the manifest asks for, which the stand-in is tagged as in containerd.
pub const STANDINS: [(&str, &str); 3] = [
    ("registry", "registry:2"),
    ("dind", "docker:28-dind"),
    ("nginx", "nginx:1.28-alpine"),
];

/// Debian's docker CLI: the first `docker` on some machines' PATH is another build, without
/// buildx. The stand-ins' Dockerfiles need no BuildKit feature, so the engine's default builder
/// does.
const DOCKER: &str = "/usr/bin/docker";

/// The local name of the stand-in in folder `name` in this machine's Docker engine.
pub fn local_name(name: &str) -> String {
    format!("codebuilder-standin-{name}:test")
}

/// Builds every stand-in in this machine's engine as [`local_name`], `FROM` the debootstrapped
/// base (`scripts/base-image.sh`, which makes it when it is missing: nothing is pulled). The
/// build uses the host's network: the engine here has no bridge, and apt needs the mirror.
/// Cached layers make a rebuild take a second or two.
pub fn build_standins() {
    let out = Command::new("bash")
        .current_dir(repo_root())
        .arg("scripts/base-image.sh")
        .output()
        .expect("cannot run bash");
    assert!(
        out.status.success(),
        "scripts/base-image.sh failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for (name, official) in STANDINS {
        let out = Command::new(DOCKER)
            .args(["build", "--network", "host", "-t", &local_name(name)])
            .arg(repo_root().join("tests/fixtures/standins").join(name))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e}"));
        assert!(
            out.status.success(),
            "docker build of the stand-in for {official} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// Imports the engine's image `local` into the containerd listening on `socket`, in the
/// namespace the kubelet uses (`k8s.io`), and tags it as `as_name` the way the kubelet names
/// the image a pod asks for ([`normalized`]): `registry:2` is `docker.io/library/registry:2`.
///
/// `docker save` streams into `ctr images import -` with no archive on disk (dind's is half a
/// gigabyte). The import names the image after the archive's tag, `local`, in full.
pub fn import_into_containerd(socket: &Path, local: &str, as_name: &str) {
    let mut save = Command::new(DOCKER)
        .args(["save", local])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e}"));
    let imported = ctr(socket)
        .args(["images", "import", "-"])
        .stdin(save.stdout.take().unwrap())
        .output()
        .expect("cannot run ctr: run scripts/deps.sh (containerd)");
    let saved = save.wait_with_output().unwrap();
    assert!(
        saved.status.success() && imported.status.success(),
        "docker save {local} | ctr images import - failed:\n{}{}{}",
        text(&saved.stderr),
        text(&imported.stdout),
        text(&imported.stderr)
    );
    let (from, to) = (normalized(local), normalized(as_name));
    if from == to {
        return;
    }
    let out = ctr(socket)
        .args(["images", "tag", "--force", &from, &to])
        .output()
        .expect("cannot run ctr");
    assert!(
        out.status.success(),
        "ctr images tag {from} {to}: {}",
        text(&out.stderr)
    );
}

/// `ctr` talking to the containerd on `socket`, in the kubelet's namespace.
fn ctr(socket: &Path) -> Command {
    let mut ctr = Command::new("ctr");
    ctr.arg("--address").arg(socket).args(["-n", "k8s.io"]);
    ctr
}

/// An image name as the kubelet (and `ctr`) write it in full: Docker Hub's host, its
/// `library/` namespace for official images, and the `latest` tag when none is given.
/// A first component with a `.` or a `:`, or `localhost`, is a registry host.
pub fn normalized(name: &str) -> String {
    let full = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some(("docker.io" | "index.docker.io", rest)) if !rest.contains('/') => {
            format!("docker.io/library/{rest}")
        }
        Some(("index.docker.io", rest)) => format!("docker.io/{rest}"),
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if full.contains('@') || last.contains(':') {
        full
    } else {
        format!("{full}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_names_are_the_kubelets() {
        assert_eq!(normalized("registry:2"), "docker.io/library/registry:2");
        assert_eq!(
            normalized("docker:28-dind"),
            "docker.io/library/docker:28-dind"
        );
        assert_eq!(normalized("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalized("bitnami/nginx:1"), "docker.io/bitnami/nginx:1");
        assert_eq!(
            normalized("docker.io/registry:2"),
            "docker.io/library/registry:2"
        );
        assert_eq!(
            normalized("127.0.0.1:5555/app:git-1"),
            "127.0.0.1:5555/app:git-1"
        );
        assert_eq!(normalized("localhost/app"), "localhost/app:latest");
        assert_eq!(normalized("quay.io/a/b@sha256:00"), "quay.io/a/b@sha256:00");
    }
}
