//! Fault injection for client tests. Off by default; driven through [`Faults`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of injected failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a REDCap error envelope (in the call's error format)
    /// carrying `message`, without running the call.
    Status {
        /// HTTP status, e.g. 500 or 503.
        status: u16,
        /// Error message in the envelope.
        message: String,
    },
    /// Run the call, then reset the TCP connection (RST) after `bytes` bytes of the body.
    ResetAfter {
        /// Body bytes sent before the reset.
        bytes: u64,
    },
    /// Run the call, announce the full Content-Length, send only `bytes` bytes and close.
    Truncate {
        /// Body bytes sent.
        bytes: u64,
    },
    /// Answer 200 with an HTML error page, without running the call (REDCap's PHP error pages
    /// and "multiple browser tabs" screens arrive with status 200).
    HtmlPage,
    /// Answer 429 Too Many Requests with `Retry-After: <seconds>`, without running the call.
    RateLimited {
        /// Value of the Retry-After header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer with a redirect, `status` (e.g. 301, 302, 307, 308) and `Location: <location>`,
    /// without running the call: what a web server in front of REDCap does when the API URL
    /// moved or http is sent to https (reference §1, "Redirects").
    Redirect {
        /// HTTP status.
        status: u16,
        /// Value of the Location header.
        location: String,
    },
}

impl Fault {
    /// Whether the call still runs (its effects happen) before the fault shows.
    pub fn runs_call(&self) -> bool {
        matches!(self, Fault::ResetAfter { .. } | Fault::Truncate { .. })
    }
}

/// How a records export naming too many records fails (see [`Faults::fail_batches_over`]): the
/// ways big exports break on real servers (issue 11; PyCap#80, REDCapTidieR#212, REDCapR#400).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchFault {
    /// Answer this status with a REDCap error envelope carrying `message`, without running the
    /// export (a 500 "Allowed memory size … exhausted", a 504 from the proxy).
    Status {
        /// HTTP status, e.g. 500 or 504.
        status: u16,
        /// Error message in the envelope.
        message: String,
    },
    /// Answer 200 with an empty body (REDCapTidieR#212's 0×0 answer).
    Empty,
    /// Run the export and leave out the rows of the last record asked for (REDCapR#400's
    /// silently missing subjects).
    DropRows,
    /// Run the export and leave out the last column of every row (an answer cut short in width).
    DropColumns,
}

/// A rule: every records export naming more than `max_records` records gets `fault`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BatchRule {
    max_records: usize,
    fault: BatchFault,
}

#[derive(Debug, Default)]
struct State {
    latency: Duration,
    queue: VecDeque<(Fault, u32)>,
    batch_rule: Option<BatchRule>,
    /// Logging exports answering more than this many entries fail with this status.
    log_rule: Option<(usize, u16)>,
    /// The records each records export named, the last [`Faults::EXPORTS_KEPT`].
    exports: VecDeque<Vec<String>>,
}

/// Handle to the fault plan of a running emulator. Cheap to clone; changes apply to the next
/// API call (requests to `/api/` only).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    calls: Arc<AtomicU64>,
    batch_failures: Arc<AtomicU64>,
    log_failures: Arc<AtomicU64>,
}

impl Faults {
    /// How many records exports [`Faults::record_exports`] remembers.
    pub const EXPORTS_KEPT: usize = 10_000;

    /// The records each records export (`content=record` without `data`) named, oldest first
    /// (empty: none named, i.e. every record), the last [`Faults::EXPORTS_KEPT`]; what a test
    /// checks a client's calls by.
    pub fn record_exports(&self) -> Vec<Vec<String>> {
        self.lock().exports.iter().cloned().collect()
    }

    /// Delays every call by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `times` calls get `fault` (queued after faults already planned).
    pub fn inject(&self, fault: Fault, times: u32) {
        if times > 0 {
            self.lock().queue.push_back((fault, times));
        }
    }

    /// The next `times` calls fail with `status` and a generic message.
    pub fn fail_next(&self, times: u32, status: u16) {
        self.inject(
            Fault::Status { status, message: format!("Injected failure (HTTP {status}) by the REDCap emulator") },
            times,
        );
    }

    /// From now on, every records export (`content=record` without `data`) that names more
    /// than `max_records` records in `records` gets `fault`, until [`Faults::clear`]. Exports
    /// that name no records (the id-only export of a batched export) are left alone.
    pub fn fail_batches_over(&self, max_records: usize, fault: BatchFault) {
        self.lock().batch_rule = Some(BatchRule { max_records, fault });
    }

    /// How many exports the batch rule of [`Faults::fail_batches_over`] has failed.
    pub fn batches_failed(&self) -> u64 {
        self.batch_failures.load(Ordering::SeqCst)
    }

