//! Every fixture project loads, with the expected numbers of forms, fields and records.
//! Field and record counts agree with the REDCapR dictionaries and data files where they exist.

use crate::common::fixture;
use redcap_emulator::Emulator;

const EXPECTED: &[(&str, usize, usize, usize)] = &[
    ("phpcap-PHPCapBasicDemography.xml", 1, 15, 100),
    ("phpcap-PHPCapDag.xml", 2, 3, 1),
    ("phpcap-PHPCapLongitudinalData.xml", 5, 45, 100),
    ("phpcap-PHPCapRepeatableSurvey.xml", 2, 10, 0),
    ("phpcap-PHPCapRepeatingForms.xml", 2, 10, 0),
    ("pycap-doctest_project.xml", 1, 4, 3),
    ("pycap-test_long_project.xml", 9, 96, 2),
    ("pycap-test_simple_project.xml", 1, 15, 3),
    ("redcapr-arm-multiple-delete.xml", 1, 3, 20),
    ("redcapr-arm-single-delete.xml", 1, 3, 16),
    ("redcapr-arm-single-longitudinal.xml", 1, 4, 3),
    ("redcapr-blank-for-gray-status.xml", 3, 17, 6),
    ("redcapr-checkboxes-1.xml", 2, 4, 4),
    ("redcapr-clinical-trial-1.xml", 1, 12, 500),
    ("redcapr-dag-write.xml", 1, 15, 3),
    ("redcapr-dag.xml", 1, 15, 3),
    ("redcapr-decimal-comma-and-dot.xml", 1, 8, 4),
    ("redcapr-decimal-comma.xml", 1, 5, 4),
    ("redcapr-decimal-dot.xml", 1, 5, 4),
    ("redcapr-empty-rows.xml", 3, 16, 0),
    ("redcapr-file-repo.xml", 1, 5, 2),
    ("redcapr-longitudinal.xml", 9, 95, 3),
    ("redcapr-metadata-write.xml", 3, 16, 5),
    ("redcapr-multilevel-model-1.xml", 2, 15, 20),
    ("redcapr-nonnumeric-record-id.xml", 1, 2, 3),
    ("redcapr-potentially-problematic-dictionary.xml", 1, 6, 0),
    ("redcapr-potentially-problematic-values.xml", 1, 4, 2),
    ("redcapr-repeating-instruments-sparse.xml", 2, 11, 5),
    ("redcapr-repeating-instruments.xml", 2, 11, 2),
    ("redcapr-russian.xml", 14, 343, 3),
    ("redcapr-simple-write.xml", 3, 16, 5),
    ("redcapr-simple.xml", 3, 17, 5),
    ("redcapr-single-column.xml", 1, 1, 0),
    ("redcapr-survey.xml", 4, 25, 2),
    ("redcapr-validation-types-1.xml", 1, 50, 1),
    ("redcapr-vignette-repeating.xml", 4, 9, 2),
];

#[test]
fn every_fixture_loads_with_its_counts() {
    let on_disk = std::fs::read_dir(fixture(""))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "xml"))
        .count();
    assert_eq!(on_disk, EXPECTED.len(), "every fixture file is listed here");
    let mut b = Emulator::builder().in_memory();
    for (f, ..) in EXPECTED {
        b = b.project_xml_file(fixture(f)).unwrap();
    }
    let emu = b.build().unwrap();
    let ids = emu.project_ids();
    assert_eq!(ids.len(), EXPECTED.len());
    for (id, (name, forms, fields, records)) in ids.iter().zip(EXPECTED) {
        assert_eq!(emu.project_counts(*id), Some((*forms, *fields, *records)), "{name}");
    }
}

#[test]
fn broken_xml_is_refused_with_a_reason() {
    let err = Emulator::builder().project_xml("<ODM><Study></Study></ODM>").build().unwrap_err();
    assert!(err.to_string().contains("GlobalVariables"), "{err}");
    let err = Emulator::builder().project_xml("<<<").build().unwrap_err();
    assert!(err.to_string().contains("project XML"), "{err}");
}
