//! 64 concurrent clients, each making several calls; every answer must be right. (No timing
//! assertions: speed is measured in the benchmark.)

use crate::common::*;

#[test]
fn sixty_four_concurrent_clients() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let url = emu.url();
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let (url, t) = (url.clone(), t.clone());
            std::thread::spawn(move || {
                let rec = format!("c{i}");
                let name = format!("Client {i}");
                let data = serde_json::json!([{"record_id": rec, "name_first": name}]).to_string();
                post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)])
                    .expect(200, "{\"count\":1}");
                let v = post(
                    &url,
                    &[
                        ("token", &t),
                        ("content", "record"),
                        ("format", "json"),
                        ("records[0]", &rec),
                        ("fields[0]", "name_first"),
                    ],
                )
                .json();
                assert_eq!(v, serde_json::json!([{"name_first": name}]));
                post(&url, &[("token", &t), ("content", "version")]).expect(200, "14.5.2");
                let body = format!("file of client {i}\n").repeat(100);
                let file = format!("f{i}.txt");
                post_multipart(
                    &url,
                    &[("token", &t), ("content", "fileRepository"), ("action", "import")],
                    Some((&file, body.as_bytes())),
                )
                .expect(200, "");
                let list =
                    post(&url, &[("token", &t), ("content", "fileRepository"), ("action", "list"), ("format", "json")])
                        .json();
                let doc =
                    list.as_array().unwrap().iter().find(|e| e["name"] == file.as_str()).expect("listed")["doc_id"]
                        .to_string();
                post(&url, &[("token", &t), ("content", "fileRepository"), ("action", "export"), ("doc_id", &doc)])
                    .expect(200, &body);
                let all =
                    post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("fields[0]", "record_id")])
                        .json();
                assert!(all.as_array().unwrap().len() >= 6, "the five records plus this client's");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread succeeds");
    }
    let all =
        post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("fields[0]", "record_id")]).json();
    assert_eq!(all.as_array().unwrap().len(), 5 + 64);
    let files =
        post(&url, &[("token", &t), ("content", "fileRepository"), ("action", "list"), ("format", "json")]).json();
    assert_eq!(files.as_array().unwrap().len(), 64);
}
