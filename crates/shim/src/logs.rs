//! Container logs in the CRI format:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <content>\n`.
//! `P` marks a partial line (split because it was too long); `F` ends one.

use chrono::{SecondsFormat, Utc};
use std::io::{Read, Write};
use std::path::Path;

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

/// Copy a container's output stream into its CRI log file until EOF.
/// Blocking: the shim runs one small thread per stream (a pty master is not
/// a FIFO, so tokio's pipe type does not take it).
pub fn pump(mut reader: impl Read, stream: &'static str, path: &Path) {
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), "cannot open log file: {e}");
            return;
        }
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            // A pty master reports EIO once the last slave is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("log stream read: {e}");
                0
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        let records = take_records(stream, &mut buf, n == 0);
        // O_APPEND makes each write land whole at the end of the file, so
        // stdout and stderr pumps can share it.
        if !records.is_empty() {
            if let Err(e) = file.write_all(&records) {
                tracing::warn!(path = %path.display(), "log write: {e}");
            }
        }
        if n == 0 {
            return;
        }
    }
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

    #[test]
    fn parses_record() {
        let r = parse_record(b"2024-01-01T00:00:00.000000001Z stdout F hello world").unwrap();
        assert_eq!(r.time, "2024-01-01T00:00:00.000000001Z");
        assert_eq!(r.content, b"hello world");
        assert!(!r.partial);
    }
}
