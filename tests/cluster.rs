//! Deploys against a real Kubernetes API server and kubelet (tests/support/cluster.rs): a
//! push goes live as codebuilder's ServiceAccount with the RBAC of codebuilder.yaml, upgrades,
//! a release that cannot run is explained and rolled back with the old pod serving, a deploy
//! killed mid-way is recovered by the next push, a refused permission is named, and the
//! README's RBAC table is what the cluster grants.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use codebuilder_tests::cluster::{
    app_name, cluster, deploying_server, error_line, processes_with, push, web_app_files, HostPort,
    ACCOUNT, NAMESPACE,
};
use codebuilder_tests::*;

#[test]
fn a_push_goes_live_upgrades_and_a_release_that_cannot_run_is_rolled_back() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("live");
    let work = repo_with("main", &web_app_files("v1\n"));

    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "first push: {stderr}");
    assert!(
        stderr.contains(&format!("remote: -----> Done: {app} ")),
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v1\n");
    assert_eq!(cluster.release(&app)["version"], 1);

    write_files(work.path(), &[("www/index.html", b"v2\n")]);
    let good = commit_all(work.path(), "v2");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "upgrade: {stderr}");
    assert_eq!(host.served(Duration::from_secs(10)), "v2\n");
    assert_eq!(cluster.release(&app)["version"], 2);

    // An image that exits at once: the pusher reads the app's own last words, the reason,
    // and that the previous release serves again.
    write_files(
        work.path(),
        &[(
            "Dockerfile",
            b"FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sh\", \"-c\", \"echo 'boom: cannot reach the database'; exit 3\"]\n",
        )],
    );
    commit_all(work.path(), "crashes");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("remote: -----> Why {app} is not ready")),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote:            boom: cannot reach the database"),
        "{stderr}"
    );
    assert!(stderr.contains("last exit code 3"), "{stderr}");
    assert!(
        stderr.contains(&format!("remote: -----> Rolling back {app} to revision 2")),
        "{stderr}"
    );
    let reason = if stderr.contains("(CrashLoopBackOff)") {
        "CrashLoopBackOff"
    } else {
        "Error"
    };
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the new release did not become ready ({reason}): the previous release is serving again; fix the app or its chart, commit, and push again"),
        "{stderr}"
    );
    assert_eq!(server.server_ref(&app, "refs/heads/main"), Some(good));
    assert_eq!(host.served(Duration::from_secs(10)), "v2\n");
    let release = cluster.release(&app);
    assert_eq!(release["info"]["status"], "deployed", "{release}");
    cluster.remove_app(&app);
}

/// A Docker app behaves as `docker run` of its image would: the port it EXPOSEs is its
/// `PORT`, its container port and where its readiness is probed.
#[test]
fn the_port_an_image_exposes_is_where_the_app_serves_and_is_probed() {
    let exposed = free_port();
    let host = HostPort::exposed(exposed);
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("exposed");
    let mut files = web_app_files("exposed\n");
    let dockerfile = String::from_utf8(files[0].1.clone())
        .unwrap()
        .replace("CMD", &format!("EXPOSE {exposed}\nCMD"));
    files[0].1 = dockerfile.into_bytes();
    let work = repo_with("main", &files);

    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "remote: -----> Port {exposed} (EXPOSE in the Dockerfile)"
        )),
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "exposed\n");
}

