//! `redcap backup DIR`: a whole project in one directory (for cron), and `redcap backup verify
//! DIR`: checks it against its manifest.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use redcap::blocking::Workflows;
use redcap::core::DynamicCall;
use redcap::workflow::{BatchOptions, NoProgress};
use redcap::{MethodInfo, Target, file, file_repository, version};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{CliError, ExitKind, from_call, from_workflow, plural};
use crate::output::{self, human_bytes};
use crate::progress::Ui;
use crate::session::Session;

/// The manifest's file name, at the top of the backup directory.
pub const MANIFEST: &str = "backup-manifest.json";
/// Where the File Repository goes (mirrored by `files pull`).
pub const FILE_REPOSITORY: &str = "file-repository";
/// Where record files go: `record-files/RECORD/EVENT/INSTANCE/FIELD/NAME`.
pub const RECORD_FILES: &str = "record-files";

/// `redcap backup`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Backs up the whole project into DIR: the project XML with its data, the data \
                  dictionary, users, roles, DAGs, user-DAG and user-role mappings, arms, events, \
                  instrument-event mappings and repeating setup (each as REDCap answers it), every file \
                  in a File Upload field (record-files/), and the File Repository (file-repository/, \
                  downloading only new files on a re-run). A part REDCap refuses (a missing right, or \
                  arms in a classic project) is recorded as skipped, not a failure. DIR/backup-manifest.json \
                  lists every file with its size and SHA-256; `redcap backup verify DIR` checks them.",
    after_help = "Example (crontab):\n  0 2 * * *  redcap backup -q --json /backups/myproject > /var/log/redcap-backup.json"
)]
pub struct BackupArgs {
    /// The backup directory (created if missing; a previous backup there is updated; one
    /// holding other files is refused)
    #[arg(value_name = "DIR", required = true)]
    pub dir: Option<PathBuf>,
    /// What else to do.
    #[command(subcommand)]
    pub cmd: Option<BackupCmd>,
}

/// `redcap backup verify`.
#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Recompute every checksum and report missing, changed and extra files (exit 1 on any)
    Verify {
        /// The backup directory
        dir: PathBuf,
    },
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the backup directory, with `/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// One part of a backup: saved or skipped (and why).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    /// Its name (`users`, `arms` …).
    pub name: String,
    /// The file it was saved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `saved` or `skipped`.
    pub status: String,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `backup-manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of this file.
    pub format: u32,
    /// When the backup was made (UTC, RFC 3339).
    pub created: String,
    /// The server's REDCap version.
    pub redcap_version: String,
    /// The project's id.
    pub project_id: Option<u64>,
    /// The parts, saved or skipped.
    pub parts: Vec<Part>,
    /// Every file below the directory but the manifest itself.
    pub files: Vec<FileEntry>,
}

/// What `backup verify` found.
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Files in the manifest.
    pub checked: usize,
    /// Listed but gone.
    pub missing: Vec<String>,
    /// Listed, but with another size or checksum.
    pub changed: Vec<String>,
    /// Present but not listed.
    pub extra: Vec<String>,
}

impl Verification {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

/// Every regular file below `dir` (relative, `/`-separated, sorted), but the manifest.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(at)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            if ty.is_dir() {
                walk(root, &path, out)?;
            } else if ty.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push(rel.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.retain(|p| p != MANIFEST);
    out.sort();
    Ok(out)
}

/// Checks `dir` against its manifest.
pub fn verify(dir: &Path, manifest: &Manifest) -> std::io::Result<Verification> {
    let mut v = Verification { checked: manifest.files.len(), ..Verification::default() };
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for f in &manifest.files {
        let path = dir.join(&f.path);
        match hash_file(&path) {
            Ok((size, sha)) if size == f.size && sha == f.sha256 => {}
            Ok(_) => v.changed.push(f.path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => v.missing.push(f.path.clone()),
            Err(e) => return Err(e),
        }
    }
    v.extra = list_files(dir)?.into_iter().filter(|p| !listed.contains(p.as_str())).collect();
    Ok(v)
}

/// A path component from any text: safe bytes kept, others as `%XX` (so distinct names stay
/// distinct, and none is `.`, `..` or contains a separator).
pub fn component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() { "%".to_owned() } else { out }
}

