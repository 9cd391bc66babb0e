//! The generated code is fresh, and the generator's picture of core's enums is true.

use redcap_core::WireEnum;
use redcap_tests::workspace_root;

#[test]
fn generated_code_is_fresh() {
    let root = workspace_root();
    let files =
        redcap_codegen::generate_dir(&root.join("spec"), "spec").unwrap_or_else(|e| panic!("spec invalid:\n{e}"));
    let stale = redcap_codegen::stale_files(&files, &root.join("crates/redcap-api/src/generated"));
    assert!(
        stale.is_empty(),
        "generated code is stale; run `cargo xtask codegen` and commit the result. Stale files: {stale:?}"
    );
}

#[test]
fn generation_is_deterministic() {
    let root = workspace_root();
    let a = redcap_codegen::generate_dir(&root.join("spec"), "spec").unwrap();
    let b = redcap_codegen::generate_dir(&root.join("spec"), "spec").unwrap();
    assert_eq!(a, b);
}

fn table<E: WireEnum + std::fmt::Debug>() -> Vec<(String, String)> {
    E::ALL.iter().map(|v| (v.as_wire().to_owned(), format!("{v:?}"))).collect()
}

#[test]
fn generator_enum_table_matches_core() {
    let enums = redcap_codegen::core_enums();
    let core: Vec<(&str, Vec<(String, String)>)> = vec![
        ("CsvDelimiter", table::<redcap_core::CsvDelimiter>()),
        ("DateFormat", table::<redcap_core::DateFormat>()),
        ("DecimalCharacter", table::<redcap_core::DecimalCharacter>()),
        ("Format", table::<redcap_core::Format>()),
        ("LogType", table::<redcap_core::LogType>()),
        ("OverwriteBehavior", table::<redcap_core::OverwriteBehavior>()),
        ("RawOrLabel", table::<redcap_core::RawOrLabel>()),
        ("RecordType", table::<redcap_core::RecordType>()),
        ("ReturnContent", table::<redcap_core::ReturnContent>()),
        ("ReturnFormat", table::<redcap_core::ReturnFormat>()),
    ];
    assert_eq!(enums.keys().collect::<Vec<_>>(), core.iter().map(|(n, _)| n).collect::<Vec<_>>());
    for (name, values) in core {
        let spec: Vec<(String, String)> =
            enums[name].values.iter().map(|v| (v.wire.clone(), v.variant.clone())).collect();
        assert_eq!(spec, values, "enum {name}");
        let wires: Vec<String> = values.iter().map(|(w, _)| w.clone()).collect();
        assert_eq!(
            redcap_core::types::enum_values(name).unwrap(),
            wires.iter().map(String::as_str).collect::<Vec<_>>().as_slice()
        );
    }
}
