//! What an app's pods may be, tried as a hostile pusher would against the test cluster
//! (tests/support/cluster.rs): a chart whose pods break the Pod Security level, or an
//! operator's exception it tries to use, or pods over the app's quota, is refused before
//! anything is built, with one line; under `restricted` the default chart runs a non-root
//! image confined and refuses a root one; every app namespace carries its level's labels (a
//! loosened one is refused until put back), a quota, container defaults and a NetworkPolicy,
//! which the app's own account cannot change.
//!
//! The test cluster runs Kubernetes 1.20, which has no Pod Security admission: codebuilder's
//! own check is what is tried, and the labels are checked as objects.

use std::time::{Duration, Instant};

use codebuilder_tests::cluster::{
    app_name, chart_repo, cluster, deploying_server, error_line, push, web_app_files, HostPort,
    ACCOUNT,
};
use codebuilder_tests::*;

/// An object `t` of `kind` whose pod spec is `spec` (YAML lines, without indentation).
fn pod_object(kind: &str, spec: &str) -> String {
    let indent = |n: usize| -> String {
        spec.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    };
    let head = |api: &str| format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: t\n");
    let selector = "  selector:\n    matchLabels: {app: t}\n";
    match kind {
        "Pod" => format!("{}spec:\n{}", head("v1"), indent(2)),
        "Job" => format!(
            "{}spec:\n  template:\n    spec:\n{}",
            head("batch/v1"),
            indent(6)
        ),
        "CronJob" => format!(
            "{}spec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n{}",
            head("batch/v1"),
            indent(10)
        ),
        _ => format!(
            "{}spec:\n  replicas: 1\n{selector}  template:\n    metadata:\n      labels: {{app: t}}\n    spec:\n{}",
            head("apps/v1"),
            indent(6)
        ),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn pods_that_break_the_level_or_the_quota_are_refused_before_anything_is_built() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("podsec");
    let container = "containers: [{name: a, image: busybox}]";
    let forbids = |object: &str, field: &str| {
        format!("remote: error: the chart of {app} runs {object} with {field}, which the baseline Pod Security level forbids: remove it, commit, and push again")
    };
    let excepted = |object: &str, field: &str, control: &str| {
        format!("remote: error: the chart of {app} runs {object} with {field}, which the baseline Pod Security level forbids (CODEBUILDER_POD_SECURITY_ALLOW excepts {control} for the operator's values only): remove it, commit, and push again")
    };
    let cases = [
        // The attack: the node's namespaces, a privileged container, the node's /.
        (
            pod_object(
                "DaemonSet",
                "hostPID: true\nhostNetwork: true\nvolumes: [{name: host, hostPath: {path: /}}]\ncontainers: [{name: a, image: busybox, securityContext: {privileged: true}, volumeMounts: [{name: host, mountPath: /host}]}]",
            ),
            excepted("daemonset/t", "hostNetwork", "hostNetwork"),
        ),
        (
            pod_object(
                "DaemonSet",
                "containers: [{name: a, image: busybox, securityContext: {privileged: true}}]",
            ),
            forbids("daemonset/t", "securityContext.privileged"),
        ),
        (
            pod_object("Pod", &format!("hostPID: true\n{container}")),
            forbids("pod/t", "hostPID"),
        ),
        (
            pod_object("Deployment", &format!("hostIPC: true\n{container}")),
            forbids("deployment/t", "hostIPC"),
        ),
        (
            pod_object(
                "StatefulSet",
                &format!("volumes: [{{name: etc, hostPath: {{path: /etc}}}}]\n{container}"),
            ),
            forbids("statefulset/t", "hostPath volume etc"),
        ),
        (
            pod_object(
                "ReplicaSet",
                "containers: [{name: a, image: busybox, ports: [{containerPort: 80, hostPort: 80}]}]",
            ),
            excepted("replicaset/t", "hostPort 80", "hostPorts"),
        ),
        (
            pod_object(
                "Job",
                "restartPolicy: Never\ncontainers: [{name: a, image: busybox, securityContext: {capabilities: {add: [SYS_ADMIN]}}}]",
            ),
            forbids("job/t", "securityContext.capabilities.add SYS_ADMIN"),
        ),
        (
            pod_object(
                "CronJob",
                &format!("restartPolicy: Never\nsecurityContext: {{sysctls: [{{name: kernel.msgmax, value: '65536'}}]}}\n{container}"),
            ),
            forbids("cronjob/t", "sysctl kernel.msgmax"),
        ),
        (
            pod_object(
                "Deployment",
                "containers: [{name: a, image: busybox, securityContext: {procMount: Unmasked}}]",
            ),
            forbids("deployment/t", "securityContext.procMount Unmasked"),
        ),
        (
            pod_object(
                "Deployment",
                "containers: [{name: a, image: busybox, securityContext: {seLinuxOptions: {type: spc_t}}}]",
            ),
            forbids("deployment/t", "securityContext.seLinuxOptions.type spc_t"),
        ),
        (
            pod_object(
                "Deployment",
                &format!("securityContext: {{seccompProfile: {{type: Unconfined}}}}\n{container}"),
            ),
            forbids("deployment/t", "securityContext.seccompProfile.type Unconfined"),
        ),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/a: unconfined\nspec:\n  {container}\n"),
            forbids(
                "pod/t",
                "annotation container.apparmor.security.beta.kubernetes.io/a: unconfined",
            ),
        ),
        // Over the quota (pods=20 by default): refused at once, not after the deploy timeout.
        (
            pod_object("Deployment", container).replace("replicas: 1", "replicas: 25"),
            format!("remote: error: the release of {app} asks for pods: 25, over its quota of 20 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA): ask for fewer replicas or smaller requests, commit, and push again; or have the operator raise CODEBUILDER_APP_QUOTA"),
        ),
    ];
    let work = chart_repo("");
    for (template, line) in cases {
        write_files(
            work.path(),
            &[("chart/templates/t.yaml", template.as_bytes())],
        );
        commit_all(work.path(), "template");
        let (ok, stderr) = push(&dev, work.path(), &app);
        assert!(!ok, "{template}: {stderr}");
        assert_eq!(error_line(&stderr), line, "{template}: {stderr}");
        assert!(!stderr.contains("-----> Building"), "{stderr}");
        assert_eq!(server.server_ref(&app, "refs/heads/main"), None);
    }
    assert!(
        !cluster
            .kubectl(&["get", "namespace", &app])
            .status
            .success(),
        "nothing of the app reached the cluster"
    );
}

