//! `redcap files`: the File Repository.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use redcap::blocking::Workflows;
use redcap::workflow::files::resolve_doc_id;
use redcap::workflow::{PullOptions, PushOptions, RemoteTree, TransferSummary};
use redcap::{FileRepositoryEntry, MethodInfo, Row, Target, Upload, file_repository};
use serde_json::{Value, json};

use crate::cli::{FilesCmd, TreeFormat};
use crate::error::{CliError, ExitKind, from_call, from_workflow, plural};
use crate::output::{self, Format, human_bytes};
use crate::progress::Ui;
use crate::session::Session;

const LIST: &[&MethodInfo] = &[&file_repository::list::INFO];
const EXPORT: &[&MethodInfo] = &[&file_repository::export::INFO];
const IMPORT: &[&MethodInfo] = &[&file_repository::list::INFO, &file_repository::import::INFO];
const CREATE: &[&MethodInfo] = &[&file_repository::create_folder::INFO];
const DELETE: &[&MethodInfo] = &[&file_repository::delete::INFO];
const PULL: &[&MethodInfo] = &[&file_repository::list::INFO, &file_repository::export::INFO];
const PUSH: &[&MethodInfo] =
    &[&file_repository::list::INFO, &file_repository::create_folder::INFO, &file_repository::import::INFO];

/// Runs a `files` subcommand.
pub fn run(cmd: &FilesCmd, session: &Session, ui: &Ui) -> Result<(), CliError> {
    match cmd {
        FilesCmd::Ls { folder, folder_id, format } => {
            let entries = list(session, folder.or(*folder_id))?;
            output::to_destination(None, |w| write_listing(&entries, *format, w).map_err(|e| CliError::stdout(&e)))
        }
        FilesCmd::Tree { folder, format } => {
            let tree = tree(session, *folder, ui)?;
            output::to_destination(None, |w| {
                match format {
                    TreeFormat::Text => w.write_all(render_tree(&tree).as_bytes()),
                    TreeFormat::Json => serde_json::to_writer_pretty(&mut *w, &tree)
                        .map_err(std::io::Error::from)
                        .and_then(|()| writeln!(w)),
                }
                .map_err(|e| CliError::stdout(&e))
            })
        }
        FilesCmd::Get { doc_id, output, overwrite, dot_files } => {
            if output.as_deref().is_some_and(|p| p.as_os_str() == "-") {
                return output::to_destination(None, |w| {
                    session
                        .client
                        .stream(&file_repository::export::Request::new(*doc_id), w)
                        .map(|_| ())
                        .map_err(|e| from_call(&e, &session.ctx(EXPORT)))
                });
            }
            let choice = GetChoice { overwrite: *overwrite, dot_files: *dot_files };
            let (path, bytes) = get(session, *doc_id, output.as_deref(), choice, ui)?;
            ui.status(format!("Downloaded doc_id {doc_id} ({}).", human_bytes(bytes)));
            output::line(path.display().to_string())?;
            Ok(())
        }
        FilesCmd::Put { path, folder } => {
            let doc_id = put(session, path, *folder, ui)?;
            let place = folder.map_or("the top level".to_owned(), |f| format!("folder {f}"));
            ui.status(format!("Uploaded {} into {place}; REDCap gave it doc_id {doc_id}.", path.display()));
            if ui.json {
                return output::json(
                    &json!({"path": path.display().to_string(), "folder_id": folder, "doc_id": doc_id}),
                );
            }
            output::line(doc_id.to_string())?;
            Ok(())
        }
        FilesCmd::Mkdir { name, parent, dag_id, role_id } => {
            let id = mkdir(session, name, *parent, *dag_id, *role_id)?;
            ui.status(format!("Created folder `{name}` with folder_id {id}."));
            output::line(id.to_string())?;
            Ok(())
        }
        FilesCmd::Rm { doc_id } => {
            session
                .client
                .call(&file_repository::delete::Request::new(*doc_id))
                .map_err(|e| from_call(&e, &session.ctx(DELETE)))?;
            ui.status(format!("Deleted doc_id {doc_id}."));
            Ok(())
        }
        FilesCmd::Pull { folder, dir, delete, overwrite, jobs } => {
            let options = pull_options(*delete, *overwrite, *jobs as usize);
            let summary = pull(session, *folder, dir, &options, ui)?;
            if ui.json {
                output::json(&summary_json(&summary, dir))?;
            }
            ui.status(pull_summary(&summary, dir));
            check_complete(&summary)
        }
        FilesCmd::Push { dir, folder, force, manifest, jobs } => {
            let summary = push(session, dir, *folder, *force, manifest.as_deref(), *jobs as usize, ui)?;
            if ui.json {
                output::json(&summary_json(&summary, dir))?;
            } else {
                // Data: what was uploaded and the doc_id each got.
                for (path, doc_id) in &summary.uploaded {
                    output::line(format!("{path}\tdoc_id {doc_id}"))?;
                }
            }
            ui.status(push_summary(&summary, dir));
            check_complete(&summary)
        }
    }
}

