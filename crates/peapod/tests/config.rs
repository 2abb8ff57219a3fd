//! ConfigMaps, Secrets, env (valueFrom, envFrom, `$(VAR)`), downward API and
//! projected volumes, on real pods. Each test has its own daemon.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn pod(name: &str, body: &str) -> String {
    pod_manifest(name, &format!("  terminationGracePeriodSeconds: 1\n{body}"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn waiting(p: &Value, container: &str) -> (String, String) {
    let cs = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == container).cloned())
        .unwrap_or(Value::Null);
    let w = &cs["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn create_get_describe_delete_configmaps_and_secrets() {
    let d = Daemon::start();
    let files = d.dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("app.properties"), "color=blue\nsize=2\n").unwrap();
    std::fs::write(
        files.join("game.env"),
        "# settings\nLIVES=3\n\nENEMIES=aliens\n",
    )
    .unwrap();
    let prop = files.join("app.properties");
    let env = files.join("game.env");

    let out = d.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=mode=fast",
        "--from-literal=level=3",
        &format!("--from-file={}", prop.display()),
        &format!("--from-file=renamed={}", prop.display()),
    ]);
    assert_eq!(out, "configmap/app created\n");
    let out = d.ok(&[
        "create",
        "cm",
        "game",
        &format!("--from-env-file={}", env.display()),
    ]);
    assert_eq!(out, "configmap/game created\n");

    // kubectl's errors: a duplicate key, a bad literal, an existing name.
    let dup = d.peapod(&[
        "create",
        "configmap",
        "dup",
        "--from-literal=a=1",
        "--from-literal=a=2",
    ]);
    assert!(!dup.status.success());
    assert_eq!(
        stderr(&dup).trim(),
        "error: cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"dup\""
    );
    let bad = d.peapod(&["create", "configmap", "bad", "--from-literal=novalue"]);
    assert_eq!(
        stderr(&bad).trim(),
        "error: invalid literal source novalue, expected key=value"
    );
    let badkey = d.peapod(&["create", "configmap", "bad", "--from-literal=a b=1"]);
    assert!(
        stderr(&badkey).contains("\"a b\" is not a valid key name for a ConfigMap"),
        "{}",
        stderr(&badkey)
    );
    let again = d.peapod(&["create", "configmap", "app", "--from-literal=x=1"]);
    let e = failed(&again);
    assert!(
        e.starts_with("Error from server (AlreadyExists): configmaps \"app\""),
        "{e}"
    );

    // A dry run creates nothing.
    assert_eq!(
        d.ok(&["create", "cm", "dry", "--from-literal=a=1", "--dry-run"]),
        "configmap/dry created (dry run)\n"
    );
    let json = d.ok(&[
        "create",
        "secret",
        "generic",
        "dry",
        "--from-literal=a=1",
        "--dry-run=client",
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["data"]["a"].as_str()),
        (Some("Secret"), Some("MQ=="))
    );
    assert!(!d.peapod(&["get", "cm", "dry"]).status.success());
    assert!(!d.peapod(&["get", "secret", "dry"]).status.success());

    let table = d.ok(&["get", "cm"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(cols(lines[0]), ["NAME", "DATA", "AGE"]);
    assert_eq!(cols(lines[1])[..2], ["app".to_string(), "4".into()]);
    assert_eq!(cols(lines[2])[..2], ["game".to_string(), "2".into()]);

    // A namespace must exist before anything is made in it.
    let refused = d.peapod(&[
        "create",
        "configmap",
        "elsewhere",
        "-n",
        "other",
        "--from-literal=a=1",
    ]);
    let e = failed(&refused);
    assert!(e.contains("namespaces \"other\" not found"), "{e}");
    d.ok(&["create", "namespace", "other"]);
    d.ok(&[
        "create",
        "configmap",
        "elsewhere",
        "-n",
        "other",
        "--from-literal=a=1",
    ]);
    let all = d.ok(&["get", "configmaps", "-A"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(cols(lines[0]), ["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(lines.len(), 4, "{all}");
    assert!(
        lines
            .iter()
            .any(|l| cols(l)[..3] == ["other".to_string(), "elsewhere".into(), "1".into()]),
        "{all}"
    );
    assert_eq!(
        d.ok(&["get", "cm", "-n", "other", "-o", "name"]),
        "configmap/elsewhere\n"
    );

    let cm: Value =
        serde_json::from_str(&d.ok(&["get", "configmap", "app", "-o", "json"])).unwrap();
    assert_eq!(cm["data"]["mode"], "fast");
    assert_eq!(cm["data"]["app.properties"], "color=blue\nsize=2\n");
    assert_eq!(cm["data"]["renamed"], "color=blue\nsize=2\n");
    let game = d.ok(&["get", "configmaps", "game", "-o", "yaml"]);
    assert!(
        game.contains("LIVES: '3'") || game.contains("LIVES: \"3\""),
        "{game}"
    );
    assert!(game.contains("ENEMIES: aliens"), "{game}");

    let describe = d.ok(&["describe", "configmap", "game"]);
    assert!(
        describe.starts_with("Name:         game\nNamespace:    default\n"),
        "{describe}"
    );
    assert!(
        describe.contains("\nData\n====\nENEMIES:\n----\naliens\n\nLIVES:\n----\n3\n"),
        "{describe}"
    );
    assert!(describe.contains("\nBinaryData\n====\n"), "{describe}");

    // Secrets: values never shown by describe.
    let out = d.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=username=admin",
        "--from-literal=password=s3cr3t-hunter2",
    ]);
    assert_eq!(out, "secret/db created\n");
    let describe = d.ok(&["describe", "secret", "db"]);
    assert!(describe.contains("Type:  Opaque"), "{describe}");
    assert!(
        describe.contains("password:  14 bytes\nusername:  5 bytes\n"),
        "{describe}"
    );
    assert!(
        !describe.contains("hunter2") && !describe.contains("admin"),
        "{describe}"
    );
    let table = d.ok(&["get", "secrets"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(cols(lines[0]), ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(
        cols(lines[1])[..3],
        ["db".to_string(), "Opaque".into(), "2".into()]
    );
    let s: Value = serde_json::from_str(&d.ok(&["get", "secret", "db", "-o", "json"])).unwrap();
    assert_eq!(s["data"]["username"], "YWRtaW4=");
    let dup = d.peapod(&[
        "create",
        "secret",
        "generic",
        "s2",
        "--from-literal=a=1",
        "--from-literal=a=2",
    ]);
    assert_eq!(
        stderr(&dup).trim(),
        "error: cannot add key a, another key by that name already exists"
    );

    // apply: binaryData, stringData folded into data, unchanged on re-apply.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: blobs}\ndata: {text: hi}\nbinaryData: {blob: AAEC}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: mixed}\ndata: {a: YQ==}\nstringData: {b: bee}\n";
    assert_eq!(
        d.apply_ok(manifest),
        "configmap/blobs created\nsecret/mixed created\n"
    );
    assert_eq!(
        d.apply_ok(manifest),
        "configmap/blobs unchanged\nsecret/mixed unchanged\n"
    );
    let describe = d.ok(&["describe", "cm", "blobs"]);
    assert!(
        describe.contains("\nBinaryData\n====\nblob: 3 bytes\n"),
        "{describe}"
    );
    let s: Value = serde_json::from_str(&d.ok(&["get", "secret", "mixed", "-o", "json"])).unwrap();
    assert_eq!(s["data"], serde_json::json!({"a": "YQ==", "b": "YmVl"}));
    let file = d.dir.join("blobs.yaml");
    std::fs::write(&file, manifest).unwrap();
    let deleted = d.ok(&["delete", "-f", file.to_str().unwrap()]);
    assert!(
        deleted.contains("configmap \"blobs\" deleted")
            && deleted.contains("secret \"mixed\" deleted"),
        "{deleted}"
    );
    assert!(!d.peapod(&["get", "cm", "blobs"]).status.success());
    let bad =
        d.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: badkeys}\ndata: {'a/b': x}\n");
    let e = failed(&bad);
    assert!(e.starts_with("The ConfigMap \"badkeys\" is invalid: data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters"), "{e}");

    // An immutable ConfigMap keeps its data.
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '1'}\n");
    let changed = d.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '2'}\n");
    let e = failed(&changed);
    assert!(e.contains("ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"), "{e}");

    assert_eq!(
        d.ok(&["delete", "configmap", "app"]),
        "configmap \"app\" deleted\n"
    );
    assert_eq!(d.ok(&["delete", "secret", "db"]), "secret \"db\" deleted\n");
    let gone = d.peapod(&["get", "cm", "app"]);
    assert_eq!(
        stderr(&gone).trim(),
        "Error from server (NotFound): configmaps \"app\" not found"
    );
    let gone = d.peapod(&["describe", "secret", "db"]);
    assert!(!gone.status.success());
}

#[test]
fn env_from_configmaps_secrets_and_expansion() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{greeting: hello, color: blue, REF: '$(color)'}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{password: s3cr3t, user: admin}}\n---\n{}",
        pod(
            "envy",
            &format!(
                r#"  restartPolicy: Never
  containers:
  - name: echo
    image: {BUSYBOX}
    command: [echo]
    args: ["cmd=$(GREETING)", "esc=$$(GREETING)", "undef=$(NOPE)", "pw=$(PASS)"]
    env:
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}
    - name: PASS
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
  - name: main
    image: {BUSYBOX}
    command: [sleep, "3600"]
    envFrom:
    - configMapRef: {{name: cfg}}
      prefix: CFG_
    - secretRef: {{name: creds}}
    - configMapRef: {{name: absent, optional: true}}
    env:
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}
    - name: COMPOSED
      value: "$(GREETING)-$(CFG_color)-$$(GREETING)-$(UNDEFINED)"
    - name: OPTIONAL
      valueFrom: {{configMapKeyRef: {{name: cfg, key: missing, optional: true}}}}
    - name: user
      value: overridden
"#
            )
        )
    ));
    d.wait_pod("envy", "main running", |p| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["name"] == "main" && c["ready"] == true))
    });
    let env = d.exec_ok("envy", "main", &["env"]);
    let vars: Vec<&str> = env.lines().collect();
    for want in [
        "CFG_greeting=hello",
        "CFG_color=blue",
        // Values from envFrom are not expanded.
        "CFG_REF=$(color)",
        "password=s3cr3t",
        "user=overridden",
        "GREETING=hello",
        "COMPOSED=hello-blue-$(GREETING)-$(UNDEFINED)",
    ] {
        assert!(vars.contains(&want), "{want} missing in:\n{env}");
    }
    assert!(!env.contains("OPTIONAL="), "{env}");
    let logs = wait_until("echo's output", || {
        let l = d.ok(&["logs", "envy", "-c", "echo"]);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(
        logs.trim(),
        "cmd=hello esc=$(GREETING) undef=$(NOPE) pw=s3cr3t"
    );
    // Secret values stay out of describe and the daemon's log.
    let describe = d.ok(&["describe", "pod", "envy"]);
    assert!(!describe.contains("s3cr3t"), "{describe}");
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert!(!log.contains("s3cr3t"), "{log}");
}

#[test]
fn missing_configmap_holds_the_pod_until_it_is_created() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "needy",
        &format!(
            r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: later, key: mode}}}}
