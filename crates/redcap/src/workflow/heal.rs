//! Self-healing batches: the pure plan of a batched record export that survives a server that
//! cannot answer big batches.
//!
//! Big projects fail in ways a fixed batch size does not survive: the server runs out of
//! memory (PyCap#80), answers 200 with nothing in it (REDCapTidieR#212), leaves records out
//! (REDCapR#400) or times out behind its proxy (504, REDCapR#383). When a batch fails in a way
//! a smaller one can survive, the [`Healer`] halves it and asks again, down to one record; one
//! record that still fails is asked for instrument by instrument and its rows merged. Failures
//! no smaller batch can fix (the token, a right, a parameter REDCap refuses) stop at once.
//!
//! The healer does no I/O: a driver asks it for the next request, sends it, and hands back the
//! rows or the error; rows come out in the order of the ids, whatever order the answers arrive
//! in, so several requests may be in flight at once.

use std::collections::{BTreeSet, VecDeque};

use redcap_core::{ErrorKind, Row};
use serde_json::Value;

use super::WorkflowError;
use super::records::cell;
use crate::record;
use crate::rows::{Field, FieldType};

/// What a batched export did to get every record back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealReport {
    /// Export calls made for the records (batches, their halves and instrument pieces).
    pub requests: u64,
    /// Batches that failed and were split in two.
    pub halved: u64,
    /// Records that failed alone and were exported instrument by instrument.
    pub by_instrument: Vec<String>,
    /// Why each split was made (the first [`HealReport::MAX_REASONS`]).
    pub reasons: Vec<String>,
}

impl HealReport {
    /// How many reasons a report keeps.
    pub const MAX_REASONS: usize = 20;

    /// Whether any batch had to be split.
    pub fn healed(&self) -> bool {
        self.halved > 0 || !self.by_instrument.is_empty()
    }

    fn reason(&mut self, why: String) {
        if self.reasons.len() < Self::MAX_REASONS {
            self.reasons.push(why);
        }
    }
}

impl std::fmt::Display for HealReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} request{}", self.requests, if self.requests == 1 { "" } else { "s" })?;
        if self.halved > 0 {
            write!(f, ", {} batch{} halved", self.halved, if self.halved == 1 { "" } else { "es" })?;
        }
        if !self.by_instrument.is_empty() {
            write!(
                f,
                ", {} record{} exported by instrument",
                self.by_instrument.len(),
                plural(self.by_instrument.len())
            )?;
        }
        if let Some(first) = self.reasons.first() {
            write!(f, " (first failure: {first})")?;
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Whether a smaller batch may survive what `error` says went wrong: the server failed or
/// timed out, the connection broke mid-answer, the answer did not decode (cut short, an error
/// page), or REDCap's message speaks of memory or too much data. Refused tokens, missing
/// rights and refused parameters are not: no batch size changes them.
pub fn survivable(error: &WorkflowError) -> bool {
    let e = match error {
        WorkflowError::Decode(_) => return true,
        WorkflowError::Call(e) => e,
        _ => return false,
    };
    let text = e.to_string().to_ascii_lowercase();
    let about_size =
        ["memory", "too much data", "exhausted", "too large", "timed out", "timeout"].iter().any(|w| text.contains(w));
    match e.kind() {
        ErrorKind::Server | ErrorKind::Timeout | ErrorKind::Decode => true,
        // A broken connection, but not one that never connected.
        ErrorKind::Network => e.maybe_delivered(),
        ErrorKind::Auth | ErrorKind::Permission | ErrorKind::Local | ErrorKind::Request => false,
        _ => about_size,
    }
}

/// One instrument's share of a request: the whole form, or the named fields on it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    form: String,
    /// `None`: the whole form; else these fields of it.
    fields: Option<Vec<String>>,
    /// Columns its answer must have: names, or `name___` prefixes of checkboxes.
    expect: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    Exact(String),
    /// A checkbox: `name` (combined) or any `name___code`.
    Checkbox(String),
}

impl Column {
    fn in_row(&self, row: &Row) -> bool {
        match self {
            Column::Exact(n) => row.contains_key(n),
            Column::Checkbox(n) => {
                row.contains_key(n)
                    || row.keys().any(|k| k.strip_prefix(n.as_str()).is_some_and(|r| r.starts_with("___")))
            }
        }
    }