/// Runs `backup` or `backup verify`.
pub fn run(args: &BackupArgs, session: impl FnOnce() -> Result<Session, CliError>, ui: &Ui) -> Result<(), CliError> {
    match (&args.cmd, &args.dir) {
        (Some(BackupCmd::Verify { dir }), _) => run_verify(dir, ui),
        (None, Some(dir)) => backup(&session()?, dir, ui),
        (None, None) => Err(CliError::usage("give the backup directory: `redcap backup DIR`")),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, CliError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| CliError::local(&path, "read", &e))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::new(ExitKind::Local, format!("{} is not a backup manifest: {e}", path.display())))
}

fn run_verify(dir: &Path, ui: &Ui) -> Result<(), CliError> {
    let manifest = read_manifest(dir)?;
    let v = verify(dir, &manifest).map_err(|e| CliError::local(dir, "read", &e))?;
    if ui.json {
        let mut value = serde_json::to_value(&v).unwrap_or_default();
        value["ok"] = json!(v.ok());
        value["dir"] = json!(dir.display().to_string());
        output::json(&value)?;
    } else {
        for (what, list) in [("missing", &v.missing), ("changed", &v.changed), ("extra", &v.extra)] {
            for p in list {
                output::line(format!("{what}\t{p}"))?;
            }
        }
    }
    if v.ok() {
        ui.status(format!("Backup in {} verified: {} file{} match.", dir.display(), v.checked, plural(v.checked)));
        return Ok(());
    }
    Err(CliError::new(
        ExitKind::Other,
        format!(
            "the backup in {} does not match its manifest: {} missing, {} changed, {} extra",
            dir.display(),
            v.missing.len(),
            v.changed.len(),
            v.extra.len()
        ),
    ))
}

/// A part: its name, its file, the method, the method's parameters.
type PartSpec = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The JSON/CSV/XML parts.
const PARTS: &[PartSpec] = &[
    (
        "project_xml",
        "project.xml",
        "project.export_xml",
        // Record files are saved one by one under record-files/, so the XML does not embed them.
        &[
            ("returnMetadataOnly", "false"),
            ("exportFiles", "false"),
            ("exportSurveyFields", "true"),
            ("exportDataAccessGroups", "true"),
        ],
    ),
    ("project_info", "project-info.json", "project.export_info", &[("format", "json")]),
    ("metadata", "metadata.json", "metadata.export", &[("format", "json")]),
    ("metadata_csv", "metadata.csv", "metadata.export", &[("format", "csv")]),
    ("instruments", "instruments.json", "instrument.export", &[("format", "json")]),
    ("users", "users.json", "user.export", &[("format", "json")]),
    ("user_roles", "user-roles.json", "user_role.export", &[("format", "json")]),
    ("user_role_mappings", "user-role-mappings.json", "user_role.export_mappings", &[("format", "json")]),
    ("dags", "dags.json", "dag.export", &[("format", "json")]),
    ("user_dag_mappings", "user-dag-mappings.json", "dag.export_mappings", &[("format", "json")]),
    ("arms", "arms.json", "arm.export", &[("format", "json")]),
    ("events", "events.json", "event.export", &[("format", "json")]),
    (
        "instrument_event_mappings",
        "instrument-event-mappings.json",
        "instrument.export_event_mappings",
        &[("format", "json")],
    ),
    ("repeating", "repeating.json", "repeating.export", &[("format", "json")]),
];

/// Parts without which there is no backup: any error is a failure, never a skip.
const REQUIRED: &[&str] = &["project_xml", "project_info", "metadata"];

/// REDCap refused (a right, a feature the project lacks): record as skipped.
fn refused(e: &CliError) -> bool {
    matches!(e.kind, ExitKind::Api | ExitKind::Auth)
}

fn save_part(session: &Session, dir: &Path, file: &str, method: &str, params: &[(&str, &str)]) -> Result<(), CliError> {
    let info: &'static MethodInfo =
        redcap::method(method).ok_or_else(|| CliError::new(ExitKind::Other, format!("unknown method {method}")))?;
    let methods = [info];
    let ctx = session.ctx(&methods);
    let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let call = DynamicCall::new(info, &pairs).map_err(|e| from_call(&redcap::Error::Encode(e), &ctx))?;
    output::to_destination(Some(&dir.join(file)), |w| {
        session.client.stream_dynamic(&call, w).map(|_| ()).map_err(|e| from_call(&e, &ctx))
    })
}

/// Whether a backup is a file of `name` at the top of its directory (parts, folders, and the
/// temporary files of a write that was interrupted).
fn written_by_backup(name: &str) -> bool {
    name == MANIFEST
        || name == RECORD_FILES
        || PARTS.iter().any(|(_, file, ..)| *file == name)
        || name.starts_with(output::PARTIAL_PREFIX)
}

