//! Image removal (`image rm`), `image prune` and garbage collection of blobs,
//! unpacked layers and stale staging files.
//!
//! # What GC keeps
//!
//! Reachability starts at the image records (`root/images/*.json`) and the
//! caller's extra roots, and follows manifests → config + layer blobs →
//! diff ids → unpacked layer directories. Everything else under
//! `root/blobs/sha256/` and `root/layers/` is deleted, plus entries of
//! `root/tmp/` that have not been touched for [`TMP_MAX_AGE`]. As a safety
//! net, layer directories that appear in this process's mount table (an
//! overlay `lowerdir`, a bind mount) are kept too.
//!
//! # Locking
//!
//! GC must never run while an import or a pull is between "blob stored" and
//! "record written": it would see the new blobs as garbage. `import`,
//! `add_image` and `put_blob` do not lock by themselves; the daemon holds a
//! [`GcLock`] from [`ImageStore::gc_lock`] (a *shared* `flock` on
//! `root/gc.lock`, so pulls still run in parallel) around every import,
//! pull and export, and [`ImageStore::gc`] / [`ImageStore::prune`] take the
//! *exclusive* lock themselves, waiting for those to finish. The lock is a
//! file lock, so it also serialises separate processes (`peapod image
//! import` while the daemon runs). Do not call `gc`/`prune` while the same
//! thread holds a `GcLock`: the exclusive lock would wait for it forever.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use crate::error::{io_ctx, ImageError};
use crate::reference::validate_digest;
use crate::store::{read_limited, ImageRecord, ImageStore, META_LIMIT};

/// Entries of `root/tmp/` untouched for this long are removed by GC.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);
/// Prefix of the tmp entries GC moves doomed layer directories to.
const TRASH_PREFIX: &str = "gc-trash";
/// Length of the diff-id prefix naming a layer directory (see store.rs).
const LAYER_ID_LEN: usize = 12;
/// Depth limit when following indexes / manifests from a root.
const MAX_WALK_DEPTH: usize = 8;
/// inode flags (linux/fs.h) that make even root's unlink fail.
const FS_IMMUTABLE_FL: libc::c_int = 0x10;
const FS_APPEND_FL: libc::c_int = 0x20;

/// A `flock` on `root/gc.lock`: shared from [`ImageStore::gc_lock`] (hold it
/// around imports, pulls and exports), exclusive inside GC. Released on drop.
pub struct GcLock {
    _flock: Flock<File>,
    exclusive: bool,
}

impl fmt::Debug for GcLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcLock")
            .field("exclusive", &self.exclusive)
            .finish()
    }
}

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs (manifests, configs, layers) deleted from `root/blobs/sha256`.
    pub blobs_removed: usize,
    /// Their sizes (file lengths), summed.
    pub blob_bytes: u64,
    /// Unpacked layer directories deleted from `root/layers`.
    pub layers_removed: usize,
    /// Disk space they used (allocated blocks; hard links counted once).
    pub layer_bytes: u64,
    /// Stale entries deleted from `root/tmp`.
    pub tmp_removed: usize,
    /// Disk space they used.
    pub tmp_bytes: u64,
}

impl GcReport {
    /// Every byte freed, blobs + layers + tmp.
    pub fn bytes_freed(&self) -> u64 {
        self.blob_bytes + self.layer_bytes + self.tmp_bytes
    }

    /// True when GC found nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.blobs_removed == 0 && self.layers_removed == 0 && self.tmp_removed == 0
    }
}

/// What [`ImageStore::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Image records (names) removed.
    pub removed: Vec<ImageRecord>,
    /// The garbage collection that followed.
    pub gc: GcReport,
}

/// Digests reachable from the roots.
#[derive(Default)]
struct Reachable {
    blobs: HashSet<String>,
    diff_ids: HashSet<String>,
    /// Blobs whose JSON has been followed already.
    walked: HashSet<String>,
}

impl ImageStore {
    /// Take the *shared* GC lock (`flock` on `root/gc.lock`). Hold it around
    /// anything that adds blobs and then records (imports, pulls) or reads
    /// an image's blobs (exports, container creation): GC waits until every
    /// holder has dropped it. Any number of holders at once.
    pub fn gc_lock(&self) -> Result<GcLock, ImageError> {
        self.lock_gc(false)
    }

