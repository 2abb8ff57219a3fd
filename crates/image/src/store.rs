//! The local image store: blobs by digest, unpacked layers by diff id, image
//! records by name.
//!
//! ```text
//! root/blobs/sha256/<hex>        content, verified against its digest
//! root/layers/<12 hex>           a layer unpacked (overlay whiteout format)
//! root/layers/<12 hex>.diffid    the full diff id of that layer
//! root/images/<sha256(name)>.json  an ImageRecord
//! root/tmp/                      staging; renamed into place when complete
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io_ctx, ImageError};
use crate::reference::{validate_digest, Reference};
use crate::unpack::{unpack_layer, HashingReader};

/// Largest manifest / config / index we read into memory.
pub(crate) const META_LIMIT: u64 = 32 * 1024 * 1024;
/// Length of the diff-id prefix that names a layer directory.
const LAYER_ID_LEN: usize = 12;

/// One name of an image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// Config blob digest (docker's "image id").
    pub config_digest: String,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    /// Uncompressed layer digests from the config, bottom first.
    pub diff_ids: Vec<String>,
    /// Bytes of the config and layer blobs as stored (compressed).
    pub size: u64,
    /// The config's `created` timestamp (RFC 3339), if any.
    pub created: Option<String>,
}

/// What a container inherits from the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `ExposedPorts` keys, e.g. `8080/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// `StopSignal`, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A local image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// An image whose blobs are present and layers unpacked, not yet named.
#[derive(Debug, Clone)]
pub(crate) struct PreparedImage {
    pub digest: String,
    pub config_digest: String,
    pub layers: Vec<String>,
    pub diff_ids: Vec<String>,
    pub size: u64,
    pub created: Option<String>,
}

impl PreparedImage {
    pub(crate) fn record(&self, name: &Reference) -> ImageRecord {
        ImageRecord {
            name: name.to_string(),
            digest: self.digest.clone(),
            config_digest: self.config_digest.clone(),
            layers: self.layers.clone(),
            diff_ids: self.diff_ids.clone(),
            size: self.size,
            created: self.created.clone(),
        }
    }
}

/// Removes a staging path on drop unless `keep` was called.
pub(crate) struct TmpGuard {
    path: Option<PathBuf>,
}

impl TmpGuard {
    pub(crate) fn new(path: PathBuf) -> Self {
        TmpGuard { path: Some(path) }
    }
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let res = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                Ok(_) => fs::remove_file(&p),
                Err(_) => Ok(()),
            };
            if let Err(e) = res {
                tracing::warn!(path = %p.display(), error = %e, "could not remove staging path");
            }
        }
    }
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex part of a validated `sha256:<hex>` digest.
fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    validate_digest(digest)?;
    Ok(&digest["sha256:".len()..])
}

