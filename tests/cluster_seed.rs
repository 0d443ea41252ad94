//! The seed's own usage, on the test cluster: codebuilder's image running from codebuilder.yaml,
//! the first key added with `kubectl exec`, a push, the app live, an upgrade, and a restart
//! that loses nothing.
//!
//! - codebuilder's image is built as README step 1 says; the public images the pod runs beside
//!   (`registry:2`, `docker:28-dind`, `nginx:1.28-alpine`), which nothing here can pull, are
//!   stand-ins built from Debian packages (tests/fixtures/standins). All are imported into the
//!   node's containerd under the names the manifest uses.
//! - codebuilder.yaml is made into its hostNetwork form by named edits, each for a reason of this
//!   cluster (no pod network, no DNS, no kube-proxy, no provisioner: scripts/cluster.sh). The
//!   shipped file stays as users apply it; an object of it the edits do not cover fails the test.
//! - README's numbered cluster steps run as written, but for the names the form changes.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use codebuilder_tests::cluster::{self, web_app_files, Cluster, HostPort, ROLLOUT};
use codebuilder_tests::image::{self, fingerprints, host_keys};
use codebuilder_tests::manifest::manifests;
use codebuilder_tests::standins::{self, STANDINS};
use codebuilder_tests::*;
use serde_json::{json, Value};

/// codebuilder's image, under the name the hostNetwork form runs (never pulled).
const IMAGE: &str = "codebuilder-incluster:test";
const NAMESPACE: &str = "codebuilder";
/// The ConfigMap the hostNetwork form adds: what this cluster needs codebuilder to know.
const TEST_CONFIG: &str = "codebuilder-test";
const TEST_CONFIG_DIR: &str = "/etc/codebuilder/test";

/// Where the hostNetwork form puts what the shipped file has on the pod's own network.
struct Form {
    /// sshd (the shipped 22).
    ssh: u16,
    /// The registry (5000).
    registry: u16,
    /// The registry proxy on each node's loopback (5555).
    proxy: u16,
    /// The API server, as this machine reaches it (`kubernetes.default.svc` has no DNS here).
    api_server: String,
    /// The operator's values that put apps on the host network (`CODEBUILDER_DEPLOY_VALUES`).
    app_values: String,
}

type Edit = fn(&mut Value, &Form);

/// Every object of codebuilder.yaml, and what the hostNetwork form changes in it: `(kind,
/// name, why, edit)`. `None`: unchanged, and why it may stay so.
const EDITS: &[(&str, &str, &str, Option<Edit>)] = &[
    ("Namespace", "codebuilder", "as shipped", None),
    ("ServiceAccount", "codebuilder", "as shipped", None),
    ("ClusterRole", "codebuilder-deployer", "as shipped", None),
    ("ClusterRole", "codebuilder-app", "as shipped", None),
    ("ClusterRoleBinding", "codebuilder-deployer", "as shipped", None),
    (
        "PersistentVolumeClaim",
        "codebuilder-state",
        "as shipped: the test's PersistentVolumes bind it (no provisioner here)",
        None,
    ),
    (
        "PersistentVolumeClaim",
        "codebuilder-registry",
        "as shipped: the test's PersistentVolumes bind it",
        None,
    ),
    (
        "PersistentVolumeClaim",
        "codebuilder-docker",
        "as shipped: the test's PersistentVolumes bind it",
        None,
    ),
    (
        "Deployment",
        "codebuilder",
        "the pod on the node's network (no pod network here)",
        Some(host_network),
    ),
    (
        "Deployment",
        "codebuilder",
        "the image built here, which no registry has",
        Some(local_image),
    ),
    (
        "Deployment",
        "codebuilder",
        "ports off 22 and 5000, which the node's network shares",
        Some(server_ports),
    ),
    (
        "Deployment",
        "codebuilder",
        "the API server on loopback (no DNS for kubernetes.default.svc)",
        Some(api_server),
    ),
    (
        "Deployment",
        "codebuilder",
        "apps on the node's network too, as the operator's values and exceptions",
        Some(app_values),
    ),
    (
        "Deployment",
        "codebuilder",
        "an engine on the node's network makes no bridge and no iptables rules; builds use the node's network",
        Some(engine_without_bridge),
    ),
    (
        "Deployment",
        "codebuilder",
        "probes on loopback (a hostNetwork pod's IP is the node's)",
        Some(server_probes),
    ),
    (
        "Service",
        "codebuilder",
        "as shipped: no load balancer here, the test reaches sshd on loopback",
        None,
    ),
    (
        "Service",
        "codebuilder-registry",
        "as shipped: unused here, the proxy reaches the registry on loopback",
        None,
    ),
    (
        "NetworkPolicy",
        "codebuilder",
        "the ports moved, and the proxy on the node's network carries the node's address (README)",
        Some(network_policy),
    ),
    (
        "ConfigMap",
        "codebuilder-registry-proxy",
        "the proxy on the node's loopback, to the registry on loopback (no DNS)",
        Some(proxy_config),
    ),
    (
        "DaemonSet",
        "codebuilder-registry-proxy",
        "the proxy on the node's network, on its own port, probed on loopback",
        Some(proxy_host_network),
    ),
];

