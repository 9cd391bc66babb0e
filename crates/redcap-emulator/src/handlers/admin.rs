//! Writes of users, roles, DAGs and their mappings: Import / Delete Users, Import / Delete
//! User Roles, Import User-Role Assignments, Import / Delete DAGs, Switch DAG, Import User-DAG
//! Assignments (reference §3.8, §3.9). Counts are bare numbers (§5.6); every write is logged.

use std::collections::HashSet;

use super::{Ctx, Failure, HResult, Reply, bad, forbidden};
use crate::auth::{DataExport, Rights};
use crate::input::{self, InRow};
use crate::model::{Dag, Role, unique_dag_name};
use crate::store::MemberRow;

fn count(n: usize) -> HResult {
    Ok(Reply::text(n.to_string()))
}

fn invalid(param: &str, values: &[String]) -> Failure {
    bad(format!(
        "The following values in the parameter \"{param}\" are not valid: {}",
        values.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
    ))
}

fn value<'a>(row: &'a InRow, key: &str) -> Option<&'a str> {
    input::get(row, key).map(str::trim)
}

/// API Import/Update and the DAG right; the text mirrors the recorded export message
/// (REDCapR issue #558) with "API Import/Update" (UNVERIFIED).
/// A user assigned to a DAG cannot manage DAGs or DAG assignments whatever their rights: in
/// REDCap only unassigned users create and modify DAGs and move users between them (REDCap's
/// DAG help as published by York and QMUL; text UNVERIFIED).
fn need_dag_import(ctx: &Ctx) -> Result<(), Failure> {
    if !(ctx.user.rights.api_import && ctx.user.rights.data_access_groups) {
        return Err(bad(
            "Insufficient user privileges: You must have 'API Import/Update' privileges and 'Data Access Groups' privileges in the project.",
        ));
    }
    if ctx.user.dag_id.is_some() {
        return Err(forbidden(IN_A_DAG));
    }
    Ok(())
}

const IN_A_DAG: &str = "You are assigned to a Data Access Group, so you cannot create, rename or delete Data Access Groups or change which group a user is in";

/// For a DAG-assigned caller (User Rights within their own group only): the users of other
/// groups, and unassigned users, are out of reach; `None` when the caller is unassigned.
fn outside_my_dag(ctx: &Ctx, target: Option<&MemberRow>) -> Option<String> {
    let mine = ctx.user.dag_id?;
    match target {
        Some(m) if m.dag_id != Some(mine) => Some(format!(
            "The user \"{}\" is not in your Data Access Group: a user assigned to a Data Access Group manages only the users of that group",
            m.username
        )),
        _ => None,
    }
}

/// For a DAG-assigned caller, the DAG a user row may name: only the caller's own (UNVERIFIED text).
fn check_dag_choice(ctx: &Ctx, who: &str, chosen: Option<i64>, errors: &mut Vec<String>) -> bool {
    match ctx.user.dag_id {
        Some(mine) if chosen != Some(mine) => {
            errors.push(format!("User \"{who}\": {IN_A_DAG}"));
            false
        }
        _ => true,
    }
}

