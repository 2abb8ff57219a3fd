//! Tests against the real file system (they run as root): archives are built
//! here with the tar crate, imported, unpacked and mounted.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::unpack::lgetxattr;
use crate::*;

// ----- tools -----------------------------------------------------------------

/// Whether `tool` (a path, or a name looked up in `PATH`) is installed. When
/// it is not, the test fails under CI (`CI` set to anything but empty, `0`
/// or `false`); elsewhere this prints that the test (or its part) is
/// skipped, and the test returns early:
/// `if !require_tool("/bin/busybox", "busybox-static") { return; }`.
pub(crate) fn require_tool(tool: &str, package: &str) -> bool {
    let found = if tool.contains('/') {
        Path::new(tool).exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).exists()))
    };
    if found {
        return true;
    }
    let msg = format!("{tool} missing (apt-get install {package})");
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
        panic!("{msg}; CI must not skip this test");
    }
    eprintln!("skipping: {msg}");
    false
}

// ----- archive builders ------------------------------------------------------

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    /// path, content, mode, uid, gid, mtime, xattrs
    FileFull(
        &'a str,
        &'a [u8],
        u32,
        u64,
        u64,
        u64,
        &'a [(&'a str, &'a [u8])],
    ),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDev(&'a str, u32, u32),
    Fifo(&'a str),
    /// A header whose name bytes are written raw (no validation).
    RawName(&'a str, &'a [u8]),
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(p, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, p, &[][..]).expect("dir");
            }
            E::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, p, *data).expect("file");
            }
            E::FileFull(p, data, mode, uid, gid, mtime, xattrs) => {
                if !xattrs.is_empty() {
                    let keys: Vec<(String, &[u8])> = xattrs
                        .iter()
                        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                        .collect();
                    b.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                        .expect("pax");
                }
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_mtime(*mtime);
                b.append_data(&mut h, p, *data).expect("file");
            }
            E::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, target).expect("symlink");
            }
            E::HardLink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, p, target).expect("hardlink");
            }
            E::CharDev(p, major, minor) => {
                let mut h = header(tar::EntryType::Char, 0o666, 0);
                h.set_device_major(*major).expect("major");
                h.set_device_minor(*minor).expect("minor");
                b.append_data(&mut h, p, &[][..]).expect("chardev");
            }
            E::Fifo(p) => {
                let mut h = header(tar::EntryType::Fifo, 0o600, 0);
                b.append_data(&mut h, p, &[][..]).expect("fifo");
            }
            E::RawName(name, data) => {
                let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
                let gnu = h.as_gnu_mut().expect("gnu header");
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, *data).expect("raw");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub(crate) fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer as stored (maybe compressed) and its diff id.
pub(crate) struct Layer {
    pub(crate) blob: Vec<u8>,
    pub(crate) diff_id: String,
    pub(crate) media: &'static str,
}

pub(crate) fn plain(tar: Vec<u8>) -> Layer {
    Layer {
        diff_id: sha(&tar),
        blob: tar,
        media: "application/vnd.oci.image.layer.v1.tar",
    }
}

pub(crate) fn gz(tar: Vec<u8>) -> Layer {
    Layer {
        diff_id: sha(&tar),
        blob: gzip(&tar),
        media: "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

fn config_json(layers: &[&Layer], extra: serde_json::Value) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let mut c = json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": extra,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if c["config"].is_null() {
        c.as_object_mut().expect("object").remove("config");
    }
    serde_json::to_vec(&c).expect("config json")
}

pub(crate) fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).expect("append");
}

pub(crate) struct OciImage<'a> {
    pub(crate) layers: Vec<&'a Layer>,
    pub(crate) config: Vec<u8>,
    pub(crate) annotations: BTreeMap<&'a str, &'a str>,
}

