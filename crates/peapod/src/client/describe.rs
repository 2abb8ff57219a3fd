//! `peapod describe pod`: kubectl's `describePod`
//! (staging/src/k8s.io/kubectl/pkg/describe/describe.go), through the same
//! tabwriter settings (min width 0, padding 2).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, EnvVar, Event, Pod, Probe, ResourceRequirements,
    Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

use super::table::{age, human_duration, rfc1123z, tabwrite, to_chrono};
use super::transport::{encode, pod_path, Client};

/// `peapod describe pod NAME -n NS`: the pod and its events, as kubectl
/// describe prints them.
pub async fn describe(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let pod: Pod = client.get_json(&pod_path(namespace, name)).await?;
    let path = format!(
        "/api/v1/namespaces/{}/events?fieldSelector={}",
        encode(namespace),
        encode(&format!("involvedObject.name={name}"))
    );
    // kubectl describes the pod even when its events cannot be listed.
    let events = match client.get_json::<EventList>(&path).await {
        Ok(list) => list.items,
        Err(_) => Vec::new(),
    };
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref().is_none_or(|n| n == name)
                && match (&e.involved_object.uid, &pod.metadata.uid) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
        .collect();
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let text = describe_pod(&pod, &events, &hostname, Utc::now());
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// An `EventList`, tolerant of a missing `items`.
#[derive(Debug, Default, Deserialize)]
struct EventList {
    #[serde(default)]
    items: Vec<Event>,
}

/// kubectl's `PrefixWriter`: each level indents by two spaces.
pub(super) struct Writer {
    pub(super) out: String,
}

impl Writer {
    pub(super) fn write(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
    }
}

/// The text of `kubectl describe pod`, laid out.
pub fn describe_pod(pod: &Pod, events: &[Event], hostname: &str, now: DateTime<Utc>) -> String {
    let mut w = Writer { out: String::new() };
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();

    w.write(
        0,
        &format!("Name:\t{}\n", meta.name.as_deref().unwrap_or("")),
    );
    w.write(
        0,
        &format!("Namespace:\t{}\n", meta.namespace.as_deref().unwrap_or("")),
    );
    w.write(0, &format!("Priority:\t{}\n", spec.priority.unwrap_or(0)));
    if let Some(class) = non_empty(&spec.priority_class_name) {
        w.write(0, &format!("Priority Class Name:\t{class}\n"));
    }
    if let Some(class) = non_empty(&spec.runtime_class_name) {
        w.write(0, &format!("Runtime Class Name:\t{class}\n"));
    }
    if let Some(sa) = non_empty(&spec.service_account_name) {
        w.write(0, &format!("Service Account:\t{sa}\n"));
    }
    let node = non_empty(&spec.node_name).unwrap_or(hostname);
    match non_empty(&status.host_ip) {
        _ if node.is_empty() => w.write(0, "Node:\t<none>\n"),
        Some(ip) => w.write(0, &format!("Node:\t{node}/{ip}\n")),
        None => w.write(0, &format!("Node:\t{node}\n")),
    }
    if status.start_time.is_some() {
        w.write(
            0,
            &format!("Start Time:\t{}\n", rfc1123z(status.start_time.as_ref())),
        );
    }
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    let phase = status.phase.clone().unwrap_or_default();
    if meta.deletion_timestamp.is_some() && phase != "Failed" && phase != "Succeeded" {
        w.write(
            0,
            &format!(
                "Status:\tTerminating (lasts {})\n",
                age(meta.deletion_timestamp.as_ref(), now)
            ),
        );
        w.write(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                meta.deletion_grace_period_seconds.unwrap_or(0)
            ),
        );
    } else {
        w.write(0, &format!("Status:\t{phase}\n"));
    }
    if let Some(reason) = non_empty(&status.reason) {
        w.write(0, &format!("Reason:\t{reason}\n"));
    }
    if let Some(message) = non_empty(&status.message) {
        w.write(0, &format!("Message:\t{message}\n"));
    }
    w.write(
        0,
        &format!("IP:\t{}\n", status.pod_ip.as_deref().unwrap_or("")),
    );
    match status.pod_ips.as_deref() {
        Some(ips) if !ips.is_empty() => {
            w.write(0, "IPs:\n");
            for ip in ips {
                w.write(1, &format!("IP:\t{}\n", ip.ip));
            }
        }
        _ => w.write(0, "IPs:\t<none>\n"),
    }
    if let Some(owner) = meta
        .owner_references
        .as_deref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
    {
        w.write(
            0,
            &format!("Controlled By:\t{}/{}\n", owner.kind, owner.name),
        );
    }
    if let Some(nominated) = non_empty(&status.nominated_node_name) {
        w.write(0, &format!("NominatedNodeName:\t{nominated}\n"));
    }

    let env = EnvResolver { pod, hostname };
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        containers(
            &mut w,
            "Init Containers",
            init,
            status.init_container_statuses.as_deref().unwrap_or(&[]),
            &env,
        );
    }
    containers(
        &mut w,
        "Containers",
        &spec.containers,
        status.container_statuses.as_deref().unwrap_or(&[]),
        &env,
    );

    if let Some(gates) = spec.readiness_gates.as_deref().filter(|g| !g.is_empty()) {
        w.write(0, "Readiness Gates:\n  Type\tStatus\n");
        let conditions = status.conditions.as_deref().unwrap_or(&[]);
        for gate in gates {
            let value = conditions
                .iter()
                .find(|c| c.type_ == gate.condition_type)
                .map(|c| c.status.clone())
                .unwrap_or_else(|| "<none>".to_string());
            w.write(1, &format!("{} \t{} \n", gate.condition_type, value));
        }
    }
    if let Some(conditions) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.write(1, &format!("{} \t{} \n", c.type_, c.status));
        }
    }
    volumes(&mut w, spec.volumes.as_deref().unwrap_or(&[]));
    let qos = non_empty(&status.qos_class)
        .map(str::to_string)
        .unwrap_or_else(|| qos_class(pod).to_string());
    w.write(0, &format!("QoS Class:\t{qos}\n"));
    labels_multiline(&mut w, "Node-Selectors", spec.node_selector.as_ref());
    tolerations(&mut w, spec.tolerations.as_deref().unwrap_or(&[]));
    describe_events(&mut w, events, now);
    tabwrite(&w.out, 0, 2)
}

