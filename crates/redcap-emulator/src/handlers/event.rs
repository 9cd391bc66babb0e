//! Events (spec/event.toml): Export, Import and Delete Events.

use std::collections::HashSet;

use serde_json::Value;

use super::{Ctx, HResult, arms_filter, bad, commit, count, invalid, need_longitudinal, value};
use crate::input;
use crate::model::{Event, ProjectDef};
use crate::render::Table;

/// Export Events (longitudinal only); scheduling columns when the module is on.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export events for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let sched = p.def.info.scheduling_enabled;
    let mut cols = vec!["event_name", "arm_num"];
    if sched {
        cols.extend(["day_offset", "offset_min", "offset_max"]);
    }
    cols.extend(["unique_event_name", "custom_event_label", "event_id"]);
    let mut t = Table::new(cols).always_quote(&["event_name"]);
    for e in &p.def.events {
        if arms.as_ref().is_some_and(|l| !l.contains(&e.arm_num)) {
            continue;
        }
        let mut row = vec![Value::from(e.name.clone()), Value::from(e.arm_num)];
        if sched {
            row.extend([
                Value::from(e.day_offset.clone()),
                Value::from(e.offset_min.clone()),
                Value::from(e.offset_max.clone()),
            ]);
        }
        row.extend([Value::from(e.unique_name.clone()), Value::from(e.custom_label.clone()), Value::from(e.id)]);
        t.rows.push(row);
    }
    ctx.table(&t, "events")
}

/// Longest label slug in a unique event name: REDCap's own files have "Deadline to opt out of
/// study" as `deadline_to_opt_ou_arm_2` (PyCap's long project XML).
const EVENT_SLUG_LEN: usize = 18;

/// A unique event name: the label in lower case with other characters as `_`, cut to 18
/// characters, then `_arm_<n>` ("XYZ" in arm 2 → `xyz_arm_2`, PyCap integration). A clash gets
/// `_2`, `_3` … (REDCap's own de-duplication, and whether it trims a `_` left at the cut, are
/// UNVERIFIED).
fn unique_event_name(def: &ProjectDef, name: &str, arm: i64) -> String {
    let mut base = String::new();
    for c in name.to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && (base.is_empty() || base.ends_with('_'))) {
            base.push(c);
        }
    }
    base.truncate(EVENT_SLUG_LEN);
    let base = base.trim_end_matches('_');
    let base = if base.is_empty() { "event" } else { base };
    let taken = |u: &str| def.events.iter().any(|e| e.unique_name == u);
    let mut candidate = format!("{base}_arm_{arm}");
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{base}_{n}_arm_{arm}");
        n += 1;
    }
    candidate
}

/// Whether a new event may take `unique` as its name: free, of REDCap's shape (a lower-case
/// slug of at most 18 characters, then `_arm_<arm>`).
fn keeps_unique_name(def: &ProjectDef, unique: &str, arm: i64) -> bool {
    let Some(slug) = unique.strip_suffix(&format!("_arm_{arm}")) else { return false };
    !slug.is_empty()
        && slug.len() <= EVENT_SLUG_LEN
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !def.events.iter().any(|e| e.unique_name == unique)
}

