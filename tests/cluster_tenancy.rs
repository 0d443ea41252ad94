//! What an app may touch in the cluster, tried as a hostile pusher would against a real
//! Kubernetes API server (tests/support/cluster.rs): a chart deploys as the app's own
//! ServiceAccount and cannot reach another namespace, a cluster-scoped kind, or another
//! namespace's Secrets; a namespace or helm release codebuilder did not make is not taken
//! over; a chart with links or over the limits is refused before anything is built.

use std::fs;

use codebuilder_tests::cluster::{
    app_name, chart_repo, cluster, deploying_server, error_line, push, HostPort, ACCOUNT,
};
use codebuilder_tests::*;

fn set_template(work: &std::path::Path, template: &str) -> String {
    write_files(work, &[("chart/templates/t.yaml", template.as_bytes())]);
    commit_all(work, "template")
}

#[test]
fn a_chart_cannot_reach_outside_its_namespace() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("reach");
    let other = app_name("other");
    cluster.kubectl_ok(&["create", "namespace", &other]);
    cluster.kubectl_ok(&[
        "-n",
        &other,
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=url=postgres://secret",
    ]);

    // `lookup` of another namespace's Secret: the app's account may not read it.
    let lookup = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: looked-up\ndata:\n  found: {{{{ lookup \"v1\" \"Secret\" \"{other}\" \"db\" | toJson | quote }}}}\n"
    );
    let work = chart_repo(&lookup);
    // The app exists (a branch that does not deploy), so that its refused pushes leave it,
    // and the namespace its first deploy makes, in place.
    let out = dev.git(work.path(), &["push", &dev.url(&app), "main:kept"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the cluster refused: the chart of {app} may not get secrets in namespace {other}: an app's chart manages objects in its own namespace {app} only; remove that object from chart/, commit, and push again"),
        "{stderr}"
    );
    assert_eq!(server.server_ref(&app, "refs/heads/main"), None);
    // The namespace codebuilder made, labelled, with the app's account bound there only.
    let namespace: serde_json::Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "namespace", &app, "-o", "json"]))
            .unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "codebuilder");
    assert_eq!(labels["codebuilder.io/app"], app.as_str());
    let binding: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "-n",
        &app,
        "get",
        "rolebinding",
        "codebuilder-app",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "codebuilder-app");

    // A template in another namespace: refused, nothing made there.
    let planted = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: planted\n  namespace: {other}\ndata:\n  a: b\n"
    );
    set_template(work.path(), &planted);
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the cluster refused: the chart of {app} may not get configmaps in namespace {other}: an app's chart manages objects in its own namespace {app} only; remove that object from chart/, commit, and push again"),
        "{stderr}"
    );
    assert!(!cluster
        .kubectl(&["-n", &other, "get", "configmap", "planted"])
        .status
        .success());

    // A cluster-scoped kind: refused, not made.
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {app}-everything\nrules:\n  - apiGroups: [\"*\"]\n    resources: [\"*\"]\n    verbs: [\"*\"]\n"
    );
    set_template(work.path(), &role);
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the cluster refused: the chart of {app} may not get clusterroles.rbac.authorization.k8s.io (cluster-wide): an app's chart manages objects in its own namespace {app} only; remove that object from chart/, commit, and push again"),
        "{stderr}"
    );
    assert!(!cluster
        .kubectl(&["get", "clusterrole", &format!("{app}-everything")])
        .status
        .success());

    // Its own namespace is the app's to use.
    let own = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own\ndata:\n  a: b\n";
    let good = set_template(work.path(), own);
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    assert_eq!(server.server_ref(&app, "refs/heads/main"), Some(good));
    cluster.kubectl_ok(&["-n", &app, "get", "configmap", "own"]);
    cluster.remove_app(&app);
    let _ = cluster.kubectl(&["delete", "namespace", &other, "--wait=false"]);
}

