//! Image store integration tests at the pod level, against a real registry
//! process (Debian's docker-registry) on 127.0.0.1.

mod common;
#[path = "../../image/tests/support/mod.rs"]
mod registry;

use common::*;
use registry::Registry;
use std::time::Duration;

fn pod(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n{extra}  containers:\n  - name: c\n    image: {image}\n    command: [sleep, '3600']\n"
    )
}

fn tree_is_empty(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pod_pulls_its_image_from_a_registry() {
    if !registry::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(
        &registry::test_images().join("busybox.tar"),
        "team/busybox:v1",
        &[],
    );
    let d = Daemon::start_bare(&[]);
    let image = format!("{}/team/busybox:v1", reg.host());
    d.apply_ok(&pod("pulled", &image, ""));
    let p = d.wait_running("pulled");
    assert!(p["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap()
        .contains("@sha256:"));
    let describe = d.ok(&["describe", "pod", "pulled"]);
    assert!(
        describe.contains("Pulling") && describe.contains("Successfully pulled image"),
        "{describe}"
    );
    let images = d.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/team/busybox", reg.host())) && images.contains("v1"),
        "{images}"
    );

    // In use: refused. After the pod is gone: removed, and GC leaves nothing.
    let out = d.peapod(&["image", "rm", &image]);
    assert!(
        !out.status.success(),
        "{} {}",
        stdout(&out),
        d.ok(&["images"])
    );
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    d.ok(&["delete", "pod", "pulled"]);
    let out = d.ok(&["image", "rm", &image]);
    assert!(out.contains("Deleted"), "{out}");
    let store = d.root.join("images");
    assert_eq!(
        tree_is_empty(&store.join("blobs/sha256")),
        Vec::<String>::new()
    );
    assert_eq!(tree_is_empty(&store.join("layers")), Vec::<String>::new());
    assert_eq!(tree_is_empty(&store.join("images")), Vec::<String>::new());

    // `peapod pull` without a terminal prints plain lines and NAME@DIGEST.
    let out = d.ok(&["pull", &image]);
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with(&format!("{image}@sha256:")),
        "{out}"
    );
    assert!(out.contains("Resolving"), "{out}");
    // A missing tag: the registry's error, clearly.
    let out = d.peapod(&["pull", &format!("{}/team/busybox:nope", reg.host())]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("MANIFEST_UNKNOWN") || stderr(&out).contains("404"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pull_secret_opens_a_basic_auth_registry() {
    if !registry::require_registry_tools() {
        return;
    }
    let reg = Registry::start_basic_auth("alice", "s3cret");
    reg.push(
        &registry::test_images().join("busybox.tar"),
        "private/busybox:v1",
        &[],
    );
    let d = Daemon::start_bare(&[]);
    let image = format!("{}/private/busybox:v1", reg.host());

    d.apply_ok(&pod("nocreds", &image, ""));
    let p = d.wait_pod("nocreds", "ErrImagePull", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("401") || msg.to_lowercase().contains("unauthorized"),
        "{msg}"
    );
    d.wait_pod("nocreds", "ImagePullBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert!(d.ok(&["get", "pods"]).contains("ImagePullBackOff"));
    let describe = d.ok(&["describe", "pod", "nocreds"]);
    assert!(describe.contains("Failed to pull image"), "{describe}");

    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b"alice:s3cret")
    };
    let config = format!(
        "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
        reg.host()
    );
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config}'\n---\n{}",
        pod("withcreds", &image, "  imagePullSecrets: [{name: regcred}]\n")
    );
    let out = d.apply_ok(&secret);
    assert!(
        out.contains("secret/regcred created") && out.contains("pod/withcreds created"),
        "{out}"
    );
    d.wait_running("withcreds");
    // A dockerconfigjson Secret without its key is refused, naming it.
    let bad = d.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ntype: kubernetes.io/dockerconfigjson\n");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("data[.dockerconfigjson]"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn mirror_serves_docker_hub_names_and_export_round_trips() {
    if !registry::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(
        &registry::test_images().join("busybox.tar"),
        "library/busybox:1.36",
        &[],
    );
    // One daemon, with the mirror config.
    let id_dir = std::env::temp_dir().join(format!("ppconf-{}", std::process::id()));
    std::fs::create_dir_all(&id_dir).unwrap();
    std::fs::write(
        id_dir.join("registries.toml"),
        format!(
            "[registry.\"docker.io\"]\nmirrors = [\"http://{}\"]\nskip_upstream = true\n",
            reg.host()
        ),
    )
    .unwrap();
    let d = Daemon::start_bare(&["--config-dir", id_dir.to_str().unwrap()]);
    d.apply_ok(&pod("hub", "busybox:1.36", ""));
    let p = d.wait_running("hub");
    assert!(p["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap()
        .starts_with("docker.io/library/busybox:1.36@"));
    assert!(
        reg.log().contains("/v2/library/busybox/manifests/1.36"),
        "the mirror was not used"
    );

    // Export in both formats; skopeo reads them.
    for format in ["oci", "docker"] {
        let file = d.dir.join(format!("export-{format}.tar"));
        d.ok(&[
            "image",
            "export",
            "docker.io/library/busybox:1.36",
            "-o",
            file.to_str().unwrap(),
            "--format",
            format,
        ]);
        let transport = if format == "oci" {
            "oci-archive"
        } else {
            "docker-archive"
        };
        let out = std::process::Command::new("skopeo")
            .args(["inspect", &format!("{transport}:{}", file.display())])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&id_dir);
    std::thread::sleep(Duration::from_millis(10));
}
