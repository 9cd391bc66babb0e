//! Exports larger than one streamed chunk: the same rows as record-by-record exports, in
//! natural record order, in every format; one consistent snapshot however long the client takes
//! to read; writes go on while an export streams. (No timing assertions: speed is measured in
//! the benchmark.)

use std::collections::BTreeSet;
use std::io::Read;

use crate::common::*;

/// Imports records `1..=n` with a DAG each and `comments` of `len` bytes.
fn import_many(url: &str, t: &str, n: usize, len: usize) {
    let rows: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            serde_json::json!({
                "record_id": i.to_string(),
                "name_first": format!("First {i}"),
                "race___2": if i % 2 == 0 { "1" } else { "0" },
                "redcap_data_access_group": if i % 3 == 0 { "dag_2" } else { "dag_1" },
                "comments": format!("{i:06}").repeat(len / 6),
            })
        })
        .collect();
    let data = serde_json::Value::Array(rows).to_string();
    post(url, &[("token", t), ("content", "record"), ("format", "json"), ("data", &data)])
        .expect(200, &format!("{{\"count\":{n}}}"));
}

#[test]
fn a_streamed_export_has_the_rows_of_record_by_record_exports() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let url = emu.url();
    // The fixture's 5 records plus 1,000 more: several steps of records and of chunks.
    import_many(&url, &t, 1005, 600);
    let all =
        post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("exportDataAccessGroups", "true")]);
    assert!(all.header("content-length").is_none(), "a body this size streams (chunked)");
    let rows = all.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1005);
    let ids: Vec<u64> = rows.iter().map(|r| r["record_id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (1..=1005).collect::<Vec<_>>(), "natural order, not text order");
    for i in [1usize, 5, 6, 200, 201, 999, 1005] {
        let one = post(
            &url,
            &[
                ("token", &t),
                ("content", "record"),
                ("format", "json"),
                ("exportDataAccessGroups", "true"),
                ("records[0]", &i.to_string()),
                ("records[1]", "no-such-record"),
            ],
        )
        .json();
        assert_eq!(one, serde_json::json!([rows[i - 1].clone()]), "record {i}");
    }
    // CSV and XML carry the same rows.
    let csv = post(&url, &[("token", &t), ("content", "record"), ("format", "csv")]).text();
    let (header, csv_rows) = csv_rows(&csv);
    assert_eq!(csv_rows.len(), 1005);
    let comments = header.iter().position(|h| h == "comments").unwrap();
    assert_eq!(csv_rows[1004][comments], rows[1004]["comments"].as_str().unwrap());
    let xml = post(&url, &[("token", &t), ("content", "record"), ("format", "xml")]).text();
    assert_eq!(xml.matches("<item>").count(), 1005);
    assert!(xml.ends_with("</records>\n"));
    // EAV lists each record's DAG once, across step boundaries too.
    let eav = post(
        &url,
        &[
            ("token", &t),
            ("content", "record"),
            ("format", "json"),
            ("type", "eav"),
            ("exportDataAccessGroups", "true"),
        ],
    )
    .json();
    let dags = eav.as_array().unwrap().iter().filter(|r| r["field_name"] == "redcap_data_access_group").count();
    assert_eq!(dags, 1005);
    // A filter over the streamed rows.
    let even = post(
        &url,
        &[
            ("token", &t),
            ("content", "record"),
            ("format", "json"),
            ("fields[0]", "record_id"),
            ("filterLogic", "[race(2)] = '1'"),
        ],
    )
    .json();
    assert_eq!(even.as_array().unwrap().len(), rows.iter().filter(|r| r["race___2"] == "1").count());
}

#[test]
fn an_export_is_one_snapshot_and_writes_go_on_while_it_streams() {
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let url = emu.url();
    // About 24 MB: far more than the chunks in flight and the socket buffers hold.
    import_many(&url, &t, 1200, 20_000);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", t.as_str()), ("content", "record"), ("format", "csv")])
        .finish();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut resp = agent
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .expect("export starts");
    let mut reader = resp.body_mut().with_config().limit(1 << 30).reader();
    let mut head = vec![0u8; 64 << 10];
    reader.read_exact(&mut head).expect("first bytes");
    // While the export is paused mid-body: a write to its last record and to one in another
    // step (a large export's steps are read by two connections, the even and the odd ones),
    // and a deletion.
    let data = serde_json::json!([
        {"record_id": "1200", "name_first": "Changed"},
        {"record_id": "1000", "name_first": "Changed"}
    ])
    .to_string();
    post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)])
        .expect(200, "{\"count\":2}");
    post(&url, &[("token", &t), ("content", "record"), ("action", "delete"), ("records[0]", "1199")]).expect(200, "1");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the rest");
    head.extend_from_slice(&rest);
    let text = String::from_utf8(head).unwrap();
    let (header, rows) = csv_rows(&text);
    assert_eq!(rows.len(), 1200, "the deletion came after the export began");
    let name = header.iter().position(|h| h == "name_first").unwrap();
    assert_eq!(rows[1199][name], "First 1200", "the export shows the state it began with");
    assert_eq!(rows[999][name], "First 1000", "in every step");
    let id = header.iter().position(|h| h == "record_id").unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r[id].clone()).collect();
    assert_eq!(ids, (1..=1200).map(|i| i.to_string()).collect::<Vec<_>>(), "in order");
    // And the writes are there for the next export.
    let now = post(
        &url,
        &[
            ("token", &t),
            ("content", "record"),
            ("format", "json"),
            ("records[0]", "1200"),
            ("records[1]", "1199"),
            ("fields[0]", "name_first"),
        ],
    )
    .json();
    assert_eq!(now, serde_json::json!([{"name_first": "Changed"}]));
}

