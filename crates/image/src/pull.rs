//! Registry pulls over the OCI distribution protocol (with `oci-client`).
//!
//! A pull resolves the reference to a manifest on the first endpoint that
//! has it (mirrors in order, then the upstream registry), resolves image
//! indexes / manifest lists to this host's platform (linux/amd64 here),
//! then fetches the config and the layers with oci-client's blob *streaming*
//! call into a file under the store's `tmp/`, hashing and counting on the
//! way. A blob is moved into the store only when its sha256 and size match
//! its descriptor; each layer is then unpacked (once per diff id) while the
//! other layers download. The manifest blob and the image record are written
//! last, so a failed pull leaves no image record and no partial blob (blobs
//! that were complete and verified stay, for the next try, until GC).
//!
//! Blobs already in the store are not downloaded again, and concurrent pulls
//! through one [`Puller`] download each blob once: every blob is fetched
//! and unpacked under a per-digest lock, and whoever gets the lock second
//! finds it in the store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{io_ctx, ImageError};
use crate::reference::{validate_digest, Reference};
use crate::registry::{find_credential, Credential, Endpoint, RegistryConfig};
use crate::store::{sha256_hex, ImageRecord, ImageStore, TmpGuard, META_LIMIT};

const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const ACCEPT: &[&str] = &[
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_MANIFEST,
];

/// Layers downloaded (and unpacked) at once per pull, as containerd does.
const MAX_CONCURRENT_LAYERS: usize = 3;
/// A `Layer` progress event at most every this many bytes.
const PROGRESS_STEP: u64 = 1 << 20;
/// Chunks queued between the network and the file writer.
const WRITE_QUEUE: usize = 32;

/// What a pull reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Asking the registry what `reference` names.
    Resolving { reference: String },
    /// The image manifest `digest` and its layers (digest, compressed size).
    Resolved {
        digest: String,
        layers: Vec<(String, u64)>,
    },
    /// Download progress of one layer.
    Layer {
        digest: String,
        done: u64,
        total: u64,
    },
    /// A layer is in the store and unpacked; `cached`: it was already there
    /// (or another pull brought it meanwhile) and was not downloaded.
    LayerDone { digest: String, cached: bool },
    /// The image is registered.
    Done { digest: String },
}

/// Pulls images from registries into an [`ImageStore`].
pub struct Puller {
    store: Arc<ImageStore>,
    config: RegistryConfig,
    /// One oci-client per endpoint and credential (each keeps its tokens).
    clients: Mutex<HashMap<ClientKey, Client>>,
    /// Per-blob locks: single flight for downloads and unpacks.
    inflight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    endpoint: Endpoint,
    user: Option<(String, String)>,
}

/// The endpoint a pull talks to, with its client and auth.
struct Target {
    endpoint: Endpoint,
    client: Client,
    oref: oci_client::Reference,
    auth: RegistryAuth,
    /// The normalised reference, for messages.
    reference: String,
}

/// A manifest as the registry sent it.
struct Resolved {
    target: Target,
    /// The image manifest's digest and bytes (after index resolution).
    digest: String,
    bytes: Vec<u8>,
    manifest: ImageManifest,
}

/// A manifest as the registry sent it.
enum Manifest {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// reqwest (through oci-client) needs a process-wide rustls crypto provider.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means one is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Removes the per-blob lock entry when the last user is done.
struct FlightGuard {
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    key: String,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        if let Ok(mut map) = self.map.lock() {
            // One reference in the map, one here: nobody else waits.
            if Arc::strong_count(&lock) <= 2 {
                map.remove(&self.key);
            }
        }
    }
}

