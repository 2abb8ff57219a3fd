//! ConfigMap, Secret, downwardAPI and projected volumes: their files are
//! computed from the objects (a "payload": relative path → bytes and mode)
//! and written with Kubernetes' atomic writer layout:
//!
//! ```text
//! <volume>/..2026_11_30_12_00_00.123456789/<files>   the content
//! <volume>/..data -> ..2026_11_30_12_00_00.123456789  swapped by rename(2)
//! <volume>/<key>  -> ..data/<key>                     what users see
//! ```
//!
//! so a container reading the volume sees the old content or the new one,
//! never a mix. Secret and projected volumes live on a tmpfs mounted for
//! the volume (never on disk). When an object changes, [`refresh`] writes
//! the new payload into every running pod that uses it.

use crate::env::{PodContext, Sources};
use crate::volumes::VolumeError;
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use nix::mount::{mount, MsFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files of a volume: relative path → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

const DATA_DIR: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
const DEFAULT_MODE: i32 = 0o644;

/// Which volumes this module writes.
pub fn is_projected(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// The directory of a volume under the pod's volumes directory, kubelet's
/// plugin names.
pub fn volume_dir(v: &Volume, dir: &Path) -> PathBuf {
    let plugin = if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else {
        "kubernetes.io~projected"
    };
    dir.join(plugin).join(&v.name)
}

/// Secret and projected volumes are kept in memory.
fn on_tmpfs(v: &Volume) -> bool {
    v.secret.is_some() || v.projected.is_some()
}

/// kubelet's words for a failed set-up:
/// `MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`.
fn setup_error(v: &Volume, message: impl std::fmt::Display) -> VolumeError {
    VolumeError {
        field: String::new(),
        message: format!(
            "MountVolume.SetUp failed for volume \"{}\" : {message}",
            v.name
        ),
    }
}

/// Items of a ConfigMap/Secret: every key (no `items`), or the listed
/// keys at their paths. A missing key is an error unless `optional`.
fn key_items(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    what: &str,
    out: &mut Payload,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(k, (v, default_mode as u32));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            (v.clone(), it.mode.unwrap_or(default_mode) as u32),
                        );
                    }
                    None if optional => {}
                    None => {
                        // kubelet's two wordings.
                        return Err(if what == "configmap" {
                            format!("configmap references non-existent config key: {}", it.key)
                        } else {
                            format!("references non-existent secret key: {}", it.key)
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn downward_items(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    ctx: &PodContext,
    out: &mut Payload,
) -> Result<(), String> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            crate::env::pod_field(pod, &f.field_path, ctx)
                .ok_or_else(|| format!("unsupported fieldPath: {}", f.field_path))?
        } else if let Some(r) = &it.resource_field_ref {
            crate::env::resource_value(pod, r, None, ctx.allocatable).map_err(|e| e.0)?
        } else {
            continue;
        };
        out.insert(
            it.path.clone(),
            (value.into_bytes(), it.mode.unwrap_or(default_mode) as u32),
        );
    }
    Ok(())
}

fn config_map_data(cm: k8s_openapi::api::core::v1::ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.unwrap_or_default() {
        data.insert(k, v.0);
    }
    data
}

fn secret_data(s: k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// The files volume `v` of `pod` should hold now. The error is kubelet's
/// message (`configmap "x" not found`).
pub fn payload(
    v: &Volume,
    pod: &Pod,
    src: &dyn Sources,
    ctx: &PodContext,
) -> Result<Payload, String> {
    let ns = crate::node::namespace_of(&pod.metadata);
    let mut out = Payload::new();
    if let Some(c) = &v.config_map {
        let optional = c.optional == Some(true);
        match src.config_map(&ns, &c.name)? {
            Some(cm) => key_items(
                config_map_data(cm),
                c.items.as_ref(),
                c.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
                "configmap",
                &mut out,
            )?,
            None if optional => {}
            None => return Err(format!("configmap \"{}\" not found", c.name)),
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        match src.secret(&ns, &name)? {
            Some(sec) => key_items(
                secret_data(sec),
                s.items.as_ref(),
                s.default_mode.unwrap_or(DEFAULT_MODE),
                optional,
                "secret",
                &mut out,
            )?,
            None if optional => {}
            None => return Err(format!("secret \"{name}\" not found")),
        }
    } else if let Some(d) = &v.downward_api {
        downward_items(
            pod,
            d.items.as_deref().unwrap_or(&[]),
            d.default_mode.unwrap_or(DEFAULT_MODE),
            ctx,
            &mut out,
        )?;
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        let mut errs = Vec::new();
        for s in p.sources.iter().flatten() {
            let res = if let Some(c) = &s.config_map {
                let optional = c.optional == Some(true);
                match src.config_map(&ns, &c.name)? {
                    Some(cm) => key_items(
                        config_map_data(cm),
                        c.items.as_ref(),
                        mode,
                        optional,
                        "configmap",
                        &mut out,
                    ),
                    None if optional => Ok(()),
                    None => Err(format!("configmap \"{}\" not found", c.name)),
                }
            } else if let Some(c) = &s.secret {
                let optional = c.optional == Some(true);
                match src.secret(&ns, &c.name)? {
                    Some(sec) => key_items(
                        secret_data(sec),
                        c.items.as_ref(),
                        mode,
                        optional,
                        "secret",
                        &mut out,
                    ),
                    None if optional => Ok(()),
                    None => Err(format!("secret \"{}\" not found", c.name)),
                }
            } else if let Some(d) = &s.downward_api {
                downward_items(pod, d.items.as_deref().unwrap_or(&[]), mode, ctx, &mut out)
            } else {
                // serviceAccountToken and the rest: `apply` warned that
                // they are not supported.
                Ok(())
            };
            if let Err(e) = res {
                errs.push(e);
            }
        }
        if !errs.is_empty() {
            return Err(errs.join(", "));
        }
    }
    Ok(out)
}

/// Set up volume `v` under the pod's volumes directory `dir`: its
/// directory (a tmpfs for secrets and projected volumes) and its files.
pub fn set_up(
    v: &Volume,
    pod: &Pod,
    dir: &Path,
    src: &dyn Sources,
    ctx: &PodContext,
) -> Result<PathBuf, VolumeError> {
    let files = payload(v, pod, src, ctx).map_err(|e| setup_error(v, e))?;
    let path = volume_dir(v, dir);
    std::fs::create_dir_all(&path)
        .map_err(|e| setup_error(v, format!("{}: {e}", path.display())))?;
    if on_tmpfs(v) && !is_mount_point(&path) {
        mount(
            Some("tmpfs"),
            &path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        )
        .map_err(|e| setup_error(v, format!("cannot mount tmpfs at {}: {e}", path.display())))?;
    }
    write(&path, &files).map_err(|e| setup_error(v, e))?;
    Ok(path)
}

/// A mount point: another device than its parent's.
fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// A payload path must be relative, without `..`, and not start with `..`.
fn check_path(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return Err(format!(
            "invalid path {p:?}: must be relative and not empty"
        ));
    }
    if p.starts_with("..") {
        return Err(format!("invalid path {p:?}: must not start with '..'"));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("invalid path {p:?}: must not contain '..'"));
    }
    Ok(())
}

/// The name of a new timestamped directory (`..2026_11_30_12_00_00.123456789`).
pub fn timestamped_name(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("..%Y_%m_%d_%H_%M_%S.%f").to_string()
}

/// What the volume shows now (through `..data`): path → (content, mode).
fn current(target: &Path) -> Option<Payload> {
    let data = target.join(DATA_DIR);
    std::fs::read_link(&data).ok()?;
    let mut out = Payload::new();
    fn walk(base: &Path, rel: &Path, out: &mut Payload) -> std::io::Result<()> {
        for e in std::fs::read_dir(base.join(rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let m = e.metadata()?;
            if m.is_dir() {
                walk(base, &r, out)?;
            } else {
                let content = std::fs::read(base.join(&r))?;
                out.insert(
                    r.to_string_lossy().into_owned(),
                    (content, m.permissions().mode() & 0o7777),
                );
            }
        }
        Ok(())
    }
    walk(&data, Path::new(""), &mut out).ok()?;
    Some(out)
}

/// Write `files` into `target` with the atomic writer layout; nothing is
/// written when the volume already shows exactly them. True when written.
pub fn write(target: &Path, files: &Payload) -> Result<bool, String> {
    for p in files.keys() {
        check_path(p)?;
    }
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let old_ts = std::fs::read_link(target.join(DATA_DIR)).ok();
    let visible: BTreeSet<String> = files
        .keys()
        .filter_map(|p| Path::new(p).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if current(target).as_ref() == Some(files) {
        ensure_links(target, &visible)?;
        return Ok(false);
    }
    // The new content in a new timestamped directory.
    let mut now = chrono::Utc::now();
    let ts_dir = loop {
        let d = target.join(timestamped_name(now));
        match std::fs::create_dir(&d) {
            Ok(()) => break d,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                now += chrono::Duration::nanoseconds(1)
            }
            Err(e) => return Err(io("cannot create", &d, e)),
        }
    };
    let _ = std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755));
    let fill = || -> Result<(), String> {
        for (rel, (content, mode)) in files {
            let p = ts_dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
            }
            std::fs::write(&p, content).map_err(|e| io("cannot write", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| io("cannot chmod", &p, e))?;
        }
        Ok(())
    };
    if let Err(e) = fill() {
        // The volume keeps showing the old content; nothing half-written stays.
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    // Swap `..data` atomically: a new link renamed over the old one.
    let tmp = target.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
    std::os::unix::fs::symlink(&ts_name, &tmp).map_err(|e| io("cannot link", &tmp, e))?;
    std::fs::rename(&tmp, target.join(DATA_DIR)).map_err(|e| io("cannot rename", &tmp, e))?;
    ensure_links(target, &visible)?;
    // Remove user-visible links no longer in the payload, then the old
    // content.
    if let Ok(rd) = std::fs::read_dir(target) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") || visible.contains(&name) {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old_ts.filter(|o| *o != ts_name) {
        let old = target.join(old);
        std::fs::remove_dir_all(&old).map_err(|e| io("cannot remove", &old, e))?;
    }
    Ok(true)
}

