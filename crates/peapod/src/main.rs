//! `peapod`: the one binary. `serve` runs the node daemon; the other verbs
//! talk to it over its unix socket. Hidden verbs are the roles the daemon
//! runs itself as: `shim` (per-pod supervisor), `shim-helper` (one
//! libcontainer operation) and `infra` (the pod's pause process).

mod client;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

const DEFAULT_SOCKET: &str = "/run/peapod/peapod.sock";

#[derive(Parser)]
#[command(
    name = "peapod",
    version,
    about = "Kubernetes Pods on one Linux machine"
)]
struct Cli {
    /// The daemon's socket.
    #[arg(long, env = "PEAPOD_SOCKET", global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct NsArg {
    /// Namespace.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the node daemon.
    Serve {
        /// Durable data: images, pod volumes, logs, the object store.
        #[arg(long, default_value = "/var/lib/peapod")]
        root: PathBuf,
        /// Runtime state: shim sockets, pinned namespaces.
        #[arg(long, default_value = "/run/peapod")]
        state: PathBuf,
        /// Parent cgroup of every pod cgroup.
        #[arg(long, default_value = "peapod")]
        cgroup_parent: String,
        /// pids limit of each pod cgroup.
        #[arg(long)]
        pod_max_pids: Option<i64>,
        /// Configuration: `registries.toml` (mirrors, insecure registries,
        /// CAs, credentials); `net.d/*.conflist`: the pod network (CNI), the
        /// first file by name; a default (bridge peapod0, 10.85.0.0/16) is
        /// written when there is none.
        #[arg(long, default_value = "/etc/peapod")]
        config_dir: PathBuf,
        /// Directories of the CNI plugin binaries, `:`-separated.
        #[arg(long, default_value = "/usr/lib/cni:/opt/cni/bin")]
        cni_path: String,
        /// Size at which a container's log file is rotated, as kubelet's
        /// containerLogMaxSize (a quantity: 10Mi, 256Ki; 0 turns rotation off).
        #[arg(long, default_value = "10Mi", value_parser = parse_log_size)]
        container_log_max_size: u64,
        /// Log files kept per container, the live one included, as
        /// kubelet's containerLogMaxFiles (at least 2).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
        container_log_max_files: u32,
        /// The range Services' clusterIPs are allocated from.
        #[arg(long, default_value = "10.96.0.0/16")]
        service_cidr: String,
        /// peapod's own nftables table (`table ip NAME`) for Services.
        #[arg(long, default_value = "peapod")]
        nft_table: String,
        /// Masquerade pods' traffic to outside the pod network (table ip
        /// <nft-table>-egress) when the network's bridge plugin does not
        /// (`"ipMasq": false`, as in the default configuration); false for
        /// a routed pod network.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        pod_masquerade: bool,
        /// How often pods' CPU and memory are read for `top` and the
        /// HorizontalPodAutoscaler (metrics-server's --metric-resolution).
        #[arg(long, default_value = "15s", value_parser = parse_interval)]
        metrics_interval: std::time::Duration,
        /// Where the cluster DNS server listens (UDP and TCP), e.g.
        /// 10.85.0.1:53; default: port 53 on the pod network's bridge
        /// gateway.
        #[arg(long)]
        dns_addr: Option<std::net::SocketAddr>,
        /// The cluster domain Services' DNS names are under.
        #[arg(long, default_value = "cluster.local")]
        cluster_domain: String,
    },
    /// Create pods from a manifest file (or - for stdin).
    Apply {
        #[arg(
            short = 'f',
            long = "filename",
            required_unless_present = "kustomize",
            conflicts_with = "kustomize"
        )]
        file: Option<String>,
        /// A kustomization directory (`kustomization.yaml`) to build and apply.
        #[arg(short = 'k', long = "kustomize")]
        kustomize: Option<String>,
    },
    /// Show pods' or the node's CPU and memory use (`top pod`, `top node`).
    Top {
        /// pod (po, pods) | node (no, nodes)
        resource: String,
        name: Option<String>,
        #[command(flatten)]
        ns: NsArg,
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// One line per container.
        #[arg(long)]
        containers: bool,
    },
    /// Print the objects a kustomization directory builds (`kubectl kustomize`).
    Kustomize { dir: String },
    /// List pods, namespaces or nodes, or show one.
    Get {
        /// pods (po) | namespaces (ns) | nodes (no)
        resource: String,
        name: Option<String>,
        #[command(flatten)]
        ns: NsArg,
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// wide | yaml | json | name
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        #[arg(short = 'w', long = "watch")]
        watch: bool,
        /// Label selector: `app=web,tier!=db,env in (a,b),key,!key`.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Field selector: `status.phase=Running,metadata.name!=x`.
        #[arg(long = "field-selector")]
        field_selector: Option<String>,
        /// Add a LABELS column.
        #[arg(long = "show-labels")]
        show_labels: bool,
    },
    /// Show a pod (with its events) or the node in detail.
    Describe {
        /// pod | node
        resource: String,
        name: Option<String>,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Print a container's logs.
    Logs {
        pod: String,
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        #[arg(short = 'f', long = "follow")]
        follow: bool,
        #[arg(long)]
        timestamps: bool,
        #[arg(long)]
        tail: Option<i64>,
        #[arg(short = 'p', long)]
        previous: bool,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Run a command in a container.
    Exec {
        pod: String,
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        #[arg(short = 't', long = "tty")]
        tty: bool,
        #[command(flatten)]
        ns: NsArg,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Forward local ports to a pod: `pod/NAME [LOCAL:]REMOTE...`
    /// (`:REMOTE` picks a free local port).
    PortForward {
        /// `pod/NAME` or `NAME`
        pod: String,
        /// `REMOTE`, `LOCAL:REMOTE` or `:REMOTE`
        #[arg(required = true)]
        ports: Vec<String>,
        /// Addresses to listen on (comma-separated IPs or localhost).
        #[arg(long, default_value = "localhost", value_delimiter = ',')]
        address: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Wait until objects meet a condition, or are deleted (kubectl wait):
    /// `peapod wait --for=condition=Ready pod/web`.
    Wait {
        /// `pod/NAME...`, `pods NAME...`, `deploy/web`, `job/pi`.
        targets: Vec<String>,
        /// `condition=NAME[=VALUE]` (VALUE defaults to True) or `delete`.
        #[arg(long = "for")]
        for_: String,
        /// How long to wait for each (30s, 2m, 1m30s); default 30s.
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Delete pods and wait until they are gone.
    Delete {
        /// `pod NAME...` or `pod/NAME...`
        targets: Vec<String>,
        #[arg(short = 'f', long = "filename")]
        file: Option<String>,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
        #[arg(long = "grace-period")]
        grace_period: Option<i64>,
        /// How long to wait for the pods to go (90s, 2m, 1m30s); by
        /// default the grace period + 30s.
        #[arg(long)]
        timeout: Option<String>,
        /// Delete the pods this label selector selects.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Delete every pod of the namespace.
        #[arg(long)]
        all: bool,
        /// How an owner's dependents go: background (default), foreground
        /// (dependents first) or orphan (they stay).
        #[arg(long, default_value = "background", num_args = 0..=1, default_missing_value = "background")]
        cascade: String,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Show a pod's processes, namespaces and cgroups.
    Inspect {
        resource: String,
        name: String,
        #[command(flatten)]
        ns: NsArg,
        /// json
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// List images.
    Images,
    /// Pull an image from its registry.
    Pull {
        reference: String,
        /// Use the credentials of this kubernetes.io/dockerconfigjson Secret.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Manage images.
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Create an object from the command line.
    Create {
        #[command(subcommand)]
        cmd: CreateCmd,
    },
    /// Manage a Deployment's rollout.
    Rollout {
        #[command(subcommand)]
        cmd: RolloutCmd,
    },
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale {
        /// `deploy/NAME` or `deploy NAME`.
        target: Vec<String>,
        #[arg(long)]
        replicas: i32,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Change a field of an object's pod template.
    Set {
        #[command(subcommand)]
        cmd: SetCmd,
    },
    #[command(hide = true)]
    Shim {
        #[arg(long)]
        dir: PathBuf,
    },
    #[command(hide = true, name = "shim-helper")]
    ShimHelper { action: String },
    #[command(hide = true)]
    Infra,
}

/// `--from-literal`, `--from-file`, `--from-env-file` (repeatable).
#[derive(clap::Args)]
struct FromArgs {
    /// key=value (repeatable).
    #[arg(long = "from-literal")]
    from_literal: Vec<String>,
    /// [key=]path: a file, or a directory of files (repeatable).
    #[arg(long = "from-file")]
    from_file: Vec<String>,
    /// A file of KEY=value lines (repeatable).
    #[arg(long = "from-env-file")]
    from_env_file: Vec<String>,
    /// none | client: with client, print the object without creating it.
    #[arg(long = "dry-run", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: String,
    /// yaml | json | name: print the object.
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
}

impl FromArgs {
    fn options(self, secret_type: Option<String>) -> client::config::CreateOptions {
        client::config::CreateOptions {
            sources: client::config::Sources {
                literals: self.from_literal,
                files: self.from_file,
                env_files: self.from_env_file,
            },
            dry_run: self.dry_run,
            output: self.output,
            secret_type,
        }
    }
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Follow a rollout until it is complete.
    Status {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
        /// Give up after this long (90s, 2m).
        #[arg(long)]
        timeout: Option<String>,
    },
    /// List the revisions (or show one).
    History {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Go back to the previous revision (or --to-revision).
    Undo {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
        #[arg(long = "to-revision", default_value_t = 0)]
        to_revision: i64,
    },
    /// Stop rolling out template changes.
    Pause {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Roll out template changes again.
    Resume {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Replace every pod, rolling.
    Restart {
        target: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
    },
}

#[derive(Subcommand)]
enum SetCmd {
    /// `set image deploy/NAME CONTAINER=IMAGE...`.
    Image {
        /// `deploy/NAME CONTAINER=IMAGE...` (or `deploy NAME C=I...`).
        args: Vec<String>,
        #[command(flatten)]
        ns: NsArg,
    },
}

#[derive(Subcommand)]
enum CreateCmd {
    /// Create a ConfigMap from literals, files or env files.
    #[command(name = "configmap", visible_alias = "cm")]
    ConfigMap {
        name: String,
        #[command(flatten)]
        from: FromArgs,
        #[command(flatten)]
        ns: NsArg,
    },
    /// Create a Secret (`secret generic NAME`).
    Secret {
        #[command(subcommand)]
        cmd: CreateSecretCmd,
    },
    /// Create a namespace.
    #[command(alias = "ns")]
    Namespace { name: String },
}

#[derive(Subcommand)]
enum CreateSecretCmd {
    /// A generic (Opaque) Secret from literals, files or env files.
    Generic {
        name: String,
        #[command(flatten)]
        from: FromArgs,
        /// The Secret's type (default Opaque).
        #[arg(long = "type")]
        type_: Option<String>,
        #[command(flatten)]
        ns: NsArg,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Import an OCI image layout tarball or a `docker save` archive.
    Import {
        file: PathBuf,
        /// Name for an archive that carries none.
        #[arg(long)]
        name: Option<String>,
    },
    /// List images.
    Ls,
    /// Remove images (untag a name, or remove an id); refused while a pod uses one.
    Rm { references: Vec<String> },
    /// Remove unused data: with -a, every image no pod uses.
    Prune {
        #[arg(short = 'a', long = "all")]
        all: bool,
    },
    /// Write images to an OCI layout tarball or a `docker save` archive.
    Export {
        references: Vec<String>,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// oci | docker
        #[arg(long, default_value = "oci")]
        format: String,
    },
}

/// `--container-log-max-size`: a Kubernetes quantity in bytes.
fn parse_log_size(s: &str) -> Result<u64, String> {
    let q = peapod_api::parse_quantity(s)?;
    u64::try_from(q.as_bytes()).map_err(|_| format!("{s:?} must not be negative"))
}

fn check_pod_resource(r: &str) -> anyhow::Result<()> {
    match r {
        "pod" | "pods" | "po" => Ok(()),
        other => anyhow::bail!(
            "error: the server doesn't have a resource type \"{other}\" (peapod serves pods)"
        ),
    }
}

/// The API resource for a kind the CLI names (`pod`, `secret`...).
fn resource_of(r: &str) -> anyhow::Result<&'static str> {
    match r {
        "pod" | "pods" | "po" => Ok("pods"),
        "secret" | "secrets" => Ok("secrets"),
        "configmap" | "configmaps" | "cm" => Ok("configmaps"),
        "namespace" | "namespaces" | "ns" => Ok("namespaces"),
        "service" | "services" | "svc" => Ok("services"),
        other => match client::workloads::kind(other) {
            Some(k) => Ok(k.plural),
            None => anyhow::bail!("error: the server doesn't have a resource type \"{other}\" (peapod serves pods, services, configmaps, secrets, namespaces, {})", workload_words()),
        },
    }
}

/// `get deploy/web` as `get deploy web` (kubectl's TYPE/NAME form).
fn split_type_name(resource: String, name: Option<String>) -> (String, Option<String>) {
    match (resource.split_once('/'), &name) {
        (Some((r, n)), None) if !r.is_empty() && !n.is_empty() => {
            (r.to_string(), Some(n.to_string()))
        }
        _ => (resource, name),
    }
}

/// `deployments, replicasets, ...`.
fn workload_words() -> String {
    peapod_api::KINDS
        .iter()
        .map(|k| k.plural)
        .collect::<Vec<_>>()
        .join(", ")
}

fn delete_targets(targets: &[String], ns: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    let mut it = targets.iter().peekable();
    if let Some(first) = it.peek() {
        if !first.contains('/') {
            let resource = resource_of(first)?;
            it.next();
            for n in it {
                out.push((resource.to_string(), ns.to_string(), n.clone()));
            }
            if out.is_empty() {
                anyhow::bail!("error: resource(s) were provided, but no name was specified");
            }
            return Ok(out);
        }
    }
    for t in it {
        let (r, n) = t.split_once('/').unwrap_or(("", t));
        out.push((resource_of(r)?.to_string(), ns.to_string(), n.to_string()));
    }
    Ok(out)
}

fn tokio_main(socket: PathBuf, cmd: Cmd) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let c = client::Client::new(socket.clone());
        match cmd {
            Cmd::Serve { root, state, cgroup_parent, pod_max_pids, config_dir, cni_path, container_log_max_size, container_log_max_files, service_cidr, nft_table, pod_masquerade, metrics_interval, dns_addr, cluster_domain } => {
                let socket = if socket == std::path::Path::new(DEFAULT_SOCKET) { state.join("peapod.sock") } else { socket };
                // The per-pod processes run the small `peapod-shim` beside
                // this binary when it is there, else this binary's hidden
                // subcommands.
                let me = std::fs::read_link("/proc/self/exe")?;
                let exe = me.with_file_name("peapod-shim");
                let exe = if exe.is_file() { exe } else { me };
                let log_rotation = peapod_shim::LogRotation { max_size: container_log_max_size, max_files: container_log_max_files };
                let cni_path = cni_path.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect();
                peapod_node::serve(peapod_node::DaemonOptions { root, state, cgroup_parent, socket, pod_max_pids, exe, config_dir, cni_path, log_rotation, service_cidr, nft_table, pod_masquerade, metrics_interval, dns_addr, cluster_domain })
                    .await
                    .map_err(|e| anyhow::anyhow!("peapod serve: {e}"))?;
                Ok(0)
            }
            Cmd::Apply { file, kustomize } => match (file, kustomize) {
                (_, Some(dir)) => client::apply_kustomization(&c, &dir).await.map(|_| 0),
                (Some(file), None) => client::apply(&c, &file).await.map(|_| 0),
                (None, None) => Err(anyhow::anyhow!("error: must specify one of -f and -k")),
            },
            Cmd::Top { resource, name, ns, all_namespaces, selector, containers } => match resource.as_str() {
                "pod" | "pods" | "po" => client::top::top_pods(&c, client::top::TopPods {
                    namespace: &ns.namespace,
                    all_namespaces,
                    name: name.as_deref(),
                    selector: selector.as_deref(),
                    containers,
                }).await.map(|_| 0),
                "node" | "nodes" | "no" => client::top::top_nodes(&c, name.as_deref()).await.map(|_| 0),
                other => Err(anyhow::anyhow!("error: top {other:?}: use `top pod` or `top node`")),
            },
            Cmd::Kustomize { dir } => {
                print!("{}", client::kustomize::build(&client::kustomize::dir_arg(&dir)?)?);
                Ok(0)
            }
            Cmd::Get { resource, name, ns, all_namespaces, output, watch, selector, field_selector, show_labels } => {
                let (resource, name) = split_type_name(resource, name);
                let output = client::Output::parse(output.as_deref())?;
                if let Some(r) = client::services::resource(&resource) {
                    if watch {
                        anyhow::bail!("error: -w is supported for pods only");
                    }
                    return client::services::get(&c, r, name.as_deref(), &ns.namespace, all_namespaces, output).await.map(|_| 0);
                }
                if let Some(r) = client::config::resource(&resource) {
                    if watch {
                        anyhow::bail!("error: -w is supported for pods only");
                    }
                    return client::config::get(&c, r, name.as_deref(), &ns.namespace, all_namespaces, output).await.map(|_| 0);
                }
                if let Some(k) = client::workloads::kind(&resource) {
                    if watch {
                        anyhow::bail!("error: -w is supported for pods only");
                    }
                    return client::workloads::get(&c, k, name.as_deref(), &ns.namespace, all_namespaces, output, selector.as_deref()).await.map(|_| 0);
                }
                let cluster = match resource.as_str() {
                    "namespace" | "namespaces" | "ns" => Some(client::Kind::Namespace),
                    "node" | "nodes" | "no" => Some(client::Kind::Node),
                    _ => None,
                };
                if let Some(kind) = cluster {
                    return client::get_cluster(&c, kind, name.as_deref(), output, selector.as_deref(), show_labels).await.map(|_| 0);
                }
                check_pod_resource(&resource)?;
                client::get(&c, client::GetArgs { name, namespace: ns.namespace, all_namespaces, output, watch, label_selector: selector, field_selector, show_labels }).await.map(|_| 0)
            }
            Cmd::Rollout { cmd } => match cmd {
                RolloutCmd::Status { target, ns, timeout } => {
                    let timeout = match timeout {
                        Some(t) => client::parse_timeout(&t)?,
                        None => None,
                    };
                    client::rollout::status(&c, &target, &ns.namespace, timeout).await.map(|_| 0)
                }
                RolloutCmd::History { target, ns, revision } => client::rollout::history(&c, &target, &ns.namespace, revision).await.map(|_| 0),
                RolloutCmd::Undo { target, ns, to_revision } => client::rollout::undo(&c, &target, &ns.namespace, to_revision).await.map(|_| 0),
                RolloutCmd::Pause { target, ns } => client::rollout::pause(&c, &target, &ns.namespace, true).await.map(|_| 0),
                RolloutCmd::Resume { target, ns } => client::rollout::pause(&c, &target, &ns.namespace, false).await.map(|_| 0),
                RolloutCmd::Restart { target, ns } => client::rollout::restart(&c, &target, &ns.namespace).await.map(|_| 0),
            },
            Cmd::Scale { target, replicas, ns } => client::rollout::scale(&c, &target, &ns.namespace, replicas).await.map(|_| 0),
            Cmd::Set { cmd: SetCmd::Image { args, ns } } => {
                // The target is `TYPE/NAME` or `TYPE NAME`; the rest are C=I.
                let split = if args.first().is_some_and(|a| a.contains('/')) { 1 } else { 2 };
                if args.len() <= split {
                    anyhow::bail!("error: usage: peapod set image deploy/NAME CONTAINER=IMAGE...");
                }
                client::rollout::set_image(&c, &args[..split], &ns.namespace, &args[split..]).await.map(|_| 0)
            }
            Cmd::Create { cmd: CreateCmd::Namespace { name } } => client::create_namespace(&c, &name).await.map(|_| 0),
            Cmd::Describe { resource, name, ns } => {
                let (resource, name) = split_type_name(resource, name);
                if client::services::resource(&resource) == Some("services") {
                    let name = name.ok_or_else(|| anyhow::anyhow!("error: you must specify the name of the service to describe"))?;
                    return client::services::describe(&c, &ns.namespace, &name).await.map(|_| 0);
                }
                if let Some(r) = client::config::resource(&resource) {
                    let name = name.ok_or_else(|| anyhow::anyhow!("error: you must specify the name of the {resource} to describe"))?;
                    return client::config::describe(&c, r, &ns.namespace, &name).await.map(|_| 0);
                }
                if let Some(k) = client::workloads::kind(&resource) {
                    let name = name.ok_or_else(|| anyhow::anyhow!("error: you must specify the name of the {} to describe", k.singular))?;
                    return client::workloads::describe(&c, k, &ns.namespace, &name).await.map(|_| 0);
                }
                if matches!(resource.as_str(), "node" | "nodes" | "no") {
                    return client::describe_node(&c, name.as_deref()).await.map(|_| 0);
                }
                check_pod_resource(&resource)?;
                let name = name.ok_or_else(|| anyhow::anyhow!("error: you must specify the name of the pod to describe"))?;
                client::describe(&c, &ns.namespace, &name).await.map(|_| 0)
            }
            Cmd::Logs { pod, container, follow, timestamps, tail, previous, ns } => {
                let pod = pod.strip_prefix("pod/").unwrap_or(&pod).to_string();
                client::logs(&c, &ns.namespace, &pod, container, follow, timestamps, tail, previous).await.map(|_| 0)
            }
            Cmd::Exec { pod, container, stdin, tty, ns, command } => {
                let pod = pod.strip_prefix("pod/").unwrap_or(&pod).to_string();
                client::exec(&c, &ns.namespace, &pod, container, command, stdin, tty).await
            }
            Cmd::PortForward { pod, ports, address, ns } => {
                let pod = match pod.split_once('/') {
                    Some(("pod" | "pods" | "po", name)) => name.to_string(),
                    Some((kind, _)) => anyhow::bail!("error: port-forward works on pods, not {kind:?}: give pod/NAME or NAME"),
                    None => pod,
                };
                client::port_forward(&c, &ns.namespace, &pod, &ports, &address).await
            }
            Cmd::Delete { targets, file, wait, grace_period, timeout, ns, selector, all, cascade } => {
                let cascade = client::Cascade::parse(&cascade)?;
                let timeout = match timeout {
                    Some(t) => client::parse_timeout(&t)?,
                    None => None,
                };
                let mut t = if selector.is_some() || all {
                    // `delete pods -l SEL` / `delete pods --all`.
                    let workload = match targets.as_slice() {
                        [r] if resource_of(r)? == "pods" => None,
                        [r] if client::workloads::kind(r).is_some() => client::workloads::kind(r),
                        _ => anyhow::bail!("error: -l and --all delete pods or workloads: `peapod delete pods -l app=web` or `peapod delete deploy --all`"),
                    };
                    if let Some(k) = workload {
                        let names = client::workloads::names(&c, k, &ns.namespace, selector.as_deref()).await?;
                        if names.is_empty() {
                            eprintln!("No resources found");
                            return Ok(0);
                        }
                        let t = names.into_iter().map(|n| (k.plural.to_string(), ns.namespace.clone(), n)).collect();
                        return client::delete(&c, t, wait, grace_period, timeout, cascade).await.map(|_| 0);
                    }
                    let names = client::pod_names(&c, &ns.namespace, selector.as_deref()).await?;
                    if names.is_empty() {
                        eprintln!("No resources found");
                        return Ok(0);
                    }
                    names.into_iter().map(|n| ("pods".to_string(), ns.namespace.clone(), n)).collect()
                } else {
                    delete_targets(&targets, &ns.namespace)?
                };
                if let Some(f) = file {
                    t.extend(client::delete_targets_from_file(&f)?);
                }
                if t.is_empty() {
                    anyhow::bail!("error: you must specify the pods to delete: `peapod delete pod NAME`, `pod/NAME` or `-f FILE`");
                }
                client::delete(&c, t, wait, grace_period, timeout, cascade).await.map(|_| 0)
            }
            Cmd::Wait { targets, for_, timeout, ns } => {
                let what = client::wait::For::parse(&for_)?;
                let timeout = client::parse_timeout(&timeout)?.unwrap_or(std::time::Duration::from_secs(30));
                let targets = client::wait::Target::parse(&targets, &ns.namespace)?;
                client::wait::wait(&c, &targets, &what, timeout).await.map(|_| 0)
            }
            Cmd::Inspect { resource, name, ns, output } => {
                check_pod_resource(&resource)?;
                client::inspect(&c, &ns.namespace, &name, output.as_deref() == Some("json")).await.map(|_| 0)
            }
            Cmd::Images | Cmd::Image { cmd: ImageCmd::Ls } => client::images(&c).await.map(|_| 0),
            Cmd::Pull { reference, secret, ns } => client::pull(&c, &reference, secret.as_deref(), &ns.namespace).await.map(|_| 0),
            Cmd::Image { cmd: ImageCmd::Import { file, name } } => client::image_import(&c, &file, name).await.map(|_| 0),
            Cmd::Image { cmd: ImageCmd::Rm { references } } => client::image_rm(&c, &references).await.map(|_| 0),
            Cmd::Image { cmd: ImageCmd::Prune { all } } => client::image_prune(&c, all).await.map(|_| 0),
            Cmd::Image { cmd: ImageCmd::Export { references, output, format } } => {
                client::image_export(&c, &references, &output, &format).await.map(|_| 0)
            }
            Cmd::Create { cmd: CreateCmd::ConfigMap { name, from, ns } } => {
                client::config::create(&c, "configmaps", &ns.namespace, &name, from.options(None)).await.map(|_| 0)
            }
            Cmd::Create { cmd: CreateCmd::Secret { cmd: CreateSecretCmd::Generic { name, from, type_, ns } } } => {
                client::config::create(&c, "secrets", &ns.namespace, &name, from.options(type_)).await.map(|_| 0)
            }
            Cmd::Shim { .. } | Cmd::ShimHelper { .. } | Cmd::Infra => Ok(0),
        }
    })
}

fn main() {
    let cli = Cli::parse();
    // The roles below run without a tokio runtime of this function's: the
    // shim builds its own single-threaded one, the helper and infra none.
    let code = match cli.cmd {
        Cmd::Shim { dir } => peapod_shim::server::main(&dir),
        Cmd::ShimHelper { action } => peapod_shim::helper::run(&action),
        Cmd::Infra => peapod_shim::infra::run(),
        cmd => {
            if matches!(cmd, Cmd::Serve { .. }) {
                // libcgroups warns of every v1 controller the host does not
                // mount each time the runtime looks at a cgroup.
                let filter =
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                        tracing_subscriber::EnvFilter::new("info,libcgroups=error")
                    });
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init();
            }
            match tokio_main(cli.socket, cmd) {
                Ok(code) => code,
                Err(e) => {
                    let msg = e.to_string();
                    if msg.starts_with("error:")
                        || msg.starts_with("Error from server")
                        || msg.starts_with("The ")
                    {
                        eprintln!("{msg}");
                    } else {
                        eprintln!("error: {msg}");
                    }
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

/// `--metrics-interval`: a duration such as 15s, 500ms or 1m (at least 100ms).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match client::parse_timeout(text) {
        Ok(Some(d)) if d >= std::time::Duration::from_millis(100) => Ok(d),
        _ => Err(format!(
            "{text:?}: use a duration of at least 100ms, such as 15s or 500ms"
        )),
    }
}
