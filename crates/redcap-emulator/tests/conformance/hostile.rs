//! Hostile input (issue 12, security): whatever a client sends, the emulator answers with a 4xx
//! and keeps serving — no crash, no hang, no unbounded memory.

use crate::common::*;

/// `depth` nested elements inside `wrap_open`…`wrap_close`.
fn nested(depth: usize, wrap_open: &str, wrap_close: &str) -> String {
    let mut s = String::with_capacity(depth * 7 + wrap_open.len() + wrap_close.len());
    s.push_str(wrap_open);
    for _ in 0..depth {
        s.push_str("<a>");
    }
    for _ in 0..depth {
        s.push_str("</a>");
    }
    s.push_str(wrap_close);
    s
}

/// 40,000 nested elements (~560 KB) in Create Project's `odm` used to overflow the stack and
/// abort the server; in an XML data import and a project XML loaded in-process as well.
#[test]
fn deeply_nested_xml_is_a_4xx_not_a_crash() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let odm = nested(40_000, "<?xml version=\"1.0\"?><ODM><Study>", "</Study></ODM>");
    let r = post(
        &emu.url(),
        &[
            ("token", &emu.super_token()),
            ("content", "project"),
            ("format", "json"),
            ("data", "[{\"project_title\":\"Deep\",\"purpose\":\"0\"}]"),
            ("odm", &odm),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nest"), "{}", r.text());
    let data = nested(40_000, "<records><item>", "</item></records>");
    let r = post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "xml"), ("data", &data)]);
    assert_eq!(r.status, 400, "{}", r.text());
    for content in ["metadata", "arm", "event", "dag", "user", "userRole"] {
        let r = post(
            &emu.url(),
            &[("token", &t), ("content", content), ("action", "import"), ("format", "xml"), ("data", &data)],
        );
        assert!((400..500).contains(&r.status), "{content}: {} {}", r.status, r.text());
    }
    // Deep JSON too.
    let json = format!("{}{}", "[".repeat(40_000), "]".repeat(40_000));
    let r = post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("data", &json)]);
    assert_eq!(r.status, 400, "{}", r.text());
    // In-process loading answers an error too.
    assert!(emu_load_error(&odm));
    // Still serving.
    post(&emu.url(), &[("token", &t), ("content", "version")]).expect(200, "14.5.2");
}

fn emu_load_error(xml: &str) -> bool {
    let emu = redcap_emulator::Emulator::builder().in_memory().build().expect("builds");
    emu.load_project_xml(xml).is_err()
}

mod limits {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use redcap_emulator::{Emulator, RunningEmulator, User};

    use crate::common::*;

    fn raw(emu: &RunningEmulator, request: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(emu.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        s
    }

    /// What the server sends before it closes the connection (or the read times out: `None`).
    fn read_to_close(s: &mut TcpStream) -> Option<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                Err(_) => return None,
            }
        }
    }

    /// Slow-loris: connections that never finish their headers are closed.
    #[test]
    fn slow_headers_are_cut_off() {
        let emu = Emulator::builder().in_memory().header_read_timeout(Duration::from_millis(300)).start().unwrap();
        let mut silent = raw(&emu, b"");
        let mut partial = raw(&emu, b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Ty");
        assert!(read_to_close(&mut silent).is_some(), "a silent connection is closed");
        assert!(read_to_close(&mut partial).is_some(), "a connection stuck in its headers is closed");
        // Normal requests are unaffected.
        post(&emu.url(), &[("token", &emu.super_token()), ("content", "version")]).expect(200, "14.5.2");
    }

    /// A declared Content-Length over the limit is answered at once, without waiting for a body.
    #[test]
    fn declared_oversize_bodies_get_an_early_413() {
        let emu = Emulator::builder().in_memory().max_form_bytes(1000).max_upload_bytes(1000).start().unwrap();
        for ct in ["application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ"] {
            let req = format!(
                "POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: 1000000000\r\n\r\ntoken="
            );
            let mut s = raw(&emu, req.as_bytes());
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).expect("an answer before the body is sent");
            assert_eq!(&buf, b"HTTP/1.1 413", "{ct}");
        }
    }

    fn multipart(parts: &[(&str, String)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in parts {
            body.extend_from_slice(
                format!("--B0undary\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(b"--B0undary--\r\n");
        body
    }

    /// Many parts, or text parts that are each under the limit but together over it, are refused.
    #[test]
    fn multipart_part_count_and_text_total_are_bounded() {
        let emu = Emulator::builder().in_memory().max_form_bytes(1000).max_parts(50).start().unwrap();
        let st = emu.super_token();
        let ct = "multipart/form-data; boundary=B0undary";
        let base = vec![("token", st.clone()), ("content", "version".to_owned())];
        post_raw(&emu.url(), ct, &multipart(&base)).expect(200, "14.5.2");
        let mut many = base.clone();
        many.extend((0..60).map(|_| ("x", String::new())));
        assert_eq!(post_raw(&emu.url(), ct, &multipart(&many)).status, 413, "60 parts");
        let mut big = base.clone();
        big.extend((0..3).map(|_| ("x", "y".repeat(600))));
        assert_eq!(post_raw(&emu.url(), ct, &multipart(&big)).status, 413, "3 × 600 bytes of text");
    }

    /// The data directory holds tokens and study data: owner-only; a crash's temp files go at start.
    #[cfg(unix)]
    #[test]
    fn data_dir_is_private_and_temp_files_are_cleaned() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let emu = Emulator::builder()
            .data_dir(&dir)
            .project_xml_file(fixture("redcapr-simple.xml"))
            .unwrap()
            .start()
            .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("emulator.sqlite")), 0o600);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.to_string_lossy().contains("emulator.sqlite-") {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
        // A token added by another process while the server runs (`token add`) works at once.
        let other = Emulator::builder().data_dir(&dir).build().unwrap();
        let pid = other.project_ids()[0];
        let t = other.add_user(pid, User::new("late")).unwrap();
        drop(other);
        post(&emu.url(), &[("token", &t), ("content", "version")]).expect(200, "14.5.2");
        // A near miss is no token.
        let mut near = t.clone().into_bytes();
        near[31] = if near[31] == b'A' { b'B' } else { b'A' };
        let near = String::from_utf8(near).unwrap();
        assert_eq!(post(&emu.url(), &[("token", &near), ("content", "version")]).status, 403);
        emu.shutdown();
        // A crash leaves a half-written upload behind; the next start removes it.
        let stale = dir.join("blobs").join("tmp").join("upload-stale");
        std::fs::write(&stale, b"half an upload").unwrap();
        let emu = Emulator::builder().data_dir(&dir).start().unwrap();
        assert!(!stale.exists(), "stale temp file removed at start-up");
        emu.shutdown();
    }
}