/// `name -> ..data/name` for every top-level name of the payload.
fn ensure_links(target: &Path, visible: &BTreeSet<String>) -> Result<(), String> {
    for name in visible {
        let link = target.join(name);
        let want = Path::new(DATA_DIR).join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(want.as_path()) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&want, &link)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    Ok(())
}

/// A subPath into an atomic-writer volume names a user-visible link:
/// resolve it to the timestamped directory (as kubelet evaluates symlinks
/// inside the volume), so the container gets that file and, as in
/// Kubernetes, a subPath mount does not follow updates.
pub fn resolve_subpath(base: &Path, sub: &str) -> Option<String> {
    let first = Path::new(sub).components().next()?;
    let first = first.as_os_str().to_str()?;
    let link = std::fs::read_link(base.join(first)).ok()?;
    let rest = link.strip_prefix(DATA_DIR).ok()?;
    if rest != Path::new(first) {
        return None;
    }
    let ts = std::fs::read_link(base.join(DATA_DIR)).ok()?;
    let ts = ts.to_str()?;
    if !ts.starts_with("..") || ts.contains('/') {
        return None;
    }
    Some(format!("{ts}/{sub}"))
}

/// Does `pod` use ConfigMap/Secret `name` (`configmaps` or `secrets`)?
pub fn uses(pod: &Pod, resource: &str, name: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let cm = resource == "configmaps";
    let vols = spec.volumes.iter().flatten().any(|v| {
        if cm {
            v.config_map.as_ref().is_some_and(|c| c.name == name)
                || v.projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .any(|s| s.config_map.as_ref().is_some_and(|c| c.name == name))
        } else {
            v.secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref() == Some(name))
                || v.projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten())
                    .any(|s| s.secret.as_ref().is_some_and(|c| c.name == name))
        }
    });
    let envs = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.env_from.iter().flatten().any(|f| {
                if cm {
                    f.config_map_ref.as_ref().is_some_and(|r| r.name == name)
                } else {
                    f.secret_ref.as_ref().is_some_and(|r| r.name == name)
                }
            }) || c.env.iter().flatten().any(|e| {
                let Some(from) = &e.value_from else {
                    return false;
                };
                if cm {
                    from.config_map_key_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
                } else {
                    from.secret_key_ref.as_ref().is_some_and(|r| r.name == name)
                }
            })
        });
    vols || envs
}

