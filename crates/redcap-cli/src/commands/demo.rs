//! `redcap demo`: a local REDCap emulator with a demo project, and a short tour of the tool.
//!
//! The project comes from `demo/demo-project.xml` (records, two DAGs, a role, a report with
//! filter logic); its File Repository folders and files are made through the API, as a user
//! would. Every step shows the command a user would type and runs the same code that command
//! runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use redcap::dataset::PullOptions;
use redcap::workflow::ReportId;
use redcap_emulator::{Emulator, User};

use crate::cli::DemoArgs;
use crate::commands::{data, dataset, files, info};
use crate::error::{CliError, ExitKind};
use crate::output::{self, human_bytes};
use crate::progress::Ui;
use crate::secret::Secret;
use crate::session::{Resolved, Session};

/// The demo project.
pub const DEMO_PROJECT_XML: &str = include_str!("../../demo/demo-project.xml");
const REPORT: &str = "R-DEMOSHORT1";
const ROLE: &str = "U-DEMOCOORD";
const DAG: &str = "site_a";
const DEMO_USER: &str = "demo";

fn emu_err(e: impl std::fmt::Display) -> CliError {
    CliError::new(ExitKind::Other, format!("the demo emulator failed: {e}"))
}

/// Where the demo project's pieces are.
struct Setup {
    protocols: u64,
    report: ReportId,
}

/// Runs the tour, writing to stdout.
pub fn run(args: &DemoArgs, ui: &Ui) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    tour(args, ui, &mut out).map_err(|e| match e {
        TourError::Cli(e) => e,
        TourError::Io(e) => CliError::stdout(&e),
    })
}

enum TourError {
    Cli(CliError),
    Io(std::io::Error),
}

impl From<CliError> for TourError {
    fn from(e: CliError) -> Self {
        TourError::Cli(e)
    }
}

impl From<std::io::Error> for TourError {
    fn from(e: std::io::Error) -> Self {
        TourError::Io(e)
    }
}

fn step(out: &mut dyn Write, n: u32, title: &str, command: &str) -> std::io::Result<()> {
    let rule = "─".repeat(60usize.saturating_sub(title.len() + 6));
    writeln!(out, "\n── {n}. {title} {rule}")?;
    writeln!(out, "$ {command}")
}

