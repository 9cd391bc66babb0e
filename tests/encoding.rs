//! Every example call in `spec/` rendered as the exact request REDCap receives (token redacted).
//! One snapshot per example: review changes to these like code.

use redcap_core::{Body, TokenKind, TokenRequirement};
use redcap_tests::{BOUNDARY, super_token, token, url};

#[test]
fn every_spec_example_encodes_as_reviewed() {
    let mut seen = 0;
    for info in redcap_api::METHODS {
        let tok = if info.token == TokenRequirement::Super { super_token() } else { token() };
        let examples: Vec<_> = redcap_api::prepare_examples(&url(), &tok, BOUNDARY)
            .into_iter()
            .filter(|(id, _, _)| *id == info.id)
            .collect();
        assert!(!examples.is_empty(), "{} has no example", info.id);
        for (id, example, prepared) in examples {
            let prepared = prepared.unwrap_or_else(|e| panic!("{id} example {example} does not encode: {e}"));
            let mut text = prepared.render();
            if let Body::Multipart(mp) = prepared.body() {
                // Show the envelope around the (streamed) file part too.
                text.push_str(&format!(
                    "--\n{}<file bytes>{}",
                    String::from_utf8_lossy(mp.head()).replace(redcap_tests::FAKE_TOKEN, "[redacted]"),
                    String::from_utf8_lossy(mp.tail())
                ));
            }
            assert!(!text.contains(redcap_tests::FAKE_TOKEN), "token leaked into the rendering of {id}");
            insta::assert_snapshot!(format!("{id}__{example}"), text);
            seen += 1;
        }
    }
    assert!(seen >= redcap_api::METHODS.len());
}

#[test]
fn the_spec_has_every_method_once() {
    let mut ids: Vec<&str> = redcap_api::METHODS.iter().map(|m| m.id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate method ids");
    assert_eq!(n, 55, "REDCap documents 55 API methods (reference §2)");
}

#[test]
fn wrong_token_kind_is_refused_before_sending() {
    let request = redcap_api::file_repository::list::Request::new();
    let err = redcap_core::prepare(&request, &url(), &super_token()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "method `file_repository.list` needs a project token (32 hex characters), but a super token (64 hex characters) was given"
    );
    assert_eq!(token().kind(), TokenKind::Project);
}

#[test]
fn disallowed_values_are_refused_before_sending() {
    let request = redcap_api::file_repository::list::Request::new().format(redcap_core::Format::Odm);
    let err = redcap_core::prepare(&request, &url(), &token()).unwrap_err();
    assert_eq!(err.to_string(), "parameter `format`: `odm` is not accepted (expected one of: json, csv, xml)");
}
