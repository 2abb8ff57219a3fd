//! One probe or lifecycle handler (exec, httpGet, tcpSocket, sleep), made
//! from the spec and run to an [`Outcome`]. Blocking: call it off the
//! async threads.

use super::{grpc, http, tcp};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use peapod_runtime::{PodSandboxStatus, Runtime};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Exec(Vec<String>),
    Http(http::Get),
    Tcp { host: String, port: u16 },
    Grpc { port: u16, service: Option<String> },
    Sleep(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success, with the handler's output.
    Success(String),
    /// Failure, with what went wrong (a command's output, an HTTP status).
    Failure(String),
    /// The handler could not be run at all (kubelet's probe error: the
    /// result is not counted).
    Error(String),
}

/// Where a handler runs: the container (exec) and its pod's network.
#[derive(Clone)]
pub struct Target {
    pub runtime: std::sync::Arc<Runtime>,
    pub container_id: String,
    pub net: PodNet,
}

/// Where a pod's network handlers (httpGet, tcpSocket, grpc) connect.
/// As kubelet: from the host's network namespace to the pod's IP (the
/// default host) or to the handler's `host`. A pod without an IP of its
/// own (hostNetwork, whose IP is the host's 127.0.0.1 here, or a sandbox
/// without CNI) is reached at 127.0.0.1 in its network namespace (the
/// host's for hostNetwork).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNet {
    /// The pod's pinned network namespace (`None` with hostNetwork).
    pub netns: Option<PathBuf>,
    /// The pod's primary IP from CNI.
    pub ip: Option<String>,
}

impl PodNet {
    /// The network of a pod's (current) sandbox.
    pub fn of(sandbox: Option<&PodSandboxStatus>) -> PodNet {
        PodNet {
            netns: sandbox.and_then(|s| s.netns.clone()),
            ip: sandbox.and_then(|s| Some(s.network.as_ref()?.ip.clone())),
        }
    }

    /// The namespace to connect from and the host to connect to, for a
    /// handler's `host` (empty: the pod's IP).
    pub fn endpoint(&self, host: &str) -> (Option<&Path>, String) {
        match &self.ip {
            Some(ip) if host.is_empty() => (None, ip.clone()),
            Some(_) => (None, host.to_string()),
            None if host.is_empty() => (self.netns.as_deref(), "127.0.0.1".into()),
            None => (self.netns.as_deref(), host.to_string()),
        }
    }
}

/// A port given by number or by the name of one of the container's ports.
fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("port {n} is out of range 1-65535")),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .and_then(|cp| u16::try_from(cp.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "container {:?} has no port named {s:?} (spec ports[].name)",
                        c.name
                    )
                })
        }
    }
}

/// The host handlers connect to; empty for the pod's IP (see [`PodNet`]).
fn host(h: &Option<String>) -> String {
    h.clone().unwrap_or_default()
}

fn exec(e: &ExecAction) -> Handler {
    Handler::Exec(e.command.clone().unwrap_or_default())
}

fn http_get(g: &HTTPGetAction, c: &Container) -> Result<Handler, String> {
    Ok(Handler::Http(http::Get {
        scheme: g.scheme.clone().unwrap_or_else(|| "HTTP".into()),
        host: host(&g.host),
        port: port(&g.port, c)?,
        path: g.path.clone().unwrap_or_else(|| "/".into()),
        headers: g
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    }))
}

fn tcp_socket(t: &TCPSocketAction, c: &Container) -> Result<Handler, String> {
    Ok(Handler::Tcp {
        host: host(&t.host),
        port: port(&t.port, c)?,
    })
}