pub(super) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

pub(super) fn labels_multiline(
    w: &mut Writer,
    title: &str,
    labels: Option<&BTreeMap<String, String>>,
) {
    w.write(0, &format!("{title}:\t"));
    let labels = match labels {
        Some(l) if !l.is_empty() => l,
        _ => {
            w.write(0, "<none>\n");
            return;
        }
    };
    for (i, (key, value)) in labels.iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        w.write(0, &format!("{key}={value}\n"));
    }
}

const MAX_ANNOTATION_LEN: usize = 140;

pub(super) fn annotations_multiline(
    w: &mut Writer,
    title: &str,
    annotations: Option<&BTreeMap<String, String>>,
) {
    w.write(0, &format!("{title}:\t"));
    let annotations = match annotations {
        Some(a) if !a.is_empty() => a,
        _ => {
            w.write(0, "<none>\n");
            return;
        }
    };
    for (i, (key, value)) in annotations.iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.write(0, &format!("{key}:\n"));
            for line in value.split('\n') {
                w.write(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.write(0, &format!("{key}: {value}\n"));
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

fn containers(
    w: &mut Writer,
    label: &str,
    containers: &[Container],
    statuses: &[ContainerStatus],
    env: &EnvResolver,
) {
    if containers.is_empty() {
        w.write(0, &format!("{label}: <none>\n"));
        return;
    }
    w.write(0, &format!("{label}:\n"));
    for container in containers {
        let status = statuses.iter().find(|s| s.name == container.name);
        w.write(1, &format!("{}:\n", container.name));
        if let Some(status) = status {
            w.write(
                2,
                &format!(
                    "Container ID:\t{}\n",
                    status.container_id.as_deref().unwrap_or("")
                ),
            );
        }
        w.write(
            2,
            &format!("Image:\t{}\n", container.image.as_deref().unwrap_or("")),
        );
        if let Some(status) = status {
            w.write(2, &format!("Image ID:\t{}\n", status.image_id));
        }
        let ports = container.ports.as_deref().unwrap_or(&[]);
        let protocol = |p: &Option<String>| p.clone().unwrap_or_else(|| "TCP".to_string());
        let container_ports: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, protocol(&p.protocol)))
            .collect();
        let host_ports: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(&p.protocol)))
            .collect();
        match container_ports.len() {
            0 => w.write(2, "Port:\t<none>\n"),
            1 => w.write(2, &format!("Port:\t{}\n", container_ports[0])),
            _ => w.write(2, &format!("Ports:\t{}\n", container_ports.join(", "))),
        }
        match host_ports.len() {
            0 => w.write(2, "Host Port:\t<none>\n"),
            1 => w.write(2, &format!("Host Port:\t{}\n", host_ports[0])),
            _ => w.write(2, &format!("Host Ports:\t{}\n", host_ports.join(", "))),
        }
        for (title, list) in [("Command", &container.command), ("Args", &container.args)] {
            if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                w.write(2, &format!("{title}:\n"));
                for item in list {
                    for line in item.split('\n') {
                        w.write(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(status) = status {
            container_state(w, "State", status.state.as_ref());
            let last = status.last_state.as_ref();
            if last.is_some_and(|s| s.terminated.is_some()) {
                container_state(w, "Last State", last);
            }
            w.write(
                2,
                &format!("Ready:\t{}\n", if status.ready { "True" } else { "False" }),
            );
            w.write(2, &format!("Restart Count:\t{}\n", status.restart_count));
        }
        resources(w, container.resources.as_ref());
        for (title, probe) in [
            ("Liveness", &container.liveness_probe),
            ("Readiness", &container.readiness_probe),
            ("Startup", &container.startup_probe),
        ] {
            if let Some(probe) = probe {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(probe)));
            }
        }
        if let Some(env_from) = container.env_from.as_deref().filter(|e| !e.is_empty()) {
            w.write(2, "Environment Variables from:\n");
            for source in env_from {
                let (from, name, optional) = if let Some(r) = &source.config_map_ref {
                    ("ConfigMap", r.name.clone(), r.optional.unwrap_or(false))
                } else if let Some(r) = &source.secret_ref {
                    ("Secret", r.name.clone(), r.optional.unwrap_or(false))
                } else {
                    ("", String::new(), false)
                };
                match non_empty(&source.prefix) {
                    None => w.write(3, &format!("{name}\t{from}\tOptional: {optional}\n")),
                    Some(prefix) => w.write(
                        3,
                        &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                    ),
                }
            }
        }
        environment(w, container, env);
        mounts(w, container);
    }
}

fn container_state(w: &mut Writer, name: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(running) = &state.running {
        w.write(2, &format!("{name}:\tRunning\n"));
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(running.started_at.as_ref())),
        );
    } else if let Some(waiting) = &state.waiting {
        w.write(2, &format!("{name}:\tWaiting\n"));
        if let Some(reason) = non_empty(&waiting.reason) {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
    } else if let Some(t) = &state.terminated {
        w.write(2, &format!("{name}:\tTerminated\n"));
        if let Some(reason) = non_empty(&t.reason) {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
        if let Some(message) = non_empty(&t.message) {
            w.write(3, &format!("Message:\t{message}\n"));
        }
        w.write(3, &format!("Exit Code:\t{}\n", t.exit_code));
        if let Some(signal) = t.signal.filter(|s| *s > 0) {
            w.write(3, &format!("Signal:\t{signal}\n"));
        }
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(t.started_at.as_ref())),
        );
        w.write(
            3,
            &format!("Finished:\t{}\n", rfc1123z(t.finished_at.as_ref())),
        );
    } else {
        w.write(2, &format!("{name}:\tWaiting\n"));
    }
}

