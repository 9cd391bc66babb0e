//! A batch of flat records as text: the named columns of REDCap's flat export, every cell in
//! one buffer. A CSV answer is decoded into it as it streams ([`CsvRecords`]), with two
//! allocations per batch instead of a map, two strings and a hash per cell (which is what a
//! JSON row map costs, and most of a pull's CPU at 100,000 records).

use std::collections::HashMap;

use redcap_core::Row;

/// The byte after each cell in [`Records`]'s text that is not a CSV row's own delimiter.
const SEPARATOR: char = '\n';

/// Flat records: a header and rows of text cells, in REDCap's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    names: Vec<String>,
    index: HashMap<String, usize>,
    text: String,
    /// Per column, where each row's cell ends in `text`. One byte follows every cell (a
    /// delimiter of the CSV row, or [`SEPARATOR`]): a cell starts a byte after the one before
    /// it in its row ends, the first a byte after the row before ended. A plain CSV row is
    /// then copied in whole, delimiters and all. Column by column, not row
    /// by row: a cast reads a column down all the rows, and its cells' places are then side
    /// by side in memory instead of a row's width apart (a tenth of a pull's CPU went to
    /// fetching them from a batch that does not fit in the cache).
    ends: Vec<Vec<usize>>,
}

impl Records {
    /// No rows, with these columns (a name given twice is found at its first place).
    pub fn new(names: Vec<String>) -> Records {
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            index.entry(n.clone()).or_insert(i);
        }
        let ends = vec![Vec::new(); names.len()];
        Records { names, index, text: String::new(), ends }
    }

    /// Rows of JSON maps (a JSON export): the columns in the order they first appear, a cell
    /// a row lacks empty, numbers and booleans as REDCap writes them in CSV.
    pub fn from_rows(rows: &[Row]) -> Records {
        let mut names: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in rows {
            for key in row.keys() {
                if !index.contains_key(key) {
                    index.insert(key.clone(), names.len());
                    names.push(key.clone());
                }
            }
        }
        let ends = vec![Vec::new(); names.len()];
        let mut records = Records { names, index, text: String::new(), ends };
        let mut cells: Vec<String> = vec![String::new(); records.width()];
        for row in rows {
            cells.iter_mut().for_each(String::clear);
            for (key, value) in row {
                cells[records.index[key]] = crate::schema::text(value);
            }
            records.push(cells.iter().map(String::as_str));
        }
        records
    }

    /// Appends a row: exactly one cell per column (missing cells are empty, extra ones dropped).
    pub fn push<'c>(&mut self, cells: impl IntoIterator<Item = &'c str>) {
        let mut cells = cells.into_iter();
        for ends in &mut self.ends {
            if let Some(cell) = cells.next() {
                self.text.push_str(cell);
            }
            ends.push(self.text.len());
            self.text.push(SEPARATOR);
        }
    }

    /// Appends a row given as pieces of text that together are its cells with one byte
    /// between each two (a delimiter), and where each cell ends in them (exactly one per
    /// column): a copy of a few pieces, not one per cell.
    fn push_row<'t>(&mut self, pieces: impl Iterator<Item = &'t str>, ends: &[usize]) {
        debug_assert_eq!(ends.len(), self.names.len());
        let base = self.text.len();
        pieces.for_each(|p| self.text.push_str(p));
        self.text.push(SEPARATOR);
        for (column, &end) in self.ends.iter_mut().zip(ends) {
            column.push(base + end);
        }
    }

    /// The column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ends.first().map_or(0, Vec::len)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The place of column `name` (`None`: no such column).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The cells of `column` (all "" when it is absent), for reading many rows of one column.
    pub fn cells(&self, column: Option<usize>) -> Cells<'_> {
        match column {
            Some(0) => {
                Cells { text: &self.text, ends: &self.ends[0], before: &self.ends[self.ends.len() - 1], first: true }
            }
            Some(c) => Cells { text: &self.text, ends: &self.ends[c], before: &self.ends[c - 1], first: false },
            None => Cells { text: "", ends: &[], before: &[], first: false },
        }
    }

    /// Row `row`'s cell in `column` ("" when the column is absent).
    pub fn cell(&self, row: usize, column: Option<usize>) -> &str {
        let Some(c) = column else { return "" };
        let start = match (c, row) {
            (0, 0) => 0,
            (0, _) => self.ends[self.ends.len() - 1][row - 1] + 1,
            _ => self.ends[c - 1][row] + 1,
        };
        &self.text[start..self.ends[c][row]]
    }
}

