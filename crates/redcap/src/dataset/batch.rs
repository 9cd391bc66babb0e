//! One batch of a pull, exported as CSV and read straight into [`Records`]: REDCap's CSV answer
//! is a quarter of its JSON one (the JSON repeats every column name in every row) and is read
//! with no map, key or string per cell, which was most of a pull's CPU. A batch whose CSV
//! answer fails in a way a smaller one may survive, or comes back without some of its records
//! or columns, goes whole to the self-healing JSON export ([`crate::workflow::heal`]), already
//! halved: nothing of a failed answer is kept, so nothing is half-kept.

use std::collections::HashSet;

use crate::dataset::{CsvRecords, Records};
use crate::workflow::heal::{Scope, survivable};
use crate::workflow::{Progress, ProgressEvent, WorkflowError};
use crate::{Format, record};

/// The decoder of the CSV answer to `r`, with room for a row per record it asks for.
pub(crate) fn csv_sink(r: &record::export::Request) -> CsvRecords {
    CsvRecords::new().expect_rows(r.records.len())
}

/// The CSV form of a batch's (JSON) export request, comma-delimited (asked for explicitly; the
/// decoder still reads the delimiter off the header). Taken and given back, not copied: a
/// batch's request holds its thousand ids.
pub(crate) fn as_csv(mut r: record::export::Request) -> record::export::Request {
    r.format = Some(Format::Csv);
    r.csv_delimiter = Some(redcap_core::CsvDelimiter::Comma);
    r
}

/// The JSON form again of a request made [`as_csv`] (for the healed export).
pub(crate) fn as_json(mut r: record::export::Request) -> record::export::Request {
    r.format = Some(Format::Json);
    r.csv_delimiter = None;
    r
}

/// What a batch's CSV answer came to.
#[derive(Debug)]
pub(crate) enum Judged {
    /// Every record asked for, with every column: the batch is done.
    Kept(Records),
    /// Export the batch again through the healed JSON export, in batches of this many.
    Heal(usize),
}

/// Judges the CSV answer of the batch `ids`: `sent`, how the call ended; `sink`, what its
/// body decoded to. A failure no smaller batch fixes is returned as it is.
pub(crate) fn judge<S, E>(
    sent: Result<S, E>,
    sink: CsvRecords,
    ids: &[String],
    scope: &Scope,
    id_field: &str,
    progress: &dyn Progress,
) -> Result<Judged, WorkflowError>
where
    WorkflowError: From<E>,
{
    let decode = |e: crate::dataset::CsvError| {
        WorkflowError::Decode(redcap_core::DecodeError::Unexpected { expected: "a CSV answer", excerpt: e.0 })
    };
    // The decoder's own failure is why the transfer stopped, when it did.
    let answer = match (sink.failed().cloned(), sent) {
        (Some(e), _) => Err(decode(e)),
        (None, Err(e)) => Err(WorkflowError::from(e)),
        (None, Ok(_)) => sink.finish().map_err(decode),
    };
    let reason = match answer {
        Err(e) if survivable(&e) => e.to_string(),
        Err(e) => return Err(e),
        Ok(records) => match short(&records, ids, scope, id_field) {
            None => return Ok(Judged::Kept(records)),
            Some(reason) => reason,
        },
    };
    let parts = if ids.len() > 1 { 2 } else { 1 };
    progress.event(ProgressEvent::Split { item: label(ids), reason, parts });
    Ok(Judged::Heal(ids.len().div_ceil(2).max(1)))
}

/// What a complete-looking answer lacks: columns of the scope, or records asked for.
fn short(records: &Records, ids: &[String], scope: &Scope, id_field: &str) -> Option<String> {
    if !records.is_empty() {
        let missing = scope.missing_names(records.names());
        if !missing.is_empty() {
            let s = if missing.len() == 1 { "" } else { "s" };
            return Some(format!("column{s} missing: {}", missing.join(", ")));
        }
    }
    let column = records.column(id_field);
    // A record's rows come together: one id per run of rows.
    let mut came: Vec<&str> = Vec::with_capacity(ids.len());
    for r in 0..records.len() {
        let id = records.cell(r, column);
        if came.last() != Some(&id) {
            came.push(id);
        }
    }
    // Most answers list the records in the order they were asked for (the plan has the
    // server's own order): then nothing needs hashing.
    if came.len() == ids.len() && came.iter().zip(ids).all(|(c, id)| *c == id) {
        return None;
    }
    let came: HashSet<&str> = came.into_iter().collect();
    let left = ids.iter().filter(|id| !came.contains(id.as_str())).count();
    (left > 0).then(|| format!("no rows for {left} of the records asked for"))
}

fn label(ids: &[String]) -> String {
    match ids {
        [] => "no records".to_owned(),
        [one] => format!("record {one}"),
        [first, .., last] => format!("{} records ({first}…{last})", ids.len()),
    }
}

/// The id list of a pull (a CSV id-only export) as it streams: the record ids in the server's
/// order, one per run of a record's rows (the list has a row per event and instance; only the
/// ids are kept; [`crate::dataset::DatasetPull::plan`] keeps the first of a repeated id).
#[derive(Debug)]
pub(crate) struct IdSink<'a> {
    csv: CsvRecords,
    id_field: &'a str,
    ids: Vec<String>,
}

