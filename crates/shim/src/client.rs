//! The daemon's side of the control socket. Blocking: each call is one
//! short connection; async callers wrap it in `spawn_blocking`.

use crate::fdpass;
use crate::protocol::*;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim at {path}: cannot connect: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shim at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("shim at {path}: bad response: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("{0}")]
    Remote(String),
}

#[derive(Debug, Clone)]
pub struct ShimClient {
    socket: PathBuf,
}

impl ShimClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    /// Send one request; returns the response and any fds that came with it.
    pub fn call_with_fds(
        &self,
        req: &Request,
        timeout: Option<Duration>,
    ) -> Result<(Response, Vec<OwnedFd>), ShimError> {
        let io = |source| ShimError::Io {
            path: self.socket.clone(),
            source,
        };
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ShimError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        stream.set_read_timeout(timeout).map_err(io)?;
        let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol {
            path: self.socket.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        stream.write_all(&line).map_err(io)?;
        let mut data = Vec::new();
        let mut fds = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, mut got) = fdpass::recv_with_fds(&stream, &mut buf).map_err(io)?;
            fds.append(&mut got);
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            if data.ends_with(b"\n") {
                break;
            }
        }
        let resp: Response = serde_json::from_slice(&data).map_err(|e| ShimError::Protocol {
            path: self.socket.clone(),
            message: format!("{e} in {:?}", String::from_utf8_lossy(&data)),
        })?;
        if let Response::Error { message } = resp {
            return Err(ShimError::Remote(message));
        }
        Ok((resp, fds))
    }

    pub fn call(&self, req: &Request) -> Result<Response, ShimError> {
        self.call_with_fds(req, None).map(|(r, _)| r)
    }

    pub fn state(&self) -> Result<ShimState, ShimError> {
        match self
            .call_with_fds(&Request::State, Some(Duration::from_secs(10)))?
            .0
        {
            Response::State(s) => Ok(s),
            other => Err(self.unexpected(other)),
        }
    }

    pub fn wait_change(&self, since: u64, timeout: Duration) -> Result<ShimState, ShimError> {
        let req = Request::WaitChange {
            since,
            timeout_ms: timeout.as_millis() as u64,
        };
        match self
            .call_with_fds(&req, Some(timeout + Duration::from_secs(10)))?
            .0
        {
            Response::State(s) => Ok(s),
            other => Err(self.unexpected(other)),
        }
    }

    pub fn expect_ok(&self, req: &Request) -> Result<(), ShimError> {
        match self.call(req)? {
            Response::Ok => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Make the shim reopen container `id`'s log file (CRI
    /// ReopenContainerLog).
    pub fn reopen_log(&self, id: &str) -> Result<(), ShimError> {
        self.expect_ok(&Request::ReopenLog { id: id.to_string() })
    }

    fn unexpected(&self, r: Response) -> ShimError {
        ShimError::Protocol {
            path: self.socket.clone(),
            message: format!("unexpected response {r:?}"),
        }
    }
}
