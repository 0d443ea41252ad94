//! The container image and the cluster manifest.
//!
//! The image is built from the real Dockerfile (on a base image made here by
//! scripts/base-image.sh: no image can be pulled on these machines), once per test binary, and
//! run as a user would: `--network host`, its sshd on a free loopback port, a state volume, the
//! machine's Docker Engine and a registry on loopback. What needs no Docker Engine is checked
//! too: the image's sshd_config against codebuilder-sshd's hardening, and codebuilder.yaml and
//! the default chart against the Kubernetes schemas.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use codebuilder_sshd::config::HARDENING;
use codebuilder_tests::image::{self, fingerprints, host_keys};
use codebuilder_tests::manifest::{container, manifests, object};
use codebuilder_tests::*;
use serde_json::Value;

/// The tag the tests build the image under.
const IMAGE: &str = "codebuilder-test:latest";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const KUBERNETES_VERSION: &str = "1.33";
const KUBERNETES_VALIDATE: &str = "/opt/codebuilder-venv/bin/kubernetes-validate";

// --- the image --------------------------------------------------------------------------------

/// Builds the image once per test binary; every test that needs it gets the same result, and
/// a failed build fails them all with its output.
fn image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    require_docker();
    if let Err(e) = BUILT.get_or_init(build_image) {
        panic!("{e}");
    }
    IMAGE
}

fn build_image() -> Result<(), String> {
    // The git user reaches the engine through the mounted socket: its docker group must have
    // the socket's group id (sshd sessions take their groups from the image's /etc/group, so
    // `docker run --group-add` would not reach them).
    let socket_gid = fs::metadata(DOCKER_SOCKET)
        .map_err(|e| format!("{DOCKER_SOCKET}: {e}"))?
        .gid();
    image::build(IMAGE, &[format!("DOCKER_GID={socket_gid}")])
}