impl ImageStore {
    /// Open (creating if needed) a store at `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let store = ImageStore {
            root: root.to_path_buf(),
        };
        for dir in [
            store.root.join("blobs").join("sha256"),
            store.layers_dir(),
            store.images_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_ctx("creating", &dir))?;
        }
        // Layers hold setuid binaries and device nodes owned by root: no
        // other host user may reach them.
        for dir in [store.layers_dir(), store.tmp_dir()] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(io_ctx("chmod 0700", &dir))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, not yet existing path under `root/tmp`.
    pub(crate) fn tmp_path(&self, prefix: &str) -> PathBuf {
        self.tmp_dir().join(unique_name(prefix))
    }

    // ----- blobs -------------------------------------------------------

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(digest)?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Store a blob from a stream, verifying it hashes to `digest` (and has
    /// `size` bytes, if given). Nothing is stored when verification fails. If
    /// the blob is already present, the reader is not read.
    pub fn put_blob<R: Read>(
        &self,
        digest: &str,
        size: Option<u64>,
        reader: R,
    ) -> Result<PathBuf, ImageError> {
        let dst = self.blob_path(digest)?;
        if dst.is_file() {
            return Ok(dst);
        }
        let guard = TmpGuard::new(self.tmp_path("blob"));
        let (actual, n) = write_hashed(guard.path(), reader)?;
        let what = format!("blob {digest}");
        if let Some(expected) = size {
            if n != expected {
                return Err(ImageError::SizeMismatch {
                    what,
                    expected,
                    actual: n,
                });
            }
        }
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual,
            });
        }
        fs::rename(guard.path(), &dst).map_err(io_ctx("storing blob at", &dst))?;
        guard.keep();
        Ok(dst)
    }

    /// Store bytes as a blob and return their digest.
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<String, ImageError> {
        let digest = format!("sha256:{}", sha256_hex(data));
        self.put_blob(&digest, Some(data.len() as u64), data)?;
        Ok(digest)
    }

    /// Move an already verified file (on the store's file system) into the
    /// blob store.
    pub(crate) fn adopt_blob(&self, file: &Path, digest: &str) -> Result<(), ImageError> {
        let dst = self.blob_path(digest)?;
        if dst.is_file() {
            return Ok(());
        }
        fs::rename(file, &dst).map_err(io_ctx("storing blob at", &dst))
    }

    /// Read a (small) blob into memory.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        read_limited(&path, META_LIMIT).map_err(|e| match e {
            ImageError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ImageError::BlobMissing {
                    digest: digest.to_string(),
                    context: format!("expected at {}", path.display()),
                }
            }
            other => other,
        })
    }

    // ----- layers ------------------------------------------------------

    /// Directory of the unpacked layer with `diff_id` (whether or not it exists).
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(diff_id)?;
        Ok(self.layers_dir().join(&hex[..LAYER_ID_LEN]))
    }

    fn layer_marker(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(diff_id)?;
        Ok(self
            .layers_dir()
            .join(format!("{}.diffid", &hex[..LAYER_ID_LEN])))
    }

    /// The layer dir if it is unpacked and really belongs to `diff_id`.
    fn existing_layer(&self, diff_id: &str) -> Result<Option<PathBuf>, ImageError> {
        let dir = self.layer_dir(diff_id)?;
        if !dir.is_dir() {
            return Ok(None);
        }
        let marker = self.layer_marker(diff_id)?;
        let recorded = fs::read_to_string(&marker).map_err(io_ctx("reading", &marker))?;
        if recorded.trim() != diff_id {
            return Err(ImageError::InvalidArchive(format!(
                "layer directory {} belongs to {}, not {diff_id} (diff id prefix collision)",
                dir.display(),
                recorded.trim()
            )));
        }
        Ok(Some(dir))
    }

    /// Unpack the layer blob `blob_digest` unless a layer with `diff_id` is
    /// unpacked already. The diff id is checked; a half-unpacked layer never
    /// appears under `layers/`.
    pub fn ensure_layer(&self, blob_digest: &str, diff_id: &str) -> Result<PathBuf, ImageError> {
        if let Some(dir) = self.existing_layer(diff_id)? {
            return Ok(dir);
        }
        let blob = self.blob_path(blob_digest)?;
        let file = File::open(&blob).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::BlobMissing {
                    digest: blob_digest.to_string(),
                    context: format!("layer with diff id {diff_id}"),
                }
            } else {
                ImageError::io(format!("opening {}", blob.display()), e)
            }
        })?;
        let staging = TmpGuard::new(self.tmp_path("layer"));
        fs::create_dir(staging.path()).map_err(io_ctx("creating", staging.path()))?;
        let started = std::time::Instant::now();
        let unpacked = unpack_layer(file, staging.path(), blob_digest)?;
        if unpacked.diff_id != diff_id {
            return Err(ImageError::DiffIdMismatch {
                layer: blob_digest.to_string(),
                expected: diff_id.to_string(),
                actual: unpacked.diff_id,
            });
        }
        let marker = self.layer_marker(diff_id)?;
        write_atomic(self, &marker, format!("{diff_id}\n").as_bytes())?;
        let dir = self.layer_dir(diff_id)?;
        match fs::rename(staging.path(), &dir) {
            Ok(()) => {
                staging.keep();
                tracing::debug!(layer = blob_digest, diff_id, dir = %dir.display(), elapsed_ms = started.elapsed().as_millis() as u64, "layer unpacked");
                Ok(dir)
            }
            // Someone else unpacked it meanwhile: use theirs, drop ours.
            Err(_) if dir.is_dir() => Ok(dir),
            Err(e) => Err(ImageError::io(
                format!("moving layer into place at {}", dir.display()),
                e,
            )),
        }
    }

    // ----- images ------------------------------------------------------

    /// Make an image available from blobs already in the store: the manifest
    /// `manifest_digest`, its config and layers. Unpacks the layers (checking
    /// diff ids) and registers the image under `names`. This is what a
    /// registry puller calls after `put_blob`.
    pub fn add_image(
        &self,
        manifest_digest: &str,
        names: &[Reference],
    ) -> Result<Vec<ImageRecord>, ImageError> {
        let prepared = self.prepare_image(manifest_digest)?;
        let records: Vec<ImageRecord> = names.iter().map(|n| prepared.record(n)).collect();
        for rec in &records {
            self.write_record(rec)?;
        }
        Ok(records)
    }

    pub(crate) fn prepare_image(&self, manifest_digest: &str) -> Result<PreparedImage, ImageError> {
        let mctx = format!("manifest {manifest_digest}");
        let bytes = self.read_blob(manifest_digest)?;
        let manifest = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| ImageError::oci(format!("parsing {mctx}"), e))?;
        check_manifest_media_type(&manifest, &mctx)?;

        let config_desc = manifest.config();
        let config_digest = config_desc.digest().to_string();
        validate_digest(&config_digest)?;
        let config_media = config_desc.media_type().to_string();
        if config_media != "application/vnd.oci.image.config.v1+json"
            && config_media != "application/vnd.docker.container.image.v1+json"
        {
            return Err(ImageError::Unsupported(format!(
                "{mctx} is not a container image: config media type {config_media}"
            )));
        }
        let config_bytes = self.read_blob(&config_digest)?;
        if config_bytes.len() as u64 != config_desc.size() {
            return Err(ImageError::SizeMismatch {
                what: format!("config {config_digest}"),
                expected: config_desc.size(),
                actual: config_bytes.len() as u64,
            });
        }
        let config = ImageConfiguration::from_reader(&config_bytes[..])
            .map_err(|e| ImageError::oci(format!("parsing config {config_digest}"), e))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::InvalidArchive(format!(
                "{mctx} lists {} layers but config {config_digest} lists {} diff ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }

        let mut layers = Vec::with_capacity(diff_ids.len());
        let mut size = config_desc.size();
        for (desc, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let digest = desc.digest().to_string();
            validate_digest(&digest)?;
            validate_digest(diff_id)?;
            let media = desc.media_type().to_string();
            if !media.contains("tar") {
                return Err(ImageError::Unsupported(format!(
                    "{mctx}: layer {digest} has media type {media}, not a tar layer"
                )));
            }
            let path = self.blob_path(&digest)?;
            let actual = fs::metadata(&path)
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        ImageError::BlobMissing {
                            digest: digest.clone(),
                            context: format!("layer of {mctx}"),
                        }
                    } else {
                        ImageError::io(format!("stat {}", path.display()), e)
                    }
                })?
                .len();
            if actual != desc.size() {
                return Err(ImageError::SizeMismatch {
                    what: format!("layer {digest}"),
                    expected: desc.size(),
                    actual,
                });
            }
            size += desc.size();
            layers.push(digest);
        }
        for (digest, diff_id) in layers.iter().zip(&diff_ids) {
            self.ensure_layer(digest, diff_id)?;
        }
        Ok(PreparedImage {
            digest: manifest_digest.to_string(),
            config_digest,
            layers,
            diff_ids,
            size,
            created: config.created().clone(),
        })
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.images_dir()
            .join(format!("{}.json", sha256_hex(name.as_bytes())))
    }

    /// Write (or replace) the record for `rec.name`, atomically.
    pub(crate) fn write_record(&self, rec: &ImageRecord) -> Result<(), ImageError> {
        let data = serde_json::to_vec_pretty(rec)
            .map_err(|e| ImageError::json(format!("encoding record for {}", rec.name), e))?;
        write_atomic(self, &self.record_path(&rec.name), &data)
    }

    /// All image records (one per name), sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.images_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_ctx("reading", &dir))? {
            let entry = entry.map_err(io_ctx("reading", &dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_record(&path)? {
                Some(rec) => out.push(rec),
                None => continue,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Find an image by name (normalised: `busybox` finds
    /// `docker.io/library/busybox:latest`), by `name@sha256:…`, by manifest
    /// or config digest (`sha256:…`, prefixes allowed), or by a hex prefix of
    /// either digest (at least 4 characters).
    pub fn get(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        Ok(self.resolve(reference)?.into_iter().next())
    }

    /// All records `reference` designates: one for a name, every name of the
    /// image for a digest or id.
    fn resolve(&self, reference: &str) -> Result<Vec<ImageRecord>, ImageError> {
        if let Some(hex) = reference.strip_prefix("sha256:") {
            return self.by_id_prefix(reference, hex);
        }
        if let Ok(r) = Reference::parse(reference) {
            if let Some(digest) = &r.digest {
                let name = r.name();
                let mut matches: Vec<ImageRecord> = self
                    .list()?
                    .into_iter()
                    .filter(|rec| {
                        &rec.digest == digest
                            && Reference::parse(&rec.name)
                                .map(|n| n.name() == name)
                                .unwrap_or(false)
                    })
                    .collect();
                // Prefer the exact tag if one was given.
                if let Some(tag) = &r.tag {
                    let full = format!("{name}:{tag}");
                    matches.sort_by_key(|rec| rec.name != full);
                }
                return Ok(matches);
            }
            if let Some(rec) = read_record(&self.record_path(&r.to_string()))? {
                return Ok(vec![rec]);
            }
        }
        let is_hex = reference.len() >= 4
            && reference
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_hex {
            return self.by_id_prefix(reference, reference);
        }
        Ok(Vec::new())
    }

    fn by_id_prefix(&self, reference: &str, hex: &str) -> Result<Vec<ImageRecord>, ImageError> {
        if hex.is_empty() {
            return Ok(Vec::new());
        }
        let matches: Vec<ImageRecord> = self
            .list()?
            .into_iter()
            .filter(|rec| {
                let id_match = |d: &str| {
                    d.strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(hex))
                };
                id_match(&rec.digest) || id_match(&rec.config_digest)
            })
            .collect();
        let mut digests: Vec<&str> = matches.iter().map(|r| r.digest.as_str()).collect();
        digests.sort_unstable();
        digests.dedup();
        if digests.len() > 1 {
            return Err(ImageError::Ambiguous {
                reference: reference.to_string(),
                matches: digests.join(", "),
            });
        }
        Ok(matches)
    }

    /// The container-relevant part of the image's config.
    pub fn config(&self, rec: &ImageRecord) -> Result<ImageConfig, ImageError> {
        let bytes = self.read_blob(&rec.config_digest)?;
        let config = ImageConfiguration::from_reader(&bytes[..]).map_err(|e| {
            ImageError::oci(
                format!("parsing config {} of {}", rec.config_digest, rec.name),
                e,
            )
        })?;
        let Some(c) = config.config() else {
            return Ok(ImageConfig::default());
        };
        let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
        exposed_ports.sort();
        Ok(ImageConfig {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            exposed_ports,
            stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        })
    }

    /// The unpacked layer directories of an image, bottom first.
    pub fn layer_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>, ImageError> {
        rec.diff_ids
            .iter()
            .map(|diff_id| {
                self.existing_layer(diff_id)?
                    .ok_or_else(|| ImageError::LayerMissing {
                        diff_id: diff_id.clone(),
                        path: self.layer_dir(diff_id).unwrap_or_default(),
                    })
            })
            .collect()
    }

    /// Untag: remove the name `reference`, or every name of the image when
    /// `reference` is a digest / id. Blobs and layers stay (GC comes later).
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let recs = self.resolve(reference)?;
        if recs.is_empty() {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        for rec in &recs {
            let path = self.record_path(&rec.name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("removing {}", path.display()), e)),
            }
        }
        Ok(())
    }
}

