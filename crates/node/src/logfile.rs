//! Reading a container's CRI log files: the live file (`0.log`) and the
//! files the shim rotated it to (`0.log.<timestamp>`, oldest first).
//!
//! `--tail N` reads backwards from the end, block by block, through the
//! rotated files only as far as it needs; `-f` waits on inotify for the
//! log directory and follows the live path through a rotation (the file it
//! holds was renamed: drain it, then open the new one).

use inotify::{Inotify, WatchMask};
use peapod_shim::logs::rotated_files;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How much is read at a time, backwards or forwards.
const BLOCK: u64 = 64 * 1024;

fn read_at(f: &mut File, from: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.seek(SeekFrom::Start(from))?;
    let mut got = 0;
    while got < len {
        match f.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The offset just past the last whole record (a record being written
/// right now is left for later).
pub fn complete_end(f: &mut File) -> std::io::Result<u64> {
    let mut end = f.metadata()?.len();
    while end > 0 {
        let from = end.saturating_sub(BLOCK);
        let block = read_at(f, from, (end - from) as usize)?;
        if let Some(p) = block.iter().rposition(|&b| b == b'\n') {
            return Ok(from + p as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

/// The last `n` records of `f[..end]` (`end` just past a newline), read
/// backwards a block at a time; with how many records they are (fewer
/// than `n` when the file has fewer).
pub fn tail_of(f: &mut File, end: u64, n: usize) -> std::io::Result<(Vec<u8>, usize)> {
    if n == 0 || end == 0 {
        return Ok((Vec::new(), 0));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut start = end;
    // Newlines counted in `buf` so far, scanning from its end.
    let mut seen = 0usize;
    loop {
        let from = start.saturating_sub(BLOCK);
        let mut block = read_at(f, from, (start - from) as usize)?;
        let scanned = block.len();
        block.extend_from_slice(&buf);
        buf = block;
        start = from;
        // The (n+1)-th newline from the end closes the record before the
        // n we want.
        for i in (0..scanned).rev() {
            if buf[i] == b'\n' {
                seen += 1;
                if seen == n + 1 {
                    return Ok((buf.split_off(i + 1), n));
                }
            }
        }
        if start == 0 {
            return Ok((buf, seen));
        }
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The live file opened, the offset just past its last whole record, and
/// the records to show first: the last `tail` records across the rotated
/// files and the live one, or (`tail: None`) everything, handed to `emit`
/// a block at a time. Stops early (returning `None`) when `emit` says the
/// reader is gone.
pub fn read_initial(
    path: &Path,
    tail: Option<usize>,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> std::io::Result<Option<(File, u64)>> {
    let mut live = File::open(path)?;
    let live_meta = live.metadata()?;
    let end = complete_end(&mut live)?;
    // A file rotated between our open and this listing is the one we hold.
    let rotated: Vec<_> = rotated_files(path)
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| !same_file(&m, &live_meta))
                .unwrap_or(false)
        })
        .collect();
    match tail {
        Some(n) => {
            let (mut data, mut got) = tail_of(&mut live, end, n)?;
            for r in rotated.iter().rev() {
                if got >= n {
                    break;
                }
                // Deleted meanwhile by the next rotation: nothing older.
                let Ok(mut f) = File::open(r) else { break };
                let e = complete_end(&mut f)?;
                let (older, c) = tail_of(&mut f, e, n - got)?;
                got += c;
                data.splice(0..0, older);
            }
            if !data.is_empty() && !emit(data) {
                return Ok(None);
            }
        }
        None => {
            for r in &rotated {
                let Ok(mut f) = File::open(r) else { continue };
                let mut pos = 0;
                if !send_from(&mut f, &mut pos, emit)? {
                    return Ok(None);
                }
            }
            let mut pos = 0;
            if !send_from_until(&mut live, &mut pos, Some(end), emit)? {
                return Ok(None);
            }
        }
    }
    Ok(Some((live, end)))
}

/// Hand `emit` the whole records of `f` from `*pos` on, a block at a time,
/// moving `*pos` past them; false when `emit` says the reader is gone.
pub fn send_from(
    f: &mut File,
    pos: &mut u64,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> std::io::Result<bool> {
    send_from_until(f, pos, None, emit)
}

fn send_from_until(
    f: &mut File,
    pos: &mut u64,
    until: Option<u64>,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> std::io::Result<bool> {
    loop {
        let want = match until {
            Some(u) if u <= *pos => return Ok(true),
            Some(u) => (u - *pos).min(BLOCK),
            None => BLOCK,
        };
        let mut block = read_at(f, *pos, want as usize)?;
        if block.is_empty() {
            return Ok(true);
        }
        let full = block.len() as u64 == want;
        let Some(cut) = block.iter().rposition(|&b| b == b'\n') else {
            // One record longer than a block (the shim splits lines at
            // 16 KiB, so only a record being written): wait for its end.
            return Ok(true);
        };
        block.truncate(cut + 1);
        *pos += block.len() as u64;
        if !emit(block) {
            return Ok(false);
        }
        if !full {
            return Ok(true);
        }
    }
}

/// If `path` now names another file than `held` (the shim rotated it, or
/// someone replaced it), that new file.
pub fn replaced(path: &Path, held: &File) -> Option<File> {
    let now = std::fs::metadata(path).ok()?;
    let ours = held.metadata().ok()?;
    if same_file(&now, &ours) {
        return None;
    }
    File::open(path).ok()
}

/// Wakes a follower when something changes in the log's directory: a
/// write, a close, a rename or a new file.
pub struct Watch {
    inotify: Inotify,
    buf: Vec<u8>,
}

impl Watch {
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let inotify = Inotify::init()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        inotify.watches().add(
            dir,
            WatchMask::MODIFY
                | WatchMask::CLOSE_WRITE
                | WatchMask::CREATE
                | WatchMask::MOVED_FROM
                | WatchMask::MOVED_TO
                | WatchMask::DELETE
                | WatchMask::DELETE_SELF,
        )?;
        Ok(Self {
            inotify,
            buf: vec![0u8; 4096],
        })
    }

    /// Wait up to `timeout` for events; true if any came (all queued
    /// events are consumed).
    pub fn wait(&mut self, timeout: Duration) -> std::io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
        let mut any = false;
        loop {
            match self.inotify.read_events(&mut self.buf) {
                Ok(events) => any |= events.count() > 0,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(range: std::ops::Range<usize>) -> String {
        range.map(|i| format!("record {i}\n")).collect()
    }

    #[test]
    fn tail_reads_from_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        // Over several blocks, and a record still being written at the end.
        let mut text = lines(0..20_000);
        text.push_str("partial");
        std::fs::write(&p, &text).unwrap();
        let mut f = File::open(&p).unwrap();
        let end = complete_end(&mut f).unwrap();
        assert_eq!(end as usize, text.len() - "partial".len());
        let (data, n) = tail_of(&mut f, end, 5).unwrap();
        assert_eq!(n, 5);
        assert_eq!(String::from_utf8(data).unwrap(), lines(19_995..20_000));
        let (data, n) = tail_of(&mut f, end, 15_000).unwrap();
        assert_eq!(n, 15_000);
        assert_eq!(String::from_utf8(data).unwrap(), lines(5_000..20_000));
        let (data, n) = tail_of(&mut f, end, 50_000).unwrap();
        assert_eq!(n, 20_000);
        assert_eq!(data.len() as u64, end);
        assert_eq!(tail_of(&mut f, end, 0).unwrap().1, 0);
    }

    #[test]
    fn tail_and_all_read_rotated_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(d.path().join("0.log.20250101-000000"), lines(0..3)).unwrap();
        std::fs::write(d.path().join("0.log.20250101-000001"), lines(3..6)).unwrap();
        std::fs::write(&p, lines(6..8)).unwrap();
        let mut out = Vec::new();
        let mut emit = |b: Vec<u8>| {
            out.extend(b);
            true
        };
        let (_, end) = read_initial(&p, Some(5), &mut emit).unwrap().unwrap();
        assert_eq!(end as usize, lines(6..8).len());
        assert_eq!(String::from_utf8(out.clone()).unwrap(), lines(3..8));
        out.clear();
        let mut emit = |b: Vec<u8>| {
            out.extend(b);
            true
        };
        read_initial(&p, None, &mut emit).unwrap().unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), lines(0..8));
        out.clear();
        let mut emit = |b: Vec<u8>| {
            out.extend(b);
            true
        };
        read_initial(&p, Some(100), &mut emit).unwrap().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), lines(0..8));
    }

    #[test]
    fn follows_a_rotation_with_inotify() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, lines(0..2)).unwrap();
        let mut watch = Watch::new(&p).unwrap();
        let mut out = Vec::new();
        let mut emit = |b: Vec<u8>| {
            out.extend(b);
            true
        };
        let (mut f, mut pos) = read_initial(&p, None, &mut emit).unwrap().unwrap();
        assert!(!watch.wait(Duration::from_millis(10)).unwrap());
        // Rotate: a last record into the old file, rename, new file.
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        w.write_all(lines(2..3).as_bytes()).unwrap();
        std::fs::rename(&p, d.path().join("0.log.20250101-000000")).unwrap();
        std::fs::write(&p, lines(3..5)).unwrap();
        assert!(watch.wait(Duration::from_secs(5)).unwrap());
        let mut emit = |b: Vec<u8>| {
            out.extend(b);
            true
        };
        assert!(send_from(&mut f, &mut pos, &mut emit).unwrap());
        let mut nf = replaced(&p, &f).unwrap();
        assert!(send_from(&mut f, &mut pos, &mut emit).unwrap());
        let mut npos = 0;
        assert!(send_from(&mut nf, &mut npos, &mut emit).unwrap());
        assert!(replaced(&p, &nf).is_none());
        assert_eq!(String::from_utf8(out).unwrap(), lines(0..5));
    }
}
