//! Registry pulls against a real registry (Debian's `docker-registry`,
//! distribution 2.8) started on 127.0.0.1 for each test, with the test
//! images (scripts/build-test-images.sh) pushed to it by skopeo.
//!
//! Bearer-token auth: distribution's own `token` auth needs signed JWTs and
//! a certificate chain; instead, a small proxy in front of a plain registry
//! answers 401 with `WWW-Authenticate: Bearer realm=…` and hands tokens out
//! from its `/token` endpoint to HTTP-basic credentials: what the puller
//! does (challenge → token request with scope → bearer requests) is the
//! same. The same proxy counts blob GETs for the single-flight test.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol};
use peapod_image::{
    credentials_from_dockerconfigjson, Credential, ImageError, ImageStore, PullEvent, Puller,
    RegistryConfig,
};
use sha2::{Digest, Sha256};
use support::{Proxy, Registry, TokenAuth};

fn new_store() -> (tempfile::TempDir, Arc<ImageStore>) {
    let d = tempfile::Builder::new()
        .prefix("peapod-pull-")
        .tempdir()
        .expect("store tempdir");
    let s = ImageStore::open(&d.path().join("root")).expect("open store");
    (d, Arc::new(s))
}

fn busybox_tar() -> std::path::PathBuf {
    support::test_images().join("busybox.tar")
}

