//! Stand-ins for the three public images that `codebuilder.yaml` runs beside codebuilder
//! (`registry:2`, `docker:28-dind`, `nginx:1.28-alpine`): no registry that has them can be
//! reached from these machines. Each is built from Debian packages (`tests/fixtures/standins`)
//! and behaves as the official image does for the way the manifest uses it, then is imported
//! into a node's containerd under the official name, so that the kubelet finds it there and
//! never pulls (`IfNotPresent`, the default for a tag other than `latest`).

use std::io::{Read, Write};
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
/// gigabyte). What the import names the image comes from the archive's own `manifest.json`
/// (its `RepoTags`, normalized as `ctr` does), read from the stream on its way through.
pub fn import_into_containerd(socket: &Path, local: &str, as_name: &str) {
    let mut save = Command::new(DOCKER)
        .args(["save", local])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e}"));
    let mut import = ctr(socket)
        .args(["images", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run ctr: run scripts/deps.sh (containerd)");
    let mut archive = Archive::default();
    let copied = {
        let mut from = save.stdout.take().unwrap();
        let mut to = import.stdin.take().unwrap();
        let mut buf = vec![0; 1 << 16];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    archive.feed(&buf[..n]);
                    if let Err(e) = to.write_all(&buf[..n]) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        }
        // Dropping `to` closes ctr's standard input: the end of the archive.
    };
    let saved = save.wait_with_output().unwrap();
    let imported = import.wait_with_output().unwrap();
    assert!(
        saved.status.success() && imported.status.success() && copied.is_ok(),
        "docker save {local} | ctr images import - failed ({copied:?}):\n{}{}{}",
        text(&saved.stderr),
        text(&imported.stdout),
        text(&imported.stderr)
    );
    let manifest = archive
        .manifest
        .unwrap_or_else(|| panic!("docker save {local} wrote no manifest.json"));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let tag = manifest[0]["RepoTags"][0]
        .as_str()
        .unwrap_or_else(|| panic!("docker save {local}: no RepoTags in {manifest}"));
    let out = ctr(socket)
        .args([
            "images",
            "tag",
            "--force",
            &normalized(tag),
            &normalized(as_name),
        ])
        .output()
        .expect("cannot run ctr");
    assert!(
        out.status.success(),
        "ctr images tag {} {}: {}",
        normalized(tag),
        normalized(as_name),
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

/// What is read of a tar stream on its way through: the contents of its top-level
/// `manifest.json` (a `docker save` archive's index of images and their tags).
#[derive(Default)]
struct Archive {
    /// The header being read (512 bytes).
    header: Vec<u8>,
    /// Bytes of the current entry's contents and padding still to come.
    left: u64,
    /// The current entry's contents, when it is `manifest.json`, and their size.
    body: Option<(Vec<u8>, usize)>,
    manifest: Option<Vec<u8>>,
}

impl Archive {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                if let Some((body, size)) = &mut self.body {
                    let wanted = (*size - body.len()).min(n);
                    body.extend_from_slice(&data[..wanted]);
                }
                self.left -= n as u64;
                data = &data[n..];
                if self.left == 0 {
                    if let Some((body, _)) = self.body.take() {
                        self.manifest = Some(body);
                    }
                }
                continue;
            }
            let n = (512 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() < 512 {
                continue;
            }
            let header = std::mem::take(&mut self.header);
            // The two zero blocks at the end, or a field that is not octal: no entry.
            let Some(size) = octal(&header[124..136]) else {
                continue;
            };
            let name = &header[..100];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(100)];
            let is_manifest = matches!(name, b"manifest.json" | b"./manifest.json");
            self.left = size.div_ceil(512) * 512;
            self.body = is_manifest.then(|| (Vec::new(), size as usize));
            if self.left == 0 && is_manifest {
                self.manifest = Some(Vec::new());
            }
        }
    }
}

/// A tar header's octal number field (NUL- or space-terminated).
fn octal(field: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(field).ok()?;
    let digits = digits.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
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

    #[test]
    fn the_manifest_is_read_from_a_tar_stream_in_any_chunks() {
        let mut tar = Vec::new();
        for (name, contents) in [
            ("layer.tar", vec![7u8; 1000]),
            ("manifest.json", br#"[{"RepoTags":["a:b"]}]"#.to_vec()),
        ] {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", contents.len());
            header[124..136].copy_from_slice(size.as_bytes());
            tar.extend_from_slice(&header);
            tar.extend_from_slice(&contents);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend_from_slice(&[0; 1024]);
        for chunk in [1, 7, 512, 4096] {
            let mut archive = Archive::default();
            tar.chunks(chunk).for_each(|c| archive.feed(c));
            assert_eq!(
                archive.manifest.as_deref(),
                Some(&br#"[{"RepoTags":["a:b"]}]"#[..])
            );
        }
    }
}