impl Puller {
    pub fn new(store: Arc<ImageStore>, config: RegistryConfig) -> Self {
        install_crypto_provider();
        Puller {
            store,
            config,
            clients: Mutex::new(HashMap::new()),
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Pull `reference` (`busybox`, `host:5000/a/b:tag`, `…@sha256:…`) into
    /// the store and register it under its normalised name. `creds` are
    /// tried by registry host (and repository prefix); the registry config's
    /// own credentials are used when none matches. Progress goes to
    /// `progress`, if given (a closed receiver is ignored).
    pub async fn pull(
        &self,
        reference: &str,
        creds: &[Credential],
        progress: Option<UnboundedSender<PullEvent>>,
    ) -> Result<ImageRecord, ImageError> {
        let r = Reference::parse(reference)?;
        let send = |ev: PullEvent| {
            if let Some(tx) = &progress {
                let _ = tx.send(ev);
            }
        };
        send(PullEvent::Resolving {
            reference: r.to_string(),
        });
        let resolved = self.resolve(&r, creds).await?;
        let target = &resolved.target;
        let m = &resolved.manifest;
        let mctx = format!("manifest {} of {}", resolved.digest, target.reference);
        let config = m.config().clone();
        let config_digest = config.digest().to_string();
        let config_media = config.media_type().to_string();
        if config_media != MEDIA_OCI_CONFIG && config_media != MEDIA_DOCKER_CONFIG {
            return Err(ImageError::Unsupported(format!(
                "{mctx} is not a container image: config media type {config_media}"
            )));
        }
        if config.size() > META_LIMIT {
            return Err(ImageError::InvalidArchive(format!(
                "{mctx}: config {config_digest} is {} bytes, more than the {META_LIMIT} allowed",
                config.size()
            )));
        }
        let layers = m.layers().clone();
        for l in std::iter::once(&config).chain(&layers) {
            validate_digest(l.digest().as_ref())?;
        }
        for l in &layers {
            let media = l.media_type().to_string();
            if !media.contains("tar") {
                return Err(ImageError::Unsupported(format!(
                    "{mctx}: layer {} has media type {media}, not a tar layer",
                    l.digest()
                )));
            }
        }
        send(PullEvent::Resolved {
            digest: resolved.digest.clone(),
            layers: layers
                .iter()
                .map(|l| (l.digest().to_string(), l.size()))
                .collect(),
        });

        // Garbage collection must not run between "blob stored" and "record
        // written": hold the store's shared GC lock until the record is in.
        let gc_store = self.store.clone();
        let _gc = blocking(move || gc_store.gc_lock()).await?;

        // The config first: it names the diff ids the layers unpack to.
        self.fetch_blob(target, &config, None, None).await?;
        let config_bytes = self.store.read_blob(&config_digest)?;
        let image_config = ImageConfiguration::from_reader(&config_bytes[..])
            .map_err(|e| ImageError::oci(format!("parsing config {config_digest}"), e))?;
        let diff_ids = image_config.rootfs().diff_ids().clone();
        if diff_ids.len() != layers.len() {
            return Err(ImageError::InvalidArchive(format!(
                "{mctx} lists {} layers but config {} lists {} diff ids",
                layers.len(),
                config_digest,
                diff_ids.len()
            )));
        }
        for d in &diff_ids {
            validate_digest(d)?;
        }

        // On the first error, layers not started yet are skipped, and those
        // in flight finish (their files are cleaned up or complete) before
        // the error is returned.
        let failed = AtomicBool::new(false);
        let results: Vec<Result<(), ImageError>> =
            // Owned items: a closure over borrowed pairs makes this future
            // not `Send` for every lifetime, and the daemon spawns pulls.
            futures_util::stream::iter(layers.iter().cloned().zip(diff_ids.iter().cloned()))
                .map(|(layer, diff_id)| {
                    let progress = progress.clone();
                    let failed = &failed;
                    async move {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let res = self
                            .fetch_blob(target, &layer, Some(&diff_id), progress.as_ref())
                            .await;
                        match res {
                            Ok(cached) => {
                                if let Some(tx) = &progress {
                                    let _ = tx.send(PullEvent::LayerDone {
                                        digest: layer.digest().to_string(),
                                        cached,
                                    });
                                }
                                Ok(())
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                Err(e)
                            }
                        }
                    }
                })
                .buffer_unordered(MAX_CONCURRENT_LAYERS)
                .collect()
                .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, ImageError>>()?;

        // Everything is here: the manifest, then the record.
        let store = self.store.clone();
        let digest = resolved.digest.clone();
        let bytes = resolved.bytes;
        let name = r.clone();
        let records = blocking(move || {
            store.put_blob(&digest, Some(bytes.len() as u64), &bytes[..])?;
            store.add_image(&digest, &[name])
        })
        .await?;
        let record = records.into_iter().next().ok_or_else(|| {
            ImageError::InvalidArchive(format!("{mctx}: the store registered no record"))
        })?;
        send(PullEvent::Done {
            digest: record.digest.clone(),
        });
        Ok(record)
    }

    /// The digest of the image manifest `reference` names now on its
    /// registry (for an index: of this platform's manifest), i.e. the
    /// [`ImageRecord::digest`] a pull would produce. Compare it with the
    /// stored record to skip a pull that would change nothing.
    pub async fn resolve_digest(
        &self,
        reference: &str,
        creds: &[Credential],
    ) -> Result<String, ImageError> {
        let r = Reference::parse(reference)?;
        Ok(self.resolve(&r, creds).await?.digest)
    }

    // ----- resolution ----------------------------------------------------

    /// Try each endpoint in order; the first that serves the manifest wins.
    async fn resolve(&self, r: &Reference, creds: &[Credential]) -> Result<Resolved, ImageError> {
        let endpoints = self.config.endpoints(&r.registry);
        let mut failures: Vec<(Endpoint, ImageError)> = Vec::new();
        for ep in endpoints {
            let target = match self.target(&ep, r, creds) {
                Ok(t) => t,
                Err(e) => {
                    failures.push((ep, e));
                    continue;
                }
            };
            match self.resolve_at(target).await {
                Ok(res) => {
                    if !failures.is_empty() {
                        tracing::info!(reference = %r, endpoint = %ep, "resolved after earlier endpoints failed");
                    }
                    return Ok(res);
                }
                Err(e) => {
                    tracing::warn!(reference = %r, endpoint = %ep, error = %e, "endpoint failed");
                    failures.push((ep, e));
                }
            }
        }
        let Some((_, mut last)) = failures.pop() else {
            return Err(ImageError::Registry {
                registry: r.registry.clone(),
                reference: r.to_string(),
                status: None,
                message: "no endpoint to ask (registry config lists none)".into(),
            });
        };
        if !failures.is_empty() {
            if let ImageError::Registry { message, .. } = &mut last {
                let earlier: Vec<String> = failures
                    .iter()
                    .map(|(ep, e)| format!("{ep}: {}", short_error(e)))
                    .collect();
                message.push_str(&format!("; also tried {}", earlier.join("; ")));
            }
        }
        Err(last)
    }

    async fn resolve_at(&self, target: Target) -> Result<Resolved, ImageError> {
        let (bytes, digest) = self.fetch_manifest(&target, &target.oref).await?;
        let index = match parse_manifest(&bytes, &digest, &target.reference)? {
            Manifest::Image(manifest) => {
                return Ok(Resolved {
                    target,
                    digest,
                    bytes,
                    manifest: *manifest,
                })
            }
            Manifest::Index(index) => index,
        };
        let (os, arch) = ("linux", crate::import::host_arch());
        let entries = index.manifests();
        let entry = entries
            .iter()
            .find(|e| {
                e.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == os
                        && p.architecture().to_string() == arch
                        && (arch != "arm64" || p.variant().as_deref().is_none_or(|v| v == "v8"))
                })
            })
            .ok_or_else(|| {
                let have: Vec<String> = entries
                    .iter()
                    .filter_map(|e| e.platform().as_ref())
                    .map(|p| match p.variant() {
                        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
                        None => format!("{}/{}", p.os(), p.architecture()),
                    })
                    .collect();
                ImageError::Unsupported(format!(
                    "{} (index {digest}) has no {os}/{arch} image; it has: {}",
                    target.reference,
                    if have.is_empty() {
                        "no platform entries".to_string()
                    } else {
                        have.join(", ")
                    }
                ))
            })?;
        let entry_digest = entry.digest().to_string();
        validate_digest(&entry_digest)?;
        let mt = entry.media_type().to_string();
        if mt != MEDIA_OCI_MANIFEST && mt != MEDIA_DOCKER_MANIFEST {
            return Err(ImageError::Unsupported(format!(
                "{} (index {digest}): the {os}/{arch} entry {entry_digest} has media type {mt}, not an image manifest",
                target.reference
            )));
        }
        let child_ref = target.oref.clone_with_digest(entry_digest.clone());
        let (child_bytes, child_digest) = self.fetch_manifest(&target, &child_ref).await?;
        if child_bytes.len() as u64 != entry.size() {
            return Err(ImageError::SizeMismatch {
                what: format!("manifest {entry_digest} of {}", target.reference),
                expected: entry.size(),
                actual: child_bytes.len() as u64,
            });
        }
        match parse_manifest(&child_bytes, &child_digest, &target.reference)? {
            Manifest::Image(manifest) => Ok(Resolved {
                target,
                digest: child_digest,
                bytes: child_bytes,
                manifest: *manifest,
            }),
            Manifest::Index(_) => Err(ImageError::Unsupported(format!(
                "{}: index {digest} points at another index {child_digest} for {os}/{arch}",
                target.reference
            ))),
        }
    }

