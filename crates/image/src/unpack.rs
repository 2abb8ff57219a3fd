//! Unpack one layer (a tar, plain, gzip or zstd) into a directory in the
//! overlay whiteout format, computing its diff id on the way.
//!
//! * `.wh.NAME` becomes a character device 0:0 named `NAME` (an overlayfs
//!   whiteout); `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//!   directory; other `.wh..wh.*` (aufs metadata) entries are skipped.
//! * Regular files, directories and symlinks go through the tar crate's
//!   `unpack_in`, which refuses to create anything through a symlink that
//!   leads out of the layer directory. Hard links, device nodes and FIFOs are
//!   created here, after the same check.
//! * Modes (setuid included), numeric ownership, mtimes and xattrs are kept;
//!   `trusted.overlay.*` xattrs in the layer are dropped (they would let a
//!   layer steer overlayfs).
//! * Entry paths that are absolute or contain `..` are refused.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use sha2::{Digest, Sha256};

use crate::error::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Compression of a layer blob, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detect by magic bytes: gzip `1f 8b`, zstd `28 b5 2f fd`, else plain.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// What [`unpack_layer`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    pub compression: Compression,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
}

/// A reader that hashes (sha256) and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `("sha256:<hex>", bytes read)`.
    pub(crate) fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Wrap a possibly compressed stream in a decoder chosen by its magic bytes.
pub(crate) fn decompress<'a, R: Read + 'a>(
    reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    // fill_buf may return fewer than 4 bytes on a short read; that only
    // matters for tiny inputs, which are then read as plain tar.
    let compression = Compression::detect(buf.fill_buf()?);
    let r: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
    };
    Ok((compression, r))
}

/// Unpack a layer stream into `dest`, an existing (normally empty) directory.
/// `label` names the layer in errors (its blob digest). Streams: the layer is
/// never held in memory. Returns the diff id; the caller checks it.
pub fn unpack_layer<R: Read>(
    layer: R,
    dest: &Path,
    label: &str,
) -> Result<UnpackedLayer, ImageError> {
    let unpack_err = |context: String| {
        let layer = label.to_string();
        move |source: io::Error| ImageError::Unpack {
            layer,
            context,
            source,
        }
    };
    let (compression, reader) =
        decompress(layer).map_err(unpack_err("reading layer header".into()))?;
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_mask(0);
    // xattrs are applied here (for every kind of entry, with a filter).
    archive.set_unpack_xattrs(false);

    let root = dest
        .canonicalize()
        .map_err(unpack_err(format!("resolving {}", dest.display())))?;
    let mut unpacker = Unpacker {
        root,
        label,
        dir_times: Vec::new(),
    };
    {
        let entries = archive
            .entries()
            .map_err(unpack_err("reading tar".into()))?;
        for entry in entries {
            let entry = entry.map_err(unpack_err("reading tar entry".into()))?;
            unpacker.entry(entry)?;
        }
    }
    unpacker.finish()?;

    // The diff id covers the whole uncompressed stream, padding included.
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(unpack_err("reading layer tail".into()))?;
    let (diff_id, uncompressed_size) = hashing.finish();
    Ok(UnpackedLayer {
        diff_id,
        compression,
        uncompressed_size,
    })
}

struct Unpacker<'a> {
    /// Canonical path of the layer directory.
    root: PathBuf,
    label: &'a str,
    /// Directory mtimes, applied at the end (children change them).
    dir_times: Vec<(PathBuf, i64)>,
}