fn pod_spec(object: &mut Value) -> &mut Value {
    &mut object["spec"]["template"]["spec"]
}

fn container_mut<'a>(object: &'a mut Value, name: &str) -> &'a mut Value {
    pod_spec(object)["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("codebuilder.yaml: no container {name}"))
}

/// Sets the environment variable `name` of a container, which codebuilder.yaml must have.
fn set_env(container: &mut Value, name: &str, value: &str) {
    let which = container["name"].to_string();
    let entry = container["env"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("codebuilder.yaml: container {which} has no {name}"));
    *entry = json!({"name": name, "value": value});
}

/// Adds an environment variable that codebuilder.yaml does not set.
fn add_env(container: &mut Value, name: &str, value: &str) {
    let which = container["name"].to_string();
    let env = container["env"].as_array_mut().unwrap();
    assert!(
        env.iter().all(|e| e["name"] != name),
        "codebuilder.yaml: container {which} sets {name} already"
    );
    env.push(json!({"name": name, "value": value}));
}

fn set_port(container: &mut Value, name: &str, port: u16) {
    let which = container["name"].to_string();
    let entry = container["ports"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("codebuilder.yaml: container {which} has no port {name}"));
    entry["containerPort"] = json!(port);
    if entry.get("hostPort").is_some() {
        entry["hostPort"] = json!(port);
    }
}

fn host_network(object: &mut Value, _: &Form) {
    let spec = pod_spec(object);
    spec["hostNetwork"] = json!(true);
    spec["dnsPolicy"] = json!("ClusterFirstWithHostNet");
}

fn local_image(object: &mut Value, _: &Form) {
    let codebuilder = container_mut(object, "codebuilder");
    assert_eq!(codebuilder["image"], "YOUR-REGISTRY/codebuilder:latest");
    codebuilder["image"] = json!(IMAGE);
    codebuilder["imagePullPolicy"] = json!("IfNotPresent");
}

fn server_ports(object: &mut Value, form: &Form) {
    let codebuilder = container_mut(object, "codebuilder");
    set_port(codebuilder, "ssh", form.ssh);
    set_env(
        codebuilder,
        "CODEBUILDER_LISTEN",
        &format!("127.0.0.1:{}", form.ssh),
    );
    set_env(
        codebuilder,
        "CODEBUILDER_REGISTRY",
        &format!("127.0.0.1:{}", form.registry),
    );
    set_env(
        codebuilder,
        "CODEBUILDER_PULL_REGISTRY",
        &format!("127.0.0.1:{}", form.proxy),
    );
    let registry = container_mut(object, "registry");
    set_port(registry, "registry", form.registry);
    add_env(
        registry,
        "REGISTRY_HTTP_ADDR",
        &format!("127.0.0.1:{}", form.registry),
    );
}

