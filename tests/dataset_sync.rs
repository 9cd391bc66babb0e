//! `dataset sync` against the emulator (issue 11 item 1): over random sequences of imports,
//! deletes (whole and partial), renames, DAG assignments and dictionary edits, **a sync gives
//! exactly the dataset a fresh pull gives**; a sync stopped at any step of its commit, or by a
//! failed export, leaves the previous dataset readable and the next run converges.
//!
//! The sequences are seeded (`SYNC_SEED=<n>` replays one; every assertion names its seed).
//! Datasets are written to a RAM disk where there is one: the commits' fsyncs, not the syncs,
//! were most of the run time, and durability is not what these tests check (a crash is the
//! commit's test hook, not a power cut).

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::RecordBatch;
use redcap::blocking::Workflows;
use redcap::dataset::blocking::Datasets;
use redcap::dataset::{Manifest, PullError, PullOptions, SyncOptions, SyncSummary};
use redcap::workflow::NoProgress;
use redcap::{metadata, record};
use redcap_core::RetryPolicy;
use redcap_emulator::{Emulator, Fault, RunningEmulator};

fn typed_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dataset-typed.xml")
}

/// A scratch directory, on `/dev/shm` (tmpfs) when the system has it.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.expect("a scratch directory")
}

struct Env {
    emu: RunningEmulator,
    client: redcap::blocking::Client,
}

fn env() -> Env {
    env_of(&typed_fixture())
}

fn env_of(xml: &Path) -> Env {
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
    Env { emu, client }
}

/// Every table of the dataset in `dir`, as its manifest lists it: (name, file, rows as CSV,
/// the Arrow schema rendered), and the manifest's record count.
fn content(dir: &Path) -> (u64, Vec<(String, String, String, String)>) {
    let manifest = Manifest::load(dir).expect("a readable manifest");
    let tables = manifest
        .tables
        .iter()
        .map(|(name, entry)| {
            let file = std::fs::File::open(dir.join(&entry.file)).unwrap_or_else(|e| panic!("{}: {e}", entry.file));
            let (schema, batches): (String, Vec<RecordBatch>) = if entry.file.ends_with(".arrow") {
                let reader = arrow_ipc::reader::FileReader::try_new(file, None).expect("arrow");
                (render_schema(&reader.schema()), reader.collect::<Result<_, _>>().unwrap())
            } else {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
                (render_schema(builder.schema()), builder.build().unwrap().collect::<Result<_, _>>().unwrap())
            };
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(rows as u64, entry.rows, "{name}: the manifest counts the rows");
            let mut buf = Vec::new();
            {
                let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for b in &batches {
                    w.write(b).unwrap();
                }
            }
            (name.clone(), entry.file.clone(), String::from_utf8(buf).unwrap(), schema)
        })
        .collect();
    (manifest.records, tables)
}

/// A schema with its metadata in a stable order.
fn render_schema(schema: &arrow_schema::Schema) -> String {
    let sorted = |m: &std::collections::HashMap<String, String>| {
        m.iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    };
    let mut out = format!("{:?}\n", sorted(schema.metadata()));
    for f in schema.fields() {
        out.push_str(&format!("{} {:?} {} {:?}\n", f.name(), f.data_type(), f.is_nullable(), sorted(f.metadata())));
    }
    out
}

/// The first difference between two datasets, for a readable failure.
fn diff(a: &(u64, Vec<(String, String, String, String)>), b: &(u64, Vec<(String, String, String, String)>)) -> String {
    if a.0 != b.0 {
        return format!("records {} vs {}", a.0, b.0);
    }
    let names = |x: &(u64, Vec<(String, String, String, String)>)| x.1.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        return format!("tables {:?} vs {:?}", names(a), names(b));
    }
    for (x, y) in a.1.iter().zip(&b.1) {
        if x.3 != y.3 {
            return format!("{}: schemas differ", x.0);
        }
        if x.2 != y.2 {
            return format!("{}: rows differ\n--- sync\n{}\n--- pull\n{}", x.0, x.2, y.2);
        }
    }
    String::new()
}

struct World {
    rng: fastrand::Rng,
    records: Vec<String>,
    next_name: u32,
    extra_fields: u32,
}