/// One column of [`Records`] ([`Records::cells`]).
#[derive(Clone, Copy, Debug)]
pub struct Cells<'r> {
    text: &'r str,
    ends: &'r [usize],
    /// Where the cell before each one ends: the column before's, or (the first column) the
    /// last column's of the row before.
    before: &'r [usize],
    first: bool,
}

impl<'r> Cells<'r> {
    /// Row `row`'s cell ("" past the last row, or when the column is absent).
    #[inline]
    pub fn get(&self, row: usize) -> &'r str {
        let Some(&end) = self.ends.get(row) else { return "" };
        let start = match (self.first, row) {
            (true, 0) => 0,
            (true, _) => self.before[row - 1] + 1,
            (false, _) => self.before[row] + 1,
        };
        self.text.get(start..end).unwrap_or("")
    }
}

/// The delimiters REDCap offers (`csvDelimiter`: `,`, `tab`, `;`, `|`, `^`).
const DELIMITERS: &[u8] = b",\t;|^";

/// The bytes that end a bare cell under `delimiter`.
fn stops(delimiter: u8) -> [bool; 256] {
    let mut stops = [false; 256];
    for b in [delimiter, b'"', b'\r', b'\n'] {
        stops[usize::from(b)] = true;
    }
    stops
}

/// Why a CSV answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError(pub String);

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CsvError {}

/// A CSV answer (REDCap's `format=csv`, a header line first, in any of REDCap's delimiters:
/// the header tells which) decoded into [`Records`] as its bytes come: [`std::io::Write`] them
/// in, any cut, then [`CsvRecords::finish`].
#[derive(Debug)]
pub struct CsvRecords {
    reader: csv_core::Reader,
    records: Option<Records>,
    /// The record being read: its bytes and the ends of its fields.
    field_bytes: Vec<u8>,
    field_ends: Vec<usize>,
    /// Where a simple row's cells end and its quotes are ([`CsvRecords::quick_rows`]).
    ends: Vec<usize>,
    quotes: Vec<usize>,
    /// The bytes that end a bare cell: the delimiter, `"`, `\r`, `\n`.
    stops: [bool; 256],
    /// Bytes of the field being read so far.
    used: usize,
    fields: usize,
    started: bool,
    /// The first line, until it has come (it tells the delimiter).
    head: Vec<u8>,
    error: Option<CsvError>,
    /// The row being read (the header is 1), for errors.
    line: u64,
    /// The most bytes one row may take ([`CsvRecords::DEFAULT_MAX_ROW`]).
    max_row: usize,
    /// Whether csv-core is between rows (it holds no part of one), so that whole simple rows
    /// may be split without it.
    between: bool,
    /// The rows expected ([`CsvRecords::expect_rows`]).
    rows_hint: usize,
}

impl Default for CsvRecords {
    fn default() -> Self {
        CsvRecords {
            reader: csv_core::Reader::new(),
            records: None,
            field_bytes: vec![0; 4096],
            field_ends: vec![0; 64],
            ends: Vec::new(),
            quotes: Vec::new(),
            stops: stops(b','),
            used: 0,
            fields: 0,
            started: false,
            head: Vec::new(),
            error: None,
            line: 1,
            max_row: CsvRecords::DEFAULT_MAX_ROW,
            rows_hint: 0,
            between: true,
        }
    }
}

impl CsvRecords {
    /// The most bytes one row (the header too) may take by default: 64 MiB, far above any
    /// REDCap row (REDCapR#512's 40,000-field dictionary makes rows of a few MiB), so an
    /// endless row from a broken server is an error instead of all the memory there is.
    pub const DEFAULT_MAX_ROW: usize = 64 << 20;

