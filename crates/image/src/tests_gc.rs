//! Tests of image removal, prune, garbage collection and export, against the
//! real file system (they run as root: overlay mounts, immutable flags).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::tests::{annotations, gz, oci_archive, plain, sha, Layer, OciImage};
use crate::*;

// ----- fixtures ----------------------------------------------------------------

enum Ent<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
}

fn layer_tar(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (kind, path, data, mode) = match e {
            Ent::Dir(p, m) => (tar::EntryType::Directory, *p, &[][..], *m),
            Ent::File(p, d, m) => (tar::EntryType::Regular, *p, *d, *m),
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data).expect("append");
    }
    b.into_inner().expect("tar")
}

fn zst(tar: Vec<u8>) -> Layer {
    Layer {
        diff_id: sha(&tar),
        blob: zstd::encode_all(&tar[..], 3).expect("zstd"),
        media: "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// A shared base (plain tar, with a read-only directory), and two tops.
fn base() -> Layer {
    plain(layer_tar(&[
        Ent::Dir("etc/", 0o755),
        Ent::File("etc/os-release", b"base\n", 0o644),
        Ent::Dir("ro/", 0o755),
        Ent::File("ro/file", b"ro", 0o444),
        Ent::Dir("ro/sub/", 0o555),
        Ent::File("ro/sub/deep", b"deep", 0o444),
        Ent::Dir("ro/", 0o555),
    ]))
}
fn top_a() -> Layer {
    gz(layer_tar(&[Ent::File("a", b"A\n", 0o644)]))
}
fn top_b() -> Layer {
    zst(layer_tar(&[
        Ent::File("b", b"B\n", 0o644),
        Ent::File("etc/os-release", b"b\n", 0o644),
    ]))
}

fn config(layers: &[&Layer], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    serde_json::to_vec(&json!({
        "created": "2024-01-02T03:04:05Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config")
}

fn store_at(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("store")).expect("open store")
}

fn never(_: &ImageRecord) -> bool {
    false
}

/// A store holding image A (`localhost/t/a:1`) and image B
/// (`localhost/t/b:1`, `docker.io/library/tst:v1`), sharing the base layer.
struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
    base: Layer,
    a: Layer,
    b: Layer,
    a_config: Vec<u8>,
    b_config: Vec<u8>,
    a_digest: String,
    b_digest: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(dir.path());
    let (base, a, b) = (base(), top_a(), top_b());
    let a_config = config(&[&base, &a], "a");
    let b_config = config(&[&base, &b], "b");
    // Every name is an index entry; image b has two.
    fn image<'a>(layers: Vec<&'a Layer>, config: &[u8], name: &'a str) -> OciImage<'a> {
        OciImage {
            layers,
            config: config.to_vec(),
            annotations: annotations(&[("io.containerd.image.name", name)]),
        }
    }
    let (archive, digests) = oci_archive(&[
        image(vec![&base, &a], &a_config, "localhost/t/a:1"),
        image(vec![&base, &b], &b_config, "localhost/t/b:1"),
        image(vec![&base, &b], &b_config, "docker.io/library/tst:v1"),
    ]);
    store.import(&archive[..], None).expect("import");
    Fixture {
        dir,
        store,
        base,
        a,
        b,
        a_config,
        b_config,
        a_digest: digests[0].clone(),
        b_digest: digests[1].clone(),
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn blob_names(s: &ImageStore) -> Vec<String> {
    names_in(&s.root().join("blobs/sha256"))
}

fn layer_names(s: &ImageStore) -> Vec<String> {
    names_in(&s.root().join("layers"))
}

/// Mount the image read-write on a fresh upper dir and read `file`.
fn read_through_mount(s: &ImageStore, dir: &Path, reference: &str, file: &str) -> Vec<u8> {
    let rec = s.get(reference).expect("get").expect("image present");
    let layers = s.layer_dirs(&rec).expect("layer dirs");
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    let target = dir.join(format!("m{n}"));
    let rw = dir.join(format!("rw{n}"));
    mount_rootfs(&layers, &rw, &target).expect("mount");
    let data = fs::read(target.join(file));
    unmount(&target).expect("unmount");
    data.expect("read through overlay")
}

fn hex(d: &str) -> &str {
    &d[7..]
}

fn layer_id(diff_id: &str) -> String {
    hex(diff_id)[..12].to_string()
}

// ----- removal and GC ------------------------------------------------------

#[test]
fn gc_after_rm_keeps_shared_layer_then_empties_store() {
    let f = fixture();
    let s = &f.store;
    assert_eq!(s.list().expect("list").len(), 3);
    assert!(s.gc(&[]).expect("gc").is_empty(), "nothing is garbage yet");
    assert_eq!(blob_names(s).len(), 7, "2 manifests, 2 configs, 3 layers");

    let a_manifest_len = fs::metadata(s.blob_path(&f.a_digest).expect("path"))
        .expect("manifest")
        .len();
    let removed = s.remove_image("localhost/t/a:1", &never).expect("rm a");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].digest, f.a_digest);
    let report = s.gc(&[]).expect("gc");
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    assert_eq!(
        report.blob_bytes,
        a_manifest_len + (f.a_config.len() + f.a.blob.len()) as u64
    );
    assert_eq!(report.layers_removed, 1, "{report:?}");
    assert!(report.layer_bytes > 0);
    assert!(report.bytes_freed() >= report.blob_bytes + report.layer_bytes);

    let mut expected_blobs = vec![
        hex(&f.b_digest).to_string(),
        hex(&sha(&f.b_config)).to_string(),
        hex(&sha(&f.base.blob)).to_string(),
        hex(&sha(&f.b.blob)).to_string(),
    ];
    expected_blobs.sort();
    assert_eq!(blob_names(s), expected_blobs);
    let mut expected_layers = vec![
        layer_id(&f.base.diff_id),
        format!("{}.diffid", layer_id(&f.base.diff_id)),
        layer_id(&f.b.diff_id),
        format!("{}.diffid", layer_id(&f.b.diff_id)),
    ];
    expected_layers.sort();
    assert_eq!(layer_names(s), expected_layers);
    assert!(!s.layer_dir(&f.a.diff_id).expect("dir").exists());

    // Every remaining record still mounts.
    for name in ["localhost/t/b:1", "tst:v1"] {
        assert_eq!(read_through_mount(s, f.dir.path(), name, "b"), b"B\n");
        assert_eq!(
            read_through_mount(s, f.dir.path(), name, "ro/sub/deep"),
            b"deep"
        );
    }
    assert!(s.gc(&[]).expect("gc again").is_empty());

    // By image id (a config digest prefix): every name goes.
    let removed = s
        .remove_image(&hex(&sha(&f.b_config))[..12], &never)
        .expect("rm b by id");
    assert_eq!(removed.len(), 2);
    let report = s.gc(&[]).expect("gc");
    assert_eq!((report.blobs_removed, report.layers_removed), (4, 2));
    assert!(s.list().expect("list").is_empty());
    assert!(blob_names(s).is_empty(), "{:?}", blob_names(s));
    assert!(layer_names(s).is_empty(), "{:?}", layer_names(s));
    assert!(names_in(&s.root().join("tmp")).is_empty());
}

#[test]
fn removing_an_image_in_use_is_refused() {
    let f = fixture();
    let s = &f.store;
    let b_digest = f.b_digest.clone();
    let in_use = move |r: &ImageRecord| r.digest == b_digest;

    // Untagging one of two names keeps the image: allowed.
    let removed = s.remove_image("tst:v1", &in_use).expect("untag");
    assert_eq!(removed[0].name, "docker.io/library/tst:v1");
    // The last name: refused, nothing removed.
    let err = s
        .remove_image("localhost/t/b:1", &in_use)
        .expect_err("in use");
    assert!(matches!(err, ImageError::InUse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("localhost/t/b:1")
            && msg.contains("in use by a container; delete the pod first"),
        "{msg}"
    );
    let err = s.remove_image(&f.b_digest, &in_use).expect_err("by digest");
    assert!(matches!(err, ImageError::InUse { .. }), "{err:?}");
    assert!(s.get("localhost/t/b:1").expect("get").is_some());
    assert!(matches!(
        s.remove_image("localhost/t/nope:1", &never),
        Err(ImageError::NotFound(_))
    ));

    // prune without all: nothing removed (every record has a name).
    let report = s.prune(&in_use, false).expect("prune");
    assert!(report.removed.is_empty());
    assert!(report.gc.is_empty());
    // prune --all: keeps what is in use, removes the rest, collects.
    let report = s.prune(&in_use, true).expect("prune all");
    let removed: Vec<&str> = report.removed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(removed, vec!["localhost/t/a:1"]);
    assert_eq!(report.gc.blobs_removed, 3);
    assert_eq!(report.gc.layers_removed, 1);
    assert_eq!(
        read_through_mount(s, f.dir.path(), "localhost/t/b:1", "etc/os-release"),
        b"b\n"
    );
    // Once the pod is gone.
    let report = s.prune(&never, true).expect("prune all");
    assert_eq!(report.removed.len(), 1);
    assert!(blob_names(s).is_empty());
    assert!(layer_names(s).is_empty());
}

#[test]
fn gc_keeps_extra_roots_and_mounted_layers() {
    let f = fixture();
    let s = &f.store;
    let a = s.get("localhost/t/a:1").expect("get").expect("a");
    let a_layers = s.layer_dirs(&a).expect("dirs");
    s.remove_image("localhost/t/a:1", &never).expect("rm");

    assert!(matches!(
        s.gc(&["sha256:nothex".to_string()]),
        Err(ImageError::InvalidDigest { .. })
    ));
    // The manifest as a root keeps everything of image A.
    assert!(s
        .gc(std::slice::from_ref(&f.a_digest))
        .expect("gc")
        .is_empty());
    // The diff id as a root keeps the unpacked layer (not the blobs).
    let report = s.gc(std::slice::from_ref(&f.a.diff_id)).expect("gc");
    assert_eq!((report.blobs_removed, report.layers_removed), (3, 0));
    assert!(a_layers[1].is_dir());

    // A layer mounted in this mount namespace is never deleted.
    let target = f.dir.path().join("ro-mount");
    mount_rootfs_readonly(&a_layers, &target).expect("mount");
    let report = s.gc(&[]);
    let still_there = a_layers[1].is_dir();
    let read = fs::read(target.join("a"));
    unmount(&target).expect("unmount");
    assert_eq!(report.expect("gc").layers_removed, 0);
    assert!(still_there);
    assert_eq!(read.expect("read a"), b"A\n");
    let report = s.gc(&[]).expect("gc after unmount");
    assert_eq!(report.layers_removed, 1);
    assert!(!a_layers[1].exists());
    assert!(a_layers[0].is_dir(), "the base layer is B's too");
}

fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn gc_removes_read_only_and_immutable_layers() {
    let f = fixture();
    let s = &f.store;
    let base_dir = s.layer_dir(&f.base.diff_id).expect("dir");
    let ro = base_dir.join("ro/sub");
    assert_eq!(
        fs::metadata(&ro).expect("ro").permissions().mode() & 0o777,
        0o555
    );
    let immutable = chattr("+i", &base_dir.join("ro/sub/deep"));
    let append_only = chattr("+a", &base_dir.join("etc"));
    if !(immutable && append_only) {
        eprintln!("chattr not usable here: testing read-only directories only");
    }
    let report = s.prune(&never, true).expect("prune");
    assert_eq!(report.removed.len(), 3);
    assert_eq!(report.gc.layers_removed, 3);
    assert!(layer_names(s).is_empty(), "{:?}", layer_names(s));
    assert!(blob_names(s).is_empty());
    assert!(names_in(&s.root().join("tmp")).is_empty());
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::open(path)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
}

#[test]
fn gc_removes_stale_tmp_entries_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store_at(dir.path());
    let tmp = s.root().join("tmp");
    let now = SystemTime::now();
    let old = now - Duration::from_secs(2 * 3600);
    let old_nanos = old.duration_since(UNIX_EPOCH).expect("time").as_nanos();
    let new_nanos = now.duration_since(UNIX_EPOCH).expect("time").as_nanos();

    // Old name, old contents: stale.
    let stale = tmp.join(format!("import-1-{old_nanos}-0"));
    fs::create_dir(&stale).expect("mkdir");
    fs::write(stale.join("0"), b"x").expect("write");
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o500)).expect("chmod");
    set_mtime(&stale.join("0"), old);
    set_mtime(&stale, old);
    // Old name, but a child written just now: an import still running.
    let busy = tmp.join(format!("import-1-{old_nanos}-1"));
    fs::create_dir(&busy).expect("mkdir");
    fs::write(busy.join("0"), b"x").expect("write");
    set_mtime(&busy, old);
    // Fresh name, old mtime (a layer being unpacked carries tar mtimes).
    let unpacking = tmp.join(format!("layer-1-{new_nanos}-2"));
    fs::create_dir(&unpacking).expect("mkdir");
    set_mtime(&unpacking, old);
    // No time stamp in the name: judged by mtime.
    let junk = tmp.join("junk");
    fs::write(&junk, b"junk").expect("write");
    set_mtime(&junk, old);
    // Left by an interrupted GC: always removed.
    let trash = tmp.join(format!("gc-trash-1-{new_nanos}-3"));
    fs::create_dir_all(trash.join("d")).expect("mkdir");

    let report = s.gc(&[]).expect("gc");
    assert_eq!(report.tmp_removed, 3, "{report:?}");
    let mut left = vec![
        busy.file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned(),
        unpacking
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned(),
    ];
    left.sort();
    assert_eq!(names_in(&tmp), left);
}