    fn name(&self) -> &str {
        match self {
            Column::Exact(n) | Column::Checkbox(n) => n,
        }
    }
}

/// What a batch request covers, by instrument, from the request and the data dictionary: how a
/// record is split when it fails alone, and which columns every answer must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    id_field: String,
    parts: Vec<Part>,
}

impl Scope {
    /// The scope of `template` (its fields and forms; neither: every instrument).
    pub fn new(template: &record::export::Request, id_field: &str, metadata: &[Field]) -> Self {
        let mut forms: Vec<String> = Vec::new();
        for f in metadata {
            if !forms.contains(&f.form_name) {
                forms.push(f.form_name.clone());
            }
        }
        let everything = template.fields.is_empty() && template.forms.is_empty();
        let column = |f: &Field| match f.field_type {
            FieldType::Descriptive => None,
            FieldType::Checkbox => Some(Column::Checkbox(f.field_name.clone())),
            _ => Some(Column::Exact(f.field_name.clone())),
        };
        let mut parts = Vec::new();
        for form in &forms {
            if everything || template.forms.contains(form) {
                parts.push(Part {
                    form: form.clone(),
                    fields: None,
                    expect: vec![Column::Exact(format!("{form}_complete"))],
                });
                continue;
            }
            let mut fields = Vec::new();
            let mut expect = Vec::new();
            for name in template.fields.iter().filter(|n| *n != id_field) {
                let field = metadata.iter().find(|f| &f.field_name == name);
                let on_form = match field {
                    Some(f) => &f.form_name == form,
                    // `<form>_complete`, or a name the dictionary does not know: the id's form.
                    None => name.strip_suffix("_complete").map_or(Some(form) == forms.first(), |f| f == form),
                };
                if on_form {
                    fields.push(name.clone());
                    expect.extend(field.map_or_else(|| Some(Column::Exact(name.clone())), column));
                }
            }
            if !fields.is_empty() {
                parts.push(Part { form: form.clone(), fields: Some(fields), expect });
            }
        }
        Scope { id_field: id_field.to_owned(), parts }
    }

    fn expected(&self, part: Option<usize>) -> Vec<&Column> {
        match part {
            Some(i) => self.parts[i].expect.iter().collect(),
            None => self.parts.iter().flat_map(|p| p.expect.iter()).collect(),
        }
    }

    /// The columns of `expected` some row lacks (none when there are no rows).
    fn missing_columns(&self, rows: &[Row], part: Option<usize>) -> Vec<String> {
        let mut missing = BTreeSet::new();
        let id = Column::Exact(self.id_field.clone());
        for row in rows {
            for c in self.expected(part).into_iter().chain(std::iter::once(&id)) {
                if !c.in_row(row) {
                    missing.insert(c.name().to_owned());
                }
            }
        }
        missing.into_iter().collect()
    }
}

/// Which piece of work a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// These records, whole.
    Records(Vec<String>),
    /// One record, one part of the scope.
    Instrument { record: String, part: usize },
}

#[derive(Debug)]
enum State {
    Waiting,
    Sent,
    Done(Vec<Row>),
}

#[derive(Debug)]
struct Slot {
    ticket: u64,
    piece: Piece,
    state: State,
    /// The instrument pieces of one record share the ticket of the request they replace.
    group: Option<u64>,
}

/// A request handed out by [`Healer::next_request`]: hand its answer back with its ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// What the healer made of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The answer is complete; its rows are kept.
    Kept {
        /// What the request was (e.g. `records 1–50`).
        item: String,
        /// Rows in it.
        rows: u64,
    },
    /// The request failed in a way smaller ones may survive; it was split into `parts`.
    Split {
        /// What the request was.
        item: String,
        /// Why.
        reason: String,
        /// Requests that replace it.
        parts: usize,
    },
}

/// The plan of a self-healing batched export (see the module documentation).
#[derive(Debug)]
pub struct Healer {
    template: record::export::Request,
    scope: Scope,
    slots: VecDeque<Slot>,
    next_ticket: u64,
    report: HealReport,
}

impl Healer {
    /// A healer for `batches` of record ids, each exported with `template` (a batch request:
    /// flat JSON; its `records` are replaced).
    pub fn new(template: &record::export::Request, scope: Scope, batches: Vec<Vec<String>>) -> Self {
        let mut h = Healer {
            template: template.clone(),
            scope,
            slots: VecDeque::new(),
            next_ticket: 0,
            report: HealReport::default(),
        };
        for b in batches.into_iter().filter(|b| !b.is_empty()) {
            let slot = h.slot(Piece::Records(b), None);
            h.slots.push_back(slot);
        }
        h
    }