fn check_manifest_media_type(m: &ImageManifest, ctx: &str) -> Result<(), ImageError> {
    if let Some(mt) = m.media_type() {
        let mt = mt.to_string();
        if mt != "application/vnd.oci.image.manifest.v1+json"
            && mt != "application/vnd.docker.distribution.manifest.v2+json"
        {
            return Err(ImageError::Unsupported(format!(
                "{ctx} has media type {mt}, expected an image manifest"
            )));
        }
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Option<ImageRecord>, ImageError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| ImageError::json(format!("image record {}", path.display()), e))
}

/// Read a file of at most `limit` bytes.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ImageError> {
    let f = File::open(path).map_err(io_ctx("opening", path))?;
    let mut data = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(io_ctx("reading", path))?;
    if data.len() as u64 > limit {
        return Err(ImageError::InvalidArchive(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(data)
}

/// Stream `reader` into a new file at `path`, fsync it, and return
/// `(digest, size)`.
pub(crate) fn write_hashed<R: Read>(path: &Path, reader: R) -> Result<(String, u64), ImageError> {
    let mut file = File::create(path).map_err(io_ctx("creating", path))?;
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut file).map_err(io_ctx("writing", path))?;
    file.sync_all().map_err(io_ctx("syncing", path))?;
    Ok(hashing.finish())
}

/// Write `data` to `dst` atomically: a file in the store's tmp dir, fsync,
/// rename.
pub(crate) fn write_atomic(store: &ImageStore, dst: &Path, data: &[u8]) -> Result<(), ImageError> {
    let guard = TmpGuard::new(store.tmp_path("write"));
    {
        let mut f = File::create(guard.path()).map_err(io_ctx("creating", guard.path()))?;
        f.write_all(data).map_err(io_ctx("writing", guard.path()))?;
        f.sync_all().map_err(io_ctx("syncing", guard.path()))?;
    }
    fs::rename(guard.path(), dst).map_err(io_ctx("renaming into", dst))?;
    guard.keep();
    Ok(())
}

// ----- helpers for gc.rs / export.rs ------------------------------------------

impl ImageStore {
    /// Every record `reference` designates (see [`ImageStore::get`]): one for
    /// a name, every name of the image for a digest or id.
    pub(crate) fn resolve_all(&self, reference: &str) -> Result<Vec<ImageRecord>, ImageError> {
        self.resolve(reference)
    }

    /// Remove exactly the record named `name` (no lookup rules); absent is fine.
    pub(crate) fn remove_record(&self, name: &str) -> Result<(), ImageError> {
        let path = self.record_path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io(format!("removing {}", path.display()), e)),
        }
    }
}
