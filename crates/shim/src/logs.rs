//! Container logs in the CRI format:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <content>\n`.
//! `P` marks a partial line (split because it was too long); `F` ends one.

use crate::protocol::LogRotation;
use chrono::{SecondsFormat, Utc};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest content written in one record; longer lines are split with `P`.
pub const MAX_LINE: usize = 16 * 1024;

/// Format one record.
pub fn format_record(stream: &str, partial: bool, content: &[u8]) -> Vec<u8> {
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Split buffered output into records; returns the records and leaves the
/// unfinished tail in `buf`.
pub fn take_records(stream: &str, buf: &mut Vec<u8>, eof: bool) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            if pos <= MAX_LINE {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let content = &line[..line.len() - 1];
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                out.extend(format_record(stream, false, content));
                continue;
            }
        }
        if buf.len() > MAX_LINE {
            let part: Vec<u8> = buf.drain(..MAX_LINE).collect();
            out.extend(format_record(stream, true, &part));
            continue;
        }
        break;
    }
    if eof && !buf.is_empty() {
        let rest: Vec<u8> = std::mem::take(buf);
        out.extend(format_record(stream, false, &rest));
    }
    out
}

/// A container's log file, shared by its stdout and stderr pumps, rotated
/// the way kubelet rotates container logs: once the live file (`0.log`)
/// would grow past the size limit it is renamed to `0.log.<UTC
/// YYYYMMDD-HHMMSS>` and a new live file is opened; the oldest rotated
/// files are deleted so that at most `max_files` files remain. Records are
/// never split across two files.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    rotation: LogRotation,
}

/// One writer per container, locked by each record batch.
pub type SharedWriter = Arc<Mutex<LogWriter>>;

fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl LogWriter {
    /// Open (or create) the live file. A file that cannot be opened is
    /// logged and retried on the next write, so the container's output
    /// pipes are still drained.
    pub fn new(path: &Path, rotation: LogRotation) -> Self {
        let mut w = Self {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            rotation,
        };
        if let Err(e) = w.reopen() {
            tracing::error!(path = %path.display(), "cannot open log file: {e}");
        }
        w
    }

    pub fn shared(path: &Path, rotation: LogRotation) -> SharedWriter {
        Arc::new(Mutex::new(Self::new(path, rotation)))
    }

    /// Close the file and open the path again (CRI ReopenContainerLog).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.file = None;
        let (file, size) = open_append(&self.path)?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    /// Append whole records (each ends with `\n`), rotating between
    /// records when the size limit would be crossed. A single record larger
    /// than the limit goes alone into a file.
    pub fn write_records(&mut self, records: &[u8]) -> std::io::Result<()> {
        let max = self.rotation.max_size;
        let mut rest = records;
        while !rest.is_empty() {
            if self.file.is_none() {
                self.reopen()?;
            }
            let take = if max == 0 || self.size + rest.len() as u64 <= max {
                rest.len()
            } else {
                let room = max.saturating_sub(self.size) as usize;
                match rest[..room.min(rest.len())]
                    .iter()
                    .rposition(|&b| b == b'\n')
                {
                    Some(p) => p + 1,
                    None if self.size == 0 => rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|p| p + 1)
                        .unwrap_or(rest.len()),
                    None => 0,
                }
            };
            if take == 0 {
                self.rotate()?;
                continue;
            }
            let Some(file) = self.file.as_mut() else {
                continue;
            };
            // O_APPEND: each write lands whole at the end of the file.
            file.write_all(&rest[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    /// Rename the live file to its timestamped name, delete the oldest
    /// rotated files beyond the limit, open a new live file.
    pub fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let target = rotated_name(&self.path, Utc::now());
        // Never a moment without a live file (a reader opening the path
        // then must find one): the old file gets its rotated name as a
        // second link, then a new empty file replaces the path in one
        // rename.
        match std::fs::hard_link(&self.path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fresh = self.path.with_file_name(format!(".{name}.new"));
        std::fs::File::create(&fresh)?;
        std::fs::rename(&fresh, &self.path)?;
        let keep = self.rotation.max_files.max(1) as usize - 1;
        let rotated = rotated_files(&self.path);
        let excess = rotated.len().saturating_sub(keep);
        for old in &rotated[..excess] {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!(path = %old.display(), "cannot remove rotated log: {e}");
            }
        }
        self.reopen()
    }
}

/// The name a live file is rotated to: `<name>.<YYYYMMDD-HHMMSS>` as
/// kubelet names it, with `.<nanoseconds>` added when several rotations
/// fall in one second (the names still sort oldest first).
pub fn rotated_name(path: &Path, now: chrono::DateTime<Utc>) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = format!("{name}.{}", now.format("%Y%m%d-%H%M%S"));
    // Any rotation in this second already (even one deleted since, whose
    // later siblings remain) makes this one take the nanosecond form.
    let taken = rotated_files(path).iter().any(|p| {
        p.file_name()
            .map(|n| n.to_string_lossy().starts_with(&stamp))
            .unwrap_or(false)
    });
    if !taken {
        return path.with_file_name(stamp);
    }
    let mut nanos = now.timestamp_subsec_nanos();
    loop {
        let p = path.with_file_name(format!("{stamp}.{nanos:09}"));
        if std::fs::symlink_metadata(&p).is_err() {
            return p;
        }
        nanos += 1;
    }
}

/// The rotated files of the live file `path`, oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let suffix = n.strip_prefix(&prefix)?;
            // `20250101-000000` or `20250101-000000.123456789`.
            let ok = suffix.len() >= 15
                && suffix.as_bytes()[8] == b'-'
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.');
            ok.then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

/// Reopen the log of container `id` (the shim's `ReopenLog`).
pub fn reopen(writer: Option<&SharedWriter>, id: &str) -> Result<(), String> {
    let w = writer.ok_or_else(|| format!("container {id} has no open log"))?;
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    w.reopen()
        .map_err(|e| format!("container {id}: reopen {}: {e}", w.path.display()))
}

/// Copy a container's output stream (a pipe, or a pty master) into its
/// CRI log until EOF. Async on the shim's one thread: no thread per
/// stream, so a pod costs the same few pages whatever its container count.
/// Copies of a container's output for attached clients (CRI Attach): the
/// write ends of pipes, by stream. A tap that cannot take a chunk at once
/// (its reader is gone or too slow) is dropped; at EOF all of a stream's
/// are dropped, so their readers see EOF.
pub type Taps = std::rc::Rc<std::cell::RefCell<Vec<(&'static str, File)>>>;

fn feed_taps(taps: &Taps, stream: &'static str, data: &[u8], eof: bool) {
    taps.borrow_mut().retain_mut(|(s, f)| {
        if *s != stream {
            return true;
        }
        !eof && f.write_all(data).is_ok()
    });
}

pub async fn pump(
    fd: std::os::fd::OwnedFd,
    stream: &'static str,
    writer: SharedWriter,
    taps: Taps,
) {
    use tokio::io::AsyncReadExt;
    // tokio's pipe type polls any pollable fd; "unchecked" because a pty
    // master is not a FIFO. It sets O_NONBLOCK itself.
    let mut reader = match tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("log stream: {e}");
            return;
        }
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(n) => n,
            // A pty master reports EIO once the last slave is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("log stream read: {e}");
                0
            }
        };
        feed_taps(&taps, stream, &chunk[..n], n == 0);
        buf.extend_from_slice(&chunk[..n]);
        let records = take_records(stream, &mut buf, n == 0);
        if !records.is_empty() {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = w.write_records(&records) {
                tracing::warn!(path = %w.path.display(), "log write: {e}");
            }
        }
        if n == 0 {
            return;
        }
    }
}

/// Size at which the shim's own `shim.log` and `helper.log` are rotated
/// (one previous generation, `.1`, is kept).
pub const OWN_LOG_MAX: u64 = 1024 * 1024;

