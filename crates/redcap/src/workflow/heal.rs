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
//! The healer does no I/O: a driver asks it for the next request, sends it, and hands over each
//! row as it is decoded, then how the answer ended. Rows are handed out as they come, holding
//! back only the record being received (a record's rows are contiguous in REDCap's answer, so
//! a record is complete once the next one starts): memory stays at one record whatever the
//! batch size, and an answer cut short loses only its last record. What an answer did not
//! bring is asked for again — only that, never rows already handed out — and each round
//! brings fewer records or a smaller request, so it ends.
//!
//! Rows come out batch by batch in the order of the batches, whatever order the answers
//! arrive in, so several requests may be in flight at once (an answer that is not the first
//! waits, whole, for those before it). Within a batch they come in the server's order, except
//! that records asked for again come after the batch's others. Every record comes whole, once,
//! within its batch.
//!
//! Missing columns are noticed on an answer's first row, before any of its rows is handed out
//! (REDCap's flat rows all have the same columns; a later row is checked only if it has fewer),
//! missing records at the end of the answer.
//! [`Healer::whole`] exports everything in one call with no id list; only if that call fails
//! is the id list asked for, and the records not yet handed out are healed like batches.

use std::collections::{BTreeSet, HashSet, VecDeque};

use redcap_core::{ErrorKind, Row};
use serde_json::Value;

use super::WorkflowError;
use super::export_row::ExportRow;
use super::records::cell;
use crate::record;
use crate::rows::{Field, FieldType};

