//! A JSON array of rows decoded while it streams: an [`std::io::Write`] sink that cuts the body
//! into its elements and decodes each on its own, so a body of any size costs one row's memory.

use std::io;
use std::marker::PhantomData;

use super::WorkflowError;
use super::export_row::ExportRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Between elements.
    Between,
    /// Inside an element, `depth` brackets deep.
    Element,
    /// After the closing `]`.
    Done,
}

/// Receives one batch's body and hands each row to `each`, decoded as an `R` (a
/// [`redcap_core::Row`] map or a [`super::RawRow`]).
pub struct RowStream<'a, R, F: FnMut(R) -> Result<(), WorkflowError> + ?Sized> {
    state: State,
    depth: u32,
    in_string: bool,
    escaped: bool,
    current: Vec<u8>,
    id_field: &'a str,
    each: &'a mut F,
    /// Rows decoded.
    pub rows: u64,
    /// The error that stopped the stream (the sink only reports an I/O error upward).
    pub error: Option<WorkflowError>,
    /// The most bytes one row may take ([`MAX_ROW_BYTES`]).
    max_row: usize,
    row: PhantomData<fn() -> R>,
}

/// The most bytes one row of a JSON answer may take: far above any REDCap row (a few MiB for
/// REDCapR#512's 40,000 fields), so an endless row from a broken server is an error instead of
/// all the memory there is.
pub(crate) const MAX_ROW_BYTES: usize = 64 << 20;

impl<R, F: FnMut(R) -> Result<(), WorkflowError> + ?Sized> std::fmt::Debug for RowStream<'_, R, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream").field("state", &self.state).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl<'a, R: ExportRow, F: FnMut(R) -> Result<(), WorkflowError> + ?Sized> RowStream<'a, R, F> {
    /// A sink for one body whose rows carry their record id in `id_field` (read by a
    /// [`super::RawRow`]; a map has every column anyway).
    pub fn new(id_field: &'a str, each: &'a mut F) -> Self {
        RowStream {
            state: State::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            current: Vec::new(),
            id_field,
            each,
            rows: 0,
            error: None,
            max_row: MAX_ROW_BYTES,
            row: PhantomData,
        }
    }

    /// Sets the most bytes one row may take (tests).
    #[cfg(test)]
    fn max_row(mut self, bytes: usize) -> Self {
        self.max_row = bytes;
        self
    }

    /// Checks that the body ended where the array did.
    pub fn finish(&self) -> Result<(), WorkflowError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(decode_error("the JSON array of rows ended early", &self.current))
        }
    }

    fn fail(&mut self, e: WorkflowError) -> io::Error {
        let msg = e.to_string();
        self.error = Some(e);
        io::Error::other(msg)
    }

    fn element_done(&mut self) -> Result<(), WorkflowError> {
        let row = R::from_json(&self.current, self.id_field)
            .map_err(|e| decode_error(&format!("a row did not decode: {e}"), &self.current))?;
        self.current.clear();
        self.rows += 1;
        (self.each)(row)
    }
}

fn decode_error(what: &str, near: &[u8]) -> WorkflowError {
    let excerpt: String = String::from_utf8_lossy(&near[..near.len().min(120)]).into_owned();
    WorkflowError::Decode(redcap_core::DecodeError::Unexpected {
        expected: "a JSON array of rows",
        excerpt: format!("{what}: {excerpt}"),
    })
}

impl<R: ExportRow, F: FnMut(R) -> Result<(), WorkflowError> + ?Sized> io::Write for RowStream<'_, R, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::Start => match buf[i] {
                    b'[' => self.state = State::Between,
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    // A byte-order mark is not JSON, but some servers send one.
                    0xEF | 0xBB | 0xBF => {}
                    _ => return Err(self.fail(decode_error("the body is not a JSON array", &buf[i..]))),
                },
                State::Between => match buf[i] {
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                    b']' => self.state = State::Done,
                    b'{' => {
                        if let Some((row, len)) = R::from_json_prefix(&buf[i..], self.id_field) {
                            // A whole row in this write, read where it is.
                            self.rows += 1;
                            if let Err(e) = (self.each)(row) {
                                return Err(self.fail(e));
                            }
                            i += len;
                            continue;
                        }
                        self.state = State::Element;
                        self.depth = 1;
                        self.current.push(b'{');
                    }
                    _ => return Err(self.fail(decode_error("a row is not a JSON object", &buf[i..]))),
                },
                State::Element => {
                    // Copy up to the next byte that can change the structure.
                    let start = i;
                    while i < buf.len() {
                        if self.in_string {
                            if self.escaped {
                                self.escaped = false;
                                i += 1;
                                continue;
                            }
                            // A string's text is most of a row: jump to its next quote or
                            // backslash instead of looking at every byte.
                            match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                                None => i = buf.len(),
                                Some(at) => {
                                    i += at;
                                    if buf[i] == b'"' {
                                        self.in_string = false;
                                    } else {
                                        self.escaped = true;
                                    }
                                    i += 1;
                                }
                            }
                            continue;
                        }
                        match buf[i] {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    if i == buf.len() {
                        self.current.extend_from_slice(&buf[start..]);
                        if self.current.len() > self.max_row {
                            let what = format!("a row of over {} bytes", self.max_row);
                            return Err(self.fail(decode_error(&what, &self.current)));
                        }
                        return Ok(buf.len());
                    }
                    self.current.extend_from_slice(&buf[start..=i]);
                    self.state = State::Between;
                    if let Err(e) = self.element_done() {
                        return Err(self.fail(e));
                    }
                }
                State::Done => match buf[i] {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    _ => return Err(self.fail(decode_error("bytes after the JSON array", &buf[i..]))),
                },
            }
            i += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sink as a Tokio writer: decoding is CPU work without waiting, so every write is ready.