/// Mounts the test's ConfigMap (kubeconfig, values) in the codebuilder container.
fn mount_test_config(object: &mut Value) {
    let volumes = pod_spec(object)["volumes"].as_array_mut().unwrap();
    if volumes.iter().any(|v| v["name"] == TEST_CONFIG) {
        return;
    }
    volumes.push(json!({"name": TEST_CONFIG, "configMap": {"name": TEST_CONFIG}}));
    container_mut(object, "codebuilder")["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": TEST_CONFIG, "mountPath": TEST_CONFIG_DIR, "readOnly": true}));
}

fn api_server(object: &mut Value, _: &Form) {
    mount_test_config(object);
    set_env(
        container_mut(object, "codebuilder"),
        "KUBECONFIG",
        &format!("{TEST_CONFIG_DIR}/kubeconfig"),
    );
}

fn app_values(object: &mut Value, _: &Form) {
    mount_test_config(object);
    let codebuilder = container_mut(object, "codebuilder");
    add_env(
        codebuilder,
        "CODEBUILDER_DEPLOY_VALUES",
        &format!("{TEST_CONFIG_DIR}/values.json"),
    );
    set_env(
        codebuilder,
        "CODEBUILDER_POD_SECURITY_ALLOW",
        cluster::POD_SECURITY_ALLOW,
    );
    let timeout = format!("{}s", ROLLOUT.as_secs());
    set_env(codebuilder, "CODEBUILDER_DEPLOY_TIMEOUT", &timeout);
}

fn engine_without_bridge(object: &mut Value, _: &Form) {
    let dind = container_mut(object, "dind");
    let args = dind["args"].as_array_mut().unwrap();
    assert_eq!(args[0], "dockerd");
    args.extend(["--bridge=none", "--iptables=false", "--ip-forward=false"].map(|a| json!(a)));
    add_env(
        container_mut(object, "codebuilder"),
        "CODEBUILDER_BUILD_NETWORK",
        "host",
    );
}

fn server_probes(object: &mut Value, _: &Form) {
    let registry = container_mut(object, "registry");
    for probe in ["readinessProbe", "livenessProbe"] {
        registry[probe]["tcpSocket"]["host"] = json!("127.0.0.1");
    }
}

fn network_policy(object: &mut Value, form: &Form) {
    let rules = object["spec"]["ingress"].as_array_mut().unwrap();
    let ssh = &mut rules[0]["ports"][0];
    assert_eq!(ssh["port"], 22);
    ssh["port"] = json!(form.ssh);
    let registry = &mut rules[1];
    assert_eq!(registry["ports"][0]["port"], 5000);
    registry["ports"][0]["port"] = json!(form.registry);
    // The node's address: this cluster's only node is 127.0.0.1.
    registry["from"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ipBlock": {"cidr": "127.0.0.1/32"}}));
}

fn proxy_config(object: &mut Value, form: &Form) {
    let template = &mut object["data"]["registry-proxy.conf.template"];
    let text = template.as_str().unwrap();
    let replaced = replace_once(
        &replace_once(
            text,
            "listen 5555;",
            &format!("listen 127.0.0.1:{};", form.proxy),
        ),
        "proxy_pass http://codebuilder-registry.codebuilder.svc:5000;",
        &format!("proxy_pass http://127.0.0.1:{};", form.registry),
    );
    *template = json!(replaced);
}

fn proxy_host_network(object: &mut Value, form: &Form) {
    host_network(object, form);
    let nginx = container_mut(object, "nginx");
    set_port(nginx, "registry", form.proxy);
    for probe in ["readinessProbe", "livenessProbe"] {
        nginx[probe]["httpGet"]["host"] = json!("127.0.0.1");
    }
}

/// `text` with `from` replaced by `to`, where `from` must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected {from:?} once in:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// codebuilder.yaml in its hostNetwork form, and the ConfigMap the form adds.
fn host_network_form(form: &Form) -> Vec<Value> {
    let mut docs = manifests();
    for doc in &docs {
        let (kind, name) = (
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap(),
        );
        assert!(
            EDITS.iter().any(|(k, n, _, _)| *k == kind && *n == name),
            "codebuilder.yaml has {kind} {name}, which the hostNetwork form does not cover: add its edits to EDITS, or say why it needs none"
        );
    }
    for (kind, name, why, edit) in EDITS {
        let doc = docs
            .iter_mut()
            .find(|d| d["kind"] == *kind && d["metadata"]["name"] == *name)
            .unwrap_or_else(|| {
                panic!("EDITS names {kind} {name} ({why}), which codebuilder.yaml no longer has")
            });
        if let Some(edit) = edit {
            edit(doc, form);
        }
    }
    let shipped =
        fs::read_to_string(repo_root().join("rootfs/etc/codebuilder/kubeconfig")).unwrap();
    docs.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": TEST_CONFIG, "namespace": NAMESPACE},
        "data": {
            "kubeconfig": replace_once(&shipped, "https://kubernetes.default.svc", &form.api_server),
            "values.json": form.app_values,
        },
    }));
    docs
}