/// Import Events (`action=import`): a row with an existing `unique_event_name` updates that event;
/// any other row creates one (REDCap generates the unique name). `override=1` (Development only)
/// first deletes every event and its data. A classic project takes them too, shown once it is
/// made longitudinal (redcapAPI's arm method tests, as for arms).
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    let over = ctx.params.flag("override");
    if over && !ctx.project.def.longitudinal {
        // A classic project's records live in its one hidden event, which an override would
        // delete with them (UNVERIFIED: no public record of REDCap's answer).
        return Err(bad("Importing events with override=1 is not possible in a classic project"));
    }
    if over {
        ctx.need_development("Importing events with override=1")?;
    }
    let rows = ctx.data_rows()?;
    let mut def = ctx.project.def.clone();
    let mut gone = Vec::new();
    if over {
        gone = def.events.iter().map(|e| e.unique_name.clone()).collect();
        drop_events(&mut def, &gone.iter().cloned().collect());
    }
    let mut errors = Vec::new();
    let mut new_events = Vec::new();
    for row in &rows {
        let name = value(row, "event_name");
        let arm = value(row, "arm_num");
        let Some(arm) = arm.parse::<i64>().ok().filter(|n| def.arms.iter().any(|a| a.num == *n)) else {
            errors.push(format!("The event \"{name}\" has an arm_num (\"{arm}\") that is not an arm of this project"));
            continue;
        };
        if name.is_empty() {
            errors.push("Every event needs an event_name".to_owned());
            continue;
        }
        let num = |k: &str, default: &str| {
            let v = value(row, k);
            if v.is_empty() { default.to_owned() } else { v.to_owned() }
        };
        if ["day_offset", "offset_min", "offset_max"].iter().any(|k| {
            let v = value(row, k);
            !v.is_empty() && v.parse::<f64>().is_err()
        }) {
            errors.push(format!("The offsets of the event \"{name}\" must be numbers"));
            continue;
        }
        let unique = value(row, "unique_event_name");
        if let Some(e) = def.events.iter_mut().find(|e| !unique.is_empty() && e.unique_name == unique) {
            if e.arm_num != arm {
                errors.push(format!("The event \"{unique}\" belongs to arm {}; its arm cannot change", e.arm_num));
                continue;
            }
            e.name = name.to_owned();
            e.day_offset = num("day_offset", &e.day_offset);
            e.offset_min = num("offset_min", &e.offset_min);
            e.offset_max = num("offset_max", &e.offset_max);
            if let Some(l) = input::get(row, "custom_event_label") {
                e.custom_label = l.to_owned();
            }
            continue;
        }
        // An event imported with a unique name it does not have yet keeps it (so a saved
        // structure comes back after `override=1`: PyCap's test_arms_import_override).
        let keep = keeps_unique_name(&def, unique, arm);
        let event = Event {
            id: 0,
            unique_name: if keep { unique.to_owned() } else { unique_event_name(&def, name, arm) },
            name: name.to_owned(),
            arm_num: arm,
            day_offset: num("day_offset", "0"),
            offset_min: num("offset_min", "0"),
            offset_max: num("offset_max", "0"),
            custom_label: value(row, "custom_event_label").to_owned(),
        };
        new_events.push(event.unique_name.clone());
        def.events.push(event);
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let n = rows.len();
    let pid = def.id;
    let (user, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        for e in def.events.iter_mut().filter(|e| new_events.contains(&e.unique_name)) {
            e.id = s.next_id("event", 40)?;
        }
        def.events.sort_by_key(|e| e.arm_num);
        s.save_def(def)?;
        s.delete_event_data(pid, &gone)?;
        s.log(pid, &user, "manage", "Manage/Design", &format!("Import events (API): {n}"), "", dag)
    })?;
    count(n)
}

/// Delete Events (Development only): the events and the data in them.
pub fn delete(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "delete events")?;
    ctx.need_development("Deleting events")?;
    let list = ctx.params.list("events").ok_or_else(|| bad("The parameter \"events\" is missing"))?;
    let unknown: Vec<String> = list.iter().filter(|e| ctx.project.event(e).is_none()).cloned().collect();
    if !unknown.is_empty() {
        return Err(invalid("events", &unknown));
    }
    let mut def = ctx.project.def.clone();
    let gone: HashSet<String> = list.iter().cloned().collect();
    drop_events(&mut def, &gone);
    let gone: Vec<String> = gone.into_iter().collect();
    let n = gone.len();
    commit(ctx, def, &format!("Delete events (API): {}", list.join(", ")), |s, pid| s.delete_event_data(pid, &gone))?;
    count(n)
}

/// Removes events with their mappings, repeating setup and report filters (the data is deleted
/// by [`Store::delete_event_data`]).
pub(super) fn drop_events(def: &mut ProjectDef, gone: &HashSet<String>) {
    def.events.retain(|e| !gone.contains(&e.unique_name));
    def.form_events.retain(|(e, _)| !gone.contains(e));
    def.repeating.retain(|r| !gone.contains(&r.event));
    for r in &mut def.reports {
        r.filter_events.retain(|e| !gone.contains(e));
    }
}
