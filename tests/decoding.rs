//! Success and error bodies, in json/csv/xml, through the same `handle_response` every client
//! uses. Each case is a snapshot of what the caller gets.

use redcap_api::file_repository;
use redcap_core::{Bytes, Format, Method, ReturnFormat, handle_response, prepare};
use redcap_tests::{token, url};

fn run<M: Method>(request: &M, status: u16, headers: &[(&str, &str)], body: &str) -> String
where
    M::Output: std::fmt::Debug,
{
    let prepared = prepare(request, &url(), &token()).unwrap();
    let mut builder = http::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = builder.body(Bytes::from(body.to_owned())).unwrap();
    format!("{:#?}", handle_response::<M>(prepared.context(), response))
}

fn list(format: Format) -> file_repository::list::Request {
    file_repository::list::Request::new().format(format).return_format(ReturnFormat::from(format))
}

#[test]
fn file_repository_listing_in_three_formats() {
    let json = r#"[{"folder_id":45,"name":"Study Protocols"},{"folder_id":46,"name":"Site A","dag":"site_a"},{"folder_id":47,"name":"Coordinators","role":"U-2119C4Y87T"},{"doc_id":201,"name":"consent_form_v3.pdf"}]"#;
    insta::assert_snapshot!("fr_list_json", run(&list(Format::Json), 200, &[], json));
    // CSV from 16.0.8 has role and dag columns; blank ids mean "not this kind".
    let csv = "folder_id,doc_id,name,role,dag\n45,,Study Protocols,,\n46,,Site A,,site_a\n,201,consent_form_v3.pdf,,\n";
    insta::assert_snapshot!("fr_list_csv", run(&list(Format::Csv), 200, &[], csv));
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<items>\n<item><folder_id>45</folder_id><name>Study Protocols</name></item>\n<item><doc_id>201</doc_id><name>a &amp; b.pdf</name></item>\n</items>\n";
    insta::assert_snapshot!("fr_list_xml", run(&list(Format::Xml), 200, &[], xml));
    assert_eq!(run(&list(Format::Json), 200, &[], "[]"), "Ok(\n    [],\n)");
}