    fn slot(&mut self, piece: Piece, group: Option<u64>) -> Slot {
        self.next_ticket += 1;
        Slot { ticket: self.next_ticket, piece, state: State::Waiting, group }
    }

    /// The next request to send, with a label for progress, if one is waiting (others may
    /// still be in flight).
    pub fn next_request(&mut self) -> Option<(Ticket, record::export::Request, String)> {
        let slot = self.slots.iter_mut().find(|s| matches!(s.state, State::Waiting))?;
        slot.state = State::Sent;
        self.report.requests += 1;
        let ticket = Ticket(slot.ticket);
        let piece = slot.piece.clone();
        Some((ticket, self.request(&piece), label(&piece, &self.scope)))
    }

    fn request(&self, piece: &Piece) -> record::export::Request {
        let id = &self.scope.id_field;
        match piece {
            Piece::Records(ids) => super::batch_request(&self.template, id, ids),
            Piece::Instrument { record, part } => {
                let mut r = super::batch_request(&self.template, id, std::slice::from_ref(record));
                let p = &self.scope.parts[*part];
                r.fields = vec![id.clone()];
                match &p.fields {
                    None => r.forms = vec![p.form.clone()],
                    Some(fields) => {
                        r.forms = Vec::new();
                        r.fields.extend(fields.iter().cloned());
                    }
                }
                r
            }
        }
    }

    /// Takes the answer to `ticket`: the rows, or why there are none. A complete answer is
    /// kept; one a smaller request may survive is split; any other failure is returned.
    pub fn answer(
        &mut self,
        ticket: Ticket,
        answer: Result<Vec<Row>, WorkflowError>,
    ) -> Result<Verdict, WorkflowError> {
        let Some(at) = self.slots.iter().position(|s| s.ticket == ticket.0) else {
            return Err(WorkflowError::Decode(redcap_core::DecodeError::Unexpected {
                expected: "an answer to a request in flight",
                excerpt: format!("ticket {}", ticket.0),
            }));
        };
        let piece = self.slots[at].piece.clone();
        let item = label(&piece, &self.scope);
        let failure = match answer {
            Ok(rows) => match self.check(&piece, &rows) {
                None => {
                    let n = rows.len() as u64;
                    self.slots[at].state = State::Done(rows);
                    return Ok(Verdict::Kept { item, rows: n });
                }
                Some(why) => why,
            },
            Err(e) if survivable(&e) => Check::Failed(e),
            Err(e) => return Err(e),
        };
        let reason = failure.to_string();
        let group = self.slots[at].group;
        let replacement: Vec<Piece> = match &piece {
            Piece::Records(ids) if ids.len() > 1 => {
                let (a, b) = ids.split_at(ids.len() / 2);
                self.report.halved += 1;
                vec![Piece::Records(a.to_vec()), Piece::Records(b.to_vec())]
            }
            Piece::Records(ids) if self.scope.parts.len() > 1 => {
                self.report.by_instrument.push(ids[0].clone());
                (0..self.scope.parts.len()).map(|part| Piece::Instrument { record: ids[0].clone(), part }).collect()
            }
            _ => return Err(failure.into_error(&piece)),
        };
        self.report.reason(format!("{item}: {reason}"));
        let parts = replacement.len();
        let old = self.slots.remove(at).map(|s| s.ticket);
        for (i, p) in replacement.into_iter().enumerate() {
            // Instrument pieces of one record are merged: they share the old ticket as group.
            let group = match p {
                Piece::Instrument { .. } => old,
                Piece::Records(_) => group,
            };
            let slot = self.slot(p, group);
            self.slots.insert(at + i, slot);
        }
        Ok(Verdict::Split { item, reason, parts })
    }

    fn check(&self, piece: &Piece, rows: &[Row]) -> Option<Check> {
        let part = match piece {
            Piece::Records(ids) => {
                let got: BTreeSet<String> = rows.iter().filter_map(|r| cell(r, &self.scope.id_field)).collect();
                let missing: Vec<String> = ids.iter().filter(|id| !got.contains(*id)).cloned().collect();
                if !missing.is_empty() {
                    return Some(Check::Rows(missing));
                }
                None
            }
            // A record may have nothing on one instrument; the merge checks it has rows at all.
            Piece::Instrument { part, .. } => Some(*part),
        };
        let missing = self.scope.missing_columns(rows, part);
        (!missing.is_empty()).then_some(Check::Columns(missing))
    }

