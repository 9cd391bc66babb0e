//! `redcap::dataset` against the emulator: the pull of every fixture project reads back with the
//! dictionary's types (with the `parquet` crate), the problems table holds the deliberately bad
//! values, and a pull interrupted by an injected failure resumes to the same dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use redcap::dataset::blocking::Datasets;
use redcap::dataset::{LayoutOptions, Manifest, OutputFormat, PullError, PullOptions, PullSummary};
use redcap::workflow::{NoProgress, ProgressEvent, WorkflowError};
use redcap_core::RetryPolicy;
use redcap_emulator::{BatchFault, Emulator, Fault, RunningEmulator};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/redcap-emulator/fixtures")
}

fn typed_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dataset-typed.xml")
}

struct Env {
    emu: RunningEmulator,
    client: redcap::blocking::Client,
    token: String,
}

fn env(xml: &Path) -> Env {
    let emu = Emulator::builder()
        .project_xml(std::fs::read_to_string(xml).expect("fixture"))
        .in_memory()
        .deterministic_tokens(7)
        .start()
        .expect("emulator starts");
    let pid = emu.project_ids()[0];
    let token = emu.token(pid, "admin").expect("admin token");
    let client = redcap::blocking::Client::builder(emu.url(), &token)
        .allow_http(true)
        .retry(RetryPolicy::default().with_base_delay(Duration::from_millis(5)))
        .build()
        .expect("client");
    Env { emu, client, token }
}

fn pull(env: &Env, dir: &Path, options: &PullOptions) -> PullSummary {
    env.client.pull_dataset(dir, options, &NoProgress).expect("pull")
}

/// A Parquet file read back with the parquet crate: its Arrow schema and batches.
fn read_parquet(path: &Path) -> (Arc<Schema>, Vec<RecordBatch>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    let schema = builder.schema().clone();
    let batches = builder.build().expect("reader").collect::<Result<Vec<_>, _>>().expect("batches");
    (schema, batches)
}

fn render_schema(schema: &Schema) -> String {
    let mut out = String::new();
    let mut meta: Vec<_> = schema.metadata().iter().filter(|(k, _)| *k != "redcap.schema_hash").collect();
    meta.sort();
    for (k, v) in meta {
        out.push_str(&format!("# {k} = {v}\n"));
    }
    for f in schema.fields() {
        let mut m: Vec<_> = f
            .metadata()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "redcap.label" | "redcap.field" | "redcap.form"))
            .collect();
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

/// The batches as CSV text (a readable rendering of the values).
fn render_rows(batches: &[RecordBatch]) -> String {
    let mut buf = Vec::new();
    {
        let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut buf);
        for b in batches {
            w.write(b).expect("csv");
        }
    }
    String::from_utf8(buf).expect("utf-8")
}

/// Every table of a pulled dataset, read back: (name, schema, batches).
fn read_dataset(dir: &Path, manifest: &Manifest) -> Vec<(String, Arc<Schema>, Vec<RecordBatch>)> {
    manifest
        .tables
        .iter()
        .map(|(name, entry)| {
            let (schema, batches) = read_parquet(&dir.join(&entry.file));
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(rows as u64, entry.rows, "{name}: the manifest counts the rows");
            (name.clone(), schema, batches)
        })
        .collect()
}

#[test]
fn the_typed_project_reads_back_with_its_types_problems_and_missing_codes() {
    let env = env(&typed_fixture());
    let dir = tempfile::tempdir().unwrap();
    let summary =
        pull(&env, dir.path(), &PullOptions::default().batch_size(2).layout(LayoutOptions::default().labels(true)));
    let m = &summary.manifest;
    assert_eq!(m.records, 4);
    assert_eq!(m.batches.len(), 2);
    assert_eq!(m.schema_hash.len(), 64);
    assert_eq!(m.project_id.as_deref(), Some(env.emu.project_ids()[0].to_string().as_str()));
    assert!(!m.redcap_version.is_empty());
    let names: Vec<&str> = m.tables.keys().map(String::as_str).collect();
    assert_eq!(names, ["_dictionary", "_problems", "enrol", "meds"]);
    assert!(!dir.path().join(redcap::dataset::PARTIAL_DIR).exists(), "the working folder is gone");
    for (name, schema, batches) in read_dataset(dir.path(), m) {
        if name != "_dictionary" {
            insta::assert_snapshot!(format!("typed_{name}_schema"), render_schema(&schema));
        }
        insta::assert_snapshot!(format!("typed_{name}_rows"), render_rows(&batches));
    }
}