/// Returns (archive, manifest digests).
pub(crate) fn oci_archive(images: &[OciImage]) -> (Vec<u8>, Vec<String>) {
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index = Vec::new();
    let mut digests = Vec::new();
    for img in images {
        let config_digest = sha(&img.config);
        blobs.insert(config_digest.clone(), img.config.clone());
        let layers: Vec<serde_json::Value> = img
            .layers
            .iter()
            .map(|l| {
                blobs.insert(sha(&l.blob), l.blob.clone());
                json!({"mediaType": l.media, "digest": sha(&l.blob), "size": l.blob.len()})
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": img.config.len()},
            "layers": layers,
        }))
        .expect("manifest");
        let md = sha(&manifest);
        index.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": manifest.len(),
            "annotations": img.annotations,
        }));
        digests.push(md.clone());
        blobs.insert(md, manifest);
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": index})).expect("index");
    add_file(&mut b, "index.json", &index);
    for (d, data) in &blobs {
        add_file(&mut b, &format!("blobs/sha256/{}", &d[7..]), data);
    }
    (b.into_inner().expect("tar"), digests)
}

/// A `docker save` archive (old layout: <id>/layer.tar, <hex>.json).
fn docker_archive(layers: &[&Layer], config: &[u8], tags: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let config_name = format!("{}.json", &sha(config)[7..]);
    let mut layer_paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("{:064x}/layer.tar", i + 1);
        add_file(&mut b, &p, &l.blob);
        layer_paths.push(p);
    }
    add_file(&mut b, &config_name, config);
    let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": layer_paths}]);
    add_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    b.into_inner().expect("tar")
}

// ----- fixtures ------------------------------------------------------------

fn base_layer() -> Layer {
    let xattrs: &[(&str, &[u8])] = &[("user.peapod", b"yes")];
    plain(layer_tar(&[
        E::Dir("./", 0o755),
        E::Dir("bin/", 0o755),
        E::File("bin/tool", b"#!/bin/sh\necho tool\n", 0o4755),
        E::HardLink("bin/tool2", "bin/tool"),
        E::Dir("etc/", 0o755),
        E::File("etc/hostname", b"base\n", 0o644),
        E::FileFull("etc/owned", b"x", 0o640, 1000, 1001, 1_234_567, xattrs),
        E::Symlink("escape", "../../../etc"),
        E::Symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        E::Dir("dev/", 0o755),
        E::CharDev("dev/null", 1, 3),
        E::Fifo("dev/fifo"),
        E::Dir("opq/", 0o755),
        E::File("opq/old", b"old", 0o644),
        E::File("gone", b"bye", 0o644),
        E::Dir("keep/", 0o700),
        E::File("keep/a", b"a", 0o600),
        // A parent directory that comes only implicitly.
        E::File("implicit/dir/file", b"i", 0o644),
    ]))
}

fn top_layer() -> Layer {
    gz(layer_tar(&[
        E::File(".wh.gone", b"", 0o644),
        E::Dir("opq/", 0o755),
        E::File("opq/.wh..wh..opq", b"", 0o644),
        E::File("opq/new", b"new", 0o644),
        E::File("etc/hostname", b"top\n", 0o644),
        E::File(".wh..wh..plnk", b"", 0o644),
    ]))
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("store")).expect("open store");
    (dir, store)
}

pub(crate) fn annotations<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

// ----- tests -----------------------------------------------------------------

#[test]
fn open_creates_layout() {
    let (_d, s) = store();
    for sub in ["blobs/sha256", "layers", "images", "tmp"] {
        assert!(s.root().join(sub).is_dir(), "{sub}");
    }
    assert!(s.list().expect("list").is_empty());
}

