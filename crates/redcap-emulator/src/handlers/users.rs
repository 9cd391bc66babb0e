//! Users, roles, DAGs and their mappings: exports.

use serde_json::Value;

use super::{Ctx, HResult, bad};
use crate::auth::Rights;
use crate::render::Table;

fn need_dag_right(ctx: &Ctx) -> Result<(), super::Failure> {
    if ctx.user.rights.api_export && ctx.user.rights.data_access_groups {
        Ok(())
    } else {
        // Recorded text and status (REDCapR issue #558).
        Err(bad(
            "Insufficient user privileges: You must have 'API Export' privileges and 'Data Access Groups' privileges in the project.",
        ))
    }
}

/// Export DAGs.
pub fn dags(ctx: &mut Ctx) -> HResult {
    need_dag_right(ctx)?;
    let mut t = Table::new(["data_access_group_name", "unique_group_name", "data_access_group_id"]);
    for d in &ctx.project.def.dags {
        t.rows.push(vec![Value::from(d.name.clone()), Value::from(d.unique.clone()), Value::from(d.id)]);
    }
    let reply = ctx.table(&t, "dags")?;
    ctx.log_export("Export DAGs (API)")?;
    Ok(reply)
}

/// Export User-DAG Assignments.
pub fn user_dag_mapping(ctx: &mut Ctx) -> HResult {
    need_dag_right(ctx)?;
    let p = ctx.project.clone();
    let mut t = Table::new(["username", "redcap_data_access_group"]);
    for m in ctx.store.project_users(p.id())? {
        let dag = m.dag_id.and_then(|d| p.dag(d)).map(|d| d.unique.clone()).unwrap_or_default();
        t.push_strs([m.username, dag]);
    }
    ctx.table(&t, "items")
}

fn rights_cells(r: &Rights) -> Vec<(&'static str, Value)> {
    let b = |v: bool| Value::from(i64::from(v));
    let o = |k: &str| Value::from(r.other(k));
    vec![
        ("design", b(r.design)),
        ("alerts", o("alerts")),
        ("user_rights", Value::from(r.user_rights_code())),
        ("data_access_groups", b(r.data_access_groups)),
        ("reports", b(r.reports)),
        ("stats_and_charts", o("stats_and_charts")),
        ("manage_survey_participants", o("manage_survey_participants")),
        ("calendar", o("calendar")),
        ("data_import_tool", o("data_import_tool")),
        ("data_comparison_tool", o("data_comparison_tool")),
        ("logging", b(r.logging)),
        ("email_logging", o("email_logging")),
        ("file_repository", b(r.file_repository)),
        ("data_quality_create", o("data_quality_create")),
        ("data_quality_execute", o("data_quality_execute")),
        ("api_export", b(r.api_export)),
        ("api_import", b(r.api_import)),
        ("api_modules", o("api_modules")),
        ("mobile_app", o("mobile_app")),
        ("mobile_app_download_data", o("mobile_app_download_data")),
        ("record_create", b(r.record_create)),
        ("record_rename", b(r.record_rename)),
        ("record_delete", b(r.record_delete)),
        ("lock_records_all_forms", o("lock_records_all_forms")),
        ("lock_records", o("lock_records")),
        ("lock_records_customization", o("lock_records_customization")),
    ]
}

/// Per-form rights as given (project XML `data_entry` / `data_export_instruments`, or an
/// import), in either REDCap encoding; a form without one: view and edit (1), and the user's
/// data-export level.
fn forms_cells(ctx: &Ctx, r: &Rights, csv: bool) -> (Value, Value) {
    let forms: Vec<&str> = ctx.project.def.forms.iter().map(|f| f.name.as_str()).collect();
    let code = |list: &[(String, i64)], form: &str, default: i64| {
        list.iter().find(|(f, _)| f == form).map_or(default, |(_, c)| *c)
    };
    let entry = |n: &str| code(&r.forms, n, 1);
    let export = |n: &str| code(&r.forms_export, n, r.data_export.code());
    if csv {
        let f = forms.iter().map(|n| format!("{n}:{}", entry(n))).collect::<Vec<_>>().join(",");
        let e = forms.iter().map(|n| format!("{n}:{}", export(n))).collect::<Vec<_>>().join(",");
        (Value::from(f), Value::from(e))
    } else {
        let f: serde_json::Map<String, Value> = forms.iter().map(|n| (n.to_string(), Value::from(entry(n)))).collect();
        let e: serde_json::Map<String, Value> = forms.iter().map(|n| (n.to_string(), Value::from(export(n)))).collect();
        (Value::Object(f), Value::Object(e))
    }
}