/// Refuses a `dir` that is someone else's: a backup there would replace its `project.xml`,
/// `users.json` … and, through the File Repository's pull (which replaces what it finds, to
/// heal a backup), its `file-repository/`. Accepted: a missing or empty directory, an earlier
/// backup (its manifest), or one holding only what a backup writes (a first backup that was
/// interrupted before its manifest).
fn check_backup_dir(dir: &Path) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CliError::local(dir, "read", &e)),
        Ok(m) if !m.is_dir() => {
            return Err(CliError::new(ExitKind::Local, format!("{} is not a directory", dir.display()))
                .hint("give the directory to back up into (created if missing)"));
        }
        Ok(_) => {}
    }
    if dir.join(MANIFEST).is_file() {
        return Ok(());
    }
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| CliError::local(dir, "read", &e))? {
        let entry = entry.map_err(|e| CliError::local(dir, "read", &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = if name == FILE_REPOSITORY {
            // A pull's own folder has its manifest or journal; one holding nothing but a
            // pull's temporary files (`.redcap-…`) is as good as an empty one.
            let repo = entry.path();
            let manifest = repo.join(redcap::workflow::Manifest::FILE_NAME);
            manifest.is_file()
                || redcap::workflow::files::journal_path(&manifest).is_file()
                || std::fs::read_dir(&repo)
                    .is_ok_and(|d| d.flatten().all(|e| e.file_name().to_string_lossy().starts_with(".redcap-")))
        } else {
            written_by_backup(&name)
        };
        if !ours {
            others.push(name);
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    let shown = others.iter().take(5).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let more = if others.len() > 5 { format!(" and {} more", others.len() - 5) } else { String::new() };
    Err(CliError::new(
        ExitKind::Local,
        format!(
            "{} is not a backup (it has no {MANIFEST}) and holds other files: {shown}{more}; nothing was replaced",
            dir.display()
        ),
    )
    .hint("back up into a new or empty directory, or into an earlier backup's directory"))
}

fn backup(session: &Session, dir: &Path, ui: &Ui) -> Result<(), CliError> {
    check_backup_dir(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| CliError::local(dir, "create", &e))?;
    let vctx = [&version::export::INFO];
    let redcap_version =
        session.client.call(&version::export::Request::new()).map_err(|e| from_call(&e, &session.ctx(&vctx)))?;
    let mut parts = Vec::new();
    for (name, file, method, params) in PARTS {
        match save_part(session, dir, file, method, params) {
            Ok(()) => parts.push(Part {
                name: (*name).into(),
                file: Some((*file).into()),
                status: "saved".into(),
                reason: None,
            }),
            Err(e) if refused(&e) && !REQUIRED.contains(name) => {
                // An earlier backup's copy is kept: a right removed for a while must not erase it.
                // The manifest lists every file present, so that copy stays verifiable.
                ui.status(format!("Skipped {name}: {}", e.message));
                parts.push(Part {
                    name: (*name).into(),
                    file: None,
                    status: "skipped".into(),
                    reason: Some(crate::error::redact(&e.message)),
                });
            }
            Err(e) => return Err(e),
        }
    }
    let read_json = |file: &str| -> Result<Value, CliError> {
        let path = dir.join(file);
        let text = std::fs::read(&path).map_err(|e| CliError::local(&path, "read", &e))?;
        serde_json::from_slice(&text)
            .map_err(|e| CliError::new(ExitKind::Other, format!("REDCap's answer in {file} is not JSON: {e}")))
    };
    let project_id = read_json("project-info.json")?.get("project_id").and_then(|v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    let metadata = read_json("metadata.json")?;

    let record_files = backup_record_files(session, dir, &metadata, ui)?;
    parts.push(Part {
        name: "record_files".into(),
        file: Some(RECORD_FILES.into()),
        status: "saved".into(),
        reason: None,
    });

    // The File Repository, incrementally through `files pull` and its manifest.
    let repo_dir = dir.join(FILE_REPOSITORY);
    let pull_ctx = [&file_repository::list::INFO, &file_repository::export::INFO];
    let progress = ui.observer();
    let options = crate::commands::files::pull_options(false, true, redcap::workflow::DEFAULT_JOBS);
    let repo = match session.client.pull(None, &repo_dir, &options, progress.as_ref()) {
        Ok(summary) => {
            parts.push(Part {
                name: "file_repository".into(),
                file: Some(FILE_REPOSITORY.into()),
                status: "saved".into(),
                reason: None,
            });
            Some(summary)
        }
        Err(e) => {
            let e = from_workflow(&e, &session.ctx(&pull_ctx));
            if !refused(&e) {
                return Err(e);
            }
            ui.status(format!("Skipped the File Repository: {}", e.message));
            parts.push(Part {
                name: "file_repository".into(),
                file: None,
                status: "skipped".into(),
                reason: Some(crate::error::redact(&e.message)),
            });
            None
        }
    };

    // The manifest: every file now in the directory.
    let mut files = Vec::new();
    for rel in list_files(dir).map_err(|e| CliError::local(dir, "read", &e))? {
        let path = dir.join(&rel);
        let (size, sha256) = hash_file(&path).map_err(|e| CliError::local(&path, "read", &e))?;
        files.push(FileEntry { path: rel, size, sha256 });
    }
    let manifest = Manifest {
        format: 1,
        created: redcap::dataset::now_utc(),
        redcap_version: redcap_version.to_string(),
        project_id,
        parts,
        files,
    };
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    output::to_destination(Some(&dir.join(MANIFEST)), |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(w))
            .map_err(|e| CliError::write_failed(&dir.join(MANIFEST), &e))
    })?;

    let skipped: Vec<&Part> = manifest.parts.iter().filter(|p| p.status == "skipped").collect();
    if ui.json {
        output::json(&json!({
            "dir": dir.display().to_string(),
            "complete": record_files.failed.is_empty() && repo.as_ref().is_none_or(|s| s.is_complete()),
            "created": manifest.created,
            "redcap_version": manifest.redcap_version,
            "project_id": manifest.project_id,
            "parts": manifest.parts,
            "files": manifest.files.len(),
            "bytes": total,
            "record_files": {
                "downloaded": record_files.downloaded,
                "failed": record_files.failed.iter().map(|(p, why)| json!({"path": p, "error": crate::error::redact(why)})).collect::<Vec<_>>(),
            },
            "file_repository": repo.as_ref().map(|s| crate::commands::files::summary_json(s, &repo_dir)),
        }))?;
    }
    ui.status(format!(
        "Backed up project {} into {}: {} file{} ({}); {} record file{}; {}{}.",
        manifest.project_id.map_or("?".to_owned(), |p| p.to_string()),
        dir.display(),
        manifest.files.len(),
        plural(manifest.files.len()),
        human_bytes(total),
        record_files.downloaded,
        plural(record_files.downloaded),
        repo.as_ref().map_or("File Repository skipped".to_owned(), |s| crate::commands::files::pull_summary(
            s, &repo_dir
        )
        .trim_end_matches('.')
        .to_owned()),
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped {}", skipped.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "))
        }
    ));
    if !record_files.failed.is_empty() {
        let mut e = CliError::new(
            ExitKind::Other,
            format!(
                "{} record file{} failed; the rest was backed up",
                record_files.failed.len(),
                plural(record_files.failed.len())
            ),
        )
        .hint("run the same command again");
        e.details = record_files.failed.iter().map(|(p, why)| format!("{p}: {why}")).collect();
        return Err(e);
    }
    match &repo {
        Some(s) => crate::commands::files::check_complete(s),
        None => Ok(()),
    }
}