/// hostPath PersistentVolumes for the claims of codebuilder.yaml, each bound to its claim, in
/// folders under `root` (this cluster has no provisioner).
fn persistent_volumes(root: &Path) -> Vec<Value> {
    manifests()
        .iter()
        .filter(|d| d["kind"] == "PersistentVolumeClaim")
        .map(|claim| {
            let name = claim["metadata"]["name"].as_str().unwrap();
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": format!("{name}-{}", std::process::id())},
                "spec": {
                    "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                    "accessModes": claim["spec"]["accessModes"],
                    "storageClassName": "",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": root.join(name), "type": "DirectoryOrCreate"},
                    "claimRef": {"namespace": NAMESPACE, "name": name},
                },
            })
        })
        .collect()
}

/// The ```sh blocks of README's numbered step `number` of "Run it on a cluster".
fn readme_step(number: u32) -> String {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Run it on a cluster"))
        .expect("README has no section 'Run it on a cluster'");
    let step = section
        .split("\n### ")
        .find(|s| s.starts_with(&format!("{number}. ")))
        .unwrap_or_else(|| panic!("README's cluster steps have no step {number}"));
    let blocks: Vec<&str> = step
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty(), "README's step {number} has no sh block");
    blocks.concat()
}

/// What is made here, and removed when the test ends, whatever its outcome.
struct Installed<'a> {
    cluster: &'a Cluster,
    manifest: PathBuf,
    volumes: PathBuf,
    apps: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for app in &self.apps {
            self.cluster.remove_app(app);
        }
        // With --wait: the next test binary applies codebuilder.yaml into the same namespace.
        let _ = self.cluster.kubectl(&[
            "delete",
            "-f",
            self.manifest.to_str().unwrap(),
            "--ignore-not-found",
            "--wait",
            "--timeout=180s",
        ]);
        let _ = self.cluster.kubectl(&[
            "delete",
            "-f",
            self.volumes.to_str().unwrap(),
            "--ignore-not-found",
            "--wait",
        ]);
    }
}

/// Runs a README step's shell with `KUBECONFIG`, in `dir`, after `substitutions` (each must
/// occur in it), within `limit`.
fn run_step(
    cluster: &Cluster,
    number: u32,
    dir: &Path,
    substitutions: &[(&str, &str)],
    limit: Duration,
) -> String {
    let mut script = readme_step(number);
    for (from, to) in substitutions {
        assert!(
            script.contains(from),
            "README's step {number} no longer has {from:?}:\n{script}"
        );
        script = script.replace(from, to);
    }
    let out = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .args(["bash", "-euo", "pipefail", "-c", &script])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "README step {number} failed:\n{script}\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The first line of an HTTP answer to `request`, sent to 127.0.0.1:`port`.
fn status_line(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// The addresses the processes of the pod `uid` listen on (a hostNetwork pod's are the node's).
fn listening_addresses(uid: &str) -> Vec<String> {
    let out = Command::new("ss").args(["-ltnpH"]).output().unwrap();
    let mine: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_to_string(e.path().join("cgroup"))
                .is_ok_and(|c| c.contains(&format!("pod{uid}")))
        })
        .map(|e| format!("pid={},", e.file_name().to_string_lossy()))
        .collect();
    assert!(!mine.is_empty(), "no process of pod {uid} found");
    let mut addresses: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| mine.iter().any(|pid| l.contains(pid.as_str())))
        .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// What a user checks is kept across a restart: the host keys, the keys, the refs, the tags.
