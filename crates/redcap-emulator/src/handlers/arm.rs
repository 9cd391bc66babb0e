//! Arms (spec/arm.toml): Export, Import and Delete Arms.

use serde_json::Value;

use super::event::drop_events;
use super::{Ctx, HResult, arms_filter, bad, commit, count, invalid, need_longitudinal, value};
use crate::model::Arm;
use crate::render::Table;

/// Export Arms (longitudinal only).
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export arms for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let mut t = Table::new(["arm_num", "name"]).always_quote(&["name"]);
    for a in &p.def.arms {
        if arms.as_ref().is_some_and(|l| !l.contains(&a.num)) {
            continue;
        }
        // "REDCap will not return an Arm unless it has an event associated with it" (PyCap's
        // integration test_arms_import, recorded against a live server).
        if !p.def.events.iter().any(|e| e.arm_num == a.num) {
            continue;
        }
        t.rows.push(vec![Value::from(a.num), Value::from(a.name.clone())]);
    }
    ctx.table(&t, "arms")
}

/// Import Arms (`action=import`): adds arms and renames existing ones; `override=1` (Development
/// only) first deletes every arm, with its events and their data. A classic project takes them
/// too, and shows them once it is made longitudinal (redcapAPI's arm method tests against a live
/// REDCap: importArms into a classic project answers 3, exportArms still refuses until
/// `is_longitudinal` is imported as 1, then gives the arms imported).
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    let over = ctx.params.flag("override");
    if over && !ctx.project.def.longitudinal {
        // A classic project's records live in its one hidden event, which an override would
        // delete with them (UNVERIFIED: no public record of REDCap's answer).
        return Err(bad("Importing arms with override=1 is not possible in a classic project"));
    }
    if over {
        ctx.need_development("Importing arms with override=1")?;
    }
    let rows = ctx.data_rows()?;
    let mut arms: Vec<Arm> = Vec::new();
    let mut errors = Vec::new();
    for row in &rows {
        let (num, name) = (value(row, "arm_num"), value(row, "name"));
        match num.parse::<i64>() {
            Ok(n) if n >= 1 && !name.is_empty() => {
                arms.retain(|a| a.num != n);
                arms.push(Arm { num: n, name: name.to_owned() });
            }
            _ => {
                errors.push(format!("The arm (arm_num \"{num}\", name \"{name}\") needs a positive arm_num and a name"))
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let mut def = ctx.project.def.clone();
    let mut gone = Vec::new();
    if over {
        gone = def.events.iter().map(|e| e.unique_name.clone()).collect();
        drop_events(&mut def, &gone.iter().cloned().collect());
        def.arms.clear();
    }
    for a in arms {
        match def.arms.iter_mut().find(|x| x.num == a.num) {
            Some(x) => x.name = a.name,
            None => def.arms.push(a),
        }
    }
    def.arms.sort_by_key(|a| a.num);
    let n = rows.len();
    commit(ctx, def, &format!("Import arms (API): {n}"), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}

/// Delete Arms (Development only): the arms, their events and the data in them.
pub fn delete(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    // The list first: a classic project without `arms` gets the recorded list text.
    let list = ctx.names_to_delete("arms")?;
    need_longitudinal(ctx, "delete arms")?;
    ctx.need_development("Deleting arms")?;
    let def0 = &ctx.project.def;
    let nums: Vec<i64> = list.iter().filter_map(|a| a.parse().ok()).collect();
    let unknown: Vec<String> = list
        .iter()
        .filter(|a| a.parse::<i64>().ok().is_none_or(|n| !def0.arms.iter().any(|x| x.num == n)))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(invalid("arms", &unknown));
    }
    let mut def = def0.clone();
    let gone: Vec<String> =
        def.events.iter().filter(|e| nums.contains(&e.arm_num)).map(|e| e.unique_name.clone()).collect();
    drop_events(&mut def, &gone.iter().cloned().collect());
    def.arms.retain(|a| !nums.contains(&a.num));
    let n = def0.arms.len() - def.arms.len();
    commit(ctx, def, &format!("Delete arms (API): {}", list.join(", ")), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}
