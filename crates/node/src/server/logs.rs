//! GET .../pods/{name}/log: a container's CRI log as plain text, with
//! `follow`, `timestamps`, `tailLines` and `previous` (the attempt before
//! the latest).

use super::{internal, pod_not_found, query_map, status_error, stream_response, truthy};
use crate::logfile;
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use peapod_shim::logs::parse_record;
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

/// Send the log (the last `tail` records, or all of it), then with
/// `follow` what is written after, through rotations, until the container
/// has exited and its last records are out, or the reader is gone.
fn stream_log(
    path: &std::path::Path,
    tail: Option<usize>,
    follow: bool,
    timestamps: bool,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    exited: impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut emit = |data: Vec<u8>| {
        tx.blocking_send(Ok(Bytes::from(render(&data, timestamps))))
            .is_ok()
    };
    // Watch before the first read, so no write after it goes unnoticed.
    // Without inotify (out of instances or watches) the follower looks
    // every 250 ms instead.
    let mut watch = follow
        .then(|| {
            logfile::Watch::new(path)
                .map_err(
                    |e| tracing::warn!(path = %path.display(), "inotify: {e}; polling the log"),
                )
                .ok()
        })
        .flatten();
    let Some((mut file, mut pos)) = logfile::read_initial(path, tail, &mut emit)? else {
        return Ok(());
    };
    if !follow {
        return Ok(());
    }
    // Once the container has exited, the shim's pumps may still be writing
    // its last lines: wait for quiet, briefly, before ending.
    let mut exit_seen = false;
    loop {
        if !logfile::send_from(&mut file, &mut pos, &mut emit)? {
            return Ok(());
        }
        if let Some(next) = logfile::replaced(path, &file) {
            // Rotated: the writer finished with the old file before the
            // rename; drain it, then go on with the new one.
            if !logfile::send_from(&mut file, &mut pos, &mut emit)? {
                return Ok(());
            }
            (file, pos) = (next, 0);
            continue;
        }
        if tx.is_closed() {
            return Ok(());
        }
        let quiet = if exit_seen {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        let woke = match watch.as_mut() {
            Some(w) => w.wait(quiet)?,
            None => {
                std::thread::sleep(quiet.min(Duration::from_millis(250)));
                false
            }
        };
        if !woke {
            if exit_seen {
                logfile::send_from(&mut file, &mut pos, &mut emit)?;
                return Ok(());
            }
            exit_seen = exited();
        }
    }
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
    let found = if truthy(q.get("previous")) {
        let (n, p, c) = (node.clone(), pod.clone(), container.clone());
        let prev = tokio::task::spawn_blocking(move || previous_attempt(&n, &p, &c))
            .await
            .ok()
            .flatten();
        match prev {
            Some(c) if c.log_path.exists() => Some(c),
            _ => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "previous terminated container \"{container}\" in pod \"{name}\" not found"
                    ),
                )
            }
        }
    } else {
        node.find_container_async(&pod, &container).await
    };
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
        let exited = || match rt.container_status(&cid) {
            Ok(s) => s.state != peapod_runtime::ContainerState::Running,
            Err(_) => true,
        };
        if let Err(e) = stream_log(&path, tail, follow, timestamps, &tx, exited) {
            tracing::debug!(path = %path.display(), "log stream: {e}");
        }
    });
    stream_response("text/plain", rx)
}

/// The attempt of container `name` before its latest (`--previous`), in
/// any of the pod's sandboxes. Blocking.
fn previous_attempt(node: &Node, pod: &Pod, name: &str) -> Option<peapod_runtime::ContainerStatus> {
    let all = node.container_attempts(pod, name);
    let latest = all.iter().map(|c| c.metadata.attempt).max()?;
    all.into_iter()
        .filter(|c| c.metadata.attempt < latest)
        .max_by_key(|c| c.metadata.attempt)
}

/// The text of the last `lines` lines of CRI log `path`, at most
/// `max_bytes` (the end kept): a failed container's termination message
/// under `FallbackToLogsOnError`.
pub fn tail_text(path: &std::path::Path, lines: usize, max_bytes: usize) -> String {
    // Read backwards from the end: the log may be megabytes.
    let mut data = Vec::new();
    let mut emit = |b: Vec<u8>| {
        data.extend(b);
        true
    };
    if logfile::read_initial(path, Some(lines), &mut emit).is_err() {
        return String::new();
    }
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
    fn tail_text_reads_the_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        let text: String = (0..5000)
            .map(|i| format!("2024-01-01T00:00:00Z stdout F line{i}\n"))
            .collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(super::tail_text(&p, 3, 100), "line4997\nline4998\nline4999");
        assert_eq!(super::tail_text(&p, 3, 10), "8\nline4999");
        assert_eq!(super::tail_text(&d.path().join("none"), 3, 10), "");
    }

    #[test]
    fn renders_partial_and_full() {
        let data = b"2024-01-01T00:00:00Z stdout P hel\n2024-01-01T00:00:00Z stdout F lo\n2024-01-01T00:00:01Z stderr F err\n";
        assert_eq!(super::render(data, false), b"hello\nerr\n");
        let ts = super::render(b"2024-01-01T00:00:00Z stdout F x\n", true);
        assert_eq!(ts, b"2024-01-01T00:00:00Z x\n");
    }
}