fn resources(w: &mut Writer, resources: Option<&ResourceRequirements>) {
    let Some(resources) = resources else {
        return;
    };
    for (title, list) in [
        ("Limits", &resources.limits),
        ("Requests", &resources.requests),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            w.write(2, &format!("{title}:\n"));
            for (name, quantity) in list {
                w.write(3, &format!("{name}:\t{}\n", quantity.0));
            }
        }
    }
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// kubectl's `DescribeProbe`.
fn describe_probe(probe: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        probe.initial_delay_seconds.unwrap_or(0),
        probe.timeout_seconds.unwrap_or(1),
        probe.period_seconds.unwrap_or(10),
        probe.success_threshold.unwrap_or(1),
        probe.failure_threshold.unwrap_or(3),
    );
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default().join(" ");
        format!("exec [{command}] {attrs}")
    } else if let Some(http) = &probe.http_get {
        let scheme = http
            .scheme
            .as_deref()
            .unwrap_or("HTTP")
            .to_ascii_lowercase();
        let host = http.host.as_deref().unwrap_or("");
        let port = int_or_string(&http.port);
        let host = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = http.path.as_deref().unwrap_or("");
        format!("http-get {scheme}://{host}{path} {attrs}")
    } else if let Some(tcp) = &probe.tcp_socket {
        format!(
            "tcp-socket {}:{} {attrs}",
            tcp.host.as_deref().unwrap_or(""),
            int_or_string(&tcp.port)
        )
    } else if let Some(grpc) = &probe.grpc {
        format!(
            "grpc <pod>:{} {} {attrs}",
            grpc.port,
            grpc.service.as_deref().unwrap_or("")
        )
    } else {
        format!("unknown {attrs}")
    }
}

