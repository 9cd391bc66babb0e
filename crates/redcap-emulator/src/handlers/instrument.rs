//! Instruments (spec/instrument.toml): Export Instruments, Export and Import Instrument-Event
//! Mappings. Export PDF is routed as "not emulated".

use std::collections::HashSet;

use serde_json::Value;

use super::{Ctx, HResult, arms_filter, bad, commit, count, need_longitudinal, value};
use crate::render::Table;

/// Export Instruments.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let mut t = Table::new(["instrument_name", "instrument_label"]);
    for f in &ctx.project.def.forms {
        t.push_strs([f.name.clone(), f.label.clone()]);
    }
    let reply = ctx.table(&t, "instruments")?;
    ctx.log_export("Export instruments (API)")?;
    Ok(reply)
}

/// Export Instrument-Event Mappings (longitudinal only).
pub fn export_event_mappings(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    let p = ctx.project.clone();
    if !p.def.longitudinal {
        return Err(bad("You cannot export form/event mappings for classic projects"));
    }
    let arms = arms_filter(ctx)?;
    let mut t = Table::new(["arm_num", "unique_event_name", "form"]);
    for (ev, form) in &p.def.form_events {
        let Some(e) = p.event(ev) else { continue };
        if arms.as_ref().is_some_and(|a| !a.contains(&e.arm_num)) {
            continue;
        }
        t.rows.push(vec![Value::from(e.arm_num), Value::from(ev.clone()), Value::from(form.clone())]);
    }
    ctx.table(&t, "items")
}

/// Import Instrument-Event Mappings: replaces every mapping (PyCap integration). Production use
/// depends on a server setting that is off by default, so the emulator allows it in Development
/// only (UNVERIFIED, reference §8 #13). Repeating instruments no longer designated are dropped.
pub fn import_event_mappings(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    need_longitudinal(ctx, "import form/event mappings")?;
    ctx.need_development("Importing instrument-event mappings")?;
    let rows = ctx.data_rows()?;
    let p = ctx.project.clone();
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    let mut errors = Vec::new();
    for row in &rows {
        let (ev, form, arm) = (value(row, "unique_event_name"), value(row, "form"), value(row, "arm_num"));
        match p.event(ev) {
            None => errors.push(format!("The unique_event_name \"{ev}\" is not valid")),
            Some(e) if !arm.is_empty() && arm != e.arm_num.to_string() => {
                errors.push(format!("The event \"{ev}\" is not in arm \"{arm}\""))
            }
            Some(_) if !p.has_form(form) => errors.push(format!("The form \"{form}\" is not valid")),
            Some(_) => {
                pairs.insert((ev.to_owned(), form.to_owned()));
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let mut def = p.def.clone();
    def.form_events = Vec::new();
    for e in &p.def.events {
        for f in &p.def.forms {
            if pairs.contains(&(e.unique_name.clone(), f.name.clone())) {
                def.form_events.push((e.unique_name.clone(), f.name.clone()));
            }
        }
    }
    def.repeating.retain(|r| r.form.as_ref().is_none_or(|f| pairs.contains(&(r.event.clone(), f.clone()))));
    let n = rows.len();
    commit(ctx, def, &format!("Import instrument-event mappings (API): {n}"), |_, _| Ok(()))?;
    count(n)
}