#[test]
fn every_fixture_project_pulls_and_reads_back() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    paths.sort();
    paths.push(typed_fixture());
    let mut summary = String::new();
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let env = env(path);
        let dir = tempfile::tempdir().unwrap();
        let s = pull(&env, dir.path(), &PullOptions::default().batch_size(7));
        let layout =
            redcap::dataset::DatasetLayout::new(&env.client.project_schema().unwrap(), &LayoutOptions::default())
                .expect("layout");
        let mut line = format!("{name}: {} records;", s.manifest.records);
        for (table, schema, _) in read_dataset(dir.path(), &s.manifest) {
            if let Some(t) = layout.table(&table) {
                let got: Vec<_> = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
                let want: Vec<_> =
                    t.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
                assert_eq!(got, want, "{name}/{table}: read back with the dictionary's types");
            }
            line.push_str(&format!(" {table}={}", s.manifest.tables[&table].rows));
        }
        summary.push_str(&line);
        summary.push('\n');
        if matches!(
            name.as_str(),
            "redcapr-longitudinal"
                | "redcapr-repeating-instruments"
                | "redcapr-checkboxes-1"
                | "redcapr-decimal-comma"
                | "redcapr-validation-types-1"
                | "redcapr-dag"
                | "redcapr-nonnumeric-record-id"
                | "pycap-test_long_project"
        ) {
            let schemas: Vec<String> =
                layout.tables.iter().map(|t| format!("## {}\n{}", t.name, render_schema(&t.schema))).collect();
            insta::assert_snapshot!(format!("fixture_{name}_schemas"), schemas.join("\n"));
        }
    }
    insta::assert_snapshot!("every_fixture_counts", summary);
}

#[test]
fn a_pull_interrupted_mid_way_resumes_to_the_same_dataset() {
    let path = fixtures().join("redcapr-multilevel-model-1.xml");
    let whole_env = env(&path);
    let whole = tempfile::tempdir().unwrap();
    let options = PullOptions::default().batch_size(3).format(OutputFormat::Parquet);
    let reference = pull(&whole_env, whole.path(), &options);
    assert!(reference.manifest.batches.len() >= 7, "enough batches for any of the third to the sixth to fail");

    // After the second batch, the next call the server handles fails (a 400 is never
    // retried). Which batch that is depends on the order the exports in flight reach the
    // server's handler, which is not the order they were asked in. With one batch asked ahead,
    // the third is in flight and the fourth is asked only once the third has answered: the
    // third or the fourth fails, and two or three batches are kept. With two ahead (the
    // default), the third and fourth are in flight, the fifth is asked when the third is due
    // and the sixth when the fourth is; the seventh is asked only after the fifth has
    // answered, so one of the third to the sixth fails (CI runs saw the third, when its thread
    // was slow, and the sixth, when it overtook the fifth).
    for (parallel, resumable) in [(1, &[2, 3][..]), (2, &[2, 3, 4, 5][..])] {
        interrupted_and_resumed(&path, &options.clone().parallel(parallel), &reference, whole.path(), resumable);
    }
}

