//! Benchmark driver: each measured operation runs in its own process so its peak RSS is its
//! own. `cargo xtask bench` orchestrates it; run by hand only to debug the benchmark.
//!
//! ```text
//! redcap-bench upload URL TOKEN FILE              # prints "<ms> <peak_rss_kib> <doc_id>"
//! redcap-bench download URL TOKEN DOC_ID OUT      # prints "<ms> <peak_rss_kib> <bytes>"
//! redcap-bench download-null URL TOKEN DOC_ID     # the same into /dev/null
//! redcap-bench small-blocking URL TOKEN N         # prints "<ms> <peak_rss_kib>"
//! redcap-bench small-async URL TOKEN N CONCURRENCY
//! redcap-bench gen-xml FIELDS RECORDS OUT.xml     # a synthetic project (see synth.rs)
//! redcap-bench gen-typed-xml RECORDS OUT.xml      # the typed project of the dataset benchmark (synth_typed.rs)
//! redcap-bench import URL TOKEN FIELDS RECORDS BATCH   # prints "<ms> <peak_rss_kib>"
//! redcap-bench export-each URL TOKEN BATCH        # rows streamed and dropped: "<ms> <peak_rss_kib> <rows>"
//! redcap-bench one-record URL TOKEN RECORDS CALLS CONCURRENCY  # "<ms> <peak_rss_kib> <errors>"
//! redcap-bench typed URL TOKEN text|typed buffered|streamed
//!     # one export into the text or typed project's typed rows, decoded from the whole body
//!     # or while it streams: "<ms> <peak_rss_kib> <rows>"
//! redcap-bench sync FIXTURE.xml DATA_DIR WORK_DIR FIELDS RECORDS CHANGED
//!     # in-process emulator: dataset pull, CHANGED records updated, dataset sync, full re-pull:
//!     # "<pull_ms> <pull_calls> <sync_ms> <sync_calls> <repull_ms> <repull_calls> <fetched>"
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

mod synth;
mod synth_typed;

use redcap::blocking::Workflows as _;
use redcap::workflow::{BatchOptions, NoProgress, RawRow};
use redcap::{Row, Target, file_repository, record, version};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn blocking(url: &str, token: &str) -> redcap::blocking::Client {
    redcap::blocking::Client::builder(url, token).allow_http(true).overall_timeout(None).build().expect("client")
}