/// What the record files part did.
#[derive(Debug, Default)]
struct RecordFiles {
    downloaded: usize,
    failed: Vec<(String, String)>,
}

/// Downloads every file of every File Upload (and signature) field. REDCap tells neither a
/// file's size nor a checksum before it is downloaded, so an unchanged file cannot be proven
/// unchanged: every one is downloaded again.
fn backup_record_files(session: &Session, dir: &Path, metadata: &Value, ui: &Ui) -> Result<RecordFiles, CliError> {
    let fields: Vec<&Value> = metadata.as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let name = |f: &Value| f.get("field_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(id_field) = fields.first().map(|f| name(f)) else { return Ok(RecordFiles::default()) };
    let file_fields: Vec<String> = fields
        .iter()
        .filter(|f| f.get("field_type").and_then(Value::as_str) == Some("file"))
        .map(|f| name(f))
        .collect();
    let root = dir.join(RECORD_FILES);
    let mut done = RecordFiles::default();
    let mut written: BTreeSet<PathBuf> = BTreeSet::new();
    if !file_fields.is_empty() {
        let info: &'static MethodInfo = &redcap::record::export::INFO;
        let methods = [info];
        let ctx = session.ctx(&methods);
        // Batched and streamed: only the rows holding a file are kept (their keys), however
        // many records the project has.
        let template = redcap::record::export::Request::new()
            .fields(std::iter::once(id_field.clone()).chain(file_fields.iter().cloned()));
        let mut slots: Vec<(String, String, String, Vec<String>)> = Vec::new();
        let text = |row: &redcap::Row, k: &str| redcap::workflow::records::cell(row, k).unwrap_or_default();
        session
            .client
            .export_records_each(&template, &BatchOptions::default(), &NoProgress, &mut |row| {
                let with_file: Vec<String> =
                    file_fields.iter().filter(|f| !text(&row, f).is_empty()).cloned().collect();
                if !with_file.is_empty() {
                    slots.push((
                        text(&row, &id_field),
                        text(&row, "redcap_event_name"),
                        text(&row, "redcap_repeat_instance"),
                        with_file,
                    ));
                }
                Ok(())
            })
            .map_err(|e| from_workflow(&e, &ctx))?;
        let fctx = [&file::export::INFO];
        for (record, event, instance, with_file) in &slots {
            for field in with_file {
                let slot = root
                    .join(component(record))
                    .join(if event.is_empty() { "-".to_owned() } else { component(event) })
                    .join(if instance.is_empty() { "1".to_owned() } else { component(instance) })
                    .join(component(field));
                let rel = slot.strip_prefix(dir).unwrap_or(&slot).display().to_string();
                if let Err(e) = std::fs::create_dir_all(&slot) {
                    done.failed.push((rel, e.to_string()));
                    continue;
                }
                let _ = redcap::workflow::remove_stale_partials(&slot);
                let mut req = file::export::Request::new(record.clone(), field.clone());
                req.event = (!event.is_empty()).then(|| event.clone());
                req.repeat_instance = instance.parse().ok();
                let target =
                    Target::DirWith { dir: slot.clone(), fallback: "file".into(), replace: true, dot_files: false };
                let bar = ui.transfer(format!("record file {rel}"), None);
                let on_bytes = |n: u64| {
                    if let Some(b) = &bar {
                        b.set_position(n);
                    }
                };
                let downloaded = session.client.download_to_observed(&req, &target, &on_bytes);
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                match downloaded {
                    Ok(d) => {
                        done.downloaded += 1;
                        written.insert(d.path);
                    }
                    Err(e) => {
                        let e = from_call(&e, &session.ctx(&fctx));
                        if matches!(e.kind, ExitKind::Network | ExitKind::Auth) {
                            return Err(e);
                        }
                        done.failed.push((rel, e.message));
                    }
                }
            }
        }
    }
    // Files of an earlier backup that REDCap no longer has (or that were renamed) go, unless
    // something failed (then the earlier copy is better than none).
    if done.failed.is_empty() && root.is_dir() {
        for rel in list_files(&root).map_err(|e| CliError::local(&root, "read", &e))? {
            let path = root.join(&rel);
            if !written.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| CliError::local(&path, "remove", &e))?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_safe_and_distinct() {
        assert_eq!(component("1001"), "1001");
        assert_eq!(component(".."), "%2E.");
        assert_eq!(component("a/b"), "a%2Fb");
        assert_ne!(component("a b"), component("a_b"));
        assert_eq!(component(""), "%");
    }

    #[test]
    fn verify_finds_missing_changed_and_extra() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "[]").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), "b").unwrap();
        let files = list_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| {
                let (size, sha256) = hash_file(&dir.path().join(&p)).unwrap();
                FileEntry { path: p, size, sha256 }
            })
            .collect::<Vec<_>>();
        assert_eq!(files[0].sha256, "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945");
        let m = Manifest {
            format: 1,
            created: String::new(),
            redcap_version: String::new(),
            project_id: None,
            parts: vec![],
            files,
        };
        assert!(verify(dir.path(), &m).unwrap().ok());
        std::fs::write(dir.path().join("a.json"), "[1]").unwrap();
        std::fs::remove_file(dir.path().join("sub/b.txt")).unwrap();
        std::fs::write(dir.path().join("c"), "").unwrap();
        let v = verify(dir.path(), &m).unwrap();
        assert_eq!(
            (v.changed, v.missing, v.extra),
            (vec!["a.json".into()], vec!["sub/b.txt".into()], vec!["c".into()])
        );
    }
}