    /// Rows whose turn has come, in the order of the ids: complete answers at the front, the
    /// instrument pieces of one record merged into its rows.
    pub fn ready(&mut self) -> Result<Vec<Row>, WorkflowError> {
        let mut out = Vec::new();
        while let Some(front) = self.slots.front() {
            match front.group {
                None => {
                    if !matches!(front.state, State::Done(_)) {
                        break;
                    }
                    if let Some(Slot { state: State::Done(rows), .. }) = self.slots.pop_front() {
                        out.extend(rows);
                    }
                }
                Some(g) => {
                    let n = self.slots.iter().take_while(|s| s.group == Some(g)).count();
                    if !self.slots.iter().take(n).all(|s| matches!(s.state, State::Done(_))) {
                        break;
                    }
                    let record = match &front.piece {
                        Piece::Instrument { record, .. } => record.clone(),
                        Piece::Records(ids) => ids.first().cloned().unwrap_or_default(),
                    };
                    let pieces: Vec<Vec<Row>> = self
                        .slots
                        .drain(..n)
                        .map(|s| match s.state {
                            State::Done(rows) => rows,
                            _ => Vec::new(),
                        })
                        .collect();
                    let merged = merge(pieces, &self.scope.id_field);
                    if merged.is_empty() {
                        return Err(WorkflowError::MissingRecords { missing: vec![record] });
                    }
                    out.extend(merged);
                }
            }
        }
        Ok(out)
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s.state, State::Sent)).count()
    }

    /// Whether every row has been handed out.
    pub fn is_finished(&self) -> bool {
        self.slots.is_empty()
    }

    /// What was done so far.
    pub fn report(&self) -> &HealReport {
        &self.report
    }

    /// The report, once the export is over.
    pub fn into_report(self) -> HealReport {
        self.report
    }
}