impl Handler {
    /// The handler of a probe (`None`: no handler peapod runs).
    pub fn of_probe(p: &Probe, c: &Container) -> Option<Result<Handler, String>> {
        if let Some(e) = &p.exec {
            return Some(Ok(exec(e)));
        }
        if let Some(g) = &p.http_get {
            return Some(http_get(g, c));
        }
        if let Some(t) = &p.tcp_socket {
            return Some(tcp_socket(t, c));
        }
        if let Some(g) = &p.grpc {
            return Some(
                u16::try_from(g.port)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|port| Handler::Grpc {
                        port,
                        service: g.service.clone().filter(|s| !s.is_empty()),
                    })
                    .ok_or_else(|| format!("grpc port {} is out of range 1-65535", g.port)),
            );
        }
        None
    }

    /// The handler of a lifecycle hook.
    pub fn of_hook(h: &LifecycleHandler, c: &Container) -> Option<Result<Handler, String>> {
        if let Some(e) = &h.exec {
            return Some(Ok(exec(e)));
        }
        if let Some(g) = &h.http_get {
            return Some(http_get(g, c));
        }
        if let Some(t) = &h.tcp_socket {
            return Some(tcp_socket(t, c));
        }
        if let Some(s) = &h.sleep {
            return Some(Ok(Handler::Sleep(Duration::from_secs(
                s.seconds.max(0) as u64
            ))));
        }
        None
    }

    /// Run the handler; `timeout` bounds it (`None`: no bound, as kubelet
    /// runs postStart).
    pub fn run(&self, t: &Target, timeout: Option<Duration>) -> Outcome {
        match self {
            Handler::Exec(cmd) => match t.runtime.exec_sync(&t.container_id, cmd, timeout) {
                Ok(r) => {
                    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                    out.push_str(&String::from_utf8_lossy(&r.stderr));
                    if r.timed_out {
                        Outcome::Failure(format!("command {:?} timed out", cmd.join(" ")))
                    } else if r.exit_code == 0 {
                        Outcome::Success(out)
                    } else if out.is_empty() {
                        Outcome::Failure(format!(
                            "command {:?} exited with {}",
                            cmd.join(" "),
                            r.exit_code
                        ))
                    } else {
                        Outcome::Failure(out)
                    }
                }
                Err(e) => Outcome::Error(e.to_string()),
            },
            Handler::Http(g) => {
                let (netns, host) = t.net.endpoint(&g.host);
                let g = http::Get { host, ..g.clone() };
                http::probe(netns, &g, timeout.unwrap_or(Duration::from_secs(3600)))
            }
            Handler::Tcp { host, port } => {
                let (netns, host) = t.net.endpoint(host);
                tcp::probe(
                    netns,
                    &host,
                    *port,
                    timeout.unwrap_or(Duration::from_secs(3600)),
                )
            }
            Handler::Grpc { port, service } => {
                let (netns, host) = t.net.endpoint("");
                grpc::probe(
                    netns,
                    &host,
                    *port,
                    service.as_deref(),
                    timeout.unwrap_or(Duration::from_secs(3600)),
                )
            }
            Handler::Sleep(d) => {
                std::thread::sleep(timeout.map(|t| t.min(*d)).unwrap_or(*d));
                Outcome::Success(String::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_by_number_and_by_name() {
        let c: Container =
            serde_yaml_ng::from_str("{name: app, ports: [{name: http, containerPort: 8080}]}")
                .unwrap();
        assert_eq!(port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert!(port(&IntOrString::String("grpc".into()), &c)
            .unwrap_err()
            .contains("no port named \"grpc\""));
        assert!(port(&IntOrString::Int(0), &c).is_err());
    }

    #[test]
    fn handlers_from_specs() {
        let c: Container = serde_yaml_ng::from_str("{name: app}").unwrap();
        let p: Probe = serde_yaml_ng::from_str(
            "httpGet: {path: /healthz, port: 80, httpHeaders: [{name: X, value: y}]}",
        )
        .unwrap();
        assert_eq!(
            Handler::of_probe(&p, &c),
            Some(Ok(Handler::Http(http::Get {
                scheme: "HTTP".into(),
                host: String::new(),
                port: 80,
                path: "/healthz".into(),
                headers: vec![("X".into(), "y".into())],
            })))
        );
        let h: LifecycleHandler = serde_yaml_ng::from_str("sleep: {seconds: 3}").unwrap();
        assert_eq!(
            Handler::of_hook(&h, &c),
            Some(Ok(Handler::Sleep(Duration::from_secs(3))))
        );
    }

    #[test]
    fn network_handlers_connect_to_the_pod_ip_from_the_host() {
        let with_ip = PodNet {
            netns: Some("/run/netns/p".into()),
            ip: Some("10.88.0.7".into()),
        };
        assert_eq!(with_ip.endpoint(""), (None, "10.88.0.7".to_string()));
        assert_eq!(
            with_ip.endpoint("example.test"),
            (None, "example.test".to_string())
        );
        // No IP of its own: 127.0.0.1 inside its namespace.
        let no_ip = PodNet {
            netns: Some("/run/netns/p".into()),
            ip: None,
        };
        assert_eq!(
            no_ip.endpoint(""),
            (Some(Path::new("/run/netns/p")), "127.0.0.1".to_string())
        );
        assert_eq!(
            PodNet::default().endpoint(""),
            (None, "127.0.0.1".to_string())
        );
    }
}
