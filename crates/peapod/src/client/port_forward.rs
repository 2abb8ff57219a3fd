//! `peapod port-forward pod/NAME [LOCAL:]REMOTE...`: listens on the host
//! and carries each accepted connection over its own websocket to the
//! daemon (`.../pods/NAME/portforward?ports=REMOTE`, Kubernetes'
//! `v4.channel.k8s.io` port-forward protocol: channel 0 data, channel 1
//! errors, each channel's first message the port), which connects to the
//! port inside the pod. A failed connection is reported and the forward
//! keeps serving others, as kubectl's does.

use anyhow::{anyhow, Result};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::transport::{pod_path, status_error, Client};

const PROTOCOLS: &str = "v4.channel.k8s.io, portforward.k8s.io";
const DATA: u8 = 0;
const ERROR: u8 = 1;

/// One `[LOCAL:]REMOTE` argument; LOCAL 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPair {
    pub local: u16,
    pub remote: u16,
}

/// `8080`, `9000:80`, `:80` (a random local port), as kubectl reads them.
pub fn parse_port(spec: &str) -> Result<PortPair> {
    let bad = |what: &str| {
        anyhow!("error: {what} in {spec:?}: give REMOTE, LOCAL:REMOTE or :REMOTE, ports 1 to 65535")
    };
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (Some(l), r),
        None => (None, spec),
    };
    let remote: u16 = remote
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad("invalid remote port"))?;
    let local = match local {
        None => remote,
        Some("") => 0,
        Some(l) => l
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("invalid local port"))?,
    };
    Ok(PortPair { local, remote })
}

/// The addresses to listen on: `localhost` is 127.0.0.1 and ::1.
fn listen_addresses(addresses: &[String]) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for a in addresses.iter().flat_map(|a| a.split(',')) {
        match a.trim() {
            "localhost" => {
                out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
                out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
            }
            other => out.push(other.parse().map_err(|_| {
                anyhow!("error: --address {other:?}: must be an IP address or localhost")
            })?),
        }
    }
    Ok(out)
}

fn show(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// Run the forward until interrupted. Errors before listening (no such
/// pod, pod not running, ports taken) are returned.
pub async fn port_forward(
    client: &Client,
    namespace: &str,
    pod: &str,
    ports: &[String],
    addresses: &[String],
) -> Result<i32> {
    let pairs = ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<Vec<_>>>()?;
    if pairs.is_empty() {
        return Err(anyhow!(
            "error: at least 1 PORT is required for port-forward"
        ));
    }
    let p: serde_json::Value = client.get_json(&pod_path(namespace, pod)).await?;
    let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
    if phase != "Running" {
        return Err(anyhow!(
            "error: unable to forward port because pod is not running. Current status={phase}"
        ));
    }
    let ips = listen_addresses(addresses)?;
    let only_localhost = addresses.iter().all(|a| a == "localhost");
    let mut listeners = Vec::new();
    for pair in pairs {
        let mut port = pair.local;
        let mut bound = 0;
        for ip in &ips {
            match TcpListener::bind(SocketAddr::new(*ip, port)).await {
                Ok(l) => {
                    let addr = l.local_addr()?;
                    // The other addresses get the same (picked) port.
                    port = addr.port();
                    println!("Forwarding from {} -> {}", show(addr), pair.remote);
                    listeners.push((l, pair.remote));
                    bound += 1;
                }
                // localhost's ::1 may be missing; kubectl goes on too.
                Err(_) if only_localhost && ip.is_ipv6() => {}
                Err(e) => {
                    return Err(anyhow!(
                        "error: unable to listen on {}: {e}",
                        show(SocketAddr::new(*ip, port))
                    ))
                }
            }
        }
        if bound == 0 {
            return Err(anyhow!(
                "error: unable to listen on any of the requested ports: [{}]",
                pair.local
            ));
        }
    }
    let mut tasks = Vec::new();
    for (l, remote) in listeners {
        let (client, ns, pod) = (client.clone(), namespace.to_string(), pod.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = l.accept().await else {
                    continue;
                };
                let local = l.local_addr().map(|a| a.port()).unwrap_or_default();
                println!("Handling connection for {local}");
                let (client, ns, pod) = (client.clone(), ns.clone(), pod.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&client, &ns, &pod, remote, conn).await {
                        eprintln!("error: an error occurred forwarding {local} -> {remote}: {e}");
                    }
                });
            }
        }));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for t in tasks {
        t.abort();
    }
    Ok(0)
}

/// One connection: a websocket to the daemon for `remote`, pumped both
/// ways until either side ends.
async fn forward(
    client: &Client,
    namespace: &str,
    pod: &str,
    remote: u16,
    conn: TcpStream,
) -> Result<()> {
    let url = format!(
        "ws://localhost{}/portforward?ports={remote}",
        pod_path(namespace, pod)
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| anyhow!("invalid port-forward request: {e}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(PROTOCOLS),
    );
    let stream = client.connect().await?;
    let (ws, _) = match tokio_tungstenite::client_async(request, stream).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            return Err(status_error(response.status().as_u16(), &body));
        }
        Err(e) => return Err(anyhow!("websocket handshake failed: {e}")),
    };
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = conn.into_split();
    let mut seen_port = [false, false];
    let up = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut msg = Vec::with_capacity(n + 1);
                    msg.push(DATA);
                    msg.extend_from_slice(&buf[..n]);
                    if sink.send(Message::Binary(msg.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let down = async {
        let mut error = String::new();
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, rest)) = data.split_first() else {
                continue;
            };
            let ch = usize::from(ch);
            if ch < 2 && !seen_port[ch] {
                // The channel's first message: its port.
                seen_port[ch] = true;
                continue;
            }
            match ch as u8 {
                DATA if wr.write_all(rest).await.is_err() => break,
                ERROR => error.push_str(&String::from_utf8_lossy(rest)),
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
        error
    };
    // The local side ending (EOF) leaves the pod's answer coming: the
    // websocket has no half-close, so it closes when the pod's side ends.
    tokio::pin!(down);
    let error = tokio::select! {
        e = &mut down => e,
        _ = up => down.await,
    };
    let _ = sink.close().await;
    if error.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_kubectl_reads_them() {
        let p = |s: &str| parse_port(s).map_err(|e| e.to_string());
        assert_eq!(
            p("8080"),
            Ok(PortPair {
                local: 8080,
                remote: 8080
            })
        );
        assert_eq!(
            p("9000:80"),
            Ok(PortPair {
                local: 9000,
                remote: 80
            })
        );
        assert_eq!(
            p(":80"),
            Ok(PortPair {
                local: 0,
                remote: 80
            })
        );
        for bad in ["", "x", "0", "70000", "a:80", "80:", "0:80"] {
            let e = p(bad).unwrap_err();
            assert!(
                e.contains("give REMOTE, LOCAL:REMOTE or :REMOTE"),
                "{bad}: {e}"
            );
        }
        assert!(listen_addresses(&["localhost".into()]).unwrap().len() == 2);
        assert!(listen_addresses(&["nope".into()]).is_err());
    }
}
