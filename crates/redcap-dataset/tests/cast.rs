//! The pure casting, on a small hand-written project that has every kind of field, a repeating
//! instrument, a repeating event, checkboxes with negative and alphanumeric codes, a
//! comma-decimal field, missing-data codes and DAGs.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float64Type, Int32Type, Int64Type, Time32MillisecondType, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use redcap_core::Row;
use redcap_dataset::{DatasetLayout, LayoutOptions, ProjectSchema};

fn meta(name: &str, form: &str, ty: &str, validation: &str, choices: &str) -> String {
    format!(
        r#"{{"field_name":"{name}","form_name":"{form}","section_header":"","field_type":"{ty}","field_label":"Label of {name}","select_choices_or_calculations":"{choices}","field_note":"","text_validation_type_or_show_slider_number":"{validation}","text_validation_min":"","text_validation_max":"","identifier":"{ident}","branching_logic":"","required_field":"","custom_alignment":"","question_number":"","matrix_group_name":"","matrix_ranking":"","field_annotation":"{annotation}"}}"#,
        ident = if name == "name" { "y" } else { "" },
        annotation = if name == "comment" { "@NOMISSING" } else { "" },
    )
}

/// A longitudinal project: `enrol` (id, text, dates, numbers, choices) in `baseline_arm_1`,
/// `visit` in the repeating event `followup_arm_1`, `meds` a repeating instrument in
/// `baseline_arm_1`.
fn schema() -> ProjectSchema {
    let metadata = [
        meta("study_id", "enrol", "text", "", ""),
        meta("name", "enrol", "text", "", ""),
        meta("dob", "enrol", "text", "date_dmy", ""),
        meta("seen_at", "enrol", "text", "datetime_seconds_ymd", ""),
        meta("wake", "enrol", "text", "time", ""),
        meta("age", "enrol", "text", "integer", ""),
        meta("height", "enrol", "text", "number_2dp_comma_decimal", ""),
        meta("weight", "enrol", "text", "number", ""),
        meta("bmi", "enrol", "calc", "", "[weight]/([height]*[height])"),
        meta("consent", "enrol", "yesno", "", ""),
        meta("sex", "enrol", "radio", "", "1, Female | 2, Male | -9, Not said"),
        meta("race", "enrol", "checkbox", "", "1, White | -1, Other | AB, Aboriginal"),
        meta("intro", "enrol", "descriptive", "", ""),
        meta("comment", "enrol", "notes", "", ""),
        meta("pain", "visit", "slider", "number", ""),
        meta("visit_date", "visit", "text", "date_ymd", ""),
        meta("drug", "meds", "dropdown", "", "a1, Aspirin | b2, Brufen"),
    ]
    .join(",");
    let json = format!(
        r#"{{
        "redcap_version": "14.0.0",
        "project_info": {{"project_id": 7, "project_title": "Typed", "is_longitudinal": 1,
                          "missing_data_codes": "UNK, Unknown | -99, Not asked"}},
        "metadata": [{metadata}],
        "export_field_names": [
            {{"original_field_name":"study_id","choice_value":"","export_field_name":"study_id"}},
            {{"original_field_name":"race","choice_value":"1","export_field_name":"race___1"}},
            {{"original_field_name":"race","choice_value":"-1","export_field_name":"race____1"}},
            {{"original_field_name":"race","choice_value":"AB","export_field_name":"race___ab"}},
            {{"original_field_name":"race","choice_value":"UNK","export_field_name":"race___unk"}}
        ],
        "instruments": [{{"instrument_name":"enrol","instrument_label":"Enrolment"}},
                        {{"instrument_name":"visit","instrument_label":"Visit"}},
                        {{"instrument_name":"meds","instrument_label":"Medication"}}],
        "events": [{{"event_name":"Baseline","arm_num":1,"unique_event_name":"baseline_arm_1"}},
                   {{"event_name":"Follow-up","arm_num":1,"unique_event_name":"followup_arm_1"}}],
        "arms": [{{"arm_num":1,"name":"Arm 1"}}],
        "mappings": [{{"arm_num":1,"unique_event_name":"baseline_arm_1","form":"enrol"}},
                     {{"arm_num":1,"unique_event_name":"baseline_arm_1","form":"meds"}},
                     {{"arm_num":1,"unique_event_name":"followup_arm_1","form":"visit"}}],
        "repeating": [{{"event_name":"baseline_arm_1","form_name":"meds","custom_form_label":""}},
                      {{"event_name":"followup_arm_1","form_name":"","custom_form_label":""}}],
        "dags": [{{"data_access_group_name":"North","unique_group_name":"north"}}]
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

/// The records: flat, raw, as REDCap exports them (every column in every row).
fn records() -> Vec<Row> {
    let base = |id: &str, event: &str, inst: &str, rep: &str| -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for k in [
            "study_id",
            "redcap_event_name",
            "redcap_repeat_instrument",
            "redcap_repeat_instance",
            "redcap_data_access_group",
            "name",
            "dob",
            "seen_at",
            "wake",
            "age",
            "height",
            "weight",
            "bmi",
            "consent",
            "sex",
            "race___1",
            "race____1",
            "race___ab",
            "race___unk",
            "comment",
            "enrol_complete",
            "pain",
            "visit_date",
            "visit_complete",
            "drug",
            "meds_complete",
        ] {
            m.insert(k.into(), "".into());
        }
        m.insert("study_id".into(), id.into());
        m.insert("redcap_event_name".into(), event.into());
        m.insert("redcap_repeat_instance".into(), inst.into());
        m.insert("redcap_repeat_instrument".into(), rep.into());
        m.insert("redcap_data_access_group".into(), "north".into());
        for k in ["race___1", "race____1", "race___ab", "race___unk"] {
            m.insert(k.into(), "0".into());
        }
        for k in ["enrol_complete", "visit_complete", "meds_complete"] {
            m.insert(k.into(), "0".into());
        }
        m
    };
    let set = |mut m: serde_json::Map<String, serde_json::Value>, kv: &[(&str, &str)]| {
        for (k, v) in kv {
            m.insert((*k).into(), (*v).into());
        }
        m
    };
    vec![
        set(
            base("001", "baseline_arm_1", "", ""),
            &[
                ("name", "Ann"),
                ("dob", "1980-02-29"),
                ("seen_at", "2024-05-01 13:45:10"),
                ("wake", "07:30"),
                ("age", "44"),
                ("height", "1,62"),
                ("weight", "55.5"),
                ("bmi", "21.1"),
                ("consent", "1"),
                ("sex", "-9"),
                ("race___1", "1"),
                ("race____1", "1"),
                ("comment", "UNK"),
                ("enrol_complete", "2"),
            ],
        ),
        set(base("001", "baseline_arm_1", "1", "meds"), &[("drug", "a1"), ("meds_complete", "1")]),
        set(base("001", "baseline_arm_1", "2", "meds"), &[("drug", "zz")]),
        set(base("001", "followup_arm_1", "1", ""), &[("pain", "40"), ("visit_date", "2024-06-01")]),
        set(base("001", "followup_arm_1", "2", ""), &[("pain", "-99"), ("visit_date", "UNK"), ("visit_complete", "2")]),
        set(
            base("12-3", "baseline_arm_1", "", ""),
            &[
                ("dob", "31/12/1990"),
                ("seen_at", "2024-05-01 25:00:00"),
                ("wake", "7:30"),
                ("age", "4.5"),
                ("height", "1.70"),
                ("weight", "1,5"),
                ("consent", "yes"),
                ("sex", "3"),
                ("race___ab", "1"),
                ("race___unk", "0"),
                ("age", "UNK"),
            ],
        ),
        // A follow-up instance with nothing entered: no row in `visit`.
        set(base("12-3", "followup_arm_1", "1", ""), &[]),
        set(
            base("7", "baseline_arm_1", "", ""),
            &[("race___unk", "1"), ("height", "-99"), ("dob", "2021-02-29"), ("age", "4.5")],
        ),
    ]
    .into_iter()
    .collect()
}

fn render_schema(batch: &RecordBatch) -> String {
    let schema = batch.schema();
    let mut out = String::new();
    let mut meta: Vec<_> = schema.metadata().iter().collect();
    meta.sort();
    for (k, v) in meta {
        if k != "redcap.schema_hash" {
            out.push_str(&format!("# {k} = {v}\n"));
        }
    }
    for f in schema.fields() {
        let mut m: Vec<_> = f.metadata().iter().filter(|(k, _)| *k != "redcap.label").collect();
        m.sort();
        let m: Vec<String> = m.iter().map(|(k, v)| format!("{}={v}", k.trim_start_matches("redcap."))).collect();
        out.push_str(&format!(
            "{}: {}{}  [{}]\n",
            f.name(),
            f.data_type(),
            if f.is_nullable() { "" } else { " NOT NULL" },
            m.join(" ")
        ));
    }
    out
}

fn cast(options: &LayoutOptions) -> (DatasetLayout, redcap_dataset::CastBatch) {
    let layout = DatasetLayout::new(&schema(), options).unwrap();
    let cast = layout.cast(&records()).unwrap();
    (layout, cast)
}

fn table<'a>(layout: &DatasetLayout, cast: &'a redcap_dataset::CastBatch, name: &str) -> &'a RecordBatch {
    let i = layout.tables.iter().position(|t| t.name == name).unwrap();
    &cast.tables[i]
}

