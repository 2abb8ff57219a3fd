//! Text layout shared by the verbs: Go's `text/tabwriter` layout (which
//! kubectl prints through; here the `tabwriter` crate, a port of it),
//! kubectl's and docker's duration formatting, and small helpers for
//! timestamps.

use std::io::Write;

use chrono::{DateTime, Local, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tabwriter::TabWriter;
use unicode_width::UnicodeWidthStr;

/// kubectl get's tabwriter settings: `tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)`.
pub const GET_MIN_WIDTH: usize = 6;
/// kubectl get's padding between columns.
pub const GET_PADDING: usize = 3;

/// Lays out `text` as Go's `text/tabwriter` does with a space pad character
/// and no flags (the `tabwriter` crate is a port of it): cells are
/// tab-terminated, a column block is a run of consecutive lines that have a
/// cell in that column, every cell of a block is padded to the widest cell
/// plus `padding` (at least `min_width`). The text after the last tab of a
/// line is not part of any column.
///
/// This is what kubectl's `describe` (min width 0, padding 2) and `get`
/// (min width 6, padding 3) print through.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut writer = go_tabwriter(&mut out, min_width, padding);
    // Writing to a Vec cannot fail.
    let _ = writer.write_all(text.as_bytes());
    let _ = writer.flush();
    drop(writer);
    // The writer copies whole cells (it splits at ASCII tabs and newlines
    // only) and pads with spaces, so the output is UTF-8 like the input.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A `TabWriter` with Go's settings. Go pads a cell to
/// `max(min_width, width + padding)`; the crate to
/// `max(minwidth, width) + padding`, so its minimum is Go's less the padding.
fn go_tabwriter<W: Write>(w: W, min_width: usize, padding: usize) -> TabWriter<W> {
    TabWriter::new(w)
        .minwidth(min_width.saturating_sub(padding))
        .padding(padding)
}

/// The width of a cell as the tabwriter counts it.
fn text_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// A table of rows with the same number of cells (kubectl get, images,
/// inspect), laid out like Go's tabwriter with `RememberWidths`: the widths
/// of earlier renders are kept, so rows printed later (watch events) line up
/// with the header printed first.
#[derive(Debug, Clone)]
pub struct Table {
    min_width: usize,
    padding: usize,
    /// The widest cell seen so far in each column but the last.
    widths: Vec<usize>,
}

impl Table {
    /// A table with kubectl get's settings (min width 6, padding 3).
    pub fn kubectl() -> Self {
        Table::new(GET_MIN_WIDTH, GET_PADDING)
    }

    /// A table with the given tabwriter minimum cell width and padding.
    pub fn new(min_width: usize, padding: usize) -> Self {
        Table {
            min_width,
            padding,
            widths: Vec::new(),
        }
    }

    /// Renders `rows` (each line ends with `\n`). Every cell but the last of
    /// a row is padded to its column's width; widths only grow.
    pub fn render(&mut self, rows: &[Vec<String>]) -> String {
        if rows.is_empty() {
            return String::new();
        }
        for row in rows {
            let cells = row.len().saturating_sub(1);
            for (j, cell) in row.iter().take(cells).enumerate() {
                let width = text_width(cell);
                match self.widths.get_mut(j) {
                    Some(w) => *w = (*w).max(width),
                    None => self.widths.push(width),
                }
            }
        }
        // The remembered widths enter the tabwriter as a first line of blank
        // cells, which is then cut from its output.
        let mut text: String = self.widths.iter().map(|&w| " ".repeat(w) + "\t").collect();
        text.push('\n');
        for row in rows {
            text.push_str(&row.join("\t"));
            text.push('\n');
        }
        let out = tabwrite(&text, self.min_width, self.padding);
        match out.split_once('\n') {
            Some((_, rest)) => rest.to_string(),
            None => out,
        }
    }
}

/// kubectl's `duration.HumanDuration`: `5s`, `2m3s`, `10m`, `3h5m`, `2d`, …
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// kubectl's `translateTimestampSince`: the age of `t`, `<unknown>` when
/// unset.
pub fn age(t: Option<&Time>, now: DateTime<Utc>) -> String {
    match t.and_then(to_chrono) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// Converts a Kubernetes timestamp.
pub fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.0.as_millisecond())
}

/// Go's `time.RFC1123Z` in the local zone, as kubectl describe prints times:
/// `Mon, 02 Jan 2006 15:04:05 -0700`.
pub fn rfc1123z(t: Option<&Time>) -> String {
    match t.and_then(to_chrono) {
        Some(t) => t
            .with_timezone(&Local)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        // Go formats the zero time.
        None => "Mon, 01 Jan 0001 00:00:00 +0000".to_string(),
    }
}

