//! Import of OCI image-layout tars and `docker save` tars.
//!
//! The archive is read once, as a stream: every file in it is staged under
//! `root/tmp/import-…/` while its sha256 is computed (nothing big is held in
//! memory). Files under `blobs/sha256/<hex>` must hash to their name. Then
//! `index.json` (OCI) or `manifest.json` (docker) says what the images are;
//! every referenced blob is checked against its descriptor's size, moved into
//! the blob store, layers are unpacked and their diff ids checked. Only when
//! every image of the archive is complete are the names registered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndex, ImageManifestBuilder, MediaType};
use serde::Deserialize;

use crate::error::{io_ctx, ImageError};
use crate::reference::{valid_tag, validate_digest, Reference};
use crate::store::{read_limited, write_hashed, ImageRecord, ImageStore, TmpGuard, META_LIMIT};
use crate::unpack::{decompress, Compression};

const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
const MAX_LINK_DEPTH: usize = 16;

/// A file of the archive, staged on disk.
#[derive(Debug, Clone)]
struct Staged {
    file: PathBuf,
    digest: String,
    size: u64,
}

/// The archive's files, by normalised path.
struct Staging {
    files: HashMap<String, Staged>,
    /// symlink / hard link entries: path → target path (archive-relative).
    links: HashMap<String, String>,
}

