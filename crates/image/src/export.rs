//! Export of images as OCI image-layout tars and `docker save` tars.
//!
//! * OCI archive: `oci-layout`, `index.json` (one entry per name, annotated
//!   with `io.containerd.image.name` = full name and
//!   `org.opencontainers.image.ref.name` = tag, as containerd writes them)
//!   and `blobs/sha256/<hex>`: the stored blobs byte for byte, so manifest
//!   digests are kept.
//! * Docker archive (the layout of docker 25+'s `docker save`, minus the OCI
//!   index): `manifest.json` (`Config`, `RepoTags`, `Layers`), a legacy
//!   `repositories` file and `blobs/sha256/<hex>`, where layers are the
//!   *uncompressed* tars named by their diff ids. Compressed layer blobs are
//!   decompressed on the fly, twice (once to learn the size the tar header
//!   needs, and to check the diff id before anything is written; once to
//!   write): never held in memory, never staged on disk.
//!
//! Every blob is checked against its digest while it is written; an error
//! part-way leaves a truncated, invalid archive, and is returned.
//! The archives are deterministic (fixed owners, modes and mtimes).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::rc::Rc;
use std::str::FromStr;

use oci_spec::image::{
    DescriptorBuilder, Digest, ImageConfiguration, ImageIndexBuilder, ImageManifest, MediaType,
    OciLayoutBuilder, SCHEMA_VERSION,
};
use serde_json::{json, Value};

use crate::error::ImageError;
use crate::reference::Reference;
use crate::store::{sha256_hex, ImageRecord, ImageStore};
use crate::unpack::{decompress, Compression, HashingReader};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Modification time of every archive entry (deterministic output).
const ENTRY_MTIME: u64 = 0;

/// The archive format of [`ImageStore::export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// An OCI image layout in a tar (`skopeo`'s `oci-archive:`).
    OciArchive,
    /// A `docker save` tar (`skopeo`'s `docker-archive:`, `docker load`).
    DockerArchive,
}

impl FromStr for ExportFormat {
    type Err = ImageError;
    /// `oci`, `oci-archive`, `docker`, `docker-archive`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oci" | "oci-archive" => Ok(ExportFormat::OciArchive),
            "docker" | "docker-archive" => Ok(ExportFormat::DockerArchive),
            other => Err(ImageError::Unsupported(format!(
                "export format {other:?}: use oci-archive or docker-archive"
            ))),
        }
    }
}

/// An image to export: its manifest, parsed.
struct Exported {
    digest: String,
    media_type: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    /// Every record (name) of the request with this manifest.
    records: Vec<ImageRecord>,
}

/// A layer of a docker archive, measured.
struct DockerLayer {
    blob: String,
    diff_id: String,
    compression: Compression,
    size: u64,
}