impl World {
    /// A world over the project's records as the emulator holds them.
    fn new(seed: u64, env: &Env) -> World {
        let mut records: Vec<String> = env
            .client
            .call(&record::export::Request::new().fields(["record_id"]))
            .unwrap()
            .rows()
            .unwrap()
            .iter()
            .filter_map(|r| r["record_id"].as_str().map(str::to_owned))
            .collect();
        records.dedup();
        World { rng: fastrand::Rng::with_seed(seed), records, next_name: 0, extra_fields: 0 }
    }

    fn pick(&mut self) -> Option<String> {
        (!self.records.is_empty()).then(|| self.records[self.rng.usize(..self.records.len())].clone())
    }

    fn fresh_name(&mut self) -> String {
        self.next_name += 1;
        // Non-numeric names too: ids are text.
        if self.rng.bool() { format!("{}", 100 + self.next_name) } else { format!("S-{:03}", self.next_name) }
    }

    /// One random change; returns what it did (for the failure message).
    fn change(&mut self, env: &Env) -> String {
        let api = &env.client;
        match self.rng.u32(..100) {
            0..=34 => {
                let id = if self.records.is_empty() || self.rng.u32(..4) == 0 {
                    let n = self.fresh_name();
                    self.records.push(n.clone());
                    n
                } else {
                    self.pick().unwrap()
                };
                let sex = ["1", "2", ""][self.rng.usize(..3)];
                let name = format!("n{}", self.rng.u32(..1000));
                let row = serde_json::json!([{ "record_id": id, "name": name, "sex": sex, "comment": "c\nline" }]);
                let r = record::import::Request::new(row.to_string())
                    .overwrite_behavior(redcap_core::OverwriteBehavior::Overwrite);
                api.call(&r).expect("import");
                format!("import {id}")
            }
            35..=54 => {
                let Some(id) = self.pick() else { return "nothing".into() };
                let instance = self.rng.u32(1..4);
                let dose = format!("{}.{:02}", self.rng.u32(..10), self.rng.u32(..100));
                let row = serde_json::json!([{ "record_id": id, "redcap_repeat_instrument": "meds", "redcap_repeat_instance": instance, "dose": dose }]);
                api.call(&record::import::Request::new(row.to_string())).expect("import instance");
                format!("meds {id}#{instance}")
            }
            55..=64 => {
                let Some(id) = self.pick() else { return "nothing".into() };
                api.call(&record::delete::Request::new([id.clone()])).expect("delete");
                self.records.retain(|r| r != &id);
                format!("delete {id}")
            }
            65..=72 => {
                let Some(id) = self.pick() else { return "nothing".into() };
                let instance = self.rng.u64(1..4);
                // REDCap refuses a partial delete of nothing; either outcome is a valid history.
                let r = record::delete::Request::new([id.clone()]).instrument("meds").repeat_instance(instance);
                let done = api.call(&r).is_ok();
                if done {
                    // A partial delete that empties the record deletes it.
                    let left = api.call(&record::export::Request::new().records([id.clone()])).unwrap().rows().unwrap();
                    if left.is_empty() {
                        self.records.retain(|x| x != &id);
                    }
                }
                format!("partial delete {id}#{instance} ({done})")
            }
            73..=84 => {
                let Some(id) = self.pick() else { return "nothing".into() };
                let to = self.fresh_name();
                api.call(&record::rename::Request::new(id.clone(), to.clone())).expect("rename");
                self.records.retain(|r| r != &id);
                self.records.push(to.clone());
                format!("rename {id} -> {to}")
            }
            85..=95 => {
                let Some(id) = self.pick() else { return "nothing".into() };
                let dag = ["north", "south", ""][self.rng.usize(..3)];
                let row = serde_json::json!([{ "record_id": id, "redcap_data_access_group": dag }]);
                api.call(&record::import::Request::new(row.to_string())).expect("dag");
                format!("dag {id} = {dag:?}")
            }
            n => {
                // A dictionary edit: a new text field on the first form (the record id's: that
                // table is rebuilt from whole records) or on the repeating `meds` form (only
                // that table is rebuilt, from its instrument alone).
                self.extra_fields += 1;
                let mut fields = api.call(&metadata::export::Request::new()).unwrap().raw().rows().unwrap();
                let at = if n % 2 == 0 {
                    1
                } else {
                    fields.iter().position(|f| f["form_name"] == "meds").expect("a meds field")
                };
                let mut extra = fields[at].clone();
                for v in extra.values_mut() {
                    *v = serde_json::Value::String(String::new());
                }
                let name = format!("extra_{}", self.extra_fields);
                extra.insert("field_name".into(), name.clone().into());
                extra.insert("form_name".into(), fields[at]["form_name"].clone());
                extra.insert("field_type".into(), "text".into());
                extra.insert("field_label".into(), "Extra".into());
                fields.insert(at + 1, extra);
                let body = serde_json::Value::Array(fields.into_iter().map(serde_json::Value::Object).collect());
                api.call(&metadata::import::Request::new(body.to_string())).expect("metadata import");
                format!("dictionary + {name}")
            }
        }
    }
}

