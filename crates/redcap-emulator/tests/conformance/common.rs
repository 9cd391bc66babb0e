//! Test helpers: start an emulator on a fixture, and a tiny blocking HTTP client (ureq).

use std::path::PathBuf;

use redcap_emulator::{Emulator, RunningEmulator};

/// A fixture project file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// An in-memory emulator with these fixtures, deterministic tokens.
pub fn start(fixtures: &[&str]) -> RunningEmulator {
    let mut b = Emulator::builder().in_memory().deterministic_tokens(7);
    for f in fixtures {
        b = b.project_xml_file(fixture(f)).expect("fixture loads");
    }
    b.start().expect("emulator starts")
}

/// The first project's admin token.
pub fn admin(emu: &RunningEmulator) -> String {
    emu.token(emu.project_ids()[0], "admin").expect("admin token")
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts status and exact body.
    #[track_caller]
    pub fn expect(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.text().as_str()), (status, body));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn read(mut r: http::Response<ureq::Body>) -> Result<Resp, ureq::Error> {
    let status = r.status().as_u16();
    let headers =
        r.headers().iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let body = r.body_mut().with_config().limit(1 << 30).read_to_vec()?;
    Ok(Resp { status, headers, body })
}

/// POSTs urlencoded form fields.
pub fn post(url: &str, fields: &[(&str, &str)]) -> Resp {
    try_post(url, fields).expect("request succeeds")
}

/// POSTs urlencoded form fields; transport errors are returned.
pub fn try_post(url: &str, fields: &[(&str, &str)]) -> Result<Resp, ureq::Error> {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let r = agent().post(url).header("Content-Type", "application/x-www-form-urlencoded").send(body.as_bytes())?;
    read(r)
}

/// POSTs urlencoded form fields without following redirects.
pub fn post_no_redirect(url: &str, fields: &[(&str, &str)]) -> Resp {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let r = agent
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .expect("request succeeds");
    read(r).expect("body reads")
}

/// POSTs multipart/form-data with an optional `file` part (name, bytes).
pub fn post_multipart(url: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Resp {
    let boundary = "----redcapEmulatorTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = agent()
        .post(url)
        .header("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
        .send(&body[..])
        .expect("request succeeds");
    read(r).expect("body reads")
}

/// POSTs a raw body with a content type.
pub fn post_raw(url: &str, content_type: &str, body: &[u8]) -> Resp {
    let r = agent().post(url).header("Content-Type", content_type).send(body).expect("request succeeds");
    read(r).expect("body reads")
}

/// GETs a URL.
pub fn get(url: &str) -> Resp {
    read(agent().get(url).call().expect("request succeeds")).expect("body reads")
}

/// Parses a CSV body into header + rows.
pub fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let h = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r.records().map(|x| x.unwrap().iter().map(String::from).collect()).collect();
    (h, rows)
}
