//! Users (spec/user.toml): Export, Import and Delete Users, and the rights columns that users and
//! roles share (reference §3.8). Counts are bare numbers (§5.6); every write is logged.

use serde_json::Value;

use super::dag::{check_dag_choice, dag_by_unique, member, outside_my_dag};
use super::{Ctx, Failure, HResult, bad, count, forbidden, given, invalid};
use crate::auth::{DataExport, Rights};
use crate::input::InRow;
use crate::render::Table;

/// The rights columns of a user (`role` false) or a role, in REDCap's order.
pub(super) fn rights_cells(r: &Rights, role: bool) -> Vec<(&'static str, Value)> {
    let b = |v: bool| Value::from(i64::from(v));
    let o = |k: &str| Value::from(r.other(k));
    let mut cells = vec![
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
    ];
    // Users and roles list the locking rights in different orders: users as PyCap's doctest
    // `import_users` and REDCapR's users-export fixture, roles as PyCap's doctest
    // `export_user_roles` (`'lock_records_customization': '0', 'lock_records': '0', ...`).
    let locking: &[&str] = if role {
        &["lock_records_customization", "lock_records", "lock_records_all_forms"]
    } else {
        &["lock_records_all_forms", "lock_records", "lock_records_customization"]
    };
    cells.extend(locking.iter().map(|k| (*k, o(k))));
    cells
}

/// Whether the emulated REDCap version is at least `min` (unparsable: the newest).
fn version_at_least(version: &str, min: [u32; 3]) -> bool {
    let mut have = [0u32; 3];
    for (slot, part) in have.iter_mut().zip(version.split('.')) {
        match part.trim().parse() {
            Ok(n) => *slot = n,
            Err(_) => return true,
        }
    }
    have >= min
}

/// Per-form rights as given (project XML `data_entry` / `data_export_instruments`, or an
/// import), in either REDCap encoding; a form without one: view and edit (1), and the user's
/// data-export level.
pub(super) fn forms_cells(ctx: &Ctx, r: &Rights, csv: bool) -> (Value, Value) {
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
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    ctx.need_user_rights()?;
    let p = ctx.project.clone();
    let out = ctx.out(false)?;
    let csv = matches!(out, crate::render::Out::Csv(_));
    let label_column = version_at_least(&ctx.env.version, [16, 0, 0]);
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
        ];
        // REDCap 16.0.0 added the DAG's label (redcapAPI's user-structure test; REDCap 16.0.0's
        // change log); PyCap 2.7.0's doctest, recorded on 14.x, goes from the id to `design`.
        if label_column {
            cells.push(("data_access_group_label", Value::from(dag.map(|d| d.name.clone()).unwrap_or_default())));
        }
        cells.extend(rights_cells(&rights, false));
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

pub(super) fn need_user_import(ctx: &Ctx) -> Result<(), Failure> {
    ctx.need_import()?;
    ctx.need_user_rights()?;
    if ctx.user.rights.user_rights_read_only {
        // Read-only User Rights (code 2) may look, not change; text UNVERIFIED.
        return Err(forbidden("Your User Rights privileges are read-only: you cannot change users or roles"));
    }
    Ok(())
}

/// `{"f":1,…}` (JSON) or `f:1,g:0` (CSV) per-instrument codes.
fn form_code_list(v: &str) -> Option<Vec<(String, i64)>> {
    if v.trim_start().starts_with('{') {
        let map = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(v).ok()?;
        map.into_iter()
            .map(|(k, x)| Some((k, x.as_i64().or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))?)))
            .collect()
    } else {
        v.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (f, c) = p.rsplit_once(':')?;
                Some((f.trim().to_owned(), c.trim().parse().ok()?))
            })
            .collect()
    }
}

/// The best data-export level in a `forms_export` value: `{"f":1,…}` (JSON) or `f:1,g:0` (CSV).
fn best_export_level(v: &str) -> Option<DataExport> {
    let codes: Vec<i64> = if v.trim_start().starts_with('{') {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(v)
            .ok()?
            .values()
            .filter_map(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| s.trim().parse().ok())))
            .collect()
    } else {
        v.split(',').filter_map(|p| p.rsplit_once(':').and_then(|(_, c)| c.trim().parse().ok())).collect()
    };
    [1, 3, 2, 0].into_iter().find(|c| codes.contains(c)).and_then(DataExport::from_code)
}