/// Keep the shim's own logs in `dir` bounded: a `helper.log` or `shim.log`
/// past [`OWN_LOG_MAX`] is renamed to `.1` (replacing the previous one);
/// the shim's stdout and stderr, which point at `shim.log`, are moved to a
/// new file.
pub fn bound_shim_logs(dir: &Path) {
    let helper = dir.join("helper.log");
    if too_big(&helper) {
        let _ = std::fs::rename(&helper, dir.join("helper.log.1"));
    }
    let shim = dir.join("shim.log");
    if !too_big(&shim) {
        return;
    }
    // Only when our stderr really is that file (not a terminal in a test).
    let same = match (nix::sys::stat::fstat(2), nix::sys::stat::stat(&shim)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    if !same || std::fs::rename(&shim, dir.join("shim.log.1")).is_err() {
        return;
    }
    match open_append(&shim) {
        Ok((file, _)) => {
            for fd in [1, 2] {
                if let Err(e) = nix::unistd::dup2(file.as_raw_fd(), fd) {
                    eprintln!("peapod shim: cannot move fd {fd} to a new shim.log: {e}");
                }
            }
        }
        Err(e) => eprintln!("peapod shim: cannot open a new shim.log: {e}"),
    }
}

fn too_big(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.len() > OWN_LOG_MAX)
        .unwrap_or(false)
}