fn tour(args: &DemoArgs, ui: &Ui, out: &mut dyn Write) -> Result<(), TourError> {
    writeln!(out, "redcap demo: a short tour of the redcap command line.")?;
    writeln!(out, "It runs against a REDCap emulator started inside this process, on this machine only;")?;
    writeln!(out, "each step shows the command you would type against your own REDCap.")?;

    let emu = Emulator::builder().project_xml(DEMO_PROJECT_XML).in_memory().start().map_err(emu_err)?;
    let pid = *emu.project_ids().first().ok_or_else(|| emu_err("the demo project did not load"))?;
    // The tour's user holds the Coordinator role and is in no DAG, so every folder is visible.
    let token = emu.add_user(pid, User::new(DEMO_USER).role(ROLE)).map_err(emu_err)?;
    let session = Session::open(&Resolved {
        url: emu.url(),
        token: Secret::new(token),
        allow_http: true,
        url_source: "the demo emulator".into(),
        token_source: "the demo emulator".into(),
        ca_cert: None,
    })?;
    let work = tempfile::Builder::new()
        .prefix("redcap-demo-")
        .tempdir()
        .map_err(|e| CliError::local(Path::new("a temporary directory"), "create", &e))?;
    let setup = set_up(&emu, pid, &session, work.path())?;
    writeln!(
        out,
        "\nThe emulator serves the project \"{}\" at {}:",
        emu.project_title(pid).unwrap_or_default(),
        session.url
    )?;
    let records = emu.project_counts(pid).map_or(0, |(_, _, r)| r);
    writeln!(out, "{records} records in two Data Access Groups, a user role, a report with filter logic, and")?;
    writeln!(out, "File Repository folders (nested, and restricted to a DAG or a role) made through the API.")?;
    writeln!(out, "You are the user `{DEMO_USER}`: in the Coordinator role and in no DAG, so you see every folder.")?;

    step(out, 1, "The server", "redcap call version.export")?;
    let call = redcap::core::DynamicCall::new(&redcap::version::export::INFO, &[])
        .map_err(|e| crate::error::from_call(&redcap::Error::Encode(e), &session.ctx(&[])))?;
    session.client.stream_dynamic(&call, out).map_err(|e| crate::error::from_call(&e, &session.ctx(&[])))?;
    writeln!(out)?;
    let version = info::fetch(&session)?;
    writeln!(out, "(`redcap call` runs any of the 55 API methods; `redcap call --list` lists them.)")?;

    step(out, 2, "The project", "redcap info")?;
    write!(out, "{}", info::render(&session.url, &version.0, version.1.as_ref()))?;

    step(out, 3, "The File Repository", "redcap files tree")?;
    let tree = files::tree(&session, None, ui)?;
    write!(out, "{}", files::render_tree(&tree))?;

    step(out, 4, "An upload", &format!("redcap files put consent-template.txt --folder {}", setup.protocols))?;
    let upload = work.path().join("consent-template.txt");
    std::fs::write(&upload, "Consent form template (demo)\n\nI agree to keep a sleep diary for two weeks.\n")
        .map_err(|e| CliError::local(&upload, "write", &e))?;
    let doc_id = files::put(&session, &upload, Some(setup.protocols), ui)?;
    writeln!(out, "{doc_id}")?;
    writeln!(out, "REDCap's upload answers nothing; redcap listed the folder before and after the upload")?;
    writeln!(out, "to find the new file's doc_id ({doc_id}), so `doc=$(redcap files put …)` works in scripts.")?;

    let pulled: PathBuf = match &args.dir {
        Some(d) => d.clone(),
        None => work.path().join("protocols"),
    };
    step(out, 5, "A pulled folder", &format!("redcap files pull --folder {} {}", setup.protocols, pulled.display()))?;
    let summary = files::pull(&session, Some(setup.protocols), &pulled, &files::pull_options(false, false, 4), ui)?;
    writeln!(out, "{}", files::pull_summary(&summary, &pulled))?;
    for (rel, size) in local_files(&pulled) {
        writeln!(out, "  {rel}  ({})", human_bytes(size))?;
    }
    writeln!(out, "A second pull downloads only what is new (see .redcap-manifest.json in the folder).")?;

    step(out, 6, "A report", &format!("redcap report export {} --format table --labels", setup.report.0))?;
    let rows = data::report_rows(&session, setup.report, true)?;
    output::write_rows(&rows, output::Format::Table, out)?;
    writeln!(out, "The report \"Adults sleeping under 6 hours\" keeps the records where its filter logic")?;
    writeln!(out, "[age] >= 18 and [hours_sleep] < 6 is true: {} of the {records}.", rows.len())?;

    let study = work.path().join("study");
    step(out, 7, "A typed dataset", &format!("redcap dataset pull {}", study.display()))?;
    let pulled = dataset::pull(&session, &study, &PullOptions::default(), ui)?;
    writeln!(out, "{}", dataset::pull_summary(&pulled.manifest, &study))?;
    for table in pulled.manifest.tables.values() {
        writeln!(out, "  {}  ({} row{})", table.file, table.rows, if table.rows == 1 { "" } else { "s" })?;
    }
    writeln!(out, "One Parquet table per instrument, typed by the data dictionary: dates are dates, choices")?;
    writeln!(out, "are categories (labels in the column's metadata), checkboxes are booleans, ids stay text. A value")?;
    writeln!(out, "that does not fit its type is null and a row of _problems. DuckDB, Polars, pandas and R read it")?;
    let first = pulled.manifest.tables.values().map(|t| t.file.as_str()).find(|f| !f.starts_with('_'));
    if let Some(file) = first {
        writeln!(out, "(duckdb -c \"SELECT * FROM 'study/{file}'\"); `redcap dataset sync` brings it up to date.")?;
    }

    writeln!(out, "\n── Try next {}", "─".repeat(49))?;
    writeln!(out, "  (No `redcap` on your PATH yet? `cargo install --path crates/redcap-cli` puts it there;")?;
    writeln!(out, "  or type `cargo run -q -p redcap-cli --` wherever `redcap` appears below.)")?;
    writeln!(out, "  redcap --help                       every command, how to connect, the exit codes")?;
    writeln!(out, "  redcap methods show record.export   one method's parameters, from the API spec")?;
    writeln!(out, "  redcap completions bash             tab completion (also zsh, fish)")?;
    writeln!(out, "\n  A REDCap of your own to play with: run the emulator in another terminal, from the")?;
    writeln!(out, "  repository's root (it prints its URL and each project's token, and serves until Ctrl-C):")?;
    writeln!(out, "    cargo run -p redcap-emulator -- --project crates/redcap-cli/demo/demo-project.xml")?;
    writeln!(out, "  then point redcap at it (paste the printed token, or save it with `redcap profile add`):")?;
    writeln!(out, "    export REDCAP_API_URL=http://127.0.0.1:8765/api/")?;
    writeln!(out, "    export REDCAP_API_TOKEN=<the project token it printed>")?;
    writeln!(out, "    redcap files tree")?;
    writeln!(out, "\n  Your real REDCap (the token is read from stdin, checked, and saved readable only by you):")?;
    writeln!(out, "    redcap profile add myproject --url https://redcap.example.edu/api/ --token-stdin < token.txt")?;
    writeln!(out, "    redcap records export --fields record_id,age --format csv -o records.csv")?;
    out.flush()?;
    drop(work);
    emu.shutdown();
    Ok(())
}