/// A running container of the image, removed (with its anonymous volumes) when dropped, also
/// when a test fails.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d --network host ARGS IMAGE`.
    fn start(args: &[String]) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let container = Self {
            name: format!(
                "codebuilder-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let out = output(
            Command::new("docker")
                .args(["run", "--detach", "--name", &container.name])
                .args(["--network", "host"])
                .args(args)
                .arg(image()),
        );
        assert!(out.status.success(), "docker run: {}", both(&out));
        container
    }

    /// `docker exec -i NAME ARGS` with `stdin`, as root, as `kubectl exec` would.
    fn exec(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(
            Command::new("docker")
                .args(["exec", "-i", &self.name])
                .args(args),
            stdin,
        )
    }

    /// `exec` that must succeed; returns its standard output.
    fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args, b"");
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        text(&out.stdout)
    }

    /// What the container printed: sshd logs to stderr.
    fn logs(&self) -> String {
        both(&output(Command::new("docker").args(["logs", &self.name])))
    }

    fn running(&self) -> bool {
        let out = output(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.State.Running}}",
            &self.name,
        ]));
        text(&out.stdout).trim() == "true"
    }

    /// Waits until sshd answers on `port` with host keys.
    fn wait_for_ssh(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !host_keys(port).is_empty() {
                return;
            }
            if !self.running() {
                panic!("the container stopped:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "sshd did not answer on 127.0.0.1:{port} within 30 s:\n{}",
            self.logs()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Removes the images the builds left in the machine's engine under `prefix` (the registry's
/// address), when dropped.
struct BuiltImages {
    prefix: String,
}

impl Drop for BuiltImages {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .output();
        let Ok(out) = out else { return };
        let mine: Vec<String> = text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(&self.prefix))
            .map(String::from)
            .collect();
        if !mine.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", "--force"])
                .args(&mine)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// How the container reaches the machine's Docker Engine.
enum Engine {
    /// The engine's socket mounted at its usual path (the node-socket setup).
    Socket,
    /// As codebuilder.yaml wires its dind sidecar: the socket in a folder of its own
    /// (`/run/dind`, an emptyDir there) and `DOCKER_HOST=unix:///run/dind/docker.sock`.
    Dind,
}

/// Arguments of `docker run` for a codebuilder whose builds push to `registry`, its state in
/// `state` (mounted at the same path inside, so that the test can look at it).
fn server_args(state: &Path, port: u16, registry: &Registry, engine: Engine) -> Vec<String> {
    let state = state.display();
    let mut args = strings(&[
        "--volume",
        &format!("{state}:{state}"),
        "--env",
        &format!("CODEBUILDER_HOME={state}"),
        "--env",
        &format!("CODEBUILDER_LISTEN=127.0.0.1:{port}"),
        "--env",
        &format!("CODEBUILDER_REGISTRY={}", registry.address()),
        "--env",
        "CODEBUILDER_DEPLOY=none",
        "--env",
        "CODEBUILDER_BUILD_NETWORK=host",
    ]);
    args.extend(match engine {
        Engine::Socket => strings(&["--volume", &format!("{DOCKER_SOCKET}:{DOCKER_SOCKET}")]),
        Engine::Dind => strings(&[
            "--volume",
            &format!("{DOCKER_SOCKET}:/run/dind/docker.sock"),
            "--env",
            "DOCKER_HOST=unix:///run/dind/docker.sock",
        ]),
    });
    args
}

#[test]
fn the_image_builds_pushes_and_keeps_its_state_across_containers() {
    let registry = Registry::start();
    let _images = BuiltImages {
        prefix: format!("{}/", registry.address()),
    };
    let state = shared_tempdir();
    let port = free_port();
    let args = server_args(state.path(), port, &registry, Engine::Socket);
    let first = Container::start(&args);
    first.wait_for_ssh(port);
    let host_key_fingerprints = fingerprints(&host_keys(port));
    assert_eq!(host_key_fingerprints.len(), 2, "{host_key_fingerprints:?}");
    // The pod's probe: sshd listens on CODEBUILDER_LISTEN; and on a port it does not, it is not.
    first.exec_ok(&["/usr/local/lib/codebuilder/codebuilder-sshd", "ready"]);
    let elsewhere = first.exec(
        &[
            "/usr/local/lib/codebuilder/codebuilder-sshd",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "ready",
        ],
        b"",
    );
    assert!(!elsewhere.status.success());
    assert!(
        text(&elsewhere.stderr).starts_with("error: nothing listens on 127.0.0.1:"),
        "{}",
        text(&elsewhere.stderr)
    );

    // The image as installed: sshd accepts keys for git (password '*', not locked '!'), and git
    // runs docker.
    let shadow = first.exec_ok(&["getent", "shadow", "git"]);
    assert_eq!(shadow.split(':').nth(1), Some("*"), "{shadow}");
    let groups = first.exec_ok(&["id", "-nG", "git"]);
    assert!(groups.split_whitespace().any(|g| g == "docker"), "{groups}");

    // The first key, added as an admin would with `kubectl exec`.
    let dev = Client::new(port);
    let out = first.exec(
        &["codebuilder-keys", "add", "--admin", "dev"],
        dev.public_key().as_bytes(),
    );
    assert!(out.status.success(), "codebuilder-keys add: {}", both(&out));

    let work = repo_with("main", &app_files("echo built in the container"));
    let first_sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("webapp"), "main"]);
    assert!(
        out.status.success(),
        "first push: {}\ncontainer log:\n{}",
        text(&out.stderr),
        first.logs()
    );
    assert!(
        // The RUN step's line, in BuildKit's plain output: `#4 0.039 built in the container`.
        text(&out.stderr)
            .lines()
            .any(|l| l.starts_with("remote:        #")
                && l.trim_end().ends_with(" built in the container")),
        "{}",
        text(&out.stderr)
    );
    assert!(
        registry
            .tags("webapp")
            .contains(&format!("git-{}", short(&first_sha))),
        "{:?}",
        registry.tags("webapp")
    );

    // The pod goes away; a new one starts on the same volume.
    drop(first);
    let second = Container::start(&args);
    second.wait_for_ssh(port);
    assert_eq!(
        fingerprints(&host_keys(port)),
        host_key_fingerprints,
        "the host keys changed across containers:\n{}",
        second.logs()
    );

    // The key still works, and the repository is there with its history.
    let clones = tempfile::tempdir().unwrap();
    let out = dev.git(
        clones.path(),
        &["clone", "--quiet", &dev.url("webapp"), "c"],
    );
    assert!(
        out.status.success(),
        "clone after the restart: {}\ncontainer log:\n{}",
        text(&out.stderr),
        second.logs()
    );
    assert_eq!(head(&clones.path().join("c")), first_sha);

    // A second push builds and lands.
    fs::write(work.path().join("VERSION"), "2").unwrap();
    let second_sha = commit_all(work.path(), "second");
    let out = dev.git(work.path(), &["push", &dev.url("webapp"), "main"]);
    assert!(
        out.status.success(),
        "second push: {}\ncontainer log:\n{}",
        text(&out.stderr),
        second.logs()
    );
    let mut tags = registry.tags("webapp");
    tags.sort();
    let mut expected = vec![
        format!("git-{}", short(&first_sha)),
        format!("git-{}", short(&second_sha)),
    ];
    expected.sort();
    assert_eq!(tags, expected);
    // Both builds are on record, the first one from the container that is gone.
    let records: Value =
        serde_json::from_str(&second.exec_ok(&["codebuilder-ops", "builds", "webapp", "--json"]))
            .unwrap();
    let revs: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rev"].as_str().unwrap())
        .collect();
    assert_eq!(revs, [first_sha.as_str(), second_sha.as_str()]);
}

#[test]
fn host_keys_and_keys_come_from_read_only_mounts() {
    // A host key as a Secret holds it: the private key alone, read-only.
    let secret = shared_tempdir();
    let key = secret.path().join("ssh_host_ed25519_key");
    let out = output(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&key),
    );
    assert!(out.status.success(), "{}", both(&out));
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    let expected = fingerprints(&[public.trim().to_owned()]);
    fs::remove_file(key.with_extension("pub")).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();

    // Keys as a ConfigMap declares them.
    let port = free_port();
    let ops = Client::new(port);
    let config = shared_tempdir();
    fs::write(
        config.path().join("authorized_keys"),
        format!(
            "# managed by the cluster admin\nops:admin {}",
            ops.public_key()
        ),
    )
    .unwrap();

    // The default home: the image's VOLUME /var/lib/codebuilder (an anonymous volume).
    let container = Container::start(&strings(&[
        "--volume",
        &format!("{}:/etc/codebuilder/host-keys:ro", secret.path().display()),
        "--env",
        "CODEBUILDER_HOST_KEYS=/etc/codebuilder/host-keys",
        "--volume",
        &format!("{}:/etc/codebuilder/keys:ro", config.path().display()),
        "--env",
        "CODEBUILDER_CONFIG_KEYS=/etc/codebuilder/keys/authorized_keys",
        "--env",
        &format!("CODEBUILDER_LISTEN=127.0.0.1:{port}"),
    ]));
    container.wait_for_ssh(port);
    // Exactly the given key: no generated one beside it.
    assert_eq!(
        fingerprints(&host_keys(port)),
        expected,
        "{}",
        container.logs()
    );

    // The declared admin logs in; the key is listed with where it comes from.
    let out = ops.ssh(&["keys:list", "--json"], b"");
    assert!(
        out.status.success(),
        "keys:list: {}\ncontainer log:\n{}",
        text(&out.stderr),
        container.logs()
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "ops", "{listed}");
    assert_eq!(listed[0]["admin"], true, "{listed}");

    // The image's own sshd_config is one its sshd accepts, with the default home's host keys.
    let out = container.exec(&["/usr/sbin/sshd", "-t", "-f", "/etc/ssh/sshd_config"], b"");
    assert!(out.status.success(), "sshd -t: {}", both(&out));
    // helm in the image reads the default chart.
    container.exec_ok(&[
        "sh",
        "-c",
        "codebuilder-build chart myapp /tmp/chart && helm lint /tmp/chart",
    ]);
    // The docker CLI in the image is there for the build hook.
    container.exec_ok(&["docker", "--version"]);
}

