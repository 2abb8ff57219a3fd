//! Images: list, and import of an OCI layout or `docker save` archive sent
//! as the request body.

use super::{internal, json_response, query_map, status_error, stream_response};
use crate::node::Node;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::StreamExt;
use std::io::Write;
use std::sync::Arc;

pub async fn list(State(node): State<Arc<Node>>) -> Response {
    let images = node.images.clone();
    match tokio::task::spawn_blocking(move || images.list()).await {
        Ok(Ok(list)) => {
            let items: Vec<_> = list
                .iter()
                .map(|r| serde_json::json!({ "name": r.name, "digest": r.digest, "size": r.size, "created": r.created }))
                .collect();
            json_response(StatusCode::OK, &items)
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

pub async fn import(State(node): State<Arc<Node>>, RawQuery(q): RawQuery, body: Body) -> Response {
    let q = query_map(q.as_deref());
    let name = q.get("name").filter(|n| !n.is_empty()).cloned();
    // Spool the upload to disk, then import it on a blocking thread: the
    // image store reads synchronously and never holds a layer in memory.
    let tmp_dir = node.images.root().join("tmp");
    if let Err(e) = std::fs::create_dir_all(&tmp_dir) {
        return internal(e);
    }
    let path = tmp_dir.join(format!("upload-{}", uuid::Uuid::new_v4()));
    let mut file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let res = chunk
            .map_err(|e| e.to_string())
            .and_then(|c| file.write_all(&c).map_err(|e| e.to_string()));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&path);
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("upload failed: {e}"),
            );
        }
    }
    drop(file);
    let images = node.images.clone();
    let p = path.clone();
    let res = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&p)?;
        images
            .import(std::io::BufReader::new(f), name.as_deref())
            .map_err(std::io::Error::other)
    })
    .await;
    let _ = std::fs::remove_file(&path);
    match res {
        Ok(Ok(recs)) => {
            let items: Vec<_> = recs
                .iter()
                .map(|r| serde_json::json!({ "name": r.name, "digest": r.digest }))
                .collect();
            // Pods waiting for these images look again.
            node.wake_all();
            json_response(StatusCode::OK, &items)
        }
        Ok(Err(e)) => status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("image import: {e}"),
        ),
        Err(e) => internal(e),
    }
}

/// POST /peapod/v1/images/remove?ref=R: untag (by name) or remove (by id),
/// refused while a pod uses the image; then unreferenced blobs and layers
/// are collected.
pub async fn remove(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let refs: Vec<String> = super::query_params(q.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "ref")
        .map(|(_, v)| v)
        .collect();
    if refs.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "name the image to remove: ?ref=NAME|ID",
        );
    }
    let n = node.clone();
    let res = tokio::task::spawn_blocking(
        move || -> Result<serde_json::Value, peapod_image::ImageError> {
            let in_use = n.images_in_use();
            let mut removed = Vec::new();
            for r in &refs {
                for rec in n
                    .images
                    .remove_image(r, &|rec| in_use.contains(&rec.digest))?
                {
                    removed.push(serde_json::json!({ "name": rec.name, "digest": rec.digest }));
                }
            }
            let gc = n.images.gc(&[])?;
            Ok(serde_json::json!({ "removed": removed, "gc": gc }))
        },
    )
    .await;
    match res {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(e @ peapod_image::ImageError::InUse { .. })) => {
            status_error(StatusCode::CONFLICT, "Conflict", &e.to_string())
        }
        Ok(Err(e @ peapod_image::ImageError::NotFound(_))) => {
            status_error(StatusCode::NOT_FOUND, "NotFound", &e.to_string())
        }
        Ok(Err(e)) => status_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        Err(e) => internal(e),
    }
}