#[test]
fn schemas_of_every_table() {
    let (layout, cast) = cast(&LayoutOptions::default().labels(true));
    assert_eq!(layout.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["enrol", "visit", "meds"]);
    for name in ["enrol", "visit", "meds"] {
        insta::assert_snapshot!(format!("schema_{name}"), render_schema(table(&layout, &cast, name)));
    }
}

#[test]
fn rows_go_to_their_instrument() {
    let (layout, cast) = cast(&LayoutOptions::default());
    let ids = |name: &str| -> Vec<(String, Option<i64>)> {
        let t = table(&layout, &cast, name);
        let id = t.column(0).as_string::<i32>();
        let inst = t.column_by_name("redcap_repeat_instance").map(|c| c.as_primitive::<Int64Type>().clone());
        (0..t.num_rows())
            .map(|i| (id.value(i).to_owned(), inst.as_ref().and_then(|c| c.is_valid(i).then(|| c.value(i)))))
            .collect()
    };
    assert_eq!(ids("enrol"), [("001".into(), None), ("12-3".into(), None), ("7".into(), None)]);
    assert_eq!(ids("visit"), [("001".into(), Some(1)), ("001".into(), Some(2))], "the empty instance has no row");
    assert_eq!(ids("meds"), [("001".into(), Some(1)), ("001".into(), Some(2))]);
}