/// Resolves `fieldRef` environment variables the way kubectl describe does
/// (from the pod object).
struct EnvResolver<'a> {
    pod: &'a Pod,
    hostname: &'a str,
}

impl EnvResolver<'_> {
    fn field(&self, path: &str) -> String {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let status = self.pod.status.as_ref();
        let subscript = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("']"))
                .map(str::to_string)
        };
        if let Some(key) = subscript("metadata.labels['") {
            return meta
                .labels
                .as_ref()
                .and_then(|l| l.get(&key).cloned())
                .unwrap_or_default();
        }
        if let Some(key) = subscript("metadata.annotations['") {
            return meta
                .annotations
                .as_ref()
                .and_then(|l| l.get(&key).cloned())
                .unwrap_or_default();
        }
        match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => spec
                .and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| self.hostname.to_string()),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
            "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
            "status.podIPs" => status
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| {
                    ips.iter()
                        .map(|i| i.ip.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

fn environment(w: &mut Writer, container: &Container, resolver: &EnvResolver) {
    let env: &[EnvVar] = container.env.as_deref().unwrap_or(&[]);
    if env.is_empty() {
        w.write(2, "Environment:\t<none>\n");
    } else {
        w.write(2, "Environment:\n");
    }
    for e in env {
        let Some(from) = &e.value_from else {
            let value = e.value.as_deref().unwrap_or("");
            for (i, line) in value.split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{}:\t{line}\n", e.name));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
            continue;
        };
        if let Some(field) = &from.field_ref {
            w.write(
                3,
                &format!(
                    "{}:\t{} ({}:{})\n",
                    e.name,
                    resolver.field(&field.field_path),
                    field.api_version.as_deref().unwrap_or("v1"),
                    field.field_path
                ),
            );
        } else if let Some(resource) = &from.resource_field_ref {
            let value = resource_value(container, &resource.resource);
            w.write(
                3,
                &format!("{}:\t{value} ({})\n", e.name, resource.resource),
            );
        } else if let Some(secret) = &from.secret_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    e.name,
                    secret.key,
                    secret.name,
                    secret.optional.unwrap_or(false)
                ),
            );
        } else if let Some(cm) = &from.config_map_key_ref {
            w.write(
                3,
                &format!(
                    "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    e.name,
                    cm.key,
                    cm.name,
                    cm.optional.unwrap_or(false)
                ),
            );
        }
    }
}