#[test]
fn created_folder_id_in_three_formats() {
    let req = |f: Format| file_repository::create_folder::Request::new("x").format(f);
    for (f, body) in [
        (Format::Json, r#"[{"folder_id":45}]"#),
        (Format::Csv, "folder_id\n45\n"),
        (
            Format::Xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><folders><folder><folder_id>45</folder_id></folder></folders>",
        ),
    ] {
        assert_eq!(run(&req(f), 200, &[], body), "Ok(\n    45,\n)", "{f}");
    }
    insta::assert_snapshot!("create_folder_without_id", run(&req(Format::Json), 200, &[], "[]"));
}

#[test]
fn file_download_head() {
    let req = file_repository::export::Request::new(201);
    let text = "text/plain; name=\"test.txt\"; charset=UTF-8";
    insta::assert_snapshot!(
        "fr_export_text",
        run(&req, 200, &[("content-type", text), ("content-length", "5")], "hello")
    );
    // An HTML page without a file name where a file was expected is an error, not a download.
    let page = "<!DOCTYPE html><html><head><title>REDCap: Error</title></head><body>oops</body></html>";
    insta::assert_snapshot!(
        "fr_export_html_error",
        run(&req, 200, &[("content-type", "text/html; charset=UTF-8")], page)
    );
}

#[test]
fn error_envelopes() {
    let no_api = "You do not have permissions to use the API";
    insta::assert_snapshot!(
        "error_403_json",
        run(
            &list(Format::Json),
            403,
            &[("content-type", "application/json; charset=utf-8")],
            &format!("{{\"error\":\"{no_api}\"}}")
        )
    );
    insta::assert_snapshot!("error_403_csv", run(&list(Format::Csv), 403, &[], &format!("ERROR: {no_api}")));
    insta::assert_snapshot!(
        "error_403_xml",
        run(
            &list(Format::Xml),
            403,
            &[],
            &format!("<?xml version=\"1.0\" encoding=\"UTF-8\" ?><hash><error>{no_api}</error></hash>")
        )
    );
    let folder = "ERROR: The File Repository folder folder_id=99 does not exist or else you do not have permission to that folder because it is DAG-restricted or Role-restricted.";
    insta::assert_snapshot!("error_400_folder_csv", run(&list(Format::Csv), 400, &[], folder));
    insta::assert_snapshot!(
        "error_501_xml",
        run(
            &list(Format::Json),
            501,
            &[],
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><hash><error>The requested method is not implemented.</error></hash>"
        )
    );
    insta::assert_snapshot!("error_500_empty", run(&list(Format::Json), 500, &[], ""));
}

#[test]
fn errors_disguised_as_success() {
    let html = "<html><head><title>Service Unavailable</title></head></html>";
    insta::assert_snapshot!("ok_html_page", run(&list(Format::Json), 200, &[("content-type", "text/html")], html));
    insta::assert_snapshot!(
        "ok_json_error",
        run(&list(Format::Json), 200, &[], r#"{"error":"REDCap ran out of server memory."}"#)
    );
    insta::assert_snapshot!("ok_db_text", run(&list(Format::Json), 200, &[], "Could not connect to the database"));
}

#[test]
fn empty_bodies() {
    let upload = file_repository::import::Request::new(redcap_core::Upload::from_bytes("a.txt", "a"));
    assert_eq!(run(&upload, 200, &[], ""), "Ok(\n    (),\n)");
    insta::assert_snapshot!("fr_import_unexpected_body", run(&upload, 200, &[], "surprise"));
}

fn import(content: redcap_core::ReturnContent, rf: ReturnFormat) -> redcap_api::record::import::Request {
    let mut r = redcap_api::record::import::Request::new("[]").return_content(content).return_format(rf);
    r.format = Some(Format::Json);
    r
}

#[test]
fn import_results_follow_return_content_and_return_format() {
    use redcap_core::ReturnContent::*;
    // count: {"count": n} in JSON, the bare number in CSV, <count> in XML (reference §4.8).
    for (rf, body) in [
        (ReturnFormat::Json, r#"{"count": 3}"#),
        (ReturnFormat::Csv, "3"),
        (ReturnFormat::Xml, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><count>3</count>"),
    ] {
        assert_eq!(run(&import(Count, rf), 200, &[], body), "Ok(\n    Count(\n        3,\n    ),\n)", "{rf}");
    }
    insta::assert_snapshot!("import_ids_json", run(&import(Ids, ReturnFormat::Json), 200, &[], r#"["1","2","3"]"#));
    assert_eq!(
        run(&import(Ids, ReturnFormat::Csv), 200, &[], "id\n1\n2\n3\n"),
        run(&import(Ids, ReturnFormat::Json), 200, &[], r#"["1","2","3"]"#)
    );
    insta::assert_snapshot!(
        "import_auto_ids_json",
        run(&import(AutoIds, ReturnFormat::Json), 200, &[], r#"["1101,1","1102,2"]"#)
    );
    assert_eq!(run(&import(Nothing, ReturnFormat::Json), 200, &[], ""), "Ok(\n    Nothing,\n)");
    let validation = "\"1\",\"weight_kg\",\"22\",\"The value you provided could not be validated because it does not follow the expected format. Please try again.\"";
    insta::assert_snapshot!(
        "import_validation_error",
        run(&import(Count, ReturnFormat::Json), 400, &[], &serde_json_error(validation))
    );
}

fn serde_json_error(message: &str) -> String {
    redcap_core::envelope::render(ReturnFormat::Json, message).1
}

#[test]
fn text_one_token_and_version_bodies() {
    let version = redcap_api::version::export::Request::new();
    assert_eq!(
        run(&version, 200, &[], "14.5.2\n"),
        "Ok(\n    Version {\n        major: 14,\n        minor: 5,\n        patch: 2,\n    },\n)"
    );
    insta::assert_snapshot!("version_garbage", run(&version, 200, &[], "not a version"));
    let rename = redcap_api::record::rename::Request::new("1", "2");
    assert_eq!(run(&rename, 200, &[], "1"), "Ok(\n    (),\n)");
    insta::assert_snapshot!("rename_not_one", run(&rename, 200, &[], "0"));
    let next = redcap_api::record::generate_next_name::Request::new();
    assert_eq!(run(&next, 200, &[], "20-1"), "Ok(\n    \"20-1\",\n)");
}