/// Exports every record into a `Vec<T>`, kept until the count is returned: `buffered` decodes
/// the whole body (`rows_as`), `streamed` each row as it arrives (`RawRow::parse`), so the
/// body is never held.
fn typed_rows<T: serde::de::DeserializeOwned>(client: &redcap::blocking::Client, how: &str) -> usize {
    let request = record::export::Request::new();
    let rows: Vec<T> = if how == "buffered" {
        client.call(&request).expect("export").rows_as().expect("typed rows")
    } else {
        let mut rows = Vec::new();
        client
            .export_records_each(&request, &BatchOptions::default().one_call(), &NoProgress, &mut |raw: RawRow| {
                rows.push(raw.parse::<T>()?);
                Ok(())
            })
            .expect("typed rows");
        rows
    };
    rows.len()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["upload", url, token, file] => {
            let client = blocking(url, token);
            let started = Instant::now();
            let upload = redcap::Upload::from_path(Path::new(file));
            let name = upload.file_name.clone();
            client.call(&file_repository::import::Request::new(upload)).expect("upload");
            let ms = started.elapsed().as_millis();
            let doc = client
                .walk(None, &redcap::workflow::NoProgress)
                .expect("list")
                .files
                .iter()
                .filter(|f| f.name == name)
                .map(|f| f.doc_id)
                .max()
                .expect("uploaded file listed");
            println!("{ms} {} {doc}", peak_rss_kib());
        }
        ["download", url, token, doc, out] => {
            let client = blocking(url, token);
            let started = Instant::now();
            let done = client
                .download_to(
                    &file_repository::export::Request::new(doc.parse().expect("doc_id")),
                    &Target::File((*out).into()),
                )
                .expect("download");
            println!("{} {} {}", started.elapsed().as_millis(), peak_rss_kib(), done.bytes);
        }
        ["download-null", url, token, doc] => {
            let client = blocking(url, token);
            let started = Instant::now();
            let done = client
                .stream(&file_repository::export::Request::new(doc.parse().expect("doc_id")), &mut std::io::sink())
                .expect("download");
            println!("{} {} {}", started.elapsed().as_millis(), peak_rss_kib(), done.bytes);
        }
        ["small-blocking", url, token, n] => {
            let client = blocking(url, token);
            let started = Instant::now();
            for _ in 0..n.parse::<u32>().expect("n") {
                client.call(&version::export::Request::new()).expect("call");
            }
            println!("{} {}", started.elapsed().as_millis(), peak_rss_kib());
        }
        ["small-async", url, token, n, concurrency] => {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let c: usize = concurrency.parse().expect("concurrency");
            let client = redcap::asynchronous::Client::builder(*url, *token)
                .allow_http(true)
                .concurrency(c)
                .build()
                .expect("client");
            let started = Instant::now();
            rt.block_on(async {
                use futures_util::StreamExt;
                let n: usize = n.parse().expect("n");
                futures_util::stream::iter(0..n)
                    .for_each_concurrent(c, |_| async {
                        client.call(&version::export::Request::new()).await.expect("call");
                    })
                    .await;
            });
            println!("{} {}", started.elapsed().as_millis(), peak_rss_kib());
        }
        ["gen-xml", fields, records, out] => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("output file"));
            synth::project_xml(&mut f, fields.parse().expect("fields"), records.parse().expect("records"))
                .and_then(|()| std::io::Write::flush(&mut f))
                .expect("write project XML");
        }
        ["gen-typed-xml", records, out] => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("output file"));
            synth_typed::project_xml(&mut f, records.parse().expect("records"))
                .and_then(|()| std::io::Write::flush(&mut f))
                .expect("write project XML");
            println!("{}", synth_typed::FIELDS);
        }
        ["import", url, token, fields, records, batch] => {
            let fields: u64 = fields.parse().expect("fields");
            let names = synth::field_names(fields);
            let rows: Vec<Row> = (1..=records.parse::<u64>().expect("records"))
                .map(|r| {
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            let v = if i == 0 { r.to_string() } else { synth::value(r, i as u64) };
                            (n.clone(), serde_json::Value::String(v))
                        })
                        .collect()
                })
                .collect();
            let client = blocking(url, token);
            let options = BatchOptions::default().batch_size(batch.parse().expect("batch"));
            let started = Instant::now();
            client
                .import_records_batched(&rows, &redcap::workflow::ImportOptions::default(), &options, &NoProgress)
                .expect("import");
            println!("{} {}", started.elapsed().as_millis(), peak_rss_kib());
        }
        ["export-each", url, token, batch] => {
            let client = blocking(url, token);
            let options = BatchOptions::default().batch_size(batch.parse().expect("batch"));
            let started = Instant::now();
            let rows = client
                .export_records_each(&record::export::Request::new(), &options, &NoProgress, &mut |row: redcap::Row| {
                    drop(row);
                    Ok(())
                })
                .expect("export")
                .rows;
            println!("{} {} {rows}", started.elapsed().as_millis(), peak_rss_kib());
        }
        ["one-record", url, token, records, calls, concurrency] => {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let c: usize = concurrency.parse().expect("concurrency");
            let records: u64 = records.parse().expect("records");
            let client = redcap::asynchronous::Client::builder(*url, *token)
                .allow_http(true)
                .concurrency(c)
                .build()
                .expect("client");
            let errors = std::sync::atomic::AtomicU64::new(0);
            let started = Instant::now();
            rt.block_on(async {
                use futures_util::StreamExt;
                let n: u64 = calls.parse().expect("calls");
                futures_util::stream::iter(0..n)
                    .for_each_concurrent(c, |i| {
                        let client = &client;
                        let errors = &errors;
                        async move {
                            let mut req = record::export::Request::new();
                            // Spread over the project (a multiplicative walk), not one hot record.
                            req.records = vec![(i.wrapping_mul(7_919) % records + 1).to_string()];
                            match client.call(&req).await.map(|b| b.rows()) {
                                Ok(Ok(rows)) if rows.len() == 1 => {}
                                _ => {
                                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                        }
                    })
                    .await;
            });
            println!("{} {} {}", started.elapsed().as_millis(), peak_rss_kib(), errors.into_inner());
        }
        ["typed", url, token, project, how @ ("buffered" | "streamed")] => {
            let client = blocking(url, token);
            let started = Instant::now();
            let rows = match *project {
                "text" => typed_rows::<synth::TypedRow>(&client, how),
                "typed" => typed_rows::<synth_typed::TypedRow>(&client, how),
                _ => return usage(),
            };
            println!("{} {} {}", started.elapsed().as_millis(), peak_rss_kib(), rows);
        }
        ["sync", fixture, data, work, fields, records, changed] => {
            use redcap::dataset::blocking::Datasets as _;
            use redcap::dataset::{PullOptions, SyncOptions};
            let emu = redcap_emulator::Emulator::builder()
                .project_xml_file(fixture)
                .expect("fixture")
                .data_dir(*data)
                .start()
                .expect("emulator");
            let pid = emu.project_ids()[0];
            let client = blocking(&emu.url(), &emu.token(pid, "admin").expect("token"));
            let calls = || emu.faults().calls();
            let work = Path::new(work);
            let options = PullOptions::default().batch_size(1000);
            let measure = |f: &dyn Fn()| {
                let (c, t) = (calls(), Instant::now());
                f();
                (t.elapsed().as_millis(), calls() - c)
            };
            let nightly = work.join("nightly");
            let (pull_ms, pull_calls) = measure(&|| {
                client.pull_dataset(&nightly, &options, &NoProgress).expect("pull");
            });
            // Spread the changes over the project; one field each, imported in one batched call.
            let (fields, records, changed): (u64, u64, u64) =
                (fields.parse().expect("fields"), records.parse().expect("records"), changed.parse().expect("changed"));
            let names = synth::field_names(fields);
            let step = (records / changed.max(1)).max(1);
            let rows: Vec<Row> = (0..changed)
                .map(|i| {
                    let r = (i * step) % records + 1;
                    [("record_id", r.to_string()), (names[1].as_str(), format!("changed {i}"))]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                        .collect()
                })
                .collect();
            client
                .import_records_batched(
                    &rows,
                    &redcap::workflow::ImportOptions::default(),
                    &BatchOptions::default(),
                    &NoProgress,
                )
                .expect("changes");
            let fetched = std::cell::Cell::new(0);
            let (sync_ms, sync_calls) = measure(&|| {
                let s = client.sync_dataset(&nightly, &SyncOptions::default(), &NoProgress).expect("sync");
                assert!(s.rebuilt.is_none(), "an in-place sync: {:?}", s.rebuilt);
                fetched.set(s.fetched.len());
            });
            let (repull_ms, repull_calls) = measure(&|| {
                client.pull_dataset(&work.join("full"), &options, &NoProgress).expect("re-pull");
            });
            println!("{pull_ms} {pull_calls} {sync_ms} {sync_calls} {repull_ms} {repull_calls} {}", fetched.get());
        }
        _ => return usage(),
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: see the crate docs (driven by `cargo xtask bench`)");
    ExitCode::from(2)
}