/// Applies the right attributes of a user or role row. Rights are `0`/`1`; `user_rights` also
/// takes 2 (read only); the rights the emulator does not act on keep the code given;
/// `data_export` (legacy) and `forms_export` (whose most permissive level the emulator enforces)
/// set the export level; `forms` and `forms_export` are kept per instrument, in either of
/// REDCap's encodings. Unknown attributes are ignored.
pub(super) fn apply_rights(r: &mut Rights, row: &InRow, who: &str, errors: &mut Vec<String>) {
    for (key, raw) in row {
        let v = raw.trim();
        if v.is_empty() {
            continue;
        }
        let slot: Option<&mut bool> = match key.as_str() {
            "design" => Some(&mut r.design),
            "data_access_groups" => Some(&mut r.data_access_groups),
            "reports" => Some(&mut r.reports),
            "logging" => Some(&mut r.logging),
            "file_repository" => Some(&mut r.file_repository),
            "api_export" => Some(&mut r.api_export),
            "api_import" => Some(&mut r.api_import),
            "record_create" => Some(&mut r.record_create),
            "record_rename" => Some(&mut r.record_rename),
            "record_delete" => Some(&mut r.record_delete),
            _ => None,
        };
        if let Some(slot) = slot {
            match v.parse::<i64>() {
                Ok(n) => *slot = n != 0,
                Err(_) => errors.push(format!("{who}: the value of '{key}' must be a number, not '{v}'")),
            }
            continue;
        }
        if let Some((api, _)) = crate::auth::OTHER_RIGHTS.iter().find(|(api, _)| api == key) {
            match v.parse::<i64>() {
                Ok(n) => {
                    r.other.insert((*api).to_owned(), n);
                }
                Err(_) => errors.push(format!("{who}: the value of '{key}' must be a number, not '{v}'")),
            }
            continue;
        }
        match key.as_str() {
            // 0 none, 1 full, 2 read only (REDCapR's recorded users export has `user_rights = 2`).
            "user_rights" => match v.parse::<i64>() {
                Ok(n @ 0..=2) => {
                    r.user_rights = n != 0;
                    r.user_rights_read_only = n == 2;
                }
                _ => errors.push(format!("{who}: the value of 'user_rights' must be 0, 1 or 2, not '{v}'")),
            },
            "forms" => match form_code_list(v) {
                Some(list) => r.forms = list,
                None => errors.push(format!("{who}: the value of 'forms' is not valid: '{v}'")),
            },
            "data_export" => match v.parse().ok().and_then(DataExport::from_code) {
                Some(level) => r.data_export = level,
                None => errors.push(format!("{who}: the value of 'data_export' must be 0, 1, 2 or 3, not '{v}'")),
            },
            "forms_export" => match best_export_level(v) {
                Some(level) => {
                    r.data_export = level;
                    r.forms_export = form_code_list(v).unwrap_or_default();
                }
                None => errors.push(format!("{who}: the value of 'forms_export' is not valid: '{v}'")),
            },
            _ => {}
        }
    }
}

/// Import Users: API Import + User Rights. New users get no rights except the ones given;
/// existing users keep whatever the row leaves out (API help: imp_users). New users get no API
/// token (tokens are requested separately in REDCap).
pub fn import(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let rows = ctx.data_rows()?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let mut errors = Vec::new();
    struct Planned {
        username: String,
        rights: Rights,
        dag: Option<i64>,
        role: Option<i64>,
        expiration: String,
        profile: (String, String, String),
        new: bool,
    }
    let mut plans = Vec::new();
    for row in &rows {
        let username = given(row, "username").unwrap_or("").to_owned();
        if username.is_empty() || username.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(format!("The username \"{username}\" is not valid"));
            continue;
        }
        let old = member(&members, &username);
        if let Some(e) = outside_my_dag(ctx, old) {
            errors.push(e);
            continue;
        }
        let mut rights = old.map(|m| m.rights.clone()).unwrap_or_else(Rights::none);
        apply_rights(&mut rights, row, &format!("User \"{username}\""), &mut errors);
        let dag = match given(row, "data_access_group") {
            Some(u) => match dag_by_unique(ctx, u, &mut errors) {
                Some(d) => d,
                None => continue,
            },
            // A new user added by a DAG-assigned user joins that user's group.
            None => old.map_or(ctx.user.dag_id, |m| m.dag_id),
        };
        if !check_dag_choice(ctx, &username, dag, &mut errors) {
            continue;
        }
        let expiration = match given(row, "expiration") {
            Some(e) if e.is_empty() || is_ymd(e) => e.to_owned(),
            Some(e) => {
                errors.push(format!("User \"{username}\": the expiration \"{e}\" must be YYYY-MM-DD or blank"));
                continue;
            }
            None => old.map(|m| m.expiration.clone()).unwrap_or_default(),
        };
        let keep = |k: &str, cur: Option<&String>| {
            given(row, k).map(str::to_owned).or_else(|| cur.cloned()).unwrap_or_default()
        };
        let profile = (
            keep("email", old.map(|m| &m.email)),
            keep("firstname", old.map(|m| &m.firstname)),
            keep("lastname", old.map(|m| &m.lastname)),
        );
        plans.push(Planned {
            new: old.is_none(),
            role: old.and_then(|m| m.role_id),
            username,
            rights,
            dag,
            expiration,
            profile,
        });
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for p in &plans {
            s.set_member(pid, &p.username, &p.rights, p.dag, p.role, &p.expiration)?;
            s.set_user_profile(&p.username, &p.profile.0, &p.profile.1, &p.profile.2)?;
            let action = if p.new { "Add user" } else { "Edit user" };
            s.log(pid, &me, "user", action, &format!("user = '{}'", p.username), "", my_dag)?;
        }
        Ok(())
    })?;
    count(plans.len())
}

fn is_ymd(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.split('-').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Delete Users: API Import + User Rights; `users[]` must all be members.
pub fn delete(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let list = ctx.names_to_delete("users")?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let unknown: Vec<String> = list.iter().filter(|u| member(&members, u).is_none()).cloned().collect();
    if !unknown.is_empty() {
        return Err(invalid("users", &unknown));
    }
    if let Some(e) = list.iter().find_map(|u| outside_my_dag(ctx, member(&members, u))) {
        return Err(forbidden(e));
    }
    let unique: Vec<String> = list.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for u in &unique {
            s.remove_member(pid, u)?;
            s.log(pid, &me, "user", "Delete user", &format!("user = '{u}'"), "", my_dag)?;
        }
        Ok(())
    })?;
    count(unique.len())
}