fn sync(env: &Env, dir: &Path, options: &SyncOptions) -> Result<SyncSummary, PullError> {
    env.client.sync_dataset(dir, options, &NoProgress)
}

fn fresh(env: &Env, options: &PullOptions) -> (u64, Vec<(String, String, String, String)>) {
    let dir = scratch();
    env.client.pull_dataset(dir.path(), options, &NoProgress).expect("fresh pull");
    content(dir.path())
}

/// A longitudinal project's id-only export lists a record once per event. A sync that planned
/// from those rows saw its kept records in another "order" than the dataset's (duplicates) and
/// rebuilt every time; it must plan from the distinct ids and update in place.
#[test]
fn a_longitudinal_dataset_is_updated_in_place() {
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/redcap-emulator/fixtures/redcapr-longitudinal.xml");
    let env = env_of(&xml);
    let dir = scratch();
    let options = PullOptions::default().batch_size(3);
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("pull");
    let unchanged = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!(unchanged.rebuilt, None, "{unchanged:?}");
    assert!(unchanged.fetched.is_empty() && unchanged.dropped.is_empty(), "{unchanged:?}");

    let mut ids: Vec<String> = env
        .client
        .call(&record::export::Request::new())
        .unwrap()
        .rows()
        .unwrap()
        .iter()
        .filter_map(|r| r.values().next().and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    ids.dedup();
    assert!(ids.len() > 1, "{ids:?}");
    env.client.call(&record::delete::Request::new([ids[0].clone()])).expect("delete");
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!(summary.rebuilt, None, "{summary:?}");
    assert_eq!(summary.dropped, [ids[0].clone()]);
    assert_eq!(content(dir.path()), fresh(&env, &options), "the same dataset as a fresh pull");
}

/// Problems of several records in one batch, in two tables, keep a fresh pull's order through a
/// sync: the problems table lists them record by record (in the dataset's record order), each
/// record's as its cast found them. A sync rewrites the table record by record; a pull that
/// listed a batch's problems table by table, column by column, gave another order.
#[test]
fn problems_of_several_records_keep_a_fresh_pulls_order_through_a_sync() {
    let xml = std::fs::read_to_string(typed_fixture()).unwrap();
    // Record 0042 gets bad values beside 12-3's: an age that is no number, a dose that is none.
    let xml = xml
        .replacen(r#"<ItemData ItemOID="age" Value="0"/>"#, r#"<ItemData ItemOID="age" Value="x1"/>"#, 1)
        .replacen(r#"<ItemData ItemOID="dose" Value="1.00"/>"#, r#"<ItemData ItemOID="dose" Value="zz"/>"#, 1);
    let scratch_xml = scratch();
    let path = scratch_xml.path().join("typed.xml");
    std::fs::write(&path, xml).unwrap();
    let env = env_of(&path);
    let dir = scratch();
    let options = PullOptions::default().batch_size(10);
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("pull");
    let row = serde_json::json!([{ "record_id": "001", "name": "changed" }]);
    env.client.call(&record::import::Request::new(row.to_string())).expect("import");
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!((summary.rebuilt.clone(), summary.fetched.clone()), (None, vec!["001".to_owned()]), "{summary:?}");
    let (synced, pulled) = (content(dir.path()), fresh(&env, &options));
    let problems = &pulled.1.iter().find(|t| t.0 == "_problems").unwrap().2;
    let records: Vec<&str> = problems.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert!(records.contains(&"0042") && records.contains(&"12-3"), "{problems}");
    let mut grouped = records.clone();
    grouped.dedup();
    assert_eq!(grouped, ["0042", "12-3"], "record by record, in record order: {problems}");
    assert!(synced == pulled, "{}", diff(&synced, &pulled));
}

/// Adds a text field `name` to the repeating `meds` instrument.
fn add_meds_field(env: &Env, name: &str) {
    let mut fields = env.client.call(&metadata::export::Request::new()).unwrap().raw().rows().unwrap();
    let at = fields.iter().position(|f| f["form_name"] == "meds").unwrap();
    let mut extra = fields[at].clone();
    for v in extra.values_mut() {
        *v = serde_json::Value::String(String::new());
    }
    for (k, v) in [("field_name", name), ("form_name", "meds"), ("field_type", "text"), ("field_label", "Route")] {
        extra.insert(k.into(), v.into());
    }
    fields.insert(at + 1, extra);
    let body = serde_json::Value::Array(fields.into_iter().map(serde_json::Value::Object).collect());
    env.client.call(&metadata::import::Request::new(body.to_string())).expect("metadata import");
}

/// The async client's sync runs the same calls: a dictionary change on `meds` rebuilds that
/// table only, its batches healed when the server drops rows of them, and the dataset is
/// exactly a fresh pull's.
#[test]
fn the_async_client_syncs_the_same_dataset() {
    use redcap::dataset::asynchronous::Datasets as _;
    let env = env();
    let dir = scratch();
    let options = PullOptions::default().batch_size(2);
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("pull");
    add_meds_field(&env, "route");
    let row = serde_json::json!([{ "record_id": "7", "name": "changed" }]);
    env.client.call(&record::import::Request::new(row.to_string())).expect("import");
    let pid = env.emu.project_ids()[0];
    let token = env.emu.token(pid, "admin").expect("admin token");
    let client = redcap::asynchronous::Client::builder(env.emu.url(), &token).allow_http(true).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Every answer of more than one record loses its last record: the rebuild's CSV batches heal.
    env.emu.faults().fail_batches_over(1, redcap_emulator::BatchFault::DropRows);
    let summary = rt.block_on(client.sync_dataset(dir.path(), &SyncOptions::default(), &NoProgress)).expect("sync");
    assert!(env.emu.faults().batches_failed() > 0, "the fault was met");
    env.emu.faults().clear();
    assert_eq!((summary.rebuilt.clone(), summary.rebuilt_tables.clone()), (None, vec!["meds".to_owned()]));
    assert_eq!(content(dir.path()), fresh(&env, &options), "the same dataset as a fresh pull");
}

/// Issue 11: "a changed dictionary rebuilds the affected tables in full". A field added to the
/// repeating `meds` instrument changes that table only: the sync rebuilds `meds` from an export
/// of that instrument for every record and updates `enrol` in place (here: the one changed
/// record). Changing what every table shares (the missing-data codes) rebuilds them all. Each
/// time the dataset is exactly a fresh pull's.
#[test]
fn a_dictionary_change_rebuilds_only_the_tables_it_touches() {
    let env = env();
    let dir = scratch();
    let options = PullOptions::default().batch_size(3);
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("pull");
    add_meds_field(&env, "route");
    let row = serde_json::json!([{ "record_id": "001", "name": "changed" }]);
    env.client.call(&record::import::Request::new(row.to_string())).expect("import");
    let exports_before = env.emu.faults().record_exports().len();
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!(summary.rebuilt, None, "{summary:?}");
    assert_eq!(summary.rebuilt_tables, ["meds"]);
    assert_eq!(summary.fetched, ["001"]);
    let exports = &env.emu.faults().record_exports()[exports_before..];
    // The id list, the changed record, then every record for meds, a batch (3) a call.
    assert_eq!(exports[..2], [Vec::<String>::new(), vec!["001".to_owned()]], "{exports:?}");
    assert_eq!(exports[2..], [vec!["001", "7", "0042"], vec!["12-3"]], "{exports:?}");
    assert_eq!(content(dir.path()), fresh(&env, &options), "the same dataset as a fresh pull");
    let meds = read_columns(dir.path(), "meds");
    assert!(meds.contains(&"route".to_owned()), "{meds:?}");

    // What all tables share (here a new DAG): every table is rebuilt.
    let dag = serde_json::json!([{ "data_access_group_name": "West", "unique_group_name": "" }]);
    env.client.call(&redcap::dag::import::Request::new(dag.to_string())).expect("dag import");
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!(summary.rebuilt, Some(redcap::dataset::RebuildReason::SchemaChanged), "{summary:?}");
    assert_eq!(content(dir.path()), fresh(&env, &options), "the same dataset as a fresh pull");
}

/// The column names of one table of the dataset in `dir`.
fn read_columns(dir: &Path, table: &str) -> Vec<String> {
    let manifest = Manifest::load(dir).unwrap();
    let file = std::fs::File::open(dir.join(&manifest.tables[table].file)).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    builder.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// An Arrow-format dataset is merged in place too (its tables read back a batch at a time), and
/// comes out exactly as a fresh Arrow pull.
#[test]
fn an_arrow_dataset_is_updated_in_place() {
    let env = env();
    let dir = scratch();
    let options = PullOptions::default().batch_size(2).format(redcap::dataset::OutputFormat::Arrow);
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("pull");
    let row = serde_json::json!([{ "record_id": "7", "name": "changed" }]);
    env.client.call(&record::import::Request::new(row.to_string())).expect("import");
    env.client.call(&record::delete::Request::new(["0042".to_owned()])).expect("delete");
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("sync");
    assert_eq!((summary.rebuilt.clone(), summary.dropped.clone()), (None, vec!["0042".to_owned()]), "{summary:?}");
    assert_eq!(content(dir.path()), fresh(&env, &options), "the same dataset as a fresh pull");
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("SYNC_SEED") {
        Ok(s) => vec![s.parse().expect("SYNC_SEED is a number")],
        Err(_) => default.collect(),
    }
}

/// Issue 11: the invariant "over a few hundred random change sequences": 30 seeds × 10
/// rounds, each round 1–3 changes then a sync compared with a fresh pull (300 syncs).
#[test]
fn sync_gives_exactly_the_dataset_a_fresh_pull_gives() {
    // Seeds are independent (each its own emulator and directories): a few at once keep the
    // run time bounded; a failing seed still names itself and replays alone.
    let seeds = seeds(0..30);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let totals = std::sync::Mutex::new((0usize, 0usize));
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                while let Some(&seed) = seeds.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) {
                    let (rounds, incremental) = sync_rounds(seed, 10);
                    let mut t = totals.lock().unwrap();
                    t.0 += rounds;
                    t.1 += incremental;
                }
            });
        }
    });
    let (rounds, incremental) = totals.into_inner().unwrap();
    let replay = std::env::var("SYNC_SEED").is_ok();
    assert!(replay || rounds >= 300, "{rounds} syncs compared with a fresh pull");
    assert!(incremental * 2 > rounds, "most syncs update in place ({incremental} of {rounds})");
}

