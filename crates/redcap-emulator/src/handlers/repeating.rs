//! Repeating instruments and events (spec/repeating.toml): Export and Import.

use std::collections::HashSet;

use super::{Ctx, HResult, bad, commit, count, value};
use crate::input;
use crate::model::Repeating;
use crate::render::Table;

/// Export Repeating Instruments and Events: API Export + Project Design (API help).
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    if !ctx.user.rights.design {
        // UNVERIFIED text, as for the structure imports.
        return Err(super::forbidden("You do not have Project Design and Setup privileges"));
    }
    let p = ctx.project.clone();
    if !p.has_repeating() {
        return Err(bad(
            "You cannot export repeating instruments and events because the project does not contain any repeating instruments and events",
        ));
    }
    let mut t = if p.def.longitudinal {
        Table::new(["event_name", "form_name", "custom_form_label"])
    } else {
        Table::new(["form_name", "custom_form_label"])
    }
    .spaces_unquoted();
    for r in &p.def.repeating {
        let form = r.form.clone().unwrap_or_default();
        if p.def.longitudinal {
            t.push_strs([r.event.clone(), form, r.label.clone()]);
        } else {
            t.push_strs([form, r.label.clone()]);
        }
    }
    ctx.table(&t, "items")
}

/// Import Repeating Instruments and Events: the rows describe the whole setup, which they replace
/// (replace vs merge is UNVERIFIED, reference §8 #28). Data follows the change: a form that starts
/// repeating keeps its values as instance 1; one that stops keeps instance 1 and loses the others;
/// an event that stops repeating loses its instances above 1.
pub fn import(ctx: &mut Ctx) -> HResult {
    ctx.need_design()?;
    let rows = ctx.data_rows()?;
    let p = ctx.project.clone();
    let first_event = p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
    let mut setup: Vec<Repeating> = Vec::new();
    let mut errors = Vec::new();
    for row in &rows {
        let event = if p.def.longitudinal { value(row, "event_name").to_owned() } else { first_event.clone() };
        let form = value(row, "form_name");
        // KB RC-API-53 names the label `custom_repeat_instrument_label`; the help and PyCap use
        // `custom_form_label`. Both are read.
        let label = input::get(row, "custom_form_label").or_else(|| input::get(row, "custom_repeat_instrument_label"));
        if p.event(&event).is_none() {
            errors.push(format!("The event_name \"{event}\" is not a unique event name of this project"));
            continue;
        }
        if form.is_empty() && !p.def.longitudinal {
            errors.push("A classic project has no repeating events: every row needs a form_name".to_owned());
            continue;
        }
        if !form.is_empty() && !p.form_in_event(&event, form) {
            errors.push(format!("The form \"{form}\" is not an instrument designated for the event \"{event}\""));
            continue;
        }
        let form = (!form.is_empty()).then(|| form.to_owned());
        if setup.iter().any(|r| r.event == event && r.form == form) {
            errors.push(format!("The event \"{event}\" / form \"{}\" is listed twice", form.unwrap_or_default()));
            continue;
        }
        setup.push(Repeating { event, form, label: label.unwrap_or("").to_owned() });
    }
    for r in setup.iter().filter(|r| r.form.is_none()) {
        if setup.iter().any(|x| x.event == r.event && x.form.is_some()) {
            errors.push(format!(
                "The event \"{}\" cannot both repeat as a whole and have repeating instruments",
                r.event
            ));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("\n")));
    }
    let old: HashSet<(String, Option<String>)> =
        p.def.repeating.iter().map(|r| (r.event.clone(), r.form.clone())).collect();
    let new: HashSet<(String, Option<String>)> = setup.iter().map(|r| (r.event.clone(), r.form.clone())).collect();
    let form_names = |form: &str| -> Vec<String> {
        let mut v: Vec<String> = p.form_fields(form).map(|f| f.name.clone()).collect();
        v.extend([format!("{form}_complete"), format!("{form}_timestamp")]);
        v
    };
    // (event, form or None, starts repeating?)
    let mut moves: Vec<(String, Option<String>, bool)> = Vec::new();
    for (e, f) in new.difference(&old) {
        moves.push((e.clone(), f.clone(), true));
    }
    for (e, f) in old.difference(&new) {
        moves.push((e.clone(), f.clone(), false));
    }
    let mut def = p.def.clone();
    def.repeating = setup;
    let n = rows.len();
    commit(ctx, def, &format!("Import repeating instruments and events (API): {n}"), |s, pid| {
        for (event, form, starts) in &moves {
            match (form, starts) {
                (Some(form), true) => {
                    for field in form_names(form) {
                        // The record files move with their cells.
                        for table in ["data", "record_files"] {
                            s.conn.execute(
                                &format!(
                                    "UPDATE {table} SET instrument = ?4 WHERE project_id = ?1 AND event = ?2
                                     AND field = ?3 AND instrument = '' AND instance = 1"
                                ),
                                rusqlite::params![pid, event, field, form],
                            )?;
                        }
                    }
                }
                (Some(form), false) => {
                    s.conn.execute(
                        "DELETE FROM data WHERE project_id = ?1 AND event = ?2 AND instrument = ?3 AND instance > 1",
                        rusqlite::params![pid, event, form],
                    )?;
                    for table in ["data", "record_files"] {
                        s.conn.execute(
                            &format!(
                                "UPDATE {table} SET instrument = '' WHERE project_id = ?1 AND event = ?2
                                 AND instrument = ?3 AND instance = 1"
                            ),
                            rusqlite::params![pid, event, form],
                        )?;
                    }
                }
                (None, false) => {
                    s.conn.execute(
                        "DELETE FROM data WHERE project_id = ?1 AND event = ?2 AND instrument = '' AND instance > 1",
                        rusqlite::params![pid, event],
                    )?;
                }
                (None, true) => {}
            }
            s.count_rows(pid, crate::store::RowScope::Event(event))?;
        }
        Ok(())
    })?;
    count(n)
}