impl ImageStore {
    /// Write the images `references` designate (names; a digest or id means
    /// every name of that image) to `out` as one archive. Holds the shared
    /// [`crate::GcLock`] meanwhile, so GC cannot delete what is being read.
    pub fn export(
        &self,
        references: &[&str],
        format: ExportFormat,
        out: impl Write,
    ) -> Result<(), ImageError> {
        if references.is_empty() {
            return Err(ImageError::InvalidReference {
                reference: String::new(),
                reason: "no image named to export".into(),
            });
        }
        let _lock = self.gc_lock()?;
        let images = self.collect_exports(references)?;
        let blown = Rc::new(Cell::new(false));
        let fuse = Fuse {
            inner: out,
            blown: blown.clone(),
        };
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, fuse));
        let written = match format {
            ExportFormat::OciArchive => self.write_oci(&images, &mut tar),
            ExportFormat::DockerArchive => self.write_docker(&images, &mut tar),
        };
        if let Err(e) = written {
            // Dropping the builder would flush the buffer and append the
            // end-of-archive blocks: a broken archive must not look whole.
            blown.set(true);
            return Err(e);
        }
        let mut buffered = tar
            .into_inner()
            .map_err(|e| ImageError::io("finishing the export archive", e))?;
        buffered
            .flush()
            .map_err(|e| ImageError::io("writing the export archive", e))
    }

    /// Resolve the references and group their records by manifest.
    fn collect_exports(&self, references: &[&str]) -> Result<Vec<Exported>, ImageError> {
        let mut images: Vec<Exported> = Vec::new();
        let mut names = HashSet::new();
        for reference in references {
            let recs = self.resolve_all(reference)?;
            if recs.is_empty() {
                return Err(ImageError::NotFound(reference.to_string()));
            }
            for rec in recs {
                if !names.insert(rec.name.clone()) {
                    continue;
                }
                if let Some(img) = images.iter_mut().find(|i| i.digest == rec.digest) {
                    img.records.push(rec);
                    continue;
                }
                let manifest_bytes = self.read_blob(&rec.digest)?;
                let actual = format!("sha256:{}", sha256_hex(&manifest_bytes));
                if actual != rec.digest {
                    return Err(ImageError::DigestMismatch {
                        what: format!("manifest of {}", rec.name),
                        expected: rec.digest.clone(),
                        actual,
                    });
                }
                let manifest = ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| {
                    ImageError::oci(
                        format!("parsing manifest {} of {}", rec.digest, rec.name),
                        e,
                    )
                })?;
                let media_type = manifest
                    .media_type()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| OCI_MANIFEST.to_string());
                images.push(Exported {
                    digest: rec.digest.clone(),
                    media_type,
                    manifest_bytes,
                    manifest,
                    records: vec![rec],
                });
            }
        }
        Ok(images)
    }

    fn write_oci<W: Write>(
        &self,
        images: &[Exported],
        tar: &mut tar::Builder<W>,
    ) -> Result<(), ImageError> {
        let mut manifests = Vec::new();
        for img in images {
            let digest = Digest::from_str(&img.digest)
                .map_err(|e| ImageError::oci(format!("manifest digest {}", img.digest), e))?;
            for rec in &img.records {
                let mut annotations = HashMap::new();
                annotations.insert(ANNOTATION_CONTAINERD_NAME.to_string(), rec.name.clone());
                if let Some(tag) = Reference::parse(&rec.name).ok().and_then(|r| r.tag) {
                    annotations.insert(ANNOTATION_REF_NAME.to_string(), tag);
                }
                let descriptor = DescriptorBuilder::default()
                    .media_type(MediaType::from(img.media_type.as_str()))
                    .digest(digest.clone())
                    .size(img.manifest_bytes.len() as u64)
                    .annotations(annotations)
                    .build()
                    .map_err(|e| ImageError::oci("building index.json", e))?;
                manifests.push(descriptor);
            }
        }
        let index = ImageIndexBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| ImageError::oci("building index.json", e))?;
        let layout = OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()
            .map_err(|e| ImageError::oci("building oci-layout", e))?;
        // Through a `Value`, whose maps are sorted: the annotations (a
        // HashMap in oci-spec) come out in the same order every time.
        append_bytes(tar, "oci-layout", &to_json(&layout, "oci-layout")?)?;
        append_bytes(tar, "index.json", &to_json(&index, "index.json")?)?;
        append_dir(tar, "blobs/")?;
        append_dir(tar, "blobs/sha256/")?;
        let mut written = HashSet::new();
        for img in images {
            if written.insert(img.digest.clone()) {
                append_bytes(tar, &blob_name(&img.digest), &img.manifest_bytes)?;
            }
            let config = img.manifest.config();
            let descs = std::iter::once(config).chain(img.manifest.layers());
            for desc in descs {
                let digest = desc.digest().to_string();
                if written.insert(digest.clone()) {
                    self.append_blob(tar, &digest, desc.size())?;
                }
            }
        }
        Ok(())
    }

    fn write_docker<W: Write>(
        &self,
        images: &[Exported],
        tar: &mut tar::Builder<W>,
    ) -> Result<(), ImageError> {
        // Measure every layer (and check its diff id) before writing anything.
        let mut layers: BTreeMap<String, DockerLayer> = BTreeMap::new();
        let mut entries = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut configs = Vec::new();
        let mut image_layers: Vec<Vec<String>> = Vec::new();
        for img in images {
            let config_digest = img.manifest.config().digest().to_string();
            let config_bytes = self.read_blob(&config_digest)?;
            let config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
                ImageError::oci(
                    format!("parsing config {config_digest} of {}", img.digest),
                    e,
                )
            })?;
            let diff_ids = config.rootfs().diff_ids();
            if diff_ids.len() != img.manifest.layers().len() {
                return Err(ImageError::InvalidArchive(format!(
                    "manifest {} lists {} layers but config {config_digest} lists {} diff ids",
                    img.digest,
                    img.manifest.layers().len(),
                    diff_ids.len()
                )));
            }
            let mut paths = Vec::with_capacity(diff_ids.len());
            for (desc, diff_id) in img.manifest.layers().iter().zip(diff_ids) {
                if !layers.contains_key(diff_id) {
                    let layer = self.measure_layer(desc.digest().as_ref(), diff_id)?;
                    layers.insert(diff_id.clone(), layer);
                }
                paths.push(blob_name(diff_id));
            }
            let mut tags = Vec::new();
            for rec in &img.records {
                let Ok(r) = Reference::parse(&rec.name) else {
                    continue;
                };
                let Some(tag) = &r.tag else {
                    continue; // a digest-only name cannot be a RepoTag
                };
                let repo = familiar_name(&r);
                tags.push(format!("{repo}:{tag}"));
                if let Some(top) = diff_ids.last() {
                    repositories
                        .entry(repo)
                        .or_default()
                        .insert(tag.clone(), hex_of(top).to_string());
                }
            }
            entries.push(json!({
                "Config": blob_name(&config_digest),
                "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
                "Layers": paths,
            }));
            configs.push((config_digest, config_bytes));
            image_layers.push(diff_ids.clone());
        }

        append_bytes(
            tar,
            "manifest.json",
            &to_json(&json!(entries), "manifest.json")?,
        )?;
        if !repositories.is_empty() {
            append_bytes(
                tar,
                "repositories",
                &to_json(&json!(repositories), "repositories")?,
            )?;
        }
        append_dir(tar, "blobs/")?;
        append_dir(tar, "blobs/sha256/")?;
        let mut written = HashSet::new();
        for (digest, bytes) in &configs {
            if written.insert(digest.clone()) {
                let actual = format!("sha256:{}", sha256_hex(bytes));
                if &actual != digest {
                    return Err(ImageError::DigestMismatch {
                        what: format!("config {digest}"),
                        expected: digest.clone(),
                        actual,
                    });
                }
                append_bytes(tar, &blob_name(digest), bytes)?;
            }
        }
        for diff_ids in &image_layers {
            for diff_id in diff_ids {
                if !written.insert(diff_id.clone()) {
                    continue;
                }
                if let Some(layer) = layers.get(diff_id) {
                    self.append_uncompressed_layer(tar, layer)?;
                }
            }
        }
        Ok(())
    }

    /// Open a blob, mapping "not found" to [`ImageError::BlobMissing`].
    fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::BlobMissing {
                    digest: digest.to_string(),
                    context: format!("expected at {} for export", path.display()),
                }
            } else {
                ImageError::io(format!("opening {}", path.display()), e)
            }
        })
    }

    /// Stream a stored blob into the archive as `blobs/sha256/<hex>`,
    /// checking its size and digest.
    fn append_blob<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        digest: &str,
        size: u64,
    ) -> Result<(), ImageError> {
        let file = self.open_blob(digest)?;
        let actual = file
            .metadata()
            .map_err(|e| ImageError::io(format!("stat blob {digest}"), e))?
            .len();
        if actual != size {
            return Err(ImageError::SizeMismatch {
                what: format!("blob {digest}"),
                expected: size,
                actual,
            });
        }
        let name = blob_name(digest);
        let mut reader = HashingReader::new(BufReader::with_capacity(256 * 1024, file).take(size));
        let mut header = file_header(size, 0o644);
        tar.append_data(&mut header, &name, &mut reader)
            .map_err(|e| ImageError::io(format!("writing {name} to the archive"), e))?;
        check_stream(reader, digest, size, &format!("blob {digest}"))
    }

    /// Decompress a layer blob once: its diff id (checked) and size.
    fn measure_layer(&self, blob: &str, diff_id: &str) -> Result<DockerLayer, ImageError> {
        let file = self.open_blob(blob)?;
        let (compression, reader) =
            decompress(file).map_err(|e| ImageError::io(format!("reading layer {blob}"), e))?;
        let mut hashing = HashingReader::new(reader);
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| ImageError::io(format!("decompressing layer {blob}"), e))?;
        let (actual, size) = hashing.finish();
        if actual != diff_id {
            return Err(ImageError::DiffIdMismatch {
                layer: blob.to_string(),
                expected: diff_id.to_string(),
                actual,
            });
        }
        Ok(DockerLayer {
            blob: blob.to_string(),
            diff_id: diff_id.to_string(),
            compression,
            size,
        })
    }

    /// Stream a layer, decompressed, as `blobs/sha256/<diff id hex>`.
    fn append_uncompressed_layer<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        layer: &DockerLayer,
    ) -> Result<(), ImageError> {
        let file = self.open_blob(&layer.blob)?;
        let (compression, reader) = decompress(file)
            .map_err(|e| ImageError::io(format!("reading layer {}", layer.blob), e))?;
        if compression != layer.compression {
            return Err(ImageError::InvalidArchive(format!(
                "layer blob {} changed while it was exported",
                layer.blob
            )));
        }
        let name = blob_name(&layer.diff_id);
        let mut reader = HashingReader::new(reader.take(layer.size));
        let mut header = file_header(layer.size, 0o644);
        tar.append_data(&mut header, &name, &mut reader)
            .map_err(|e| ImageError::io(format!("writing layer {name} to the archive"), e))?;
        check_stream(
            reader,
            &layer.diff_id,
            layer.size,
            &format!("layer {} (uncompressed)", layer.blob),
        )
    }
}