/// The value of a `resourceFieldRef` as kubectl shows it.
fn resource_value(container: &Container, resource: &str) -> String {
    let (kind, name) = match resource.split_once('.') {
        Some(parts) => parts,
        None => return String::new(),
    };
    let resources = container.resources.as_ref();
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    let value = list.and_then(|l| l.get(name));
    match value {
        Some(q) => {
            let parsed = peapod_api::parse_quantity(&q.0).ok();
            match (name, parsed) {
                ("cpu", Some(p)) => ((p.as_millis() + 999) / 1000).to_string(),
                (_, Some(p)) => p.as_bytes().to_string(),
                _ => q.0.clone(),
            }
        }
        None if kind == "limits" && (name == "cpu" || name == "memory") => {
            "node allocatable".to_string()
        }
        None => "0".to_string(),
    }
}

fn mounts(w: &mut Writer, container: &Container) {
    let mut mounts = container.volume_mounts.clone().unwrap_or_default();
    if mounts.is_empty() {
        w.write(2, "Mounts:\t<none>\n");
    } else {
        w.write(2, "Mounts:\n");
    }
    mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    for mount in &mounts {
        let mut flags = vec![if mount.read_only == Some(true) {
            "ro"
        } else {
            "rw"
        }
        .to_string()];
        if let Some(sub) = non_empty(&mount.sub_path) {
            flags.push(format!("path={sub:?}"));
        }
        w.write(
            3,
            &format!(
                "{} from {} ({})\n",
                mount.mount_path,
                mount.name,
                flags.join(",")
            ),
        );
    }
    if let Some(devices) = container
        .volume_devices
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        w.write(2, "Devices:\n");
        for device in devices {
            w.write(3, &format!("{} from {}\n", device.device_path, device.name));
        }
    }
}