/// POST /peapod/v1/images/prune[?all=true]: remove images no pod uses (with
/// `all`) and collect unreferenced blobs and layers.
pub async fn prune(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let all = super::truthy(query_map(q.as_deref()).get("all"));
    let n = node.clone();
    let res = tokio::task::spawn_blocking(move || {
        let in_use = n.images_in_use();
        n.images.prune(&|rec| in_use.contains(&rec.digest), all)
    })
    .await;
    match res {
        Ok(Ok(report)) => json_response(StatusCode::OK, &report),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// A `Write` that hands chunks to an async response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(axum::body::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// GET /peapod/v1/images/export?ref=R[&ref=R2]&format=oci|docker: a tar
/// stream (OCI image layout or `docker save` format).
pub async fn export(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let params = super::query_params(q.as_deref());
    let refs: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "ref")
        .map(|(_, v)| v.clone())
        .collect();
    let format = params
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "oci".into());
    let format: peapod_image::ExportFormat = match format.parse() {
        Ok(f) => f,
        Err(_) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("format {format:?}: use oci or docker"),
            )
        }
    };
    if refs.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "name the image to export: ?ref=NAME",
        );
    }
    for r in &refs {
        match node.images.get(r) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("image {r:?} not found"),
                )
            }
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let images = node.images.clone();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        let mut w = ChannelWriter(tx.clone());
        if let Err(e) = images.export(&refs, format, &mut w) {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    stream_response("application/x-tar", rx)
}

fn event_json(ev: &peapod_image::PullEvent) -> serde_json::Value {
    use peapod_image::PullEvent::*;
    match ev {
        Resolving { reference } => {
            serde_json::json!({ "event": "resolving", "reference": reference })
        }
        Resolved { digest, layers } => serde_json::json!({
            "event": "resolved", "digest": digest,
            "layers": layers.iter().map(|(d, s)| serde_json::json!({ "digest": d, "size": s })).collect::<Vec<_>>(),
        }),
        Layer {
            digest,
            done,
            total,
        } => {
            serde_json::json!({ "event": "layer", "digest": digest, "done": done, "total": total })
        }
        LayerDone { digest, cached } => {
            serde_json::json!({ "event": "layer_done", "digest": digest, "cached": cached })
        }
        Done { digest } => serde_json::json!({ "event": "done", "digest": digest }),
    }
}

/// POST /peapod/v1/images/pull?ref=R[&secret=S&namespace=NS]: pull, with
/// progress as newline-delimited JSON; the last line is `{"event":"pulled",
/// "name","digest"}` or `{"event":"error","message"}`.
pub async fn pull(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let q = query_map(q.as_deref());
    let Some(reference) = q.get("ref").filter(|r| !r.is_empty()).cloned() else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "name the image to pull: ?ref=NAME",
        );
    };
    if let Err(e) = peapod_image::Reference::parse(&reference) {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string());
    }
    let mut creds = Vec::new();
    if let Some(secret) = q.get("secret") {
        let ns = q
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| peapod_api::DEFAULT_NAMESPACE.to_string());
        match node
            .store
            .get::<k8s_openapi::api::core::v1::Secret>(&super::secrets::secret_key(&ns, secret))
        {
            Ok(Some(s)) => match crate::image_pull::secret_credentials(secret, &s) {
                Ok(c) => creds = c,
                Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
            },
            Ok(None) => {
                return status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("secrets \"{secret}\" not found"),
                )
            }
            Err(e) => return internal(e),
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
        let tx2 = tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                let line = format!("{}\n", event_json(&ev));
                if tx2.send(Ok(axum::body::Bytes::from(line))).await.is_err() {
                    return;
                }
            }
        });
        let images = node.images.clone();
        let lock = tokio::task::spawn_blocking(move || images.gc_lock()).await;
        let result = match lock {
            Ok(Ok(_lock)) => node.puller.pull(&reference, &creds, Some(ev_tx)).await,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(peapod_image::ImageError::NotFound(e.to_string())),
        };
        let _ = forward.await;
        let last = match result {
            Ok(rec) => {
                // Pods waiting for this image look again.
                node.wake_all();
                serde_json::json!({ "event": "pulled", "name": rec.name, "digest": rec.digest })
            }
            Err(e) => serde_json::json!({ "event": "error", "message": e.to_string() }),
        };
        let _ = tx
            .send(Ok(axum::body::Bytes::from(format!("{last}\n"))))
            .await;
    });
    stream_response("application/json", rx)
}
