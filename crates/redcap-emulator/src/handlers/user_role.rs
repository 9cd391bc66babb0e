//! User roles (spec/user_role.toml): Export, Import and Delete User Roles, Export and Import
//! User-Role Assignments.

use serde_json::Value;

use super::dag::{check_dag_choice, dag_by_unique, member, outside_my_dag};
use super::user::{apply_rights, forms_cells, need_user_import, rights_cells};
use super::{Ctx, HResult, bad, count, given, invalid};
use crate::auth::Rights;
use crate::model::Role;
use crate::render::Table;

/// Export User Roles: API Export + User Rights. Role rights are strings in JSON (PyCap doctest).
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    ctx.need_user_rights()?;
    let p = ctx.project.clone();
    let csv = matches!(ctx.out(false)?, crate::render::Out::Csv(_));
    let mut cols = vec!["unique_role_name".to_owned(), "role_label".to_owned()];
    let mut rows = Vec::new();
    for r in &p.def.roles {
        let mut row = vec![Value::from(r.unique.clone()), Value::from(r.label.clone())];
        let cells = rights_cells(&r.rights, true);
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
        cols.extend(rights_cells(&Rights::none(), true).iter().map(|(k, _)| k.to_string()));
        cols.extend(["forms".to_owned(), "forms_export".to_owned()]);
    }
    ctx.table(&Table { columns: cols, rows, ..Table::default() }, "items")
}

/// Import User Roles: API Import + User Rights. A blank `unique_role_name` creates a role (the
/// emulator names it `U-` + 10 characters, the shape of REDCap's names); an existing one is updated.
pub fn import(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut errors = Vec::new();
    let mut created = 0;
    for row in &rows {
        let unique = given(row, "unique_role_name").unwrap_or("");
        let label = given(row, "role_label").unwrap_or("");
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
pub fn delete(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let list = ctx.names_to_delete("roles")?;
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

/// Export User-Role Assignments.
pub fn export_mappings(ctx: &mut Ctx) -> HResult {
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

/// Import User-Role Assignments: a blank role removes the assignment; a `data_access_group`
/// column also sets the user's DAG (API help: imp_user_role_maps).
pub fn import_mappings(ctx: &mut Ctx) -> HResult {
    need_user_import(ctx)?;
    let rows = ctx.data_rows()?;
    let pid = ctx.project.id();
    let members = ctx.store.project_users(pid)?;
    let mut errors = Vec::new();
    let mut plans: Vec<(String, Option<i64>, Option<Option<i64>>)> = Vec::new();
    for row in &rows {
        let username = given(row, "username").unwrap_or("");
        let Some(m) = member(&members, username) else {
            errors.push(format!("The user \"{username}\" is not a user of this project"));
            continue;
        };
        if let Some(e) = outside_my_dag(ctx, Some(m)) {
            errors.push(e);
            continue;
        }
        let role = match given(row, "unique_role_name").unwrap_or("") {
            "" => None,
            u => match ctx.project.def.roles.iter().find(|r| r.unique == u) {
                Some(r) => Some(r.id),
                None => {
                    errors.push(format!("The role \"{u}\" does not exist"));
                    continue;
                }
            },
        };
        let dag = match given(row, "data_access_group") {
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