fn interrupted_and_resumed(
    path: &Path,
    options: &PullOptions,
    reference: &PullSummary,
    whole: &Path,
    resumable: &[usize],
) {
    let env = env(path);
    let dir = tempfile::tempdir().unwrap();
    let faults = env.emu.faults();
    let armed = AtomicBool::new(true);
    let progress = move |e: ProgressEvent| {
        let second = matches!(&e, ProgressEvent::Finished { item, .. } if item.starts_with("batch 2/"));
        if second && armed.swap(false, Ordering::SeqCst) {
            faults.inject(Fault::Status { status: 400, message: "Injected mid-pull".into() }, 1);
        }
    };
    let err = env.client.pull_dataset(dir.path(), options, &progress).expect_err("a later batch fails");
    assert!(matches!(err, PullError::Workflow(WorkflowError::Call(_))), "{err:?}");
    let finals: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(finals.is_empty(), "no file at a final path after a failed pull: {finals:?}");

    let resumed = pull(&env, dir.path(), &options.clone().resume(true));
    assert!(
        resumable.contains(&resumed.resumed_batches),
        "{} (--parallel {})",
        resumed.resumed_batches,
        options.parallel
    );
    assert_eq!(resumed.manifest.batches, reference.manifest.batches, "the same checkpoints");
    assert_eq!(resumed.manifest.schema_hash, reference.manifest.schema_hash);
    let a = read_dataset(whole, &reference.manifest);
    let b = read_dataset(dir.path(), &resumed.manifest);
    assert_eq!(a.len(), b.len());
    for ((name, sa, ba), (_, sb, bb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb, "{name}");
        assert_eq!(render_rows(ba), render_rows(bb), "{name}: the same rows");
    }

    // Without --resume an interrupted pull starts over, and gives the same dataset too.
    let again = pull(&env, dir.path(), options);
    assert_eq!(again.resumed_batches, 0);
    assert_eq!(again.manifest.tables, reference.manifest.tables);
}

