//! Layer unpacking and overlay mounts checked against an independent
//! implementation (they run as root):
//!
//! * an image built here (whiteouts, an opaque directory, a directory
//!   replaced by a file, hard links, symlinks, one pointing at `../../../etc`,
//!   setuid / owned / xattr files, device nodes, a FIFO, and a layer that
//!   writes `evil/passwd` through that symlink) is imported into an
//!   [`ImageStore`], a fresh container's rootfs is mounted with
//!   [`mount_rootfs`], and the merged overlay tree is compared entry by entry
//!   with what `umoci unpack` makes of the same OCI layout;
//! * an image of 128 layers, in a store whose root path is long enough that
//!   the classic `lowerdir=` option string would exceed a page, mounts.
//!
//! umoci is skipped with a message when it is not installed, unless `CI` is
//! set (then the test fails).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use peapod_image::{
    mount_rootfs, mount_rootfs_readonly, overlay_options, unmount, ImageError, ImageStore,
};
use serde_json::json;
use sha2::{Digest, Sha256};

const UMOCI: &str = "/usr/bin/umoci";
const TAG: &str = "test";

// ----- layers and OCI layouts -----------------------------------------------

/// A layer tar built entry by entry; every entry gets the layer's mtime.
struct LayerTar {
    b: tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl LayerTar {
    fn new(mtime: u64) -> Self {
        LayerTar {
            b: tar::Builder::new(Vec::new()),
            mtime,
        }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(self.mtime);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = self.header(tar::EntryType::Directory, mode, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("dir");
        self
    }

    fn dir_owned(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = self.header(tar::EntryType::Directory, mode, uid, gid);
        self.b.append_data(&mut h, path, &[][..]).expect("dir");
        self
    }

    fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_full(path, data, mode, 0, 0, &[])
    }

    fn file_full(
        mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        xattrs: &[(&str, &[u8])],
    ) -> Self {
        if !xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .expect("pax");
        }
        let mut h = self.header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).expect("file");
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.b.append_link(&mut h, path, target).expect("symlink");
        self
    }

    fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = self.header(tar::EntryType::Link, 0o644, 0, 0);
        self.b.append_link(&mut h, path, target).expect("hard link");
        self
    }

    fn device(mut self, kind: tar::EntryType, path: &str, major: u32, minor: u32) -> Self {
        let mut h = self.header(kind, 0o660, 0, 6);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.b.append_data(&mut h, path, &[][..]).expect("device");
        self
    }

    fn fifo(mut self, path: &str, mode: u32) -> Self {
        let mut h = self.header(tar::EntryType::Fifo, mode, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("fifo");
        self
    }

    /// An empty regular file: a whiteout (`.wh.NAME`) or opaque marker.
    fn marker(self, path: &str) -> Self {
        self.file(path, b"", 0o644)
    }

    fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish tar")
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The files of an OCI image layout (relative path → content) holding one
/// image of `layers` (uncompressed tars, bottom first; stored gzipped),
/// tagged `TAG` (`org.opencontainers.image.ref.name`).
fn oci_layout(layers: &[Vec<u8>]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut blob = |data: Vec<u8>| -> (String, usize) {
        let d = sha256(&data);
        let n = data.len();
        files.insert(format!("blobs/sha256/{}", &d[7..]), data);
        (d, n)
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (digest, size) = blob(gzip(l));
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": digest, "size": size})
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    let (config_digest, config_size) = blob(config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": layer_descs,
    }))
    .expect("manifest");
    let (manifest_digest, manifest_size) = blob(manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": TAG},
        }],
    }))
    .expect("index");
    files.insert("index.json".into(), index);
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files
}

/// The layout as a directory (for umoci).
fn write_layout(files: &BTreeMap<String, Vec<u8>>, dir: &Path) {
    for (rel, data) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir layout");
        fs::write(&p, data).expect("write layout file");
    }
}

/// The layout as a tar (for `ImageStore::import`).
fn layout_tar(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (rel, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, rel, &data[..]).expect("layout entry");
    }
    b.into_inner().expect("layout tar")
}

// ----- trees ------------------------------------------------------------------