    /// GET a manifest; its digest is computed from the bytes and checked
    /// against the reference's digest, if it has one.
    async fn fetch_manifest(
        &self,
        target: &Target,
        oref: &oci_client::Reference,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let (bytes, _) = target
            .client
            .pull_manifest_raw(oref, &target.auth, ACCEPT)
            .await
            .map_err(|e| self.registry_error(target, e))?;
        if bytes.len() as u64 > META_LIMIT {
            return Err(ImageError::InvalidArchive(format!(
                "manifest of {} is {} bytes, more than the {META_LIMIT} allowed",
                target.reference,
                bytes.len()
            )));
        }
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        if let Some(want) = oref.digest() {
            if want != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest of {} from {}", target.reference, target.endpoint),
                    expected: want.to_string(),
                    actual: digest,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The client, reference and auth to ask `ep` for `r`.
    fn target(
        &self,
        ep: &Endpoint,
        r: &Reference,
        creds: &[Credential],
    ) -> Result<Target, ImageError> {
        // A secret for the endpoint's host wins; for the upstream also one
        // for the image's registry name. Upstream credentials are never sent
        // to a mirror.
        let cred = find_credential(creds, &ep.host, &r.repository)
            .cloned()
            .or_else(|| {
                (!ep.mirror)
                    .then(|| find_credential(creds, &r.registry, &r.repository).cloned())
                    .flatten()
            })
            .or_else(|| self.config.credential(&ep.host));
        let user = cred.map(|c| (c.username, c.password));
        let auth = match &user {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        };
        let client = self.client(ep, user)?;
        let mut oref = match (&r.digest, &r.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                r.registry.clone(),
                r.repository.clone(),
                d.clone(),
            ),
            (None, Some(t)) => {
                oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
            }
            (None, None) => oci_client::Reference::with_tag(
                r.registry.clone(),
                r.repository.clone(),
                crate::reference::DEFAULT_TAG.to_string(),
            ),
        };
        if ep.mirror || ep.host != r.registry {
            // Same repository path on another host (`?ns=` names the
            // upstream, as containerd does).
            oref.set_mirror_registry(ep.host.clone());
        }
        Ok(Target {
            endpoint: ep.clone(),
            client,
            oref,
            auth,
            reference: r.to_string(),
        })
    }

    fn client(&self, ep: &Endpoint, user: Option<(String, String)>) -> Result<Client, ImageError> {
        let key = ClientKey {
            endpoint: ep.clone(),
            user,
        };
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| ImageError::Unsupported("registry client cache poisoned".into()))?;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut cfg = ClientConfig {
            protocol: if ep.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: ep.skip_verify,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            ..ClientConfig::default()
        };
        if let Some(ca) = &ep.ca_file {
            let data = std::fs::read(ca).map_err(io_ctx("reading CA file", ca))?;
            cfg.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let client = Client::try_from(cfg).map_err(|e| ImageError::Registry {
            registry: ep.url(),
            reference: String::new(),
            status: None,
            message: format!("cannot set up an HTTP client: {}", error_chain(&e)),
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    // ----- blobs ---------------------------------------------------------

    /// Make `desc` present in the store (downloading it unless it is there)
    /// and, for a layer (`diff_id`), unpacked. Returns whether it was there
    /// already.
    async fn fetch_blob(
        &self,
        target: &Target,
        desc: &Descriptor,
        diff_id: Option<&String>,
        progress: Option<&UnboundedSender<PullEvent>>,
    ) -> Result<bool, ImageError> {
        let digest = desc.digest().to_string();
        let lock = {
            let mut map = self
                .inflight
                .lock()
                .map_err(|_| ImageError::Unsupported("pull lock table poisoned".into()))?;
            map.entry(digest.clone()).or_default().clone()
        };
        let guard = FlightGuard {
            map: self.inflight.clone(),
            key: digest.clone(),
            lock: Some(lock.clone()),
        };
        let _held = lock.lock().await;

        let cached = self.store.has_blob(&digest);
        if !cached {
            self.download(target, desc, progress).await?;
        }
        if let Some(diff_id) = diff_id {
            let store = self.store.clone();
            let digest = digest.clone();
            let diff_id = diff_id.clone();
            blocking(move || store.ensure_layer(&digest, &diff_id)).await?;
        }
        drop(_held);
        drop(guard);
        Ok(cached)
    }

    /// Stream one blob into `tmp/`, verify its size and digest, move it into
    /// the store.
    async fn download(
        &self,
        target: &Target,
        desc: &Descriptor,
        progress: Option<&UnboundedSender<PullEvent>>,
    ) -> Result<(), ImageError> {
        let digest = desc.digest().to_string();
        let size = desc.size();
        let what = format!(
            "blob {digest} of {} from {}",
            target.reference, target.endpoint
        );
        let report = |done: u64| {
            if let Some(tx) = progress {
                let _ = tx.send(PullEvent::Layer {
                    digest: digest.clone(),
                    done,
                    total: size,
                });
            }
        };
        let mut stream = target
            .client
            .pull_blob_stream(&target.oref, digest.as_str())
            .await
            .map_err(|e| self.registry_error(target, e))?;
        if let Some(len) = stream.content_length {
            if len != size {
                return Err(ImageError::SizeMismatch {
                    what,
                    expected: size,
                    actual: len,
                });
            }
        }
        report(0);

        // The writer thread owns the staging file: if this future is dropped
        // mid-download, the thread still removes it when the channel closes.
        let tmp = TmpGuard::new(self.store.tmp_path("pull"));
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_chunks(tmp, rx));

        let mut done: u64 = 0;
        let mut reported: u64 = 0;
        let mut stream_error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    done += chunk.len() as u64;
                    if done > size {
                        stream_error = Some(ImageError::SizeMismatch {
                            what: what.clone(),
                            expected: size,
                            actual: done,
                        });
                        break;
                    }
                    if tx.send(chunk).await.is_err() {
                        // The writer stopped: its result says why.
                        break;
                    }
                    if done - reported >= PROGRESS_STEP {
                        reported = done;
                        report(done);
                    }
                }
                Err(e) => {
                    stream_error = Some(ImageError::Registry {
                        registry: target.endpoint.url(),
                        reference: target.reference.clone(),
                        status: None,
                        message: format!("reading blob {digest}: {}", error_chain(&e)),
                    });
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| ImageError::io("blob writer", std::io::Error::other(e)))?;
        if let Some(e @ ImageError::SizeMismatch { .. }) = stream_error {
            return Err(e);
        }
        let (tmp, actual, n) = written?;
        // oci-client reports a digest mismatch as a stream error after the
        // last byte: say it the store's way when every byte arrived.
        if n == size && actual != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        if let Some(e) = stream_error {
            return Err(e);
        }
        if n != size {
            return Err(ImageError::SizeMismatch {
                what,
                expected: size,
                actual: n,
            });
        }
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        if reported != n {
            report(n);
        }
        let store = self.store.clone();
        blocking(move || {
            store.adopt_blob(tmp.path(), &digest)?;
            tmp.keep();
            Ok(())
        })
        .await
    }

    // ----- errors --------------------------------------------------------

    fn registry_error(&self, target: &Target, e: OciDistributionError) -> ImageError {
        let registry = target.endpoint.url();
        let reference = target.reference.clone();
        let host = target.endpoint.host.clone();
        let auth_hint = |status: Option<u16>, what: String| {
            let message = match &target.auth {
                RegistryAuth::Basic(user, _) => format!(
                    "{what}: the registry rejected the credentials of user {user:?} for {host}"
                ),
                _ => format!(
                    "{what}: no credentials for {host}; give the pod an imagePullSecret \
                     (type kubernetes.io/dockerconfigjson) for {host}, or set username and \
                     password under [registry.{host:?}] in the registry config"
                ),
            };
            ImageError::Registry {
                registry: registry.clone(),
                reference: reference.clone(),
                status,
                message,
            }
        };
        match e {
            OciDistributionError::UnauthorizedError { url } => {
                auth_hint(Some(401), format!("authentication required at {url}"))
            }
            OciDistributionError::AuthenticationFailure(reason) => auth_hint(
                None,
                format!("the token server refused a token: {}", reason.trim()),
            ),
            OciDistributionError::RegistryError { envelope, url } => {
                let mut status = None;
                let msgs: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|err| {
                        let code = serde_json::to_value(&err.code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| format!("{:?}", err.code));
                        status = status.or(match code.as_str() {
                            "UNAUTHORIZED" => Some(401),
                            "DENIED" => Some(403),
                            "TOOMANYREQUESTS" => Some(429),
                            "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND" => {
                                Some(404)
                            }
                            _ => None,
                        });
                        if err.message.is_empty() {
                            code
                        } else {
                            format!("{code}: {}", err.message)
                        }
                    })
                    .collect();
                let message = format!("{} (at {url})", msgs.join("; "));
                if matches!(status, Some(401) | Some(403)) {
                    auth_hint(status, message)
                } else {
                    ImageError::Registry {
                        registry,
                        reference,
                        status,
                        message,
                    }
                }
            }
            OciDistributionError::ServerError { code, url, message } => ImageError::Registry {
                registry,
                reference,
                status: Some(code),
                message: format!("{} (at {url})", message.trim()),
            },
            OciDistributionError::RequestError(err) => ImageError::Registry {
                registry,
                reference,
                status: err.status().map(|s| s.as_u16()),
                message: error_chain(&err),
            },
            other => ImageError::Registry {
                registry,
                reference,
                status: None,
                message: error_chain(&other),
            },
        }
    }
}

/// Reads a manifest as an image manifest or an index, told apart by its
/// `mediaType` or, without one, by its `manifests` and `layers` fields.
fn parse_manifest(bytes: &[u8], digest: &str, reference: &str) -> Result<Manifest, ImageError> {
    let context = || format!("manifest {digest} of {reference}");
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ImageError::json(context(), e))?;
    if value.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(ImageError::Unsupported(format!(
            "{reference}: Docker image manifest schema 1 ({digest}) is not supported; \
             push the image again with a current client"
        )));
    }
    let is_index = match value.get("mediaType") {
        None | Some(Value::Null) => value.get("manifests").is_some() && value.get("layers").is_none(),
        Some(Value::String(media)) => match media.as_str() {
            MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => true,
            MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => false,
            other => {
                return Err(ImageError::Unsupported(format!(
                    "{reference}: manifest {digest} has media type {other}, not an image manifest or index"
                )))
            }
        },
        Some(other) => {
            return Err(ImageError::Unsupported(format!(
                "{reference}: manifest {digest} has media type {other}, not an image manifest or index"
            )))
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(|i| Manifest::Index(Box::new(i)))
            .map_err(|e| ImageError::json(context(), e))
    } else {
        serde_json::from_value(value)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(|e| ImageError::json(context(), e))
    }
}

