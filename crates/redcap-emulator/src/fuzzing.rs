//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a stable API). Each
//! runs one parser on arbitrary bytes the way a request would reach it; any panic, overflow or
//! hang is a bug, an `Err` is the expected answer to garbage.

use std::sync::{Mutex, OnceLock};

use crate::auth::TokenGen;
use crate::handlers::{self, Env};
use crate::params::Params;
use crate::server::Limits;
use crate::store::Store;

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
/// longitudinal project with repeating instruments, then an export of what was imported.
pub fn record_import(data: &[u8]) {
    static STORE: OnceLock<Mutex<(Store, String, tempfile::TempDir)>> = OnceLock::new();
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let cell = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store =
            Store::open(&dir.path().join("fuzz.sqlite"), dir.path().join("blobs"), TokenGen::seeded(1)).expect("store");
        let loaded = crate::odm::parse(include_str!("../fixtures/pycap-doctest_project.xml")).expect("fixture");
        let pid = store.insert_project(loaded).expect("project");
        let token = store.set_project_user(pid, "admin", &crate::Rights::full(), None, None).expect("token");
        Mutex::new((store, token, dir))
    });
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    let (store, token, _) = &mut *guard;
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
    let _ = handlers::handle(store, &env, p);
}
