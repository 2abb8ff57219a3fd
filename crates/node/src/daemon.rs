//! `peapod serve`: lock the root, open the store, adopt what runs, serve.

use crate::node::Node;
use crate::store::Store;
use peapod_image::ImageStore;
use peapod_runtime::{Runtime, RuntimeOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub root: PathBuf,
    pub state: PathBuf,
    pub cgroup_parent: String,
    pub socket: PathBuf,
    pub pod_max_pids: Option<i64>,
    pub exe: PathBuf,
    /// Configuration directory: `registries.toml` (mirrors, insecure
    /// registries, CAs, credentials), `net.d/` (the pod network's CNI
    /// configuration list; a default is written on first start).
    pub config_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub cni_path: Vec<PathBuf>,
    /// `--container-log-max-size` / `--container-log-max-files`.
    pub log_rotation: peapod_shim::LogRotation,
    /// `--service-cidr`: where Services' clusterIPs come from.
    pub service_cidr: String,
    /// `--nft-table`: the name of peapod's own `table ip` for Services.
    pub nft_table: String,
    /// `--pod-masquerade`: masquerade pod egress in `<nft_table>-egress`
    /// when the network's bridge does not.
    pub pod_masquerade: bool,
    /// `--metrics-interval`: how often pods' usage is read (`top`, HPA).
    pub metrics_interval: std::time::Duration,
    /// `--dns-addr`: where the cluster DNS server listens (UDP and TCP);
    /// None: port 53 on the pod network's bridge gateway.
    pub dns_addr: Option<std::net::SocketAddr>,
    /// `--cluster-domain`: the domain Services' names are under.
    pub cluster_domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another peapod daemon already owns --root {root} (pid {pid}); stop it or use another --root")]
    Locked { root: PathBuf, pid: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Image(#[from] peapod_image::ImageError),
    #[error(transparent)]
    Runtime(#[from] peapod_runtime::RuntimeError),
    #[error("{0}")]
    Config(String),
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Take the root's lock, so two daemons never share one root.
fn lock_root(root: &std::path::Path) -> Result<std::fs::File, DaemonError> {
    let path = root.join("peapod.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let pid = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .trim()
            .to_string();
        return Err(DaemonError::Locked {
            root: root.to_path_buf(),
            pid,
        });
    }
    file.set_len(0).map_err(io(&path))?;
    std::fs::write(&path, std::process::id().to_string()).map_err(io(&path))?;
    Ok(file)
}

/// The cluster DNS server on `addr`; pods with `ClusterFirst` use it. A
/// server that cannot start leaves pods on the host's resolvers (with a
/// warning), as kubelet without `--cluster-dns`.
async fn start_dns(node: &Arc<Node>, addr: Option<std::net::SocketAddr>, domain: &str) {
    let host_resolv_conf = PathBuf::from("/etc/resolv.conf");
    let mut server = None;
    match addr {
        Some(addr) => {
            let host = std::fs::read_to_string(&host_resolv_conf).unwrap_or_default();
            let upstreams = crate::dns::host_upstreams(&host, addr);
            match crate::dns::start(node.clone(), addr, domain, &upstreams).await {
                Ok(()) => {
                    tracing::info!(%addr, domain, "cluster DNS listening");
                    server = Some(addr.ip());
                }
                Err(e) => {
                    tracing::warn!(%addr, "cluster DNS: {e}");
                    eprintln!("peapod: warning: cluster DNS: listening on {addr}: {e}; pods use the host's resolvers (set --dns-addr)");
                }
            }
        }
        None => eprintln!(
            "peapod: warning: cluster DNS: the pod network has no bridge gateway to listen on; pods use the host's resolvers (set --dns-addr)"
        ),
    }
    let _ = node.dns.set(Arc::new(crate::dns::ClusterDns {
        domain: domain.to_string(),
        server,
        host_resolv_conf,
    }));
}

pub async fn serve(opts: DaemonOptions) -> Result<(), DaemonError> {
    for d in [&opts.root, &opts.state] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let _lock = lock_root(&opts.root)?;
    let services = Arc::new(
        crate::services::ServiceConfig::new(&opts.service_cidr, &opts.nft_table)
            .map_err(DaemonError::Config)?,
    );
    let images = Arc::new(ImageStore::open(&opts.root.join("images"))?);
    let network =
        peapod_runtime::PodNetwork::load(&opts.config_dir, &opts.state, opts.cni_path.clone())
            .map_err(peapod_runtime::RuntimeError::from)?;
    for problem in network.check_plugins() {
        // Pods with hostNetwork still run; the others fail with this at
        // sandbox creation.
        tracing::warn!("pod network: {problem}");
        eprintln!("peapod: warning: pod network: {problem}");
    }
    let dns_addr = opts.dns_addr.or_else(|| {
        network
            .bridge_gateway()
            .map(|gw| std::net::SocketAddr::new(gw.into(), 53))
    });
    let runtime_opts = RuntimeOptions {
        root: opts.root.clone(),
        state: opts.state.clone(),
        cgroup_parent: opts.cgroup_parent.clone(),
        pod_max_pids: opts.pod_max_pids,
        exe: opts.exe.clone(),
        log_rotation: opts.log_rotation,
        egress: opts
            .pod_masquerade
            .then(|| {
                peapod_runtime::egress::Egress::new(
                    &format!("{}-egress", opts.nft_table),
                    network.config(),
                )
            })
            .flatten()
            .map(Arc::new),
        network: Some(network),
    };
    let runtime = Arc::new(Runtime::new(runtime_opts.clone(), images.clone())?);
    let store = Store::open(&opts.root.join("peapod.redb"))?;
    let registries = peapod_image::RegistryConfig::load(&opts.config_dir.join("registries.toml"))?;
    let puller = Arc::new(peapod_image::Puller::new(images.clone(), registries));
    // The CRI: its own runtime (own sandboxes under <root>/cri and
    // <state>/cri, never adopted or listed below), the shared images.
    let cri = Arc::new(peapod_cri::Cri::new(
        &runtime_opts,
        images.clone(),
        puller.clone(),
    )?);
    let node = Arc::new(Node::new(store, runtime.clone(), images, puller)?);
    node.register()?;
    let _ = node.services.set(services.clone());
    tokio::spawn(crate::services::run(node.clone(), services));
    start_dns(&node, dns_addr, &opts.cluster_domain).await;
    tokio::spawn(housekeeping(node.clone()));
    node.metrics.set_interval(opts.metrics_interval);
    tokio::spawn(crate::metrics::run(node.clone()));
    tokio::spawn(crate::projection::watch_sources(node.clone()));

    // Shims report state changes as datagrams on one socket: no thread
    // or connection per pod.
    let events_path = runtime.paths.events_socket();
    let _ = std::fs::remove_file(&events_path);
    let events = tokio::net::UnixDatagram::bind(&events_path).map_err(io(&events_path))?;
    {
        let node = node.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while let Ok(n) = events.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]);
                if let Some(sid) = msg.split_whitespace().next() {
                    node.wake_sandbox(sid);
                }
            }
        });
    }

    // Reconcile: every stored pod gets a worker (which adopts its running
    // sandboxes); a sandbox no stored pod owns is removed, and so is one
    // half-made by a crash.
    let pods = node.list_pods(None)?;
    let known: std::collections::HashSet<String> =
        pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    let rt = runtime.clone();
    // One pass over the runtime's sandboxes: each is its pod's (the pod
    // worker finds its sandboxes here) or no one's.
    let (owned, stale) = tokio::task::spawn_blocking(move || {
        let (owned, unowned): (Vec<_>, Vec<_>) = rt
            .list_pod_sandbox(&peapod_runtime::SandboxFilter::default())
            .into_iter()
            .partition(|s| known.contains(&s.metadata.uid));
        let mut stale: Vec<String> = unowned.into_iter().map(|s| s.id).collect();
        stale.extend(rt.orphaned_sandbox_ids());
        let owned: Vec<(String, String)> =
            owned.into_iter().map(|s| (s.id, s.metadata.uid)).collect();
        (owned, stale)
    })
    .await
    .unwrap_or_default();
    for (sid, uid) in &owned {
        node.own_sandbox(sid, uid);
    }
    // CNI CHECK of the adopted sandboxes' networks, in the background: a
    // pod whose interface, address or hostPort rules went missing while
    // the daemon was away is reported (the pod keeps running).
    {
        let rt = runtime.clone();
        let sids: Vec<String> = owned.iter().map(|(s, _)| s.clone()).collect();
        tokio::task::spawn_blocking(move || {
            for sid in sids {
                if let Err(e) = rt.check_pod_network(&sid) {
                    tracing::warn!(sandbox = %sid, "CNI CHECK of an adopted sandbox failed: {e}");
                    eprintln!("peapod: warning: sandbox {sid}: CNI CHECK failed: {e}");
                }
            }
        });
    }
    for sid in stale {
        tracing::info!(sandbox = %sid, "removing a sandbox no pod owns");
        let rt = runtime.clone();
        let _ = tokio::task::spawn_blocking(move || rt.remove_pod_sandbox(&sid)).await;
    }
    for p in &pods {
        node.ensure_worker(p);
    }

    if let Some(parent) = opts.socket.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let _ = std::fs::remove_file(&opts.socket);
    let listener = tokio::net::UnixListener::bind(&opts.socket).map_err(io(&opts.socket))?;
    tracing::info!(socket = %opts.socket.display(), root = %opts.root.display(), cgroups = runtime.cgroups.version(), "peapod daemon serving");
    eprintln!("peapod: serving on {}", opts.socket.display());

    crate::server::resume_namespace_deletions(&node);
    // Workload controllers and the garbage collector: each resyncs every
    // object it owns first.
    crate::controllers::run_all(node.clone());
    let app = crate::server::router(node.clone());
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("peapod: daemon stopping; pods keep running");
    };
    let cri_socket = peapod_cri::socket_path(&opts.state);
    let (cri_stop, mut cri_stopped) = tokio::sync::watch::channel(false);
    let cri_task = {
        let socket = cri_socket.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = cri_stopped.changed().await;
            };
            if let Err(e) = peapod_cri::serve(cri, &socket, stop).await {
                tracing::error!("CRI server on {}: {e}", socket.display());
                eprintln!("peapod: CRI server on {}: {e}", socket.display());
            }
        })
    };
    eprintln!("peapod: CRI v1 on {}", cri_socket.display());
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = cri_stop.send(true);
    let _ = cri_task.await;
    let _ = std::fs::remove_file(&opts.socket);
    let _ = std::fs::remove_file(&events_path);
    let rt = runtime.clone();
    let _ = tokio::task::spawn_blocking(move || rt.release()).await;
    if let Err(e) = node.store.flush() {
        tracing::warn!("object store: flushing events at shutdown: {e}");
    }
    res.map_err(io(&opts.socket))
}

/// How often events written without an fsync are made durable.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often expired events are removed.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Make lazily written events durable every second; expire events older
/// than the event TTL every minute.
async fn housekeeping(node: Arc<Node>) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                let n = node.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || n.store.flush()).await {
                    tracing::warn!("object store: flushing events: {e}");
                }
            }
            _ = sweep.tick() => {
                let n = node.clone();
                match tokio::task::spawn_blocking(move || n.events.sweep(crate::events::TTL)).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(removed)) => tracing::debug!(removed, "expired events removed"),
                    Ok(Err(e)) => tracing::warn!("expiring events: {e}"),
                }
            }
        }
    }
}
