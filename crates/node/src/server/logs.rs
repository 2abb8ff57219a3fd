//! GET .../pods/{name}/log: a container's CRI log as plain text, with
//! `follow`, `timestamps` and `tailLines`.

use super::{internal, pod_not_found, query_map, status_error, stream_response, truthy};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use peapod_shim::logs::parse_record;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

/// Pick the container: the one named, or the only one.
pub fn pick_container(pod: &Pod, name: Option<&String>) -> Result<String, Response> {
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let all: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    match name.filter(|n| !n.is_empty()) {
        Some(n) if all.contains(n) => Ok(n.clone()),
        Some(n) => Err(status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container {n} is not valid for pod {pod_name}"),
        )),
        None if spec.containers.len() == 1 => Ok(spec.containers[0].name.clone()),
        None => {
            let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
            Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                ),
            ))
        }
    }
}

/// Render CRI records as the user sees them.
fn render(buf: &[u8], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Some(r) = parse_record(line) {
            if timestamps {
                out.extend_from_slice(r.time.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(r.content);
            if !r.partial {
                out.push(b'\n');
            }
        }
    }
    out
}

pub async fn log(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_map(q.as_deref());
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    let container = match pick_container(&pod, q.get("container")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let found = node.find_container_async(&pod, &container).await;
    let (cid, path) = match &found {
        Some(c) => (c.id.clone(), c.log_path.clone()),
        None => (String::new(), std::path::PathBuf::new()),
    };
    if found.is_none() || !path.exists() {
        let reason = pod
            .status
            .as_ref()
            .and_then(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
                    .find(|c| c.name == container)
                    .cloned()
            })
            .and_then(|c| c.state)
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .unwrap_or_else(|| "ContainerCreating".into());
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"),
        );
    }
    let follow = truthy(q.get("follow"));
    let timestamps = truthy(q.get("timestamps"));
    let tail: Option<usize> = q
        .get("tailLines")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|t| *t >= 0)
        .map(|t| t as usize);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let rt = node.runtime.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        let mut data = Vec::new();
        if f.read_to_end(&mut data).is_err() {
            return;
        }
        let mut pos = data.len() as u64;
        // Only whole records; a partial last line waits for the next read.
        let cut = data
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0);
        pos -= (data.len() - cut) as u64;
        data.truncate(cut);
        if let Some(n) = tail {
            let lines: Vec<&[u8]> = data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let start = lines.len().saturating_sub(n);
            data = lines[start..].join(&b'\n');
            data.push(b'\n');
        }
        if tx
            .blocking_send(Ok(Bytes::from(render(&data, timestamps))))
            .is_err()
            || !follow
        {
            return;
        }
        let mut idle_after_exit = 0;
        loop {
            let exited = match rt.container_status(&cid) {
                Ok(s) => s.state != peapod_runtime::ContainerState::Running,
                Err(_) => true,
            };
            let mut chunk = Vec::new();
            if f.seek(SeekFrom::Start(pos)).is_ok()
                && f.read_to_end(&mut chunk).is_ok()
                && !chunk.is_empty()
            {
                let cut = chunk
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|p| p + 1)
                    .unwrap_or(0);
                chunk.truncate(cut);
                pos += cut as u64;
                if !chunk.is_empty()
                    && tx
                        .blocking_send(Ok(Bytes::from(render(&chunk, timestamps))))
                        .is_err()
                {
                    return;
                }
                continue;
            }
            if exited {
                // Give the shim's log pump a moment to write the last lines.
                idle_after_exit += 1;
                if idle_after_exit > 3 {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    stream_response("text/plain", rx)
}

/// The text of the last `lines` lines of CRI log `path`, at most
/// `max_bytes` (the end kept): a failed container's termination message
/// under `FallbackToLogsOnError`.
pub fn tail_text(path: &std::path::Path, lines: usize, max_bytes: usize) -> String {
    let Ok(data) = std::fs::read(path) else {
        return String::new();
    };
    let text = render(&data, false);
    let all: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let mut end = all.len();
    if all.last().is_some_and(|l| l.is_empty()) {
        end -= 1;
    }
    let start = end.saturating_sub(lines);
    let mut out = all[start..end].join(&b'\n');
    if out.len() > max_bytes {
        out.drain(..out.len() - max_bytes);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_partial_and_full() {
        let data = b"2024-01-01T00:00:00Z stdout P hel\n2024-01-01T00:00:00Z stdout F lo\n2024-01-01T00:00:01Z stderr F err\n";
        assert_eq!(super::render(data, false), b"hello\nerr\n");
        let ts = super::render(b"2024-01-01T00:00:00Z stdout F x\n", true);
        assert_eq!(ts, b"2024-01-01T00:00:00Z x\n");
    }
}