/// One parsed record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parse one record (without its trailing newline).
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    Some(Record {
        time,
        stream,
        partial: tag == b"P",
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_tail() {
        let mut buf = b"one\ntwo\nthr".to_vec();
        let out = take_records("stdout", &mut buf, false);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" stdout F one"));
        assert!(lines[1].ends_with(" stdout F two"));
        assert_eq!(buf, b"thr");
        let out = take_records("stdout", &mut buf, true);
        assert!(String::from_utf8(out).unwrap().ends_with(" stdout F thr\n"));
        assert!(buf.is_empty());
    }

    #[test]
    fn long_lines_are_partial() {
        let mut buf = vec![b'x'; MAX_LINE + 10];
        buf.push(b'\n');
        let out = take_records("stderr", &mut buf, false);
        let text = String::from_utf8(out).unwrap();
        let recs: Vec<Record> = text
            .lines()
            .filter_map(|l| parse_record(l.as_bytes()))
            .collect();
        assert_eq!(recs.len(), 2);
        assert!(recs[0].partial);
        assert_eq!(recs[0].content.len(), MAX_LINE);
        assert!(!recs[1].partial);
        assert_eq!(recs[1].content.len(), 10);
        assert_eq!(recs[1].stream, "stderr");
    }

    fn rot(max_size: u64, max_files: u32) -> LogRotation {
        LogRotation {
            max_size,
            max_files,
        }
    }

    fn rec(i: usize) -> Vec<u8> {
        // Every record has the same length.
        format_record("stdout", false, format!("line{i:06}").as_bytes())
    }

    #[test]
    fn rotates_at_size_and_keeps_max_files() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("0.log");
        let one = rec(0).len() as u64;
        let mut w = LogWriter::new(&path, rot(one * 10, 3));
        for i in 0..25 {
            w.write_records(&rec(i)).unwrap();
        }
        // 25 records, 10 a file: two rotations so far, 5 in the live file.
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), one * 5);
        for r in &rotated {
            assert_eq!(std::fs::metadata(r).unwrap().len(), one * 10);
        }
        // Oldest first; the first file holds records 0..10.
        let first = std::fs::read_to_string(&rotated[0]).unwrap();
        assert!(first.lines().next().unwrap().ends_with("line000000"));
        // More rotations never leave more than 3 files in all.
        for i in 25..80 {
            w.write_records(&rec(i)).unwrap();
        }
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        let files = std::fs::read_dir(d.path()).unwrap().count();
        assert_eq!(files, 3);
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.lines().last().unwrap().ends_with("line000079"));
        let newest_rotated = std::fs::read_to_string(&rotated[1]).unwrap();
        assert!(newest_rotated
            .lines()
            .last()
            .unwrap()
            .ends_with("line000069"));
    }

    #[test]
    fn batches_split_between_records_only() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("0.log");
        let one = rec(0).len() as u64;
        let mut w = LogWriter::new(&path, rot(one * 4 + one / 2, 5));
        let batch: Vec<u8> = (0..10).flat_map(rec).collect();
        w.write_records(&batch).unwrap();
        let mut all = Vec::new();
        for f in rotated_files(&path).iter().chain([&path]) {
            let text = std::fs::read(f).unwrap();
            assert!(text.ends_with(b"\n"));
            assert!(text.len() as u64 <= one * 4);
            all.extend(text);
        }
        assert_eq!(all, batch);
        // A record larger than the limit still goes out, alone.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("0.log");
        let mut w = LogWriter::new(&path, rot(8, 5));
        let (r1, r2) = (rec(1), rec(2));
        w.write_records(&[r1.clone(), r2.clone()].concat()).unwrap();
        assert_eq!(rotated_files(&path).len(), 1);
        assert_eq!(std::fs::read(&rotated_files(&path)[0]).unwrap(), r1);
        assert_eq!(std::fs::read(&path).unwrap(), r2);
    }

    #[test]
    fn no_rotation_when_off_and_reopen_follows_the_path() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("0.log");
        let mut w = LogWriter::new(&path, rot(0, 5));
        for i in 0..100 {
            w.write_records(&rec(i)).unwrap();
        }
        assert!(rotated_files(&path).is_empty());
        // Someone else rotates: without a reopen the records follow the
        // renamed file, after it they go to a new file at the path.
        let moved = d.path().join("0.log.20250101-000000");
        std::fs::rename(&path, &moved).unwrap();
        w.write_records(&rec(100)).unwrap();
        assert!(!path.exists());
        w.reopen().unwrap();
        let r = rec(101);
        w.write_records(&r).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), r);
        assert_eq!(rotated_files(&path), vec![moved]);
    }

    #[test]
    fn rotated_names_sort_in_time_order() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("0.log");
        let t = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = rotated_name(&path, t);
        assert_eq!(a.file_name().unwrap(), "0.log.20250101-000000");
        std::fs::write(&a, "").unwrap();
        let b = rotated_name(&path, t);
        assert_eq!(b.file_name().unwrap(), "0.log.20250101-000000.500000000");
        std::fs::write(&b, "").unwrap();
        std::fs::write(d.path().join("0.log.tmp"), "").unwrap();
        std::fs::write(d.path().join("1.log.20240101-000000"), "").unwrap();
        assert_eq!(rotated_files(&path), vec![a, b]);
    }

    #[test]
    fn own_logs_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let big = vec![b'x'; OWN_LOG_MAX as usize + 1];
        std::fs::write(d.path().join("helper.log"), &big).unwrap();
        std::fs::write(d.path().join("helper.log.1"), "older").unwrap();
        // Not this process's stderr: left alone.
        std::fs::write(d.path().join("shim.log"), &big).unwrap();
        bound_shim_logs(d.path());
        assert!(!d.path().join("helper.log").exists());
        assert_eq!(
            std::fs::metadata(d.path().join("helper.log.1"))
                .unwrap()
                .len(),
            big.len() as u64
        );
        assert!(d.path().join("shim.log").exists());
        assert!(!d.path().join("shim.log.1").exists());
        // Small files stay.
        std::fs::write(d.path().join("helper.log"), "small").unwrap();
        bound_shim_logs(d.path());
        assert!(d.path().join("helper.log").exists());
    }

    #[test]
    fn parses_record() {
        let r = parse_record(b"2024-01-01T00:00:00.000000001Z stdout F hello world").unwrap();
        assert_eq!(r.time, "2024-01-01T00:00:00.000000001Z");
        assert_eq!(r.content, b"hello world");
        assert!(!r.partial);
    }
}