fn volumes(w: &mut Writer, volumes: &[Volume]) {
    if volumes.is_empty() {
        w.write(0, "Volumes:\t<none>\n");
        return;
    }
    w.write(0, "Volumes:\n");
    for volume in volumes {
        w.write(1, &format!("{}:\n", volume.name));
        if let Some(hp) = &volume.host_path {
            w.write(
                2,
                &format!(
                    "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                    hp.path,
                    hp.type_.as_deref().unwrap_or("")
                ),
            );
        } else if let Some(ed) = &volume.empty_dir {
            let size = match &ed.size_limit {
                Some(q)
                    if peapod_api::parse_quantity(&q.0)
                        .is_ok_and(|p| !p.is_zero() && !p.is_negative()) =>
                {
                    q.0.clone()
                }
                _ => "<unset>".to_string(),
            };
            w.write(
                2,
                &format!(
                    "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                    ed.medium.as_deref().unwrap_or("")
                ),
            );
        } else if let Some(secret) = &volume.secret {
            w.write(
                2,
                &format!(
                    "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                    secret.secret_name.as_deref().unwrap_or(""),
                    secret.optional.unwrap_or(false)
                ),
            );
        } else if let Some(cm) = &volume.config_map {
            w.write(
                2,
                &format!(
                    "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                    cm.name,
                    cm.optional.unwrap_or(false)
                ),
            );
        } else if let Some(d) = &volume.downward_api {
            w.write(
                2,
                "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n",
            );
            for item in d.items.as_deref().unwrap_or(&[]) {
                if let Some(f) = &item.field_ref {
                    w.write(3, &format!("{} -> {}\n", f.field_path, item.path));
                }
                if let Some(r) = &item.resource_field_ref {
                    w.write(3, &format!("{} -> {}\n", r.resource, item.path));
                }
            }
        } else if let Some(p) = &volume.projected {
            w.write(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for source in p.sources.as_deref().unwrap_or(&[]) {
                let optional = |o: Option<bool>| match o {
                    Some(b) => b.to_string(),
                    None => "<nil>".to_string(),
                };
                if let Some(s) = &source.secret {
                    w.write(
                        2,
                        &format!(
                            "SecretName:\t{}\n    SecretOptionalName:\t{}\n",
                            s.name,
                            optional(s.optional)
                        ),
                    );
                } else if source.downward_api.is_some() {
                    w.write(2, "DownwardAPI:\ttrue\n");
                } else if let Some(c) = &source.config_map {
                    w.write(
                        2,
                        &format!(
                            "ConfigMapName:\t{}\n    ConfigMapOptional:\t{}\n",
                            c.name,
                            optional(c.optional)
                        ),
                    );
                } else if let Some(t) = &source.service_account_token {
                    w.write(
                        2,
                        &format!(
                            "TokenExpirationSeconds:\t{}\n",
                            t.expiration_seconds.unwrap_or(3607)
                        ),
                    );
                }
            }
        } else if let Some(pvc) = &volume.persistent_volume_claim {
            w.write(
                2,
                &format!(
                    "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    pvc.claim_name,
                    pvc.read_only.unwrap_or(false)
                ),
            );
        } else {
            w.write(1, "<unknown>\n");
        }
    }
}

fn tolerations(w: &mut Writer, tolerations: &[k8s_openapi::api::core::v1::Toleration]) {
    w.write(0, "Tolerations:\t");
    if tolerations.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    for (i, t) in tolerations.iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let key = t.key.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        let mut text = key.to_string();
        if !value.is_empty() {
            text.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            text.push_str(&format!(":{effect}"));
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                text.push_str(" op=Exists");
            } else {
                text.push_str("op=Exists");
            }
        }
        if let Some(seconds) = t.toleration_seconds {
            text.push_str(&format!(" for {seconds}s"));
        }
        w.write(0, &format!("{text}\n"));
    }
}

fn micro_age(t: Option<&MicroTime>, now: DateTime<Utc>) -> String {
    match t.and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond())) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

pub(super) fn describe_events(w: &mut Writer, events: &[Event], now: DateTime<Utc>) {
    if events.is_empty() {
        w.write(0, "Events:\t<none>\n");
        return;
    }
    let mut events: Vec<&Event> = events.iter().collect();
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .and_then(to_chrono)
            .or_else(|| {
                e.event_time
                    .as_ref()
                    .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
            })
            .or_else(|| e.first_timestamp.as_ref().and_then(to_chrono))
    };
    events.sort_by_key(|e| when(e));
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.write(1, "----\t------\t----\t----\t-------\n");
    for e in events {
        let first = if e.first_timestamp.is_some() {
            age(e.first_timestamp.as_ref(), now)
        } else {
            micro_age(e.event_time.as_ref(), now)
        };
        let count = e.count.unwrap_or(0);
        let interval = if let Some(series) = &e.series {
            format!(
                "{} (x{} over {first})",
                micro_age(series.last_observed_time.as_ref(), now),
                series.count.unwrap_or(0)
            )
        } else if count > 1 {
            format!(
                "{} (x{count} over {first})",
                age(e.last_timestamp.as_ref(), now)
            )
        } else {
            first
        };
        let source = e
            .source
            .as_ref()
            .and_then(|s| non_empty(&s.component).map(str::to_string))
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        w.write(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{}\n",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            ),
        );
    }
}