    /// A decoder waiting for the header.
    pub fn new() -> CsvRecords {
        CsvRecords::default()
    }

    /// Sets the most bytes one row may take (a row of more is an error); also bounds its cells
    /// to an eighth of that.
    pub fn max_row(mut self, bytes: usize) -> CsvRecords {
        self.max_row = bytes.max(64);
        self
    }

    /// Makes room for `rows` rows once the header has come (a batch's records, say), instead
    /// of growing every column's places row after row. Only a hint: what it reserves is bounded.
    pub fn expect_rows(mut self, rows: usize) -> CsvRecords {
        self.rows_hint = rows;
        self
    }

    /// Why the body stopped being read, if it did (a write then fails with this as its text).
    pub fn failed(&self) -> Option<&CsvError> {
        self.error.as_ref()
    }

    /// Takes the rows decoded so far, leaving none (the header stays): a caller that needs a
    /// row only once, as it comes, keeps memory at one write's rows.
    pub fn take(&mut self) -> Option<Records> {
        let records = self.records.as_mut()?;
        let empty = Records::new(records.names.clone());
        Some(std::mem::replace(records, empty))
    }

    /// Ends the answer: the records (an empty answer has no columns and no rows), or why the
    /// body was not CSV.
    pub fn finish(mut self) -> Result<Records, CsvError> {
        self.feed(&[])?;
        Ok(self.records.unwrap_or_default())
    }