/// One seed: a first pull, then `rounds` times 1–3 random changes and a sync checked against a
/// fresh pull. Returns the syncs made and how many updated in place.
fn sync_rounds(seed: u64, rounds: usize) -> (usize, usize) {
    let options = PullOptions::default().batch_size(3);
    let env = env();
    let mut world = World::new(seed, &env);
    let dir = scratch();
    env.client.pull_dataset(dir.path(), &options, &NoProgress).expect("first pull");
    let mut incremental = 0;
    for round in 0..rounds {
        let mut history = Vec::new();
        for _ in 0..world.rng.usize(1..4) {
            history.push(world.change(&env));
        }
        // Odd seeds fetch the changed records with batches in flight together.
        let sync_options = SyncOptions::default().parallel(if seed % 2 == 1 { 3 } else { 1 });
        let summary = sync(&env, dir.path(), &sync_options)
            .unwrap_or_else(|e| panic!("seed {seed} round {round} {history:?}: sync failed: {e}"));
        if summary.rebuilt.is_none() {
            incremental += 1;
        }
        let (synced, pulled) = (content(dir.path()), fresh(&env, &options));
        assert!(
            synced == pulled,
            "seed {seed} round {round} after {history:?} (sync: {:?}): {}",
            summary.rebuilt,
            diff(&synced, &pulled)
        );
    }
    (rounds, incremental)
}