#[test]
fn a_deploy_killed_mid_rollout_is_recovered_by_the_next_push() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("pending");
    let work = repo_with("main", &web_app_files("v1\n"));
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "first push: {stderr}");

    // v2 never listens, so helm waits; the hook and helm are killed as a pod restart would.
    write_files(
        work.path(),
        &[(
            "Dockerfile",
            b"FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"600\"]\n",
        )],
    );
    commit_all(work.path(), "never ready");
    let mut pushing = dev
        .git_command(work.path(), &["push", &dev.url(&app), "main"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pushing.stderr.take().unwrap()).lines();
    let deploying = format!("-----> Deploying release 2 to namespace {app}");
    for line in lines.by_ref() {
        if line.unwrap().contains(&deploying) {
            break;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.release(&app)["info"]["status"] != "pending-upgrade" {
        assert!(
            std::time::Instant::now() < deadline,
            "helm never started the upgrade"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let home = server.home.path().to_str().unwrap().to_owned();
    for pid in processes_with(&["codebuilder-build", &home, "hook"])
        .into_iter()
        .chain(processes_with(&["helm", "upgrade", &app]))
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    lines.for_each(drop);
    assert!(!pushing.wait().unwrap().success());
    assert_eq!(cluster.release(&app)["info"]["status"], "pending-upgrade");

    write_files(
        work.path(),
        &[
            ("Dockerfile", web_app_files("")[0].1.as_slice()),
            ("www/index.html", b"v3\n"),
        ],
    );
    commit_all(work.path(), "v3");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "recovering push: {stderr}");
    assert!(
        stderr.contains(&format!("remote: -----> Recovering {app}: an interrupted deploy left its release pending-upgrade")),
        "{stderr}"
    );
    assert!(
        stderr.contains("remote:        rolling back to revision 1"),
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v3\n");
    assert_eq!(cluster.release(&app)["info"]["status"], "deployed");
    cluster.remove_app(&app);
}

#[test]
fn a_permission_the_cluster_refuses_is_named_with_where_to_grant_it() {
    let cluster = cluster();
    // codebuilder's ClusterRole as codebuilder.yaml has it, less `create` on namespaces,
    // bound to an account of its own.
    let account = "cbtest-limited";
    let mut role: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "clusterrole",
        "codebuilder-deployer",
        "-o",
        "json",
    ]))
    .unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    for rule in rules.iter_mut() {
        if rule["resources"] == serde_json::json!(["namespaces"]) {
            rule["verbs"]
                .as_array_mut()
                .unwrap()
                .retain(|v| v != "create");
        }
    }
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": account}, "rules": role["rules"],
    });
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
    });
    let account_doc = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": NAMESPACE},
    });
    let scratch = shared_tempdir();
    for (name, doc) in [("sa", account_doc), ("role", role), ("binding", binding)] {
        let path = scratch.path().join(format!("{name}.json"));
        fs::write(&path, doc.to_string()).unwrap();
        cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }
    let host = HostPort::new();
    let server = deploying_server(account, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("forbidden");
    let work = repo_with("main", &web_app_files("v1\n"));
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the cluster refused: system:serviceaccount:{NAMESPACE}:{account} may not create namespaces: grant it (verb create, resource namespaces) in the ClusterRole codebuilder-deployer of codebuilder.yaml"),
        "{stderr}"
    );
    assert_eq!(server.server_ref(&app, "refs/heads/main"), None);
    assert!(cluster.release(&app).is_null());
    assert!(!cluster
        .kubectl(&["get", "namespace", &app])
        .status
        .success());
}

/// One row of a README RBAC table: resources (`pods/log`; `serviceaccounts named X`) and verbs.
struct Grant {
    resource: String,
    name: Option<String>,
    verbs: Vec<String>,
}

/// The rows of README's `index`-th RBAC table (0: codebuilder's, 1: an app's).
fn readme_grants(index: usize) -> Vec<Grant> {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table = readme
        .split("| resources | verbs | why |")
        .nth(index + 1)
        .expect("README has the RBAC tables");
    let all = "get, list, watch, create, update, patch, delete";
    let mut grants = Vec::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let verbs = match cells[2] {
            "all but deletecollection" => all,
            verbs => verbs,
        };
        for resource in cells[1].split([',', ';']).map(str::trim) {
            let (resource, name) = match resource.split_once(" named ") {
                Some((resource, name)) => (resource, Some(name.to_owned())),
                None => (resource, None),
            };
            grants.push(Grant {
                resource: resource.to_owned(),
                name,
                verbs: verbs.split(", ").map(str::to_owned).collect(),
            });
        }
    }
    grants
}