    /// Takes the next bytes of the body (an empty slice: the body ended).
    fn feed(&mut self, input: &[u8]) -> Result<(), CsvError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.started {
            return self.parse(input);
        }
        // Hold the first line: a byte-order mark is not part of the header, and the header
        // tells the delimiter (a server may answer with its users' delimiter, `;` in many
        // comma-decimal locales, whatever `csvDelimiter` asked for: REDCapR#538, #570, #622).
        self.head.extend_from_slice(input);
        let ended = input.is_empty();
        if !ended && !input.contains(&b'\n') {
            if self.head.len() > self.max_row {
                return Err(self.fail(format!("a header line of over {} bytes", self.max_row)));
            }
            return Ok(());
        }
        self.started = true;
        let head = std::mem::take(&mut self.head);
        let rest = head.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&head);
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        // Field names are letters, digits and `_`: the first other separator REDCap offers is it.
        // (A reader costs as much to build as a few thousand rows to read: only another
        // delimiter than the default comma gets a new one.)
        if let Some(&d) = line.iter().find(|b| DELIMITERS.contains(b)).filter(|&&d| d != b',') {
            self.reader = csv_core::ReaderBuilder::new().delimiter(d).build();
            self.stops = stops(d);
        }
        if !rest.is_empty() {
            self.parse(rest)?;
        }
        if ended { self.parse(&[]) } else { Ok(()) }
    }

    /// Parses bytes (an empty slice: the end of the body).
    fn parse(&mut self, mut input: &[u8]) -> Result<(), CsvError> {
        loop {
            if self.between {
                input = &input[self.quick_rows(input)..];
            }
            let (result, read, written, ends) =
                self.reader.read_record(input, &mut self.field_bytes[self.used..], &mut self.field_ends[self.fields..]);
            // (csv-core counts field ends from the start of the record, across calls.)
            input = &input[read..];
            self.used += written;
            self.fields += ends;
            self.between = matches!(result, csv_core::ReadRecordResult::Record) || self.between && read == 0;
            match result {
                csv_core::ReadRecordResult::InputEmpty => return Ok(()),
                // A hostile or broken server's endless row stops at the limit, not at memory.
                csv_core::ReadRecordResult::OutputFull => {
                    if self.field_bytes.len() >= self.max_row {
                        return Err(self.fail(format!("a row of over {} bytes", self.max_row)));
                    }
                    let n = (self.field_bytes.len() * 2).min(self.max_row);
                    self.field_bytes.resize(n, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.field_ends.len() >= self.max_row / 8 {
                        return Err(self.fail(format!("a row of over {} cells", self.max_row / 8)));
                    }
                    let n = (self.field_ends.len() * 2).min(self.max_row / 8);
                    self.field_ends.resize(n, 0);
                }
                csv_core::ReadRecordResult::Record => self.record()?,
                csv_core::ReadRecordResult::End => return Ok(()),
            }
        }
    }

    /// Takes the whole rows at the start of `input` that [`simple_row`] splits, up to the first
    /// it does not: the bytes taken. Nearly every row of an export is simple, and splitting it
    /// with a plain loop costs a fraction of csv-core's general machine (which, with the copy
    /// of each cell it makes, was a quarter of a pull's CPU); csv-core reads all the others,
    /// and says what is wrong with a bad one.
    fn quick_rows(&mut self, input: &[u8]) -> usize {
        let Some(records) = self.records.as_mut() else { return 0 };
        let mut taken = 0;
        while let Some(feed) = simple_row(&input[taken..], &self.stops, &mut self.ends, &mut self.quotes) {
            let whole = &input[taken..taken + feed];
            let row = whole.strip_suffix(b"\r").unwrap_or(whole);
            // (A blank line is nothing, and no row, as for csv-core.)
            if !row.is_empty() {
                if self.ends.len() != records.width() || row.len() > self.max_row {
                    break;
                }
                let Ok(text) = std::str::from_utf8(row) else { break };
                // The row less its cells' quotes (ASCII: every piece is still UTF-8).
                let mut start = 0;
                let pieces = self.quotes.iter().copied().chain([text.len()]).map(|q| {
                    let piece = &text[start..q];
                    start = q + 1;
                    piece
                });
                records.push_row(pieces, &self.ends);
                self.line += 1;
            }
            taken += feed + 1;
        }
        taken
    }

    fn fail(&mut self, what: String) -> CsvError {
        let e = CsvError(format!("row {} of the CSV answer (the header is row 1): {what}", self.line));
        self.error = Some(e.clone());
        e
    }

    /// One complete record is in `field_bytes`/`field_ends`.
    fn record(&mut self) -> Result<(), CsvError> {
        let bytes = &self.field_bytes[..self.used];
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return Err(self.fail(format!("not UTF-8 ({e})"))),
        };
        let ends = &self.field_ends[..self.fields];
        let mut error = None;
        match &mut self.records {
            None => {
                let cells = ends.iter().scan(0, |start, &end| {
                    let cell = text.get(*start..end).unwrap_or_default();
                    *start = end;
                    Some(cell)
                });
                let names: Vec<String> = cells.map(str::to_owned).collect();
                // A blank line before the header is nothing.
                if !(names.len() == 1 && names[0].is_empty()) {
                    let mut records = Records::new(names);
                    // (At most 64 MiB of cell ends reserved, however wide the header.)
                    let rows = self.rows_hint.min((8 << 20) / records.width().max(1));
                    records.ends.iter_mut().for_each(|e| e.reserve_exact(rows));
                    self.records = Some(records);
                }
            }
            Some(records) => {
                if self.fields == 1 && ends[0] == 0 {
                    // A blank line (csv-core reports one as a record of one empty field).
                } else if self.fields != records.width() {
                    error = Some(format!("{} cells under a header of {}", self.fields, records.width()));
                } else if ends.iter().all(|&e| text.is_char_boundary(e)) {
                    let cells = ends.iter().scan(0, |start, &end| {
                        let cell = &text[*start..end];
                        *start = end;
                        Some(cell)
                    });
                    records.push(cells);
                } else {
                    // (csv-core splits on ASCII bytes only: a cell always ends on a boundary.)
                    error = Some("a cell that ends inside a character".to_owned());
                }
            }
        }
        self.used = 0;
        self.fields = 0;
        if let Some(e) = error {
            return Err(self.fail(e));
        }
        self.line += 1;
        Ok(())
    }
}