/// What is compared of one entry of a tree. mtimes are kept apart (see
/// `compare_mtimes`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    /// Permission bits, setuid / setgid / sticky included.
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files: size and sha256 of the content.
    content: Option<(u64, String)>,
    /// Symlinks: the target, as written.
    link: Option<PathBuf>,
    /// Character and block devices: (major, minor).
    rdev: Option<(u64, u64)>,
    /// Extended attributes other than `trusted.overlay.*`.
    xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    mtimes: BTreeMap<String, (i64, i64)>,
    /// (st_dev, st_ino) of every non-directory.
    inodes: BTreeMap<String, (u64, u64)>,
}

impl Tree {
    /// Walk `root` without following symlinks.
    fn scan(root: &Path) -> Tree {
        let mut t = Tree::default();
        t.walk(root, "/");
        t
    }

    fn walk(&mut self, path: &Path, rel: &str) {
        let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {rel}: {e}"));
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_file() {
            "regular file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char device"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let content = ft.is_file().then(|| {
            let data = fs::read(path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
            (m.len(), sha256(&data))
        });
        let link = ft
            .is_symlink()
            .then(|| fs::read_link(path).unwrap_or_else(|e| panic!("readlink {rel}: {e}")));
        let rdev = (ft.is_char_device() || ft.is_block_device()).then(|| {
            (
                u64::from(libc::major(m.rdev())),
                u64::from(libc::minor(m.rdev())),
            )
        });
        let xattrs = list_xattrs(path)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect();
        self.nodes.insert(
            rel.to_string(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                content,
                link,
                rdev,
                xattrs,
            },
        );
        self.mtimes
            .insert(rel.to_string(), (m.mtime(), m.mtime_nsec()));
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(path)
                .unwrap_or_else(|e| panic!("readdir {rel}: {e}"))
                .map(|e| e.expect("dir entry").file_name())
                .collect();
            names.sort();
            for name in names {
                let child = if rel == "/" {
                    format!("/{}", name.to_string_lossy())
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                self.walk(&path.join(&name), &child);
            }
        } else {
            self.inodes.insert(rel.to_string(), (m.dev(), m.ino()));
        }
    }

    /// Sets of paths sharing an inode (only sets of two or more).
    fn hardlink_groups(&self) -> BTreeSet<BTreeSet<String>> {
        let mut by_inode: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
        for (p, ino) in &self.inodes {
            by_inode.entry(*ino).or_default().insert(p.clone());
        }
        by_inode.into_values().filter(|g| g.len() > 1).collect()
    }
}

/// Every extended attribute of `path` (not following a symlink).
fn list_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let cpath = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: cpath is NUL-terminated; names is a writable buffer of
    // names.len() bytes.
    let n = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    names.truncate(n as usize);
    let mut out = BTreeMap::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("xattr name");
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: cpath and cname are NUL-terminated; value is a writable
        // buffer of value.len() bytes.
        let len = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            len >= 0,
            "lgetxattr {} {}: {}",
            path.display(),
            String::from_utf8_lossy(name),
            std::io::Error::last_os_error()
        );
        value.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

fn fmt_node_field(n: &Node, field: &str) -> String {
    match field {
        "type" => n.kind.to_string(),
        "mode" => format!("{:04o}", n.mode),
        "owner" => format!("{}:{}", n.uid, n.gid),
        "content" => match &n.content {
            Some((size, sha)) => format!("{size} bytes {}", &sha[..19]),
            None => "-".into(),
        },
        "symlink target" => format!("{:?}", n.link),
        "device" => format!("{:?}", n.rdev),
        "xattrs" => format!(
            "{:?}",
            n.xattrs
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
        ),
        _ => unreachable!("field {field}"),
    }
}

/// Differences between `ours` (the merged overlay) and `theirs` (umoci),
/// one readable line each.
fn diff_trees(ours: &Tree, theirs: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = ours.nodes.keys().chain(theirs.nodes.keys()).collect();
    for p in paths {
        match (ours.nodes.get(p), theirs.nodes.get(p)) {
            (Some(o), None) => out.push(format!("{p}: only in peapod's rootfs ({})", o.kind)),
            (None, Some(t)) => out.push(format!("{p}: only in umoci's rootfs ({})", t.kind)),
            (Some(o), Some(t)) => {
                for field in [
                    "type",
                    "mode",
                    "owner",
                    "content",
                    "symlink target",
                    "device",
                    "xattrs",
                ] {
                    let (a, b) = (fmt_node_field(o, field), fmt_node_field(t, field));
                    if a != b {
                        out.push(format!("{p}: {field}: peapod {a}, umoci {b}"));
                    }
                }
            }
            (None, None) => {}
        }
    }
    let (og, tg) = (ours.hardlink_groups(), theirs.hardlink_groups());
    for g in og.difference(&tg) {
        out.push(format!("hard links only in peapod's rootfs: {g:?}"));
    }
    for g in tg.difference(&og) {
        out.push(format!("hard links only in umoci's rootfs: {g:?}"));
    }
    out
}

/// mtimes of non-directories, which both sides take from the tar headers.
///
/// Directory mtimes are not compared. In the overlay a directory shows the
/// mtime of its topmost copy: a layer that adds `bin/x` without a `bin/`
/// entry of its own gets a `bin/` made at unpack time (now), which hides the
/// lower `bin/`'s mtime. umoci extracts into one tree and restores the
/// existing directory's mtime after adding `bin/x`, so its `/bin` keeps the
/// base layer's. Directories that no layer lists (implicit parents) get the
/// time of extraction on both sides. OCI does not specify directory mtimes
/// of a merged tree, and nothing in a container depends on them.
fn mtime_diffs(ours: &Tree, theirs: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, o) in &ours.nodes {
        if o.kind == "directory" {
            continue;
        }
        if let (Some(a), Some(b)) = (ours.mtimes.get(p), theirs.mtimes.get(p)) {
            if a != b && theirs.nodes.contains_key(p) {
                out.push(format!("{p}: mtime: peapod {a:?}, umoci {b:?}"));
            }
        }
    }
    out
}

