//! File Repository: createFolder, list, export, import, delete (seeds RC-API-46/47/48; reference
//! §3.10, §5.5, §5.6).

use serde_json::{Map, Value};

use super::{Ctx, Failure, HResult, Reply, bad, forbidden};
use crate::render::{self, Out, Table};
use crate::store::Folder;

fn folder_error(id: impl std::fmt::Display) -> Failure {
    bad(format!(
        "The File Repository folder folder_id={id} does not exist or else you do not have permission to that folder because it is DAG-restricted or Role-restricted."
    ))
}

fn doc_error(id: impl std::fmt::Display) -> Failure {
    // Text UNVERIFIED: modelled on the recorded folder message.
    bad(format!(
        "The File Repository file doc_id={id} does not exist or else you do not have permission to that file because it is in a DAG-restricted or Role-restricted folder."
    ))
}

fn need_file_repository(ctx: &Ctx) -> Result<(), Failure> {
    if ctx.user.rights.file_repository {
        Ok(())
    } else {
        // UNVERIFIED text; the seeds only say such calls "will fail with a permissions error".
        Err(forbidden("You do not have File Repository privileges"))
    }
}

/// Whether the caller may see `f`: a DAG-restricted folder is visible to members of that DAG and
/// to users in no DAG (who see every DAG's data in REDCap); a role-restricted folder only to
/// members of that role.
fn can_see(ctx: &Ctx, f: &Folder) -> bool {
    let dag_ok = match (f.dag_id, ctx.user.dag_id) {
        (None, _) | (_, None) => true,
        (Some(fd), Some(ud)) => fd == ud,
    };
    let role_ok = match f.role_id {
        None => true,
        Some(r) => ctx.user.role_id == Some(r),
    };
    dag_ok && role_ok
}

/// The folder named by `folder_id` (absent or empty: top level), checked for existence, project
/// and access, including every ancestor.
fn target_folder(ctx: &Ctx) -> Result<Option<i64>, Failure> {
    let Some(raw) = ctx.params.get_nonempty("folder_id") else {
        return Ok(None);
    };
    let id: i64 = raw.trim().parse().map_err(|_| folder_error(raw))?;
    check_folder_chain(ctx, id).map_err(|_| folder_error(id))?;
    Ok(Some(id))
}

fn check_folder_chain(ctx: &Ctx, id: i64) -> Result<(), ()> {
    let mut next = Some(id);
    let mut hops = 0;
    while let Some(fid) = next {
        let f = ctx.store.folder(fid).map_err(|_| ())?.ok_or(())?;
        if f.project_id != ctx.project.id() || !can_see(ctx, &f) || hops > 1000 {
            return Err(());
        }
        next = f.parent_id;
        hops += 1;
    }
    Ok(())
}

fn int_param(ctx: &Ctx, name: &str) -> Result<Option<i64>, Failure> {
    match ctx.params.get_nonempty(name) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| bad(format!("The value of the parameter \"{name}\" is not valid")))
        }
    }
}

/// Create a New Folder: API Import + File Repository; returns `[{"folder_id":N}]`.
pub fn create_folder(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    need_file_repository(ctx)?;
    let out = ctx.out(false)?;
    let name = ctx.params.get("name").unwrap_or("").trim().to_owned();
    if name.is_empty() {
        // Recorded (AndrewPoppe/ApiUserRights' Playwright suite, against a live REDCap).
        return Err(bad("new folder 'name' not provided"));
    }
    // KB RC-API-45: at most 150 characters (UNVERIFIED live).
    if name.chars().count() > 150 {
        return Err(bad("The parameter \"name\" cannot be longer than 150 characters"));
    }
    let parent = target_folder(ctx)?;
    let dag_id = int_param(ctx, "dag_id")?;
    if let Some(d) = dag_id {
        if ctx.project.dag(d).is_none() {
            return Err(bad(format!("The value of the parameter \"dag_id\" is not valid: no DAG has the id {d}")));
        }
    }
    let role_id = int_param(ctx, "role_id")?;
    if let Some(r) = role_id {
        if ctx.project.role(r).is_none() {
            return Err(bad(format!("The value of the parameter \"role_id\" is not valid: no role has the id {r}")));
        }
    }
    let pid = ctx.project.id();
    let id = ctx.store.create_folder(pid, parent, &name, dag_id, role_id)?;
    ctx.log("manage", "Manage/Design", &format!("Create folder \"{name}\" in File Repository (API)"), "")?;
    let mut t = Table::new(["folder_id"]);
    t.rows.push(vec![Value::from(id)]);
    Ok(Reply::Body { content_type: ct(out).into(), body: render::table(out, &t, "items").1 })
}

fn ct(out: Out) -> &'static str {
    match out {
        Out::Json => render::JSON,
        Out::Csv(_) => render::CSV,
        Out::Xml => render::XML,
    }
}

