//! Data Access Groups (spec/dag.toml): Export, Import and Delete DAGs, Switch DAG, Export and
//! Import User-DAG Assignments, and the rules a DAG-assigned caller is held to (reference §3.9).

use std::collections::HashSet;

use serde_json::Value;

use super::{Ctx, Failure, HResult, Reply, bad, count, forbidden, given, invalid};
use crate::model::{Dag, unique_dag_name};
use crate::render::Table;
use crate::store::MemberRow;

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
pub fn export(ctx: &mut Ctx) -> HResult {
    need_dag_right(ctx)?;
    let mut t = Table::new(["data_access_group_name", "unique_group_name", "data_access_group_id"]);
    for d in &ctx.project.def.dags {
        t.rows.push(vec![Value::from(d.name.clone()), Value::from(d.unique.clone()), Value::from(d.id)]);
    }
    let reply = ctx.table(&t, "dags")?;
    ctx.log_export("Export DAGs (API)")?;
    Ok(reply)
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
pub fn import(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut errors = Vec::new();
    let mut created = Vec::new();
    let mut renames: Vec<(String, String)> = Vec::new();
    for row in &rows {
        let name = given(row, "data_access_group_name").unwrap_or("");
        let unique = given(row, "unique_group_name").unwrap_or("");
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
pub fn delete(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let list = ctx.names_to_delete("dags")?;
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
pub fn switch(ctx: &mut Ctx) -> HResult {
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
    ctx.log("user", "Switch DAG", &format!("user = '{me}', dag = '{target}' (API)"), "")?;
    Ok(Reply::text("1"))
}

/// Export User-DAG Assignments.
pub fn export_mappings(ctx: &mut Ctx) -> HResult {
    need_dag_right(ctx)?;
    let p = ctx.project.clone();
    let mut t = Table::new(["username", "redcap_data_access_group"]);
    for m in ctx.store.project_users(p.id())? {
        let dag = m.dag_id.and_then(|d| p.dag(d)).map(|d| d.unique.clone()).unwrap_or_default();
        t.push_strs([m.username, dag]);
    }
    ctx.table(&t, "items")
}

/// Import User-DAG Assignments: rows `{username, redcap_data_access_group}`, blank = no DAG.
pub fn import_mappings(ctx: &mut Ctx) -> HResult {
    need_dag_import(ctx)?;
    let rows = ctx.data_rows()?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    for row in &rows {
        let username = given(row, "username").unwrap_or("");
        if member(&members, username).is_none() {
            errors.push(format!("The user \"{username}\" is not a user of this project"));
            continue;
        }
        let unique = given(row, "redcap_data_access_group").unwrap_or("");
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

/// For a DAG-assigned caller (User Rights within their own group only): the users of other
/// groups, and unassigned users, are out of reach; `None` when the caller is unassigned.
pub(super) fn outside_my_dag(ctx: &Ctx, target: Option<&MemberRow>) -> Option<String> {
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
pub(super) fn check_dag_choice(ctx: &Ctx, who: &str, chosen: Option<i64>, errors: &mut Vec<String>) -> bool {
    match ctx.user.dag_id {
        Some(mine) if chosen != Some(mine) => {
            errors.push(format!("User \"{who}\": {IN_A_DAG}"));
            false
        }
        _ => true,
    }
}

/// A DAG by unique name: `Ok(None)` for blank, an error line for an unknown name.
pub(super) fn dag_by_unique(ctx: &Ctx, unique: &str, errors: &mut Vec<String>) -> Option<Option<i64>> {
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

pub(super) fn member<'a>(members: &'a [MemberRow], username: &str) -> Option<&'a MemberRow> {
    members.iter().find(|m| m.username == username)
}