/// Export Users: API Export + User Rights.
pub fn users(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    ctx.need_user_rights()?;
    let p = ctx.project.clone();
    let out = ctx.out(false)?;
    let csv = matches!(out, crate::render::Out::Csv(_));
    let mut t: Option<Table> = None;
    for m in ctx.store.project_users(p.id())? {
        let rights = m.role_id.and_then(|r| p.role(r)).map(|r| r.rights.clone()).unwrap_or(m.rights.clone());
        let dag = m.dag_id.and_then(|d| p.dag(d));
        let mut cells: Vec<(&str, Value)> = vec![
            ("username", Value::from(m.username.clone())),
            ("email", Value::from(m.email.clone())),
            ("firstname", Value::from(m.firstname.clone())),
            ("lastname", Value::from(m.lastname.clone())),
            ("expiration", Value::from(m.expiration.clone())),
            ("data_access_group", Value::from(dag.map(|d| d.unique.clone()).unwrap_or_default())),
            ("data_access_group_id", dag.map(|d| Value::from(d.id)).unwrap_or_else(|| Value::from(""))),
            ("data_access_group_label", Value::from(dag.map(|d| d.name.clone()).unwrap_or_default())),
        ];
        cells.extend(rights_cells(&rights));
        let (forms, forms_export) = forms_cells(ctx, &rights, csv);
        cells.push(("forms", forms));
        cells.push(("forms_export", forms_export));
        let table = t.get_or_insert_with(|| Table::new(cells.iter().map(|(k, _)| *k)));
        table.rows.push(cells.into_iter().map(|(_, v)| v).collect());
    }
    let t = t.unwrap_or_else(|| Table::new(["username"]));
    // In CSV the per-form rights are one `form:1,…` cell; in XML one child element per form.
    ctx.table(&t, "users")
}

/// Export User Roles: API Export + User Rights. Role rights are strings in JSON (PyCap doctest).
pub fn roles(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    ctx.need_user_rights()?;
    let p = ctx.project.clone();
    let csv = matches!(ctx.out(false)?, crate::render::Out::Csv(_));
    let mut cols = vec!["unique_role_name".to_owned(), "role_label".to_owned()];
    let mut rows = Vec::new();
    for r in &p.def.roles {
        let mut row = vec![Value::from(r.unique.clone()), Value::from(r.label.clone())];
        let cells = rights_cells(&r.rights);
        if rows.is_empty() {
            cols.extend(cells.iter().map(|(k, _)| k.to_string()));
            cols.extend(["forms".to_owned(), "forms_export".to_owned()]);
        }
        row.extend(cells.into_iter().map(|(_, v)| Value::from(crate::render::text_of(&v))));
        let (f, e) = forms_cells(ctx, &r.rights, csv);
        row.extend([f, e]);
        rows.push(row);
    }
    if rows.is_empty() {
        cols.extend(rights_cells(&Rights::none()).iter().map(|(k, _)| k.to_string()));
        cols.extend(["forms".to_owned(), "forms_export".to_owned()]);
    }
    ctx.table(&Table { columns: cols, rows, quoted: Vec::new() }, "items")
}

/// Export User-Role Assignments.
pub fn user_role_mapping(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    ctx.need_user_rights()?;
    let p = ctx.project.clone();
    let mut t = Table::new(["username", "unique_role_name", "data_access_group"]);
    for m in ctx.store.project_users(p.id())? {
        let role = m.role_id.and_then(|r| p.role(r)).map(|r| r.unique.clone()).unwrap_or_default();
        let dag = m.dag_id.and_then(|d| p.dag(d)).map(|d| d.unique.clone()).unwrap_or_default();
        t.push_strs([m.username, role, dag]);
    }
    ctx.table(&t, "items")
}