#[test]
fn a_project_document_that_fails_in_its_data_loads_nothing() {
    // The data is read record by record after the definition is stored: a failure in the last
    // record (a file whose base64 does not decode) must still roll the whole load back.
    let emu = redcap_emulator::Emulator::builder().in_memory().build().expect("emulator");
    let xml = std::fs::read_to_string(fixture("redcapr-simple.xml")).unwrap();
    let last = xml.rfind("<![CDATA[").expect("the last record has a file") + "<![CDATA[".len();
    let broken = format!("{}!!not base64!!{}", &xml[..last], &xml[last..]);
    let err = emu.load_project_xml(&broken).expect_err("bad base64 is refused");
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(emu.project_ids().is_empty(), "nothing of the failed load remains");
    let id = emu.load_project_xml(&xml).expect("the intact document loads");
    assert_eq!(emu.project_ids(), vec![id]);
}

/// The rows of the full export `full` that an export of the columns of `ids` has: those
/// columns of each row that has them all, without repeating-instrument rows.
fn projected(full: &serde_json::Value, ids: &serde_json::Value) -> Vec<serde_json::Value> {
    let cols: Vec<&String> = ids[0].as_object().unwrap().keys().collect();
    full.as_array()
        .unwrap()
        .iter()
        .filter(|r| cols.iter().all(|c| r.get(c.as_str()).is_some()))
        .filter(|r| r.get("redcap_repeat_instrument").is_none_or(|v| v == ""))
        .map(|r| serde_json::Value::Object(cols.iter().map(|c| ((*c).clone(), r[c.as_str()].clone())).collect()))
        .collect()
}

#[test]
fn an_id_only_export_reads_no_values_and_has_the_rows_of_the_full_one() {
    // The batched export's id list takes the record id alone: the emulator answers it from the
    // row keys. Its rows must be those of the full export (the pseudo-columns included).
    for f in ["redcapr-longitudinal.xml", "redcapr-repeating-instruments.xml", "redcapr-dag.xml", "redcapr-simple.xml"]
    {
        let emu = start(&[f]);
        let t = admin(&emu);
        let url = emu.url();
        let common =
            [("token", t.as_str()), ("content", "record"), ("format", "json"), ("exportDataAccessGroups", "true")];
        let full = post(&url, &common).json();
        let mut args = common.to_vec();
        let rid = full[0].as_object().unwrap().keys().next().unwrap().clone();
        args.push(("fields[0]", &rid));
        let ids = post(&url, &args).json();
        assert_eq!(ids.as_array().unwrap(), &projected(&full, &ids), "{f}");
    }
}