fn httpd_tar() -> std::path::PathBuf {
    support::test_images().join("httpd.tar")
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Files left in the store's staging dir.
fn tmp_entries(store: &ImageStore) -> Vec<String> {
    std::fs::read_dir(store.root().join("tmp"))
        .expect("tmp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

async fn pull_collect(
    puller: &Puller,
    reference: &str,
    creds: &[Credential],
) -> (
    Result<peapod_image::ImageRecord, ImageError>,
    Vec<PullEvent>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let res = puller.pull(reference, creds, Some(tx)).await;
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    (res, events)
}

fn dockerconfigjson(host: &str, user: &str, password: &str) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({"auths": {host: {"auth": auth}}})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_by_tag_and_by_digest() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(&busybox_tar(), "peapod/busybox:v1", &[]);
    reg.push(&httpd_tar(), "peapod/httpd:v1", &[]);
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());

    let tag_ref = format!("{}/peapod/busybox:v1", reg.host());
    let (rec, events) = pull_collect(&puller, &tag_ref, &[]).await;
    let rec = rec.expect("pull by tag");
    assert_eq!(rec.name, tag_ref);
    assert_eq!(rec.layers.len(), 1);
    assert!(store.has_blob(&rec.digest) && store.has_blob(&rec.config_digest));

    // The same image as an import of the archive gives.
    let (_d2, other) = new_store();
    let imported = other
        .import(
            std::fs::File::open(busybox_tar()).expect("open busybox.tar"),
            None,
        )
        .expect("import");
    assert_eq!(
        imported[0].digest, rec.digest,
        "skopeo keeps the OCI manifest"
    );
    assert_eq!(imported[0].diff_ids, rec.diff_ids);

    // Unpacked, and the config is readable.
    let dirs = store.layer_dirs(&rec).expect("layer dirs");
    assert!(dirs[0].join("bin/busybox").is_file());
    assert_eq!(store.config(&rec).expect("config").cmd, ["sh"]);
    assert_eq!(
        store.get(&tag_ref).expect("get").map(|r| r.digest),
        Some(rec.digest.clone())
    );

    // Events, in order.
    assert_eq!(
        events.first(),
        Some(&PullEvent::Resolving {
            reference: tag_ref.clone()
        })
    );
    let layer = &rec.layers[0];
    match &events[1] {
        PullEvent::Resolved { digest, layers } => {
            assert_eq!(digest, &rec.digest);
            assert_eq!(layers.len(), 1);
            assert_eq!(&layers[0].0, layer);
        }
        other => panic!("expected Resolved, got {other:?}"),
    }
    let total = std::fs::metadata(store.blob_path(layer).expect("path"))
        .expect("blob")
        .len();
    assert!(events.contains(&PullEvent::Layer {
        digest: layer.clone(),
        done: total,
        total
    }));
    assert!(events.contains(&PullEvent::LayerDone {
        digest: layer.clone(),
        cached: false
    }));
    assert_eq!(
        events.last(),
        Some(&PullEvent::Done {
            digest: rec.digest.clone()
        })
    );

    // resolve_digest agrees with the record.
    assert_eq!(
        puller.resolve_digest(&tag_ref, &[]).await.expect("resolve"),
        rec.digest
    );

    // By digest: nothing downloaded again.
    let digest_ref = format!("{}/peapod/busybox@{}", reg.host(), rec.digest);
    let (rec2, events) = pull_collect(&puller, &digest_ref, &[]).await;
    let rec2 = rec2.expect("pull by digest");
    assert_eq!(rec2.name, digest_ref);
    assert_eq!(rec2.digest, rec.digest);
    assert!(events.contains(&PullEvent::LayerDone {
        digest: layer.clone(),
        cached: true
    }));
    assert!(
        !events.iter().any(|e| matches!(e, PullEvent::Layer { .. })),
        "{events:?}"
    );
    assert_eq!(
        store.get(&digest_ref).expect("get").map(|r| r.digest),
        Some(rec.digest.clone())
    );

    // httpd shares busybox's base layer: only its own layer is fetched.
    let httpd_ref = format!("{}/peapod/httpd:v1", reg.host());
    let (h, events) = pull_collect(&puller, &httpd_ref, &[]).await;
    let h = h.expect("pull httpd");
    assert_eq!(h.layers[0], rec.layers[0]);
    assert!(events.contains(&PullEvent::LayerDone {
        digest: h.layers[0].clone(),
        cached: true
    }));
    assert!(events.contains(&PullEvent::LayerDone {
        digest: h.layers[1].clone(),
        cached: false
    }));
    assert_eq!(
        store
            .config(&h)
            .expect("httpd config")
            .working_dir
            .as_deref(),
        Some("/www")
    );

    // A tag that does not exist: the registry's own error, with status.
    let missing = format!("{}/peapod/busybox:nope", reg.host());
    match puller.pull(&missing, &[], None).await {
        Err(e @ ImageError::Registry { .. }) => {
            let msg = e.to_string();
            eprintln!("error: {msg}");
            assert!(msg.contains("MANIFEST_UNKNOWN"), "{msg}");
            assert!(msg.contains("HTTP 404"), "{msg}");
            assert!(msg.contains(&missing), "{msg}");
        }
        other => panic!("expected a registry error, got {other:?}"),
    }
    // Nothing to reach at all: the transport error names the cause.
    let dead = format!("127.0.0.1:{}/x/y:z", support::free_port());
    let err = puller.pull(&dead, &[], None).await.expect_err("dead port");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains("onnection refused"), "{msg}");
    assert!(tmp_entries(&store).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_zstd_layers() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(
        &busybox_tar(),
        "peapod/busybox:zstd",
        &["--dest-compress-format", "zstd", "--dest-compress"],
    );
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());
    let reference = format!("{}/peapod/busybox:zstd", reg.host());
    let rec = puller.pull(&reference, &[], None).await.expect("pull zstd");
    let manifest = reg.manifest(&rec.digest);
    let media = manifest["layers"][0]["mediaType"]
        .as_str()
        .expect("layer media type");
    assert!(media.ends_with("+zstd"), "skopeo pushed {media}");
    let dirs = store.layer_dirs(&rec).expect("layer dirs");
    assert!(dirs[0].join("bin/busybox").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_resolves_to_amd64() {
    if !support::require_registry_tools() {
        return;
    }
    support::install_crypto();
    let reg = Registry::start();
    reg.push(&busybox_tar(), "peapod/multi:amd64", &[]);
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());
    let amd64_digest = puller
        .resolve_digest(&format!("{}/peapod/multi:amd64", reg.host()), &[])
        .await
        .expect("resolve amd64");
    let amd64 = reg.manifest(&amd64_digest);
    let amd64_bytes = std::fs::read(reg.blob_file(&amd64_digest)).expect("amd64 manifest");

    // A fake arm64 image: its own config (architecture arm64), the same layer.
    let client = oci_client::Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
    .expect("oci client");
    let repo = |tag_or_digest: &str| -> oci_client::Reference {
        format!("{}/peapod/multi{tag_or_digest}", reg.host())
            .parse()
            .expect("reference")
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
    }))
    .expect("config json");
    let config_digest = sha256(&config);
    client
        .push_blob(&repo(":arm64"), config.clone(), &config_digest)
        .await
        .expect("push arm64 config");
    let arm64 = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": amd64["layers"],
    }))
    .expect("arm64 manifest");
    let arm64_digest = sha256(&arm64);
    let oci_manifest =
        reqwest::header::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json");
    client
        .push_manifest_raw(
            &repo(&format!("@{arm64_digest}")),
            arm64.clone(),
            oci_manifest,
        )
        .await
        .expect("push arm64 manifest");
    // arm64 first, so picking the first entry would be wrong.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64_digest,
             "size": arm64.len(), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64_digest,
             "size": amd64_bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .expect("index");
    let index_digest = sha256(&index);
    client
        .push_manifest_raw(
            &repo(":multi"),
            index.clone(),
            reqwest::header::HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        )
        .await
        .expect("push index");

    let reference = format!("{}/peapod/multi:multi", reg.host());
    let rec = puller
        .pull(&reference, &[], None)
        .await
        .expect("pull index");
    assert_eq!(rec.digest, amd64_digest, "the amd64 manifest was chosen");
    assert_eq!(rec.name, reference);
    assert!(store.layer_dirs(&rec).expect("dirs")[0]
        .join("bin/busybox")
        .is_file());
    assert_eq!(
        puller
            .resolve_digest(&reference, &[])
            .await
            .expect("resolve"),
        amd64_digest,
        "resolve_digest gives the platform manifest"
    );
    // By the index digest too.
    let by_index = format!("{}/peapod/multi@{index_digest}", reg.host());
    let rec = puller
        .pull(&by_index, &[], None)
        .await
        .expect("pull by index digest");
    assert_eq!(rec.digest, amd64_digest);
    assert!(
        !store.has_blob(&config_digest),
        "arm64 config never fetched"
    );

    // An index without this platform: a clear error listing what it has.
    let only_arm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64_digest,
             "size": arm64.len(), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }))
    .expect("index");
    client
        .push_manifest_raw(
            &repo(":armonly"),
            only_arm,
            reqwest::header::HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        )
        .await
        .expect("push arm-only index");
    let err = puller
        .pull(&format!("{}/peapod/multi:armonly", reg.host()), &[], None)
        .await
        .expect_err("no amd64");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains("no linux/amd64 image"), "{msg}");
    assert!(msg.contains("linux/arm64/v8"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_registry() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start_basic_auth("alice", "s3cret");
    reg.push(&busybox_tar(), "private/busybox:v1", &[]);
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());
    let reference = format!("{}/private/busybox:v1", reg.host());

    // No credentials: 401 and what to do about it.
    match puller.pull(&reference, &[], None).await {
        Err(
            e @ ImageError::Registry {
                status: Some(401), ..
            },
        ) => {
            let msg = e.to_string();
            eprintln!("error: {msg}");
            assert!(msg.contains("no credentials for"), "{msg}");
            assert!(msg.contains("imagePullSecret"), "{msg}");
            assert!(msg.contains(&reg.host()), "{msg}");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    // Wrong password: rejected, naming the user.
    let wrong = credentials_from_dockerconfigjson(&dockerconfigjson(&reg.host(), "alice", "nope"))
        .expect("secret");
    match puller.pull(&reference, &wrong, None).await {
        Err(
            e @ ImageError::Registry {
                status: Some(401), ..
            },
        ) => {
            let msg = e.to_string();
            eprintln!("error: {msg}");
            assert!(
                msg.contains("rejected the credentials of user \"alice\""),
                "{msg}"
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(store.list().expect("list").is_empty());

    // An imagePullSecret.
    let creds = credentials_from_dockerconfigjson(&dockerconfigjson(
        &format!("http://{}/v2/", reg.host()),
        "alice",
        "s3cret",
    ))
    .expect("secret");
    let rec = puller
        .pull(&reference, &creds, None)
        .await
        .expect("pull with imagePullSecret");
    assert_eq!(rec.name, reference);

    // Credentials from the registry config file, with a fresh store.
    let (_d2, store2) = new_store();
    let config = RegistryConfig::parse(
        &format!(
            "[registry.\"{}\"]\nusername = \"alice\"\npassword = \"s3cret\"\n",
            reg.host()
        ),
        Path::new("registries.toml"),
    )
    .expect("config");
    let puller2 = Puller::new(store2, config);
    puller2
        .pull(&reference, &[], None)
        .await
        .expect("pull with config credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_realm() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(&busybox_tar(), "team/busybox:v1", &[]);
    let token = TokenAuth {
        user: "bob".into(),
        password: "hunter2".into(),
        token: format!("tok-{}", std::process::id()),
    };
    let proxy = Proxy::start(reg.port, Some(token)).await;
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());
    let reference = format!("{}/team/busybox:v1", proxy.host());

    let err = puller
        .pull(&reference, &[], None)
        .await
        .expect_err("no credentials");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains("HTTP 401") || msg.contains("token"), "{msg}");
    assert!(msg.contains("no credentials for"), "{msg}");

    let creds = vec![Credential {
        registry: proxy.host(),
        username: "bob".into(),
        password: "hunter2".into(),
    }];
    let rec = puller
        .pull(&reference, &creds, None)
        .await
        .expect("pull with a bearer token");
    assert!(store.layer_dirs(&rec).expect("dirs")[0]
        .join("bin/busybox")
        .is_file());
    let asked = proxy.token_requests();
    assert!(
        asked
            .iter()
            .any(|q| q.contains("repository%3Ateam%2Fbusybox%3Apull")
                && q.contains("service=peapod-test")),
        "token requests: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_refused() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(&httpd_tar(), "peapod/httpd:v1", &[]);
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), RegistryConfig::default());
    let reference = format!("{}/peapod/httpd:v1", reg.host());
    let digest = puller
        .resolve_digest(&reference, &[])
        .await
        .expect("resolve");
    let manifest = reg.manifest(&digest);
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let base = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();

    // Same size, other bytes.
    let file = reg.blob_file(&top);
    let mut data = std::fs::read(&file).expect("blob data");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).expect("corrupt blob");

    match puller.pull(&reference, &[], None).await {
        Err(ImageError::DigestMismatch {
            what,
            expected,
            actual,
        }) => {
            assert_eq!(expected, top);
            assert_ne!(actual, top);
            assert!(what.contains(&top), "{what}");
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(store.list().expect("list").is_empty(), "no image record");
    assert!(store.get(&reference).expect("get").is_none());
    assert!(!store.has_blob(&top), "no corrupt blob stored");
    assert!(!store.has_blob(&digest), "no manifest stored");
    assert!(tmp_entries(&store).is_empty(), "no half blob left in tmp/");
    // The base layer was fine: verified and kept for the next try.
    let _ = base;

    // A blob of the wrong size (truncated in the registry): refused too.
    std::fs::write(&file, &data[..mid]).expect("truncate blob");
    let err = puller.pull(&reference, &[], None).await.expect_err("size");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains(&top), "{msg}");
    assert!(msg.contains("size mismatch"), "{msg}");
    assert!(store.list().expect("list").is_empty());
    assert!(tmp_entries(&store).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_docker_io() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(&busybox_tar(), "library/busybox:latest", &[]);
    let dead = support::free_port();
    let config = RegistryConfig::parse(
        &format!(
            "[registry.\"docker.io\"]\nmirrors = [\"http://127.0.0.1:{dead}\", \"http://{}\"]\nskip_upstream = true\n",
            reg.host()
        ),
        Path::new("registries.toml"),
    )
    .expect("config");
    let (_d, store) = new_store();
    let puller = Puller::new(store.clone(), config);
    let rec = puller
        .pull("busybox", &[], None)
        .await
        .expect("pull busybox through the mirror");
    assert_eq!(rec.name, "docker.io/library/busybox:latest");
    assert_eq!(
        store.get("busybox").expect("get").map(|r| r.digest),
        Some(rec.digest.clone())
    );
    assert!(reg.log().contains("/v2/library/busybox/manifests/latest"));

    // Not on the mirror, upstream skipped: the error says what was tried.
    let err = puller
        .pull("docker.io/library/nothere:1", &[], None)
        .await
        .expect_err("not mirrored");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(
        msg.contains("MANIFEST_UNKNOWN") || msg.contains("NAME_UNKNOWN"),
        "{msg}"
    );
    assert!(msg.contains(&format!("127.0.0.1:{dead}")), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_fetch_each_blob_once() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start();
    reg.push(&httpd_tar(), "peapod/httpd:v1", &[]);
    let proxy = Proxy::start(reg.port, None).await;
    let (_d, store) = new_store();
    let puller = Arc::new(Puller::new(store.clone(), RegistryConfig::default()));
    let reference = format!("{}/peapod/httpd:v1", proxy.host());

    let (a, b) = tokio::join!(
        puller.pull(&reference, &[], None),
        puller.pull(&reference, &[], None)
    );
    let a = a.expect("pull a");
    let b = b.expect("pull b");
    assert_eq!(a, b);
    let mut want: HashMap<String, usize> = a.layers.iter().map(|l| (l.clone(), 1)).collect();
    want.insert(a.config_digest.clone(), 1);
    assert_eq!(proxy.blob_gets(), want, "each blob fetched exactly once");

    // Pulled again later: still nothing downloaded.
    puller
        .pull(&reference, &[], None)
        .await
        .expect("pull again");
    assert_eq!(proxy.blob_gets(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_with_ca_file_or_insecure() {
    if !support::require_registry_tools() {
        return;
    }
    let reg = Registry::start_tls();
    reg.push(&busybox_tar(), "peapod/busybox:v1", &[]);
    let reference = format!("{}/peapod/busybox:v1", reg.host());
    let host = reg.host();
    let ca = reg.ca.clone().expect("registry CA");
    let config = |body: &str| {
        RegistryConfig::parse(
            &format!("[registry.\"{host}\"]\n{body}\n"),
            Path::new("registries.toml"),
        )
        .expect("config")
    };

    // Loopback without configuration: plain HTTP, which an HTTPS registry
    // refuses.
    let (_d, store) = new_store();
    let err = Puller::new(store, RegistryConfig::default())
        .pull(&reference, &[], None)
        .await
        .expect_err("plain http to an https registry");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains("http://"), "{msg}");

    // Its CA: verified HTTPS.
    let (_d, store) = new_store();
    let rec = Puller::new(
        store.clone(),
        config(&format!("ca_file = \"{}\"", ca.display())),
    )
    .pull(&reference, &[], None)
    .await
    .expect("pull over https with ca_file");
    assert!(store.layer_dirs(&rec).expect("dirs")[0]
        .join("bin/busybox")
        .is_file());

    // Another CA: the certificate is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let (other_ca, _, _) = support::make_certs(other.path(), "other");
    let (_d, store) = new_store();
    let err = Puller::new(
        store.clone(),
        config(&format!("ca_file = \"{}\"", other_ca.display())),
    )
    .pull(&reference, &[], None)
    .await
    .expect_err("wrong CA");
    let msg = err.to_string();
    eprintln!("error: {msg}");
    assert!(msg.contains("https://"), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert!(store.list().expect("list").is_empty());

    // insecure = true: HTTPS without verification.
    let (_d, store) = new_store();
    Puller::new(store, config("insecure = true"))
        .pull(&reference, &[], None)
        .await
        .expect("pull with insecure = true");

    // insecure = true on a plain-HTTP registry: HTTPS fails, plain HTTP
    // follows.
    let plain = Registry::start();
    plain.push(&busybox_tar(), "peapod/busybox:v1", &[]);
    let (_d, store) = new_store();
    let config = RegistryConfig::parse(
        &format!("[registry.\"{}\"]\ninsecure = true\n", plain.host()),
        Path::new("registries.toml"),
    )
    .expect("config");
    Puller::new(store, config)
        .pull(&format!("{}/peapod/busybox:v1", plain.host()), &[], None)
        .await
        .expect("insecure registry falls back to plain http");
}
