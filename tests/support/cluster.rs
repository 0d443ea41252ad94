//! The Kubernetes cluster the deploy tests run against: the one `scripts/test.sh` starts on
//! loopback (`scripts/cluster.sh up`), or the one a given `KUBECONFIG` names. Never skipped:
//! without a cluster these tests fail and say how to get one.
//!
//! codebuilder deploys as its own ServiceAccount with the RBAC of `codebuilder.yaml` itself,
//! applied for real, so that the tests and the shipped manifest cannot drift apart. Test pods
//! use `hostNetwork` and probe 127.0.0.1 (these machines have no pod network), through the
//! operator's values file (`CODEBUILDER_DEPLOY_VALUES`) and the Pod Security exceptions it
//! needs (`CODEBUILDER_POD_SECURITY_ALLOW`), as an operator would configure it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_port, repo_root, require_docker, shared_tempdir, text, Client, Server};

/// codebuilder's own ServiceAccount, from codebuilder.yaml.
pub const ACCOUNT: &str = "codebuilder";
pub const NAMESPACE: &str = "codebuilder";

pub struct Cluster {
    /// The admin's kubeconfig: the tests' own view of the cluster.
    pub kubeconfig: String,
    /// A registry this machine pushes to and the cluster's node pulls from.
    pub registry: String,
    /// Kubeconfigs of ServiceAccounts, readable by the git user (sshd runs the build as git).
    dir: tempfile::TempDir,
}

/// The cluster, with codebuilder.yaml applied (once per test binary).
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_else(|_| {
            panic!("no Kubernetes cluster: KUBECONFIG is not set. Run scripts/test.sh, which starts one on loopback (scripts/cluster.sh up), or set KUBECONFIG and CODEBUILDER_TEST_REGISTRY")
        });
        let registry = std::env::var("CODEBUILDER_TEST_REGISTRY").unwrap_or_else(|_| {
            panic!("KUBECONFIG is set but CODEBUILDER_TEST_REGISTRY is not: name a registry this machine can push to and the cluster's nodes pull from")
        });
        let cluster = Cluster {
            kubeconfig,
            registry,
            dir: shared_tempdir(),
        };
        cluster.install_codebuilder();
        cluster
    })
}

impl Cluster {
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("cannot run kubectl: run scripts/deps.sh")
    }

    /// kubectl that must succeed; its standard output.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        Command::new("helm")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("cannot run helm: run scripts/deps.sh")
    }

    /// `helm status APP -n APP` as JSON, or Null when there is no release.
    pub fn release(&self, app: &str) -> serde_json::Value {
        let out = self.helm(&["status", app, "-n", app, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// `kubectl apply -f codebuilder.yaml`, as README's cluster steps do. The pod cannot run
    /// here (its images cannot be pulled, its volumes have no provisioner): it is scaled to
    /// zero, and the per-node registry proxy removed, so that they do not hold host ports.
    fn install_codebuilder(&self) {
        let manifest = repo_root().join("codebuilder.yaml");
        self.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
        self.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "scale",
            "deployment/codebuilder",
            "--replicas=0",
        ]);
        self.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "delete",
            "daemonset/codebuilder-registry-proxy",
            "--ignore-not-found",
        ]);
    }

    /// A kubeconfig for the ServiceAccount `account` of codebuilder's namespace, made from the
    /// one the image ships (`rootfs/etc/codebuilder/kubeconfig`) with this cluster's address,
    /// CA and a token of that account in place of the pod's. Each call writes a folder of its
    /// own: tests run in parallel, and a file rewritten in place while another test's helm
    /// reads it is an empty CA ("certificate signed by unknown authority").
    pub fn account_kubeconfig(&self, account: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.dir.path().join(format!(
            "{account}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let token =
            self.kubectl_ok(&["-n", NAMESPACE, "create", "token", account, "--duration=6h"]);
        let server = self.kubectl_ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        let ca = self.kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ]);
        let ca = Command::new("base64")
            .arg("--decode")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(ca.trim().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        let write = |name: &str, contents: &[u8]| {
            let path = dir.join(name);
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            path
        };
        let ca = write("ca.crt", &ca.stdout);
        let token = write("token", token.trim().as_bytes());
        let shipped =
            fs::read_to_string(repo_root().join("rootfs/etc/codebuilder/kubeconfig")).unwrap();
        let config = shipped
            .replace("https://kubernetes.default.svc", server.trim())
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                ca.to_str().unwrap(),
            )
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                token.to_str().unwrap(),
            );
        write("kubeconfig", config.as_bytes())
            .to_string_lossy()
            .into_owned()
    }

    /// Removes an app's release and namespace (best effort, for the end of a test).
    pub fn remove_app(&self, app: &str) {
        let _ = self.helm(&["uninstall", app, "-n", app, "--wait"]);
        let _ = self.kubectl(&["delete", "namespace", app, "--wait=false"]);
    }
}

/// How long a test deploy may take (`CODEBUILDER_DEPLOY_TIMEOUT`), and a scale-up to serve.
/// A Recreate rollout starts the new pod once the old one is gone from the API, and this
/// kubelet (1.20) removes a deleted pod only after its stopped sandbox: at once, usually, but
/// when the sandbox stopped before the app's container was cleaned up, at the next container
/// garbage collection (every minute) and status sync (every 10 s): 61 s seen, 72 s at worst.
pub const ROLLOUT: Duration = Duration::from_secs(120);