"#
        ),
    ));
    let p = d.wait_pod("needy", "CreateContainerConfigError", |p| {
        waiting(p, "app").0 == "CreateContainerConfigError"
    });
    assert_eq!(waiting(&p, "app").1, "configmap \"later\" not found");
    assert!(
        d.events("needy").contains(&(
            "Failed".to_string(),
            "Error: configmap \"later\" not found".to_string()
        )),
        "{:?}",
        d.events("needy")
    );
    // The ConfigMap without the key: kubelet's other message.
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {other: x}\n");
    d.wait_pod("needy", "missing key", |p| {
        waiting(p, "app").1 == "couldn't find key mode in ConfigMap default/later"
    });
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {mode: fast}\n");
    d.wait_running("needy");
    assert_eq!(
        d.exec_ok("needy", "app", &["sh", "-c", "echo $MODE"])
            .trim(),
        "fast"
    );

    // A volume of a missing ConfigMap: ContainerCreating and FailedMount.
    d.apply_ok(&pod(
        "mounty",
        &format!(
            r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
  volumes:
  - name: cfg
    configMap: {{name: later-vol}}
"#
        ),
    ));
    let msg = "MountVolume.SetUp failed for volume \"cfg\" : configmap \"later-vol\" not found";
    wait_until("FailedMount event", || {
        d.events("mounty")
            .iter()
            .any(|(r, m)| r == "FailedMount" && m == msg)
            .then(String::new)
    });
    let p = d.pod("mounty");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(waiting(&p, "app").0, "ContainerCreating");
    let describe = d.ok(&["describe", "pod", "mounty"]);
    assert!(describe.contains("FailedMount"), "{describe}");
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later-vol}\ndata: {k: v}\n");
    d.wait_running("mounty");
    assert_eq!(d.exec_ok("mounty", "app", &["cat", "/etc/cfg/k"]), "v");

    // A pod deleted while it waits for a volume leaves nothing behind: the
    // Secret volume set up before the missing one is unmounted.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: present}}\nstringData: {{k: v}}\n---\n{}",
        pod(
            "stuck",
            &format!(
                r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
  volumes:
  - name: sec
    secret: {{secretName: present}}
  - name: cfg
    configMap: {{name: nowhere}}
"#
            ),
        )
    ));
    let uid = d.pod("stuck")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("FailedMount of stuck", || {
        d.events("stuck")
            .iter()
            .any(|(r, _)| r == "FailedMount")
            .then(String::new)
    });
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&uid))
    };
    assert!(mounted(), "the secret volume was set up first");
    d.ok(&["delete", "pod", "stuck"]);
    assert!(!mounted(), "the secret volume's tmpfs is left");
    assert!(!d.root.join("pods").join(&uid).exists());

    // Optional references do not hold a pod.
    d.apply_ok(&pod(
        "relaxed",
        &format!(
            r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: never, key: mode, optional: true}}}}
    envFrom:
    - secretRef: {{name: never, optional: true}}
    volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
  volumes:
  - name: cfg
    configMap: {{name: never, optional: true}}