/// Splits the row at the start of `rest` if csv-core would read it so and it is whole: each
/// cell bare (no quote or carriage return in it) or quoted (no quote in it but the two around
/// it), a delimiter or the line's end (`\n` or `\r\n`) after each. Returns where its line feed
/// is, with where each cell ends in the row less its quotes in `ends`, and where the quotes
/// are in `quotes`; `None` for any other row, or a row not wholly in `rest`. `stops` marks the
/// delimiter, `"`, `\r` and `\n`.
fn simple_row(rest: &[u8], stops: &[bool; 256], ends: &mut Vec<usize>, quotes: &mut Vec<usize>) -> Option<usize> {
    ends.clear();
    quotes.clear();
    let mut i = 0;
    loop {
        let mut b = *rest.get(i)?;
        if b == b'"' {
            let close = i + 1 + memchr::memchr(b'"', &rest[i + 1..])?;
            quotes.extend([i, close]);
            ends.push(close + 1 - quotes.len());
            i = close + 1;
            b = *rest.get(i)?;
        } else {
            while !stops[usize::from(b)] {
                i += 1;
                b = *rest.get(i)?;
            }
            if b == b'"' {
                return None;
            }
            ends.push(i - quotes.len());
        }
        match b {
            b'\n' => return Some(i),
            b'\r' => return (rest.get(i + 1)? == &b'\n').then_some(i + 1),
            // An escaped quote or text after the closing quote.
            b'"' => return None,
            _ if stops[usize::from(b)] && b != b'"' => i += 1,
            _ => return None,
        }
    }
}

impl std::io::Write for CsvRecords {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.feed(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn decode(body: &[u8], piece: usize) -> Result<Records, CsvError> {
        let mut d = CsvRecords::new();
        for chunk in body.chunks(piece.max(1)) {
            if let Err(e) = d.write_all(chunk) {
                return Err(CsvError(e.to_string()));
            }
        }
        d.finish()
    }

    #[test]
    fn a_csv_answer_decodes_the_same_however_it_is_cut() {
        let body = "\u{FEFF}record_id,notes,n\r\n1,\"two\r\nlines, \"\"quoted\"\"\",3\r\n02,,\r\n12-3,é,\n".as_bytes();
        for piece in [1, 2, 3, 5, 8, body.len()] {
            let r = decode(body, piece).unwrap();
            assert_eq!(r.names(), ["record_id", "notes", "n"], "pieces of {piece}");
            assert_eq!(r.len(), 3);
            let notes = r.column("notes");
            assert_eq!(r.cell(0, notes), "two\r\nlines, \"quoted\"");
            assert_eq!(r.cell(0, r.column("n")), "3");
            assert_eq!(r.cell(1, r.column("record_id")), "02");
            assert_eq!(r.cell(1, notes), "");
            assert_eq!(r.cell(2, r.column("record_id")), "12-3");
            assert_eq!(r.cell(2, notes), "é");
            assert_eq!(r.cell(2, None), "");
        }
    }

    /// The cells of every row, or the error.
    fn cells(body: &[u8], piece: usize) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
        let r = decode(body, piece).map_err(|e| e.0)?;
        let rows = (0..r.len()).map(|i| (0..r.width()).map(|c| r.cell(i, Some(c)).to_owned()).collect()).collect();
        Ok((r.names().to_vec(), rows))
    }