/// A writer that refuses every write once blown.
struct Fuse<W> {
    inner: W,
    blown: Rc<Cell<bool>>,
}

impl<W: Write> Write for Fuse<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.blown.get() {
            return Err(io::Error::other("export aborted"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.blown.get() {
            return Err(io::Error::other("export aborted"));
        }
        self.inner.flush()
    }
}

/// After streaming: the bytes written must be exactly `size` and hash to
/// `digest` (the tar header promised that many bytes).
fn check_stream<R: Read>(
    reader: HashingReader<R>,
    digest: &str,
    size: u64,
    what: &str,
) -> Result<(), ImageError> {
    let (actual, n) = reader.finish();
    if n != size {
        return Err(ImageError::SizeMismatch {
            what: what.to_string(),
            expected: size,
            actual: n,
        });
    }
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

/// `blobs/sha256/<hex>` for a `sha256:<hex>` digest.
fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", hex_of(digest))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The name docker shows: `busybox` for `docker.io/library/busybox`,
/// `user/app` for `docker.io/user/app`, the full name elsewhere.
fn familiar_name(r: &Reference) -> String {
    if r.registry == crate::reference::DEFAULT_REGISTRY {
        match r.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => r.repository.clone(),
        }
    } else {
        r.name()
    }
}

/// `v` as compact JSON with every object's keys sorted (deterministic
/// output, whatever maps `v` holds).
fn to_json<T: serde::Serialize>(v: &T, what: &str) -> Result<Vec<u8>, ImageError> {
    let encode = |e| ImageError::json(format!("encoding {what}"), e);
    let value = serde_json::to_value(v).map_err(encode)?;
    serde_json::to_vec(&value).map_err(encode)
}

fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(ENTRY_MTIME);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> Result<(), ImageError> {
    let mut header = file_header(data.len() as u64, 0o644);
    tar.append_data(&mut header, name, data)
        .map_err(|e| ImageError::io(format!("writing {name} to the archive"), e))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<(), ImageError> {
    let mut header = file_header(0, 0o755);
    header.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut header, name, io::empty())
        .map_err(|e| ImageError::io(format!("writing {name} to the archive"), e))
}