#[test]
fn an_id_list_of_many_records_with_repeats_has_the_rows_of_the_full_export() {
    // Records enough for several steps, in projects with events and with repeating instruments:
    // an id list of the whole project reads every row key in one walk of the index, one of
    // `records=` looks each record up; both must have the full export's rows, in its order.
    for f in ["redcapr-longitudinal.xml", "redcapr-repeating-instruments.xml"] {
        let emu = start(&[f]);
        let t = admin(&emu);
        let url = emu.url();
        let common = [("token", t.as_str()), ("content", "record"), ("format", "json")];
        let seed = post(&url, &common).json();
        let rid = seed[0].as_object().unwrap().keys().next().unwrap().clone();
        // The fixture's rows again under new record names, until there are over 400 records.
        let seed_records = seed.as_array().unwrap().iter().map(|r| r[&rid].as_str()).collect::<BTreeSet<_>>().len();
        let mut copies = Vec::new();
        for k in 0..=400 / seed_records {
            for row in seed.as_array().unwrap() {
                let mut r = row.clone();
                r[&rid] = serde_json::json!(format!("{}{k:03}", row[&rid].as_str().unwrap()));
                copies.push(r);
            }
        }
        let data = serde_json::Value::Array(copies).to_string();
        let imported = post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)]);
        assert_eq!(imported.status, 200, "{f}: {}", imported.text());
        let full = post(&url, &common).json();
        let mut args = common.to_vec();
        args.push(("fields[0]", &rid));
        let ids = post(&url, &args).json();
        let records: BTreeSet<&str> = ids.as_array().unwrap().iter().map(|r| r[&rid].as_str().unwrap()).collect();
        assert!(records.len() > 400, "{f}: {} records", records.len());
        assert_eq!(ids.as_array().unwrap(), &projected(&full, &ids), "{f}");
        // Every other record, by name: looked up, not walked.
        let named: Vec<String> = records.iter().step_by(2).map(|r| (*r).to_owned()).collect::<Vec<_>>();
        let keys: Vec<String> = (0..named.len()).map(|i| format!("records[{i}]")).collect();
        let mut some = args.clone();
        some.extend(keys.iter().map(String::as_str).zip(named.iter().map(String::as_str)));
        let some = post(&url, &some).json();
        let wanted: Vec<serde_json::Value> =
            projected(&full, &ids).into_iter().filter(|r| named.iter().any(|n| r[&rid] == n.as_str())).collect();
        assert!(named.len() > 200, "{f}: more than one step by name");
        assert_eq!(some.as_array().unwrap(), &wanted, "{f}");
    }
}

#[test]
fn a_new_record_written_twice_in_one_import_keeps_one_value_per_field() {
    // New rows are written without a delete first; the same row twice in one request must
    // still end with the last value only.
    let emu = start(&["redcapr-simple.xml"]);
    let t = admin(&emu);
    let url = emu.url();
    let data = serde_json::json!([
        {"record_id": "n1", "name_first": "A", "race___1": "1"},
        {"record_id": "n1", "name_first": "B", "race___2": "1"}
    ])
    .to_string();
    post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)])
        .expect(200, "{\"count\":1}");
    let eav =
        post(&url, &[("token", &t), ("content", "record"), ("format", "json"), ("type", "eav"), ("records[0]", "n1")])
            .json();
    let of = |f: &str| -> Vec<String> {
        eav.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["field_name"] == f)
            .map(|r| r["value"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(of("name_first"), ["B"]);
    assert_eq!(of("record_id"), ["n1"]);
    assert_eq!(of("race"), ["2"], "the second row's checkbox state replaces the first's");
}

#[test]
fn a_new_record_whose_repeating_row_comes_first_stores_its_id_once() {
    // The repeating row writes the record id into the event's base row too; the base row that
    // follows in the same request must replace it, not add a second copy. Exports build the id
    // from the row's key, so the stored rows are read from the data directory.
    let dir = tempfile::tempdir().unwrap();
    let emu = redcap_emulator::Emulator::builder()
        .data_dir(dir.path())
        .deterministic_tokens(7)
        .project_xml_file(fixture("redcapr-repeating-instruments.xml"))
        .expect("fixture loads")
        .start()
        .expect("emulator starts");
    let t = admin(&emu);
    let data = serde_json::json!([
        {"record_id": "n1", "redcap_event_name": "event_1_arm_1", "redcap_repeat_instrument": "bp",
         "redcap_repeat_instance": "1", "bp_systolic": "120"},
        {"record_id": "n1", "redcap_event_name": "event_1_arm_1", "redcap_repeat_instrument": "",
         "redcap_repeat_instance": "", "first_name": "Ann"}
    ])
    .to_string();
    post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "json"), ("data", &data)])
        .expect(200, "{\"count\":1}");
    let db = rusqlite::Connection::open(dir.path().join("emulator.sqlite")).unwrap();
    let ids: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM data WHERE record = 'n1' AND instrument = '' AND field = 'record_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ids, 1, "one record id in the base row");
}

