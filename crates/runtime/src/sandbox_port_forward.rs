//! Port forwarding into a pod (CRI's PortForward, `peapod port-forward`):
//! a TCP connection to a port on the pod's loopback, made from inside the
//! pod's network namespace, as containerd does it.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// How long a connection inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to `port` on the loopback of the network namespace at `netns`
/// (127.0.0.1, then ::1). A short-lived thread enters the namespace and
/// connects; the socket stays in the pod's namespace after the thread
/// ends, so the caller's threads are never moved.
pub fn connect_port(netns: &Path, port: u16) -> io::Result<TcpStream> {
    let ns = std::fs::File::open(netns).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "opening the pod's network namespace {}: {e}",
                netns.display()
            ),
        )
    })?;
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || -> io::Result<TcpStream> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                io::Error::other(format!("entering the pod's network namespace: {e}"))
            })?;
            let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                Ok(s) => Ok(s),
                Err(e4) => {
                    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                    TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| {
                        io::Error::new(
                            e4.kind(),
                            format!("connecting to localhost:{port} inside the pod's network namespace: {e4}"),
                        )
                    })
                }
            }
        })?
        .join()
        .map_err(|_| io::Error::other("the port-forward thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn connects_inside_the_namespace_and_says_why_not() {
        // Our own namespace: a listener here is what "inside" finds.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let own = Path::new("/proc/self/ns/net");
        let mut c = connect_port(own, port).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        drop(l);
        let e = connect_port(own, port).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().contains(&format!("localhost:{port}")), "{e}");
        let e = connect_port(Path::new("/nonexistent/ns"), port).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ns"), "{e}");
    }
}