    fn lock_gc(&self, exclusive: bool) -> Result<GcLock, ImageError> {
        let path = self.root().join("gc.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_ctx("opening", &path))?;
        let (now, wait) = if exclusive {
            (FlockArg::LockExclusiveNonblock, FlockArg::LockExclusive)
        } else {
            (FlockArg::LockSharedNonblock, FlockArg::LockShared)
        };
        let mut file = match Flock::lock(file, now) {
            Ok(lock) => {
                return Ok(GcLock {
                    _flock: lock,
                    exclusive,
                })
            }
            Err((file, Errno::EWOULDBLOCK)) => {
                if exclusive {
                    tracing::info!(lock = %path.display(), "garbage collection waits for running imports and pulls");
                } else {
                    tracing::info!(lock = %path.display(), "waiting for garbage collection to finish");
                }
                file
            }
            Err((_, errno)) => {
                return Err(ImageError::io(
                    format!("locking {}", path.display()),
                    io::Error::from(errno),
                ))
            }
        };
        loop {
            match Flock::lock(file, wait) {
                Ok(lock) => {
                    return Ok(GcLock {
                        _flock: lock,
                        exclusive,
                    })
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => {
                    return Err(ImageError::io(
                        format!("locking {}", path.display()),
                        io::Error::from(errno),
                    ))
                }
            }
        }
    }

    /// `image rm`: remove the name `reference`, or every name of the image
    /// when `reference` is a digest or image id (same lookup rules as
    /// [`ImageStore::get`]). Returns the records removed. Blobs and layers
    /// stay until [`ImageStore::gc`].
    ///
    /// Refused with [`ImageError::InUse`] when the image would lose its last
    /// name while `in_use` says a container uses it (`in_use` is asked for
    /// every record of that image). Removing one of several names of an
    /// image only untags it and is allowed even while the image is in use
    /// (as `docker rmi` does): its content stays referenced by the other
    /// names.
    pub fn remove_image(
        &self,
        reference: &str,
        in_use: &dyn Fn(&ImageRecord) -> bool,
    ) -> Result<Vec<ImageRecord>, ImageError> {
        let targets = self.resolve_all(reference)?;
        if targets.is_empty() {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        let all = self.list()?;
        let doomed: HashSet<&str> = targets.iter().map(|r| r.name.as_str()).collect();
        let mut digests: Vec<&str> = targets.iter().map(|r| r.digest.as_str()).collect();
        digests.sort_unstable();
        digests.dedup();
        for digest in digests {
            let same: Vec<&ImageRecord> = all.iter().filter(|r| r.digest == digest).collect();
            let survives = same.iter().any(|r| !doomed.contains(r.name.as_str()));
            if !survives && same.iter().any(|r| in_use(r)) {
                return Err(ImageError::InUse {
                    reference: reference.to_string(),
                    digest: digest.to_string(),
                });
            }
        }
        for rec in &targets {
            self.remove_record(&rec.name)?;
        }
        tracing::info!(reference, removed = targets.len(), "image names removed");
        Ok(targets)
    }

    /// `image prune`: with `all`, remove every image record `in_use` does not
    /// claim; then garbage-collect. Without `all` only dangling images would
    /// go, and every record here has a name, so it only collects garbage.
    pub fn prune(
        &self,
        in_use: &dyn Fn(&ImageRecord) -> bool,
        all: bool,
    ) -> Result<PruneReport, ImageError> {
        self.prune_keeping(in_use, all, &[])
    }

    /// [`ImageStore::prune`] with extra GC roots (see [`ImageStore::gc`]).
    pub fn prune_keeping(
        &self,
        in_use: &dyn Fn(&ImageRecord) -> bool,
        all: bool,
        extra_roots: &[String],
    ) -> Result<PruneReport, ImageError> {
        let _lock = self.lock_gc(true)?;
        let mut removed = Vec::new();
        if all {
            for rec in self.list()? {
                if !in_use(&rec) {
                    self.remove_record(&rec.name)?;
                    removed.push(rec);
                }
            }
        }
        let gc = self.gc_locked(extra_roots)?;
        Ok(PruneReport { removed, gc })
    }

    /// Garbage collection: delete every blob and unpacked layer no image
    /// record (and no extra root) references, and stale `tmp/` entries.
    ///
    /// `extra_roots` are digests to keep although no record names them,
    /// e.g. for a running container whose image was re-tagged: a manifest
    /// digest keeps its config, layer blobs and unpacked layers; an index
    /// keeps its manifests; a config keeps the unpacked layers of its diff
    /// ids; a layer blob digest keeps that blob; a diff id keeps that
    /// unpacked layer. An invalid digest is an error (nothing is deleted).
    ///
    /// Takes the exclusive [`GcLock`], so it waits for imports and pulls
    /// holding the shared one.
    pub fn gc(&self, extra_roots: &[String]) -> Result<GcReport, ImageError> {
        let _lock = self.lock_gc(true)?;
        self.gc_locked(extra_roots)
    }

    fn gc_locked(&self, extra_roots: &[String]) -> Result<GcReport, ImageError> {
        let started = std::time::Instant::now();
        let mut reach = Reachable::default();
        for root in extra_roots {
            validate_digest(root)?;
            reach.blobs.insert(root.clone());
            reach.diff_ids.insert(root.clone());
            self.walk(root, &mut reach, 0);
        }
        for rec in self.list()? {
            for d in [&rec.digest, &rec.config_digest]
                .into_iter()
                .chain(&rec.layers)
            {
                reach.blobs.insert(d.clone());
            }
            reach.diff_ids.extend(rec.diff_ids.iter().cloned());
            self.walk(&rec.digest, &mut reach, 0);
            self.walk(&rec.config_digest, &mut reach, 0);
        }

        let mut report = GcReport::default();
        self.sweep_blobs(&reach, &mut report)?;
        self.sweep_layers(&reach, &mut report)?;
        self.sweep_tmp(&mut report)?;
        if !report.is_empty() {
            tracing::info!(
                blobs = report.blobs_removed,
                layers = report.layers_removed,
                tmp = report.tmp_removed,
                bytes = report.bytes_freed(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "image garbage collection"
            );
        }
        Ok(report)
    }

    /// Follow the JSON blob `digest` (index, manifest or config) if it is
    /// one, marking what it references. Unreadable or non-JSON blobs are
    /// simply not followed: the records' own fields are marked regardless.
    fn walk(&self, digest: &str, reach: &mut Reachable, depth: usize) {
        if depth > MAX_WALK_DEPTH || !reach.walked.insert(digest.to_string()) {
            return;
        }
        let Ok(path) = self.blob_path(digest) else {
            return;
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= META_LIMIT => {}
            _ => return,
        }
        let Ok(bytes) = read_limited(&path, META_LIMIT) else {
            return;
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return;
        }
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return;
        };
        let digest_of = |v: &serde_json::Value| -> Option<String> {
            let d = v.get("digest")?.as_str()?;
            validate_digest(d).ok()?;
            Some(d.to_string())
        };
        if let Some(list) = json.get("manifests").and_then(|m| m.as_array()) {
            for d in list.iter().filter_map(digest_of) {
                reach.blobs.insert(d.clone());
                self.walk(&d, reach, depth + 1);
            }
        }
        if let Some(d) = json.get("config").and_then(digest_of) {
            reach.blobs.insert(d.clone());
            self.walk(&d, reach, depth + 1);
        }
        if let Some(list) = json.get("layers").and_then(|m| m.as_array()) {
            reach.blobs.extend(list.iter().filter_map(digest_of));
        }
        if let Some(list) = json
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| d.as_array())
        {
            for d in list.iter().filter_map(|d| d.as_str()) {
                if validate_digest(d).is_ok() {
                    reach.diff_ids.insert(d.to_string());
                }
            }
        }
    }

    fn sweep_blobs(&self, reach: &Reachable, report: &mut GcReport) -> Result<(), ImageError> {
        let dir = self.root().join("blobs").join("sha256");
        for entry in fs::read_dir(&dir).map_err(io_ctx("reading", &dir))? {
            let entry = entry.map_err(io_ctx("reading", &dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().filter(|n| is_hex(n, 64)) else {
                tracing::warn!(path = %entry.path().display(), "unexpected file in the blob store; left alone");
                continue;
            };
            if reach.blobs.contains(&format!("sha256:{hex}")) {
                continue;
            }
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io(format!("stat {}", path.display()), e)),
            };
            if meta.is_dir() {
                tracing::warn!(path = %path.display(), "directory in the blob store; left alone");
                continue;
            }
            match remove_tree(&path) {
                Ok(_) => {
                    report.blobs_removed += 1;
                    report.blob_bytes += meta.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("removing {}", path.display()), e)),
            }
        }
        Ok(())
    }

    fn sweep_layers(&self, reach: &Reachable, report: &mut GcReport) -> Result<(), ImageError> {
        let dir = self.root().join("layers");
        let mut keep: HashSet<String> = reach
            .diff_ids
            .iter()
            .filter_map(|d| d.strip_prefix("sha256:"))
            .filter(|h| is_hex(h, 64))
            .map(|h| h[..LAYER_ID_LEN].to_string())
            .collect();
        keep.extend(self.mounted_layer_ids());
        for entry in fs::read_dir(&dir).map_err(io_ctx("reading", &dir))? {
            let entry = entry.map_err(io_ctx("reading", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = entry.path();
            if let Some(id) = name.strip_suffix(".diffid") {
                // A marker whose directory is gone (a crash between the two).
                if is_hex(id, LAYER_ID_LEN) && !keep.contains(id) && !dir.join(id).exists() {
                    remove_file_if_present(&path)?;
                }
                continue;
            }
            if !is_hex(name, LAYER_ID_LEN) || keep.contains(name) {
                continue;
            }
            let is_dir = entry
                .file_type()
                .map(|t| t.is_dir())
                .map_err(io_ctx("stat", &path))?;
            if !is_dir {
                continue;
            }
            // Move it out of sight first, atomically: a crash half-way through
            // the deletion must not leave a half layer under its real name.
            let trash = self.tmp_path(TRASH_PREFIX);
            fs::rename(&path, &trash).map_err(|e| {
                ImageError::io(
                    format!("moving layer {} to {}", path.display(), trash.display()),
                    e,
                )
            })?;
            remove_file_if_present(&dir.join(format!("{name}.diffid")))?;
            let freed = remove_tree(&trash).map_err(io_ctx("removing layer", &trash))?;
            report.layers_removed += 1;
            report.layer_bytes += freed;
        }
        Ok(())
    }

    fn sweep_tmp(&self, report: &mut GcReport) -> Result<(), ImageError> {
        let dir = self.tmp_dir();
        let now = SystemTime::now();
        for entry in fs::read_dir(&dir).map_err(io_ctx("reading", &dir))? {
            let entry = entry.map_err(io_ctx("reading", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let trash = name.starts_with(&format!("{TRASH_PREFIX}-"));
            if !trash && !is_stale(&path, &name, now) {
                continue;
            }
            match remove_tree(&path) {
                Ok(freed) => {
                    report.tmp_removed += 1;
                    report.tmp_bytes += freed;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("removing {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// Layer ids (`<12 hex>`) of this store that appear in this process's
    /// mount table: lower dirs of overlays and bind mounts. Best effort.
    fn mounted_layer_ids(&self) -> HashSet<String> {
        let mut ids = HashSet::new();
        let Ok(root) = fs::canonicalize(self.root()) else {
            return ids;
        };
        let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
            return ids;
        };
        let prefix = format!("{}/layers/", mountinfo_escape(&root.to_string_lossy()));
        for line in table.lines() {
            let mut rest = line;
            while let Some(i) = rest.find(&prefix) {
                rest = &rest[i + prefix.len()..];
                if let Some(id) = rest
                    .get(..LAYER_ID_LEN)
                    .filter(|id| is_hex(id, LAYER_ID_LEN))
                {
                    ids.insert(id.to_string());
                }
            }
        }
        ids
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Escape a path the way /proc/self/mountinfo does (octal for space, tab,
/// newline and backslash).
fn mountinfo_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

fn remove_file_if_present(path: &Path) -> Result<(), ImageError> {
    match retry_unlocked(path, || fs::remove_file(path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io(format!("removing {}", path.display()), e)),
    }
}

/// Whether a tmp entry is stale: created (per the time stamp in its name,
/// `prefix-pid-nanos-counter`) and last modified (it or a direct child)
/// more than [`TMP_MAX_AGE`] ago. Modification times alone would not do:
/// an unpacking layer's directory carries its tar's old mtimes.
fn is_stale(path: &Path, name: &str, now: SystemTime) -> bool {
    let old = |t: SystemTime| {
        now.duration_since(t)
            .map(|age| age > TMP_MAX_AGE)
            .unwrap_or(false)
    };
    let mut parts = name.rsplitn(3, '-');
    let (_counter, nanos) = (parts.next(), parts.next());
    if let Some(nanos) = nanos.and_then(|n| n.parse::<u64>().ok()) {
        if !old(UNIX_EPOCH + Duration::from_nanos(nanos)) {
            return false;
        }
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.modified().map(old).unwrap_or(false) {
        return false;
    }
    if meta.is_dir() {
        let Ok(entries) = fs::read_dir(path) else {
            return false;
        };
        for entry in entries {
            let Ok(entry) = entry else {
                return false;
            };
            let fresh = fs::symlink_metadata(entry.path())
                .and_then(|m| m.modified())
                .map(|t| !old(t))
                .unwrap_or(true);
            if fresh {
                return false;
            }
        }
    }
    true
}

/// Remove a file or a whole tree, whatever its permissions and inode flags
/// (read-only directories, immutable / append-only files). Never follows
/// symlinks. Returns the disk space freed (hard-linked files count when
/// their last link goes).
pub(crate) fn remove_tree(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    let mut freed = 0;
    if meta.is_dir() {
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if is_perm(&e) => {
                make_removable(path);
                fs::read_dir(path)?
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            freed += remove_tree(&entry.path())?;
        }
        freed += meta.blocks() * 512;
        retry_unlocked(path, || fs::remove_dir(path))?;
    } else {
        if meta.nlink() <= 1 {
            freed += meta.blocks() * 512;
        }
        retry_unlocked(path, || fs::remove_file(path))?;
    }
    Ok(freed)
}

fn is_perm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Run `op` (an unlink of `path`); on EPERM / EACCES clear what blocks it on
/// `path` and its parent directory and try once more.
fn retry_unlocked(path: &Path, op: impl Fn() -> io::Result<()>) -> io::Result<()> {
    match op() {
        Err(e) if is_perm(&e) => {
            make_removable(path);
            if let Some(parent) = path.parent() {
                make_removable(parent);
            }
            op()
        }
        other => other,
    }
}

/// Best effort: clear the immutable and append-only flags of a regular file
/// or directory, and give a directory u+rwx. Device nodes, FIFOs, sockets
/// and symlinks are never opened.
fn make_removable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let ft = meta.file_type();
    if !(ft.is_dir() || ft.is_file()) {
        return;
    }
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    if ft.is_dir() {
        flags |= libc::O_DIRECTORY;
    }
    if let Ok(file) = OpenOptions::new().read(true).custom_flags(flags).open(path) {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let mut attr: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS / SETFLAGS read and write one int through
        // the pointer, which points at a live c_int; fd is open.
        let got = unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut attr as *mut libc::c_int) };
        if got == 0 && attr & (FS_IMMUTABLE_FL | FS_APPEND_FL) != 0 {
            attr &= !(FS_IMMUTABLE_FL | FS_APPEND_FL);
            // SAFETY: as above.
            let set =
                unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &attr as *const libc::c_int) };
            if set != 0 {
                tracing::warn!(path = %path.display(), error = %io::Error::last_os_error(), "could not clear immutable flag");
            }
        }
    }
    if ft.is_dir() && meta.permissions().mode() & 0o700 != 0o700 {
        let mode = meta.permissions().mode() | 0o700;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
}