#[test]
fn a_sync_stopped_at_any_point_leaves_the_previous_dataset_and_the_next_run_converges() {
    let options = PullOptions::default().batch_size(2);
    for seed in seeds(100..102) {
        let mut k = 0;
        loop {
            let env = env();
            let mut world = World::new(seed, &env);
            let dir = scratch();
            env.client.pull_dataset(dir.path(), &options, &NoProgress).unwrap();
            let before = content(dir.path());
            let mut history = Vec::new();
            for _ in 0..4 {
                history.push(world.change(&env));
            }
            let stopped = sync(&env, dir.path(), &SyncOptions::default().crash_at(Some(k)));
            let now = content(dir.path());
            let pulled = fresh(&env, &options);
            assert!(now == before || now == pulled, "seed {seed} step {k} {history:?}: neither dataset");
            let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("the next sync");
            assert!(content(dir.path()) == pulled, "seed {seed} step {k}: the next run converges ({summary:?})");
            match stopped {
                Ok(_) => break,
                Err(PullError::Dataset(redcap::dataset::Error::Injected)) => k += 1,
                Err(e) => panic!("seed {seed} step {k}: {e}"),
            }
        }
        assert!(k > 5, "seed {seed}: the commit was stopped at each of its {k} steps");
    }
}

#[test]
fn a_sync_whose_export_fails_keeps_the_previous_dataset() {
    let env = env();
    let options = PullOptions::default().batch_size(2);
    let dir = scratch();
    env.client.pull_dataset(dir.path(), &options, &NoProgress).unwrap();
    let before = content(dir.path());
    let row = serde_json::json!([{ "record_id": "1", "name": "changed" }]);
    env.client.call(&record::import::Request::new(row.to_string())).unwrap();
    // Every call after the schema fails (a 400 is never retried).
    env.emu.faults().inject(Fault::Status { status: 400, message: "Injected mid-sync".into() }, 1000);
    let err = sync(&env, dir.path(), &SyncOptions::default());
    assert!(err.is_err());
    env.emu.faults().clear();
    assert!(content(dir.path()) == before, "the previous dataset, untouched");
    let summary = sync(&env, dir.path(), &SyncOptions::default()).expect("the next sync");
    assert_eq!(summary.fetched, ["1"], "{summary:?}");
    assert!(content(dir.path()) == fresh(&env, &options));
}