    /// From now on, every logging export whose answer would hold more than `max_entries`
    /// entries fails with `status` (e.g. 504, a proxy's timeout: whole-project logs of a long
    /// history, redcapAPI#383), until [`Faults::clear`]. The export runs (and is logged) first,
    /// as a server that finishes after its proxy gave up does.
    pub fn fail_logs_over(&self, max_entries: usize, status: u16) {
        self.lock().log_rule = Some((max_entries, status));
    }

    /// How many logging exports the rule of [`Faults::fail_logs_over`] has failed.
    pub fn logs_failed(&self) -> u64 {
        self.log_failures.load(Ordering::SeqCst)
    }

    /// Removes every planned fault, the batch and logging rules (and their counts), the
    /// latency and the records exports remembered.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.queue.clear();
        s.exports.clear();
        s.batch_rule = None;
        s.log_rule = None;
        self.batch_failures.store(0, Ordering::SeqCst);
        self.log_failures.store(0, Ordering::SeqCst);
        s.latency = Duration::ZERO;
    }

    /// Number of faults still planned.
    pub fn pending(&self) -> u32 {
        self.lock().queue.iter().map(|(_, n)| *n).sum()
    }

    /// How many API calls the emulator has received (faulted ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call and takes the fault (if any) planned for it, plus the latency.
    pub(crate) fn next_call(&self) -> (Duration, Option<Fault>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut s = self.lock();
        let latency = s.latency;
        let fault = match s.queue.front_mut() {
            Some((fault, n)) => {
                let f = fault.clone();
                *n -= 1;
                if *n == 0 {
                    s.queue.pop_front();
                }
                Some(f)
            }
            None => None,
        };
        (latency, fault)
    }

    /// The batch rule's fault for this call, if it is a records export over the threshold.
    pub(crate) fn batch_fault(&self, params: &crate::params::Params) -> Option<BatchFault> {
        let export = params.get("content") == Some("record") && !params.has("data");
        if !export {
            return None;
        }
        let records = params.list("records").unwrap_or_default();
        let named = records.len();
        let rule = {
            let mut s = self.lock();
            if s.exports.len() == Self::EXPORTS_KEPT {
                s.exports.pop_front();
            }
            s.exports.push_back(records);
            s.batch_rule.clone()?
        };
        if named <= rule.max_records {
            return None;
        }
        self.batch_failures.fetch_add(1, Ordering::SeqCst);
        Some(rule.fault)
    }

    /// The status the answer `body` of a call of `content` gets under
    /// [`Faults::fail_logs_over`], if it is a logging export with too many entries (a JSON
    /// answer; the windowed export asks for JSON).
    pub(crate) fn log_fault(&self, content: Option<&str>, body: &[u8]) -> Option<u16> {
        let (max, status) = self.lock().log_rule?;
        if content != Some("log") {
            return None;
        }
        let entries = serde_json::from_slice::<Vec<serde_json::Value>>(body).ok()?.len();
        if entries <= max {
            return None;
        }
        self.log_failures.fetch_add(1, Ordering::SeqCst);
        Some(status)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BatchFault {
    /// One of each way big REDCap servers are known to fail a big records export: a 500
    /// "Allowed memory size … exhausted" (PyCap#80), a proxy's 504 (REDCapR#383), an empty 200
    /// (REDCapTidieR#212), records silently missing (REDCapR#400), columns cut off. What a
    /// pipeline's batched export should survive.
    pub fn known() -> Vec<BatchFault> {
        vec![
            BatchFault::Status { status: 500, message: "Allowed memory size of 134217728 bytes exhausted".into() },
            BatchFault::Status { status: 504, message: "Gateway Timeout".into() },
            BatchFault::Empty,
            BatchFault::DropRows,
            BatchFault::DropColumns,
        ]
    }

    /// Rewrites a JSON or (`csv`) CSV export body the way the fault breaks it (other bodies
    /// pass unchanged: the rule is for batched exports, which ask for JSON or CSV).
    pub(crate) fn mangle(&self, body: &[u8], records: &[String], csv: bool) -> Vec<u8> {
        if csv {
            return self.mangle_csv(body, records).unwrap_or_else(|| body.to_vec());
        }
        let Ok(mut rows) = serde_json::from_slice::<Vec<serde_json::Map<String, serde_json::Value>>>(body) else {
            return body.to_vec();
        };
        match self {
            BatchFault::DropRows => {
                if let Some(last) = records.last() {
                    // The id is the first column of every row REDCap sends.
                    rows.retain(|r| r.values().next().and_then(|v| v.as_str()) != Some(last.as_str()));
                }
            }
            BatchFault::DropColumns => {
                for row in &mut rows {
                    if let Some(k) = row.keys().next_back().cloned() {
                        row.remove(&k);
                    }
                }
            }
            BatchFault::Status { .. } | BatchFault::Empty => {}
        }
        serde_json::to_vec(&rows).unwrap_or_else(|_| body.to_vec())
    }

    fn mangle_csv(&self, body: &[u8], records: &[String]) -> Option<Vec<u8>> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
        let mut lines: Vec<csv::ByteRecord> = reader.byte_records().collect::<Result<_, _>>().ok()?;
        match self {
            BatchFault::DropRows => {
                let last = records.last()?.as_bytes();
                // The header stays; the id is the first column.
                let mut first = true;
                lines.retain(|l| std::mem::take(&mut first) || l.get(0) != Some(last));
            }
            BatchFault::DropColumns => {
                for l in &mut lines {
                    l.truncate(l.len().saturating_sub(1));
                }
            }
            BatchFault::Status { .. } | BatchFault::Empty => {}
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        for l in &lines {
            w.write_byte_record(l).ok()?;
        }
        w.into_inner().ok()
    }

    /// Whether the export still runs (its answer is then changed).
    pub(crate) fn runs_export(&self) -> bool {
        matches!(self, BatchFault::DropRows | BatchFault::DropColumns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counts_down() {
        let f = Faults::default();
        f.fail_next(2, 503);
        f.inject(Fault::HtmlPage, 1);
        assert_eq!(f.pending(), 3);
        assert!(matches!(f.next_call().1, Some(Fault::Status { status: 503, .. })));
        assert!(matches!(f.next_call().1, Some(Fault::Status { status: 503, .. })));
        assert_eq!(f.next_call().1, Some(Fault::HtmlPage));
        assert_eq!(f.next_call().1, None);
        assert_eq!(f.calls(), 4);
    }

    fn export(records: &[&str]) -> crate::params::Params {
        let mut p = crate::params::Params::default();
        p.push("content".into(), "record".into());
        for r in records {
            p.push("records[]".into(), (*r).into());
        }
        p
    }

    #[test]
    fn batch_rule_fails_only_exports_over_the_threshold() {
        let f = Faults::default();
        f.fail_batches_over(2, BatchFault::Empty);
        assert_eq!(f.batch_fault(&export(&["1", "2"])), None);
        assert_eq!(f.batch_fault(&export(&[])), None, "the id-only export names no records");
        assert_eq!(f.batch_fault(&export(&["1", "2", "3"])), Some(BatchFault::Empty));
        let mut import = export(&["1", "2", "3"]);
        import.push("data".into(), "[]".into());
        assert_eq!(f.batch_fault(&import), None, "imports are not exports");
        assert_eq!(f.batches_failed(), 1);
        assert_eq!(
            f.record_exports(),
            [vec!["1".to_owned(), "2".into()], vec![], vec!["1".into(), "2".into(), "3".into()]]
        );
        f.clear();
        assert_eq!(f.batch_fault(&export(&["1", "2", "3"])), None);
    }

    #[test]
    fn log_rule_fails_only_big_logging_answers() {
        let f = Faults::default();
        let log = Some("log");
        assert_eq!(f.log_fault(log, b"[1,2,3]"), None, "no rule");
        f.fail_logs_over(2, 504);
        assert_eq!(f.log_fault(log, b"[1,2]"), None);
        assert_eq!(f.log_fault(log, b"[1,2,3]"), Some(504));
        assert_eq!(f.log_fault(Some("record"), b"[1,2,3]"), None, "only logging exports");
        assert_eq!(f.logs_failed(), 1);
        f.clear();
        assert_eq!(f.log_fault(log, b"[1,2,3]"), None);
    }

    #[test]
    fn mangled_answers_lose_a_record_or_a_column() {
        let body = br#"[{"id":"1","a":"x","b":"y"},{"id":"2","a":"z","b":""}]"#;
        let ids = ["1".to_owned(), "2".to_owned()];
        let rows = BatchFault::DropRows.mangle(body, &ids, false);
        assert_eq!(rows, br#"[{"id":"1","a":"x","b":"y"}]"#);
        let cols = BatchFault::DropColumns.mangle(body, &ids, false);
        assert_eq!(cols, br#"[{"id":"1","a":"x"},{"id":"2","a":"z"}]"#);
        assert_eq!(BatchFault::DropRows.mangle(b"id\n1\n", &ids, false), b"id\n1\n", "not JSON: unchanged");
        let csv = b"id,a,b\n1,x,y\n2,z,\n";
        assert_eq!(BatchFault::DropRows.mangle(csv, &ids, true), b"id,a,b\n1,x,y\n");
        assert_eq!(BatchFault::DropColumns.mangle(csv, &ids, true), b"id,a\n1,x\n2,z\n");
    }
}