impl Staging {
    fn get(&self, path: &str) -> Option<&Staged> {
        let mut p = normalize(path)?;
        for _ in 0..MAX_LINK_DEPTH {
            if let Some(s) = self.files.get(&p) {
                return Some(s);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    fn blob(&self, digest: &str) -> Result<Option<&Staged>, ImageError> {
        validate_digest(digest)?;
        Ok(self.get(&format!("blobs/{}", digest.replacen(':', "/", 1))))
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, ImageError> {
        match self.get(path) {
            Some(s) => read_limited(&s.file, META_LIMIT).map(Some),
            None => Ok(None),
        }
    }
}

/// Archive path → canonical relative form (`./a//b` → `a/b`); None if it
/// escapes the archive root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

/// One image found in the archive, before naming.
struct Plan {
    manifest_digest: String,
    /// Full references found in the archive.
    names: Vec<Reference>,
    /// A bare tag found in the archive (`org.opencontainers.image.ref.name: v1`).
    tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

impl ImageStore {
    /// Import an OCI image-layout tar or a `docker save` tar (optionally
    /// gzip / zstd compressed), detected by `index.json` / `manifest.json`.
    ///
    /// Names: docker `RepoTags`; OCI annotations `io.containerd.image.name`
    /// and `org.opencontainers.image.ref.name` (a full reference, or a bare
    /// tag which is combined with `name`). `name`, when given, is registered
    /// too (with the archive's tag if `name` has no explicit tag). With no
    /// name at all the import fails ("archive has no image name; pass
    /// --name").
    ///
    /// Every blob is verified (sha256 and size), stored by digest, and each
    /// layer unpacked once. Nothing is registered unless all images of the
    /// archive are complete.
    pub fn import(
        &self,
        archive: impl Read,
        name: Option<&str>,
    ) -> Result<Vec<ImageRecord>, ImageError> {
        let given = match name {
            Some(n) => Some((Reference::parse(n)?, has_explicit_tag(n))),
            None => None,
        };
        let staging_dir = TmpGuard::new(self.tmp_path("import"));
        fs::create_dir(staging_dir.path()).map_err(io_ctx("creating", staging_dir.path()))?;
        let staging = stage(archive, staging_dir.path())?;

        let plans = if staging.get("index.json").is_some() {
            self.plan_oci(&staging)?
        } else if staging.get("manifest.json").is_some() {
            self.plan_docker(&staging)?
        } else {
            return Err(ImageError::InvalidArchive(
                "neither index.json (OCI image layout) nor manifest.json (docker save) found"
                    .into(),
            ));
        };
        if plans.is_empty() {
            return Err(ImageError::InvalidArchive(
                "the archive's index lists no images".into(),
            ));
        }

        // Names for every image, before doing any heavy work.
        let mut named: Vec<(String, Vec<Reference>)> = Vec::new();
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for plan in &plans {
            let mut names = plan.names.clone();
            if let Some((given, explicit)) = &given {
                let n = match (&plan.tag, explicit) {
                    (Some(tag), false) if given.digest.is_none() => given.with_tag(tag)?,
                    _ => given.clone(),
                };
                names.push(n);
            }
            names.sort();
            names.dedup();
            if names.is_empty() {
                return Err(ImageError::NoImageName);
            }
            for n in &names {
                let key = n.to_string();
                if let Some(other) = owner.insert(key.clone(), plan.manifest_digest.clone()) {
                    if other != plan.manifest_digest {
                        return Err(ImageError::InvalidArchive(format!(
                            "name {key} would be given to two images ({other} and {})",
                            plan.manifest_digest
                        )));
                    }
                }
            }
            named.push((plan.manifest_digest.clone(), names));
        }

        // Unpack and check everything, then register.
        let mut records = Vec::new();
        for (digest, names) in &named {
            let prepared = self.prepare_image(digest)?;
            records.extend(names.iter().map(|n| prepared.record(n)));
        }
        for rec in &records {
            self.write_record(rec)?;
        }
        drop(staging_dir);
        Ok(records)
    }

    /// Check a blob of the archive against its descriptor and move it into
    /// the store.
    fn take_blob(
        &self,
        staging: &Staging,
        moved: &mut HashSet<String>,
        digest: &str,
        size: u64,
        what: &str,
    ) -> Result<(), ImageError> {
        validate_digest(digest)?;
        if moved.contains(digest) {
            return Ok(());
        }
        match staging.blob(digest)? {
            Some(s) => {
                // The name was checked against the content while staging.
                if s.size != size {
                    return Err(ImageError::SizeMismatch {
                        what: format!("{what} {digest}"),
                        expected: size,
                        actual: s.size,
                    });
                }
                self.adopt_blob(&s.file, digest)?;
            }
            None => {
                let path = self.blob_path(digest)?;
                match fs::metadata(&path) {
                    Ok(m) if m.len() == size => {}
                    _ => {
                        return Err(ImageError::BlobMissing {
                            digest: digest.to_string(),
                            context: format!("{what} is neither in the archive nor in the store"),
                        })
                    }
                }
            }
        }
        moved.insert(digest.to_string());
        Ok(())
    }

    fn plan_oci(&self, staging: &Staging) -> Result<Vec<Plan>, ImageError> {
        if staging.get("oci-layout").is_none() {
            tracing::warn!("OCI archive has index.json but no oci-layout file");
        }
        let data = staging.read("index.json")?.unwrap_or_default();
        let index = ImageIndex::from_reader(&data[..])
            .map_err(|e| ImageError::oci("parsing index.json", e))?;
        let mut moved = HashSet::new();
        let mut plans = Vec::new();
        for desc in index.manifests() {
            let mut names = Vec::new();
            let mut tag = None;
            if let Some(ann) = desc.annotations() {
                if let Some(n) = ann.get(ANNOTATION_CONTAINERD_NAME) {
                    names.push(Reference::parse(n)?);
                }
                if let Some(n) = ann.get(ANNOTATION_REF_NAME) {
                    if is_bare_tag(n) {
                        tag = Some(n.clone());
                    } else {
                        names.push(Reference::parse(n)?);
                    }
                }
            }
            let manifest_digest = self.resolve_manifest(staging, &mut moved, desc, 0)?;
            let Some(manifest_digest) = manifest_digest else {
                continue;
            };
            plans.push(Plan {
                manifest_digest,
                names,
                tag,
            });
        }
        Ok(plans)
    }

    /// Follow a descriptor from index.json down to an image manifest for this
    /// machine's platform, moving the blobs it needs into the store. None for
    /// descriptors that are not images (e.g. attestations).
    fn resolve_manifest(
        &self,
        staging: &Staging,
        moved: &mut HashSet<String>,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<Option<String>, ImageError> {
        let digest = desc.digest().to_string();
        let media = desc.media_type().to_string();
        if depth > 4 {
            return Err(ImageError::InvalidArchive(format!(
                "index {digest}: nested too deeply"
            )));
        }
        match media.as_str() {
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json" => {
                self.take_blob(staging, moved, &digest, desc.size(), "index")?;
                let data = self.read_blob(&digest)?;
                let index = ImageIndex::from_reader(&data[..])
                    .map_err(|e| ImageError::oci(format!("parsing index {digest}"), e))?;
                let Some(chosen) = pick_platform(index.manifests()) else {
                    return Err(ImageError::Unsupported(format!(
                        "index {digest} has no image for {}/{}",
                        std::env::consts::OS,
                        host_arch()
                    )));
                };
                self.resolve_manifest(staging, moved, chosen, depth + 1)
            }
            "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json" => {
                self.take_blob(staging, moved, &digest, desc.size(), "manifest")?;
                let data = self.read_blob(&digest)?;
                let manifest = oci_spec::image::ImageManifest::from_reader(&data[..])
                    .map_err(|e| ImageError::oci(format!("parsing manifest {digest}"), e))?;
                let config = manifest.config();
                self.take_blob(
                    staging,
                    moved,
                    config.digest().as_ref(),
                    config.size(),
                    "config",
                )?;
                for layer in manifest.layers() {
                    self.take_blob(
                        staging,
                        moved,
                        layer.digest().as_ref(),
                        layer.size(),
                        "layer",
                    )?;
                }
                Ok(Some(digest))
            }
            other => {
                tracing::warn!(
                    digest,
                    media_type = other,
                    "skipping non-image entry of index.json"
                );
                Ok(None)
            }
        }
    }

    fn plan_docker(&self, staging: &Staging) -> Result<Vec<Plan>, ImageError> {
        let data = staging.read("manifest.json")?.unwrap_or_default();
        let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&data)
            .map_err(|e| ImageError::json("manifest.json of docker archive", e))?;
        let mut plans = Vec::new();
        for entry in entries {
            let config = self.docker_file(staging, &entry.config, "config")?;
            let config_desc = descriptor(MediaType::ImageConfig, &config)?;
            let mut layers = Vec::with_capacity(entry.layers.len());
            for path in &entry.layers {
                let staged = self.docker_file(staging, path, "layer")?;
                // An earlier image of the archive may have moved it already.
                let file = if staged.file.exists() {
                    staged.file.clone()
                } else {
                    self.blob_path(&staged.digest)?
                };
                let mut head = [0u8; 4];
                let n = File::open(&file)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(io_ctx("reading", &file))?;
                let media = match Compression::detect(&head[..n]) {
                    Compression::None => MediaType::ImageLayer,
                    Compression::Gzip => MediaType::ImageLayerGzip,
                    Compression::Zstd => MediaType::ImageLayerZstd,
                };
                layers.push(descriptor(media, &staged)?);
            }
            self.adopt_blob(&config.file, &config.digest)?;
            for l in &entry.layers {
                let s = self.docker_file(staging, l, "layer")?;
                self.adopt_blob(&s.file, &s.digest)?;
            }
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(config_desc)
                .layers(layers)
                .build()
                .map_err(|e| ImageError::oci("building manifest for docker image", e))?;
            let bytes = manifest
                .to_string()
                .map_err(|e| ImageError::oci("encoding manifest for docker image", e))?;
            let manifest_digest = self.put_blob_bytes(bytes.as_bytes())?;
            let mut names = Vec::new();
            for t in entry.repo_tags.unwrap_or_default() {
                names.push(Reference::parse(&t)?);
            }
            plans.push(Plan {
                manifest_digest,
                names,
                tag: None,
            });
        }
        Ok(plans)
    }

    /// A file named in docker's manifest.json. Files named by digest
    /// (`<hex>.json`, `blobs/sha256/<hex>`) were, or are here, checked against
    /// their content.
    fn docker_file(&self, staging: &Staging, path: &str, what: &str) -> Result<Staged, ImageError> {
        let staged = match staging.get(path) {
            Some(s) => s.clone(),
            None => {
                return Err(ImageError::InvalidArchive(format!(
                    "manifest.json names {what} {path:?}, which is not in the archive"
                )))
            }
        };
        let stem = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.strip_suffix(".json").unwrap_or(n))
            .unwrap_or("");
        let named = format!("sha256:{stem}");
        if validate_digest(&named).is_ok() && named != staged.digest {
            return Err(ImageError::DigestMismatch {
                what: format!("{what} {path}"),
                expected: named,
                actual: staged.digest,
            });
        }
        Ok(staged)
    }
}

fn descriptor(media: MediaType, staged: &Staged) -> Result<Descriptor, ImageError> {
    let digest: oci_spec::image::Digest = staged
        .digest
        .parse()
        .map_err(|e| ImageError::oci(format!("digest {}", staged.digest), e))?;
    DescriptorBuilder::default()
        .media_type(media)
        .digest(digest)
        .size(staged.size)
        .build()
        .map_err(|e| ImageError::oci("building descriptor", e))
}

/// Stream the archive's files into `dir`, hashing each.
fn stage(archive: impl Read, dir: &Path) -> Result<Staging, ImageError> {
    let (_, reader) =
        decompress(archive).map_err(|e| ImageError::io("reading image archive", e))?;
    let mut tar = tar::Archive::new(reader);
    let mut staging = Staging {
        files: HashMap::new(),
        links: HashMap::new(),
    };
    let entries = tar
        .entries()
        .map_err(|e| ImageError::io("reading image archive", e))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| ImageError::io("reading image archive entry", e))?;
        let raw = entry.path_bytes();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let Some(path) = normalize(&raw) else {
            return Err(ImageError::InvalidArchive(format!(
                "entry {raw:?} points outside the archive"
            )));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| ImageError::io(format!("reading link target of {raw}"), e))?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A symlink is relative to its directory; a hard link to the root.
            let joined = if kind.is_symlink() && !target.starts_with('/') {
                match path.rsplit_once('/') {
                    Some((d, _)) => format!("{d}/{target}"),
                    None => target,
                }
            } else {
                target
            };
            if let Some(t) = normalize(&joined) {
                staging.links.insert(path, t);
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let file = dir.join(i.to_string());
        let (digest, size) = write_hashed(&file, &mut entry)?;
        // blobs/sha256/<hex> must hash to <hex>: a corrupt archive stops here.
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let named = format!("sha256:{hex}");
            if named != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {path} in archive"),
                    expected: named,
                    actual: digest,
                });
            }
        }
        staging.files.insert(path, Staged { file, digest, size });
    }
    // The staging files are only read through `staging`; make sure the
    // directory's entries are durable before they are renamed into the store.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_ctx("syncing", dir))?;
    Ok(staging)
}

/// `v1`, `latest`: a tag, not a reference.
fn is_bare_tag(s: &str) -> bool {
    !s.contains('/') && !s.contains(':') && !s.contains('@') && valid_tag(s)
}

/// Whether a user-given name spells out a tag (`foo:v1`, not `foo`).
fn has_explicit_tag(s: &str) -> bool {
    let before_digest = s.split('@').next().unwrap_or(s);
    let last = before_digest.rsplit('/').next().unwrap_or(before_digest);
    last.contains(':')
}

/// The OCI (Go) architecture name of this host.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The manifest of an index for this platform (linux/<arch>), else None.
fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let arch = host_arch();
    let found = manifests.iter().find(|d| match d.platform() {
        Some(p) => p.os().to_string() == "linux" && p.architecture().to_string() == arch,
        None => false,
    });
    match (found, manifests) {
        (Some(d), _) => Some(d),
        // A one-image index without platform information.
        (None, [only]) if only.platform().is_none() => Some(only),
        _ => None,
    }
}
