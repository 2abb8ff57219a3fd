//! `peapod logs`.

use std::io::Write;

use anyhow::{anyhow, Result};
use futures_util::StreamExt;

use super::transport::{encode, pod_path, Client};

/// `peapod logs POD [-c CONTAINER] [-f] [--timestamps] [--tail N] [-p]`:
/// copies the log the daemon streams to stdout, chunk by chunk.
#[allow(clippy::too_many_arguments)]
pub async fn logs(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<String>,
    follow: bool,
    timestamps: bool,
    tail: Option<i64>,
    previous: bool,
) -> Result<()> {
    let path = log_path(
        namespace,
        pod,
        container.as_deref(),
        follow,
        timestamps,
        tail,
        previous,
    );
    let mut stream = client.stream(&path).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        match stdout.write_all(&chunk).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // `peapod logs web | head`: stop quietly when the reader is gone.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(anyhow!("error: writing the log: {e}")),
        }
    }
    Ok(())
}

/// `/api/v1/namespaces/NS/pods/POD/log?container=C&follow=true&...`.
pub fn log_path(
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    follow: bool,
    timestamps: bool,
    tail: Option<i64>,
    previous: bool,
) -> String {
    let mut query = Vec::new();
    if let Some(container) = container {
        query.push(format!("container={}", encode(container)));
    }
    if follow {
        query.push("follow=true".to_string());
    }
    if previous {
        query.push("previous=true".to_string());
    }
    if timestamps {
        query.push("timestamps=true".to_string());
    }
    if let Some(tail) = tail.filter(|t| *t >= 0) {
        query.push(format!("tailLines={tail}"));
    }
    let mut path = format!("{}/log", pod_path(namespace, pod));
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            log_path("default", "web", None, false, false, None, false),
            "/api/v1/namespaces/default/pods/web/log"
        );
        assert_eq!(
            log_path("ns", "web", Some("side car"), true, true, Some(10), true),
            "/api/v1/namespaces/ns/pods/web/log?container=side%20car&follow=true&previous=true&timestamps=true&tailLines=10"
        );
        // kubectl's --tail=-1 means everything.
        assert_eq!(
            log_path("ns", "web", None, false, false, Some(-1), false),
            "/api/v1/namespaces/ns/pods/web/log"
        );
    }
}