fn need_user_import(ctx: &Ctx) -> Result<(), Failure> {
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

/// Logs one change under `kind` (`user` or `manage`) inside the current transaction.
fn log(ctx: &mut Ctx, kind: &str, action: &str, details: &str) -> Result<(), Failure> {
    ctx.log(kind, action, details, "")
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
fn apply_rights(r: &mut Rights, row: &InRow, who: &str, errors: &mut Vec<String>) {
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

/// A DAG by unique name: `Ok(None)` for blank, an error line for an unknown name.
fn dag_by_unique(ctx: &Ctx, unique: &str, errors: &mut Vec<String>) -> Option<Option<i64>> {
    if unique.is_empty() {
        return Some(None);
    }
    match ctx.project.dag_by_unique(unique) {
        Some(d) => Some(Some(d.id)),
        None => {
            errors.push(format!("The Data Access Group \"{unique}\" does not exist (use its unique group name)"));
            None
        }
    }
}

fn member<'a>(members: &'a [MemberRow], username: &str) -> Option<&'a MemberRow> {
    members.iter().find(|m| m.username == username)
}

// ------------------------------------------------------------------------------- users

/// Import Users: API Import + User Rights. New users get no rights except the ones given;
/// existing users keep whatever the row leaves out (API help: imp_users). New users get no API
/// token (tokens are requested separately in REDCap).
pub fn import_users(ctx: &mut Ctx) -> HResult {
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
        let username = value(row, "username").unwrap_or("").to_owned();
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
        let dag = match value(row, "data_access_group") {
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
        let expiration = match value(row, "expiration") {
            Some(e) if e.is_empty() || is_ymd(e) => e.to_owned(),
            Some(e) => {
                errors.push(format!("User \"{username}\": the expiration \"{e}\" must be YYYY-MM-DD or blank"));
                continue;
            }
            None => old.map(|m| m.expiration.clone()).unwrap_or_default(),
        };
        let keep = |k: &str, cur: Option<&String>| {
            value(row, k).map(str::to_owned).or_else(|| cur.cloned()).unwrap_or_default()
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
pub fn delete_users(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let list = ctx.params.list("users").ok_or_else(|| bad("The parameter \"users\" is missing"))?;
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

// ------------------------------------------------------------------------------- roles

/// Import User Roles: API Import + User Rights. A blank `unique_role_name` creates a role (the
/// emulator names it `U-` + 10 characters, the shape of REDCap's names); an existing one is updated.
pub fn import_roles(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut errors = Vec::new();
    let mut created = 0;
    for row in &rows {
        let unique = value(row, "unique_role_name").unwrap_or("");
        let label = value(row, "role_label").unwrap_or("");
        if unique.is_empty() {
            if label.is_empty() {
                errors.push("A new role needs a role_label".to_owned());
                continue;
            }
            let mut rights = Rights::none();
            apply_rights(&mut rights, row, &format!("Role \"{label}\""), &mut errors);
            def.roles.push(Role { id: 0, unique: String::new(), label: label.to_owned(), rights });
            created += 1;
            continue;
        }
        let Some(role) = def.roles.iter_mut().find(|r| r.unique == unique) else {
            errors.push(format!("The role \"{unique}\" does not exist (leave unique_role_name blank to create one)"));
            continue;
        };
        if !label.is_empty() {
            role.label = label.to_owned();
        }
        apply_rights(&mut role.rights, row, &format!("Role \"{unique}\""), &mut errors);
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let n = rows.len();
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for r in def.roles.iter_mut().filter(|r| r.unique.is_empty()) {
            r.id = s.next_id("role", 1)?;
            r.unique = format!("U-{}", s.make_token(10));
        }
        for r in def.roles.iter().rev().take(created) {
            s.log(def.id, &me, "user", "Add user role", &format!("role = '{}' ({})", r.label, r.unique), "", my_dag)?;
        }
        s.log(def.id, &me, "user", "Edit user role", &format!("Import user roles (API): {n}"), "", my_dag)?;
        s.save_def(def)?;
        Ok(())
    })?;
    count(n)
}

/// Delete User Roles: members of a deleted role keep its rights as their own (REDCap's behaviour
/// here is UNVERIFIED); folders restricted to it become unrestricted.
pub fn delete_roles(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let list = ctx.params.list("roles").ok_or_else(|| bad("The parameter \"roles\" is missing"))?;
    let p = ctx.project.clone();
    let unknown: Vec<String> = list.iter().filter(|u| !p.def.roles.iter().any(|r| &r.unique == *u)).cloned().collect();
    if !unknown.is_empty() {
        return Err(invalid("roles", &unknown));
    }
    let gone: Vec<Role> = p.def.roles.iter().filter(|r| list.contains(&r.unique)).cloned().collect();
    let mut def = p.def.clone();
    def.roles.retain(|r| !list.contains(&r.unique));
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for r in &gone {
            s.forget_role(def.id, r.id, &r.rights)?;
            s.log(
                def.id,
                &me,
                "user",
                "Delete user role",
                &format!("role = '{}' ({})", r.label, r.unique),
                "",
                my_dag,
            )?;
        }
        s.save_def(def)?;
        Ok(())
    })?;
    count(gone.len())
}

/// Import User-Role Assignments: a blank role removes the assignment; a `data_access_group`
/// column also sets the user's DAG (API help: imp_user_role_maps).
pub fn import_user_roles(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let rows = ctx.data_rows()?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let mut errors = Vec::new();
    let mut plans: Vec<(String, Option<i64>, Option<Option<i64>>)> = Vec::new();
    for row in &rows {
        let username = value(row, "username").unwrap_or("");
        let Some(m) = member(&members, username) else {
            errors.push(format!("The user \"{username}\" is not a user of this project"));
            continue;
        };
        if let Some(e) = outside_my_dag(ctx, Some(m)) {
            errors.push(e);
            continue;
        }
        let role = match value(row, "unique_role_name").unwrap_or("") {
            "" => None,
            u => match ctx.project.def.roles.iter().find(|r| r.unique == u) {
                Some(r) => Some(r.id),
                None => {
                    errors.push(format!("The role \"{u}\" does not exist"));
                    continue;
                }
            },
        };
        let dag = match value(row, "data_access_group") {
            Some(u) => match dag_by_unique(ctx, u, &mut errors) {
                Some(d) => Some(d),
                None => continue,
            },
            None => None,
        };
        if let Some(d) = dag {
            if !check_dag_choice(ctx, username, d, &mut errors) {
                continue;
            }
        }
        plans.push((username.to_owned(), role, dag));
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for (u, role, dag) in &plans {
            s.set_member_role(pid, u, *role)?;
            if let Some(d) = dag {
                s.set_member_dag(pid, u, *d)?;
            }
            s.log(pid, &me, "user", "Assign user to role", &format!("user = '{u}'"), "", my_dag)?;
        }
        Ok(())
    })?;
    count(plans.len())
}

// ------------------------------------------------------------------------------- DAGs

/// A unique DAG name for `name` that no other DAG has (a clash gets `_2`, `_3` …; UNVERIFIED).
fn fresh_unique(dags: &[Dag], name: &str, except: Option<i64>) -> String {
    let base = unique_dag_name(name);
    let base = if base.is_empty() { "dag".to_owned() } else { base };
    let taken = |u: &str| dags.iter().any(|d| d.unique == u && Some(d.id) != except);
    let mut candidate = base.clone();
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

/// Import DAGs (`action=import`): a blank `unique_group_name` creates a DAG; an existing one
/// renames it, and its unique name follows the new label as redcapAPI's live test saw
/// (redcapAPI test-104). Report DAG filters follow the rename.
pub fn import_dags(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut errors = Vec::new();
    let mut created = Vec::new();
    let mut renames: Vec<(String, String)> = Vec::new();
    for row in &rows {
        let name = value(row, "data_access_group_name").unwrap_or("");
        let unique = value(row, "unique_group_name").unwrap_or("");
        if name.is_empty() {
            errors.push(format!("The DAG \"{unique}\" needs a data_access_group_name"));
            continue;
        }
        if unique.is_empty() {
            let u = fresh_unique(&def.dags, name, None);
            def.dags.push(Dag { id: 0, name: name.to_owned(), unique: u.clone() });
            created.push(u);
            continue;
        }
        let Some(id) = def.dags.iter().find(|d| d.unique == unique).map(|d| d.id) else {
            errors.push(format!(
                "The Data Access Group \"{unique}\" does not exist (leave unique_group_name blank to create one)"
            ));
            continue;
        };
        let new_unique = fresh_unique(&def.dags, name, Some(id));
        if let Some(d) = def.dags.iter_mut().find(|d| d.id == id) {
            d.name = name.to_owned();
            if new_unique != d.unique {
                renames.push((d.unique.clone(), new_unique.clone()));
                d.unique = new_unique;
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    for r in &mut def.reports {
        for f in &mut r.filter_dags {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == f) {
                *f = new.clone();
            }
        }
    }
    let n = rows.len();
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for d in def.dags.iter_mut().filter(|d| d.id == 0) {
            d.id = s.next_id("dag", 1)?;
        }
        for u in &created {
            s.log(
                def.id,
                &me,
                "manage",
                "Manage/Design",
                &format!("Create data access group '{u}' (API)"),
                "",
                my_dag,
            )?;
        }
        for (old, new) in &renames {
            s.log(
                def.id,
                &me,
                "manage",
                "Manage/Design",
                &format!("Rename data access group '{old}' to '{new}' (API)"),
                "",
                my_dag,
            )?;
        }
        s.log(def.id, &me, "manage", "Manage/Design", &format!("Import data access groups (API): {n}"), "", my_dag)?;
        s.save_def(def)?;
        Ok(())
    })?;
    count(n)
}

/// Delete DAGs: records and users in a deleted DAG become unassigned, folders restricted to it
/// unrestricted (REDCap's handling is UNVERIFIED).
pub fn delete_dags(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let list = ctx.params.list("dags").ok_or_else(|| bad("The parameter \"dags\" is missing"))?;
    let p = ctx.project.clone();
    let unknown: Vec<String> = list.iter().filter(|u| p.dag_by_unique(u).is_none()).cloned().collect();
    if !unknown.is_empty() {
        return Err(invalid("dags", &unknown));
    }
    let gone: Vec<Dag> = p.def.dags.iter().filter(|d| list.contains(&d.unique)).cloned().collect();
    let names: HashSet<&str> = gone.iter().map(|d| d.unique.as_str()).collect();
    let mut def = p.def.clone();
    def.dags.retain(|d| !names.contains(d.unique.as_str()));
    for r in &mut def.reports {
        r.filter_dags.retain(|u| !names.contains(u.as_str()));
    }
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for d in &gone {
            s.forget_dag(def.id, d.id)?;
            s.log(
                def.id,
                &me,
                "manage",
                "Manage/Design",
                &format!("Delete data access group '{}' (API)", d.unique),
                "",
                my_dag,
            )?;
        }
        s.save_def(def)?;
        Ok(())
    })?;
    count(gone.len())
}