#[test]
fn import_oci_layout_and_unpack() {
    let (_d, s) = store();
    let (l1, l2) = (base_layer(), top_layer());
    let config = config_json(
        &[&l1, &l2],
        json!({"Entrypoint": ["/bin/tool"], "Cmd": ["-v"], "Env": ["PATH=/bin", "A=b"],
               "WorkingDir": "/srv", "User": "1000:1000",
               "ExposedPorts": {"8080/tcp": {}}, "StopSignal": "SIGQUIT",
               "Labels": {"k": "v"}}),
    );
    let (archive, digests) = oci_archive(&[OciImage {
        layers: vec![&l1, &l2],
        config: config.clone(),
        annotations: annotations(&[
            ("io.containerd.image.name", "localhost/test/img:v1"),
            ("org.opencontainers.image.ref.name", "v1"),
        ]),
    }]);
    let recs = s.import(&archive[..], None).expect("import");
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.name, "localhost/test/img:v1");
    assert_eq!(rec.digest, digests[0]);
    assert_eq!(rec.config_digest, sha(&config));
    assert_eq!(rec.layers, vec![sha(&l1.blob), sha(&l2.blob)]);
    assert_eq!(rec.diff_ids, vec![l1.diff_id.clone(), l2.diff_id.clone()]);
    assert_eq!(
        rec.size,
        (config.len() + l1.blob.len() + l2.blob.len()) as u64
    );
    assert_eq!(rec.created.as_deref(), Some("2024-01-02T03:04:05Z"));

    // Blobs are in the store; staging is gone.
    for d in rec.layers.iter().chain([&rec.digest, &rec.config_digest]) {
        assert!(s.has_blob(d), "{d}");
    }
    assert_eq!(fs::read_dir(s.root().join("tmp")).expect("tmp").count(), 0);

    // Lookups.
    assert_eq!(
        s.get("localhost/test/img:v1").expect("get").as_ref(),
        Some(rec)
    );
    assert_eq!(s.get(&rec.digest).expect("get").as_ref(), Some(rec));
    assert_eq!(s.get(&rec.digest[7..19]).expect("get").as_ref(), Some(rec));
    assert_eq!(
        s.get(&rec.config_digest[..15]).expect("get").as_ref(),
        Some(rec)
    );
    assert_eq!(
        s.get(&format!("localhost/test/img@{}", rec.digest))
            .expect("get")
            .as_ref(),
        Some(rec)
    );
    assert_eq!(s.get("localhost/test/img:v2").expect("get"), None);
    assert_eq!(s.get("busybox").expect("get"), None);
    assert_eq!(s.list().expect("list"), recs);

    let cfg = s.config(rec).expect("config");
    assert_eq!(cfg.entrypoint, vec!["/bin/tool"]);
    assert_eq!(cfg.cmd, vec!["-v"]);
    assert_eq!(cfg.env, vec!["PATH=/bin", "A=b"]);
    assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
    assert_eq!(cfg.user.as_deref(), Some("1000:1000"));
    assert_eq!(cfg.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(cfg.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(cfg.labels.get("k").map(String::as_str), Some("v"));

    let dirs = s.layer_dirs(rec).expect("layer dirs");
    assert_eq!(dirs.len(), 2);
    assert_eq!(dirs[0], s.root().join("layers").join(&l1.diff_id[7..19]));
    let (base, top) = (&dirs[0], &dirs[1]);

    // Modes, setuid, ownership, mtimes, xattrs.
    let m = fs::metadata(base.join("bin/tool")).expect("tool");
    assert_eq!(m.mode() & 0o7777, 0o4755);
    let owned = fs::metadata(base.join("etc/owned")).expect("owned");
    assert_eq!((owned.uid(), owned.gid()), (1000, 1001));
    assert_eq!(owned.mode() & 0o7777, 0o640);
    assert_eq!(owned.mtime(), 1_234_567);
    assert_eq!(
        lgetxattr(&base.join("etc/owned"), "user.peapod").expect("xattr"),
        Some(b"yes".to_vec())
    );
    assert_eq!(
        fs::metadata(base.join("keep")).expect("keep").mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(base.join("keep")).expect("keep").mtime(),
        1_700_000_000
    );
    assert_eq!(
        fs::read(base.join("implicit/dir/file")).expect("implicit"),
        b"i"
    );
    // Hard link shares the inode.
    let t2 = fs::metadata(base.join("bin/tool2")).expect("tool2");
    assert_eq!(t2.ino(), m.ino());
    assert_eq!(t2.nlink(), 2);
    // Symlinks are kept verbatim, never followed.
    assert_eq!(
        fs::read_link(base.join("escape")).expect("link"),
        PathBuf::from("../../../etc")
    );
    assert_eq!(
        fs::read_link(base.join("etc/localtime")).expect("link"),
        PathBuf::from("/usr/share/zoneinfo/UTC")
    );
    // Device nodes and FIFOs.
    let null = fs::symlink_metadata(base.join("dev/null")).expect("null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert!(fs::symlink_metadata(base.join("dev/fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());

    // Whiteouts in overlay format.
    let wh = fs::symlink_metadata(top.join("gone")).expect("whiteout");
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!top.join(".wh.gone").exists());
    assert_eq!(
        lgetxattr(&top.join("opq"), "trusted.overlay.opaque").expect("xattr"),
        Some(b"y".to_vec())
    );
    assert!(!top.join("opq/.wh..wh..opq").exists());
    assert!(!top.join(".wh..wh..plnk").exists());
    assert_eq!(fs::read(top.join("opq/new")).expect("new"), b"new");
    assert_eq!(
        lgetxattr(&base.join("opq"), "trusted.overlay.opaque").expect("x"),
        None
    );

    // Importing again reuses everything and is idempotent.
    let again = s.import(&archive[..], None).expect("re-import");
    assert_eq!(again, recs);
    assert_eq!(s.list().expect("list").len(), 1);
}