#[test]
fn a_namespace_or_release_codebuilder_did_not_make_is_not_taken_over() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);

    // The cluster's own cert-manager, made by hand: a push of that name builds nothing.
    let app = "cert-manager";
    let _ = cluster.kubectl(&["create", "namespace", app]);
    let _ = cluster.kubectl(&[
        "-n",
        app,
        "create",
        "configmap",
        "issuer",
        "--from-literal=a=b",
    ]);
    let work = chart_repo(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: issuer\ndata:\n  a: taken\n",
    );
    let (ok, stderr) = push(&dev, work.path(), app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        "remote: error: the namespace cert-manager exists and codebuilder did not make it (it lacks the labels app.kubernetes.io/managed-by=codebuilder and codebuilder.io/app=cert-manager): push the app under another name; if that namespace is this app's, a cluster admin labels it with `kubectl label namespace cert-manager app.kubernetes.io/managed-by=codebuilder codebuilder.io/app=cert-manager`",
        "{stderr}"
    );
    assert!(!stderr.contains("Building"), "{stderr}");
    assert_eq!(server.server_ref(app, "refs/heads/main"), None);
    assert_eq!(
        cluster.kubectl_ok(&[
            "-n",
            app,
            "get",
            "configmap",
            "issuer",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    assert!(!cluster
        .kubectl(&["-n", app, "get", "serviceaccount", "codebuilder-app"])
        .status
        .success());

    // A namespace labelled as codebuilder's, holding a release someone installed by hand.
    let app = app_name("foreign");
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": app, "labels": {
            "app.kubernetes.io/managed-by": "codebuilder", "codebuilder.io/app": app,
        }},
    });
    let scratch = shared_tempdir();
    let path = scratch.path().join("namespace.json");
    fs::write(&path, manifest.to_string()).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    let chart = scratch.path().join("chart");
    write_files(
        &chart,
        &[
            (
                "Chart.yaml",
                b"apiVersion: v2\nname: theirs\nversion: 1.0.0\n",
            ),
            (
                "templates/t.yaml",
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: theirs\ndata:\n  a: b\n",
            ),
        ],
    );
    let out = cluster.helm(&["install", &app, chart.to_str().unwrap(), "-n", &app]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the namespace {app} holds a helm release {app} that codebuilder did not make: push the app under another name, or have a cluster admin remove that release (helm uninstall {app} -n {app})"),
        "{stderr}"
    );
    assert_eq!(server.server_ref(&app, "refs/heads/main"), None);
    let release = cluster.release(&app);
    assert_eq!(release["version"], 1, "{release}");
    assert_eq!(
        release["info"]["description"], "Install complete",
        "{release}"
    );
    cluster.remove_app(&app);
}

#[test]
fn a_chart_with_links_or_over_the_limits_is_refused() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(
        ACCOUNT,
        &host,
        &[
            ("CODEBUILDER_MAX_CHART_SIZE", "1K"),
            ("CODEBUILDER_MAX_CHART_FILES", "5"),
        ],
    );
    let dev = server.add_user("dev", false);
    let app = app_name("links");
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ .Files.Get \"files/x\" | quote }}\n";
    let work = chart_repo(template);
    fs::create_dir_all(work.path().join("chart/files")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.path().join("chart/files/x")).unwrap();
    commit_all(work.path(), "a link");
    let refused = |what: &str, line: &str| {
        let (ok, stderr) = push(&dev, work.path(), &app);
        assert!(!ok, "{what}: {stderr}");
        assert_eq!(error_line(&stderr), line, "{what}: {stderr}");
        assert!(!stderr.contains("-----> Building"), "{what}: {stderr}");
        assert_eq!(server.server_ref(&app, "refs/heads/main"), None, "{what}");
        assert!(
            !cluster
                .kubectl(&["get", "namespace", &app])
                .status
                .success(),
            "{what}"
        );
    };
    refused(
        "symlink",
        "remote: error: chart/files/x is a symbolic link: a chart may only hold files and folders; put the file itself there, commit, and push again",
    );

    fs::remove_file(work.path().join("chart/files/x")).unwrap();
    write_files(work.path(), &[("chart/files/x", &[b'x'; 2048])]);
    commit_all(work.path(), "a large file");
    refused(
        "size",
        "remote: error: chart/ is over the 1K limit of a chart (CODEBUILDER_MAX_CHART_SIZE): move large files out of chart/, or raise CODEBUILDER_MAX_CHART_SIZE",
    );

    write_files(
        work.path(),
        &[
            ("chart/files/x", b"x"),
            ("chart/files/y", b"y"),
            ("chart/files/z", b"z"),
        ],
    );
    commit_all(work.path(), "many files");
    refused(
        "count",
        "remote: error: chart/ has more than 5 files and folders (CODEBUILDER_MAX_CHART_FILES): remove files from chart/, or raise CODEBUILDER_MAX_CHART_FILES",
    );
}
