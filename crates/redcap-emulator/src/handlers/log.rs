//! Export Logging.

use super::{Ctx, HResult, bad, forbidden};
use crate::render::Table;

/// Export Logging: API Export + Logging; filters `logtype`, `user`, `record`, `dag` (numeric id),
/// `beginTime`/`endTime` (`YYYY-MM-DD HH:MM`). Timestamps have minute precision.
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    if !ctx.user.rights.logging {
        // UNVERIFIED text.
        return Err(forbidden("You do not have Logging privileges"));
    }
    let logtype = ctx.params.get_nonempty("logtype").map(str::to_owned);
    if let Some(t) = &logtype {
        // The values of the one enum table (core's `LogType`), never a list of the emulator's own.
        if <redcap_core::LogType as redcap_core::WireEnum>::from_wire(t).is_none() {
            return Err(bad("The value of the parameter \"logtype\" is not valid"));
        }
    }
    let user = ctx.params.get_nonempty("user").map(str::to_owned);
    let record = ctx.params.get_nonempty("record").map(str::to_owned);
    let dag: Option<i64> = match ctx.params.get_nonempty("dag") {
        None => None,
        Some(d) => Some(d.trim().parse().map_err(|_| bad("The value of the parameter \"dag\" is not valid"))?),
    };
    // Compare on the first 16 characters: `YYYY-MM-DD HH:MM` (seconds, if sent, are ignored).
    let begin = ctx.params.get_nonempty("beginTime").map(|s| s.chars().take(16).collect::<String>());
    let end = ctx.params.get_nonempty("endTime").map(|s| s.chars().take(16).collect::<String>());
    let mut t = Table::new(["timestamp", "username", "action", "details", "record"]);
    for e in ctx.store.log_entries(ctx.project.id())? {
        let ts: String = e.ts.chars().take(16).collect();
        let kind_ok = match logtype.as_deref() {
            None => true,
            Some("record") => e.kind.starts_with("record"),
            Some(k) => e.kind == k,
        };
        if !kind_ok
            || user.as_ref().is_some_and(|u| u != &e.username)
            || record.as_ref().is_some_and(|r| r != &e.record)
            || dag.is_some_and(|d| e.dag_id != Some(d))
            || begin.as_ref().is_some_and(|b| &ts < b)
            || end.as_ref().is_some_and(|x| &ts > x)
        {
            continue;
        }
        // Users in a DAG see only their DAG's entries.
        if ctx.user.dag_id.is_some() && e.dag_id != ctx.user.dag_id {
            continue;
        }
        t.push_strs([ts, e.username, e.action, e.details, e.record]);
    }
    // Logged after the entries are read: an export does not list itself.
    let reply = ctx.table(&t, "items")?;
    ctx.log_export("Export Logging (API)")?;
    Ok(reply)
}