#[test]
fn names_from_tag_annotation_and_given_name() {
    let (_d, s) = store();
    let l1 = plain(layer_tar(&[E::File("f", b"1", 0o644)]));
    let config = config_json(&[&l1], serde_json::Value::Null);
    let (archive, _) = oci_archive(&[OciImage {
        layers: vec![&l1],
        config: config.clone(),
        annotations: annotations(&[("org.opencontainers.image.ref.name", "v2")]),
    }]);
    // A bare tag alone is not a name.
    match s.import(&archive[..], None) {
        Err(ImageError::NoImageName) => {}
        other => panic!("expected NoImageName, got {other:?}"),
    }
    assert_eq!(
        ImageError::NoImageName.to_string(),
        "archive has no image name; pass --name"
    );
    assert!(s.list().expect("list").is_empty());

    let recs = s
        .import(&archive[..], Some("example.com/app"))
        .expect("import");
    let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["example.com/app:v2"]);
    // An explicit tag in the given name wins.
    let recs = s
        .import(&archive[..], Some("example.com/app:mine"))
        .expect("import");
    assert_eq!(recs[0].name, "example.com/app:mine");

    // No config section at all: empty ImageConfig.
    assert_eq!(s.config(&recs[0]).expect("config"), ImageConfig::default());

    // A full reference in ref.name is a name.
    let (archive, _) = oci_archive(&[OciImage {
        layers: vec![&l1],
        config,
        annotations: annotations(&[("org.opencontainers.image.ref.name", "busybox:1")]),
    }]);
    let recs = s.import(&archive[..], None).expect("import");
    assert_eq!(recs[0].name, "docker.io/library/busybox:1");

    // remove: by name, then by id.
    s.remove("busybox:1").expect("remove");
    assert!(s.get("busybox:1").expect("get").is_none());
    assert_eq!(s.list().expect("list").len(), 2);
    let id = recs[0].config_digest[7..19].to_string();
    s.remove(&id).expect("remove by id");
    assert!(s.list().expect("list").is_empty());
    assert!(matches!(
        s.remove("busybox:1"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn import_docker_save_shares_layers() {
    let (_d, s) = store();
    let l1 = base_layer();
    let l2 = plain(layer_tar(&[E::File("extra", b"docker", 0o644)]));
    let config = config_json(&[&l1, &l2], json!({"Cmd": ["sh"]}));
    let archive = docker_archive(&[&l1, &l2], &config, &["busybox:latest", "localhost/x/y:z"]);
    let recs = s.import(&archive[..], None).expect("import docker");
    let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["docker.io/library/busybox:latest", "localhost/x/y:z"]
    );
    assert_eq!(recs[0].digest, recs[1].digest);
    assert_eq!(recs[0].layers, vec![l1.diff_id.clone(), l2.diff_id.clone()]);
    // The synthesised manifest is a stored OCI manifest.
    let manifest: serde_json::Value =
        serde_json::from_slice(&s.read_blob(&recs[0].digest).expect("manifest")).expect("json");
    assert_eq!(manifest["config"]["digest"], json!(sha(&config)));
    assert_eq!(s.config(&recs[0]).expect("config").cmd, vec!["sh"]);
    let dirs = s.layer_dirs(&recs[0]).expect("dirs");
    assert_eq!(fs::read(dirs[1].join("extra")).expect("extra"), b"docker");

    // The same base layer, gzip-compressed inside an OCI archive: same
    // diff id, so the unpacked directory is shared.
    let l1gz = gz(l1.blob.clone());
    assert_eq!(l1gz.diff_id, l1.diff_id);
    let config2 = config_json(&[&l1gz], serde_json::Value::Null);
    let (archive, _) = oci_archive(&[OciImage {
        layers: vec![&l1gz],
        config: config2,
        annotations: annotations(&[("io.containerd.image.name", "localhost/gz:1")]),
    }]);
    let recs2 = s.import(&archive[..], None).expect("import gz");
    assert_eq!(s.layer_dirs(&recs2[0]).expect("dirs")[0], dirs[0]);
    assert_eq!(s.list().expect("list").len(), 3);
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_registered() {
    let (_d, s) = store();
    let l1 = plain(layer_tar(&[E::File("f", b"good", 0o644)]));
    let config = config_json(&[&l1], serde_json::Value::Null);
    let (archive, _) = oci_archive(&[OciImage {
        layers: vec![&l1],
        config,
        annotations: annotations(&[("io.containerd.image.name", "localhost/bad:1")]),
    }]);
    // Flip the layer's content ("good" -> "evil") in place.
    let pos = archive
        .windows(4)
        .position(|w| w == b"good")
        .expect("layer content in archive");
    let mut bad = archive.clone();
    bad[pos..pos + 4].copy_from_slice(b"evil");
    match s.import(&bad[..], None) {
        Err(ImageError::DigestMismatch { expected, .. }) => assert_eq!(expected, sha(&l1.blob)),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(s.list().expect("list").is_empty());
    assert!(!s.has_blob(&sha(&l1.blob)));
    assert_eq!(fs::read_dir(s.root().join("tmp")).expect("tmp").count(), 0);
    assert_eq!(
        fs::read_dir(s.root().join("layers"))
            .expect("layers")
            .count(),
        0
    );

    // A layer whose content does not match the config's diff id (docker
    // layout: layers are not named by digest, the diff id catches it).
    let wrong = Layer {
        diff_id: sha(b"something else"),
        blob: l1.blob.clone(),
        media: l1.media,
    };
    let config = config_json(&[&wrong], serde_json::Value::Null);
    let archive = docker_archive(&[&wrong], &config, &["localhost/bad:2"]);
    match s.import(&archive[..], None) {
        Err(ImageError::DiffIdMismatch { actual, .. }) => assert_eq!(actual, l1.diff_id),
        other => panic!("expected DiffIdMismatch, got {other:?}"),
    }
    assert!(s.list().expect("list").is_empty());
    assert_eq!(
        fs::read_dir(s.root().join("layers"))
            .expect("layers")
            .count(),
        0
    );

    // A size that disagrees with the expected one.
    let good = plain(layer_tar(&[E::File("f", b"size", 0o644)]));
    match s.put_blob(&sha(&good.blob), Some(1), &good.blob[..]) {
        Err(ImageError::SizeMismatch { expected: 1, .. }) => {}
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
    assert!(!s.has_blob(&sha(&good.blob)));
}

#[test]
fn unsafe_entries_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "through symlink",
            layer_tar(&[
                E::Symlink("escape", "../../../../../../../../tmp"),
                E::File("escape/peapod-evil", b"x", 0o644),
            ]),
        ),
        (
            "absolute symlink parent",
            layer_tar(&[
                E::Symlink("etc", "/etc"),
                E::File("etc/peapod-evil", b"x", 0o644),
            ]),
        ),
        (
            "dotdot",
            layer_tar(&[E::RawName("a/../../peapod-evil", b"x")]),
        ),
        (
            "absolute",
            layer_tar(&[E::RawName("/tmp/peapod-evil", b"x")]),
        ),
        (
            "hardlink out",
            layer_tar(&[E::Symlink("up", "/etc"), E::HardLink("pw", "up/passwd")]),
        ),
    ];
    for (what, tar) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("layer");
        fs::create_dir(&dest).expect("mkdir");
        let res = unpack_layer(&tar[..], &dest, what);
        assert!(
            matches!(res, Err(ImageError::UnsafeLayerEntry { .. })),
            "{what}: {res:?}"
        );
        assert!(!Path::new("/tmp/peapod-evil").exists(), "{what}");
        assert!(!Path::new("/etc/peapod-evil").exists(), "{what}");
        assert!(!dir.path().join("peapod-evil").exists(), "{what}");
    }
    // A symlink whose target stays inside the layer may be a parent.
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = layer_tar(&[
        E::Dir("usr/lib/", 0o755),
        E::Symlink("lib", "usr/lib"),
        E::File("lib/x.so", b"so", 0o644),
    ]);
    unpack_layer(&tar[..], dir.path(), "inside").expect("inside symlink");
    assert_eq!(
        fs::read(dir.path().join("usr/lib/x.so")).expect("x.so"),
        b"so"
    );
}

#[test]
fn unpack_detects_compression_and_computes_diff_id() {
    let tar = layer_tar(&[E::File("a", b"zstd!", 0o644)]);
    let diff = sha(&tar);
    for (blob, c) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (
            zstd::encode_all(&tar[..], 3).expect("zstd"),
            Compression::Zstd,
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let u = unpack_layer(&blob[..], dir.path(), "c").expect("unpack");
        assert_eq!(u.compression, c);
        assert_eq!(u.diff_id, diff);
        assert_eq!(u.uncompressed_size, tar.len() as u64);
        assert_eq!(fs::read(dir.path().join("a")).expect("a"), b"zstd!");
    }
}

#[test]
fn whiteout_then_directory_becomes_opaque() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = layer_tar(&[
        E::File(".wh.d", b"", 0o644),
        E::Dir("d/", 0o755),
        E::File("d/new", b"n", 0o644),
        E::Dir("e/", 0o755),
        E::File(".wh.e", b"", 0o644),
        // Later entries replace earlier ones of the same layer.
        E::File("f", b"1", 0o644),
        E::Dir("f/", 0o755),
        E::File("g", b"1", 0o644),
        E::File("g", b"2", 0o644),
    ]);
    unpack_layer(&tar[..], dir.path(), "wh").expect("unpack");
    let p = dir.path();
    assert_eq!(
        lgetxattr(&p.join("d"), "trusted.overlay.opaque").expect("x"),
        Some(b"y".to_vec())
    );
    assert_eq!(
        lgetxattr(&p.join("e"), "trusted.overlay.opaque").expect("x"),
        Some(b"y".to_vec())
    );
    assert!(p.join("f").is_dir());
    assert_eq!(fs::read(p.join("g")).expect("g"), b"2");
}

