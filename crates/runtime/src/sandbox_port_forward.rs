//! PortForward: a TCP connection to a port inside a sandbox's network
//! namespace, as kubelet/containerd's port-forward makes it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;

/// Connect to `127.0.0.1:port` inside the network namespace pinned at
/// `netns`. The connect runs on a short-lived thread that joins the
/// namespace (setns is per thread), so no other thread of the caller
/// changes namespace; the socket stays in the namespace it was made in.
pub fn connect_port(netns: &Path, port: u16) -> std::io::Result<TcpStream> {
    let ns = std::fs::File::open(netns).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("open network namespace {}: {e}", netns.display()),
        )
    })?;
    let handle = std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || -> std::io::Result<TcpStream> {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::other(format!("join network namespace: {e}")))?;
            TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        })?;
    handle
        .join()
        .map_err(|_| std::io::Error::other("port-forward connect thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_in_the_current_namespace() {
        // Our own net namespace: a listener on 127.0.0.1 is reachable.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let s = connect_port(Path::new("/proc/self/ns/net"), port);
        assert!(s.is_ok(), "{s:?}");
        let err = connect_port(Path::new("/nonexistent/netns"), port).expect_err("no ns");
        assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
    }
}