impl<'a> IdSink<'a> {
    pub fn new(id_field: &'a str) -> Self {
        IdSink { csv: CsvRecords::new(), id_field, ids: Vec::new() }
    }

    fn keep(&mut self, records: Records) -> Result<(), WorkflowError> {
        let Some(column) = records.column(self.id_field) else {
            return Err(WorkflowError::Decode(redcap_core::DecodeError::Unexpected {
                expected: "an id list",
                excerpt: format!("no {} column among {}", self.id_field, records.names().join(",")),
            }));
        };
        for r in 0..records.len() {
            let id = records.cell(r, Some(column));
            // A record's rows come together: one id per run of rows (the plan drops an id
            // that comes back later, without a second copy of every id here).
            if !id.is_empty() && self.ids.last().is_none_or(|last| last != id) {
                self.ids.push(id.to_owned());
            }
        }
        Ok(())
    }

    /// The ids, once the call ended as `sent` (the decoder's own failure wins).
    pub fn finish<S, E>(mut self, sent: Result<S, E>) -> Result<Vec<String>, WorkflowError>
    where
        WorkflowError: From<E>,
    {
        let decode = |e: crate::dataset::CsvError| {
            WorkflowError::Decode(redcap_core::DecodeError::Unexpected { expected: "a CSV id list", excerpt: e.0 })
        };
        if let Some(e) = self.csv.failed() {
            return Err(decode(e.clone()));
        }
        sent?;
        let rest = std::mem::take(&mut self.csv).finish().map_err(decode)?;
        // An empty answer (no records) has no header to check.
        if rest.width() > 0 {
            self.keep(rest)?;
        }
        Ok(self.ids)
    }
}

impl std::io::Write for IdSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.csv.write(buf)?;
        if let Some(rows) = self.csv.take().filter(|r| !r.is_empty()) {
            self.keep(rows).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A decoder as a Tokio writer: decoding is CPU work without waiting, so every write is ready.
#[cfg(feature = "async")]
pub(crate) struct AsyncSink<'a, W>(pub &'a mut W);

#[cfg(feature = "async")]
impl<W: std::io::Write + Unpin> tokio::io::AsyncWrite for AsyncSink<'_, W> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut *self.get_mut().0, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::workflow::NoProgress;

    const OK: Result<(), WorkflowError> = Ok(());

    fn scope() -> Scope {
        let metadata: Vec<crate::rows::Field> = serde_json::from_value(serde_json::json!([
            {"field_name": "id", "form_name": "demo", "field_type": "text", "field_label": "ID"},
            {"field_name": "age", "form_name": "demo", "field_type": "text", "field_label": "Age"},
        ]))
        .unwrap();
        Scope::new(&record::export::Request::new(), "id", &metadata)
    }

    fn judged(sent: Result<(), WorkflowError>, body: &str, ids: &[&str]) -> Result<Judged, WorkflowError> {
        let mut sink = CsvRecords::new();
        let _ = sink.write_all(body.as_bytes());
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        judge(sent, sink, &ids, &scope(), "id", &NoProgress)
    }

    #[test]
    fn a_complete_answer_is_kept() {
        let Ok(Judged::Kept(r)) = judged(Ok(()), "id,age,demo_complete\n1,3,0\n2,,2\n", &["1", "2"]) else {
            panic!("kept")
        };
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn short_or_failed_answers_are_healed_in_halves() {
        // A record missing, a column missing, an empty 200, a body that is not CSV, a 5xx.
        let cases: [(Result<(), WorkflowError>, &str); 4] = [
            (Ok(()), "id,age,demo_complete\n1,3,0\n"),
            (Ok(()), "id,age\n1,3\n2,\n3,\n"),
            (Ok(()), ""),
            (Ok(()), "id,age,demo_complete\n1,3\n"),
        ];
        for (sent, body) in cases {
            match judged(sent, body, &["1", "2", "3"]) {
                Ok(Judged::Heal(2)) => {}
                other => panic!("{body:?}: {other:?}"),
            }
        }
        let server = WorkflowError::Call(redcap_core::Error::from(redcap_core::DecodeError::Unexpected {
            expected: "x",
            excerpt: "y".into(),
        }));
        assert!(matches!(judged(Err(server), "", &["1"]), Ok(Judged::Heal(1))));
    }

    #[test]
    fn the_id_list_is_one_id_per_run_of_rows_in_order() {
        let body = "id,redcap_event_name,redcap_repeat_instance\n2,e1,\n2,e2,\n10,e1,1\n1,e1,\n10,e2,\n";
        for piece in [1, 3, body.len()] {
            let mut sink = IdSink::new("id");
            for chunk in body.as_bytes().chunks(piece) {
                sink.write_all(chunk).unwrap();
            }
            assert_eq!(sink.finish(OK).unwrap(), ["2", "10", "1", "10"], "pieces of {piece}");
        }
        assert!(IdSink::new("id").finish(OK).unwrap().is_empty(), "an empty answer: no records");
        let mut wrong = IdSink::new("id");
        let _ = wrong.write_all(b"record,x\n1,2\n");
        assert!(matches!(wrong.finish(OK), Err(WorkflowError::Decode(_))), "no id column");
    }

    #[test]
    fn a_failure_no_batch_size_fixes_is_returned() {
        let refused = WorkflowError::Worker("no".into());
        assert!(matches!(judged(Err(refused), "", &["1", "2"]), Err(WorkflowError::Worker(_))));
    }
}