/// Overlay of two real layers: merged view, whiteout, opaque dir, writes to
/// the upper dir; then read-only mounts.
#[test]
fn mount_overlay_of_two_layers() {
    let (d, s) = store();
    let (l1, l2) = (base_layer(), top_layer());
    let config = config_json(&[&l1, &l2], serde_json::Value::Null);
    let (archive, _) = oci_archive(&[OciImage {
        layers: vec![&l1, &l2],
        config,
        annotations: annotations(&[("io.containerd.image.name", "localhost/m:1")]),
    }]);
    let rec = s.import(&archive[..], None).expect("import").remove(0);
    let layers = s.layer_dirs(&rec).expect("dirs");

    let target = d.path().join("rootfs");
    let rw = d.path().join("rw");
    mount_rootfs(&layers, &rw, &target).expect("mount");
    let checks = (|| -> Result<(), String> {
        let read = |p: &str| fs::read(target.join(p)).map_err(|e| format!("{p}: {e}"));
        if read("etc/hostname")? != b"top\n" {
            return Err("etc/hostname should come from the top layer".into());
        }
        if read("bin/tool")? != b"#!/bin/sh\necho tool\n" {
            return Err("bin/tool should come from the base layer".into());
        }
        if target.join("gone").exists() || fs::symlink_metadata(target.join("gone")).is_ok() {
            return Err("whiteout should hide 'gone'".into());
        }
        if target.join("opq/old").exists() {
            return Err("opaque dir should hide opq/old".into());
        }
        if read("opq/new")? != b"new" {
            return Err("opq/new missing".into());
        }
        fs::write(target.join("written"), b"w").map_err(|e| e.to_string())?;
        if !rw.join("upper/written").exists() {
            return Err("write should land in the upper dir".into());
        }
        fs::remove_file(target.join("etc/owned")).map_err(|e| e.to_string())?;
        if !layers[0].join("etc/owned").exists() {
            return Err("deleting in the merged view must not touch the layer".into());
        }
        Ok(())
    })();
    unmount(&target).expect("unmount");
    checks.expect("merged view");
    assert!(!target.join("etc/hostname").exists(), "unmounted");
    // Unmounting again is fine; so is a path that does not exist.
    unmount(&target).expect("unmount twice");
    unmount(&d.path().join("nope")).expect("unmount missing");

    // Read-only: overlay of lower dirs only.
    let ro = d.path().join("ro");
    mount_rootfs_readonly(&layers, &ro).expect("ro mount");
    let r = (
        fs::read(ro.join("etc/hostname")),
        fs::write(ro.join("x"), b"x"),
    );
    unmount(&ro).expect("unmount ro");
    assert_eq!(r.0.expect("read"), b"top\n");
    assert!(r.1.is_err(), "read-only overlay must refuse writes");

    // Read-only with one layer: a read-only bind mount.
    mount_rootfs_readonly(&layers[..1], &ro).expect("ro bind");
    let r = (fs::read(ro.join("opq/old")), fs::write(ro.join("x"), b"x"));
    unmount(&ro).expect("unmount ro bind");
    assert_eq!(r.0.expect("read"), b"old");
    assert!(r.1.is_err(), "read-only bind must refuse writes");
    assert!(!layers[0].join("x").exists());
}