/// A transfer that left some files behind: exit 6 when every failure was local (disk full,
/// permissions), else 1.
pub fn check_complete(summary: &TransferSummary) -> Result<(), CliError> {
    if summary.is_complete() {
        return Ok(());
    }
    let all_local = summary.failed_local as usize == summary.failed.len();
    let mut e = CliError::new(
        if all_local { ExitKind::Local } else { ExitKind::Other },
        format!("{} file{} failed; the others were transferred", summary.failed.len(), plural(summary.failed.len())),
    )
    .hint("run the same command again: only what is missing is transferred");
    e.details = summary.failed.iter().map(|(p, why)| format!("{p}: {why}")).collect();
    Err(e)
}

/// One folder's entries.
pub fn list(session: &Session, folder: Option<u64>) -> Result<Vec<FileRepositoryEntry>, CliError> {
    let mut req = file_repository::list::Request::new();
    req.folder_id = folder;
    session.client.call(&req).map_err(|e| from_call(&e, &session.ctx(LIST)))
}

fn restriction(dag: &Option<String>, role: &Option<String>) -> String {
    match (dag, role) {
        (Some(d), Some(r)) => format!("DAG {d}, role {r}"),
        (Some(d), None) => format!("DAG {d}"),
        (None, Some(r)) => format!("role {r}"),
        (None, None) => String::new(),
    }
}

/// Entries as rows: kind, id, name, dag, role.
pub fn listing_rows(entries: &[FileRepositoryEntry]) -> Vec<Row> {
    let mut rows = Vec::new();
    for e in entries {
        let v = match e {
            FileRepositoryEntry::Folder(f) => {
                json!({"kind": "folder", "id": f.folder_id, "name": f.name, "dag": f.dag, "role": f.role})
            }
            FileRepositoryEntry::File(f) => {
                json!({"kind": "file", "id": f.doc_id, "name": f.name, "dag": null, "role": null})
            }
            _ => continue,
        };
        if let Value::Object(map) = v {
            rows.push(map);
        }
    }
    rows
}

