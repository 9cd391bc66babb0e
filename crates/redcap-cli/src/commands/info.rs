//! `redcap info`: the server's version and the project's settings.

use redcap::core::EncodeError;
use redcap::{MethodInfo, Row, Version, project, version};
use serde_json::Value;

use crate::cli::InfoFormat;
use crate::error::{CliError, from_call};
use crate::output::{self, cell_text};
use crate::session::Session;

const VERSION: &[&MethodInfo] = &[&version::export::INFO];
const PROJECT: &[&MethodInfo] = &[&project::export_info::INFO];

/// What `info` shows: the version, and the project's settings (none with a super token).
pub fn fetch(session: &Session) -> Result<(Version, Option<Row>), CliError> {
    let v = session.client.call(&version::export::Request::new()).map_err(|e| from_call(&e, &session.ctx(VERSION)))?;
    let info = match session.client.call(&project::export_info::Request::new()) {
        Ok(data) => data
            .raw()
            .rows()
            .map_err(|e| from_call(&redcap::Error::Decode(e), &session.ctx(PROJECT)))?
            .into_iter()
            .next(),
        // A super token has no project.
        Err(redcap::Error::Encode(EncodeError::WrongToken { .. })) => None,
        Err(e) => return Err(from_call(&e, &session.ctx(PROJECT))),
    };
    Ok((v, info))
}

fn purpose(code: &str) -> String {
    match code {
        "0" => "Practice / just for fun".into(),
        "1" => "Other".into(),
        "2" => "Research".into(),
        "3" => "Quality improvement".into(),
        "4" => "Operational support".into(),
        other => other.into(),
    }
}

fn yes_no(v: &str) -> String {
    match v {
        "1" | "true" => "yes".into(),
        "0" | "false" | "" => "no".into(),
        other => other.into(),
    }
}

/// Name/value lines for people.
pub fn render(url: &str, v: &Version, project: Option<&Row>) -> String {
    let mut lines: Vec<(String, String)> =
        vec![("REDCap version".into(), v.to_string()), ("API URL".into(), url.into())];
    if let Some(p) = project {
        let get = |k: &str| p.get(k).map(cell_text).unwrap_or_default();
        lines.push(("Project".into(), format!("{} (project_id {})", get("project_title"), get("project_id"))));
        lines.push(("Purpose".into(), purpose(&get("purpose"))));
        lines.push(("In production".into(), yes_no(&get("in_production"))));
        lines.push(("Longitudinal".into(), yes_no(&get("is_longitudinal"))));
        lines.push(("Repeating forms/events".into(), yes_no(&get("has_repeating_instruments_or_events"))));
        lines.push(("Surveys".into(), yes_no(&get("surveys_enabled"))));
        lines.push(("Record auto-numbering".into(), yes_no(&get("record_autonumbering_enabled"))));
        let created = get("creation_time");
        if !created.is_empty() {
            lines.push(("Created".into(), created));
        }
    } else {
        lines.push(("Project".into(), "(a super token has no project)".into()));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines.iter().map(|(k, v)| format!("{k:width$}  {v}\n")).collect()
}

/// Runs `info`.
pub fn run(session: &Session, format: InfoFormat) -> Result<(), CliError> {
    let (v, project) = fetch(session)?;
    output::to_destination(None, |w| {
        match format {
            InfoFormat::Table => w.write_all(render(&session.url, &v, project.as_ref()).as_bytes()),
            InfoFormat::Json => {
                let mut obj = project.unwrap_or_default();
                obj.insert("redcap_version".into(), Value::String(v.to_string()));
                serde_json::to_writer_pretty(&mut *w, &obj).map_err(std::io::Error::from).and_then(|()| writeln!(w))
            }
        }
        .map_err(|e| CliError::stdout(&e))
    })
}
