//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API). Each
//! runs one parser on arbitrary bytes the way a request would reach it; any panic, overflow or
//! hang is a bug, an `Err` is the expected answer to garbage.

use std::sync::OnceLock;

use crate::auth::TokenGen;
use crate::handlers::{self, Env, Reply};
use crate::params::Params;
use crate::server::Limits;
use crate::store::Store;
use crate::stream::Piece;

/// Urlencoded form parsing, then the accessors every handler uses.
pub fn form(data: &[u8]) {
    let p = Params::from_urlencoded(data);
    let _ = (p.format(), p.error_format(), p.list("records"), p.flag("rawOrLabel"), p.has("data"));
}

/// Multipart parsing with small limits (file parts go to a temp directory and are dropped).
pub fn multipart(data: &[u8]) {
    static RT: OnceLock<(tokio::runtime::Runtime, tempfile::TempDir)> = OnceLock::new();
    let (rt, dir) = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        (rt, tempfile::tempdir().expect("temp dir"))
    });
    // The first line picks the boundary, so the fuzzer can find well-formed bodies.
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), data[i + 1..].to_vec()),
        None => ("B".to_owned(), data.to_vec()),
    };
    let limits = Limits { max_form_bytes: 1 << 16, max_upload_bytes: 1 << 16, max_parts: 64, ..Limits::default() };
    let ct = format!("multipart/form-data; boundary={boundary}");
    let _ = rt.block_on(crate::server::read_multipart(&limits, dir.path(), &ct, axum::body::Body::from(body)));
}

/// The project XML loader (what `--project`, Create Project's `odm` and `load_project_xml` run).
pub fn project_xml(data: &[u8]) {
    if let Ok(xml) = std::str::from_utf8(data) {
        let _ = crate::odm::parse(xml);
    }
}

/// Row parsing of a data import; the first byte picks json, csv or xml.
pub fn data_rows(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = ["json", "csv", "xml"][usize::from(sel % 3)];
    let _ = crate::input::rows(format, text, if sel & 4 == 0 { b',' } else { b';' });
}

/// A whole Import Records call (flat or eav, json/csv/xml, each overwrite behaviour) into a
/// longitudinal project with repeating instruments, then an export of what was imported (its
/// body is returned). Each
/// run gets a fresh store, so a crash reproduces from its own input alone (a shared store made
/// a run depend on every run before it).
pub fn record_import(data: &[u8]) -> Vec<u8> {
    let Some((&sel, rest)) = data.split_first() else { return Vec::new() };
    let Ok(text) = std::str::from_utf8(rest) else { return Vec::new() };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store =
        Store::open(&dir.path().join("fuzz.sqlite"), dir.path().join("blobs"), TokenGen::seeded(1)).expect("store");
    let loaded = crate::odm::parse(include_str!("../fixtures/pycap-doctest_project.xml")).expect("fixture");
    let pid = store.insert_project(loaded).expect("project");
    let token = store.set_project_user(pid, "admin", &crate::Rights::full(), None, None).expect("token");
    let store = &mut store;
    let env = Env { version: "14.5.2".into(), content_disposition: true, base_url: None };
    let format = ["json", "csv", "xml"][usize::from(sel % 3)];
    let mut p = Params::default();
    for (k, v) in [
        ("token", token.as_str()),
        ("content", "record"),
        ("format", format),
        ("type", if sel & 4 == 0 { "flat" } else { "eav" }),
        ("overwriteBehavior", if sel & 8 == 0 { "normal" } else { "overwrite" }),
        ("forceAutoNumber", if sel & 16 == 0 { "false" } else { "true" }),
        ("data", text),
    ] {
        p.push(k.to_owned(), v.to_owned());
    }
    let _ = handlers::handle(store, &env, p);
    let mut p = Params::default();
    for (k, v) in [("token", token.as_str()), ("content", "record"), ("format", format)] {
        p.push(k.to_owned(), v.to_owned());
    }
    handlers::handle(store, &env, p).map(body).unwrap_or_default()
}

/// A reply's bytes. A record export streams: its renderer runs only when the body is read, so
/// the body is read here (dropping the reply would skip the renderer the fuzzer should reach).
fn body(reply: Reply) -> Vec<u8> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    match reply {
        Reply::Body { body, .. } => body,
        Reply::Stream { producer, .. } => {
            let rt = RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));
            rt.block_on(async {
                let mut rx = crate::stream::spawn(producer);
                let mut out = Vec::new();
                while let Some(piece) = rx.recv().await {
                    match piece {
                        Piece::Chunk(b) => out.extend_from_slice(&b),
                        Piece::Last(b) => {
                            out.extend_from_slice(&b);
                            break;
                        }
                        Piece::Failed(_) => break,
                    }
                }
                out
            })
        }
        Reply::Download { body, .. } => body,
        Reply::File { .. } | Reply::Empty => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::record_import;

    /// Each run starts from the fixture alone: a record imported by an earlier run is not in a
    /// later run's export (the store was shared across runs), and the export is rendered.
    #[test]
    fn record_import_runs_are_independent_and_reach_the_renderer() {
        let first =
            record_import(b"\x00[{\"record_id\":\"77\",\"redcap_event_name\":\"event_1_arm_1\",\"field_1\":\"1\"}]");
        let first = String::from_utf8(first).unwrap();
        assert!(first.contains("\"record_id\":\"77\""), "{first}");
        let second = String::from_utf8(record_import(b"\x00[]")).unwrap();
        assert!(second.starts_with('[') && second.contains("\"record_id\":\"1\""), "{second}");
        assert!(!second.contains("\"77\""), "a record from an earlier run: {second}");
    }

    /// The eav seed of `cargo xtask fuzz` (`\x0c`: JSON, eav, overwrite) imports its value.
    #[test]
    fn eav_seed_selects_json_eav() {
        let seed = b"\x0c[{\"record\":\"4\",\"redcap_event_name\":\"event_1_arm_1\",\"field_name\":\"field_1\",\"value\":\"0\"}]";
        let out = String::from_utf8(record_import(seed)).unwrap();
        assert!(out.contains("\"record_id\":\"4\"") && out.contains("\"field_1\":\"0\""), "{out}");
    }
}
