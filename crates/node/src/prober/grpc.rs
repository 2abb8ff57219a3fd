//! grpc handler: `grpc.health.v1.Health/Check` (with the probe's
//! `service`, if any), as kubelet's gRPC prober; SERVING succeeds. The TCP
//! connection is made from the namespace [`super::handler::PodNet`]
//! chooses (the host's, to the pod's IP), then handed to tonic's HTTP/2
//! client on the runtime.

use super::handler::Outcome;
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn check(
    stream: std::net::TcpStream,
    service: String,
    timeout: Duration,
) -> Result<i32, Outcome> {
    stream
        .set_nonblocking(true)
        .map_err(|e| Outcome::Error(e.to_string()))?;
    let stream =
        tokio::net::TcpStream::from_std(stream).map_err(|e| Outcome::Error(e.to_string()))?;
    // The one connection, already open in the pod's namespace.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let s = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            s.map(TokioIo::new)
                // tonic asks again only when the one connection was
                // lost: the server closed it before answering.
                .ok_or_else(|| {
                    std::io::Error::other("the server closed the connection before answering")
                })
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1")
        .connect_with_connector(connector)
        .await
        .map_err(|e| Outcome::Failure(format!("failed to connect service: {e}")))?;
    let mut client = HealthClient::new(channel);
    let mut req = tonic::Request::new(HealthCheckRequest { service });
    req.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.check(req)).await {
        Err(_) => Err(Outcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        ))),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Err(Outcome::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            s.message()
        ))),
        Ok(Err(s)) => Err(Outcome::Failure(format!(
            "rpc error: code = {:?} desc = {}",
            s.code(),
            s.message()
        ))),
        Ok(Ok(r)) => Ok(r.into_inner().status),
    }
}

/// Blocking: call it from a blocking thread of the tokio runtime.
pub fn probe(
    netns: Option<&Path>,
    host: &str,
    port: u16,
    service: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return Outcome::Error("grpc probe: no async runtime".into());
    };
    let h = host.to_string();
    let stream = match super::netns::run_in(netns, move || super::tcp::connect(&h, port, timeout)) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service \"{host}:{port}\" within {timeout:?}: {e}"
            ))
        }
    };
    let service = service.unwrap_or_default().to_string();
    match rt.block_on(check(stream, service, timeout)) {
        Ok(s) if s == ServingStatus::Serving as i32 => Outcome::Success(String::new()),
        Ok(s) => Outcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            ServingStatus::try_from(s)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN")
        )),
        Err(o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real grpc.health.v1 server on loopback (the host's
    /// network namespace, as for a hostNetwork pod).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_check_against_a_real_server() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("good", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("bad", tonic_health::ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let run = |service: Option<&'static str>, port: u16| {
            tokio::task::spawn_blocking(move || {
                probe(None, "127.0.0.1", port, service, Duration::from_secs(2))
            })
        };
        assert_eq!(
            run(Some("good"), port).await.unwrap(),
            Outcome::Success(String::new())
        );
        // The empty service is the server's overall health.
        assert_eq!(
            run(None, port).await.unwrap(),
            Outcome::Success(String::new())
        );
        assert_eq!(
            run(Some("bad"), port).await.unwrap(),
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        match run(Some("unknown"), port).await.unwrap() {
            Outcome::Failure(m) => assert!(m.starts_with("rpc error: code = NotFound"), "{m}"),
            o => panic!("{o:?}"),
        }
        server.abort();
        // Nobody listens any more.
        match run(None, port).await.unwrap() {
            // Refused outright, or accepted by a dying listener and closed.
            Outcome::Failure(m) => assert!(
                m.contains("failed to connect") || m.contains("closed the connection"),
                "{m}"
            ),
            o => panic!("{o:?}"),
        }
    }
}
