//! Record files: Export / Import / Delete a File (`content=file`) of File Upload fields
//! (reference §3.10, §5.5). The stored value of the field is the doc id; Export Records shows
//! the file's name.

use super::file_repository::{NO_UPLOAD, name_and_mime};
use super::{Ctx, Failure, HResult, Reply, bad, forbidden};
use crate::model::Field;
use crate::records::Dataset;
use crate::store::RowKey;

/// The field and the row (record, event, instrument, instance) a call names.
struct Target {
    field: Field,
    key: RowKey,
}

fn not_file_field(name: &str) -> Failure {
    // Recorded text and status (REDCapR test-file-oneshot.R).
    bad(format!("The field '{name}' does not exist or is not a 'file' field"))
}

/// Resolves `record`, `field`, `event` and `repeat_instance`. The record must exist and be
/// visible to the caller's DAG; it is checked first, and a missing one is a record `''` that
/// does not exist (recorded against a live REDCap: `The record '' does not exist` for Export and
/// Delete a File sent without parameters, AndrewPoppe/ApiUserRights
/// tests/playwright/e2e/unit_test.spec.js). The event and instance texts are UNVERIFIED.
fn target(ctx: &Ctx, data: &Dataset) -> Result<Target, Failure> {
    let p = &*ctx.project;
    let record = ctx.params.get("record").unwrap_or("").trim();
    let visible =
        !record.is_empty() && data.has_record(record) && ctx.user.dag_id.is_none_or(|d| data.dag_of(record) == Some(d));
    if !visible {
        return Err(bad(format!("The record '{record}' does not exist")));
    }
    let name = ctx.params.get("field").unwrap_or("").trim();
    let field = p.field(name).filter(|f| f.field_type == "file").ok_or_else(|| not_file_field(name))?.clone();
    let event = if p.def.longitudinal {
        let e = ctx.params.get_nonempty("event").ok_or_else(|| {
            bad("The parameter \"event\" is missing: a unique event name is required in longitudinal projects")
        })?;
        if p.event(e).is_none() {
            return Err(bad(format!("The value of the parameter \"event\" is not valid: '{e}'")));
        }
        if !p.form_in_event(e, &field.form) {
            return Err(bad(format!(
                "The field '{name}' is on an instrument that is not designated for the event '{e}'"
            )));
        }
        e.to_owned()
    } else {
        p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default()
    };
    let instance: i64 = match ctx.params.get_nonempty("repeat_instance") {
        None => 1,
        Some(v) => match v.trim().parse() {
            Ok(n) if n >= 1 => n,
            _ => return Err(bad("The value of the parameter \"repeat_instance\" is not valid")),
        },
    };
    let repeating_form = p.is_repeating_form(&event, &field.form);
    if instance != 1 && !repeating_form && !p.is_repeating_event(&event) {
        return Err(bad(format!(
            "The parameter \"repeat_instance\" cannot be {instance}: the field '{name}' does not repeat in this event"
        )));
    }
    let instrument = if repeating_form { field.form.clone() } else { String::new() };
    Ok(Target { field, key: RowKey { record: record.to_owned(), event, instrument, instance } })
}

fn stored_doc(data: &Dataset, t: &Target) -> Option<i64> {
    data.values_at(&t.key.record, &t.key.event, &t.key.instrument, t.key.instance, &t.field.name)
        .first()
        .and_then(|v| v.parse().ok())
}