/// The engine as codebuilder.yaml wires it: DOCKER_HOST names the socket dind shares in
/// /run/dind, not the usual path.
#[test]
fn builds_reach_the_engine_through_docker_host_on_a_unix_socket() {
    let registry = Registry::start();
    let _images = BuiltImages {
        prefix: format!("{}/", registry.address()),
    };
    let state = shared_tempdir();
    let port = free_port();
    let args = server_args(state.path(), port, &registry, Engine::Dind);
    let container = Container::start(&args);
    container.wait_for_ssh(port);
    let dev = Client::new(port);
    let out = container.exec(
        &["codebuilder-keys", "add", "dev"],
        dev.public_key().as_bytes(),
    );
    assert!(out.status.success(), "{}", both(&out));
    let work = repo_with("main", &app_files("echo through the socket"));
    let sha = head(work.path());
    let out = dev.git(work.path(), &["push", &dev.url("dindapp"), "main"]);
    assert!(
        out.status.success(),
        "push: {}\ncontainer log:\n{}",
        text(&out.stderr),
        container.logs()
    );
    assert!(registry
        .tags("dindapp")
        .contains(&format!("git-{}", short(&sha))));
}

// --- what needs no Docker Engine --------------------------------------------------------------

#[test]
fn rootfs_sshd_config_carries_every_hardening_line() {
    let path = repo_root().join("rootfs/etc/ssh/sshd_config");
    let config = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let missing: Vec<&&str> = HARDENING.iter().filter(|h| !lines.contains(h)).collect();
    assert!(
        missing.is_empty(),
        "{} lacks these lines of codebuilder_sshd::config::HARDENING: {missing:?}",
        path.display()
    );
    for line in ["AllowUsers git", "AuthorizedKeysCommandUser git"] {
        assert!(lines.contains(&line), "no {line:?} in {}", path.display());
    }
    // sshd takes the first value of a keyword: a second one would be dead and misleading.
    let mut seen = BTreeMap::new();
    for line in &lines {
        let keyword = line.split_whitespace().next().unwrap().to_ascii_lowercase();
        if keyword != "hostkey" {
            *seen.entry(keyword).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "keywords given twice: {twice:?}");
    // The command is the binary the Dockerfile installs, root-owned, by absolute path.
    let command = lines
        .iter()
        .find_map(|l| l.strip_prefix("AuthorizedKeysCommand "))
        .expect("no AuthorizedKeysCommand");
    let binary = command.split_whitespace().next().unwrap();
    assert_eq!(binary, "/usr/local/lib/codebuilder/codebuilder-keys");
    let dockerfile = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("/usr/local/lib/codebuilder/"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/lib/codebuilder/codebuilder-sshd\"]"));
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn env(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The mount of the pod volume `volume` in `container`.
fn mount<'a>(container: &'a Value, volume: &str) -> &'a Value {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .unwrap_or_else(|| panic!("container {} does not mount {volume}", container["name"]))
}