/// Writes a listing: a table (folders first) or rows.
pub fn write_listing(entries: &[FileRepositoryEntry], format: Format, w: &mut dyn Write) -> std::io::Result<()> {
    if format != Format::Table {
        return output::write_rows(&listing_rows(entries), format, w);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for e in entries {
        match e {
            FileRepositoryEntry::Folder(f) => rows.push(vec![
                "folder".into(),
                f.folder_id.to_string(),
                format!("{}/", f.name),
                restriction(&f.dag, &f.role),
            ]),
            FileRepositoryEntry::File(f) => {
                rows.push(vec!["file".into(), f.doc_id.to_string(), f.name.clone(), String::new()])
            }
            _ => {}
        }
    }
    rows.sort_by(|a, b| a[0].cmp(&b[0]).reverse().then_with(|| a[2].to_lowercase().cmp(&b[2].to_lowercase())));
    if rows.is_empty() {
        return writeln!(w, "(empty folder)");
    }
    w.write_all(output::table(&["TYPE", "ID", "NAME", "RESTRICTED TO"], &rows).as_bytes())
}

/// Walks the repository from `folder`.
pub fn tree(session: &Session, folder: Option<u64>, ui: &Ui) -> Result<RemoteTree, CliError> {
    let progress = ui.observer();
    session.client.walk(folder, progress.as_ref()).map_err(|e| from_workflow(&e, &session.ctx(LIST)))
}

/// An indented tree: folders (with their restriction) before files, each with its id.
pub fn render_tree(tree: &RemoteTree) -> String {
    let mut folders: BTreeMap<Option<u64>, Vec<&redcap::workflow::RemoteFolder>> = BTreeMap::new();
    for f in &tree.folders {
        folders.entry(f.parent).or_default().push(f);
    }
    let mut files: BTreeMap<Option<u64>, Vec<&redcap::workflow::RemoteFile>> = BTreeMap::new();
    for f in &tree.files {
        files.entry(f.folder_id).or_default().push(f);
    }
    let mut out = match tree.root {
        None => "File Repository (top level)\n".to_owned(),
        Some(id) => format!("folder {id}\n"),
    };
    fn level(
        out: &mut String,
        at: Option<u64>,
        prefix: &str,
        folders: &BTreeMap<Option<u64>, Vec<&redcap::workflow::RemoteFolder>>,
        files: &BTreeMap<Option<u64>, Vec<&redcap::workflow::RemoteFile>>,
    ) {
        let subs = folders.get(&at).map(Vec::as_slice).unwrap_or_default();
        let docs = files.get(&at).map(Vec::as_slice).unwrap_or_default();
        let total = subs.len() + docs.len();
        let mut i = 0;
        for f in subs {
            i += 1;
            let (branch, next) = if i == total { ("└── ", "    ") } else { ("├── ", "│   ") };
            let restricted = restriction(&f.dag, &f.role);
            let note = if restricted.is_empty() {
                format!("folder_id {}", f.folder_id)
            } else {
                format!("folder_id {}, {restricted}", f.folder_id)
            };
            out.push_str(&format!("{prefix}{branch}{}/  ({note})\n", f.name));
            level(out, Some(f.folder_id), &format!("{prefix}{next}"), folders, files);
        }
        for f in docs {
            i += 1;
            let branch = if i == total { "└── " } else { "├── " };
            out.push_str(&format!("{prefix}{branch}{}  (doc_id {})\n", f.name, f.doc_id));
        }
    }
    level(&mut out, tree.root, "", &folders, &files);
    out
}

/// What `files get` may do to existing files.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetChoice {
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--dot-files`.
    pub dot_files: bool,
}

/// Downloads `doc_id` to `output` (a file, or an existing directory; `None`: the current
/// directory under REDCap's name), never replacing a file unless `choice` says so. Returns the
/// path written and its size.
pub fn get(
    session: &Session,
    doc_id: u64,
    output: Option<&Path>,
    choice: GetChoice,
    ui: &Ui,
) -> Result<(PathBuf, u64), CliError> {
    let into = |dir: &Path| {
        // Partial downloads a Ctrl-C left here earlier.
        let _ = redcap::workflow::remove_stale_partials(dir);
        Target::DirWith {
            dir: dir.to_path_buf(),
            fallback: format!("doc_id {doc_id}"),
            replace: choice.overwrite,
            dot_files: choice.dot_files,
        }
    };
    let target = match output {
        None => into(Path::new(".")),
        Some(p) if p.is_dir() => into(p),
        Some(p) if output::names_a_directory(p) => return Err(output::missing_dir(p)),
        Some(p) if choice.overwrite => Target::File(p.to_path_buf()),
        Some(p) => Target::NewFile(p.to_path_buf()),
    };
    let bar = ui.transfer(format!("doc_id {doc_id}"), None);
    let on_bytes = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let done = session.client.download_to_observed(&file_repository::export::Request::new(doc_id), &target, &on_bytes);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let done = done.map_err(|e| from_call(&e, &session.ctx(EXPORT)))?;
    Ok((done.path, done.bytes))
}

/// Uploads `path` into `folder` and finds the doc_id REDCap gave it.
pub fn put(session: &Session, path: &Path, folder: Option<u64>, ui: &Ui) -> Result<u64, CliError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(CliError::new(ExitKind::Local, format!("{} is not a file", path.display()))
                .hint("to upload a directory, use `redcap files push DIR`"));
        }
        Err(e) => return Err(CliError::local(path, "read", &e)),
    }
    let ctx = session.ctx(IMPORT);
    let before = list(session, folder)?;
    let size = std::fs::metadata(path).map_err(|e| CliError::local(path, "read", &e))?.len();
    let bar = ui.transfer(format!("uploading {}", path.display()), Some(size));
    let upload = match &bar {
        // On a terminal, read through the bar so it moves as the bytes go out.
        Some(b) => {
            let file = std::fs::File::open(path).map_err(|e| CliError::local(path, "read", &e))?;
            let name = Upload::from_path(path).file_name;
            Upload::from_reader(name, b.wrap_read(file), size)
        }
        None => Upload::from_path(path),
    };
    let name = upload.file_name.clone();
    let mut req = file_repository::import::Request::new(upload);
    req.folder_id = folder;
    let sent = session.client.call(&req);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Err(e) = sent {
        if !e.maybe_delivered() {
            return Err(from_call(&e, &ctx));
        }
        // The request may have gone out: REDCap keeps every copy, so look before anyone
        // uploads again.
        let mut err = from_call(&e, &ctx);
        return match list(session, folder) {
            Ok(after) => match resolve_doc_id(&before, &after, &name) {
                Some(doc_id) => {
                    ui.warn(format!(
                        "the answer to the upload was lost, but the folder's listing shows it arrived ({e})"
                    ));
                    Ok(doc_id)
                }
                None => {
                    err.hint =
                        Some("the folder's listing shows the file did not arrive: uploading it again is safe".into());
                    Err(err)
                }
            },
            Err(_) => {
                err.hint = Some(format!(
                    "the answer was lost, so whether the file arrived is unknown: check with `redcap files ls{}` \
                     before uploading it again (REDCap would keep both copies)",
                    folder.map_or(String::new(), |f| format!(" --folder {f}"))
                ));
                Err(err)
            }
        };
    }
    let after = list(session, folder)?;
    resolve_doc_id(&before, &after, &name)
        .ok_or_else(|| from_workflow(&redcap::workflow::WorkflowError::Unresolved(path.display().to_string()), &ctx))
}

/// Creates a folder; returns its folder_id.
pub fn mkdir(
    session: &Session,
    name: &str,
    parent: Option<u64>,
    dag_id: Option<u64>,
    role_id: Option<u64>,
) -> Result<u64, CliError> {
    let mut req = file_repository::create_folder::Request::new(name);
    req.folder_id = parent;
    req.dag_id = dag_id;
    req.role_id = role_id;
    session.client.call(&req).map_err(|e| from_call(&e, &session.ctx(CREATE)))
}

/// The options of `files pull`.
pub fn pull_options(delete: bool, overwrite: bool, jobs: usize) -> PullOptions {
    let mut options = PullOptions::default();
    options.delete = delete;
    options.overwrite = overwrite;
    options.jobs = jobs;
    options
}

/// Mirrors `folder` into `dir`.
pub fn pull(
    session: &Session,
    folder: Option<u64>,
    dir: &Path,
    options: &PullOptions,
    ui: &Ui,
) -> Result<TransferSummary, CliError> {
    let progress = ui.observer();
    session.client.pull(folder, dir, options, progress.as_ref()).map_err(|e| from_workflow(&e, &session.ctx(PULL)))
}

/// Environment variable overriding the directory a push keeps its manifest in.
pub const STATE_DIR_ENV: &str = "REDCAP_STATE_DIR";

/// Uploads `dir` into `folder`, keeping the push's manifest at `manifest` (by default in the
/// state directory: never inside `dir`).
pub fn push(
    session: &Session,
    dir: &Path,
    folder: Option<u64>,
    force: bool,
    manifest: Option<&Path>,
    jobs: usize,
    ui: &Ui,
) -> Result<TransferSummary, CliError> {
    if !dir.is_dir() {
        return Err(CliError::new(ExitKind::Local, format!("{} is not a directory", dir.display())));
    }
    let mut options = PushOptions::default();
    options.force = force;
    options.jobs = jobs;
    options.manifest = match (manifest, std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty())) {
        (Some(m), _) => Some(m.to_path_buf()),
        (None, Some(state)) => {
            Some(PathBuf::from(state).join("push").join(redcap::workflow::files::push_manifest_name(
                &session.url,
                folder,
                dir,
            )))
        }
        (None, None) => None,
    };
    let progress = ui.observer();
    session.client.push(dir, folder, &options, progress.as_ref()).map_err(|e| from_workflow(&e, &session.ctx(PUSH)))
}

/// A pull's or push's result for `--json`.
pub fn summary_json(s: &TransferSummary, dir: &Path) -> Value {
    json!({
        "dir": dir.display().to_string(),
        "complete": s.is_complete(),
        "transferred": s.transferred,
        "skipped": s.skipped,
        "bytes": s.bytes,
        "folders_created": s.folders_created,
        "removed": s.removed,
        "partials_removed": s.partials_removed,
        "uploaded": s.uploaded.iter().map(|(path, doc_id)| json!({"path": path, "doc_id": doc_id})).collect::<Vec<_>>(),
        "failed": s.failed.iter().map(|(path, error)| json!({"path": path, "error": crate::error::redact(error)})).collect::<Vec<_>>(),
    })
}

/// One line about a pull.
pub fn pull_summary(s: &TransferSummary, dir: &Path) -> String {
    let mut line = format!(
        "Pulled {} file{} ({}) into {}",
        s.transferred,
        plural(s.transferred as usize),
        human_bytes(s.bytes),
        dir.display()
    );
    if s.skipped > 0 {
        line.push_str(&format!("; {} already there", s.skipped));
    }
    if s.removed > 0 {
        line.push_str(&format!("; removed {}", s.removed));
    }
    if !s.failed.is_empty() {
        line.push_str(&format!("; {} failed", s.failed.len()));
    }
    line.push('.');
    line
}

/// One line about a push.
pub fn push_summary(s: &TransferSummary, dir: &Path) -> String {
    let mut line = format!(
        "Pushed {} file{} ({}) from {}",
        s.transferred,
        plural(s.transferred as usize),
        human_bytes(s.bytes),
        dir.display()
    );
    if s.folders_created > 0 {
        line.push_str(&format!("; created {} folder{}", s.folders_created, plural(s.folders_created as usize)));
    }
    if s.skipped > 0 {
        line.push_str(&format!("; {} already pushed", s.skipped));
    }
    if !s.failed.is_empty() {
        line.push_str(&format!("; {} failed", s.failed.len()));
    }
    line.push('.');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<FileRepositoryEntry> {
        serde_json::from_str(
            r#"[{"doc_id":7,"name":"b.txt"},{"folder_id":2,"name":"Site A","dag":"site_a","role":""},
                {"folder_id":1,"name":"Protocols"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn listing_table_puts_folders_first() {
        let mut out = Vec::new();
        write_listing(&entries(), Format::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let pos = |s: &str| text.find(s).unwrap();
        assert!(pos("Protocols/") < pos("Site A/") && pos("Site A/") < pos("b.txt"), "{text}");
        assert!(text.contains("DAG site_a"));
        let mut out = Vec::new();
        write_listing(&entries(), Format::Csv, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("kind,id,name,dag,role\nfile,7,b.txt,,\n"));
    }

    #[test]
    fn a_transfer_failing_only_on_local_files_exits_6() {
        let mut s = TransferSummary::default();
        s.failed = vec![("a.txt".into(), "No space left on device".into())];
        s.failed_local = 1;
        assert_eq!(check_complete(&s).unwrap_err().kind, ExitKind::Local);
        s.failed.push(("b.txt".into(), "HTTP 500".into()));
        assert_eq!(check_complete(&s).unwrap_err().kind, ExitKind::Other);
    }

    #[test]
    fn tree_rendering() {
        let mut walk = redcap::workflow::TreeWalk::new(None);
        let (root, path) = walk.next_folder().unwrap();
        walk.add_listing(root, &path, entries()).unwrap();
        let (sub, path) = walk.next_folder().unwrap();
        assert_eq!(sub, Some(1));
        walk.add_listing(sub, &path, serde_json::from_str(r#"[{"doc_id":9,"name":"p.pdf"}]"#).unwrap()).unwrap();
        let (sub, path) = walk.next_folder().unwrap();
        walk.add_listing(sub, &path, Vec::new()).unwrap();
        let text = render_tree(&walk.finish());
        assert_eq!(
            text,
            "File Repository (top level)\n\
             ├── Protocols/  (folder_id 1)\n\
             │   └── p.pdf  (doc_id 9)\n\
             ├── Site A/  (folder_id 2, DAG site_a)\n\
             └── b.txt  (doc_id 7)\n"
        );
    }
}
