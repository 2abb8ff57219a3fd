//! PortForward over SPDY (`portforward.k8s.io`): for each connection the
//! client opens an error stream and a data stream with the same
//! `requestID` and the `port`; the data stream is joined to a TCP
//! connection to that port inside the sandbox's network namespace, and a
//! failure is written on the error stream.

use super::spdy;
use crate::{pb, Cri};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) async fn serve_spdy(
    cri: Arc<Cri>,
    req: pb::PortForwardRequest,
    mut conn: spdy::Connection,
) {
    let sid = req.pod_sandbox_id.clone();
    let rt = cri.runtime.clone();
    let netns = match tokio::task::spawn_blocking(move || rt.pod_sandbox_status(&sid)).await {
        Ok(Ok(st)) => st.netns,
        _ => {
            // The sandbox went away between the RPC and the connection.
            conn.close().await;
            return;
        }
    };
    // Streams of one request, until both halves are there.
    let mut halves: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    while let Some(s) = conn.streams.recv().await {
        s.writer.reply().await;
        let Some(id) = s.header("requestid").map(str::to_string) else {
            tracing::debug!("port-forward: stream {} without requestID", s.id);
            continue;
        };
        let entry = halves.entry(id.clone()).or_default();
        match s.header("streamtype") {
            Some("error") => entry.0 = Some(s),
            Some("data") => entry.1 = Some(s),
            other => {
                tracing::debug!("port-forward: ignoring stream type {other:?}");
                continue;
            }
        }
        if matches!(halves.get(&id), Some((Some(_), Some(_)))) {
            if let Some((Some(err), Some(data))) = halves.remove(&id) {
                tokio::spawn(forward(netns.clone(), err, data));
            }
        }
    }
    conn.close().await;
}

/// Join one data stream to the port it names.
async fn forward(netns: Option<PathBuf>, err: spdy::Stream, data: spdy::Stream) {
    let port = data
        .header("port")
        .or_else(|| err.header("port"))
        .and_then(|p| p.parse::<u16>().ok());
    let Some(port) = port else {
        let msg = "port-forward: the stream has no valid port header".to_string();
        err.writer.send(msg.into_bytes()).await;
        err.writer.close().await;
        data.writer.close().await;
        return;
    };
    let tcp = tokio::task::spawn_blocking(move || match netns {
        Some(ns) => peapod_runtime::sandbox_port_forward::connect_port(&ns, port),
        None => std::net::TcpStream::connect(("127.0.0.1", port)),
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .and_then(|s| {
        s.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(s)
    });
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            let msg = format!(
                "failed to connect to localhost:{port} inside the pod's network namespace: {e}"
            );
            err.writer.send(msg.into_bytes()).await;
            err.writer.close().await;
            data.writer.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let mut from_client = data.data;
    let to_pod = tokio::spawn(async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !data.writer.send(buf[..n].to_vec()).await {
                    break;
                }
            }
        }
    }
    // The pod closing its side ends the request, as in kubelet.
    data.writer.close().await;
    to_pod.abort();
    err.writer.close().await;
}