#[test]
fn overlay_option_string() {
    let layers = vec![
        PathBuf::from("/s/layers/aaa"),
        PathBuf::from("/s/layers/bbb"),
    ];
    assert_eq!(
        overlay_options(&layers, Some((Path::new("/r/upper"), Path::new("/r/work"))))
            .expect("opts"),
        "lowerdir=/s/layers/bbb:/s/layers/aaa,upperdir=/r/upper,workdir=/r/work,index=off"
    );
    assert_eq!(
        overlay_options(&layers, None).expect("opts"),
        "lowerdir=/s/layers/bbb:/s/layers/aaa"
    );
    assert!(overlay_options(&[PathBuf::from("/a:b")], None).is_err());
    let many: Vec<PathBuf> = (0..200)
        .map(|i| PathBuf::from(format!("/var/lib/peapod/images/layers/{i:012}")))
        .collect();
    assert!(matches!(
        overlay_options(&many, None),
        Err(ImageError::Unsupported(_))
    ));
}

/// The images scripts/build-test-images.sh builds from the host's
/// busybox-static: imported, layers shared, mounted, and a program run in
/// them with chroot.
#[test]
fn imports_script_built_test_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-images.sh");
    if !require_tool("/bin/busybox", "busybox-static") {
        return;
    }
    let (d, s) = store();
    let out = d.path().join("images");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("run build-test-images.sh");
    assert!(status.success(), "build-test-images.sh failed: {status}");

    let bb = s
        .import(
            fs::File::open(out.join("busybox.tar")).expect("busybox.tar"),
            None,
        )
        .expect("import busybox");
    let httpd = s
        .import(
            fs::File::open(out.join("httpd.tar")).expect("httpd.tar"),
            None,
        )
        .expect("import httpd");
    assert_eq!(bb[0].name, "localhost/peapod/busybox:latest");
    assert_eq!(httpd[0].name, "localhost/peapod/httpd:latest");
    assert_eq!(bb[0].layers[0], httpd[0].layers[0], "base layer shared");
    let layer_dirs = fs::read_dir(s.root().join("layers"))
        .expect("layers")
        .filter(|e| e.as_ref().map(|e| e.path().is_dir()).unwrap_or(false))
        .count();
    assert_eq!(layer_dirs, 2);

    let cfg = s.config(&bb[0]).expect("config");
    assert_eq!(cfg.cmd, vec!["sh"]);
    assert_eq!(
        cfg.env,
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    let cfg = s.config(&httpd[0]).expect("config");
    assert_eq!(
        cfg.entrypoint,
        vec!["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
    );
    assert_eq!(cfg.working_dir.as_deref(), Some("/www"));
    assert_eq!(cfg.exposed_ports, vec!["8080/tcp"]);

    let layers = s.layer_dirs(&httpd[0]).expect("dirs");
    let base = &layers[0];
    assert_eq!(
        fs::metadata(base.join("tmp")).expect("tmp").mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::read_link(base.join("bin/sh")).expect("sh"),
        PathBuf::from("busybox")
    );

    let target = d.path().join("rootfs");
    mount_rootfs(&layers, &d.path().join("rw"), &target).expect("mount");
    let run = |args: &[&str]| {
        std::process::Command::new("chroot")
            .arg(&target)
            .args(args)
            .output()
    };
    let index = run(&["/bin/cat", "/www/index.html"]);
    let health = run(&["/bin/sh", "-c", "cat /www/healthz; echo hi > /tmp/x"]);
    let passwd = run(&["/bin/grep", "^app:x:1000:", "/etc/passwd"]);
    unmount(&target).expect("unmount");
    let index = index.expect("chroot cat");
    assert_eq!(
        String::from_utf8_lossy(&index.stdout),
        "hello from peapod\n"
    );
    let health = health.expect("chroot sh");
    assert!(health.status.success(), "{health:?}");
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n");
    assert!(passwd.expect("grep").status.success());
    assert_eq!(
        fs::read(d.path().join("rw/upper/tmp/x")).expect("upper"),
        b"hi\n"
    );

    // Archives written by another tool (skopeo), when it is installed: a
    // docker-archive (layers behind symlinks, names in RepoTags) and an OCI
    // archive whose ref.name is a full reference.
    if !require_tool("skopeo", "skopeo") {
        return;
    }
    let src = format!("oci-archive:{}", out.join("httpd.tar").display());
    let docker = out.join("docker.tar");
    let oci = out.join("oci.tar");
    for dst in [
        format!("docker-archive:{}:example.com/web:v3", docker.display()),
        format!("oci-archive:{}:web:v4", oci.display()),
    ] {
        let st = std::process::Command::new("skopeo")
            .args(["copy", "-q", &src, &dst])
            .status()
            .expect("skopeo");
        assert!(st.success(), "skopeo copy to {dst}");
    }
    let recs = s
        .import(fs::File::open(&docker).expect("docker.tar"), None)
        .expect("import docker-archive");
    assert_eq!(recs[0].name, "example.com/web:v3");
    assert_eq!(recs[0].config_digest, httpd[0].config_digest);
    assert_eq!(recs[0].diff_ids, httpd[0].diff_ids);
    assert_eq!(s.layer_dirs(&recs[0]).expect("dirs"), layers);
    let recs = s
        .import(fs::File::open(&oci).expect("oci.tar"), None)
        .expect("import skopeo oci-archive");
    assert_eq!(recs[0].name, "docker.io/library/web:v4");
    assert_eq!(recs[0].digest, httpd[0].digest);
}
