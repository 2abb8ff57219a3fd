//! File descriptor passing (SCM_RIGHTS) over unix stream sockets.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Send `data` with `fds` attached; returns the bytes of `data` sent.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    Ok(sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)?)
}

/// Receive into `buf`, collecting any fds that come along.
pub fn recv_with_fds(
    sock: &impl AsRawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// Receive the fds of one message (as a console socket sends a pty master).
pub fn recv_fds(sock: &impl AsRawFd) -> std::io::Result<Vec<OwnedFd>> {
    let mut buf = [0u8; 4096];
    let (_, fds) = recv_with_fds(sock, &mut buf)?;
    if fds.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected file descriptors, got none",
        ));
    }
    Ok(fds)
}