    #[test]
    fn plain_rows_split_without_csv_core_read_as_csv_core_reads_them() {
        // Fed a byte at a time, no row is ever whole in one write: csv-core reads every one.
        // Fed whole, the plain rows are split by `plain_rows`; the others go to csv-core.
        let bodies: &[&[u8]] = &[
            b"id,a,b\r\n1,2,3\r\n\r\n4,\"x\ry, \"\"z\"\"\",5\r\n6,,\n\n\n9,,\n",
            b"id,a\n1,2\r3,4\n5,6\n",
            b"id,a,b\n1,2\r3,4\n",
            b"id,a,b\n\"1 2\",,\"\"\n\"x\",\"y z\",3\r\n4,\"5\n6\",7\n\"a\"b,1,2\n\"a\" ,1,2\n\"a\"\"b\",1,\"\"\n",
            b"id,a,b\n1,\"2\",\"3\"\r4,5,6\n\"7\",8,9",
            b"id,a\n1,x\"y\n2,\"\"\n3,4",
            b"id;a\n1;2,5\n\"3\";4\r\n5;6\n",
            b"id,a\n\"1\",2\r\n3,4\r\n5\n6,7\n",
            b"id,a\n1,2\n3,4,5\n",
            b"id,a\n1,2\n\xff,3\n",
            b"id,a\n1,\xc3\xa9\n \n",
            b"\xEF\xBB\xBFid\tnotes\r\n01\t\r\n12-3\tx y\r\n",
        ];
        for body in bodies {
            let (slow, fast) = (cells(body, 1), cells(body, body.len()));
            assert_eq!(slow, fast, "{}", String::from_utf8_lossy(body));
        }
        let (_, rows) = cells(bodies[0], bodies[0].len()).unwrap();
        assert_eq!(rows[1], ["4", "x\ry, \"z\"", "5"]);
        assert_eq!(rows.len(), 4);
        assert!(cells(bodies[7], 9).unwrap_err().contains("row 4 "), "{:?}", cells(bodies[7], 9));
    }

    #[test]
    fn any_body_reads_the_same_by_the_quick_path_as_by_csv_core() {
        // Bodies of CSV's special bytes and a few others, under a header, fed a byte at a time
        // (csv-core alone), in sevens, and whole.
        const BYTES: &[&[u8]] =
            &[b"1", b"x y", b",", b",", b"\"", b"\"", b"\r", b"\n", b"\n", b"\r\n", "é".as_bytes(), b"\xff", b";"];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..4_000 {
            let mut body = b"id,a,b\n".to_vec();
            for _ in 0..next() % 40 {
                body.extend_from_slice(BYTES[(next() % BYTES.len() as u64) as usize]);
            }
            let slow = cells(&body, 1);
            for piece in [7, body.len()] {
                assert_eq!(slow, cells(&body, piece), "{:?} in pieces of {piece}", String::from_utf8_lossy(&body));
            }
        }
    }