#[test]
fn values_are_typed() {
    let (layout, cast) = cast(&LayoutOptions::default().labels(true));
    let t = table(&layout, &cast, "enrol");
    let col = |n: &str| t.column_by_name(n).unwrap_or_else(|| panic!("{n}"));
    assert_eq!(col("study_id").as_string::<i32>().value(1), "12-3", "ids stay text");
    assert_eq!(col("dob").as_primitive::<Date32Type>().value(0), 3711, "1980-02-29");
    assert_eq!(col("seen_at").as_primitive::<TimestampMillisecondType>().value(0), 1_714_571_110_000);
    assert_eq!(col("wake").as_primitive::<Time32MillisecondType>().value(0), 27_000_000);
    assert_eq!(col("age").as_primitive::<Int64Type>().value(0), 44);
    assert_eq!(col("height").as_primitive::<Float64Type>().value(0), 1.62, "comma decimal");
    assert_eq!(col("height").as_primitive::<Float64Type>().value(1), 1.70, "a dot in a comma field");
    assert_eq!(col("weight").as_primitive::<Float64Type>().value(0), 55.5);
    assert_eq!(col("bmi").as_primitive::<Float64Type>().value(0), 21.1);
    assert!(col("consent").as_boolean().value(0));
    let sex = col("sex").as_dictionary::<Int32Type>();
    let sex_values = sex.values().as_string::<i32>();
    assert_eq!(sex_values.iter().flatten().collect::<Vec<_>>(), ["1", "2", "-9"], "codes in dictionary order");
    assert_eq!(sex_values.value(sex.keys().value(0) as usize), "-9");
    let label = col("sex___label").as_dictionary::<Int32Type>();
    assert_eq!(label.values().as_string::<i32>().value(label.keys().value(0) as usize), "Not said");
    assert!(col("race___1").as_boolean().value(0));
    assert!(col("race____1").as_boolean().value(0), "code -1");
    assert!(col("race___ab").as_boolean().value(1), "code AB");
    assert!(t.column_by_name("intro").is_none(), "descriptive fields have no column");
    assert_eq!(col("redcap_data_access_group").as_string::<i32>().value(0), "north");
    let status = col("enrol_complete").as_dictionary::<Int32Type>();
    assert_eq!(status.values().as_string::<i32>().value(status.keys().value(0) as usize), "2");
}