/// Write the current payload of every prepared projected volume of `pod`
/// (after a ConfigMap/Secret or the pod's labels changed). A volume whose
/// source is gone keeps its last content, as in kubelet.
pub fn refresh(
    pod: &Pod,
    prepared: &crate::volumes::Prepared,
    src: &dyn Sources,
    ctx: &PodContext,
) {
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if !is_projected(v) {
            continue;
        }
        let Some(path) = prepared.get(&v.name) else {
            continue;
        };
        match payload(v, pod, src, ctx).and_then(|files| write(path, &files)) {
            Ok(true) => {
                tracing::info!(pod = ?pod.metadata.name, volume = %v.name, "volume updated")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(pod = ?pod.metadata.name, volume = %v.name, "volume update: {e}")
            }
        }
    }
}

/// The downward API's view of the node and pod for `obs`.
pub fn pod_context(
    node: &crate::node::Node,
    pod: &k8s_openapi::api::core::v1::Pod,
    obs: &crate::status::Observed,
) -> PodContext {
    static ALLOCATABLE: std::sync::OnceLock<crate::env::Allocatable> = std::sync::OnceLock::new();
    PodContext {
        node_name: node.hostname.clone(),
        host_ip: obs.host_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
        pod_ips: obs.pod_ips(pod),
        allocatable: *ALLOCATABLE
            .get_or_init(|| crate::env::Allocatable::of_host(node.runtime.paths.root())),
    }
}

