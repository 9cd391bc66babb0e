//! Fault injection: latency, N failures with a status, reset after K bytes, truncation,
//! 200 with HTML, 429 with Retry-After.

use std::time::{Duration, Instant};

use crate::common::*;
use redcap_emulator::Fault;

#[test]
fn next_calls_fail_with_a_status_then_recover() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().fail_next(2, 503);
    for _ in 0..2 {
        let r = post(&emu.url(), &[("token", &t), ("content", "version"), ("returnFormat", "json")]);
        assert_eq!(r.status, 503);
        assert!(r.json()["error"].as_str().unwrap().contains("Injected failure"));
    }
    post(&emu.url(), &[("token", &t), ("content", "version")]).expect(200, "14.5.2");
    assert_eq!(emu.faults().calls(), 3);
    assert_eq!(emu.faults().pending(), 0);
}

#[test]
fn failed_calls_have_no_effect() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().inject(Fault::Status { status: 500, message: "boom".into() }, 1);
    let r = post(
        &emu.url(),
        &[("token", &t), ("content", "record"), ("format", "json"), ("data", r#"[{"record_id":"55"}]"#)],
    );
    r.expect(500, "{\"error\":\"boom\"}");
    post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("records[0]", "55")])
        .expect(200, "[]");
}

#[test]
fn html_page_with_200() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().inject(Fault::HtmlPage, 1);
    let r = post(&emu.url(), &[("token", &t), ("content", "version")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().starts_with("<!DOCTYPE html>"));
}

#[test]
fn rate_limited_with_retry_after() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().inject(Fault::RateLimited { retry_after_secs: 7 }, 1);
    let r = post(&emu.url(), &[("token", &t), ("content", "version"), ("returnFormat", "csv")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    assert!(r.text().starts_with("ERROR: "));
}

#[test]
fn latency_delays_calls() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().set_latency(Duration::from_millis(40));
    let start = Instant::now();
    post(&emu.url(), &[("token", &t), ("content", "version")]).expect(200, "14.5.2");
    assert!(start.elapsed() >= Duration::from_millis(40));
    emu.faults().clear();
}

fn upload_big(emu: &redcap_emulator::RunningEmulator, t: &str) -> String {
    let big: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    post_multipart(
        &emu.url(),
        &[("token", t), ("content", "fileRepository"), ("action", "import")],
        Some(("big.bin", &big)),
    )
    .expect(200, "");
    let l =
        post(&emu.url(), &[("token", t), ("content", "fileRepository"), ("action", "list"), ("format", "json")]).json();
    l[0]["doc_id"].to_string()
}

#[test]
fn connection_reset_after_k_bytes() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let doc = upload_big(&emu, &t);
    emu.faults().inject(Fault::ResetAfter { bytes: 1000 }, 1);
    let r =
        try_post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "export"), ("doc_id", &doc)]);
    assert!(r.is_err(), "the body must not arrive whole: {:?}", r.map(|r| r.body.len()));
    // The next call is fine.
    let r = post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "export"), ("doc_id", &doc)]);
    assert_eq!(r.body.len(), 200_000);
}

#[test]
fn truncated_body_under_its_content_length() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    emu.faults().inject(Fault::Truncate { bytes: 3 }, 1);
    let r = try_post(&emu.url(), &[("token", &t), ("content", "project"), ("format", "json")]);
    assert!(r.is_err(), "a short body must be a transport error: {:?}", r.map(|r| r.text()));
    let doc = upload_big(&emu, &t);
    emu.faults().inject(Fault::Truncate { bytes: 50_000 }, 1);
    let r =
        try_post(&emu.url(), &[("token", &t), ("content", "fileRepository"), ("action", "export"), ("doc_id", &doc)]);
    assert!(r.is_err());
}

#[test]
fn redirect_with_location_without_running_the_call() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let moved = "https://redcap.example.org/redcap/api/";
    emu.faults().inject(Fault::Redirect { status: 301, location: moved.into() }, 1);
    emu.faults().inject(Fault::Redirect { status: 307, location: moved.into() }, 1);
    let import =
        [("token", t.as_str()), ("content", "record"), ("format", "json"), ("data", r#"[{"record_id":"66"}]"#)];
    for status in [301, 307] {
        let r = post_no_redirect(&emu.url(), &import);
        assert_eq!(r.status, status);
        assert_eq!(r.header("location").as_deref(), Some(moved));
        assert!(r.text().contains("The document has moved"));
    }
    post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("records[0]", "66")])
        .expect(200, "[]");
    assert!(!Fault::Redirect { status: 302, location: String::new() }.runs_call());
}