/// What a batched export did to get every record back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealReport {
    /// Export calls made for the records (batches, their halves and instrument pieces, and the
    /// id list a failed one-call export needed).
    pub requests: u64,
    /// Batches that failed and were split in two.
    pub halved: u64,
    /// Batches that came back with some of their records missing (or cut short after some),
    /// asked for again for just the records missing.
    pub reasked: u64,
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
        self.halved > 0 || self.reasked > 0 || !self.by_instrument.is_empty()
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
        if self.reasked > 0 {
            write!(
                f,
                ", {} batch{} asked again for missing records",
                self.reasked,
                if self.reasked == 1 { "" } else { "es" }
            )?;
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
    /// Whether a header (a CSV answer's column names) has this column.
    fn in_names(&self, names: &[String]) -> bool {
        match self {
            Column::Exact(n) => names.contains(n),
            Column::Checkbox(n) => {
                names.iter().any(|k| k == n || k.strip_prefix(n.as_str()).is_some_and(|r| r.starts_with("___")))
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

    /// The columns every answer of the whole scope must have (the record id's among them) that
    /// a header of column `names` lacks.
    pub fn missing_names(&self, names: &[String]) -> Vec<String> {
        let id = Column::Exact(self.id_field.clone());
        let expected = self.expected(None).into_iter().chain(std::iter::once(&id));
        expected
            .filter(|c| !c.in_names(names))
            .map(|c| c.name().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The columns of `expected` some row lacks (none when there are no rows).
    fn missing_columns<R: ExportRow>(&self, rows: &[R], part: Option<usize>) -> Vec<String> {
        let mut missing = BTreeSet::new();
        let id = Column::Exact(self.id_field.clone());
        for row in rows {
            let names = row.column_names();
            for c in self.expected(part).into_iter().chain(std::iter::once(&id)) {
                if !c.in_names(&names) {
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
    /// Every record the template selects, in one call: the ids are not known.
    All,
    /// The ids the template selects, asked for only when [`Piece::All`] failed.
    Ids,
    /// These records, whole.
    Records(Vec<String>),
    /// One record, one part of the scope.
    Instrument { record: String, part: usize },
}

/// An answer being received.
#[derive(Debug)]
struct Answer<R> {
    /// Rows of complete records, waiting for an earlier answer to be handed out.
    ready: Vec<R>,
    /// The rows of the record being received. A record's rows are contiguous in REDCap's
    /// answer, so it is complete when another record starts or the answer ends; an answer cut
    /// short loses only these. Instrument pieces keep all their rows here (one record).
    held: Vec<R>,
    held_id: Option<String>,
    /// Records whose rows are complete (handed out or in `ready`); for [`Piece::Ids`], the ids.
    complete: HashSet<String>,
    /// The id list, in the server's order ([`Piece::Ids`]).
    ids: Vec<String>,
    rows: u64,
    /// Columns of the first row.
    width: usize,
    /// Columns a row lacked: the answer is refused from that row's record on, its other rows
    /// ignored.
    refused: Option<Vec<String>>,
}

impl<R> Default for Answer<R> {
    fn default() -> Self {
        Answer {
            ready: Vec::new(),
            held: Vec::new(),
            held_id: None,
            complete: HashSet::new(),
            ids: Vec::new(),
            rows: 0,
            width: 0,
            refused: None,
        }
    }
}

impl<R> Answer<R> {
    fn release(&mut self) {
        if let Some(id) = self.held_id.take() {
            self.complete.insert(id);
        }
        self.ready.append(&mut self.held);
    }
}

#[derive(Debug)]
enum State<R> {
    Waiting,
    Sent(Box<Answer<R>>),
    Done(Vec<R>),
}

#[derive(Debug)]
struct Slot<R> {
    ticket: u64,
    piece: Piece,
    state: State<R>,
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
    /// The id list a failed one-call export needed has come: the records not yet handed out
    /// are asked for in `parts` requests.
    Listed {
        /// Record ids the export selects.
        ids: u64,
        /// Requests that ask for the records still missing.
        parts: usize,
    },
}

/// The plan of a self-healing batched export (see the module documentation), handing out rows
/// of type `R`: [`Row`] maps, or [`super::RawRow`]s kept as the server's JSON.
#[derive(Debug)]
pub struct Healer<R = Row> {
    template: record::export::Request,
    scope: Scope,
    slots: VecDeque<Slot<R>>,
    next_ticket: u64,
    report: HealReport,
    /// Rows whose turn has come, until [`Healer::ready`] takes them.
    out: Vec<R>,
    /// After a one-call export: the records it completed, and whether it failed (else it was
    /// empty, and the id list only confirms that).
    whole: Option<(HashSet<String>, bool)>,
}

impl<R: ExportRow> Healer<R> {
    /// A healer for `batches` of record ids, each exported with `template` (a batch request:
    /// flat JSON; its `records` are replaced).
    pub fn new(template: &record::export::Request, scope: Scope, batches: Vec<Vec<String>>) -> Self {
        let mut h = Healer::empty(template, scope);
        for b in batches.into_iter().filter(|b| !b.is_empty()) {
            let slot = h.slot(Piece::Records(b), None);
            h.slots.push_back(slot);
        }
        h
    }

    /// A healer for one call that exports every record `template` selects, with no id list
    /// first. Only if that call fails (or comes back empty) is the id list asked for, and the
    /// records not yet handed out are then asked for in halves, healed like batches.
    pub fn whole(template: &record::export::Request, scope: Scope) -> Self {
        let mut h = Healer::empty(template, scope);
        let slot = h.slot(Piece::All, None);
        h.slots.push_back(slot);
        h
    }

    fn empty(template: &record::export::Request, scope: Scope) -> Self {
        Healer {
            template: template.clone(),
            scope,
            slots: VecDeque::new(),
            next_ticket: 0,
            report: HealReport::default(),
            out: Vec::new(),
            whole: None,
        }
    }

    fn slot(&mut self, piece: Piece, group: Option<u64>) -> Slot<R> {
        self.next_ticket += 1;
        Slot { ticket: self.next_ticket, piece, state: State::Waiting, group }
    }

    /// The next request to send, with a label for progress, if one is waiting (others may
    /// still be in flight).
    pub fn next_request(&mut self) -> Option<(Ticket, record::export::Request, String)> {
        let slot = self.slots.iter_mut().find(|s| matches!(s.state, State::Waiting))?;
        slot.state = State::Sent(Box::default());
        self.report.requests += 1;
        let ticket = Ticket(slot.ticket);
        let piece = slot.piece.clone();
        Some((ticket, self.request(&piece), label(&piece, &self.scope)))
    }

    fn request(&self, piece: &Piece) -> record::export::Request {
        let id = &self.scope.id_field;
        match piece {
            Piece::All => super::batch_request(&self.template, id, &self.template.records),
            Piece::Ids => super::id_request(&self.template, id),
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

    fn in_flight_at(&self, ticket: Ticket) -> Result<usize, WorkflowError> {
        self.slots.iter().position(|s| s.ticket == ticket.0 && matches!(s.state, State::Sent(_))).ok_or_else(|| {
            WorkflowError::Decode(redcap_core::DecodeError::Unexpected {
                expected: "an answer to a request in flight",
                excerpt: format!("ticket {}", ticket.0),
            })
        })
    }

    /// Takes one row of the answer to `ticket`, as it is decoded. The rows of a record are
    /// held until the record is complete (another starts, or the answer ends), then handed
    /// out by [`Healer::ready`] when their turn has come. Columns missing against the scope
    /// are noticed on the first row, before any row of the answer is handed out.
    pub fn row(&mut self, ticket: Ticket, row: R) -> Result<(), WorkflowError> {
        let at = self.in_flight_at(ticket)?;
        let slot = &mut self.slots[at];
        let State::Sent(a) = &mut slot.state else { return Ok(()) };
        let id = row.id(&self.scope.id_field);
        match slot.piece {
            Piece::Ids => {
                if let Some(id) = id {
                    if a.complete.insert(id.clone()) {
                        a.ids.push(id);
                    }
                }
                return Ok(());
            }
            Piece::Instrument { .. } => {
                a.rows += 1;
                a.held.push(row);
                return Ok(());
            }
            Piece::All | Piece::Records(_) => {}
        }
        if a.refused.is_some() {
            return Ok(());
        }
        let starts = id != a.held_id;
        // The first row is checked in full; a later one only if it is narrower (cheap: all of
        // REDCap's flat rows have the same columns).
        if a.rows == 0 || row.width() < a.width {
            let missing = self.scope.missing_columns(std::slice::from_ref(&row), None);
            if !missing.is_empty() {
                // The records before this one are complete; this one and the rest are asked
                // for again.
                if starts {
                    a.release();
                } else {
                    a.held.clear();
                    a.held_id = None;
                }
                a.refused = Some(missing);
                return Ok(());
            }
        }
        if a.rows == 0 {
            a.width = row.width();
        }
        a.rows += 1;
        if starts {
            a.release();
            a.held_id = id;
        }
        a.held.push(row);
        Ok(())
    }

    /// Takes how the answer to `ticket` ended, its rows having gone to [`Healer::row`]: a
    /// complete answer is kept; one a smaller request may survive is replaced by requests for
    /// what it did not bring (rows already handed out are never asked for again); any other
    /// failure is returned.
    pub fn end(&mut self, ticket: Ticket, outcome: Result<(), WorkflowError>) -> Result<Verdict, WorkflowError> {
        let at = self.in_flight_at(ticket)?;
        let piece = self.slots[at].piece.clone();
        let item = label(&piece, &self.scope);
        let State::Sent(mut a) = std::mem::replace(&mut self.slots[at].state, State::Waiting) else {
            unreachable!("in_flight_at finds only answers in flight")
        };
        let failure = match outcome {
            Err(e) if survivable(&e) => Some(Check::Failed(e)),
            Err(e) => return Err(e),
            Ok(()) => a.refused.take().map(Check::Columns),
        };
        match piece {
            Piece::Ids => {
                if let Some(Check::Failed(e)) = failure {
                    return Err(e);
                }
                return Ok(self.listed(at, a.ids));
            }
            Piece::Instrument { .. } => {
                let failure = failure.or_else(|| self.check(&piece, &a.held));
                if let Some(why) = failure {
                    return self.split(at, &piece, item, why, Vec::new(), Vec::new());
                }
                let rows = std::mem::take(&mut a.held);
                self.slots[at].state = State::Done(rows);
                return Ok(Verdict::Kept { item, rows: a.rows });
            }
            Piece::All | Piece::Records(_) => {}
        }
        if failure.is_none() {
            a.release();
        }
        let kept = Verdict::Kept { item: item.clone(), rows: a.rows };
        let ready = std::mem::take(&mut a.ready);
        let ids = match &piece {
            Piece::Records(ids) => ids,
            _ => {
                // One call for everything: nothing to check rows against until the id list
                // comes, asked for only when the call failed or brought nothing.
                if failure.is_none() && a.rows > 0 {
                    self.slots[at].state = State::Done(ready);
                    return Ok(kept);
                }
                let failed = failure.is_some();
                self.whole = Some((std::mem::take(&mut a.complete), failed));
                self.slots[at].state = State::Done(ready);
                let ids = self.slot(Piece::Ids, None);
                self.slots.insert(at + 1, ids);
                return match failure {
                    Some(why) => {
                        self.report.halved += 1;
                        let reason = why.to_string();
                        self.report.reason(format!("{item}: {reason}"));
                        Ok(Verdict::Split { item, reason, parts: 2 })
                    }
                    None => Ok(kept),
                };
            }
        };
        let left: Vec<String> = ids.iter().filter(|id| !a.complete.contains(*id)).cloned().collect();
        let failure = match failure {
            // An answer that failed after its last complete record lost nothing asked for.
            _ if left.is_empty() => {
                self.slots[at].state = State::Done(ready);
                return Ok(kept);
            }
            None => Check::Rows(left.clone()),
            Some(why) => why,
        };
        self.split(at, &piece, item, failure, left, ready)
    }

    /// Takes the answer to `ticket` whole: its rows, or why there are none (see
    /// [`Healer::row`] and [`Healer::end`]).
    pub fn answer(&mut self, ticket: Ticket, answer: Result<Vec<R>, WorkflowError>) -> Result<Verdict, WorkflowError> {
        let outcome = answer.and_then(|rows| rows.into_iter().try_for_each(|r| self.row(ticket, r)));
        self.end(ticket, outcome)
    }

    /// Replaces the failed request at `at` by smaller ones for what it did not bring: `left`,
    /// the records of a batch not yet complete; its complete rows (`ready`) stay in its place.
    fn split(
        &mut self,
        at: usize,
        piece: &Piece,
        item: String,
        failure: Check,
        left: Vec<String>,
        ready: Vec<R>,
    ) -> Result<Verdict, WorkflowError> {
        let reason = failure.to_string();
        let group = self.slots[at].group;
        let asked = match piece {
            Piece::Records(ids) => ids.len(),
            _ => 0,
        };
        // Some records came: ask again for just the others (each round brings fewer, so this
        // ends); a failure that left several is halved as well.
        let progress = !left.is_empty() && left.len() < asked;
        let replacement: Vec<Piece> = match piece {
            Piece::Records(_) if progress && (left.len() == 1 || matches!(failure, Check::Rows(_))) => {
                self.report.reasked += 1;
                vec![Piece::Records(left)]
            }
            Piece::Records(_) if left.len() > 1 => {
                let (a, b) = left.split_at(left.len() / 2);
                self.report.halved += 1;
                vec![Piece::Records(a.to_vec()), Piece::Records(b.to_vec())]
            }
            Piece::Records(_) if left.len() == 1 && self.scope.parts.len() > 1 => {
                self.report.by_instrument.push(left[0].clone());
                (0..self.scope.parts.len()).map(|part| Piece::Instrument { record: left[0].clone(), part }).collect()
            }
            // One record on one instrument that fails: no smaller request exists.
            _ => return Err(failure.into_error(piece)),
        };
        self.report.reason(format!("{item}: {reason}"));
        let parts = replacement.len();
        let old = self.slots[at].ticket;
        // The complete records stay where the request was, before what replaces it.
        self.slots[at].state = State::Done(ready);
        for (i, p) in replacement.into_iter().enumerate() {
            // Instrument pieces of one record are merged: they share the old ticket as group.
            let group = match p {
                Piece::Instrument { .. } => Some(old),
                _ => group,
            };
            let slot = self.slot(p, group);
            self.slots.insert(at + 1 + i, slot);
        }
        Ok(Verdict::Split { item, reason, parts })
    }

    /// The id list of a failed (or empty) one-call export has come: the records it did not
    /// complete are asked for in halves.
    fn listed(&mut self, at: usize, ids: Vec<String>) -> Verdict {
        let (done, failed) = self.whole.take().unwrap_or_default();
        let n = ids.len() as u64;
        let left: Vec<String> = ids.into_iter().filter(|id| !done.contains(id)).collect();
        self.slots.remove(at);
        let mut pieces: Vec<Piece> = Vec::new();
        if left.len() > 1 {
            let (a, b) = left.split_at(left.len() / 2);
            pieces.push(Piece::Records(a.to_vec()));
            pieces.push(Piece::Records(b.to_vec()));
        } else if !left.is_empty() {
            pieces.push(Piece::Records(left.clone()));
        }
        let parts = pieces.len();
        for (i, p) in pieces.into_iter().enumerate() {
            let slot = self.slot(p, None);
            self.slots.insert(at + i, slot);
        }
        if !failed && !left.is_empty() {
            // The one call came back empty although records exist (REDCapTidieR#212).
            self.report.halved += u64::from(parts > 1);
            let item = label(&Piece::All, &self.scope);
            let reason = format!("no rows, but {} record{} exist", left.len(), plural(left.len()));
            self.report.reason(format!("{item}: {reason}"));
            return Verdict::Split { item, reason, parts };
        }
        Verdict::Listed { ids: n, parts }
    }

    fn check(&self, piece: &Piece, rows: &[R]) -> Option<Check> {
        // A record may have nothing on one instrument; the merge checks it has rows at all.
        let Piece::Instrument { part, .. } = piece else { return None };
        let missing = self.scope.missing_columns(rows, Some(*part));
        (!missing.is_empty()).then_some(Check::Columns(missing))
    }

    /// Rows whose turn has come, in order (see the module documentation): complete records
    /// of the answers at the front, the instrument pieces of one record merged into its rows.
    pub fn ready(&mut self) -> Result<Vec<R>, WorkflowError> {
        while let Some(front) = self.slots.front_mut() {
            match front.group {
                None => match &mut front.state {
                    State::Done(rows) => {
                        self.out.append(rows);
                        self.slots.pop_front();
                    }
                    State::Sent(a) => {
                        self.out.append(&mut a.ready);
                        break;
                    }
                    State::Waiting => break,
                },
                Some(g) => {
                    let n = self.slots.iter().take_while(|s| s.group == Some(g)).count();
                    if !self.slots.iter().take(n).all(|s| matches!(s.state, State::Done(_))) {
                        break;
                    }
                    let record = match &self.slots[0].piece {
                        Piece::Instrument { record, .. } => record.clone(),
                        Piece::Records(ids) => ids.first().cloned().unwrap_or_default(),
                        Piece::All | Piece::Ids => String::new(),
                    };
                    let pieces: Vec<Vec<Row>> = self
                        .slots
                        .drain(..n)
                        .map(|s| match s.state {
                            State::Done(rows) => rows.into_iter().map(R::into_row).collect(),
                            _ => Vec::new(),
                        })
                        .collect();
                    let id_field = &self.scope.id_field;
                    let merged = merge(pieces, id_field);
                    if merged.is_empty() {
                        return Err(WorkflowError::MissingRecords { missing: vec![record] });
                    }
                    self.out.extend(merged.into_iter().map(|r| R::from_row(r, id_field)));
                }
            }
        }
        Ok(std::mem::take(&mut self.out))
    }

    /// Rows taken and not yet handed out: the record being received in each answer, answers
    /// waiting for an earlier one, and instrument pieces waiting to be merged.
    pub fn rows_held(&self) -> usize {
        let held = |s: &Slot<R>| match &s.state {
            State::Waiting => 0,
            State::Sent(a) => a.held.len() + a.ready.len(),
            State::Done(rows) => rows.len(),
        };
        self.out.len() + self.slots.iter().map(held).sum::<usize>()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s.state, State::Sent(_))).count()
    }

    /// Whether every row has been handed out.
    pub fn is_finished(&self) -> bool {
        self.slots.is_empty() && self.out.is_empty()
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
                    Piece::All | Piece::Ids => String::new(),
                },
                columns,
            },
            Check::Failed(e) => e,
        }
    }
}

fn label(piece: &Piece, scope: &Scope) -> String {
    match piece {
        Piece::All => "every record".to_owned(),
        Piece::Ids => "the record ids".to_owned(),
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
    use crate::workflow::RawRow;

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
    fn serve<R: ExportRow>(h: &mut Healer<R>, limit: usize, wide: Option<&str>) -> Result<Vec<R>, WorkflowError> {
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
                Ok(req.records.iter().map(|id| R::from_row(db(id, &req.forms), "id")).collect())
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

    /// Rows kept as the server's JSON are checked, halved, split and merged exactly as maps are.
    #[test]
    fn raw_rows_heal_like_maps() {
        for wide in [None, Some("2")] {
            let mut maps: Healer = Healer::new(&record::export::Request::new(), all(), vec![ids(8)]);
            let mut raw: Healer<RawRow> = Healer::new(&record::export::Request::new(), all(), vec![ids(8)]);
            let expected = serve(&mut maps, 2, wide).unwrap();
            let got: Vec<Row> = serve(&mut raw, 2, wide).unwrap().into_iter().map(RawRow::into_row).collect();
            assert_eq!(got, expected, "wide record {wide:?}");
            assert_eq!(raw.report(), maps.report());
            assert!(raw.report().healed());
        }
        let mut raw: Healer<RawRow> = Healer::new(&record::export::Request::new(), all(), vec![ids(3)]);
        serve(&mut raw, 10, Some("2")).unwrap();
        assert_eq!(raw.report().by_instrument, ["2"], "a raw row missing columns is noticed");
    }

    #[test]
    fn one_record_that_fails_is_exported_by_instrument_and_merged() {
        // Record 2's whole-record answer lacks the visit columns; its pieces do not.
        let mut h: Healer = Healer::new(&record::export::Request::new(), all(), vec![ids(3)]);
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
        let mut h: Healer = Healer::new(&by_field, scope, vec![vec!["1".into()]]);
        let (t, _, _) = h.next_request().unwrap();
        h.answer(t, Ok(Vec::new())).unwrap();
        let (_, first, _) = h.next_request().unwrap();
        let (_, second, _) = h.next_request().unwrap();
        assert_eq!((first.fields.clone(), first.forms.clone()), (vec!["id".to_owned(), "age".into()], vec![]));
        assert_eq!(second.fields, ["id", "cb"]);
        assert_eq!(second.records, ["1"]);
        assert_eq!(h.in_flight(), 2);
        let by_form = record::export::Request::new().forms(["visit"]);
        let mut h: Healer = Healer::new(&by_form, Scope::new(&by_form, "id", &metadata()), vec![vec!["1".into()]]);
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
        let mut h: Healer = Healer::new(&record::export::Request::new(), all(), vec![ids(4)]);
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
        assert!(matches!(v, Verdict::Split { parts: 1, ref reason, .. } if reason.contains("no rows for 1")), "{v:?}");
    }

    /// A full row of record `id` at event `event` (the scope of [`all`]).
    fn full_row(id: &str, event: usize) -> Row {
        rows(serde_json::json!([{
            "id": id, "redcap_event_name": format!("e{event}"), "age": "", "demo_complete": "0",
            "cb___1": "0", "visit_complete": "0"
        }]))
        .remove(0)
    }

    fn ids_of(rows: &[Row]) -> Vec<String> {
        let mut v: Vec<String> = rows.iter().filter_map(|r| cell(r, "id")).collect();
        v.dedup();
        v
    }

    /// Issue 14: a batch's rows are handed out while its answer streams in, holding back only
    /// the record being received, not the batch (262 MiB for one batch of 30,000 records).
    #[test]
    fn rows_are_handed_out_as_they_come_holding_one_record() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(50)]);
        let (t, _, _) = h.next_request().unwrap();
        let mut out = Vec::new();
        for id in ids(50) {
            for event in 1..=3 {
                h.row(t, full_row(&id, event)).unwrap();
                out.extend(h.ready().unwrap());
                assert!(h.rows_held() <= 3, "record {id}: {} rows held", h.rows_held());
            }
            if id != "1" {
                // The record before this one is complete: it is out before the answer ends.
                let before = (id.parse::<usize>().unwrap() - 1) * 3;
                assert_eq!(out.len(), before, "record {id}");
            }
        }
        assert!(matches!(h.end(t, Ok(())).unwrap(), Verdict::Kept { rows: 150, .. }));
        out.extend(h.ready().unwrap());
        assert_eq!(out.len(), 150);
        assert_eq!(ids_of(&out), ids(50));
        assert!(h.is_finished());
        assert!(!h.report().healed());
    }

    /// Issue 11 (REDCapR#400): an answer missing some records is asked again for those only;
    /// the rows it brought are handed out once.
    #[test]
    fn missing_records_are_asked_again_alone() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(10), vec!["11".into()]]);
        let (t, _, _) = h.next_request().unwrap();
        let mut out = Vec::new();
        for id in ids(10).iter().filter(|id| *id != "4" && *id != "9") {
            h.row(t, full_row(id, 1)).unwrap();
            out.extend(h.ready().unwrap());
        }
        let v = h.end(t, Ok(())).unwrap();
        assert!(matches!(v, Verdict::Split { parts: 1, .. }), "{v:?}");
        out.extend(h.ready().unwrap());
        let (t, again, _) = h.next_request().unwrap();
        assert_eq!(again.records, ["4", "9"], "only the missing records");
        let (t11, last, _) = h.next_request().unwrap();
        assert_eq!(last.records, ["11"]);
        h.answer(t11, Ok(vec![full_row("11", 1)])).unwrap();
        assert_eq!(h.ready().unwrap().len(), 0, "record 11 waits for its batch");
        h.answer(t, Ok(vec![full_row("4", 1), full_row("9", 1)])).unwrap();
        out.extend(h.ready().unwrap());
        assert!(h.is_finished());
        assert_eq!(ids_of(&out), ["1", "2", "3", "5", "6", "7", "8", "10", "4", "9", "11"]);
        let r = h.report();
        assert_eq!((r.reasked, r.halved, r.requests), (1, 0, 3));
        assert!(r.healed());
    }

    /// An answer cut short loses only the record being received; the rest of the batch is
    /// asked for again, halved.
    #[test]
    fn an_answer_cut_short_asks_again_for_what_it_did_not_bring() {
        let mut h = Healer::new(&record::export::Request::new(), all(), vec![ids(6)]);
        let (t, _, _) = h.next_request().unwrap();
        let mut out = Vec::new();
        for id in ["1", "2", "3", "4"] {
            h.row(t, full_row(id, 1)).unwrap();
            h.row(t, full_row(id, 2)).unwrap();
            out.extend(h.ready().unwrap());
        }
        let cut = WorkflowError::Decode(redcap_core::DecodeError::Unexpected { expected: "]", excerpt: String::new() });
        assert!(matches!(h.end(t, Err(cut)).unwrap(), Verdict::Split { parts: 2, .. }));
        out.extend(h.ready().unwrap());
        assert_eq!(ids_of(&out), ["1", "2", "3"], "record 4 may be cut: none of its rows");
        let (a, ra, _) = h.next_request().unwrap();
        let (b, rb, _) = h.next_request().unwrap();
        assert_eq!((ra.records.clone(), rb.records.clone()), (vec!["4".to_owned()], vec!["5".to_owned(), "6".into()]));
        h.answer(b, Ok(rb.records.iter().map(|id| full_row(id, 1)).collect())).unwrap();
        h.answer(a, Ok(vec![full_row("4", 1), full_row("4", 2)])).unwrap();
        out.extend(h.ready().unwrap());
        assert_eq!(ids_of(&out), ids(6));
        assert_eq!(out.len(), 10, "each row once");
    }

    /// Issue 14: one call for everything, with no id list; the id list is asked for only when
    /// that call fails (or comes back empty), then only the records not yet handed out.
    #[test]
    fn one_call_export_asks_for_the_ids_only_when_it_fails() {
        let template = record::export::Request::new();
        let mut h = Healer::whole(&template, all());
        let (t, req, _) = h.next_request().unwrap();
        assert!(req.records.is_empty() && req.fields.is_empty(), "{req:?}");
        h.answer(t, Ok(ids(3).iter().map(|id| full_row(id, 1)).collect())).unwrap();
        assert_eq!(h.ready().unwrap().len(), 3);
        assert!(h.next_request().is_none() && h.is_finished());
        assert_eq!(h.report().requests, 1);

        let mut h = Healer::whole(&template, all());
        let (t, _, _) = h.next_request().unwrap();
        let mut out = Vec::new();
        for id in ["1", "2", "3"] {
            h.row(t, full_row(id, 1)).unwrap();
            out.extend(h.ready().unwrap());
        }
        let gone =
            WorkflowError::Decode(redcap_core::DecodeError::Unexpected { expected: "]", excerpt: String::new() });
        assert!(matches!(h.end(t, Err(gone)).unwrap(), Verdict::Split { .. }));
        out.extend(h.ready().unwrap());
        let (t, list, _) = h.next_request().unwrap();
        assert_eq!(list.fields, ["id"], "the id list, asked for now");
        let id_rows = ids(7).iter().map(|id| rows(serde_json::json!([{ "id": id }])).remove(0)).collect();
        assert!(matches!(h.answer(t, Ok(id_rows)).unwrap(), Verdict::Listed { ids: 7, parts: 2 }));
        let (a, ra, _) = h.next_request().unwrap();
        let (b, rb, _) = h.next_request().unwrap();
        assert_eq!(ra.records, ["3", "4"]);
        assert_eq!(rb.records, ["5", "6", "7"]);
        h.answer(a, Ok(ra.records.iter().map(|id| full_row(id, 1)).collect())).unwrap();
        h.answer(b, Ok(rb.records.iter().map(|id| full_row(id, 1)).collect())).unwrap();
        out.extend(h.ready().unwrap());
        assert_eq!(ids_of(&out), ids(7));
        assert_eq!(out.len(), 7);
        assert!(h.is_finished());
        assert_eq!((h.report().halved, h.report().requests), (1, 4));

        // An empty answer is confirmed by the id list: nothing healed when there is nothing.
        let mut h: Healer = Healer::whole(&template, all());
        let (t, _, _) = h.next_request().unwrap();
        h.answer(t, Ok(Vec::new())).unwrap();
        let (t, _, _) = h.next_request().unwrap();
        h.answer(t, Ok(Vec::new())).unwrap();
        assert!(h.ready().unwrap().is_empty());
        assert!(h.is_finished() && !h.report().healed());
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