#[test]
fn under_restricted_a_non_root_image_runs_confined_and_a_root_one_is_refused() {
    let cluster = cluster();
    let host = HostPort::new();
    let server = deploying_server(
        ACCOUNT,
        &host,
        &[("CODEBUILDER_POD_SECURITY", "restricted")],
    );
    let dev = server.add_user("dev", false);
    let app = app_name("restricted");

    // A field only restricted asks for: refused before the build.
    let confined_but = pod_object(
        "Deployment",
        "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a, image: busybox, securityContext: {capabilities: {drop: [ALL]}}}]",
    );
    let work = chart_repo(&confined_but);
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the chart of {app} runs deployment/t without securityContext.allowPrivilegeEscalation: false, which the restricted Pod Security level requires: set it, commit, and push again"),
        "{stderr}"
    );
    assert!(!stderr.contains("-----> Building"), "{stderr}");

    // The default chart with an image that runs as root: built, then refused.
    std::fs::remove_dir_all(work.path().join("chart")).unwrap();
    let files = web_app_files("root\n");
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    write_files(work.path(), &files);
    commit_all(work.path(), "the default chart, as root");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("-----> Building"), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: {app} runs as root (its image has no USER, or USER root), which the restricted Pod Security level forbids: give the image a non-root USER, commit, and push again"),
        "{stderr}"
    );
    assert_eq!(server.server_ref(&app, "refs/heads/main"), None);
    assert!(cluster.release(&app).is_null());

    // A named non-root user (read from the image's /etc/passwd): deployed, confined.
    let dockerfile = String::from_utf8(web_app_files("")[0].1.clone())
        .unwrap()
        .replace("CMD", "COPY passwd /etc/passwd\nUSER web\nCMD");
    write_files(
        work.path(),
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            (
                "passwd",
                b"root:x:0:0:root:/:/bin/sh\nweb:x:1000:1000:web:/www:/bin/sh\n",
            ),
            ("www/index.html", b"non-root\n"),
        ],
    );
    let good = commit_all(work.path(), "USER web");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(server.server_ref(&app, "refs/heads/main"), Some(good));
    assert_eq!(host.served(Duration::from_secs(10)), "non-root\n");
    let pods = json(&cluster.kubectl_ok(&["-n", &app, "get", "pods", "-o", "json"]));
    let pod = &pods["items"][0]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false, "{pod}");
    assert_eq!(
        pod["securityContext"],
        serde_json::json!({"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}),
        "{pod}"
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        serde_json::json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        "{pod}"
    );
    let namespace = json(&cluster.kubectl_ok(&["get", "namespace", &app, "-o", "json"]));
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    cluster.remove_app(&app);
}

#[test]
fn an_app_namespace_keeps_its_labels_quota_and_isolation_and_its_account_cannot_change_them() {
    let cluster = cluster();
    let host = HostPort::new();
    let mut server = deploying_server(ACCOUNT, &host, &[]);
    let dev = server.add_user("dev", false);
    let app = app_name("confined");
    let work = repo_with("main", &web_app_files("v1\n"));

    // A root image under baseline: deployed, and the push says so once.
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    let warning = format!("remote:  !     warning: {app} runs as root (its image has no USER, or USER root): its pods cannot run under the restricted Pod Security level; a non-root USER in the image would let them");
    assert_eq!(
        stderr.lines().filter(|l| l.trim_end() == warning).count(),
        1,
        "{stderr}"
    );
    assert_eq!(host.served(Duration::from_secs(10)), "v1\n");

    let labels = || {
        json(&cluster.kubectl_ok(&["get", "namespace", &app, "-o", "json"]))["metadata"]["labels"]
            .clone()
    };
    let ours = serde_json::json!({
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "baseline",
        "pod-security.kubernetes.io/audit": "baseline",
    });
    let has_ours = |labels: &serde_json::Value| {
        ours.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels[k] == *v)
    };
    assert!(has_ours(&labels()), "{}", labels());

    // The quota, the containers' defaults and the isolation, as the settings say.
    let get = |kind: &str, name: &str| {
        json(&cluster.kubectl_ok(&["-n", &app, "get", kind, name, "-o", "json"]))
    };
    assert_eq!(
        get("resourcequota", "codebuilder-quota")["spec"]["hard"],
        serde_json::json!({"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20", "services": "10", "persistentvolumeclaims": "10"})
    );
    let defaults = &get("limitrange", "codebuilder-defaults")["spec"]["limits"][0];
    assert_eq!(
        (&defaults["defaultRequest"], &defaults["default"]),
        (
            &serde_json::json!({"cpu": "100m", "memory": "128Mi"}),
            &serde_json::json!({"cpu": "1", "memory": "512Mi"})
        )
    );
    let policy = get("networkpolicy", "codebuilder-isolation");
    assert_eq!(
        policy["spec"],
        serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]})
    );
    let pods = json(&cluster.kubectl_ok(&["-n", &app, "get", "pods", "-o", "json"]));
    assert_eq!(
        pods["items"][0]["spec"]["containers"][0]["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}})
    );

    // The app's own account (what its chart deploys as) can change none of it.
    let as_app = format!("system:serviceaccount:{app}:codebuilder-app");
    for args in [
        vec!["delete", "resourcequota", "codebuilder-quota"],
        vec!["delete", "limitrange", "codebuilder-defaults"],
        vec!["delete", "networkpolicy", "codebuilder-isolation"],
        vec![
            "label",
            "namespace",
            &app,
            "pod-security.kubernetes.io/enforce=privileged",
            "--overwrite",
        ],
    ] {
        let mut args = args.clone();
        args.extend(["-n", &app, "--as", &as_app]);
        let out = cluster.kubectl(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("is forbidden"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    get("resourcequota", "codebuilder-quota");
    get("limitrange", "codebuilder-defaults");
    get("networkpolicy", "codebuilder-isolation");

    // quota:show, for the app's users, once the quota controller has counted the pod.
    let expected = format!(
        "=== {app}: used of its quota (resourcequota/codebuilder-quota)\nrequests.cpu            100m of 4\nrequests.memory         128Mi of 8Gi\npods                    1 of 20\nservices                1 of 10\npersistentvolumeclaims  0 of 10\n=== each container that asks for none gets (limitrange/codebuilder-defaults)\ncpu                     request 100m, limit 1\nmemory                  request 128Mi, limit 512Mi\n"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = dev.ssh(&["quota:show", &app], b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown = text(&out.stdout);
        if shown == expected || Instant::now() > deadline {
            assert_eq!(shown, expected);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = dev.ssh(&["quota:show", &app, "--json"], b"");
    let shown = json(&text(&out.stdout));
    assert_eq!(
        shown["quota"]["pods"],
        serde_json::json!({"used": "1", "hard": "20"})
    );
    assert_eq!(
        shown["defaults"]["memory"],
        serde_json::json!({"request": "128Mi", "limit": "512Mi"})
    );

    // ps:scale past the quota's pods is refused at once too.
    let out = dev.ssh(&["ps:scale", &app, "web=21"], b"");
    assert_eq!(
        refused(&out),
        format!("error: {app} would run 21 pods, over its quota of 20 (resourcequota/codebuilder-quota, CODEBUILDER_APP_QUOTA): scale to fewer, or have the operator raise CODEBUILDER_APP_QUOTA")
    );

    // A label loosened by someone else: refused before the build until it is put back.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &app,
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
    ]);
    write_files(work.path(), &[("www/index.html", b"v2\n")]);
    let v2 = commit_all(work.path(), "v2");
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(!ok, "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("remote: error: the namespace {app} is labelled pod-security.kubernetes.io/enforce=privileged, looser than the baseline Pod Security level codebuilder keeps on app namespaces (CODEBUILDER_POD_SECURITY): a cluster admin puts it back with `kubectl label namespace {app} pod-security.kubernetes.io/enforce=baseline --overwrite`"),
        "{stderr}"
    );
    assert!(!stderr.contains("-----> Building"), "{stderr}");
    // The admin's line from the refusal, and a label removed: the next push puts it back.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &app,
        "pod-security.kubernetes.io/enforce=baseline",
        "--overwrite",
    ]);
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &app,
        "pod-security.kubernetes.io/warn-",
    ]);
    let (ok, stderr) = push(&dev, work.path(), &app);
    assert!(ok, "{stderr}");
    assert_eq!(server.server_ref(&app, "refs/heads/main"), Some(v2));
    assert!(has_ours(&labels()), "{}", labels());

    // Turned off by the operator: the next deploy removes them.
    server
        .env
        .push(("CODEBUILDER_APP_QUOTA".into(), "off".into()));
    server
        .env
        .push(("CODEBUILDER_NETWORK_ISOLATION".into(), "off".into()));
    let out = server.ops_cli(&["rebuild", &app]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (kind, name) in [
        ("resourcequota", "codebuilder-quota"),
        ("limitrange", "codebuilder-defaults"),
        ("networkpolicy", "codebuilder-isolation"),
    ] {
        let out = cluster.kubectl(&["-n", &app, "get", kind, name]);
        assert!(!out.status.success(), "{kind}/{name} is still there");
    }
    cluster.remove_app(&app);
}