/// The QoS class Kubernetes gives a pod (`GetPodQOS`): `BestEffort` when no
/// container has a CPU or memory request or limit, `Guaranteed` when every
/// container has CPU and memory limits equal to its requests, else
/// `Burstable`. Requests left unset default to the limits, as the API server
/// does.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let value = |q: &Quantity| -> i128 {
        peapod_api::parse_quantity(&q.0)
            .map(|p| i128::from(p.as_millis()))
            .unwrap_or(0)
    };
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in all {
        let resources = container.resources.as_ref();
        let container_limits = resources.and_then(|r| r.limits.as_ref());
        let container_requests = resources.and_then(|r| r.requests.as_ref());
        let mut limits_found = 0;
        for name in ["cpu", "memory"] {
            let limit = container_limits.and_then(|l| l.get(name)).map(value);
            let request = container_requests
                .and_then(|r| r.get(name))
                .map(value)
                .or(limit);
            if let Some(request) = request.filter(|r| *r > 0) {
                *requests.entry(name).or_default() += request;
            }
            if let Some(limit) = limit.filter(|l| *l > 0) {
                limits_found += 1;
                *limits.entry(name).or_default() += limit;
            }
        }
        if limits_found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(name, r)| limits.get(name) == Some(r))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        match serde_json::from_value(value) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn repeated_events_fold_as_kubectl_prints_them() {
        let event = |reason: &str, count: i32, first: &str, last: &str, msg: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": format!("web.{reason}")},
                "involvedObject": {"kind": "Pod", "name": "web"},
                "type": if reason == "BackOff" { "Warning" } else { "Normal" },
                "reason": reason, "message": msg, "count": count,
                "firstTimestamp": first, "lastTimestamp": last,
                "source": {"component": "kubelet"}
            }))
            .expect("event")
        };
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut w = Writer { out: String::new() };
        describe_events(
            &mut w,
            &[
                event(
                    "BackOff",
                    3,
                    "2024-01-01T00:05:00Z",
                    "2024-01-01T00:08:00Z",
                    "Back-off restarting failed container app in pod web_default(u)",
                ),
                event(
                    "Pulled",
                    1,
                    "2024-01-01T00:04:30Z",
                    "2024-01-01T00:04:30Z",
                    "Container image \"x\" already present on machine",
                ),
            ],
            now,
        );
        assert_eq!(
            tabwrite(&w.out, 0, 2),
            "Events:\n\
             \x20 Type     Reason   Age              From     Message\n\
             \x20 ----     ------   ----             ----     -------\n\
             \x20 Normal   Pulled   5m30s            kubelet  Container image \"x\" already present on machine\n\
             \x20 Warning  BackOff  2m (x3 over 5m)  kubelet  Back-off restarting failed container app in pod web_default(u)\n"
        );
    }

    #[test]
    fn qos_classes() {
        let with = |resources: serde_json::Value| {
            pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "x", "resources": resources}
            ]}}))
        };
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&with(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "32Mi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "32Mi"},
                                   "requests": {"cpu": "1000m", "memory": "32Mi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "32Mi"},
                                   "requests": {"cpu": "500m"}}))),
            "Burstable"
        );
    }

    #[test]
    fn describe_layout() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "containers": [{"name": "web", "image": "busybox", "command": ["sleep", "3600"],
                    "env": [{"name": "FOO", "value": "bar"}],
                    "resources": {"limits": {"memory": "32Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]
            },
            "status": {"phase": "Running", "podIP": "10.88.0.2", "podIPs": [{"ip": "10.88.0.2"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0,
                    "image": "busybox", "imageID": "sha256:abc", "containerID": "peapod://1",
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }));
        let now = Utc::now();
        let text = describe_pod(&p, &[], "node1", now);
        let want = "\
Name:         web
Namespace:    default
Priority:     0
Node:         node1
Labels:       app=web
              tier=front
Annotations:  <none>
Status:       Running
IP:           10.88.0.2
IPs:
  IP:  10.88.0.2
Containers:
  web:
    Container ID:  peapod://1
    Image:         busybox
    Image ID:      sha256:abc
    Port:          <none>
    Host Port:     <none>
    Command:
      sleep
      3600
    State:          Waiting
      Reason:       ContainerCreating
    Ready:          True
    Restart Count:  0
    Limits:
      memory:  32Mi
    Environment:
      FOO:  bar
    Mounts:
      /data from data (rw)
Conditions:
  Type    Status
  Ready   True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
";
        assert_eq!(text, want);
    }
}
