//! Pull an image into a store: `pull REFERENCE ROOT [REGISTRY_CONFIG.toml]`.
//!
//! Used by `bench/image-pull.sh`; prints one line per finished layer and
//! the elapsed time. Credentials: `PEAPOD_DOCKERCONFIGJSON=path` (a
//! `.dockerconfigjson` file).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use peapod_image::{
    credentials_from_dockerconfigjson, ImageStore, PullEvent, Puller, RegistryConfig,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        eprintln!("usage: {} REFERENCE ROOT [REGISTRY_CONFIG.toml]", args[0]);
        return ExitCode::from(2);
    }
    match run(&args[1], Path::new(&args[2]), args.get(3).map(Path::new)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pull: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    reference: &str,
    root: &Path,
    config: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let store = Arc::new(ImageStore::open(root)?);
    let config = match config {
        Some(p) => RegistryConfig::load(p)?,
        None => RegistryConfig::default(),
    };
    let creds = match std::env::var_os("PEAPOD_DOCKERCONFIGJSON") {
        Some(p) => credentials_from_dockerconfigjson(&std::fs::read(p)?)?,
        None => Vec::new(),
    };
    let puller = Puller::new(store, config);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                PullEvent::Resolved { digest, layers } => {
                    let total: u64 = layers.iter().map(|(_, s)| s).sum();
                    println!("resolved {digest}: {} layers, {total} bytes", layers.len());
                }
                PullEvent::LayerDone { digest, cached } => {
                    println!("layer {digest}{}", if cached { " (cached)" } else { "" });
                }
                _ => {}
            }
        }
    });
    let rec = puller.pull(reference, &creds, Some(tx)).await?;
    let _ = printer.await;
    println!(
        "pulled {} {} in {:.3}s",
        rec.name,
        rec.digest,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
