//! Surveys (`spec/survey.toml`): Export a Survey Link, Survey Access Code, Survey Return Code,
//! Survey Queue Link and Survey Participant List, for projects whose XML enables surveys
//! (`redcap:SurveysEnabled`, `redcap:SurveysGroup`, `redcap:SurveysQueueGroup`).
//!
//! Codes are stable per (record, survey, event, instance) and kept in the store
//! ([`crate::survey_codes`]); links are made under the configured base URL, else under the
//! address the request was sent to. Recorded texts: the unknown record (REDCapR
//! `test-survey-link-export-oneshot.R`: 400 `The record '-1' does not exist`) and the missing
//! parameters ([`required`]); the other texts are UNVERIFIED, written in the style of REDCap's
//! recorded messages.

use serde_json::Value;

use super::{Ctx, Failure, HResult, Reply, bad, forbidden, lookup};
use crate::records::Dataset;
use crate::render::Table;
use crate::survey_codes::{self, SurveyKey};

/// Requires API Export and Manage Survey Participants (API help, quoted in the C# client's doc
/// comments: "you must have 'API Export' and 'Manage Survey Participants' privileges").
fn need_survey_rights(ctx: &Ctx) -> Result<(), Failure> {
    ctx.need_export()?;
    if ctx.user.rights.manage_survey_participants() {
        Ok(())
    } else {
        // UNVERIFIED text, modelled on the recorded privilege messages.
        Err(forbidden("You do not have Manage Survey Participants privileges"))
    }
}

/// Requires surveys to be enabled in the project.
fn need_surveys_enabled(ctx: &Ctx) -> Result<(), Failure> {
    if ctx.project.def.info.surveys_enabled { Ok(()) } else { Err(bad("Surveys are not enabled in this project")) }
}

/// A required parameter. Recorded text, single quotes (AndrewPoppe/ApiUserRights
/// tests/playwright/e2e/unit_test.spec.js, against a live REDCap: `The parameter 'record' is
/// missing` for Survey Link, Queue Link and Return Code, `The parameter 'instrument' is
/// missing` for the Participant List).
fn required<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a str, Failure> {
    ctx.params.get_nonempty(name).ok_or_else(|| bad(format!("The parameter '{name}' is missing")))
}

/// The `instrument` parameter, which must name a survey.
fn survey_form(ctx: &Ctx) -> Result<String, Failure> {
    let form = required(ctx, "instrument")?;
    if !ctx.project.has_form(form) {
        return Err(bad(format!("The value of the parameter \"instrument\" is not valid: '{form}'")));
    }
    if !ctx.project.is_survey(form) {
        return Err(bad(format!("The instrument \"{form}\" is not enabled as a survey in this project")));
    }
    Ok(form.to_owned())
}

/// The `event` for `form`: required in longitudinal projects and designated for the form; the
/// one implicit event in classic projects (where `event` is ignored).
fn survey_event(ctx: &Ctx, form: &str) -> Result<String, Failure> {
    let p = &*ctx.project;
    if !p.def.longitudinal {
        return Ok(p.def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default());
    }
    let e = ctx.params.get_nonempty("event").ok_or_else(|| {
        // UNVERIFIED beyond the recorded "The parameter '…' is missing" ([`required`]).
        bad("The parameter 'event' is missing: a unique event name is required in longitudinal projects")
    })?;
    if p.event(e).is_none() {
        return Err(bad(format!("The value of the parameter \"event\" is not valid: '{e}'")));
    }
    if !p.form_in_event(e, form) {
        return Err(bad(format!("The instrument \"{form}\" is not designated for the event \"{e}\"")));
    }
    Ok(e.to_owned())
}

/// `repeat_instance` (default 1); above 1 only where the survey or its event repeats.
fn survey_instance(ctx: &Ctx, form: &str, event: &str) -> Result<i64, Failure> {
    let n = lookup::repeat_instance(ctx)?;
    let p = &*ctx.project;
    if n != 1 && !p.is_repeating_form(event, form) && !p.is_repeating_event(event) {
        return Err(bad(format!(
            "The parameter \"repeat_instance\" cannot be {n}: the instrument \"{form}\" does not repeat in this event"
        )));
    }
    Ok(n)
}