/// What the operator values of [`HostPort`] need of the Pod Security check: hostNetwork, and
/// the host ports it makes of every containerPort. The operator's values only: an app's own
/// chart gets no exception.
pub const POD_SECURITY_ALLOW: &str = "hostNetwork,hostPorts";

/// A codebuilder that deploys to the test cluster as `account`, with the operator values of
/// `host` (hostNetwork on its own port) and the exceptions they need (`POD_SECURITY_ALLOW`),
/// `ROLLOUT` to deploy in, and `settings` of the test's own.
pub fn deploying_server(account: &str, host: &HostPort, settings: &[(&str, &str)]) -> Server {
    require_docker();
    let cluster = cluster();
    let kubeconfig = cluster.account_kubeconfig(account);
    let timeout = format!("{}s", ROLLOUT.as_secs());
    let mut env = vec![
        ("KUBECONFIG", kubeconfig.as_str()),
        ("CODEBUILDER_REGISTRY", cluster.registry.as_str()),
        ("CODEBUILDER_DEPLOY_VALUES", host.values.to_str().unwrap()),
        ("CODEBUILDER_DEPLOY_TIMEOUT", timeout.as_str()),
        ("CODEBUILDER_BUILD_NETWORK", "host"),
        ("CODEBUILDER_POD_SECURITY_ALLOW", POD_SECURITY_ALLOW),
    ];
    env.extend_from_slice(settings);
    Server::start_with(&env)
}

/// A repository whose own chart has one template, and a Dockerfile whose image holds no
/// program: what the tests of what a chart may do push.
pub fn chart_repo(template: &str) -> tempfile::TempDir {
    crate::repo_with(
        "main",
        &[
            (
                "Dockerfile",
                b"FROM scratch\nCOPY Dockerfile /Dockerfile\n".to_vec(),
            ),
            (
                "chart/Chart.yaml",
                b"apiVersion: v2\nname: hostile\nversion: 0.1.0\n".to_vec(),
            ),
            ("chart/templates/t.yaml", template.as_bytes().to_vec()),
        ],
    )
}

/// An app name of this test run.
pub fn app_name(what: &str) -> String {
    format!("cb-{what}-{}", std::process::id())
}

/// The one `error:` line the hook printed (git pads remote lines with spaces).
pub fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .map(str::trim_end)
        .find(|l| l.starts_with("remote: error:"))
        .unwrap_or_default()
}

/// `git push` of `main` to `app`: whether it succeeded, and what git printed.
pub fn push(client: &Client, dir: &std::path::Path, app: &str) -> (bool, String) {
    let out = client.git(dir, &["push", &client.url(app), "main"]);
    (out.status.success(), text(&out.stderr))
}

/// What a test app needs of the cluster: its own host port (pods use the host's network) and
/// the operator's values file that says so.
pub struct HostPort {
    pub port: u16,
    pub values: PathBuf,
    _dir: tempfile::TempDir,
}

impl HostPort {
    pub fn new() -> Self {
        let port = free_port();
        Self::with_values(
            port,
            serde_json::json!({
                "hostNetwork": true,
                "port": port,
                "strategy": {"type": "Recreate"},
                "terminationGracePeriodSeconds": 2,
                "readinessProbe": {
                    "tcpSocket": {"host": "127.0.0.1", "port": port},
                    "periodSeconds": 1,
                },
            }),
        )
    }

    /// For an image that EXPOSEs `port`: the values name no port, and the probe asks the
    /// container's port named `http`, so only the image's EXPOSE can make the app ready there.
    pub fn exposed(port: u16) -> Self {
        Self::with_values(
            port,
            serde_json::json!({
                "hostNetwork": true,
                "strategy": {"type": "Recreate"},
                "terminationGracePeriodSeconds": 2,
                "readinessProbe": {
                    "tcpSocket": {"host": "127.0.0.1", "port": "http"},
                    "periodSeconds": 1,
                },
            }),
        )
    }

    fn with_values(port: u16, values: serde_json::Value) -> Self {
        let dir = shared_tempdir();
        let path = dir.path().join("values.json");
        fs::write(&path, values.to_string()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Self {
            port,
            values: path,
            _dir: dir,
        }
    }

    /// What the app serves on its port, once it answers (within `patience`).
    pub fn served(&self, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            match crate::http_get(self.port, "/") {
                Ok(body) => return body,
                Err(e) if Instant::now() > deadline => {
                    panic!("nothing serves on 127.0.0.1:{}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Default for HostPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A web app built from scratch with a static busybox, serving `body` on `$PORT`.
pub fn web_app_files(body: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "Dockerfile",
            b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"exec /bin/busybox httpd -f -p \\\"$PORT\\\" -h /www\"]\n".to_vec(),
        ),
        ("www/index.html", body.as_bytes().to_vec()),
        (
            "busybox",
            fs::read("/bin/busybox").expect("busybox-static is not installed"),
        ),
    ]
}

/// The process ids whose command line contains every one of `words`.
pub fn processes_with(words: &[&str]) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if words.iter().all(|w| cmdline.contains(w)) {
            found.push(pid);
        }
    }
    found
}
