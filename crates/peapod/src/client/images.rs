//! `peapod images` and `peapod image import`.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use hyper::Method;
use serde::Deserialize;

use super::table::{docker_duration, human_size, Table};
use super::transport::{encode, Client};

/// One image as `GET /peapod/v1/images` lists it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    /// RFC 3339, or absent/empty when unknown.
    #[serde(default)]
    pub created: Option<String>,
}

/// One image as the import answer names it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImportedImage {
    pub name: String,
    #[serde(default)]
    pub digest: String,
}

/// `peapod images`: `REPOSITORY TAG IMAGE ID CREATED SIZE`, like docker.
pub async fn images(client: &Client) -> Result<()> {
    let images: Vec<ImageInfo> = client.get_json("/peapod/v1/images").await?;
    let text = render_images(&images, Utc::now());
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// `peapod image import FILE [--name NAME]`: streams an image archive (OCI
/// layout or docker archive, as a tar) to the daemon and prints
/// `NAME@DIGEST` for every image imported.
pub async fn image_import(client: &Client, file: &Path, name: Option<String>) -> Result<()> {
    let handle = tokio::fs::File::open(file)
        .await
        .map_err(|e| anyhow!("error: cannot open {}: {e}", file.display()))?;
    let mut path = "/peapod/v1/images/import".to_string();
    if let Some(name) = name {
        path.push_str(&format!("?name={}", encode(&name)));
    }
    let response = client
        .upload(Method::POST, &path, handle, "application/x-tar")
        .await?;
    if !response.is_success() {
        return Err(response.error());
    }
    let imported: Vec<ImportedImage> = response.json()?;
    for image in imported {
        println!("{}@{}", image.name, image.digest);
    }
    Ok(())
}

/// Splits `registry/repo:tag` (or `repo@sha256:…`) into repository and tag.
pub fn split_reference(name: &str) -> (String, String) {
    let name = match name.split_once('@') {
        Some((repo, _digest)) if !repo.contains(':') || repo.rfind(':') < repo.rfind('/') => {
            return (repo.to_string(), "<none>".to_string());
        }
        Some((repo, _digest)) => repo,
        None => name,
    };
    match name.rfind(':') {
        Some(colon) if name.rfind('/').is_none_or(|slash| colon > slash) => {
            (name[..colon].to_string(), name[colon + 1..].to_string())
        }
        _ => (name.to_string(), "<none>".to_string()),
    }
}

/// The images table.
pub fn render_images(images: &[ImageInfo], now: DateTime<Utc>) -> String {
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()];
    for image in images {
        let (repository, tag) = split_reference(&image.name);
        let hex = image
            .digest
            .split_once(':')
            .map(|(_, hex)| hex)
            .unwrap_or(&image.digest);
        let id: String = hex.chars().take(12).collect();
        let created = image
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| format!("{} ago", docker_duration(now - c.with_timezone(&Utc))))
            .unwrap_or_else(|| "N/A".to_string());
        rows.push(vec![repository, tag, id, created, human_size(image.size)]);
    }
    // docker's table: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).
    Table::new(10, 3).render(&rows)
}

/// `peapod image rm REF...`: untag or remove, then collect what nothing
/// references. Refused while a pod uses the image.
pub async fn image_rm(client: &Client, refs: &[String]) -> Result<()> {
    let query: Vec<String> = refs.iter().map(|r| format!("ref={}", encode(r))).collect();
    let response = client
        .call(
            Method::POST,
            &format!("/peapod/v1/images/remove?{}", query.join("&")),
            None,
            None,
        )
        .await?;
    let v: serde_json::Value = response.json()?;
    for r in v["removed"].as_array().into_iter().flatten() {
        println!("Untagged: {}", r["name"].as_str().unwrap_or_default());
        println!("Deleted: {}", r["digest"].as_str().unwrap_or_default());
    }
    print_gc(&v["gc"]);
    Ok(())
}

fn print_gc(gc: &serde_json::Value) {
    let n = |k: &str| gc[k].as_u64().unwrap_or(0);
    let bytes = n("blob_bytes") + n("layer_bytes") + n("tmp_bytes");
    println!(
        "Garbage collected {} blobs and {} unpacked layers: {} freed",
        n("blobs_removed"),
        n("layers_removed"),
        human_size(bytes)
    );
}

/// `peapod image prune [-a]`.
pub async fn image_prune(client: &Client, all: bool) -> Result<()> {
    let path = if all {
        "/peapod/v1/images/prune?all=true"
    } else {
        "/peapod/v1/images/prune"
    };
    let v: serde_json::Value = client.call(Method::POST, path, None, None).await?.json()?;
    for r in v["removed"].as_array().into_iter().flatten() {
        println!(
            "Deleted: {}@{}",
            r["name"].as_str().unwrap_or_default(),
            r["digest"].as_str().unwrap_or_default()
        );
    }
    print_gc(&v["gc"]);
    Ok(())
}

/// `peapod image export REF... -o FILE [--format oci|docker]`.
pub async fn image_export(
    client: &Client,
    refs: &[String],
    output: &Path,
    format: &str,
) -> Result<()> {
    use futures_util::StreamExt;
    let mut query: Vec<String> = refs.iter().map(|r| format!("ref={}", encode(r))).collect();
    query.push(format!("format={}", encode(format)));
    let mut stream = client
        .stream(&format!("/peapod/v1/images/export?{}", query.join("&")))
        .await?;
    let tmp = output.with_extension("partial");
    let mut file =
        std::fs::File::create(&tmp).map_err(|e| anyhow!("error: {}: {e}", tmp.display()))?;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        file.write_all(&chunk)
            .map_err(|e| anyhow!("error: {}: {e}", tmp.display()))?;
    }
    file.sync_all()
        .map_err(|e| anyhow!("error: {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, output).map_err(|e| anyhow!("error: {}: {e}", output.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let split = |s: &str| split_reference(s);
        assert_eq!(
            split("localhost/peapod/busybox:latest"),
            ("localhost/peapod/busybox".into(), "latest".into())
        );
        assert_eq!(
            split("localhost:5000/app"),
            ("localhost:5000/app".into(), "<none>".into())
        );
        assert_eq!(
            split("localhost:5000/app:v1"),
            ("localhost:5000/app".into(), "v1".into())
        );
        assert_eq!(
            split("docker.io/library/nginx@sha256:abc"),
            ("docker.io/library/nginx".into(), "<none>".into())
        );
        assert_eq!(
            split("nginx:1.25@sha256:abc"),
            ("nginx".into(), "1.25".into())
        );
    }

    #[test]
    fn table() {
        let now = match DateTime::parse_from_rfc3339("2024-01-01T02:00:00Z") {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{e}"),
        };
        let images = vec![
            ImageInfo {
                name: "localhost/peapod/busybox:latest".into(),
                digest: "sha256:0123456789abcdef0123".into(),
                size: 4_261_000,
                created: Some("2024-01-01T00:00:00Z".into()),
            },
            ImageInfo {
                name: "app".into(),
                digest: "sha256:fedcba9876543210".into(),
                size: 123,
                created: None,
            },
        ];
        assert_eq!(
            render_images(&images, now),
            "REPOSITORY                 TAG       IMAGE ID       CREATED       SIZE\n\
             localhost/peapod/busybox   latest    0123456789ab   2 hours ago   4.26MB\n\
             app                        <none>    fedcba987654   N/A           123B\n"
        );
    }
}
