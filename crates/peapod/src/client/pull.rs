//! `peapod pull REF`: a progress bar per layer on a terminal, plain lines
//! otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use anyhow::{anyhow, bail, Result};
use futures_util::StreamExt;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::transport::{encode, Client};

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

pub async fn pull(
    client: &Client,
    reference: &str,
    secret: Option<&str>,
    namespace: &str,
) -> Result<()> {
    let mut path = format!("/peapod/v1/images/pull?ref={}", encode(reference));
    if let Some(s) = secret {
        path.push_str(&format!(
            "&secret={}&namespace={}",
            encode(s),
            encode(namespace)
        ));
    }
    let mut stream = client.stream_method(Method::POST, &path).await?;
    let tty = std::io::stdout().is_terminal();
    let multi = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:.bold} {bar:30} {bytes:>10}/{total_bytes:<10} {msg}")
            .map_err(|e| anyhow!("error: progress style: {e}"))?;
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut buf = Vec::new();
    let mut result = None;
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let v: serde_json::Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let digest = v["digest"].as_str().unwrap_or_default().to_string();
            match v["event"].as_str().unwrap_or_default() {
                "resolving" if !tty => {
                    println!("Resolving {}", v["reference"].as_str().unwrap_or(reference));
                }
                "resolved" => {
                    if !tty {
                        println!("Resolved {digest}");
                    }
                    for l in v["layers"].as_array().into_iter().flatten() {
                        let d = l["digest"].as_str().unwrap_or_default().to_string();
                        let size = l["size"].as_u64().unwrap_or(0);
                        if tty {
                            let bar = multi.add(ProgressBar::new(size));
                            bar.set_style(style.clone());
                            bar.set_prefix(short(&d).to_string());
                            bars.insert(d, bar);
                        }
                    }
                }
                "layer" => {
                    if let Some(b) = bars.get(&digest) {
                        b.set_length(v["total"].as_u64().unwrap_or(0));
                        b.set_position(v["done"].as_u64().unwrap_or(0));
                    }
                }
                "layer_done" => {
                    let cached = v["cached"].as_bool().unwrap_or(false);
                    let msg = if cached { "already present" } else { "done" };
                    if let Some(b) = bars.get(&digest) {
                        if let Some(len) = b.length() {
                            b.set_position(len);
                        }
                        b.finish_with_message(msg);
                    } else if !tty {
                        println!("Layer {}: {msg}", short(&digest));
                    }
                }
                "pulled" => {
                    result = Some(Ok(format!(
                        "{}@{}",
                        v["name"].as_str().unwrap_or(reference),
                        digest
                    )))
                }
                "error" => {
                    result = Some(Err(v["message"]
                        .as_str()
                        .unwrap_or("pull failed")
                        .to_string()))
                }
                _ => {}
            }
        }
    }
    match result {
        Some(Ok(name)) => {
            println!("{name}");
            Ok(())
        }
        Some(Err(msg)) => bail!("error: pulling {reference}: {msg}"),
        None => bail!("error: pulling {reference}: the daemon ended the stream early"),
    }
}
