//! What PyCap 2.7.0's integration tests (`tests/integration/`, run against a live REDCap at
//! redcapdemo) show REDCap answering, each test naming the PyCap test it follows. Their fixture
//! creates each test project through the super token from PyCap's project XML.

use crate::common::*;
use redcap_emulator::{Emulator, RunningEmulator};

/// Creates a project as PyCap's `tests/integration/conftest.py` `create_project` does (XML
/// attributes, the project XML as `odm`); returns its token.
fn create_like_pycap(emu: &RunningEmulator, xml_fixture: &str) -> String {
    let xml = std::fs::read_to_string(fixture(xml_fixture)).unwrap();
    let info = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n    <item>\n    <project_title>PyCap test</project_title>\n    <purpose>0</purpose>\n    </item>";
    let r = post(
        &emu.url(),
        &[("token", &emu.super_token()), ("content", "project"), ("format", "xml"), ("data", info), ("odm", &xml)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()[r.text().len() - 32..].to_owned()
}

fn eav_field_names(emu: &RunningEmulator, token: &str) -> Vec<String> {
    let csv = post(&emu.url(), &[("token", token), ("content", "record"), ("format", "csv"), ("type", "eav")]).text();
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, ["record", "field_name", "value"]);
    rows.into_iter().map(|r| r[1].clone()).collect()
}

/// PyCap `tests/integration/test_simple_project.py::test_export_records_df_eav`: the simple
/// project created from `test_simple_project.xml` exports 30 EAV rows. The XML holds 34 values;
/// the 4 left out are the calc fields (`age`, `bmi` of records 1 and 2): Create Project does not
/// store the calc values its `odm` brings (and does not compute them). A project the emulator
/// loads from a file is a server already holding that data, so its calc values stay.
#[test]
fn create_project_does_not_store_calc_values_of_its_odm() {
    let emu = Emulator::builder().in_memory().deterministic_tokens(7).start().unwrap();
    let token = create_like_pycap(&emu, "pycap-test_simple_project.xml");
    let fields = eav_field_names(&emu, &token);
    assert_eq!(fields.len(), 30, "{fields:?}");
    assert!(!fields.iter().any(|f| f == "age" || f == "bmi"), "{fields:?}");
    // The other values of those records are all there.
    assert_eq!(fields.iter().filter(|f| *f == "height").count(), 2);
    let flat = post(&emu.url(), &[("token", &token), ("content", "record"), ("format", "json")]).json();
    assert_eq!(
        (flat[0]["age"].as_str(), flat[0]["bmi"].as_str(), flat[0]["weight"].as_str()),
        (Some(""), Some(""), Some("100"))
    );

    let loaded = start(&["pycap-test_simple_project.xml"]);
    let fields = eav_field_names(&loaded, &admin(&loaded));
    assert_eq!((fields.len(), fields.iter().filter(|f| *f == "bmi").count()), (34, 2));
}