#[test]
fn missing_codes_are_null_with_the_code_beside() {
    let (layout, cast) = cast(&LayoutOptions::default());
    let code_of = |t: &RecordBatch, n: &str, row: usize| -> Option<String> {
        let d = t.column_by_name(n).unwrap().as_dictionary::<Int32Type>();
        d.is_valid(row).then(|| d.values().as_string::<i32>().value(d.keys().value(row) as usize).to_owned())
    };
    let enrol = table(&layout, &cast, "enrol");
    assert!(enrol.column_by_name("age").unwrap().is_null(1));
    assert_eq!(code_of(enrol, "age___missing", 1).as_deref(), Some("UNK"));
    assert_eq!(code_of(enrol, "age___missing", 0), None);
    assert!(enrol.column_by_name("height").unwrap().is_null(2));
    assert_eq!(code_of(enrol, "height___missing", 2).as_deref(), Some("-99"));
    assert_eq!(code_of(enrol, "race___missing", 2).as_deref(), Some("UNK"), "a checkbox's missing-code option");
    assert!(enrol.column_by_name("race___unk").is_none(), "not a choice of its own");
    assert!(enrol.column_by_name("comment___missing").is_none(), "@NOMISSING");
    assert_eq!(
        enrol.column_by_name("comment").unwrap().as_string::<i32>().value(0),
        "UNK",
        "a @NOMISSING field keeps the text"
    );
    let visit = table(&layout, &cast, "visit");
    assert!(visit.column_by_name("pain").unwrap().is_null(1));
    assert_eq!(code_of(visit, "pain___missing", 1).as_deref(), Some("-99"));
    assert_eq!(code_of(visit, "visit_date___missing", 1).as_deref(), Some("UNK"));
}

#[test]
fn bad_values_are_null_and_in_the_problems() {
    let (layout, cast) = cast(&LayoutOptions::default());
    let got: Vec<String> = cast
        .problems
        .iter()
        .map(|p| {
            format!(
                "{} {} {:?} {}.{} {:?}: {}",
                p.record,
                p.event.as_deref().unwrap_or("-"),
                p.instance,
                p.instrument,
                p.field,
                p.raw,
                p.reason
            )
        })
        .collect();
    insta::assert_snapshot!(got.join("\n"));
    let enrol = table(&layout, &cast, "enrol");
    for col in ["dob", "seen_at", "wake", "weight", "consent", "sex"] {
        assert!(enrol.column_by_name(col).unwrap().is_null(1), "{col}");
    }
    let batch = redcap_dataset::problems_batch(&cast.problems).unwrap();
    assert_eq!(batch.num_rows(), cast.problems.len());
}

#[test]
fn forms_and_events_narrow_the_dataset() {
    let layout =
        DatasetLayout::new(&schema(), &LayoutOptions::default().forms(["visit"]).events(["followup_arm_1"])).unwrap();
    assert_eq!(layout.tables.len(), 1);
    let cast = layout.cast(&records()).unwrap();
    assert_eq!(cast.tables[0].num_rows(), 2);
    assert!(DatasetLayout::new(&schema(), &LayoutOptions::default().forms(["nope"])).is_err());
    assert!(DatasetLayout::new(&schema(), &LayoutOptions::default().events(["nope_arm_1"])).is_err());
}

#[test]
fn the_cast_is_the_same_in_one_batch_or_many() {
    let (layout, whole) = cast(&LayoutOptions::default());
    let all = records();
    let (a, b) = all.split_at(5);
    let first = layout.cast(a).unwrap();
    let second = layout.cast(b).unwrap();
    for (i, t) in layout.tables.iter().enumerate() {
        let joined = arrow_select_concat(&[first.tables[i].clone(), second.tables[i].clone()]);
        assert_eq!(joined, whole.tables[i], "{}", t.name);
    }
    assert_eq!(first.problems.len() + second.problems.len(), whole.problems.len());
}