/// Why an answer was not kept.
enum Check {
    Rows(Vec<String>),
    Columns(Vec<String>),
    Failed(WorkflowError),
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Rows(ids) => write!(f, "no rows for {} of the records asked for", ids.len()),
            Check::Columns(c) => write!(f, "column{} missing: {}", plural(c.len()), c.join(", ")),
            Check::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl Check {
    fn into_error(self, piece: &Piece) -> WorkflowError {
        match self {
            Check::Rows(missing) => WorkflowError::MissingRecords { missing },
            Check::Columns(columns) => WorkflowError::MissingColumns {
                record: match piece {
                    Piece::Instrument { record, .. } => record.clone(),
                    Piece::Records(ids) => ids.first().cloned().unwrap_or_default(),
                },
                columns,
            },
            Check::Failed(e) => e,
        }
    }
}

fn label(piece: &Piece, scope: &Scope) -> String {
    match piece {
        Piece::Records(ids) if ids.len() == 1 => format!("record {}", ids[0]),
        Piece::Records(ids) => format!("{} records ({}…{})", ids.len(), ids[0], ids[ids.len() - 1]),
        Piece::Instrument { record, part } => format!("record {record}, instrument {}", scope.parts[*part].form),
    }
}

/// One record's rows from its instrument pieces: rows with the same event and repeat
/// instance become one, in the order they first appear, every row with every column (blank
/// where a piece had none), as REDCap's own export of the whole record has.
fn merge(pieces: Vec<Vec<Row>>, id_field: &str) -> Vec<Row> {
    const KEY: [&str; 3] = ["redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"];
    let key = |r: &Row| -> Vec<String> {
        KEY.iter()
            .map(|k| r.get(*k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default())
            .collect()
    };
    let mut keys: Vec<Vec<String>> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for row in pieces.into_iter().flatten() {
        for k in row.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        let k = key(&row);
        match keys.iter().position(|x| *x == k) {
            Some(i) => {
                for (c, v) in row {
                    let blank = rows[i].get(&c).is_none_or(|old| old.as_str() == Some(""));
                    if blank {
                        rows[i].insert(c, v);
                    }
                }
            }
            None => {
                keys.push(k);
                rows.push(row);
            }
        }
    }
    rows.retain(|r| cell(r, id_field).is_some());
    rows.into_iter()
        .map(|mut r| {
            let mut full = Row::new();
            for c in &columns {
                full.insert(c.clone(), r.remove(c).unwrap_or_else(|| Value::String(String::new())));
            }
            full
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, form: &str, ty: &str) -> Field {
        serde_json::from_value(serde_json::json!({
            "field_name": name, "form_name": form, "field_type": ty, "field_label": name
        }))
        .unwrap()
    }

    fn metadata() -> Vec<Field> {
        vec![
            field("id", "demo", "text"),
            field("age", "demo", "text"),
            field("cb", "visit", "checkbox"),
            field("note", "visit", "descriptive"),
        ]
    }

    fn rows(json: serde_json::Value) -> Vec<Row> {
        serde_json::from_value(json).unwrap()
    }

    /// A fake server: answers each request from `db` (rows by record), failing any request for
    /// more than `limit` records, and dropping `visit`'s columns for record `wide`.
    fn serve(h: &mut Healer, limit: usize, wide: Option<&str>) -> Result<Vec<Row>, WorkflowError> {
        let db = |id: &str, forms: &[String]| {
            let mut r = Row::new();
            r.insert("id".into(), id.into());
            if forms.is_empty() || forms.iter().any(|f| f == "demo") {
                r.insert("age".into(), format!("{id}0").into());
                r.insert("demo_complete".into(), "2".into());
            }
            if (forms.is_empty() || forms.iter().any(|f| f == "visit")) && !(wide == Some(id) && forms.is_empty()) {
                r.insert("cb___1".into(), "1".into());
                r.insert("visit_complete".into(), "0".into());
            }
            r
        };
        let mut out = Vec::new();
        while let Some((t, req, _)) = h.next_request() {
            let answer = if req.records.len() > limit {
                Err(WorkflowError::Call(redcap_core::Error::Api(redcap_core::ApiError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Allowed memory size of 134217728 bytes exhausted",
                    redcap_core::ApiErrorKind::Envelope,
                ))))
            } else {
                Ok(req.records.iter().map(|id| db(id, &req.forms)).collect())
            };
            h.answer(t, answer)?;
            out.extend(h.ready()?);
        }
        assert!(h.is_finished());
        Ok(out)
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| i.to_string()).collect()
    }

    fn all() -> Scope {
        Scope::new(&record::export::Request::new(), "id", &metadata())
    }

    #[test]
    fn batches_over_the_limit_are_halved_until_they_pass() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(8), vec!["9".into()]]);
        let out = serve(&mut h, 2, None).unwrap();
        let got: Vec<String> = out.iter().filter_map(|r| cell(r, "id")).collect();
        assert_eq!(got, ids(9), "every record once, in order");
        let r = h.report();
        assert_eq!(r.halved, 3, "8 -> 4+4 -> 2+2+2+2");
        assert_eq!(r.requests, 2 + 3 * 2);
        assert!(r.reasons[0].contains("exhausted"), "{:?}", r.reasons);
        assert!(r.healed());
    }

    #[test]
    fn one_record_that_fails_is_exported_by_instrument_and_merged() {
        // Record 2's whole-record answer lacks the visit columns; its pieces do not.
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(3)]);
        let out = serve(&mut h, 10, Some("2")).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(h.report().by_instrument, ["2"]);
        let two = &out[1];
        assert_eq!(two["id"], "2");
        assert_eq!(two["age"], "20");
        assert_eq!(two["cb___1"], "1");
        assert_eq!(two.keys().collect::<Vec<_>>(), ["id", "age", "demo_complete", "cb___1", "visit_complete"]);
    }

    #[test]
    fn instrument_requests_name_one_form_or_its_fields() {
        let by_field = record::export::Request::new().fields(["age", "cb"]);
        let scope = Scope::new(&by_field, "id", &metadata());
        let mut h = Healer::new(&by_field, scope, vec![vec!["1".into()]]);
        let (t, _, _) = h.next_request().unwrap();
        h.answer(t, Ok(Vec::new())).unwrap();
        let (_, first, _) = h.next_request().unwrap();
        let (_, second, _) = h.next_request().unwrap();
        assert_eq!((first.fields.clone(), first.forms.clone()), (vec!["id".to_owned(), "age".into()], vec![]));
        assert_eq!(second.fields, ["id", "cb"]);
        assert_eq!(second.records, ["1"]);
        assert_eq!(h.in_flight(), 2);
        let by_form = record::export::Request::new().forms(["visit"]);
        let mut h = Healer::new(&by_form, Scope::new(&by_form, "id", &metadata()), vec![vec!["1".into()]]);
        let (t, _, _) = h.next_request().unwrap();
        // One instrument only: a single record that fails cannot be split further.
        let e = h.answer(t, Ok(Vec::new())).unwrap_err();
        assert!(matches!(e, WorkflowError::MissingRecords { ref missing } if missing == &["1"]), "{e}");
    }

    #[test]
    fn rows_come_out_in_order_whatever_order_answers_arrive_in() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![vec!["1".into()], vec!["2".into()]]);
        let (t1, r1, _) = h.next_request().unwrap();
        let (t2, r2, _) = h.next_request().unwrap();
        let answer = |r: &record::export::Request| {
            Ok(rows(
                serde_json::json!([{"id": r.records[0], "age": "", "demo_complete": "0", "cb___1": "0", "visit_complete": "0"}]),
            ))
        };
        h.answer(t2, answer(&r2)).unwrap();
        assert!(h.ready().unwrap().is_empty(), "record 2 waits for record 1");
        h.answer(t1, answer(&r1)).unwrap();
        let out = h.ready().unwrap();
        assert_eq!(out.iter().filter_map(|r| cell(r, "id")).collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn failures_no_batch_size_fixes_stop_at_once() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(4)]);
        let (t, _, _) = h.next_request().unwrap();
        let refused = redcap_core::ApiError::new(
            http::StatusCode::FORBIDDEN,
            "You do not have permissions to use the API",
            redcap_core::ApiErrorKind::Envelope,
        );
        let e = h.answer(t, Err(WorkflowError::Call(redcap_core::Error::Api(refused)))).unwrap_err();
        assert!(e.is_auth());
        let invalid = redcap_core::ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "The following values in the parameter \"fields\" are not valid: 'x'",
            redcap_core::ApiErrorKind::Envelope,
        );
        assert!(!survivable(&WorkflowError::Call(redcap_core::Error::Api(invalid))));
        let memory = redcap_core::ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "Too much data requested",
            redcap_core::ApiErrorKind::Envelope,
        );
        assert!(survivable(&WorkflowError::Call(redcap_core::Error::Api(memory))));
        let gateway = redcap_core::ApiError::new(
            http::StatusCode::GATEWAY_TIMEOUT,
            "Gateway Timeout",
            redcap_core::ApiErrorKind::HtmlPage,
        );
        assert!(survivable(&WorkflowError::Call(redcap_core::Error::Api(gateway))));
    }

    #[test]
    fn missing_rows_and_columns_are_noticed() {
        let scope = all();
        let full = rows(
            serde_json::json!([{"id": "1", "age": "", "demo_complete": "0", "cb___1": "0", "visit_complete": "0"}]),
        );
        assert!(scope.missing_columns(&full, None).is_empty());
        let mut cut = full.clone();
        cut[0].remove("visit_complete");
        assert_eq!(scope.missing_columns(&cut, None), ["visit_complete"]);
        let mut h = Healer::new(&record::export::Request::new(), scope, vec![ids(2)]);
        let (t, _, _) = h.next_request().unwrap();
        let v = h.answer(t, Ok(full)).unwrap();
        assert!(matches!(v, Verdict::Split { parts: 2, ref reason, .. } if reason.contains("no rows for 1")), "{v:?}");
    }

    #[test]
    fn merged_rows_keep_events_and_instances_apart() {
        let a = rows(serde_json::json!([
            {"id": "1", "redcap_event_name": "e1", "age": "3"},
            {"id": "1", "redcap_event_name": "e2", "age": ""}
        ]));
        let b = rows(serde_json::json!([
            {"id": "1", "redcap_event_name": "e2", "cb___1": "1"},
            {"id": "1", "redcap_event_name": "e2", "redcap_repeat_instrument": "visit", "redcap_repeat_instance": 2, "cb___1": "0"}
        ]));
        let m = merge(vec![a, b], "id");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0]["cb___1"], "", "blank where the piece had none");
        assert_eq!(m[1]["cb___1"], "1");
        assert_eq!(m[2]["redcap_repeat_instance"], 2);
        assert_eq!(m[2]["age"], "");
    }
}