    #[test]
    fn simple_rows_are_split_and_the_others_left_to_csv_core() {
        let split = |row: &[u8]| {
            let (mut ends, mut quotes) = (Vec::new(), Vec::new());
            simple_row(row, &stops(b','), &mut ends, &mut quotes).map(|feed| {
                let bare: Vec<u8> =
                    row[..feed].iter().enumerate().filter(|(i, _)| !quotes.contains(i)).map(|(_, &b)| b).collect();
                let starts = std::iter::once(0).chain(ends.iter().map(|e| e + 1));
                let cells: Vec<String> =
                    starts.zip(&ends).map(|(s, &e)| String::from_utf8_lossy(&bare[s..e]).into_owned()).collect();
                (feed, !quotes.is_empty(), cells)
            })
        };
        assert_eq!(split(b"1,,x y\n2"), Some((6, false, vec!["1".into(), "".into(), "x y".into()])));
        assert_eq!(split(b"1,\"a, b\",\"\"\r\n"), Some((12, true, vec!["1".into(), "a, b".into(), "".into()])));
        assert_eq!(split(b"\"two\nlines\",3\n"), Some((13, true, vec!["two\nlines".into(), "3".into()])));
        assert_eq!(split(b"\r\n"), Some((1, false, vec!["".into()])));
        for other in [&b"1,2"[..], b"1,\"2\n", b"1,\"2\"", b"1,\"a\"\"b\"\n", b"\"a\"b\n", b"a\"b\n", b"\"a\"\r1\n"] {
            assert_eq!(split(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_header_tells_the_delimiter() {
        for d in [";", "\t", "|", "^"] {
            let body = format!("record_id{d}dec{d}notes\n1{d}1,5{d}\"a{d} b\"\n");
            let r = decode(body.as_bytes(), 2).unwrap();
            assert_eq!(r.names(), ["record_id", "dec", "notes"], "{d:?}");
            assert_eq!(r.cell(0, r.column("dec")), "1,5", "{d:?}");
            assert_eq!(r.cell(0, r.column("notes")), format!("a{d} b"), "{d:?}");
        }
        // One column: nothing to tell, and nothing needed.
        assert_eq!(decode(b"record_id\n1\n", 1).unwrap().len(), 1);
    }

    #[test]
    fn an_endless_row_or_header_is_an_error_at_the_limit() {
        let feed = |d: &mut CsvRecords, bytes: &[u8]| d.write_all(bytes).map_err(|e| e.to_string());
        let mut d = CsvRecords::new().max_row(1024);
        feed(&mut d, b"id,notes\n1,\"").unwrap();
        let mut failed = None;
        for _ in 0..100 {
            if let Err(e) = feed(&mut d, &[b'x'; 100]) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the row stops at the limit");
        assert!(e.contains("row 2 ") && e.contains("over 1024 bytes"), "{e}");
        let mut h = CsvRecords::new().max_row(1024);
        let e = (0..100).find_map(|_| feed(&mut h, &[b'a'; 100]).err()).expect("the header stops at the limit");
        assert!(e.contains("header line"), "{e}");
        // A wide row under the limit is fine.
        let wide = format!("{}\n{}\n", vec!["c"; 200].join(","), vec!["1"; 200].join(","));
        assert_eq!(decode(wide.as_bytes(), 7).unwrap().width(), 200);
    }

    #[test]
    fn a_row_count_hint_reserves_a_bounded_room_however_large() {
        use std::io::Write as _;
        let mut csv = CsvRecords::new().expect_rows(usize::MAX);
        csv.write_all(b"record_id,age\n1,30\n2,\n").unwrap();
        let records = csv.finish().unwrap();
        assert_eq!((records.len(), records.cell(1, Some(0)), records.cell(0, Some(1))), (2, "2", "30"));
        assert!(records.ends.iter().all(|e| e.capacity() <= 4 << 20));
    }

    #[test]
    fn empty_and_header_only_answers_have_no_rows() {
        assert_eq!(decode(b"", 4).unwrap().len(), 0);
        let r = decode(b"record_id,age\n", 4).unwrap();
        assert_eq!((r.len(), r.width()), (0, 2));
        assert_eq!(decode(b"\n\nid\n1\n\n", 1).unwrap().len(), 1);
    }

    #[test]
    fn a_ragged_or_foreign_body_is_an_error() {
        let e = decode(b"id,a\n1,2\n3\n", 3).unwrap_err();
        assert!(e.0.contains("row 3 ") && e.0.contains("1 cells under a header of 2"), "{e}");
        assert!(decode(b"id\n\xff\xfe\n", 2).is_err());
    }

    #[test]
    fn a_column_reads_as_its_cells_do() {
        let r = decode(b"id,a,\"b\"\n1,x,\"y, z\"\n2,,\n\"3\",\"\",q\n", 4).unwrap();
        for c in 0..r.width() {
            let column = r.cells(Some(c));
            for i in 0..r.len() {
                assert_eq!(column.get(i), r.cell(i, Some(c)), "row {i}, column {c}");
            }
            assert_eq!(column.get(r.len()), "", "past the last row");
        }
        assert_eq!((r.cells(Some(0)).get(2), r.cells(Some(2)).get(0)), ("3", "y, z"));
        assert_eq!(r.cells(None).get(0), "");
    }

    #[test]
    fn rows_of_maps_line_up_by_name() {
        let rows: Vec<Row> = serde_json::from_str(r#"[{"id":"1","a":"x"},{"id":"2","b":3,"a":""}]"#).unwrap();
        let r = Records::from_rows(&rows);
        assert_eq!(r.names(), ["id", "a", "b"]);
        assert_eq!((r.cell(0, r.column("b")), r.cell(1, r.column("b"))), ("", "3"));
        assert_eq!((r.cell(0, r.column("a")), r.cell(1, r.column("id"))), ("x", "2"));
        let mut short = Records::new(vec!["id".into(), "a".into()]);
        short.push(["7"]);
        assert_eq!((short.len(), short.cell(0, short.column("a"))), (1, ""), "a missing cell is empty");
    }
}