/// The name of the pod volume for which `pick` holds.
fn volume_name(pod: &Value, pick: impl Fn(&Value) -> bool) -> String {
    pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| pick(v))
        .and_then(|v| v["name"].as_str())
        .expect("no such volume")
        .to_owned()
}

fn pull_registry(docs: &[Value]) -> String {
    let pod = &object(docs, "Deployment", "codebuilder")["spec"]["template"]["spec"];
    env(container(pod, "codebuilder"))["CODEBUILDER_PULL_REGISTRY"].clone()
}

fn validate(input: &[u8], args: &[&str]) -> Output {
    run_with_stdin(
        Command::new(KUBERNETES_VALIDATE)
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .args(args),
        input,
    )
}

#[test]
fn codebuilder_yaml_is_valid_for_kubernetes() {
    let out = validate(
        b"",
        &[repo_root().join("codebuilder.yaml").to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "kubernetes-validate --strict -k {KUBERNETES_VERSION} codebuilder.yaml:\n{}",
        both(&out)
    );
}

#[test]
fn codebuilder_yaml_wires_the_pod_together() {
    let docs = manifests();
    let namespace = "codebuilder";
    object(&docs, "Namespace", namespace);
    for doc in &docs {
        if !matches!(
            doc["kind"].as_str(),
            Some("Namespace" | "ClusterRole" | "ClusterRoleBinding")
        ) {
            assert_eq!(doc["metadata"]["namespace"], namespace, "{doc}");
        }
    }
    let deployment = object(&docs, "Deployment", "codebuilder");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], labels);
    let pod = &spec["template"]["spec"];

    // codebuilder runs as the pod's service account, bound to a role that may make an app's
    // namespace, its account and binding, and act as that account; helm runs as the app's
    // account, whose role keeps releases (Secrets) and manages what charts contain.
    let account = pod["serviceAccountName"].as_str().unwrap();
    object(&docs, "ServiceAccount", account);
    let binding = of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .find(|b| {
            b["subjects"].as_array().unwrap().iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == account && s["namespace"] == namespace
            })
        })
        .expect("no ClusterRoleBinding for the service account");
    let grants = |role: &str, resource: &str, verb: &str| {
        let role = object(&docs, "ClusterRole", role);
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
    };
    let own = binding["roleRef"]["name"].as_str().unwrap();
    for (resource, verb, granted) in [
        ("namespaces", "create", true),
        ("serviceaccounts", "create", true),
        ("rolebindings", "create", true),
        ("clusterroles", "bind", true),
        ("serviceaccounts", "impersonate", true),
        ("secrets", "get", false),
        ("deployments", "patch", false),
    ] {
        assert_eq!(
            grants(own, resource, verb),
            granted,
            "the ClusterRole {own}: {verb} {resource}"
        );
    }
    for (resource, verb) in [
        ("secrets", "create"),
        ("secrets", "list"),
        ("deployments", "patch"),
        ("services", "create"),
        ("pods", "watch"),
    ] {
        assert!(
            grants("codebuilder-app", resource, verb),
            "the ClusterRole codebuilder-app does not grant {verb} {resource}"
        );
    }

    let codebuilder = container(pod, "codebuilder");
    let settings = env(codebuilder);
    let dind = container(pod, "dind");
    let registry = container(pod, "registry");

    // The state volume: a claim, mounted as codebuilder's home, and not in the engine's
    // container: builds mount nothing of it (the buildpack cache is an engine volume).
    let home = &settings["CODEBUILDER_HOME"];
    let state = codebuilder["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == home.as_str())
        .and_then(|m| m["name"].as_str())
        .unwrap_or_else(|| panic!("nothing is mounted at CODEBUILDER_HOME={home}"))
        .to_owned();
    let claim = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == state.as_str())
        .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .expect("the state volume is not a PersistentVolumeClaim");
    object(&docs, "PersistentVolumeClaim", claim);
    assert!(
        !dind["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == state.as_str()),
        "the engine mounts the state volume"
    );
    // The registry's storage is a claim of its own.
    let storage = volume_name(pod, |v| {
        v["persistentVolumeClaim"].is_object()
            && registry["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == v["name"])
    });
    assert_ne!(storage, state);
    // The engine's data (images, BuildKit's cache) is a claim of its own, so the layer cache
    // survives a restart of the pod.
    let engine_data = dind["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/var/lib/docker")
        .and_then(|m| m["name"].as_str())
        .expect("nothing is mounted at the engine's /var/lib/docker");
    let engine_claim = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == engine_data)
        .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .expect("the engine's data is not a PersistentVolumeClaim");
    object(&docs, "PersistentVolumeClaim", engine_claim);
    assert!(![claim, storage.as_str()].contains(&engine_claim));

    // The engine: dind, privileged, on a unix socket in an emptyDir that only the codebuilder
    // container shares, where DOCKER_HOST points; no TCP listener a build could reach.
    assert_eq!(settings["DOCKER_HOST"], "unix:///run/dind/docker.sock");
    let socket = volume_name(pod, |v| {
        v["emptyDir"].is_object()
            && codebuilder["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == v["name"] && m["mountPath"] == "/run/dind")
    });
    assert_eq!(mount(dind, &socket)["mountPath"], "/run/dind");
    assert!(registry["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["name"] != socket.as_str()));
    assert_eq!(dind["securityContext"]["privileged"], true);
    assert_eq!(env(dind)["DOCKER_TLS_CERTDIR"], "");
    let dind_args: Vec<&str> = dind["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        dind_args.first(),
        Some(&"dockerd"),
        "without `dockerd` first, docker:dind adds tcp://0.0.0.0:2375"
    );
    assert!(
        dind_args.contains(&"--host=unix:///run/dind/docker.sock"),
        "{dind_args:?}"
    );
    assert!(
        !dind_args.iter().any(|a| a.contains("tcp://")),
        "{dind_args:?}"
    );

    // Push to the registry beside the engine, with htpasswd credentials only codebuilder's
    // `docker push` gets; nodes pull through the proxy on their loopback, which adds them to
    // GETs only.
    assert_eq!(registry["ports"][0]["containerPort"], 5000);
    assert_eq!(env(registry)["REGISTRY_AUTH"], "htpasswd");
    assert_eq!(env(registry)["REGISTRY_STORAGE_DELETE_ENABLED"], "true");
    let push_auth = volume_name(pod, |v| {
        v["secret"]["secretName"] == "codebuilder-registry-auth"
            && v["secret"]["items"][0]["key"] == "config.json"
    });
    assert_eq!(
        mount(codebuilder, &push_auth)["mountPath"],
        settings["CODEBUILDER_REGISTRY_AUTH"]
    );
    assert_eq!(settings["CODEBUILDER_REGISTRY"], "127.0.0.1:5000");
    let proxy = object(&docs, "DaemonSet", "codebuilder-registry-proxy");
    let proxy_port = &proxy["spec"]["template"]["spec"]["containers"][0]["ports"][0];
    assert_eq!(
        settings["CODEBUILDER_PULL_REGISTRY"],
        format!("127.0.0.1:{}", proxy_port["hostPort"])
    );
    // The proxy adds the registry's password: on the node's loopback only.
    assert_eq!(proxy_port["hostIP"], "127.0.0.1");
    let registry_service = object(&docs, "Service", "codebuilder-registry");
    assert_eq!(registry_service["spec"]["type"], "ClusterIP");
    assert_eq!(&registry_service["spec"]["selector"], labels);
    let proxy_config = object(&docs, "ConfigMap", "codebuilder-registry-proxy")["data"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect::<String>();
    assert!(
        proxy_config.contains(&format!("listen {};", proxy_port["containerPort"])),
        "{proxy_config}"
    );
    assert!(
        proxy_config.contains("limit_except GET {"),
        "{proxy_config}"
    );
    assert!(
        proxy_config.contains("proxy_set_header Authorization \"${REGISTRY_AUTHORIZATION}\";"),
        "{proxy_config}"
    );
    assert!(
        proxy_config.contains(&format!(
            "proxy_pass http://codebuilder-registry.{namespace}.svc:{};",
            registry_service["spec"]["ports"][0]["port"]
        )),
        "{proxy_config}"
    );

    // ssh from outside.
    let ssh = object(&docs, "Service", "codebuilder");
    assert_eq!(ssh["spec"]["type"], "LoadBalancer");
    assert_eq!(ssh["spec"]["ports"][0]["port"], 22);
    assert_eq!(&ssh["spec"]["selector"], labels);
    assert_eq!(codebuilder["ports"][0]["containerPort"], 22);
    // Probed without a connection, which sshd would log (codebuilder-sshd ready).
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            codebuilder[probe]["exec"]["command"],
            serde_json::json!(["/usr/local/lib/codebuilder/codebuilder-sshd", "ready"])
        );
    }

    // Host keys from an optional Secret, keys from an optional ConfigMap, both read-only; the
    // ConfigMap as a folder (a subPath mount would never see an update).
    let host_keys = volume_name(pod, |v| v["secret"]["optional"] == true);
    let host_keys_mount = mount(codebuilder, &host_keys);
    assert_eq!(host_keys_mount["readOnly"], true);
    assert_eq!(
        host_keys_mount["mountPath"],
        settings["CODEBUILDER_HOST_KEYS"]
    );
    let keys = volume_name(pod, |v| v["configMap"]["optional"] == true);
    let keys_mount = mount(codebuilder, &keys);
    assert_eq!(keys_mount["readOnly"], true);
    assert!(keys_mount["subPath"].is_null());
    assert_eq!(
        Path::new(&settings["CODEBUILDER_CONFIG_KEYS"])
            .parent()
            .unwrap(),
        Path::new(keys_mount["mountPath"].as_str().unwrap())
    );

    // helm's kubeconfig is in the image.
    let kubeconfig = settings["KUBECONFIG"].trim_start_matches('/');
    assert!(
        repo_root().join("rootfs").join(kubeconfig).is_file(),
        "rootfs/{kubeconfig} is missing"
    );
}

#[test]
fn the_default_chart_pulls_through_the_proxy_and_is_valid_for_kubernetes() {
    let pull = pull_registry(&manifests());
    let scratch = tempfile::tempdir().unwrap();
    let chart = scratch.path().join("chart");
    write_default_chart("myapp", &chart);
    // What the build runs, with the settings of codebuilder.yaml.
    let out = output(
        Command::new("helm")
            .args(["template", "myapp"])
            .arg(&chart)
            .args(["--namespace", "myapp"])
            .args(["--set-string", &format!("image.repository={pull}/myapp")])
            .args(["--set-string", "image.tag=git-abc1234"]),
    );
    assert!(out.status.success(), "helm template: {}", both(&out));
    let rendered = text(&out.stdout);
    assert!(
        rendered.contains(&format!("image: \"{pull}/myapp:git-abc1234\"")),
        "{rendered}"
    );
    let out = validate(rendered.as_bytes(), &["-"]);
    assert!(
        out.status.success(),
        "kubernetes-validate --strict -k {KUBERNETES_VERSION} on the rendered chart:\n{}\n{rendered}",
        both(&out)
    );
}
