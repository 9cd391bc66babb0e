//! The survey methods and Export PDF through the library's clients (blocking and async) against
//! the emulator, on REDCapR's `survey` project (classic, three surveys, e-mail field `email`).

use std::path::Path;

use redcap::{ErrorKind, Method, instrument, survey};
use redcap_emulator::{Emulator, RunningEmulator};

fn emulator() -> RunningEmulator {
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/redcap-emulator/fixtures/redcapr-survey.xml");
    Emulator::builder().in_memory().project_xml_file(xml).expect("fixture").start().expect("emulator")
}

/// Calls through either client.
trait Call {
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, redcap::Error>;
}

struct Blocking(redcap::blocking::Client);

impl Call for Blocking {
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, redcap::Error> {
        self.0.call(m)
    }
}

struct Async(redcap::asynchronous::Client, tokio::runtime::Runtime);

impl Call for Async {
    fn call<M: Method>(&self, m: &M) -> Result<M::Output, redcap::Error> {
        self.1.block_on(self.0.call(m))
    }
}

const PMQ: &str = "participant_morale_questionnaire";

fn scenario(api: &impl Call, base: &str) {
    // A link under the emulator's address, the same on every call (REDCapR's recorded link:
    // `…/surveys/?s=8KuzSLMHf6`).
    let link = api.call(&survey::export_link::Request::new("1", PMQ)).expect("link");
    let hash = link.strip_prefix(&format!("{base}surveys/?s=")).expect("under the emulator's URL");
    assert_eq!(hash.len(), 10);
    assert_eq!(api.call(&survey::export_link::Request::new("1", PMQ)).unwrap(), link);
    let access = api.call(&survey::export_access_code::Request::new("1", PMQ)).unwrap();
    assert_eq!(access.len(), 9);
    let ret = api.call(&survey::export_return_code::Request::new("1", PMQ)).unwrap();
    assert_eq!(ret.len(), 8);

    // The participant list decodes into the generated rows, its codes the same as above.
    let rows = api.call(&survey::export_participant_list::Request::new(PMQ)).unwrap().into_vec();
    assert_eq!(rows.len(), 2);
    let first = &rows[0];
    assert_eq!(first.record.as_deref(), Some("1"));
    assert_eq!(first.email.as_deref(), Some("aaa@bbb.com"));
    assert_eq!(first.survey_access_code.as_deref(), Some(access.as_str()));
    assert_eq!(first.survey_link.as_deref(), Some(link.as_str()));
    assert_eq!(first.response_status, Some(1), "[not completed] in the fixture");

    // REDCap's errors arrive as API errors with the server's text.
    let e = api.call(&survey::export_link::Request::new("-1", PMQ)).unwrap_err();
    assert_eq!(e.api().map(|a| a.message()), Some("The record '-1' does not exist"), "{e}");
    let e = api.call(&survey::export_link::Request::new("1", "completion_data")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    let e = api.call(&survey::export_queue_link::Request::new("1")).unwrap_err();
    assert!(e.to_string().contains("Survey Queue is not enabled"), "{e}");

    // Export PDF: a PDF named in the headers, with the record's values in its text.
    let pdf = api.call(&instrument::export_pdf::Request::new().record("1").instrument("prescreening_survey")).unwrap();
    assert_eq!(pdf.head.mime.as_deref(), Some("application/pdf"));
    assert!(pdf.head.server_name.as_deref().is_some_and(|n| n.ends_with(".pdf")), "{:?}", pdf.head);
    assert!(pdf.bytes.starts_with(b"%PDF-1.3\n"));
    let doc = lopdf::Document::load_mem(&pdf.bytes).expect("a PDF");
    let text = doc.extract_text(&[1]).unwrap();
    assert!(text.contains("aaa@bbb.com") && text.contains("2018-03-06"), "{text}");
    let compact = api
        .call(
            &instrument::export_pdf::Request::new().record("2").instrument("prescreening_survey").compact_display(true),
        )
        .unwrap();
    let text = lopdf::Document::load_mem(&compact.bytes).unwrap().extract_text(&[1]).unwrap();
    assert!(text.contains("ccc@ddd.com"), "{text}");
    let all = api.call(&instrument::export_pdf::Request::new().all_records(true)).unwrap();
    let doc = lopdf::Document::load_mem(&all.bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).unwrap();
    assert!(text.contains("aaa@bbb.com") && text.contains("ccc@ddd.com"));
}

#[test]
fn blocking_client() {
    let emu = emulator();
    let token = emu.token(emu.project_ids()[0], "admin").unwrap();
    let client = redcap::blocking::Client::builder(emu.url(), &token).allow_http(true).build().unwrap();
    scenario(&Blocking(client), emu.url().strip_suffix("api/").unwrap());
}

#[test]
fn async_client() {
    let emu = emulator();
    let token = emu.token(emu.project_ids()[0], "admin").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = redcap::asynchronous::Client::builder(emu.url(), &token).allow_http(true).build().unwrap();
    scenario(&Async(client, rt), emu.url().strip_suffix("api/").unwrap());
}