/// docker's `units.HumanDuration`, used for the CREATED column of `images`
/// (followed by " ago").
pub fn docker_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".to_string();
    } else if seconds == 1 {
        return "1 second".to_string();
    } else if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    } else if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (seconds as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three
/// significant digits, `1.23MB`, `77.8MB`, `123B`.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let mut text = three_significant(value);
    if text == "1000" && unit + 1 < UNITS.len() {
        unit += 1;
        text = "1".to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// Go's `%.3g` for 0 <= value < 1000, without exponent.
fn three_significant(value: f64) -> String {
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn kubectl_get_table() {
        let out = Table::kubectl().render(&rows(&[
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["web", "1/1", "Running", "0", "5s"],
            &["a-much-longer-name", "0/2", "Init:0/1", "12", "3h5m"],
        ]));
        assert_eq!(
            out,
            "NAME                 READY   STATUS     RESTARTS   AGE\n\
             web                  1/1     Running    0          5s\n\
             a-much-longer-name   0/2     Init:0/1   12         3h5m\n"
        );
    }

    #[test]
    fn table_min_width_and_remembered_widths() {
        let mut table = Table::kubectl();
        let out = table.render(&rows(&[&["A", "B", "C"], &["x", "yy", "z"]]));
        assert_eq!(out, "A     B     C\nx     yy    z\n");
        // A later, wider row widens its own column; the header stays.
        let out = table.render(&rows(&[&["xxxxxxx", "y", "z"]]));
        assert_eq!(out, "xxxxxxx   y     z\n");
        let out = table.render(&rows(&[&["x", "y", "z"]]));
        assert_eq!(out, "x         y     z\n");
    }

    #[test]
    fn table_matches_tabwrite_for_uniform_rows() {
        let data = rows(&[
            &["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["default", "web", "1/1", "Running", "0", "10m"],
            &[
                "kube-system",
                "x",
                "0/1",
                "CrashLoopBackOff",
                "5 (2m ago)",
                "2d",
            ],
        ]);
        let text: String = data.iter().map(|r| r.join("\t") + "\n").collect();
        assert_eq!(
            tabwrite(&text, GET_MIN_WIDTH, GET_PADDING),
            Table::kubectl().render(&data)
        );
    }

    #[test]
    fn tabwrite_blocks_like_go() {
        // Lines without a tab end the column block, as in kubectl describe.
        let text = "Name:\tweb\nService Account:\tdefault\nIPs:\n  IP:\t10.0.0.1\nContainers:\n  web:\n    Image:\tnginx\n    Command:\n      sleep\n    State:\tRunning\n      Started:\tnow\n    Restart Count:\t0\n";
        let want = "Name:             web\n\
                    Service Account:  default\n\
                    IPs:\n\
                    \x20 IP:  10.0.0.1\n\
                    Containers:\n\
                    \x20 web:\n\
                    \x20   Image:  nginx\n\
                    \x20   Command:\n\
                    \x20     sleep\n\
                    \x20   State:          Running\n\
                    \x20     Started:      now\n\
                    \x20   Restart Count:  0\n";
        assert_eq!(tabwrite(text, 0, 2), want);
    }

    #[test]
    fn tabwrite_nested_columns() {
        let text = "a\tb\tc\nlonger\tb\nx\ty\tz\n";
        // Column 0 spans all three lines; column 1 only the first line, then
        // the last line on its own.
        assert_eq!(tabwrite(text, 0, 1), "a      b c\nlonger b\nx      y z\n");
        // Empty cells are padded too; trailing text without newline is kept.
        assert_eq!(tabwrite("\tx\nab\ty", 0, 1), "   x\nab y");
    }

    #[test]
    fn kubectl_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (4 * 3600, "4h"),
            (8 * 3600 + 100, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400, "2y"),
            (3 * 365 * 86400 + 7 * 86400, "3y7d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(Duration::seconds(seconds)),
                want,
                "{seconds}s"
            );
        }
    }

    #[test]
    fn docker_sizes_and_durations() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(123), "123B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1_234_567), "1.23MB");
        assert_eq!(human_size(77_812_345), "77.8MB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(999_999), "1MB");
        assert_eq!(docker_duration(Duration::seconds(0)), "Less than a second");
        assert_eq!(docker_duration(Duration::seconds(30)), "30 seconds");
        assert_eq!(docker_duration(Duration::seconds(90)), "About a minute");
        assert_eq!(docker_duration(Duration::seconds(7200)), "2 hours");
        assert_eq!(docker_duration(Duration::days(3)), "3 days");
        assert_eq!(docker_duration(Duration::days(20)), "2 weeks");
        assert_eq!(docker_duration(Duration::days(100)), "3 months");
    }
}
