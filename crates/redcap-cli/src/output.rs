//! Output: rows as JSON, CSV or an aligned table, and files written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use comfy_table::{ContentArrangement, Table};
use redcap::Row;
use serde_json::Value;

use crate::error::{CliError, ExitKind};

/// How rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
    /// Aligned columns, for reading.
    Table,
}

/// A cell as text: strings as they are, blanks for null, other JSON as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Every column of `rows`, in first-seen order.
pub fn columns(rows: &[Row]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for row in rows {
        for k in row.keys() {
            if !cols.iter().any(|c| c == k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

/// Writes `rows` in `format`.
pub fn write_rows(rows: &[Row], format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows).map_err(std::io::Error::from)?;
            writeln!(out)
        }
        Format::Csv => {
            let cols = columns(rows);
            if cols.is_empty() {
                // No rows and no known columns: an empty file, not a header of one empty name.
                return Ok(());
            }
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&cols).map_err(csv_io)?;
            for row in rows {
                let rec: Vec<String> = cols.iter().map(|c| row.get(c).map(cell_text).unwrap_or_default()).collect();
                w.write_record(&rec).map_err(csv_io)?;
            }
            w.flush()
        }
        Format::Table => {
            let cols = columns(rows);
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| cols.iter().map(|c| r.get(c).map(cell_text).unwrap_or_default()).collect())
                .collect();
            write!(out, "{}", table(&cols, &body))
        }
    }
}

/// A CSV writer's error as the I/O error it wraps, if it wraps one: a closed pipe must stay a
/// closed pipe (a quiet stop), not become a write failure. (serde_json's errors convert the
/// same way through `std::io::Error::from`.)
fn csv_io(e: csv::Error) -> std::io::Error {
    if !e.is_io_error() {
        return std::io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Writes rows one at a time as they arrive, with the bytes [`write_rows`] writes for them all:
/// JSON and CSV in constant memory (CSV takes its columns from the first row; REDCap's rows all
/// have the same ones), the aligned table only at the end (it needs every width).
pub struct RowSink<'w> {
    format: Format,
    out: &'w mut dyn Write,
    rows: u64,
    columns: Vec<String>,
    kept: Vec<Row>,
    line: Vec<u8>,
}

impl std::fmt::Debug for RowSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowSink").field("format", &self.format).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<'w> RowSink<'w> {
    /// A sink writing `format` into `out`.
    pub fn new(format: Format, out: &'w mut dyn Write) -> Self {
        RowSink { format, out, rows: 0, columns: Vec::new(), kept: Vec::new(), line: Vec::new() }
    }

    /// Writes (or, for a table, keeps) one row.
    pub fn row(&mut self, row: Row) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                // An element of a pretty array is the row pretty-printed one level deeper; JSON
                // strings hold no raw line breaks, so indenting every line is exact.
                self.line.clear();
                serde_json::to_writer_pretty(&mut self.line, &row).map_err(std::io::Error::from)?;
                self.out.write_all(if self.rows == 0 { b"[\n  " } else { b",\n  " })?;
                for (i, part) in self.line.split(|&b| b == b'\n').enumerate() {
                    if i > 0 {
                        self.out.write_all(b"\n  ")?;
                    }
                    self.out.write_all(part)?;
                }
            }
            Format::Csv => {
                if self.rows == 0 {
                    self.columns = row.keys().cloned().collect();
                    self.csv_record(&self.columns.clone())?;
                }
                let rec: Vec<String> =
                    self.columns.iter().map(|c| row.get(c).map(cell_text).unwrap_or_default()).collect();
                self.csv_record(&rec)?;
            }
            Format::Table => self.kept.push(row),
        }
        self.rows += 1;
        Ok(())
    }

    /// Writes one row given as a JSON object's text (JSON output only: the text goes out as
    /// it is, one row a line).
    pub fn raw_json(&mut self, object: &str) -> std::io::Result<()> {
        debug_assert_eq!(self.format, Format::Json, "raw rows are JSON");
        self.out.write_all(if self.rows == 0 { b"[\n  " } else { b",\n  " })?;
        self.out.write_all(object.as_bytes())?;
        self.rows += 1;
        Ok(())
    }

    fn csv_record(&mut self, cells: &[String]) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(&mut *self.out);
        w.write_record(cells).map_err(csv_io)?;
        w.flush()
    }

    /// Whether no row has been written yet.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The columns a CSV with no rows still names in its header (REDCap sends an empty body,
    /// but the caller may know the fields).
    pub fn header_if_empty(&mut self, columns: Vec<String>) {
        if self.rows == 0 {
            self.columns = columns;
        }
    }

    /// Ends the output; returns the number of rows.
    pub fn finish(mut self) -> std::io::Result<u64> {
        match self.format {
            Format::Json if self.rows == 0 => writeln!(self.out, "[]")?,
            Format::Json => self.out.write_all(b"\n]\n")?,
            Format::Csv if self.rows == 0 && !self.columns.is_empty() => {
                let header = std::mem::take(&mut self.columns);
                self.csv_record(&header)?
            }
            Format::Csv if self.rows == 0 => write_rows(&[], Format::Csv, self.out)?,
            Format::Csv => {}
            Format::Table => write_rows(&self.kept, Format::Table, self.out)?,
        }
        Ok(self.rows)
    }
}

