//! Parameter checks the survey and PDF methods share: a record the caller may see, an instance.

use super::{Ctx, Failure, bad};
use crate::store;

/// Fails unless `record` exists and the caller's DAG (if any) holds it: a record of another DAG
/// is answered as one that does not exist. Text recorded for Export a Survey Link (REDCapR
/// `test-survey-link-export-oneshot.R`: `The record '-1' does not exist`).
pub fn visible_record(ctx: &Ctx, record: &str) -> Result<(), Failure> {
    let found = store::records_named(&ctx.store.conn, ctx.project.id(), [record])?;
    match found.first() {
        Some((_, dag)) if ctx.user.dag_id.is_none_or(|d| *dag == Some(d)) => Ok(()),
        _ => Err(bad(format!("The record '{record}' does not exist"))),
    }
}

/// `repeat_instance`: a whole number from 1, default 1 (API help).
pub fn repeat_instance(ctx: &Ctx) -> Result<i64, Failure> {
    match ctx.params.get_nonempty("repeat_instance") {
        None => Ok(1),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(bad("The value of the parameter \"repeat_instance\" is not valid")),
        },
    }
}