/// Whether the emulator sees `n` records exports within 20 s (waited for inside a progress
/// event, while the pull holds a batch: exports that start only after it returns never come).
fn exports_reach(faults: &redcap_emulator::Faults, n: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if faults.record_exports().len() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_pull_exports_the_next_batch_while_it_writes_the_current_one() {
    let env = env(&fixtures().join("redcapr-multilevel-model-1.xml"));
    let dir = tempfile::tempdir().unwrap();
    let faults = env.emu.faults();
    let overlapped = AtomicBool::new(false);
    let progress = |e: ProgressEvent| {
        if matches!(&e, ProgressEvent::Finished { item, .. } if item.starts_with("batch 1/")) {
            // Batch 1 is written (exports so far: the id list, batch 1); batch 2's export must
            // already be on its way. Without the overlap it would start only after this
            // returns, so the wait runs out.
            overlapped.store(exports_reach(&faults, 3), Ordering::SeqCst);
        }
    };
    let options = PullOptions::default().batch_size(4);
    let summary = env.client.pull_dataset(dir.path(), &options, &progress).expect("pull");
    assert!(summary.manifest.batches.len() >= 3);
    assert!(overlapped.load(Ordering::SeqCst), "batch 2 was exported while batch 1 was written");
    let exports = faults.record_exports();
    assert_eq!(exports.len(), summary.manifest.batches.len() + 1, "the id list, then each batch once: {exports:?}");
}

#[test]
fn a_parallel_pull_has_its_batches_in_flight_together_and_gives_the_same_dataset() {
    let path = fixtures().join("redcapr-multilevel-model-1.xml");
    let options = PullOptions::default().batch_size(3);
    let whole = tempfile::tempdir().unwrap();
    let reference = pull(&env(&path), whole.path(), &options);
    assert!(reference.manifest.batches.len() >= 5);
    let env = env(&path);
    let dir = tempfile::tempdir().unwrap();
    let faults = env.emu.faults();
    let together = AtomicBool::new(false);
    let progress = |e: ProgressEvent| {
        if matches!(&e, ProgressEvent::Finished { item, .. } if item.starts_with("batch 1/")) {
            // While batch 1 is written, batches 2 and 3 are both on their way (exports so far:
            // the id list, batch 1, 2, 3); one at a time, the third export never starts.
            together.store(exports_reach(&faults, 4), Ordering::SeqCst);
        }
    };
    let summary = env.client.pull_dataset(dir.path(), &options.clone().parallel(2), &progress).expect("pull");
    assert!(together.load(Ordering::SeqCst), "two batches in flight while the first was written");
    let exports = faults.record_exports();
    assert_eq!(exports.len(), summary.manifest.batches.len() + 1, "the id list, then each batch once: {exports:?}");
    assert_eq!(summary.manifest.batches, reference.manifest.batches);
    let expected = read_dataset(whole.path(), &reference.manifest);
    for ((name, sa, ra), (_, sb, rb)) in expected.iter().zip(&read_dataset(dir.path(), &summary.manifest)) {
        assert_eq!(sa, sb, "{name}");
        assert_eq!(render_rows(ra), render_rows(rb), "{name}");
    }
}

/// While each batch is written, the next `--parallel` batches are being exported: the window
/// slides one batch at a time. (Before, a group of batches was exported together and the next
/// group only while the last of them was written: while the others were written, the server
/// had nothing to do.)
#[test]
fn a_parallel_pull_keeps_its_window_of_exports_full_while_each_batch_is_written() {
    let path = fixtures().join("redcapr-multilevel-model-1.xml");
    let options = PullOptions::default().batch_size(2);
    for parallel in [1usize, 2, 3] {
        let env = env(&path);
        let dir = tempfile::tempdir().unwrap();
        let faults = env.emu.faults();
        let seen = std::sync::Mutex::new(Vec::new());
        let batches = std::sync::atomic::AtomicUsize::new(0);
        let progress = |e: ProgressEvent| match &e {
            ProgressEvent::Planned { items, .. } => batches.store(*items as usize, Ordering::SeqCst),
            ProgressEvent::Finished { item, .. } if item.starts_with("batch ") => {
                let k: usize = item["batch ".len()..].split('/').next().unwrap().parse().unwrap();
                // The id list, the batches up to this one, and the window after it.
                let due = 1 + (k + parallel).min(batches.load(Ordering::SeqCst));
                let reached = exports_reach(&faults, due);
                seen.lock().unwrap().push((k, reached, faults.record_exports().len() <= due));
            }
            _ => {}
        };
        let summary =
            env.client.pull_dataset(dir.path(), &options.clone().parallel(parallel), &progress).expect("pull");
        let seen = seen.into_inner().unwrap();
        assert!(summary.manifest.batches.len() >= 6, "enough batches to slide over");
        assert_eq!(seen.len(), summary.manifest.batches.len());
        for (k, reached, bounded) in seen {
            assert!(reached, "--parallel {parallel}: the window after batch {k} was not full while it was written");
            assert!(bounded, "--parallel {parallel}: more than the window after batch {k}");
        }
    }
}

/// Batches are exported as CSV; one the server cannot answer whole goes to the self-healing
/// export, halved, and the dataset is the same as an undisturbed pull's (issue 11: a 500 "Allowed
/// memory size … exhausted" (PyCap#80), a proxy's 504 (REDCapR#383), an empty 200
/// (REDCapTidieR#212), silently missing records (REDCapR#400), columns cut off).
#[test]
fn a_pull_heals_batches_the_server_cannot_answer() {
    let path = fixtures().join("redcapr-multilevel-model-1.xml");
    let options = PullOptions::default().batch_size(4);
    let whole = tempfile::tempdir().unwrap();
    let reference = pull(&env(&path), whole.path(), &options);
    let expected = read_dataset(whole.path(), &reference.manifest);
    let faults = BatchFault::known();
    for fault in faults {
        let env = env(&path);
        env.emu.faults().fail_batches_over(1, fault.clone());
        let dir = tempfile::tempdir().unwrap();
        let splits = std::sync::atomic::AtomicU64::new(0);
        let progress = |e: ProgressEvent| {
            if matches!(e, ProgressEvent::Split { .. }) {
                splits.fetch_add(1, Ordering::SeqCst);
            }
        };
        let summary =
            env.client.pull_dataset(dir.path(), &options, &progress).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(env.emu.faults().batches_failed() >= reference.manifest.batches.len() as u64, "{fault:?}");
        assert!(splits.load(Ordering::SeqCst) >= reference.manifest.batches.len() as u64, "{fault:?}: splits reported");
        assert_eq!(summary.manifest.tables, reference.manifest.tables, "{fault:?}");
        let got = read_dataset(dir.path(), &summary.manifest);
        for ((name, sa, ra), (_, sb, rb)) in expected.iter().zip(&got) {
            assert_eq!(sa, sb, "{fault:?}: {name}");
            assert_eq!(render_rows(ra), render_rows(rb), "{fault:?}: {name}");
        }
    }
}

#[test]
fn the_async_client_pulls_the_same_dataset() {
    use redcap::dataset::asynchronous::Datasets as _;
    let env = env(&typed_fixture());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = redcap::asynchronous::Client::builder(env.emu.url(), &env.token).allow_http(true).build().unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let options = PullOptions::default().batch_size(3);
    // Its batches heal too (three in flight at once): every CSV answer of more than one record loses its last record.
    env.emu.faults().fail_batches_over(1, BatchFault::DropRows);
    let sa = rt.block_on(client.pull_dataset(a.path(), &options.clone().parallel(3), &NoProgress)).expect("async pull");
    assert!(env.emu.faults().batches_failed() > 0);
    env.emu.faults().clear();
    let sb = pull(&env, b.path(), &options);
    assert_eq!(sa.manifest.tables, sb.manifest.tables);
    for ((name, _, ra), (_, _, rb)) in
        read_dataset(a.path(), &sa.manifest).iter().zip(&read_dataset(b.path(), &sb.manifest))
    {
        assert_eq!(render_rows(ra), render_rows(rb), "{name}");
    }
}

#[test]
fn forms_events_and_records_narrow_the_pull() {
    let env = env(&fixtures().join("redcapr-longitudinal.xml"));
    let schema = env.client.project_schema().unwrap();
    let event = schema.events[0]["unique_event_name"].as_str().unwrap().to_owned();
    let form = schema.mappings.iter().find(|m| m["unique_event_name"] == event.as_str()).unwrap()["form"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let options = PullOptions::default()
        .layout(LayoutOptions::default().forms([form.clone()]).events([event.clone()]))
        .records(["100", "304"]);
    let s = pull(&env, dir.path(), &options);
    let tables: Vec<&String> = s.manifest.tables.keys().filter(|t| !t.starts_with('_')).collect();
    assert_eq!(tables, [&form]);
    let (_, batches) = read_parquet(&dir.path().join(format!("{form}.parquet")));
    let mut ids = std::collections::BTreeSet::new();
    for b in &batches {
        let events = b.column_by_name("redcap_event_name").unwrap();
        let events = events.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        assert!(events.iter().all(|e| e == Some(event.as_str())));
        let id = b.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        ids.extend(id.iter().flatten().map(str::to_owned));
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| id == "100" || id == "304"), "{ids:?}");
    assert_eq!(s.manifest.records, ids.len() as u64, "records with data in the event");
    let err = env.client.pull_dataset(
        dir.path(),
        &PullOptions::default().layout(LayoutOptions::default().forms(["nope"])),
        &NoProgress,
    );
    assert!(matches!(err, Err(PullError::Dataset(redcap::dataset::Error::UnknownInstrument(_)))));
}

/// Every table of the dataset in `dir` as its manifest lists it, rendered (issue 10 review:
/// the commit must never leave a mixed or unreadable dataset).
fn rendered(dir: &Path) -> Vec<(String, String)> {
    let manifest = Manifest::load(dir).expect("a readable manifest");
    read_dataset(dir, &manifest).into_iter().map(|(name, _, batches)| (name, render_rows(&batches))).collect()
}

#[test]
fn a_narrower_pull_removes_tables_and_a_pull_stopped_at_any_commit_step_leaves_the_previous_dataset() {
    let env = env(&typed_fixture());
    let schema = env.client.project_schema().unwrap();
    let form = schema.instruments[0]["instrument_name"].as_str().unwrap().to_owned();
    assert!(schema.instruments.len() > 1, "a narrower pull drops tables");
    let full = PullOptions::default().batch_size(4);
    let narrow = PullOptions::default().batch_size(4).layout(LayoutOptions::default().forms([form.clone()]));
    let reference = tempfile::tempdir().unwrap();
    pull(&env, reference.path(), &narrow);
    let narrow_tables = rendered(reference.path());

    let mut k = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        pull(&env, dir.path(), &full);
        let before = rendered(dir.path());
        let stopped = env.client.pull_dataset(dir.path(), &narrow.clone().crash_at(Some(k)), &NoProgress);
        let now = rendered(dir.path());
        assert!(now == before || now == narrow_tables, "step {k}: neither the previous dataset nor the new one");
        pull(&env, dir.path(), &narrow);
        assert_eq!(rendered(dir.path()), narrow_tables, "step {k}: the next run converges");
        let mut visible: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        visible.sort();
        let mut expected: Vec<String> =
            Manifest::load(dir.path()).unwrap().tables.values().map(|t| t.file.clone()).collect();
        expected.push("_manifest.json".into());
        expected.sort();
        assert_eq!(visible, expected, "step {k}: tables no longer produced are removed, nothing else is left");
        assert!(!visible.contains(&format!("{}.parquet", schema.instruments[1]["instrument_name"].as_str().unwrap())));
        match stopped {
            Ok(_) => break,
            Err(PullError::Dataset(redcap::dataset::Error::Injected)) => k += 1,
            Err(e) => panic!("step {k}: {e}"),
        }
    }
    assert!(k > 5, "the commit was stopped at each of its steps ({k})");
}