/// redcapAPI#383: a long history asked for at once times out. A dataset pulled a month ago,
/// changed every three days since, synced against a server that answers 504 to any logging
/// export of more than a few entries: the sync reads the log in windows, halves those that
/// fail, and still gives what a fresh pull gives.
#[test]
fn a_sync_over_a_long_history_halves_the_log_windows_that_time_out() {
    let env = env();
    let pid = env.emu.project_ids()[0];
    let options = PullOptions::default().batch_size(4);
    let dir = scratch();
    env.client.pull_dataset(dir.path(), &options, &NoProgress).unwrap();
    let day = Duration::from_secs(86_400);
    let mut changed = Vec::new();
    for round in 0..10 {
        let ids = ["a", "b", "c", "d", "e", "f"].map(|x| format!("L{round}{x}"));
        for (i, id) in ids.into_iter().chain(["1".into(), "2".into()]).enumerate() {
            let row = serde_json::json!([{ "record_id": id, "name": format!("r{round}.{i}") }]);
            env.client.call(&record::import::Request::new(row.to_string())).unwrap();
            changed.push(id);
        }
        env.emu.age_log(pid, 3 * day).unwrap();
    }
    // The pull's own log entries moved back with the rest: so does its watermark.
    let path = dir.path().join(redcap::dataset::names::MANIFEST);
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let watermark: redcap_core::DateTime = manifest["watermark"].as_str().unwrap().parse().unwrap();
    manifest["watermark"] = watermark.add_minutes(-30 * 1440).unwrap().to_minute_string().into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    // The busiest minute (the pull's schema exports) must still be answerable; the month is not.
    let mut per_minute = std::collections::HashMap::<String, usize>::new();
    env.client
        .export_logging_each(&redcap::log::export::Request::new(), &mut |row| {
            let ts: String = row["timestamp"].as_str().unwrap().chars().take(16).collect();
            *per_minute.entry(ts).or_default() += 1;
            Ok(())
        })
        .unwrap();
    // (+30: the sync's own schema exports, and each refused logging export, are logged in
    // the sync's minute: a server logs an export its proxy gave up on.)
    let limit = per_minute.values().max().unwrap() + 30;
    assert!(per_minute.values().sum::<usize>() > limit + 20, "the history is long: {per_minute:?}");
    env.emu.faults().fail_logs_over(limit, 504);
    // One window for the whole month: it must be halved to get through.
    let sync_options = SyncOptions::default().log_window_minutes(60 * 1440);
    let summary = sync(&env, dir.path(), &sync_options).expect("the sync heals its log windows");
    assert!(env.emu.faults().logs_failed() > 0, "the whole month was asked and refused first");
    assert_eq!(summary.rebuilt, None, "an update in place, from the log");
    changed.sort();
    changed.dedup();
    let mut fetched = summary.fetched.clone();
    fetched.sort();
    assert_eq!(fetched, changed, "every change of the month, none twice");
    env.emu.faults().clear();
    assert!(content(dir.path()) == fresh(&env, &options));
}