/// Export a File: API Export; the bytes with `Content-Type: <mime>; name="<file>"`.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let level = ctx.need_data_export()?;
    let data = Dataset::load(ctx.store, &ctx.project)?;
    let t = target(ctx, &data)?;
    if ctx.export_hides(level, &t.field.name) {
        // UNVERIFIED text: an identifier file field under a restricted export level, or a field
        // of an instrument without export rights.
        return Err(forbidden(format!("You do not have Data Export privileges for the field '{}'", t.field.name)));
    }
    let pid = ctx.project.id();
    let doc =
        stored_doc(&data, &t).map(|d| ctx.store.record_file(pid, &t.key, &t.field.name, d)).transpose()?.flatten();
    let Some(doc) = doc else {
        return Err(bad(format!(
            "There is no file to download for the field '{}' of record \"{}\"",
            t.field.name, t.key.record
        )));
    };
    ctx.log(
        "export",
        "Data export (API)",
        &format!("Download uploaded document (API) field = '{}'", t.field.name),
        &t.key.record,
    )?;
    Ok(Reply::File { path: doc.path, mime: doc.mime, name: doc.name, size: doc.size })
}

/// Import a File: API Import and edit rights on the field's instrument; multipart part `file`;
/// replaces any earlier file; empty 200. The earlier file stays in the blob store (REDCap keeps
/// earlier versions too).
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    // The upload is checked first (recorded: `No valid file was uploaded` for a call without
    // parameters, AndrewPoppe/ApiUserRights' Playwright suite).
    if ctx.params.upload.is_none() {
        return Err(bad(NO_UPLOAD));
    }
    let data = Dataset::load(ctx.store, &ctx.project)?;
    let t = target(ctx, &data)?;
    ctx.need_entry_right(&t.field.name)?;
    if t.field.validation == "signature" {
        // Signature fields cannot be imported (PyCap API changelog 6.2.0); text UNVERIFIED.
        return Err(bad(format!(
            "The field '{}' is a signature field, which cannot be imported through the API",
            t.field.name
        )));
    }
    let Some(upload) = ctx.params.upload.take() else {
        return Err(bad(NO_UPLOAD));
    };
    let (name, mime) = name_and_mime(&upload);
    let pid = ctx.project.id();
    let rid = ctx.project.def.record_id_field.clone();
    let (username, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        let doc_id = s.adopt_blob(pid, &name, &mime, &upload.path)?;
        s.ensure_record(pid, &t.key.record, dag)?;
        // The record-id value marks the row (and the event's base row) as existing.
        s.set_values(pid, &t.key, &rid, std::slice::from_ref(&t.key.record))?;
        if !t.key.instrument.is_empty() {
            let base = RowKey { instrument: String::new(), instance: 1, ..t.key.clone() };
            s.set_values(pid, &base, &rid, std::slice::from_ref(&t.key.record))?;
        }
        s.set_values(pid, &t.key, &t.field.name, &[doc_id.to_string()])?;
        s.bind_record_file(pid, &t.key, &t.field.name, doc_id)?;
        s.log(
            pid,
            &username,
            "record_edit",
            &format!("Update record (API) {}", t.key.record),
            &format!("Upload document (API) {} = '{name}'", t.field.name),
            &t.key.record,
            dag,
        )?;
        Ok(())
    })?;
    // The blob now lives under its final name; nothing to clean up.
    let _ = upload.path.keep();
    Ok(Reply::Empty)
}

/// Delete a File: API Import and edit rights on the field's instrument; empties the field; empty 200.
pub fn delete(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    let data = Dataset::load(ctx.store, &ctx.project)?;
    let t = target(ctx, &data)?;
    ctx.need_entry_right(&t.field.name)?;
    if stored_doc(&data, &t).is_none() {
        return Err(bad(format!(
            "There is no file to delete for the field '{}' of record \"{}\"",
            t.field.name, t.key.record
        )));
    }
    let pid = ctx.project.id();
    let (username, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        s.set_values(pid, &t.key, &t.field.name, &[])?;
        s.ensure_record(pid, &t.key.record, dag)?;
        s.log(
            pid,
            &username,
            "record_edit",
            &format!("Update record (API) {}", t.key.record),
            &format!("Delete uploaded document (API) {}", t.field.name),
            &t.key.record,
            dag,
        )?;
        Ok(())
    })?;
    Ok(Reply::Empty)
}