/// Asks the cluster, for every resource of `grants` and every verb, whether `who` may in
/// `namespace`: yes exactly where a row says so. Returns how many questions were asked.
fn check_grants(who: &str, namespace: &str, grants: &[Grant]) -> usize {
    let cluster = cluster();
    let verbs = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "bind",
        "escalate",
        "impersonate",
    ];
    let mut checked = 0;
    for grant in grants {
        let granted = |verb: &str| {
            grants.iter().any(|g| {
                g.resource == grant.resource
                    && (g.name.is_none() || g.name == grant.name)
                    && g.verbs.iter().any(|v| v == verb)
            })
        };
        let (resource, sub) = match grant.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub)),
            None => (grant.resource.as_str(), None),
        };
        let target = match &grant.name {
            Some(name) => format!("{resource}/{name}"),
            None => resource.to_owned(),
        };
        for verb in verbs {
            let mut args = vec!["auth", "can-i", verb, &target, "--as", who, "-n", namespace];
            let subresource;
            if let Some(sub) = sub {
                subresource = format!("--subresource={sub}");
                args.push(&subresource);
            }
            let out = cluster.kubectl(&args);
            let answer = text(&out.stdout).trim().to_owned();
            let expected = if granted(verb) { "yes" } else { "no" };
            assert_eq!(
                answer,
                expected,
                "can {who} {verb} {target} {sub:?} in {namespace}? {}",
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    checked
}

/// Every row of README's RBAC tables is granted, and nothing else on those resources: to
/// codebuilder's account, and to an app's account in its namespace (bound as codebuilder
/// binds it), which has nothing outside it.
#[test]
fn the_service_accounts_may_do_what_the_readme_says_and_no_more() {
    let cluster = cluster();
    let who = format!("system:serviceaccount:{NAMESPACE}:{ACCOUNT}");
    let checked = check_grants(&who, "cbtest-rbac", &readme_grants(0));
    assert!(
        checked > 40,
        "only {checked} checks: is the first table still there?"
    );
    for (verb, resource) in [
        ("create", "clusterroles"),
        ("patch", "nodes"),
        ("get", "secrets"),
        ("create", "deployments"),
        ("bind", "clusterroles/cluster-admin"),
        ("impersonate", "serviceaccounts/default"),
        ("impersonate", "users"),
    ] {
        let out = cluster.kubectl(&["auth", "can-i", verb, resource, "--as", &who]);
        assert_eq!(text(&out.stdout).trim(), "no", "{verb} {resource}");
    }

    let app = "cbtest-rbac-app";
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app}},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "codebuilder-app", "namespace": app}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "codebuilder-app", "namespace": app},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "codebuilder-app"},
             "subjects": [{"kind": "ServiceAccount", "name": "codebuilder-app", "namespace": app}]},
        ],
    });
    let scratch = shared_tempdir();
    let path = scratch.path().join("app.json");
    fs::write(&path, binding.to_string()).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let who = format!("system:serviceaccount:{app}:codebuilder-app");
    let checked = check_grants(&who, app, &readme_grants(1));
    assert!(
        checked > 100,
        "only {checked} checks: is the second table still there?"
    );
    for (verb, resource, namespace) in [
        ("get", "secrets", "cbtest-rbac"),
        ("create", "deployments", "kube-system"),
        ("create", "clusterroles", app),
        ("create", "namespaces", app),
        ("create", "roles", app),
        ("create", "rolebindings", app),
        ("deletecollection", "secrets", app),
        ("impersonate", "serviceaccounts", app),
        // What confines the app's pods is codebuilder's to change: its namespace's labels,
        // quota, container defaults, and NetworkPolicies (one of the app's own could let
        // other apps in).
        ("patch", "namespaces", app),
        ("update", "namespaces", app),
        ("patch", "resourcequotas", app),
        ("delete", "resourcequotas", app),
        ("patch", "limitranges", app),
        ("delete", "limitranges", app),
        ("create", "networkpolicies", app),
        ("patch", "networkpolicies", app),
        ("delete", "networkpolicies", app),
    ] {
        let out = cluster.kubectl(&[
            "auth", "can-i", verb, resource, "--as", &who, "-n", namespace,
        ]);
        assert_eq!(
            text(&out.stdout).trim(),
            "no",
            "{verb} {resource} in {namespace}"
        );
    }
}