/// Files under `dir` (not the manifest), with sizes, by relative path.
fn local_files(dir: &Path) -> Vec<(String, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(m) = e.metadata() {
                let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((rel, m.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Makes the File Repository part of the demo project through the API.
fn set_up(emu: &Emulator, pid: i64, session: &Session, work: &Path) -> Result<Setup, CliError> {
    let quiet = Ui { quiet: true, bars: false, json: false };
    let id = |v: Option<i64>, what: &str| -> Result<u64, CliError> {
        v.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| emu_err(format!("the demo project has no {what}")))
    };
    let dag = id(emu.dag_id(pid, DAG), "DAG site_a")?;
    let role = id(emu.role_id(pid, ROLE), "coordinator role")?;
    let report = ReportId(id(emu.report_id(pid, REPORT), "report")?);

    let protocols = files::mkdir(session, "Protocols", None, None, None)?;
    let amendments = files::mkdir(session, "Amendments", Some(protocols), None, None)?;
    let site_a = files::mkdir(session, "Site A documents", None, Some(dag), None)?;
    let coordinators = files::mkdir(session, "Coordinators", None, None, Some(role))?;
    let docs: [(&str, Option<u64>, &str); 5] = [
        ("README.txt", None, "Files of the redcap-rs demo sleep study.\n"),
        (
            "sleep-protocol-v2.txt",
            Some(protocols),
            "Sleep study protocol, version 2.\n\n1. Enrol adults and teenagers.\n2. Keep a diary for 14 nights.\n",
        ),
        ("amendment-01.txt", Some(amendments), "Amendment 1: teenagers (16-17) need a parent's consent.\n"),
        ("site-a-contacts.txt", Some(site_a), "Site A: study nurse on extension 4411.\n"),
        ("visit-checklist.txt", Some(coordinators), "Before each visit: diary, actigraph, questionnaire.\n"),
    ];
    for (name, folder, text) in docs {
        let path = work.join(name);
        std::fs::write(&path, text).map_err(|e| CliError::local(&path, "write", &e))?;
        files::put(session, &path, folder, &quiet)?;
        let _ = std::fs::remove_file(&path);
    }
    Ok(Setup { protocols, report })
}