/// Wake the workers of pods that use a ConfigMap or Secret when it
/// changes: they then refresh their volumes, or start a container that
/// waited for it.
pub async fn watch_sources(node: std::sync::Arc<crate::node::Node>) {
    loop {
        let since = node.store.resource_version();
        let (cms, secrets) = match (
            node.store.watch("configmaps/", since),
            node.store.watch("secrets/", since),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let (mut cms, mut secrets) = (cms, secrets);
        loop {
            let change = tokio::select! {
                c = cms.next() => c,
                c = secrets.next() => c,
            };
            let Some(Ok(c)) = change else { break };
            let mut parts = c.key.splitn(3, '/');
            let (Some(resource), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            for pod in node.list_pods(Some(ns)).unwrap_or_default() {
                if uses(&pod, resource, name) {
                    node.ensure_worker(&pod);
                }
            }
        }
        // Fell behind (or the store closed): wake every user again.
        for pod in node.list_pods(None).unwrap_or_default() {
            node.ensure_worker(&pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_of(pairs: &[(&str, &str, u32)]) -> Payload {
        pairs
            .iter()
            .map(|(p, c, m)| (p.to_string(), (c.as_bytes().to_vec(), *m)))
            .collect()
    }

    struct One(k8s_openapi::api::core::v1::ConfigMap);
    impl Sources for One {
        fn config_map(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, String> {
            Ok((self.0.metadata.name.as_deref() == Some(name)).then(|| self.0.clone()))
        }
        fn secret(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<k8s_openapi::api::core::v1::Secret>, String> {
            Ok(None)
        }
    }

    #[test]
    fn payloads_items_modes_and_kubelets_errors() {
        let src = One(serde_yaml_ng::from_str(
            "metadata: {name: cfg}\ndata: {a: '1', b: '2'}\nbinaryData: {bin: AAE=}\n",
        )
        .unwrap());
        let pod: Pod = serde_yaml_ng::from_str(
            "metadata: {name: p, namespace: default, labels: {x: y}}\nspec: {containers: []}\n",
        )
        .unwrap();
        let vol = |yaml: &str| -> Volume { serde_yaml_ng::from_str(yaml).unwrap() };
        let ctx = PodContext::default();
        let all = payload(&vol("name: v\nconfigMap: {name: cfg}\n"), &pod, &src, &ctx).unwrap();
        assert_eq!(
            all,
            payload_of(&[("a", "1", 0o644), ("b", "2", 0o644)])
                .into_iter()
                .chain([("bin".to_string(), (vec![0, 1], 0o644))])
                .collect()
        );
        let items = payload(
            &vol("name: v\nconfigMap: {name: cfg, defaultMode: 256, items: [{key: a, path: d/x}, {key: b, path: y, mode: 384}]}\n"),
            &pod,
            &src,
            &ctx,
        )
        .unwrap();
        assert_eq!(items, payload_of(&[("d/x", "1", 0o400), ("y", "2", 0o600)]));
        assert_eq!(
            payload(
                &vol("name: v\nconfigMap: {name: cfg, items: [{key: zz, path: z}]}\n"),
                &pod,
                &src,
                &ctx
            )
            .unwrap_err(),
            "configmap references non-existent config key: zz"
        );
        assert!(payload(
            &vol("name: v\nconfigMap: {name: cfg, optional: true, items: [{key: zz, path: z}]}\n"),
            &pod,
            &src,
            &ctx
        )
        .unwrap()
        .is_empty());
        assert_eq!(
            payload(
                &vol("name: v\nsecret: {secretName: gone}\n"),
                &pod,
                &src,
                &ctx
            )
            .unwrap_err(),
            "secret \"gone\" not found"
        );
        let projected = payload(
            &vol("name: v\nprojected: {defaultMode: 288, sources: [{configMap: {name: cfg, items: [{key: a, path: a}]}}, {downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}, {secret: {name: gone, optional: true}}]}\n"),
            &pod,
            &src,
            &ctx,
        )
        .unwrap();
        assert_eq!(
            projected,
            payload_of(&[("a", "1", 0o440), ("labels", "x=\"y\"", 0o440)])
        );
        assert!(uses(
            &serde_yaml_ng::from_str(
                "metadata: {name: p}\nspec: {containers: [{name: c, envFrom: [{configMapRef: {name: cfg}}]}]}\n"
            )
            .unwrap(),
            "configmaps",
            "cfg"
        ));
        assert!(!uses(&pod, "configmaps", "cfg"));
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_leaves_nothing() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        mount(
            Some("tmpfs"),
            t,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=16k"),
        )
        .unwrap();
        let res = std::panic::catch_unwind(|| {
            assert!(write(t, &payload_of(&[("a", "small", 0o644)])).unwrap());
            let before = std::fs::read_link(t.join("..data")).unwrap();
            let big = "x".repeat(64 * 1024);
            let e = write(t, &payload_of(&[("a", &big, 0o644)])).unwrap_err();
            assert!(e.contains("cannot write"), "{e}");
            assert_eq!(std::fs::read_link(t.join("..data")).unwrap(), before);
            assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "small");
            let entries = std::fs::read_dir(t).unwrap().count();
            assert_eq!(entries, 3, "..data, one timestamped dir, a");
        });
        nix::mount::umount(t).unwrap();
        res.unwrap();
    }

    #[test]
    fn timestamped_names_are_kubelets() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00.123456789Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(timestamped_name(t), "..2026_11_30_12_00_00.123456789");
    }

    #[test]
    fn atomic_writer_layout_and_swap() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        assert!(write(t, &payload_of(&[("a", "1", 0o644), ("dir/b", "2", 0o400)])).unwrap());
        let ts1 = std::fs::read_link(t.join("..data")).unwrap();
        assert!(ts1.to_str().unwrap().starts_with("..20"), "{ts1:?}");
        assert_eq!(
            std::fs::read_link(t.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(t.join("dir")).unwrap(),
            Path::new("..data/dir")
        );
        assert_eq!(std::fs::read_to_string(t.join("dir/b")).unwrap(), "2");
        let mode = std::fs::metadata(t.join("dir/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o400);
        // The same payload again writes nothing.
        assert!(!write(t, &payload_of(&[("a", "1", 0o644), ("dir/b", "2", 0o400)])).unwrap());
        assert_eq!(std::fs::read_link(t.join("..data")).unwrap(), ts1);
        // A new payload: new directory, old one and stale links gone.
        assert!(write(t, &payload_of(&[("a", "3", 0o644)])).unwrap());
        let ts2 = std::fs::read_link(t.join("..data")).unwrap();
        assert_ne!(ts1, ts2);
        assert!(!t.join(&ts1).exists());
        assert!(std::fs::symlink_metadata(t.join("dir")).is_err());
        assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "3");
        assert!(!t.join("..data_tmp").exists());
        let mut names: Vec<String> = std::fs::read_dir(t)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ts2.to_string_lossy().into_owned(),
                "..data".into(),
                "a".into()
            ]
        );
        assert_eq!(
            resolve_subpath(t, "a").unwrap(),
            format!("{}/a", ts2.display())
        );
        assert!(write(t, &payload_of(&[("../x", "1", 0o644)])).is_err());
        assert!(write(t, &payload_of(&[("..x", "1", 0o644)])).is_err());
        assert!(write(t, &payload_of(&[("/x", "1", 0o644)])).is_err());
    }
}