#[test]
fn gc_waits_for_the_shared_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store_at(dir.path());
    let first = s.gc_lock().expect("shared lock");
    let second = s.gc_lock().expect("shared locks do not exclude each other");
    let done = Arc::new(AtomicBool::new(false));
    let (s2, done2) = (s.clone(), done.clone());
    let gc = std::thread::spawn(move || {
        let r = s2.gc(&[]);
        done2.store(true, Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !done.load(Ordering::SeqCst),
        "gc ran while an import held the lock"
    );
    drop(first);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !done.load(Ordering::SeqCst),
        "gc ran while an import held the lock"
    );
    drop(second);
    gc.join().expect("join").expect("gc");
    assert!(done.load(Ordering::SeqCst));
}

// ----- export --------------------------------------------------------------

/// Every regular file of a tar, by path.
fn tar_files(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(data);
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).expect("read");
        out.insert(path, buf);
    }
    out
}

fn export_to_vec(s: &ImageStore, refs: &[&str], format: ExportFormat) -> Vec<u8> {
    let mut out = Vec::new();
    s.export(refs, format, &mut out).expect("export");
    out
}

/// Whether the skopeo checks run (see [`crate::tests::require_tool`]).
fn skopeo() -> bool {
    crate::tests::require_tool("skopeo", "skopeo")
}