#[test]
fn the_schema_asks_for_each_part_once_and_only_for_the_parts_the_project_has() {
    // The parts are asked for at once after the project info: each exactly once, the events,
    // arms and mappings only of a longitudinal project, the repeating setup only of one that
    // repeats; the blocking and async clients gather the same schema.
    use redcap::dataset::asynchronous::Datasets as _;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // (fixture, calls: info, version, metadata, field names, instruments, DAGs, + optional parts)
    for (fixture, calls) in [
        (fixtures().join("redcapr-simple.xml"), 6),
        (fixtures().join("redcapr-repeating-instruments.xml"), 7),
        (fixtures().join("redcapr-longitudinal.xml"), 9),
        (typed_fixture(), 7),
    ] {
        let env = env(&fixture);
        let before = env.emu.faults().calls();
        let schema = env.client.project_schema().unwrap();
        assert_eq!(env.emu.faults().calls() - before, calls, "{}", fixture.display());
        assert!(!schema.metadata.is_empty() && !schema.instruments.is_empty() && !schema.redcap_version.is_empty());
        let client = redcap::asynchronous::Client::builder(env.emu.url(), &env.token).allow_http(true).build().unwrap();
        let before = env.emu.faults().calls();
        let from_async = rt.block_on(client.project_schema()).unwrap();
        assert_eq!(env.emu.faults().calls() - before, calls, "{}", fixture.display());
        assert_eq!(from_async.hash(), schema.hash(), "{}", fixture.display());
        assert_eq!(from_async.redcap_version, schema.redcap_version);
    }
}

/// A pull first reads the log for the watermark a later sync starts from. A token that may not
/// read the log is refused, and the pull goes on without one (a sync then rebuilds in full);
/// with the right, the watermark is kept.
#[test]
fn a_pull_by_a_token_without_the_logging_right_has_no_watermark() {
    let env = env(&fixtures().join("redcapr-simple.xml"));
    let pid = env.emu.project_ids()[0];
    let rights = redcap_emulator::Rights { logging: false, ..redcap_emulator::Rights::full() };
    let token = env.emu.add_user(pid, redcap_emulator::User::new("nolog").rights(rights)).unwrap();
    let nolog = redcap::blocking::Client::builder(env.emu.url(), &token).allow_http(true).build().unwrap();
    let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let options = PullOptions::default().batch_size(2);
    let refused = nolog.pull_dataset(without.path(), &options, &NoProgress).expect("pull without the log");
    assert_eq!(refused.manifest.watermark, None);
    let kept = pull(&env, with.path(), &options);
    assert!(kept.manifest.watermark.is_some());
    assert_eq!(refused.manifest.tables, kept.manifest.tables, "the same data either way");
}