/// The `record` parameter, which must be a record the caller's DAG can see.
fn existing_record(ctx: &Ctx) -> Result<String, Failure> {
    let record = required(ctx, "record")?;
    lookup::visible_record(ctx, record)?;
    Ok(record.to_owned())
}

/// The URL survey pages live under: the configured base, else the request's host.
fn base_url(ctx: &Ctx) -> String {
    match (&ctx.env.base_url, &ctx.params.host) {
        (Some(base), _) => base.clone(),
        (None, Some(host)) => format!("http://{host}/"),
        (None, None) => "http://localhost/".into(),
    }
}

/// What the link and code methods share: rights, survey, event, instance, record.
struct Participant {
    record: String,
    form: String,
    event: String,
    instance: i64,
}

fn participant(ctx: &Ctx) -> Result<Participant, Failure> {
    need_survey_rights(ctx)?;
    required(ctx, "record")?;
    need_surveys_enabled(ctx)?;
    let form = survey_form(ctx)?;
    let event = survey_event(ctx, &form)?;
    let instance = survey_instance(ctx, &form, &event)?;
    let record = existing_record(ctx)?;
    Ok(Participant { record, form, event, instance })
}

fn codes_of(ctx: &mut Ctx, p: &Participant) -> Result<survey_codes::SurveyCodes, Failure> {
    let key = SurveyKey { record: &p.record, form: &p.form, event: &p.event, instance: p.instance };
    Ok(survey_codes::codes(ctx.store, ctx.project.id(), &key)?)
}

/// Logs a survey method. REDCap logs its API exports (reference §5.6: action `Manage/Design`,
/// details `Export … (API)`); the survey methods' own entries are not recorded (UNVERIFIED), so
/// the emulator writes entries in that style. The participant's record is named in `details`,
/// not in `record`: a log reader such as dataset sync takes every line with a record for a
/// possible change of its data, which a link export is not.
fn log_survey(ctx: &mut Ctx, what: &str, p: &Participant) -> Result<(), Failure> {
    ctx.log_export(&format!("{what} record = '{}', instrument = '{}'", p.record, p.form))
}

/// Export a Survey Link: `<base>surveys/?s=<hash>`.
pub fn export_link(ctx: &mut Ctx) -> HResult {
    let p = participant(ctx)?;
    let c = codes_of(ctx, &p)?;
    log_survey(ctx, "Export survey link (API)", &p)?;
    Ok(Reply::text(format!("{}surveys/?s={}", base_url(ctx), c.hash)))
}

/// Export a Survey Access Code: 9 characters.
pub fn export_access_code(ctx: &mut Ctx) -> HResult {
    let p = participant(ctx)?;
    let code = codes_of(ctx, &p)?.access_code;
    log_survey(ctx, "Export survey access code (API)", &p)?;
    Ok(Reply::text(code))
}

/// Export a Survey Return Code: 8 characters.
pub fn export_return_code(ctx: &mut Ctx) -> HResult {
    let p = participant(ctx)?;
    let code = codes_of(ctx, &p)?.return_code;
    log_survey(ctx, "Export survey return code (API)", &p)?;
    Ok(Reply::text(code))
}

/// Whether the project has a Survey Queue (any active entry).
fn queue_enabled(ctx: &Ctx) -> bool {
    ctx.project.def.info.surveys_enabled && !ctx.project.def.survey_settings.queue.is_empty()
}

/// Export a Survey Queue Link: `<base>surveys/?sq=<hash>`, one per record.
pub fn export_queue_link(ctx: &mut Ctx) -> HResult {
    need_survey_rights(ctx)?;
    required(ctx, "record")?;
    need_surveys_enabled(ctx)?;
    if !queue_enabled(ctx) {
        return Err(bad("The Survey Queue is not enabled in this project"));
    }
    let record = existing_record(ctx)?;
    let hash = survey_codes::queue_hash(ctx.store, ctx.project.id(), &record)?;
    ctx.log_export(&format!("Export survey queue link (API) record = '{record}'"))?;
    Ok(Reply::text(format!("{}surveys/?sq={hash}", base_url(ctx))))
}