#[derive(Debug, PartialEq)]
struct Kept {
    host_keys: Vec<String>,
    keys: Vec<(String, String)>,
    refs: String,
    tags: String,
}

fn kept(client: &Client, form: &Form, app: &str) -> Kept {
    let keys = json_array(&client.ssh(&["keys:list", "--json"], b""))
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_owned(),
                k["fingerprint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let refs = client.git(Path::new("/"), &["ls-remote", &client.url(app)]);
    assert!(refs.status.success(), "{}", text(&refs.stderr));
    Kept {
        host_keys: fingerprints(&host_keys(form.ssh)),
        keys,
        refs: text(&refs.stdout),
        tags: http_get(form.proxy, &format!("/v2/{app}/tags/list")).unwrap(),
    }
}

/// Waits until sshd on `port` serves host keys.
fn wait_for_ssh(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while host_keys(port).is_empty() {
        assert!(
            Instant::now() < deadline,
            "sshd did not answer on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the app serves `body`.
fn until_served(host: &HostPort, body: &str) {
    let deadline = Instant::now() + ROLLOUT;
    while host.served(ROLLOUT) != body {
        assert!(Instant::now() < deadline, "the app does not serve {body:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The time each phase took, said on the test's output (README and the issue's note cite it).
struct Lap(Instant);

impl Lap {
    fn start() -> Self {
        Self(Instant::now())
    }

    fn said(&mut self, what: &str) {
        eprintln!("seed: {what} in {:.1?}", self.0.elapsed());
        self.0 = Instant::now();
    }
}

#[test]
fn codebuilder_yaml_runs_on_the_cluster_and_a_restart_loses_nothing() {
    require_docker();
    let cluster = Cluster::from_env();
    let containerd = std::env::var("CODEBUILDER_TEST_CONTAINERD").unwrap_or_else(|_| {
        panic!("CODEBUILDER_TEST_CONTAINERD is not set: name the node's containerd socket (scripts/cluster.sh writes it to DIR/env), where the images nobody can pull are imported")
    });
    let mut lap = Lap::start();
    // Step 1: the image, and the stand-ins, in the node's containerd.
    image::build(IMAGE, &[]).unwrap_or_else(|e| panic!("{e}"));
    standins::build_standins();
    lap.said("images built");
    standins::import_into_containerd(Path::new(&containerd), IMAGE, IMAGE);
    for (folder, official) in STANDINS {
        standins::import_into_containerd(
            Path::new(&containerd),
            &standins::local_name(folder),
            official,
        );
    }

    lap.said("images imported into the node's containerd");
    let app_host = HostPort::new();
    let form = Form {
        ssh: free_port(),
        registry: free_port(),
        proxy: free_port(),
        api_server: cluster.kubectl_ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]),
        app_values: fs::read_to_string(&app_host.values).unwrap(),
    };
    let dir = shared_tempdir();
    let manifest = dir.path().join("codebuilder.json");
    let list =
        |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    fs::write(&manifest, list(host_network_form(&form))).unwrap();
    let volumes = dir.path().join("volumes.json");
    fs::write(
        &volumes,
        list(persistent_volumes(&dir.path().join("volumes"))),
    )
    .unwrap();
    // A cluster without codebuilder, as a user's is: the other tests' binaries apply its RBAC.
    cluster.kubectl_ok(&[
        "delete",
        "-f",
        repo_root().join("codebuilder.yaml").to_str().unwrap(),
        "--ignore-not-found",
        "--wait",
        "--timeout=180s",
    ]);
    let app = cluster::app_name("seed");
    let installed = Installed {
        cluster: &cluster,
        manifest: manifest.clone(),
        volumes: volumes.clone(),
        apps: vec![app.clone()],
        _dir: dir,
    };
    cluster.kubectl_ok(&["create", "-f", volumes.to_str().unwrap()]);

    // Steps 2 to 5, as written.
    let work = shared_tempdir();
    let client = Client::new(form.ssh);
    let registry = format!("127.0.0.1:{}", form.registry);
    run_step(
        &cluster,
        2,
        work.path(),
        &[("-f codebuilder.yaml", &format!("-f {}", manifest.display()))],
        Duration::from_secs(60),
    );
    run_step(
        &cluster,
        3,
        work.path(),
        &[("127.0.0.1:5000", &registry)],
        Duration::from_secs(60),
    );
    run_step(&cluster, 4, work.path(), &[], Duration::from_secs(300));
    lap.said("steps 2 to 4: applied, the Secret made, the rollout done");
    let pub_key = client.dir.path().join("id.pub");
    let added = run_step(
        &cluster,
        5,
        work.path(),
        &[("~/.ssh/id_ed25519.pub", pub_key.to_str().unwrap())],
        Duration::from_secs(60),
    );
    assert!(added.contains("me"), "{added}");
    wait_for_ssh(form.ssh);

    // Step 6: a push serves the app on loopback, a second one upgrades it.
    let repo = repo_with("main", &web_app_files("one\n"));
    let out = client.git(repo.path(), &["push", &client.url(&app), "main"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let sha = head(repo.path());
    assert!(
        stderr.contains(&format!("-----> Done: {app} {} is live", short(&sha))),
        "{stderr}"
    );
    assert_eq!(app_host.served(ROLLOUT), "one\n");
    lap.said("first push, the app live");
    write_files(repo.path(), &[("www/index.html", b"two\n")]);
    let second = commit_all(repo.path(), "two");
    let out = client.git(repo.path(), &["push", &client.url(&app), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until_served(&app_host, "two\n");
    lap.said("second push, the upgrade live");
    // The image in the registry, read through the proxy on loopback.
    let tags = http_get(form.proxy, &format!("/v2/{app}/tags/list")).unwrap();
    for commit in [&sha, &second] {
        assert!(tags.contains(&format!("git-{}", short(commit))), "{tags}");
    }

    // The proxy forwards reads only, and answers on the node's loopback only.
    assert_eq!(
        status_line(form.proxy, &format!("PUT /v2/{app}/manifests/stolen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")),
        "HTTP/1.1 403 Forbidden"
    );
    let proxy_pod = cluster.kubectl_ok(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=registry-proxy",
        "-o",
        "jsonpath={.items[0].metadata.uid}",
    ]);
    assert_eq!(
        listening_addresses(&proxy_pod),
        [format!("127.0.0.1:{}", form.proxy)]
    );
    // sshd's probe opens no connection: nothing in the pod's log for it.
    let log = cluster.kubectl_ok(&[
        "-n",
        NAMESPACE,
        "logs",
        "deploy/codebuilder",
        "-c",
        "codebuilder",
    ]);
    assert!(!log.contains("kex_exchange_identification"), "{log}");

    // A restart keeps the host keys, the keys, the repository and the registry's tags.
    let before = kept(&client, &form, &app);
    cluster.kubectl_ok(&["-n", NAMESPACE, "rollout", "restart", "deploy/codebuilder"]);
    cluster.kubectl_ok(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deploy/codebuilder",
        "--timeout=300s",
    ]);
    wait_for_ssh(form.ssh);
    lap.said("rollout restart");
    assert_eq!(kept(&client, &form, &app), before);
    write_files(repo.path(), &[("www/index.html", b"three\n")]);
    commit_all(repo.path(), "three");
    let out = client.git(repo.path(), &["push", &client.url(&app), "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until_served(&app_host, "three\n");
    lap.said("the push after the restart live");
    drop(installed);
}