#[test]
fn the_cast_does_not_depend_on_the_rows_key_order() {
    // The cast reads cells by position where rows share the first row's key order; rows in
    // another order, or with keys left out, must be read by name all the same.
    let (layout, whole) = cast(&LayoutOptions::default());
    let shuffled: Vec<Row> = records()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let mut entries: Vec<(String, serde_json::Value)> = row.into_iter().collect();
            match i % 3 {
                0 => entries.reverse(),
                1 => {
                    let by = i % entries.len();
                    entries.rotate_left(by)
                }
                // Empty cells left out, as a sparse writer would.
                _ => entries.retain(|(_, v)| v.as_str() != Some("")),
            }
            entries.into_iter().collect()
        })
        .collect();
    let again = layout.cast(&shuffled).unwrap();
    assert_eq!(again.tables, whole.tables);
    assert_eq!(again.problems, whole.problems);
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

#[test]
fn every_format_writes_and_parquet_reads_back_the_same() {
    use redcap_dataset::OutputFormat;
    use redcap_dataset::write::TableWriter;
    let (layout, cast) = cast(&LayoutOptions::default().labels(true));
    let dir = tempfile::tempdir().unwrap();
    let enrol = table(&layout, &cast, "enrol");
    for format in [OutputFormat::Parquet, OutputFormat::Arrow, OutputFormat::Csv] {
        let path = dir.path().join(format!("enrol.{}", format.extension()));
        let mut w = TableWriter::create(&path, enrol.schema(), format).unwrap();
        w.write(enrol).unwrap();
        assert!(!path.exists(), "nothing at the final path before the file is complete");
        assert_eq!(w.finish().unwrap(), 3);
        assert!(path.exists());
    }
    let file = std::fs::File::open(dir.path().join("enrol.parquet")).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.schema().metadata(), enrol.schema().metadata(), "the table's metadata survives Parquet");
    // Readers that do not read the embedded Arrow schema (DuckDB, pyarrow's pandas path) see
    // Parquet's own logical types: timestamps and times must be such, not bare integers.
    let parquet_schema = builder.parquet_schema();
    let logical = |name: &str| {
        let i = (0..parquet_schema.num_columns()).find(|&i| parquet_schema.column(i).name() == name).unwrap();
        parquet_schema.column(i).logical_type_ref().cloned()
    };
    assert!(
        matches!(logical("seen_at"), Some(parquet::basic::LogicalType::Timestamp { .. })),
        "{:?}",
        logical("seen_at")
    );
    assert!(matches!(logical("wake"), Some(parquet::basic::LogicalType::Time { .. })), "{:?}", logical("wake"));
    assert!(matches!(logical("dob"), Some(parquet::basic::LogicalType::Date)));
    // Values that repeat (choices, events, DAGs) get a Parquet dictionary; the text of the
    // dictionary's own fields (the record id, free text) is mostly distinct and written plain.
    let chunks = builder.metadata().row_group(0).columns();
    let with_dictionary = |name: &str| {
        chunks.iter().find(|c| c.column_path().string() == name).unwrap().dictionary_page_offset().is_some()
    };
    let mut plain = Vec::new();
    let schema = enrol.schema();
    for f in schema.fields() {
        match f.data_type() {
            arrow_schema::DataType::Dictionary(..) => assert!(with_dictionary(f.name()), "{}", f.name()),
            arrow_schema::DataType::Utf8 if f.metadata().contains_key("redcap.field_type") => {
                assert!(!with_dictionary(f.name()), "{}", f.name());
                plain.push(f.name().as_str());
            }
            arrow_schema::DataType::Utf8 => assert!(with_dictionary(f.name()), "{}", f.name()),
            _ => {}
        }
    }
    assert!(plain.contains(&"study_id") && plain.contains(&"name"), "{plain:?}");
    assert!(with_dictionary("redcap_event_name"));
    let read: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(read.len(), 1);
    for (got, want) in read[0].schema().fields().iter().zip(enrol.schema().fields()) {
        assert_eq!(
            (got.name(), got.data_type(), got.is_nullable(), got.metadata()),
            (want.name(), want.data_type(), want.is_nullable(), want.metadata()),
            "types and metadata survive Parquet"
        );
    }
    assert_eq!(read[0].columns(), enrol.columns());
    let file = std::fs::File::open(dir.path().join("enrol.arrow")).unwrap();
    let read: Vec<RecordBatch> =
        arrow_ipc::reader::FileReader::try_new(file, None).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(&read[0], enrol);
    let csv = std::fs::read_to_string(dir.path().join("enrol.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("study_id,redcap_event_name,redcap_data_access_group,name,"));
    let first = lines.next().unwrap();
    assert_eq!(
        first,
        "001,baseline_arm_1,north,Ann,,1980-02-29,,2024-05-01T13:45:10,,07:30:00,,44,,1.62,,55.5,,21.1,,true,,-9,Not said,,true,true,false,,UNK,2,Complete"
    );
}

#[test]
fn the_plan_keeps_each_record_once_where_it_first_came() {
    use redcap_dataset::{DatasetPull, PullOptions};
    let dir = tempfile::tempdir().unwrap();
    let mut pull = DatasetPull::start(dir.path(), schema(), &PullOptions::default().batch_size(2)).unwrap();
    // The id list gives an id per run of a record's rows; a record may come back later.
    pull.plan(["7", "001", "", "7", "12-3", "001"].map(String::from)).unwrap();
    assert_eq!(pull.batches(), 2);
    assert_eq!(pull.next_batch().unwrap(), ["7", "001"]);
    assert_eq!(pull.batch(1).unwrap(), ["12-3"]);
    assert_eq!(pull.batch(2), None);
}

#[test]
fn a_resume_continues_only_the_same_pull() {
    use redcap_dataset::{DatasetPull, PullOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = PullOptions::default().batch_size(2);
    let all = records();
    let ids = ["001", "12-3", "7"].map(String::from);
    let mut pull = DatasetPull::start(dir.path(), schema(), &options).unwrap();
    assert!(pull.needs_ids());
    pull.plan(ids.clone()).unwrap();
    assert_eq!(pull.next_batch().unwrap(), &ids[..2]);
    let first: Vec<Row> = all.iter().filter(|r| r["study_id"] != "7").cloned().collect();
    pull.add_batch(&first).unwrap();
    drop(pull); // interrupted

    // The same schema and options: the plan and the first batch are kept.
    let resumed = DatasetPull::start(dir.path(), schema(), &options.clone().resume(true)).unwrap();
    assert!(!resumed.needs_ids());
    assert_eq!(resumed.done(), 1);
    assert_eq!(resumed.next_batch().unwrap(), &ids[2..]);
    drop(resumed);
    // How many batches are asked at once is how a pull runs, not what it pulls.
    for parallel in [1, 5] {
        let resumed =
            DatasetPull::start(dir.path(), schema(), &options.clone().parallel(parallel).resume(true)).unwrap();
        assert!(!resumed.needs_ids(), "--parallel {parallel}");
        assert_eq!(resumed.done(), 1);
    }

    // Other options, or another dictionary: the pull starts over.
    let other = DatasetPull::start(dir.path(), schema(), &options.clone().batch_size(3).resume(true)).unwrap();
    assert!(other.needs_ids());
    drop(other);
    let mut pull = DatasetPull::start(dir.path(), schema(), &options).unwrap();
    pull.plan(ids.clone()).unwrap();
    pull.add_batch(&first).unwrap();
    drop(pull);
    let mut changed = schema();
    changed.project_info.insert("missing_data_codes".into(), "NA, Not applicable".into());
    let fresh = DatasetPull::start(dir.path(), changed, &options.clone().resume(true)).unwrap();
    assert!(fresh.needs_ids(), "a changed dictionary is not resumed");
    assert_eq!(fresh.done(), 0);
}

#[test]
fn a_pull_writes_its_plan_once_and_a_torn_checkpoint_is_redone() {
    use redcap_dataset::{DatasetPull, PullOptions};
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join(redcap_dataset::PARTIAL_DIR);
    let options = PullOptions::default().batch_size(1);
    let all = records();
    let ids = ["001", "12-3", "7"].map(String::from);
    let only = |id: &str| -> Vec<Row> { all.iter().filter(|r| r["study_id"] == id).cloned().collect() };
    let mut pull = DatasetPull::start(dir.path(), schema(), &options).unwrap();
    pull.plan(ids.clone()).unwrap();
    let plan = std::fs::read(work.join("plan.json")).unwrap();
    let state = std::fs::read(work.join("state.json")).unwrap();
    pull.add_batch(&only("001")).unwrap();
    pull.add_batch(&only("12-3")).unwrap();
    // Each batch adds a line; the state and the plan (every id) are not written again, so the
    // bookkeeping grows with the records, not with records x batches.
    assert_eq!(std::fs::read(work.join("plan.json")).unwrap(), plan);
    assert_eq!(std::fs::read(work.join("state.json")).unwrap(), state);
    assert!(!String::from_utf8_lossy(&state).contains("12-3"), "the state holds no ids");
    let done = std::fs::read_to_string(work.join("done.jsonl")).unwrap();
    assert_eq!(done.lines().count(), 2);
    drop(pull);

    // A crash while appending the second line: only the first batch is a checkpoint.
    let torn = &done[..done.len() - 5];
    std::fs::write(work.join("done.jsonl"), torn).unwrap();
    let mut resumed = DatasetPull::start(dir.path(), schema(), &options.clone().resume(true)).unwrap();
    assert_eq!(resumed.done(), 1);
    assert_eq!(resumed.next_batch().unwrap(), &ids[1..2]);
    // The torn tail is gone before the next line is appended.
    resumed.add_batch(&only("12-3")).unwrap();
    let lines = std::fs::read_to_string(work.join("done.jsonl")).unwrap();
    assert_eq!(lines, done, "the redone batch's line replaces the torn one");
    drop(resumed);

    // Parts (all in one file) and lines are not synced: after a power cut a part may hold
    // other bytes than were written (here: zeros; then one byte changed). Its checksum tells.
    let parts = work.join("parts.arrows");
    let line: serde_json::Value = serde_json::from_str(done.lines().nth(1).unwrap()).unwrap();
    let (offset, len) = line["parts"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| (p["offset"].as_u64().unwrap(), p["len"].as_u64().unwrap()))
        .next()
        .unwrap();
    let range = offset as usize..(offset + len) as usize;
    let written = std::fs::read(&parts).unwrap();
    let mut zeros = written.clone();
    zeros[range.clone()].fill(0);
    let mut flipped = written.clone();
    flipped[range.start + range.len() / 2] ^= 1;
    for damaged in [zeros, flipped] {
        let resumed = DatasetPull::start(dir.path(), schema(), &options.clone().resume(true)).unwrap();
        assert_eq!(resumed.done(), 2, "the part as written is a checkpoint");
        drop(resumed);
        std::fs::write(&parts, damaged).unwrap();
        let mut resumed = DatasetPull::start(dir.path(), schema(), &options.clone().resume(true)).unwrap();
        assert_eq!(resumed.done(), 1, "a damaged part is not");
        resumed.add_batch(&only("12-3")).unwrap();
        assert_eq!(std::fs::read(&parts).unwrap(), written, "the batch is written again, in the same place");
        drop(resumed);
    }

    // A checkpoint whose part was cut off (the file shorter than the line says) is not trusted.
    std::fs::write(&parts, &written[..range.end - 1]).unwrap();
    let mut resumed = DatasetPull::start(dir.path(), schema(), &options.clone().resume(true)).unwrap();
    assert_eq!(resumed.done(), 1);
    resumed.add_batch(&only("12-3")).unwrap();
    resumed.add_batch(&only("7")).unwrap();
    let summary = resumed.finish("2026-12-02T00:00:00Z".into()).unwrap();
    assert_eq!(summary.manifest.records, 3);
    assert_eq!(summary.manifest.batches.iter().map(|c| c.batch).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(!work.exists(), "the working folder is removed after the commit");
}

#[test]
fn an_instrument_listed_twice_is_one_table_with_all_its_rows() {
    // A dictionary's instrument list may repeat an instrument (a hand-edited or broken
    // answer): one table, one file, and its repeating rows all in it.
    let mut twice = schema();
    let meds = twice.instruments[2].clone();
    twice.instruments.push(meds);
    let layout = DatasetLayout::new(&twice, &LayoutOptions::default()).unwrap();
    assert_eq!(layout.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["enrol", "visit", "meds"]);
    let cast = layout.cast(&records()).unwrap();
    assert_eq!(table(&layout, &cast, "meds").num_rows(), 2);
}