/// An aligned table with a rule under the header.
pub fn table(header: &[impl AsRef<str>], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    // Only a rule under the header: columns are separated by their padding.
    t.load_preset("     ──            ");
    // Never wrap cells: a row stays one line, in a terminal and in a file alike.
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(header.iter().map(|h| h.as_ref().to_owned()));
    for r in rows {
        t.add_row(r.clone());
    }
    // Without borders the last column is padded with blanks: drop them, and end the rule
    // where the widest line ends.
    let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_owned()).collect();
    let is_rule = |l: &str| !l.is_empty() && l.chars().all(|c| c == '─');
    let width = lines.iter().filter(|l| !is_rule(l)).map(|l| l.chars().count()).max().unwrap_or(0);
    let mut s: String =
        lines.iter().map(|l| if is_rule(l) { format!("{}\n", "─".repeat(width)) } else { format!("{l}\n") }).collect();
    if s.is_empty() {
        s.push('\n');
    }
    s
}

/// The name prefix of the temporary file a write to a path goes through (beside the path).
pub const PARTIAL_PREFIX: &str = ".redcap-output-";

/// Runs `write` against standard output (`None` or `-`) or a file written atomically: the
/// bytes go to a temporary file beside it that is renamed into place only when `write`
/// succeeded, so a failure never leaves a partial file.
pub fn to_destination<T>(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<T, CliError>,
) -> Result<T, CliError> {
    match path {
        None => write_stdout(write),
        Some(p) if p.as_os_str() == "-" => write_stdout(write),
        Some(p) => {
            check_file_path(p)?;
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            remove_stale_partials(&dir);
            let mut tmp = tempfile::Builder::new()
                .prefix(PARTIAL_PREFIX)
                .tempfile_in(&dir)
                .map_err(|e| CliError::write_failed(p, &e))?;
            let value = {
                let mut buf = std::io::BufWriter::new(tmp.as_file_mut());
                let value = write(&mut buf)?;
                buf.flush().map_err(|e| CliError::write_failed(p, &e))?;
                value
            };
            tmp.as_file().sync_all().map_err(|e| CliError::write_failed(p, &e))?;
            tmp.persist(p).map_err(|e| CliError::write_failed(p, &e.error))?;
            Ok(value)
        }
    }
}

/// Removes what writes into `dir` that were killed left behind (a Ctrl-C or a kill runs no
/// destructor, so the temporary file stays), once old enough not to be another run's: the
/// library's rule for interrupted downloads, [`redcap::workflow::STALE_PARTIAL`].
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX)
            && entry.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= redcap::workflow::STALE_PARTIAL)
            });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether `p` is written as a directory (`out/`): a trailing separator.
pub fn names_a_directory(p: &Path) -> bool {
    p.as_os_str().to_string_lossy().ends_with(std::path::is_separator)
}

/// Refuses an output path that is, or is written as, a directory: the rename into place would
/// fail with an error naming neither the path nor what to do.
pub fn check_file_path(p: &Path) -> Result<(), CliError> {
    if p.is_dir() {
        return Err(CliError::new(ExitKind::Local, format!("could not write {}: it is a directory", p.display()))
            .hint(format!("give a file path, e.g. {}", p.join("export.json").display())));
    }
    if names_a_directory(p) {
        return Err(missing_dir(p));
    }
    Ok(())
}

/// `p`, written as a directory, does not exist.
pub fn missing_dir(p: &Path) -> CliError {
    CliError::new(ExitKind::Local, format!("the directory {} does not exist", p.display()))
        .hint("create it first, or give a file path")
}

fn write_stdout<T>(write: impl FnOnce(&mut dyn Write) -> Result<T, CliError>) -> Result<T, CliError> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let value = write(&mut lock)?;
    lock.flush().map_err(|e| CliError::stdout(&e))?;
    Ok(value)
}

/// Writes `text` on stderr, ignoring a failure: when the reader of stderr went away
/// (`redcap … 2>&1 | head -1`) there is no one to tell, and `eprint!` would panic (exit 101)
/// instead of ending with the command's own exit code.
pub fn to_stderr(text: impl AsRef<str>) {
    let _ = std::io::stderr().lock().write_all(text.as_ref().as_bytes());
}

/// Prints one line on stdout (an error, not a panic, when stdout is closed).
pub fn line(text: impl AsRef<str>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.as_ref()).and_then(|()| out.flush()).map_err(|e| CliError::stdout(&e))
}

/// Prints one JSON value on one line on stdout (`--json` results).
pub fn json(value: &serde_json::Value) -> Result<(), CliError> {
    // Results may quote REDCap's messages, which a server or proxy can make echo the token.
    line(crate::error::redact(&value.to_string()))
}

/// Prints text as it is on stdout.
pub fn text(text: impl AsRef<str>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes()).and_then(|()| out.flush()).map_err(|e| CliError::stdout(&e))
}

/// Human byte counts: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitKind;

    fn rows() -> Vec<Row> {
        serde_json::from_str(r#"[{"id":"1","name":"Ada, L."},{"id":"2","age":7,"name":null}]"#).unwrap()
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        write_rows(&rows(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_has_every_column_and_quotes() {
        assert_eq!(render(Format::Csv), "id,name,age\n1,\"Ada, L.\",\n2,,7\n");
    }

    #[test]
    fn table_aligns_columns() {
        let t = render(Format::Table);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("id") && lines[0].contains("name") && lines[0].contains("age"), "{t}");
        let col = |l: &str| l.find("Ada").or_else(|| l.find("name"));
        assert_eq!(col(lines[0]), col(lines[2]), "{t}");
    }

    #[test]
    fn json_round_trips() {
        let back: Vec<Row> = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(back, rows());
    }

    #[test]
    fn atomic_file_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        to_destination(Some(&p), |w| w.write_all(b"hello").map_err(|e| CliError::stdout(&e))).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello");
        let failed: Result<(), CliError> = to_destination(Some(&p), |w| {
            w.write_all(b"partial").unwrap();
            Err(CliError::usage("stop"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello", "a failed write leaves the old file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        let e = to_destination(Some(&dir.path().join("missing/out.txt")), |_| Ok(())).unwrap_err();
        assert_eq!(e.kind, ExitKind::Local);
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