impl Unpacker<'_> {
    fn refuse(&self, entry: &Path, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeLayerEntry {
            layer: self.label.to_string(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    fn io_err(&self, context: String) -> impl FnOnce(io::Error) -> ImageError {
        let layer = self.label.to_string();
        move |source| ImageError::Unpack {
            layer,
            context,
            source,
        }
    }

    fn nix_err(&self, context: String) -> impl FnOnce(nix::Error) -> ImageError {
        let layer = self.label.to_string();
        move |e| ImageError::Unpack {
            layer,
            context,
            source: io::Error::from(e),
        }
    }

    /// The entry's path as plain relative components: refuses absolute paths
    /// and `..`; drops `.`.
    fn sanitize(&self, path: &Path) -> Result<PathBuf, ImageError> {
        let mut out = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.refuse(path, "absolute path"))
                }
                Component::ParentDir => return Err(self.refuse(path, "path contains '..'")),
            }
        }
        Ok(out)
    }

    /// Make sure the directory `rel` exists inside the layer, creating missing
    /// components (0755), and return its real path. A symlink component is
    /// followed only when it resolves to a directory inside the layer.
    fn ensure_dir(&self, rel: &Path, entry: &Path) -> Result<PathBuf, ImageError> {
        let mut cur = self.root.clone();
        for comp in rel.components() {
            let next = cur.join(comp);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => cur = next,
                Ok(m) if m.file_type().is_symlink() => {
                    let real = next.canonicalize().map_err(|e| {
                        self.refuse(
                            entry,
                            format!("parent {} is a dangling symlink: {e}", next.display()),
                        )
                    })?;
                    if !real.starts_with(&self.root) {
                        return Err(self.refuse(
                            entry,
                            format!(
                                "parent {} is a symlink that leads out of the layer",
                                next.display()
                            ),
                        ));
                    }
                    if !real.is_dir() {
                        return Err(self.refuse(
                            entry,
                            format!("parent {} is not a directory", next.display()),
                        ));
                    }
                    cur = real;
                }
                Ok(_) => {
                    return Err(self.refuse(
                        entry,
                        format!("parent {} is not a directory", next.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&next)
                        .map_err(self.io_err(format!("creating {}", next.display())))?;
                    fs::set_permissions(&next, fs::Permissions::from_mode(0o755))
                        .map_err(self.io_err(format!("chmod {}", next.display())))?;
                    cur = next;
                }
                Err(e) => return Err(self.io_err(format!("lstat {}", next.display()))(e)),
            }
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Ok(());
        }
        let raw_path = e
            .path()
            .map_err(self.io_err("reading entry path".into()))?
            .into_owned();
        let rel = self.sanitize(&raw_path)?;
        let header = e.header();
        let mode = header
            .mode()
            .map_err(self.io_err(format!("{}: mode", raw_path.display())))?;
        let uid = header
            .uid()
            .map_err(self.io_err(format!("{}: uid", raw_path.display())))?;
        let gid = header
            .gid()
            .map_err(self.io_err(format!("{}: gid", raw_path.display())))?;
        let mtime = header.mtime().unwrap_or(0) as i64;

        let (parent_rel, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
            _ => {
                // The layer root itself ("./").
                if kind.is_dir() {
                    let root = self.root.clone();
                    self.set_meta(&root, &raw_path, uid, gid, Some(mode))?;
                    self.dir_times.push((root, mtime));
                }
                return Ok(());
            }
        };
        let name_bytes = name.as_bytes();

        if let Some(target) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if name_bytes == WHITEOUT_OPAQUE.as_bytes() {
                let dir = self.ensure_dir(&parent_rel, &raw_path)?;
                return self.set_xattr(&dir, OPAQUE_XATTR, b"y");
            }
            if name_bytes.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                tracing::debug!(layer = self.label, entry = %raw_path.display(), "skipping aufs metadata entry");
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(self.refuse(&raw_path, "invalid whiteout name"));
            }
            let dir = self.ensure_dir(&parent_rel, &raw_path)?;
            return self.whiteout(&dir.join(OsStr::from_bytes(target)));
        }

        let parent = self.ensure_dir(&parent_rel, &raw_path)?;
        let dst = parent.join(&name);

        // Make room: an entry replaces whatever this layer put there before,
        // except that a directory merges into an existing directory.
        let mut make_opaque = false;
        match fs::symlink_metadata(&dst) {
            Ok(m) => {
                let ft = m.file_type();
                if m.is_dir() {
                    if !kind.is_dir() {
                        fs::remove_dir_all(&dst)
                            .map_err(self.io_err(format!("replacing {}", dst.display())))?;
                    }
                } else if kind.is_dir()
                    || kind.is_hard_link()
                    || kind.is_character_special()
                    || kind.is_block_special()
                    || kind.is_fifo()
                {
                    // A whiteout followed by a directory of the same name: the
                    // new directory must hide the lower one's content.
                    make_opaque = kind.is_dir() && ft.is_char_device() && m.rdev() == 0;
                    fs::remove_file(&dst)
                        .map_err(self.io_err(format!("replacing {}", dst.display())))?;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(self.io_err(format!("lstat {}", dst.display()))(err)),
        }

        let xattrs = self.pax_xattrs(&mut e, &raw_path)?;

        if kind.is_hard_link() {
            let link = e
                .link_name()
                .map_err(self.io_err(format!("{}: link name", raw_path.display())))?
                .ok_or_else(|| self.refuse(&raw_path, "hard link without a target"))?
                .into_owned();
            let link_rel = self.sanitize(&link)?;
            let (lparent, lname) = match (link_rel.parent(), link_rel.file_name()) {
                (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
                _ => return Err(self.refuse(&raw_path, "hard link to the layer root")),
            };
            let lparent_real = self.existing_dir(&lparent, &raw_path)?;
            let src = lparent_real.join(lname);
            let m = fs::symlink_metadata(&src).map_err(|err| {
                self.refuse(
                    &raw_path,
                    format!("hard link target {} missing: {err}", link.display()),
                )
            })?;
            if m.is_dir() {
                return Err(self.refuse(&raw_path, "hard link to a directory"));
            }
            // link(2) does not follow a symlink at `src`.
            fs::hard_link(&src, &dst).map_err(self.io_err(format!(
                "hard link {} -> {}",
                dst.display(),
                src.display()
            )))?;
            return Ok(());
        }

        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let (major, minor) = if kind.is_fifo() {
                (0, 0)
            } else {
                let header = e.header();
                let major = header
                    .device_major()
                    .map_err(self.io_err(format!("{}: device major", raw_path.display())))?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(self.io_err(format!("{}: device minor", raw_path.display())))?
                    .unwrap_or(0);
                (major, minor)
            };
            let sflag = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else if kind.is_block_special() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(
                &dst,
                sflag,
                Mode::from_bits_truncate(0o600),
                makedev(major.into(), minor.into()),
            )
            .map_err(self.nix_err(format!("mknod {}", dst.display())))?;
            self.set_meta(&dst, &raw_path, uid, gid, Some(mode))?;
            self.set_time(&dst, mtime)?;
        } else {
            e.unpack_in(&self.root)
                .map_err(self.io_err(format!("unpacking {}", raw_path.display())))?;
            if kind.is_dir() {
                self.dir_times.push((dst.clone(), mtime));
            }
        }
        for (k, v) in &xattrs {
            self.set_xattr(&dst, k, v)?;
        }
        if make_opaque {
            self.set_xattr(&dst, OPAQUE_XATTR, b"y")?;
        }
        Ok(())
    }

    /// Like `ensure_dir`, but the directory must exist already.
    fn existing_dir(&self, rel: &Path, entry: &Path) -> Result<PathBuf, ImageError> {
        let p = self.root.join(rel);
        let real = p.canonicalize().map_err(|err| {
            self.refuse(
                entry,
                format!("hard link target directory {}: {err}", p.display()),
            )
        })?;
        if !real.starts_with(&self.root) {
            return Err(self.refuse(entry, "hard link target is outside the layer"));
        }
        Ok(real)
    }

    /// Create an overlay whiteout (char device 0:0) at `path`.
    fn whiteout(&self, path: &Path) -> Result<(), ImageError> {
        match fs::symlink_metadata(path) {
            Ok(m) => {
                // This layer also has an entry by that name: it already hides
                // the lower one; a directory must hide the lower content too.
                if m.is_dir() {
                    self.set_xattr(path, OPAQUE_XATTR, b"y")?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_err(format!("lstat {}", path.display()))(e)),
        }
        mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(self.nix_err(format!("creating whiteout {}", path.display())))
    }

    /// lchown, then chmod (chown clears setuid bits, so it goes first).
    fn set_meta(
        &self,
        path: &Path,
        entry: &Path,
        uid: u64,
        gid: u64,
        mode: Option<u32>,
    ) -> Result<(), ImageError> {
        let uid = u32::try_from(uid).map_err(|_| self.refuse(entry, "uid out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| self.refuse(entry, "gid out of range"))?;
        fchownat(
            None,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(self.nix_err(format!("chown {}", path.display())))?;
        if let Some(mode) = mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(self.io_err(format!("chmod {}", path.display())))?;
        }
        Ok(())
    }

    fn set_time(&self, path: &Path, mtime: i64) -> Result<(), ImageError> {
        let t = TimeSpec::new(mtime, 0);
        utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(self.nix_err(format!("setting mtime of {}", path.display())))
    }

    fn pax_xattrs<R: Read>(
        &self,
        e: &mut tar::Entry<'_, R>,
        entry: &Path,
    ) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
        let mut out = Vec::new();
        let exts = e
            .pax_extensions()
            .map_err(self.io_err(format!("{}: pax headers", entry.display())))?;
        if let Some(exts) = exts {
            for ext in exts {
                let ext = ext.map_err(self.io_err(format!("{}: pax header", entry.display())))?;
                let Some(key) = ext.key_bytes().strip_prefix(PAX_XATTR_PREFIX) else {
                    continue;
                };
                let key = String::from_utf8_lossy(key).into_owned();
                if key.starts_with("trusted.overlay.") {
                    tracing::warn!(layer = self.label, entry = %entry.display(), xattr = %key, "dropping overlay xattr from layer");
                    continue;
                }
                out.push((key, ext.value_bytes().to_vec()));
            }
        }
        Ok(out)
    }

    fn set_xattr(&self, path: &Path, key: &str, value: &[u8]) -> Result<(), ImageError> {
        lsetxattr(path, key, value).or_else(|err| {
            if err.raw_os_error() == Some(libc::EOPNOTSUPP) && !key.starts_with("trusted.") {
                tracing::warn!(layer = self.label, path = %path.display(), xattr = key, "file system does not support this xattr; skipped");
                Ok(())
            } else {
                Err(self.io_err(format!("setting xattr {key} on {}", path.display()))(err))
            }
        })
    }

    /// Apply directory mtimes (after all entries: creating a child changes
    /// its directory's mtime; setting a mtime does not change the parent's).
    fn finish(&mut self) -> Result<(), ImageError> {
        for (dir, mtime) in std::mem::take(&mut self.dir_times) {
            self.set_time(&dir, mtime)?;
        }
        Ok(())
    }
}

/// `lsetxattr(2)`: set an extended attribute without following symlinks.
pub(crate) fn lsetxattr(path: &Path, key: &str, value: &[u8]) -> io::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let ckey = CString::new(OsStr::new(key).as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: cpath and ckey are valid NUL-terminated strings that outlive the
    // call; value points to value.len() initialised bytes.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            ckey.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `lgetxattr(2)`: read an extended attribute (None if absent).
#[cfg(test)]
pub(crate) fn lgetxattr(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let ckey = CString::new(key)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings; buf is a writable buffer of
    // buf.len() bytes.
    let rc = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            ckey.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODATA) {
            return Ok(None);
        }
        return Err(err);
    }
    buf.truncate(rc as usize);
    Ok(Some(buf))
}