#[cfg(feature = "async")]
impl<R: ExportRow, F: FnMut(R) -> Result<(), WorkflowError> + ?Sized> tokio::io::AsyncWrite for RowStream<'_, R, F> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(io::Write::write(self.get_mut(), buf))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use redcap_core::Row;

    use super::*;
    use crate::workflow::RawRow;

    fn split<R: ExportRow>(body: &[u8], piece: usize) -> Result<Vec<R>, WorkflowError> {
        let mut rows = Vec::new();
        let mut each = |r: R| {
            rows.push(r);
            Ok(())
        };
        let mut s = RowStream::new("id", &mut each);
        for chunk in body.chunks(piece) {
            if s.write_all(chunk).is_err() {
                return Err(s.error.take().expect("error kept"));
            }
        }
        s.finish()?;
        drop(s);
        Ok(rows)
    }

    #[test]
    fn rows_come_out_whole_however_the_body_is_cut() {
        let body = br#" [{"id":"1","t":"a \"quoted\" } ] { , text"},{"id":"2","n":[1,{"x":2}]} , {"id":"3"}] "#;
        let whole: Vec<Row> = serde_json::from_slice(body).unwrap();
        for piece in 1..=body.len() {
            assert_eq!(split::<Row>(body, piece).unwrap(), whole, "pieces of {piece} bytes");
        }
        // A backslash that ends a string, escapes beside quotes and braces, a string of text only.
        let body = br#"[{"id":"1","p":"c:\\dir\\","q":"\\\"}{\"","u":"\u00e9]"},{"id":"2","t":"long text without escapes, quotes or braces"}]"#;
        let whole: Vec<Row> = serde_json::from_slice(body).unwrap();
        assert_eq!(whole.len(), 2);
        for piece in 1..=body.len() {
            assert_eq!(split::<Row>(body, piece).unwrap(), whole, "pieces of {piece} bytes");
        }
        assert!(split::<Row>(b"[]", 1).unwrap().is_empty());
    }

    #[test]
    fn a_cut_or_foreign_body_is_an_error() {
        assert!(split::<Row>(br#"[{"id":"1"},{"id":"2""#, 4).is_err());
        assert!(split::<Row>(br#"[{"id":"1"}"#, 4).is_err());
        assert!(split::<Row>(br#"{"error":"x"}"#, 4).is_err());
        assert!(split::<Row>(br#"[{"id":"1"}] x"#, 4).is_err());
        assert!(split::<Row>(br#"[1,2]"#, 4).is_err());
    }

    #[test]
    fn an_endless_row_is_an_error_at_the_limit() {
        let mut each = |_r: Row| Ok(());
        let mut s = RowStream::new("id", &mut each).max_row(1000);
        s.write_all(br#"[{"id":"1"},{"id":"2","notes":""#).unwrap();
        let failed = (0..100).any(|_| s.write_all(&[b'x'; 100]).is_err());
        assert!(failed, "the row stops at the limit");
        assert!(s.error.take().unwrap().to_string().contains("a row of over 1000 bytes"));
    }

    fn split_raw(body: &[u8], piece: usize) -> Result<Vec<(String, Option<String>, usize)>, WorkflowError> {
        let rows: Vec<RawRow> = split(body, piece)?;
        Ok(rows.iter().map(|r| (r.json().to_owned(), r.id("id"), r.width())).collect())
    }

    #[test]
    fn raw_rows_read_in_place_are_the_rows_cut_out_first() {
        // A row whole in one write is read where it is; one cut by the writes is cut out first.
        // Flat rows (the fast path), and rows with an escape, a number, a nested value (not).
        let body = br#"[{"id":"1","a":"x, \"y\" }"},{"id":"2","b":""} ,{"id":3,"c":"z"},{"i\u0064":"4"},{"id":"5","n":{"k":["}"]}},{"id":"6","e":"\u00e9"}]"#;
        let cut_out = split_raw(body, 1).unwrap();
        assert_eq!(cut_out.len(), 6);
        assert_eq!(cut_out[0], (r#"{"id":"1","a":"x, \"y\" }"}"#.to_owned(), Some("1".to_owned()), 2));
        assert_eq!(cut_out[3].1.as_deref(), Some("4"));
        for piece in 2..=body.len() {
            assert_eq!(split_raw(body, piece).unwrap(), cut_out, "pieces of {piece} bytes");
        }
        for bad in [&br#"[{"id":"1"},{"id":"2""#[..], br#"[{"id":"1"}"#, br#"[{"id":"1"}] x"#, br#"[{"id":"1"}x]"#] {
            for piece in [1, 4, bad.len()] {
                assert!(split_raw(bad, piece).is_err(), "{} in pieces of {piece}", String::from_utf8_lossy(bad));
            }
        }
        assert!(split_raw(b"[{\"id\":\"\xff\"}]", 64).is_err(), "not UTF-8");
    }

    #[test]
    fn raw_rows_come_out_as_the_server_sent_them() {
        let body = br#"[{"id":"7","t":"a, \"b\" }"} , {"id":8}]"#;
        let mut rows: Vec<RawRow> = Vec::new();
        let mut each = |r: RawRow| {
            rows.push(r);
            Ok(())
        };
        let mut s = RowStream::new("id", &mut each);
        for chunk in body.chunks(3) {
            s.write_all(chunk).unwrap();
        }
        s.finish().unwrap();
        assert_eq!(s.rows, 2);
        drop(s);
        let got: Vec<(&str, Option<String>)> = rows.iter().map(|r| (r.json(), r.id("id"))).collect();
        assert_eq!(got, [(r#"{"id":"7","t":"a, \"b\" }"}"#, Some("7".into())), (r#"{"id":8}"#, Some("8".into()))]);
    }
}
