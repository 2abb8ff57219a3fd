//! Images: list, and import of an OCI layout or `docker save` archive sent
//! as the request body.

use super::{internal, json_response, query_map, status_error};
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
            if let Ok(pods) = node.list_pods(None) {
                for p in pods {
                    node.ensure_worker(&p);
                }
            }
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