/// Write queued chunks to the staging file `tmp`, hashing them; fsync at
/// the end. The file is removed (by the guard) unless the caller keeps it.
fn write_chunks(
    tmp: TmpGuard,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> Result<(TmpGuard, String, u64), ImageError> {
    let path = tmp.path().to_path_buf();
    let file = File::create(&path).map_err(io_ctx("creating", &path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut n: u64 = 0;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk).map_err(io_ctx("writing", &path))?;
        n += chunk.len() as u64;
    }
    let file = out
        .into_inner()
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e.into_error()))?;
    file.sync_all().map_err(io_ctx("syncing", &path))?;
    Ok((tmp, format!("sha256:{}", hex::encode(hasher.finalize())), n))
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::io("store task", std::io::Error::other(e)))?
}

/// An error and its sources, `: `-joined (reqwest hides the interesting
/// part, like "connection refused", in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = src.source();
    }
    s
}

fn short_error(e: &ImageError) -> String {
    match e {
        ImageError::Registry {
            status, message, ..
        } => match status {
            Some(s) => format!("(HTTP {s}) {message}"),
            None => message.clone(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon spawns pulls: the futures must be `Send + 'static` when
    /// they own their inputs (checked at compile time).
    #[allow(dead_code)]
    fn pulls_can_be_spawned(p: Arc<Puller>, reference: String, creds: Vec<Credential>) {
        fn spawnable<T: Send + 'static>(_: T) {}
        let q = p.clone();
        let r = reference.clone();
        let c = creds.clone();
        spawnable(async move { p.pull(&reference, &creds, None).await });
        spawnable(async move { q.resolve_digest(&r, &c).await });
    }

    #[test]
    fn manifest_kinds() {
        let d = format!("sha256:{}", "0".repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_DOCKER_MANIFEST}","digest":"{d}","size":1,
                "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let Ok(Manifest::Index(m)) = parse_manifest(index.as_bytes(), "d", "r") else {
            panic!("not read as an index");
        };
        assert_eq!(m.manifests()[0].digest().to_string(), d);
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_DOCKER_MANIFEST}",
                "config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(image.as_bytes(), "d", "r"),
            Ok(Manifest::Image(_))
        ));
        let no_config = br#"{"schemaVersion":2,"layers":[]}"#;
        assert!(matches!(
            parse_manifest(no_config, "d", "r"),
            Err(ImageError::Json { .. })
        ));
        let v1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(
            parse_manifest(v1, "d", "r"),
            Err(ImageError::Unsupported(m)) if m.contains("schema 1")
        ));
        let other = br#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#;
        assert!(matches!(
            parse_manifest(other, "d", "r"),
            Err(ImageError::Unsupported(_))
        ));
    }

    #[test]
    fn chains_errors() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = ImageError::io("connecting", inner);
        assert_eq!(error_chain(&outer), "connecting: refused");
    }

    #[test]
    fn registry_error_message() {
        let e = ImageError::Registry {
            registry: "http://127.0.0.1:5000".into(),
            reference: "127.0.0.1:5000/a:b".into(),
            status: Some(404),
            message: "MANIFEST_UNKNOWN: manifest unknown".into(),
        };
        assert_eq!(
            e.to_string(),
            "pulling 127.0.0.1:5000/a:b from http://127.0.0.1:5000 (HTTP 404): MANIFEST_UNKNOWN: manifest unknown"
        );
    }
}