"#
        ),
    ));
    d.wait_running("relaxed");
    assert_eq!(d.exec_ok("relaxed", "app", &["ls", "/etc/cfg"]), "");
}

#[test]
fn configmap_volume_follows_updates_in_place() {
    let mut d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: site}}\ndata: {{index.html: version-1, extra: e1}}\n---\n{}",
        pod(
            "web",
            &format!(
                r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts:
    - {{name: site, mountPath: /etc/site}}
    - {{name: site, mountPath: /etc/pinned.html, subPath: index.html}}
    - {{name: items, mountPath: /etc/items}}
  volumes:
  - name: site
    configMap: {{name: site}}
  - name: items
    configMap:
      name: site
      defaultMode: 0440
      items: [{{key: index.html, path: nested/page.html}}, {{key: extra, path: x, mode: 0600}}]
"#
            )
        )
    ));
    d.wait_running("web");
    assert_eq!(
        d.exec_ok("web", "app", &["cat", "/etc/site/index.html"]),
        "version-1"
    );
    assert_eq!(
        d.exec_ok("web", "app", &["cat", "/etc/pinned.html"]),
        "version-1"
    );
    assert_eq!(
        d.exec_ok("web", "app", &["cat", "/etc/items/nested/page.html"]),
        "version-1"
    );
    let modes = d.modes(
        "web",
        "app",
        &["/etc/items/nested/page.html", "/etc/items/x"],
    );
    assert_eq!(modes, "440\n600\n");
    // The atomic writer's layout, as the container sees it.
    let link = d.exec_ok("web", "app", &["readlink", "/etc/site/index.html"]);
    assert_eq!(link.trim(), "..data/index.html");
    let data1 = d.exec_ok("web", "app", &["readlink", "/etc/site/..data"]);
    assert!(data1.trim().starts_with("..20"), "{data1}");
    // Read-only, as in Kubernetes.
    let w = d.exec("web", "app", &["sh", "-c", "echo x > /etc/site/new"]);
    assert!(!w.status.success());

    // kubectl's update idiom: create --dry-run=client -o yaml | apply -f -.
    let yaml = d.ok(&[
        "create",
        "configmap",
        "site",
        "--from-literal=index.html=version-2",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert!(yaml.contains("kind: ConfigMap"), "{yaml}");
    assert_eq!(d.apply_ok(&yaml), "configmap/site configured\n");
    wait_until("the new content in the running container", || {
        let out = d.exec_ok("web", "app", &["cat", "/etc/site/index.html"]);
        (out == "version-2").then_some(out)
    });
    let data2 = d.exec_ok("web", "app", &["readlink", "/etc/site/..data"]);
    assert_ne!(data1, data2);
    // The removed key is gone; the subPath mount keeps the old content.
    let ls = d.exec_ok("web", "app", &["ls", "/etc/site"]);
    assert_eq!(ls, "index.html\n");
    assert_eq!(
        d.exec_ok("web", "app", &["cat", "/etc/pinned.html"]),
        "version-1"
    );
    // The same container: no restart.
    let p = d.pod("web");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // A restarted daemon adopts the pod and keeps its volumes current.
    d.restart(&[]);
    d.wait_running("web");
    d.apply_ok(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site}\ndata: {index.html: version-3}\n",
    );
    wait_until("the update after a daemon restart", || {
        let out = d.exec_ok("web", "app", &["cat", "/etc/site/index.html"]);
        (out == "version-3").then_some(out)
    });
}