// ----- helpers -----------------------------------------------------------------

fn umoci_unpack(layout: &Path, bundle: &Path) {
    let out = Command::new(UMOCI)
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{TAG}", layout.display()))
        .arg(bundle)
        .output()
        .expect("running umoci");
    assert!(
        out.status.success(),
        "umoci unpack failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts on drop (also when an assertion fails first).
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = unmount(&self.0) {
            eprintln!("unmount {}: {e}", self.0.display());
        }
    }
}

fn is_mounted(target: &Path) -> bool {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let target = target.to_string_lossy().into_owned();
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// Every path under `root` with its type, mode, size and mtime, skipping
/// the subtrees in `skip`: to see that nothing else changed.
fn fingerprint(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, String> {
    fn walk(p: &Path, skip: &[&Path], out: &mut BTreeMap<PathBuf, String>) {
        if skip.contains(&p) {
            return;
        }
        let Ok(m) = fs::symlink_metadata(p) else {
            return;
        };
        out.insert(
            p.to_path_buf(),
            format!(
                "{:o} {} {}.{} {:?}",
                m.mode(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                fs::read_link(p).ok()
            ),
        );
        if m.is_dir() {
            for e in fs::read_dir(p).expect("read_dir").flatten() {
                walk(&e.path(), skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, skip, &mut out);
    out
}

/// Paths added, removed or changed between two fingerprints.
fn changed_paths(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
) -> Vec<String> {
    let paths: BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter_map(|p| match (before.get(p), after.get(p)) {
            (Some(a), Some(b)) if a == b => None,
            (a, b) => Some(format!("{}: {a:?} -> {b:?}", p.display())),
        })
        .collect()
}

fn file_sha(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|d| sha256(&d))
}

// ----- the image of test (a) ---------------------------------------------------

const BASE_MTIME: u64 = 1_700_000_000;
const UPPER_MTIME: u64 = 1_700_100_000;
const THIRD_MTIME: u64 = 1_700_200_000;
const TOOL: &[u8] = b"#!/bin/sh\necho tool\n";

fn base_layer() -> Vec<u8> {
    let user_xattr: &[(&str, &[u8])] = &[("user.peapod", b"yes")];
    LayerTar::new(BASE_MTIME)
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/tool", TOOL, 0o4755)
        .hardlink("bin/tool-hardlink", "bin/tool")
        .file("bin/setgid", b"sg", 0o2711)
        .dir("etc/", 0o755)
        .file("etc/hostname", b"base\n", 0o644)
        .file_full("etc/secret", b"s3cret\n", 0o600, 1000, 1000, &[])
        .file_full("etc/tagged", b"xattr\n", 0o644, 0, 0, user_xattr)
        .file("etc/no-perms", b"", 0o000)
        .file("etc/gone-too", b"bye\n", 0o644)
        // A hard link pair no later layer touches.
        .file_full("etc/linked", b"two names\n", 0o640, 0, 42, &[])
        .hardlink("etc/linked-too", "etc/linked")
        .dir_owned("home/", 0o755, 0, 0)
        .dir_owned("home/user/", 0o750, 1000, 1000)
        .file_full("home/user/.profile", b"PS1=$\n", 0o640, 1000, 1000, &[])
        .dir("tmp/", 0o1777)
        .dir("dev/", 0o755)
        .device(tar::EntryType::Char, "dev/null", 1, 3)
        .device(tar::EntryType::Block, "dev/loop9", 7, 9)
        .fifo("dev/fifo", 0o620)
        .symlink("evil", "../../../etc")
        .dir("replace_me/", 0o755)
        .file("replace_me/a", b"a", 0o644)
        .dir("replace_me/sub/", 0o700)
        .file("replace_me/sub/b", b"b", 0o644)
        .file("file_to_dir", b"f", 0o644)
        .dir("opaque/", 0o755)
        .file("opaque/old1", b"1", 0o644)
        .dir("opaque/old-dir/", 0o755)
        .file("opaque/old-dir/deep", b"d", 0o644)
        .file("opaque/kept", b"old version", 0o644)
        .file("gone", b"bye\n", 0o644)
        // A parent that comes only implicitly (no directory entry).
        .file("implicit/dir/file", b"i", 0o644)
        .finish()
}

fn upper_layer() -> Vec<u8> {
    LayerTar::new(UPPER_MTIME)
        // Delete a file (twice: at the root and in a directory).
        .marker(".wh.gone")
        .marker("etc/.wh.gone-too")
        // Replace a directory with a file, and a file with a directory.
        .file("replace_me", b"now a file\n", 0o640)
        .dir("file_to_dir/", 0o711)
        .file("file_to_dir/inside", b"in", 0o644)
        // Make a directory opaque and re-add one file in it.
        .dir("opaque/", 0o755)
        .marker("opaque/.wh..wh..opq")
        .file("opaque/kept", b"new version", 0o644)
        // A new hard link to a base file: on an overlay-built layer the link
        // copies the file up, so the layer holds the file and the link.
        .file("bin/tool", TOOL, 0o4755)
        .hardlink("bin/tool-link2", "bin/tool")
        // A symlink chain, an absolute and a dangling symlink.
        .symlink("chain1", "chain2")
        .symlink("chain2", "bin/tool")
        .symlink("abs", "/etc/hostname")
        .symlink("dangling", "nowhere/at/all")
        .file("etc/hostname", b"upper\n", 0o644)
        .finish()
}

/// Writes through `evil -> ../../../etc` of the base layer.
fn third_layer() -> Vec<u8> {
    LayerTar::new(THIRD_MTIME)
        .file("evil/passwd", b"root::0:0:pwned:/root:/bin/sh\n", 0o644)
        .finish()
}

/// Differences that are known and accepted, with the reason. The test fails
/// on any other difference, and when one of these disappears (then remove
/// it here).
///
/// `evil/passwd` (a layer writes a path whose parent is, in a lower layer, a
/// symlink to `../../../etc`): umoci extracts all layers into one tree and
/// resolves the symlink inside the rootfs, so the file lands in the image's
/// own `/etc/passwd` and `evil` stays a symlink. peapod unpacks every layer
/// into its own directory (shared by every image with that layer, so it
/// cannot depend on the layers below): there `evil` does not exist, the
/// layer gets a directory `evil/` which, in the overlay, hides the lower
/// symlink. This is what Docker's and Podman's overlay drivers do too; the
/// host's /etc is safe either way (checked separately).
const KNOWN_DIFFERENCES: &[&str] = &[
    "/etc/passwd: only in umoci's rootfs (regular file)",
    "/evil: type: peapod directory, umoci symlink",
    "/evil: mode: peapod 0755, umoci 0777",
    "/evil: symlink target: peapod None, umoci Some(\"../../../etc\")",
    "/evil/passwd: only in peapod's rootfs (regular file)",
];

#[test]
fn merged_rootfs_matches_umoci_unpack() {
    if !support::require_tool(UMOCI, "umoci") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("peapod-umoci-")
        .tempdir()
        .expect("tempdir");
    let t = dir.path();
    let files = oci_layout(&[base_layer(), upper_layer(), third_layer()]);
    let layout = t.join("layout");
    write_layout(&files, &layout);
    let archive = layout_tar(&files);
    let store_root = t.join("store");
    let host_passwd = file_sha(Path::new("/etc/passwd"));

    // Import: nothing outside the store may change, the host's /etc least
    // of all. `../../../etc` from a layer dir (store/layers/<id>) is t/etc.
    fs::create_dir(&store_root).expect("store dir");
    let before = fingerprint(t, &[&store_root]);
    let store = ImageStore::open(&store_root).expect("open store");
    let rec = store
        .import(&archive[..], Some("localhost/umoci-compare"))
        .expect("import (the escaping entry must be contained, not fatal)")
        .remove(0);
    let changed = changed_paths(&before, &fingerprint(t, &[&store_root]));
    assert!(
        changed.is_empty(),
        "import changed files outside the store dir: {changed:#?}"
    );
    assert!(
        !t.join("etc").exists(),
        "a layer wrote through ../../../etc"
    );
    assert_eq!(
        file_sha(Path::new("/etc/passwd")),
        host_passwd,
        "host /etc/passwd changed"
    );

    // A fresh container: the image's layers and an empty rw dir.
    let layers = store.layer_dirs(&rec).expect("layer dirs");
    assert_eq!(layers.len(), 3);
    let rw = t.join("ctr/rw");
    let rootfs = t.join("ctr/rootfs");
    mount_rootfs(&layers, &rw, &rootfs).expect("mount rootfs");
    let guard = MountGuard(rootfs.clone());
    let ours = Tree::scan(&rootfs);

    let bundle = t.join("bundle");
    umoci_unpack(&layout, &bundle);
    let theirs = Tree::scan(&bundle.join("rootfs"));

    // Looking (without following symlinks) must not have copied anything up.
    let upper: Vec<_> = fs::read_dir(rw.join("upper"))
        .expect("upper")
        .flatten()
        .map(|e| e.path())
        .collect();
    drop(guard);
    assert!(!is_mounted(&rootfs), "rootfs still mounted");
    assert!(upper.is_empty(), "reading the rootfs wrote {upper:?}");

    let diffs = diff_trees(&ours, &theirs);
    let known: BTreeSet<&str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let found: BTreeSet<&str> = diffs.iter().map(String::as_str).collect();
    let unexpected: Vec<&&str> = found.difference(&known).collect();
    let gone: Vec<&&str> = known.difference(&found).collect();
    let mtimes = mtime_diffs(&ours, &theirs);
    eprintln!(
        "{} entries compared; known differences:\n  {}",
        ours.nodes.len(),
        KNOWN_DIFFERENCES.join("\n  ")
    );
    assert!(
        unexpected.is_empty() && gone.is_empty() && mtimes.is_empty(),
        "peapod's merged rootfs differs from umoci's:\n  {}\n\
         known differences that did not show:\n  {}\n\
         mtimes of non-directories:\n  {}",
        unexpected
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        mtimes.join("\n  ")
    );

    // Spot checks that the comparison saw what it should.
    for p in ["/bin/tool", "/bin/tool-hardlink", "/bin/tool-link2"] {
        assert_eq!(ours.nodes[p].mode, 0o4755, "{p}");
    }
    let groups = ours.hardlink_groups();
    for pair in [
        ["/etc/linked", "/etc/linked-too"],
        ["/bin/tool", "/bin/tool-link2"],
    ] {
        let pair: BTreeSet<String> = pair.iter().map(|s| s.to_string()).collect();
        assert!(groups.contains(&pair), "{pair:?} in {groups:?}");
    }
    assert_eq!(
        ours.nodes["/etc/tagged"].xattrs.get("user.peapod"),
        Some(&b"yes".to_vec())
    );
    assert!(!ours.nodes.contains_key("/gone"));
    assert!(!ours.nodes.contains_key("/opaque/old1"));
    assert_eq!(ours.nodes["/replace_me"].kind, "regular file");
    assert_eq!(
        file_sha(Path::new("/etc/passwd")),
        host_passwd,
        "host /etc/passwd changed"
    );
    assert!(
        !t.join("etc").exists(),
        "something wrote through ../../../etc"
    );
}

/// A hard link to a file only a lower layer has. Producers do not emit these
/// (OCI: a link whose other names are outside the changeset is not recorded
/// as a link; Docker's and BuildKit's differs write the file instead), and a
/// layer unpacked on its own cannot link to a file of another layer, so
/// peapod refuses the layer, clearly, and registers nothing. umoci, which
/// extracts every layer into one tree, accepts it.
#[test]
fn hard_link_into_a_lower_layer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = LayerTar::new(BASE_MTIME)
        .file("bin/tool", TOOL, 0o755)
        .finish();
    let upper = LayerTar::new(UPPER_MTIME)
        .hardlink("bin/tool-link", "bin/tool")
        .finish();
    let files = oci_layout(&[base, upper]);
    let store = ImageStore::open(&dir.path().join("store")).expect("store");
    let err = store
        .import(&layout_tar(&files)[..], Some("localhost/lower-link"))
        .expect_err("a hard link into a lower layer");
    match &err {
        ImageError::UnsafeLayerEntry { entry, reason, .. } => {
            assert_eq!(entry, "bin/tool-link");
            assert!(reason.contains("hard link target"), "{err}");
        }
        other => panic!("expected UnsafeLayerEntry, got {other:?}"),
    }
    assert!(store.list().expect("list").is_empty(), "nothing registered");
}

// ----- test (b): many layers, long paths -------------------------------------

#[test]
fn image_of_128_layers_mounts_under_a_long_store_root() {
    const N: usize = 128;
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 characters of path component between the tempdir and the store.
    let long = format!("long-store-root-{}", "x".repeat(100 - 16));
    assert_eq!(long.len(), 100);
    let store_root = dir.path().join(long).join("store");
    let store = ImageStore::open(&store_root).expect("store");

    let layers: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            LayerTar::new(BASE_MTIME)
                .file(&format!("layer-{i}"), format!("{i}\n").as_bytes(), 0o644)
                .finish()
        })
        .collect();
    let files = oci_layout(&layers);
    let rec = store
        .import(&layout_tar(&files)[..], Some("localhost/many-layers"))
        .expect("import")
        .remove(0);
    let layer_dirs = store.layer_dirs(&rec).expect("layer dirs");
    assert_eq!(layer_dirs.len(), N);

    let rw = dir.path().join("rw");
    let (upper, work) = (rw.join("upper"), rw.join("work"));
    match overlay_options(&layer_dirs, Some((&upper, &work))) {
        Err(ImageError::Unsupported(_)) => {}
        other => panic!("the option string should be over a page: {other:?}"),
    }

    let check = |target: &Path| {
        for i in 0..N {
            let p = target.join(format!("layer-{i}"));
            assert_eq!(
                fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
                format!("{i}\n")
            );
        }
        let mut names: Vec<String> = fs::read_dir(target)
            .expect("read rootfs")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), N, "{names:?}");
    };

    let target = dir.path().join("rootfs");
    mount_rootfs(&layer_dirs, &rw, &target).expect("mount 128 layers");
    {
        let _guard = MountGuard(target.clone());
        assert!(is_mounted(&target));
        check(&target);
        fs::write(target.join("written"), b"w").expect("write to the rootfs");
        assert!(upper.join("written").is_file(), "write lands in upper");
    }
    assert!(!is_mounted(&target), "unmounted");
    assert_eq!(
        fs::read_dir(&target).expect("target").count(),
        0,
        "target empty after unmount"
    );

    let ro = dir.path().join("ro");
    mount_rootfs_readonly(&layer_dirs, &ro).expect("read-only mount of 128 layers");
    {
        let _guard = MountGuard(ro.clone());
        check(&ro);
        assert!(fs::write(ro.join("x"), b"x").is_err(), "read-only");
    }
    assert!(!is_mounted(&ro), "unmounted");
    assert_eq!(fs::read_dir(&ro).expect("ro").count(), 0);
}