/// Export a List of Files and Folders: API Export + File Repository; one level.
pub fn list(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    need_file_repository(ctx)?;
    let out = ctx.out(false)?;
    let folder = target_folder(ctx)?;
    let pid = ctx.project.id();
    let folders: Vec<Folder> = ctx.store.folders_in(pid, folder)?.into_iter().filter(|f| can_see(ctx, f)).collect();
    let files = ctx.store.files_in(pid, folder)?;
    // Folders first, then files, each by name (REDCapR's recorded listing).
    let mut entries: Vec<Map<String, Value>> = Vec::new();
    for f in &folders {
        let mut m = Map::new();
        m.insert("folder_id".into(), Value::from(f.folder_id));
        m.insert("name".into(), Value::from(f.name.clone()));
        if let Some(role) = f.role_id.and_then(|r| ctx.project.role(r)) {
            m.insert("role".into(), Value::from(role.unique.clone()));
        }
        if let Some(dag) = f.dag_id.and_then(|d| ctx.project.dag(d)) {
            m.insert("dag".into(), Value::from(dag.unique.clone()));
        }
        entries.push(m);
    }
    for (doc_id, name) in files {
        let mut m = Map::new();
        m.insert("doc_id".into(), Value::from(doc_id));
        m.insert("name".into(), Value::from(name));
        entries.push(m);
    }
    let body = match out {
        // Unrestricted folders omit `role`/`dag` entirely (seed RC-API-46 §7-8).
        Out::Json => serde_json::to_vec(&entries).unwrap_or_default(),
        // CSV always has the five columns of 16.0.8+; ids that do not apply are blank.
        Out::Csv(d) => {
            let cols: Vec<String> = ["folder_id", "doc_id", "name", "role", "dag"].map(String::from).to_vec();
            let rows: Vec<Vec<Value>> = entries
                .iter()
                .map(|m| cols.iter().map(|c| m.get(c).cloned().unwrap_or_else(|| Value::from(""))).collect())
                .collect();
            render::csv(&cols, &rows, d).into_bytes()
        }
        Out::Xml => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<items>\n");
            for m in &entries {
                s.push_str("<item>");
                for (k, v) in m {
                    s.push_str(&format!("<{k}>{}</{k}>", render::esc(&render::text_of(v))));
                }
                s.push_str("</item>\n");
            }
            s.push_str("</items>\n");
            s.into_bytes()
        }
    };
    Ok(Reply::Body { content_type: ct(out).into(), body })
}

/// The live repository file named by `doc_id`, checked for project and folder access.
fn target_doc(ctx: &Ctx) -> Result<(crate::store::Doc, Option<i64>), Failure> {
    // Recorded for Export and Delete without a doc_id (AndrewPoppe/ApiUserRights' Playwright
    // suite, against a live REDCap).
    let raw = ctx.params.get_nonempty("doc_id").ok_or_else(|| bad("Invalid doc_id or missing doc_id"))?;
    let id: i64 = raw.trim().parse().map_err(|_| doc_error(raw))?;
    let (doc, folder) = ctx.store.repository_file(id)?.ok_or_else(|| doc_error(id))?;
    if doc.project_id != ctx.project.id() {
        return Err(doc_error(id));
    }
    if let Some(f) = folder {
        check_folder_chain(ctx, f).map_err(|_| doc_error(id))?;
    }
    Ok((doc, folder))
}

/// Export a File: API Export + File Repository; the bytes, streamed from disk.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    need_file_repository(ctx)?;
    let (doc, _) = target_doc(ctx)?;
    ctx.log("export", "Data Export", &format!("Download file from File Repository (API) doc_id={}", doc.doc_id), "")?;
    Ok(Reply::File { path: doc.path, mime: doc.mime, name: doc.name, size: doc.size })
}

/// Import a File: API Import + File Repository; multipart `file`, optional `folder_id`; empty 200.
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    need_file_repository(ctx)?;
    let folder = target_folder(ctx)?;
    let Some(upload) = ctx.params.upload.take() else {
        return Err(bad(NO_UPLOAD));
    };
    let (name, mime) = name_and_mime(&upload);
    let pid = ctx.project.id();
    let doc_id = ctx.store.transaction(|s| {
        let doc_id = s.adopt_blob(pid, &name, &mime, &upload.path)?;
        s.add_repository_file(pid, doc_id, folder)?;
        Ok(doc_id)
    })?;
    // The blob now lives under its final name; nothing to clean up.
    let _ = upload.path.keep();
    ctx.log(
        "manage",
        "Manage/Design",
        &format!("Upload file \"{name}\" to File Repository (API) doc_id={doc_id}"),
        "",
    )?;
    Ok(Reply::Empty)
}

/// The stored name and MIME type of an upload: the part's base name (clients send one; any
/// directory part is dropped defensively), and the type guessed from it, else the part's.
pub(super) fn name_and_mime(upload: &crate::params::Upload) -> (String, String) {
    let name = upload.file_name.rsplit(['/', '\\']).next().unwrap_or("").trim().to_owned();
    let name = if name.is_empty() { "file".to_owned() } else { name };
    let mime = mime_guess::from_path(&name)
        .first()
        .map(|m| m.essence_str().to_owned())
        .or_else(|| Some(upload.content_type.clone()).filter(|c| !c.is_empty()))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    (name, mime)
}

/// The answer when a call that needs an upload has none: recorded for Import a File and the File
/// Repository's Import a File (AndrewPoppe/ApiUserRights tests/playwright/e2e/unit_test.spec.js,
/// against a live REDCap).
pub(super) const NO_UPLOAD: &str = "No valid file was uploaded";

/// Delete a File: API Import + File Repository; moves the file to the recycle bin; empty 200.
pub fn delete(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    need_file_repository(ctx)?;
    let (doc, _) = target_doc(ctx)?;
    ctx.store.recycle_repository_file(doc.doc_id)?;
    ctx.log("manage", "Manage/Design", &format!("Delete file from File Repository (API) doc_id={}", doc.doc_id), "")?;
    Ok(Reply::Empty)
}