/// Switch DAG: API Import; moves the caller into `dag` (blank: no DAG, per KB RC-API-33,
/// UNVERIFIED) if the DAG Switcher lets them (see `Emulator::set_dag_switcher`). Answers `1`.
pub fn switch_dag(ctx: &mut Ctx) -> HResult {
    ctx.need_import()?;
    let Some(target) = ctx.params.get("dag").map(|s| s.trim().to_owned()) else {
        return Err(bad("The parameter \"dag\" is missing"));
    };
    let id = match target.as_str() {
        "" => None,
        u => Some(
            ctx.project
                .dag_by_unique(u)
                .ok_or_else(|| bad(format!("The value of the parameter \"dag\" is not valid: '{u}'")))?
                .id,
        ),
    };
    let pid = ctx.project.id();
    let allowed = ctx.store.dag_switcher(pid, &ctx.user.username)?;
    if !allowed.contains(&id) {
        // UNVERIFIED text.
        return Err(bad(format!(
            "The user \"{}\" cannot switch to {} because the DAG Switcher does not give them access to it",
            ctx.user.username,
            if target.is_empty() { "no DAG".to_owned() } else { format!("the DAG \"{target}\"") }
        )));
    }
    let me = ctx.user.username.clone();
    ctx.store.set_member_dag(pid, &me, id)?;
    log(ctx, "user", "Switch DAG", &format!("user = '{me}', dag = '{target}' (API)"))?;
    Ok(Reply::text("1"))
}

/// Import User-DAG Assignments: rows `{username, redcap_data_access_group}`, blank = no DAG.
pub fn import_user_dags(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let rows = ctx.data_rows()?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    for row in &rows {
        let username = value(row, "username").unwrap_or("");
        if member(&members, username).is_none() {
            errors.push(format!("The user \"{username}\" is not a user of this project"));
            continue;
        }
        let unique = value(row, "redcap_data_access_group").unwrap_or("");
        if let Some(d) = dag_by_unique(ctx, unique, &mut errors) {
            plans.push((username.to_owned(), d, unique.to_owned()));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let (me, my_dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for (u, d, unique) in &plans {
            s.set_member_dag(pid, u, *d)?;
            s.log(
                pid,
                &me,
                "user",
                "Assign user to data access group",
                &format!("user = '{u}', dag = '{unique}'"),
                "",
                my_dag,
            )?;
        }
        Ok(())
    })?;
    count(plans.len())
}