/// `skopeo copy` reads every blob and checks its digest.
fn skopeo_copy(src: &str, dst: &Path) {
    let out = Command::new("skopeo")
        .args(["copy", "-q", src])
        .arg(format!("dir:{}", dst.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {src}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skopeo_inspect(args: &[&str], transport: &str, file: &Path) -> Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .arg(format!("{transport}:{}", file.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo json")
}

#[test]
fn export_oci_archive_round_trip() {
    let f = fixture();
    let s = &f.store;
    let archive = export_to_vec(
        s,
        &["localhost/t/a:1", &f.b_digest],
        ExportFormat::OciArchive,
    );
    assert_eq!(
        archive,
        export_to_vec(
            s,
            &["localhost/t/a:1", &f.b_digest],
            ExportFormat::OciArchive
        ),
        "deterministic"
    );
    let files = tar_files(&archive);
    assert_eq!(
        files.get("oci-layout").map(|v| &v[..]),
        Some(&br#"{"imageLayoutVersion":"1.0.0"}"#[..])
    );
    let index: Value = serde_json::from_slice(&files["index.json"]).expect("index");
    let entries: Vec<(String, String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap_or("").to_string(),
                m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (f.a_digest.clone(), "localhost/t/a:1".into(), "1".into()),
            (
                f.b_digest.clone(),
                "docker.io/library/tst:v1".into(),
                "v1".into()
            ),
            (f.b_digest.clone(), "localhost/t/b:1".into(), "1".into()),
        ]
    );
    // Every blob, once, under its digest.
    let blobs: Vec<&String> = files.keys().filter(|k| k.starts_with("blobs/")).collect();
    assert_eq!(blobs.len(), 7);
    for b in blobs {
        assert_eq!(sha(&files[b]), format!("sha256:{}", &b[13..]), "{b}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = store_at(dir.path());
    fresh.import(&archive[..], None).expect("import export");
    let (old, new) = (s.list().expect("list"), fresh.list().expect("list"));
    assert_eq!(old, new, "same names, digests, layers, diff ids, sizes");
    assert_eq!(
        read_through_mount(&fresh, dir.path(), "localhost/t/a:1", "a"),
        b"A\n"
    );

    if skopeo() {
        let file = f.dir.path().join("a.oci.tar");
        s.export(
            &["localhost/t/a:1"],
            ExportFormat::OciArchive,
            fs::File::create(&file).expect("create"),
        )
        .expect("export to file");
        let v = skopeo_inspect(&[], "oci-archive", &file);
        assert_eq!(v["Digest"], json!(f.a_digest));
        assert_eq!(v["Layers"], json!([sha(&f.base.blob), sha(&f.a.blob)]));
        assert_eq!(v["Architecture"], json!("amd64"));
        skopeo_copy(
            &format!("oci-archive:{}", file.display()),
            &f.dir.path().join("copy-oci"),
        );
    }
}

#[test]
fn export_docker_archive_round_trip() {
    let f = fixture();
    let s = &f.store;
    let archive = export_to_vec(
        s,
        &["localhost/t/a:1", "localhost/t/b:1", "tst:v1"],
        ExportFormat::DockerArchive,
    );
    let files = tar_files(&archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    let blob = |d: &str| format!("blobs/sha256/{}", hex(d));
    assert_eq!(
        manifest,
        json!([
            {"Config": blob(&sha(&f.a_config)), "RepoTags": ["localhost/t/a:1"],
             "Layers": [blob(&f.base.diff_id), blob(&f.a.diff_id)]},
            {"Config": blob(&sha(&f.b_config)), "RepoTags": ["localhost/t/b:1", "tst:v1"],
             "Layers": [blob(&f.base.diff_id), blob(&f.b.diff_id)]},
        ])
    );
    let repositories: Value = serde_json::from_slice(&files["repositories"]).expect("repos");
    assert_eq!(
        repositories,
        json!({"localhost/t/a": {"1": hex(&f.a.diff_id)},
               "localhost/t/b": {"1": hex(&f.b.diff_id)},
               "tst": {"v1": hex(&f.b.diff_id)}})
    );
    // Layers are uncompressed: their sha256 is the diff id (gzip and zstd
    // blobs were decompressed on the way).
    for l in [&f.base, &f.a, &f.b] {
        assert_eq!(sha(&files[&blob(&l.diff_id)]), l.diff_id);
    }
    assert_eq!(
        files.len(),
        2 + 2 + 3,
        "manifest, repositories, 2 configs, 3 layers"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = store_at(dir.path());
    let recs = fresh.import(&archive[..], None).expect("import export");
    let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "localhost/t/a:1",
            "docker.io/library/tst:v1",
            "localhost/t/b:1"
        ]
    );
    for rec in &recs {
        let orig = s.get(&rec.name).expect("get").expect("orig");
        assert_eq!(rec.config_digest, orig.config_digest);
        assert_eq!(rec.diff_ids, orig.diff_ids);
        assert_eq!(rec.layers, orig.diff_ids, "uncompressed layers");
        assert_eq!(
            fresh.config(rec).expect("config"),
            s.config(&orig).expect("config")
        );
    }
    assert_eq!(
        read_through_mount(&fresh, dir.path(), "tst:v1", "etc/os-release"),
        b"b\n"
    );

    if skopeo() {
        let file = f.dir.path().join("b.docker.tar");
        s.export(
            &["localhost/t/b:1"],
            ExportFormat::DockerArchive,
            fs::File::create(&file).expect("create"),
        )
        .expect("export to file");
        let v = skopeo_inspect(&[], "docker-archive", &file);
        assert_eq!(v["Layers"], json!([f.base.diff_id, f.b.diff_id]));
        let c = skopeo_inspect(&["--config"], "docker-archive", &file);
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!([f.base.diff_id, f.b.diff_id])
        );
        skopeo_copy(
            &format!("docker-archive:{}", file.display()),
            &f.dir.path().join("copy-docker"),
        );
    }
}

#[test]
fn export_refuses_corrupt_blobs_and_bad_requests() {
    let f = fixture();
    let s = &f.store;
    assert!(matches!(
        s.export(
            &["localhost/t/nope:1"],
            ExportFormat::OciArchive,
            Vec::new()
        ),
        Err(ImageError::NotFound(_))
    ));
    assert!(s.export(&[], ExportFormat::OciArchive, Vec::new()).is_err());
    assert_eq!(
        "docker-archive".parse::<ExportFormat>().expect("parse"),
        ExportFormat::DockerArchive
    );
    assert_eq!(
        "oci".parse::<ExportFormat>().expect("parse"),
        ExportFormat::OciArchive
    );
    assert!("tgz".parse::<ExportFormat>().is_err());

    // Flip one byte of A's gzip layer, keeping its size.
    let path: PathBuf = s.blob_path(&sha(&f.a.blob)).expect("path");
    let mut data = fs::read(&path).expect("read");
    let last = data.len() - 5;
    data[last] ^= 0xff;
    fs::write(&path, &data).expect("write");
    let err = s
        .export(&["localhost/t/a:1"], ExportFormat::OciArchive, Vec::new())
        .expect_err("oci");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    let mut out = Vec::new();
    let err = s
        .export(&["localhost/t/a:1"], ExportFormat::DockerArchive, &mut out)
        .expect_err("docker");
    assert!(
        matches!(
            err,
            ImageError::DiffIdMismatch { .. } | ImageError::Io { .. }
        ),
        "{err:?}"
    );
    assert!(
        out.is_empty(),
        "nothing written before the layers check out"
    );
    // B does not use that blob: still exports.
    export_to_vec(s, &["localhost/t/b:1"], ExportFormat::DockerArchive);
}

/// The script-built busybox / httpd images (real binaries, real layers):
/// exported in both formats, read back by skopeo, imported into a fresh
/// store and run.
#[test]
fn export_real_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-images.sh");
    if !crate::tests::require_tool("/bin/busybox", "busybox-static") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store_at(dir.path());
    let images = dir.path().join("images");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&images)
        .status()
        .expect("run build-test-images.sh");
    assert!(status.success(), "build-test-images.sh failed: {status}");
    for tar in ["busybox.tar", "httpd.tar"] {
        s.import(fs::File::open(images.join(tar)).expect("open"), None)
            .expect("import");
    }
    let refs = ["localhost/peapod/busybox", "localhost/peapod/httpd"];
    let have_skopeo = skopeo();
    for (format, transport) in [
        (ExportFormat::OciArchive, "oci-archive"),
        (ExportFormat::DockerArchive, "docker-archive"),
    ] {
        let file = dir.path().join(format!("{transport}.tar"));
        s.export(&refs, format, fs::File::create(&file).expect("create"))
            .expect("export");
        if have_skopeo {
            for (i, r) in refs.iter().enumerate() {
                let src = match format {
                    ExportFormat::OciArchive => {
                        let single = dir.path().join(format!("{transport}-{i}.tar"));
                        s.export(&[r], format, fs::File::create(&single).expect("create"))
                            .expect("export one");
                        format!("{transport}:{}", single.display())
                    }
                    ExportFormat::DockerArchive => {
                        format!("{transport}:{}:{r}:latest", file.display())
                    }
                };
                skopeo_copy(&src, &dir.path().join(format!("copy-{transport}-{i}")));
            }
        }
        let fresh_dir = dir.path().join(format!("fresh-{transport}"));
        let fresh = store_at(&fresh_dir);
        let recs = fresh
            .import(fs::File::open(&file).expect("open"), None)
            .expect("import export");
        assert_eq!(recs.len(), 2);
        for rec in &recs {
            let orig = s.get(&rec.name).expect("get").expect("orig");
            assert_eq!(rec.config_digest, orig.config_digest);
            assert_eq!(rec.diff_ids, orig.diff_ids);
            if format == ExportFormat::OciArchive {
                assert_eq!(rec, &orig);
            }
        }
        let rec = fresh.get(refs[1]).expect("get").expect("httpd");
        let target = fresh_dir.join("rootfs");
        mount_rootfs(
            &fresh.layer_dirs(&rec).expect("dirs"),
            &fresh_dir.join("rw"),
            &target,
        )
        .expect("mount");
        let out = Command::new("chroot")
            .arg(&target)
            .args(["/bin/cat", "/www/index.html"])
            .output();
        unmount(&target).expect("unmount");
        assert_eq!(
            String::from_utf8_lossy(&out.expect("chroot").stdout),
            "hello from peapod\n"
        );
        // And everything goes again.
        let report = fresh.prune(&never, true).expect("prune");
        assert_eq!(report.removed.len(), 2);
        assert!(blob_names(&fresh).is_empty());
        assert!(layer_names(&fresh).is_empty());
    }
}