/// REDCap's columns, in the order redcapAPI documents them (`R/surveyMethods.R`).
const PARTICIPANT_COLUMNS: [&str; 10] = [
    "email",
    "email_occurrence",
    "identifier",
    "record",
    "invitation_sent_status",
    "invitation_send_time",
    "response_status",
    "survey_access_code",
    "survey_link",
    "survey_queue_link",
];

/// `0` no response, `1` partial, `2` completed, from the survey timestamp REDCap keeps per
/// response (`[not completed]` while partial: REDCapR's survey fixture, record 1).
fn response_status(timestamp: Option<&str>) -> i64 {
    match timestamp {
        None | Some("") => 0,
        Some("[not completed]") => 1,
        Some(_) => 2,
    }
}

/// Export a Survey Participant List: one row per record of the event's arm that the caller's
/// DAG can see (the emulator sends no invitations, so none is marked sent). Which records
/// REDCap lists for a first survey without invitations is UNVERIFIED; PyCap's doctest shows one
/// row per record, e-mail blank.
pub fn export_participant_list(ctx: &mut Ctx) -> HResult {
    need_survey_rights(ctx)?;
    // A missing instrument is reported first, as a missing record is by the link methods.
    required(ctx, "instrument")?;
    need_surveys_enabled(ctx)?;
    let form = survey_form(ctx)?;
    let event = survey_event(ctx, &form)?;
    let out = ctx.out(false)?;
    let p = ctx.project.clone();
    let arm = p.event(&event).map(|e| e.arm_num);
    let mut records = ctx.store.records(p.id())?;
    records.retain(|(_, dag)| ctx.user.dag_id.is_none_or(|d| *dag == Some(d)));
    records.sort_by(|a, b| crate::records::record_cmp(&a.0, &b.0));
    let data = Dataset::load_records(&ctx.store.conn, ctx.store.blob_dir(), &p, records)?;
    let instrument = if p.is_repeating_form(&event, &form) { form.clone() } else { String::new() };
    let email_field = p.def.survey_settings.invitation_email_field.clone();
    let queue = queue_enabled(ctx);
    let base = base_url(ctx);
    let mut t = Table::new(PARTICIPANT_COLUMNS);
    let mut seen_emails: Vec<(String, i64)> = Vec::new();
    // A record's rows are contiguous in a dataset.
    for rows in data.rows.chunk_by(|a, b| a.key.record == b.key.record) {
        let record = rows[0].key.record.as_str();
        if p.def.longitudinal && !rows.iter().any(|r| p.event(&r.key.event).map(|e| e.arm_num) == arm) {
            continue;
        }
        let first_value = |field: &str| -> String {
            rows.iter()
                .find_map(|r| r.values.get(field).and_then(|v| v.first()).filter(|v| !v.is_empty()).cloned())
                .unwrap_or_default()
        };
        let email = if email_field.is_empty() { String::new() } else { first_value(&email_field) };
        let occurrence = if email.is_empty() {
            Value::from("")
        } else {
            let n = match seen_emails.iter_mut().find(|(e, _)| *e == email) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen_emails.push((email.clone(), 1));
                    1
                }
            };
            Value::from(n)
        };
        let identifier = first_value("redcap_survey_identifier");
        let timestamp = data.values_at(record, &event, &instrument, 1, &format!("{form}_timestamp")).first().cloned();
        let key = SurveyKey { record, form: &form, event: &event, instance: 1 };
        let codes = survey_codes::codes(ctx.store, p.id(), &key)?;
        let queue_link = if queue {
            format!("{base}surveys/?sq={}", survey_codes::queue_hash(ctx.store, p.id(), record)?)
        } else {
            String::new()
        };
        t.rows.push(vec![
            Value::from(email),
            occurrence,
            Value::from(identifier),
            Value::from(record),
            Value::from(0),
            Value::from(""),
            Value::from(response_status(timestamp.as_deref())),
            Value::from(codes.access_code),
            Value::from(format!("{base}surveys/?s={}", codes.hash)),
            Value::from(queue_link),
        ]);
    }
    ctx.log_export(&format!("Export survey participant list (API) instrument = '{form}'"))?;
    Ok(Reply::rendered(crate::render::table(out, &t, "items")))
}