#[test]
fn secret_volume_is_tmpfs_with_default_mode() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\nstringData: {{key.pem: very-secret, cert.pem: public}}\n---\n{}",
        pod(
            "vault",
            &format!(
                r#"  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts:
    - {{name: tls, mountPath: /etc/tls}}
    - {{name: all, mountPath: /etc/all}}
  volumes:
  - name: tls
    secret: {{secretName: tls, defaultMode: 0400}}
  - name: all
    projected:
      sources:
      - secret: {{name: tls, items: [{{key: cert.pem, path: certs/cert.pem}}]}}
      - downwardAPI: {{items: [{{path: podname, fieldRef: {{fieldPath: metadata.name}}}}]}}
"#
            )
        )
    ));
    d.wait_running("vault");
    assert_eq!(
        d.exec_ok("vault", "app", &["cat", "/etc/tls/key.pem"]),
        "very-secret"
    );
    let modes = d.modes("vault", "app", &["/etc/tls/key.pem", "/etc/tls/cert.pem"]);
    assert_eq!(modes, "400\n400\n");
    let mountinfo = d.exec_ok("vault", "app", &["cat", "/proc/self/mountinfo"]);
    for mp in ["/etc/tls", "/etc/all"] {
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("{mp} not mounted:\n{mountinfo}"));
        assert!(line.contains(" - tmpfs "), "{mp} is not a tmpfs: {line}");
        assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}");
    }
    assert_eq!(
        d.exec_ok("vault", "app", &["cat", "/etc/all/certs/cert.pem"]),
        "public"
    );
    assert_eq!(
        d.exec_ok("vault", "app", &["cat", "/etc/all/podname"]),
        "vault"
    );
    // On the host, too: the volume is a tmpfs, and the secret is in no
    // file under the daemon's root on disk.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        host.lines()
            .any(|l| l.contains("kubernetes.io~secret/tls") && l.contains(" - tmpfs ")),
        "no tmpfs for the secret volume on the host"
    );
    let uid = d.pod("vault")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let vol = d
        .root
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~secret/tls");
    assert!(std::fs::symlink_metadata(vol.join("..data"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Secret updates reach the tmpfs.
    d.apply_ok("apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\nstringData: {key.pem: rotated, cert.pem: public}\n");
    wait_until("the rotated secret", || {
        let out = d.exec_ok("vault", "app", &["cat", "/etc/tls/key.pem"]);
        (out == "rotated").then_some(out)
    });
    d.ok(&["delete", "pod", "vault"]);
    assert!(!vol.exists());
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(&uid), "a mount of the pod is left");
}

#[test]
fn downward_api_as_env_and_volume() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: self-aware
  labels: {{app: web, tier: front}}
  annotations: {{owner: team-a}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, "3600"]
    resources:
      limits: {{cpu: 500m, memory: 64Mi}}
      requests: {{cpu: 250m, memory: 32Mi}}
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: POD_UID, valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}}}
    - {{name: APP, valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}}}
    - {{name: OWNER, valueFrom: {{fieldRef: {{fieldPath: "metadata.annotations['owner']"}}}}}}
    - {{name: SA, valueFrom: {{fieldRef: {{fieldPath: spec.serviceAccountName}}}}}}
    - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: POD_IPS, valueFrom: {{fieldRef: {{fieldPath: status.podIPs}}}}}}
    - {{name: CPU_LIMIT_M, valueFrom: {{resourceFieldRef: {{resource: limits.cpu, divisor: 1m}}}}}}
    - {{name: CPU_LIMIT, valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}}}
    - {{name: MEM_LIMIT_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    - {{name: MEM_REQUEST, valueFrom: {{resourceFieldRef: {{resource: requests.memory}}}}}}
    - {{name: SIDE_CPU, valueFrom: {{resourceFieldRef: {{containerName: side, resource: limits.cpu, divisor: 1m}}}}}}
    volumeMounts:
    - {{name: info, mountPath: /etc/podinfo}}
    - {{name: logs, mountPath: /logs, subPathExpr: "$(POD_NAME)-$(APP)"}}
  - name: side
    image: {BUSYBOX}
    command: [sleep, "3600"]
    volumeMounts: [{{name: logs, mountPath: /all}}]
  volumes:
  - name: logs
    emptyDir: {{}}
  - name: info
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}
      - {{path: uid, fieldRef: {{fieldPath: metadata.uid}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - {{path: mem_limit, resourceFieldRef: {{containerName: app, resource: limits.memory, divisor: 1Mi}}}}
"#
    ));
    let p = d.wait_running("self-aware");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let env = d.exec_ok("self-aware", "app", &["env"]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    // The pod's IP from CNI, the same as its status shows.
    let ip = p["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with(&format!("10.234.{}.", d.net.n)), "{ip}");
    for want in [
        format!("POD_IP={ip}"),
        format!("POD_IPS={ip}"),
        "POD_NAME=self-aware".into(),
        "POD_NAMESPACE=default".into(),
        format!("POD_UID={uid}"),
        "APP=web".into(),
        "OWNER=team-a".into(),
        "SA=default".into(),
        "HOST_IP=127.0.0.1".into(),
        "CPU_LIMIT_M=500".into(),
        // 0.5 CPU rounds up to 1.
        "CPU_LIMIT=1".into(),
        "MEM_LIMIT_MI=64".into(),
        format!("MEM_REQUEST={}", 32 * 1024 * 1024),
        // No limit: the node's allocatable CPUs.
        format!("SIDE_CPU={}", cpus * 1000),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    let read = |f: &str| d.exec_ok("self-aware", "app", &["cat", &format!("/etc/podinfo/{f}")]);
    assert_eq!(read("name"), "self-aware");
    assert_eq!(read("namespace"), "default");
    assert_eq!(read("uid"), uid);
    assert_eq!(read("labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read("annotations"), "owner=\"team-a\"");
    assert_eq!(read("mem_limit"), "64");
    // subPathExpr expands the container's env.
    d.exec_ok("self-aware", "app", &["sh", "-c", "echo mine > /logs/f"]);
    assert_eq!(
        d.exec_ok("self-aware", "side", &["cat", "/all/self-aware-web/f"]),
        "mine\n"
    );
}

/// `apply -k`: a kustomization's generated ConfigMap (with its hash suffix)
/// and a pod that refers to it by its short name, renamed and labelled.
#[test]
fn apply_kustomization_with_generated_configmap() {
    let d = Daemon::start();
    let dir = d.dir.join("kustomize");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "namePrefix: dev-\ncommonLabels:\n  team: shop\nresources: [pod.yaml]\nconfigMapGenerator:\n  - name: conf\n    literals: [MODE=fast]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pod.yaml"),
        pod(
            "web",
            &format!(
                "  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo mode=$MODE; sleep 3600']\n    envFrom:\n    - configMapRef: {{name: conf}}\n"
            ),
        ),
    )
    .unwrap();
    let built = d.ok(&["kustomize", dir.to_str().unwrap()]);
    let cm_name = built
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: dev-conf-"))
        .map(|h| format!("dev-conf-{h}"))
        .unwrap_or_else(|| panic!("no generated ConfigMap in:\n{built}"));
    assert_eq!(cm_name.len(), "dev-conf-".len() + 10, "{built}");

    let out = d.ok(&["apply", "-k", dir.to_str().unwrap()]);
    assert!(
        out.contains(&format!("configmap/{cm_name} created")),
        "{out}"
    );
    assert!(out.contains("pod/dev-web created"), "{out}");
    let p = d.wait_running("dev-web");
    assert_eq!(p["metadata"]["labels"]["team"], "shop");
    let logs = wait_until("the pod's log", || {
        let l = d.ok(&["logs", "dev-web"]);
        l.contains("mode=").then_some(l)
    });
    assert_eq!(logs.trim(), "mode=fast");

    let bad = d.peapod(&["apply", "-k", d.dir.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(failed(&bad).contains("unable to find one of 'kustomization.yaml'"));
    d.ok(&["delete", "pod", "dev-web", "--grace-period=0"]);
}