/// Project XML of one form with `fields` text fields (the record id first) and `records`
/// records with every field filled.
fn wide_project_xml(fields: usize, records: usize) -> String {
    use std::fmt::Write as _;
    let names: Vec<String> =
        std::iter::once("record_id".to_owned()).chain((1..fields).map(|i| format!("f{i:02}"))).collect();
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" ?><ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:redcap="https://projectredcap.org" ODMVersion="1.3.1" FileType="Snapshot" SourceSystem="REDCap" SourceSystemVersion="14.5.2"><Study OID="Project.Wide"><GlobalVariables><StudyName>Wide</StudyName><redcap:RecordAutonumberingEnabled>0</redcap:RecordAutonumberingEnabled></GlobalVariables><MetaDataVersion OID="Metadata.Wide" Name="Wide" redcap:RecordIdField="record_id"><FormDef OID="Form.data" Name="data" Repeating="No" redcap:FormName="data">"#,
    );
    for n in &names {
        write!(x, r#"<ItemGroupRef ItemGroupOID="data.{n}" Mandatory="No"/>"#).unwrap();
    }
    x.push_str("</FormDef>");
    for n in &names {
        write!(x, r#"<ItemGroupDef OID="data.{n}" Name="data" Repeating="No"><ItemRef ItemOID="{n}" Mandatory="No" redcap:Variable="{n}"/></ItemGroupDef>"#).unwrap();
    }
    for n in &names {
        write!(x, r#"<ItemDef OID="{n}" Name="{n}" DataType="text" Length="999" redcap:Variable="{n}" redcap:FieldType="text"><Question><TranslatedText>{n}</TranslatedText></Question></ItemDef>"#).unwrap();
    }
    x.push_str(
        r#"</MetaDataVersion></Study><ClinicalData StudyOID="Project.Wide" MetaDataVersionOID="Metadata.Wide">"#,
    );
    for r in 1..=records {
        write!(x, r#"<SubjectData SubjectKey="{r}" redcap:RecordIdField="record_id"><FormData FormOID="Form.data" FormRepeatKey="1"><ItemGroupData ItemGroupOID="data.record_id" ItemGroupRepeatKey="1">"#).unwrap();
        for (i, n) in names.iter().enumerate() {
            let v = if i == 0 { r.to_string() } else { format!("value {r}-{i}") };
            write!(x, r#"<ItemData ItemOID="{n}" Value="{v}"/>"#).unwrap();
        }
        x.push_str("</ItemGroupData></FormData></SubjectData>");
    }
    x.push_str("</ClinicalData></ODM>");
    x
}

#[test]
fn a_large_load_leaves_no_large_log_beside_the_database() {
    // A load this size writes the project through SQLite's write-ahead log, which kept its
    // size on disk (316 MiB beside a 337 MiB database at 100,000 records): it is cut back.
    let dir = tempfile::tempdir().unwrap();
    let xml = wide_project_xml(26, 4_000);
    let emu = redcap_emulator::Emulator::builder()
        .data_dir(dir.path())
        .deterministic_tokens(7)
        .project_xml(xml)
        .start()
        .expect("emulator starts");
    let wal = std::fs::metadata(dir.path().join("emulator.sqlite-wal")).map(|m| m.len()).unwrap_or(0);
    let db = std::fs::metadata(dir.path().join("emulator.sqlite")).unwrap().len();
    assert!(wal < db / 10, "a {wal}-byte log beside a {db}-byte database");
    // Everything loaded is there.
    let t = admin(&emu);
    let csv = post(&emu.url(), &[("token", &t), ("content", "record"), ("format", "csv")]).text();
    assert_eq!(csv.lines().count(), 4_001);
}
