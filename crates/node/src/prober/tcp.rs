//! tcpSocket handler: the probe succeeds when a TCP connection opens.

use super::handler::Outcome;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// `host:port` as socket addresses (a name is resolved in the namespace of
/// the calling thread).
pub(crate) fn addrs(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("resolve {host}: {e}"))
}

/// Connect to `addrs` (first that answers) within `timeout`.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let mut last = format!("dial tcp {host}:{port}: no address");
    for a in addrs(host, port)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("dial tcp {a}: i/o timeout");
            }
            Err(e) => last = format!("dial tcp {a}: connect: {e}"),
        }
    }
    Err(last)
}

pub fn probe(netns: Option<&Path>, host: &str, port: u16, timeout: Duration) -> Outcome {
    let h = host.to_string();
    match super::netns::run_in(netns, move || connect(&h, port, timeout).map(drop)) {
        Ok(()) => Outcome::Success(String::new()),
        Err(e) => Outcome::Failure(e),
    }
}
