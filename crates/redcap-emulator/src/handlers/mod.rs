//! API methods: token check, dispatch on `content`/`action`, and one module per content area.

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use redcap_core::{CsvDelimiter, Format, WireEnum};

use crate::auth::{Caller, DataExport, ProjectUser};
use crate::model::Project;
use crate::params::Params;
use crate::render::{self, Out, Table};
use crate::store::{Store, StoreError};

mod file_repo;
mod logging;
mod meta;
mod project;
pub(crate) mod records;
mod reports;
mod users;

/// Instance-wide settings handlers read.
#[derive(Clone, Debug)]
pub struct Env {
    /// What Export Version answers.
    pub version: String,
    /// Send `Content-Disposition` on file downloads (seed RC-API-47) besides the Content-Type name.
    pub content_disposition: bool,
}

/// A successful answer.
#[derive(Debug)]
pub enum Reply {
    /// A body with its content type.
    Body { content_type: String, body: Vec<u8> },
    /// A stored file, streamed from disk.
    File { path: PathBuf, mime: String, name: String, size: u64 },
    /// Zero-length 200.
    Empty,
}

impl Reply {
    /// A bare text body.
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Body { content_type: render::TEXT.into(), body: s.into().into_bytes() }
    }

    fn rendered((ct, body): (&'static str, Vec<u8>)) -> Self {
        Reply::Body { content_type: ct.into(), body }
    }
}

/// An error answer: status and message (rendered in the call's error format by the server).
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

/// 400 with `message`.
pub fn bad(message: impl Into<String>) -> Failure {
    Failure { status: StatusCode::BAD_REQUEST, message: message.into() }
}

/// 403 with `message`.
pub fn forbidden(message: impl Into<String>) -> Failure {
    Failure { status: StatusCode::FORBIDDEN, message: message.into() }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("The REDCap emulator's storage failed: {e}"),
        }
    }
}

/// Result of a handler.
pub type HResult = Result<Reply, Failure>;

pub(crate) const NO_API: &str = "You do not have permissions to use the API";

/// Everything a project-token handler needs.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    pub env: &'a Env,
    pub params: Params,
    pub user: ProjectUser,
    pub project: Arc<Project>,
}

impl Ctx<'_> {
    /// Requires API Export.
    pub fn need_export(&self) -> Result<(), Failure> {
        if self.user.rights.api_export {
            Ok(())
        } else {
            // Text chosen to mirror the recorded import message (reference §5.2); UNVERIFIED.
            Err(forbidden("You do not have API Export privileges"))
        }
    }

    /// Requires API Import/Update.
    pub fn need_import(&self) -> Result<(), Failure> {
        if self.user.rights.api_import {
            Ok(())
        } else {
            Err(forbidden("You do not have API Import/Update privileges"))
        }
    }

    /// Requires a data export level other than No Access.
    pub fn need_data_export(&self) -> Result<DataExport, Failure> {
        match self.user.rights.data_export {
            // Message UNVERIFIED: the docs say only that the request "will fail with an error".
            DataExport::NoAccess => Err(forbidden(
                "You do not have Data Export privileges in this project (your data export rights are set to \"No Access\")",
            )),
            level => Ok(level),
        }
    }

    /// Requires User Rights.
    pub fn need_user_rights(&self) -> Result<(), Failure> {
        if self.user.rights.user_rights {
            Ok(())
        } else {
            // UNVERIFIED text.
            Err(forbidden("You do not have User Rights privileges"))
        }
    }

    /// The `format` for a data response (`odm` only where the method accepts it).
    pub fn out(&self, odm_ok: bool) -> Result<Out, Failure> {
        match self.params.format() {
            Ok(Format::Json) => Ok(Out::Json),
            Ok(Format::Csv) => Ok(Out::Csv(self.csv_delimiter()?)),
            Ok(Format::Xml) => Ok(Out::Xml),
            Ok(Format::Odm) if odm_ok => Ok(Out::Xml),
            Ok(_) | Err(_) => Err(bad("The value of the parameter \"format\" is not valid")),
        }
    }

    /// `csvDelimiter` (comma by default).
    pub fn csv_delimiter(&self) -> Result<u8, Failure> {
        match self.params.get_nonempty("csvDelimiter") {
            None => Ok(b','),
            Some(v) => CsvDelimiter::from_wire(v)
                .map(CsvDelimiter::byte)
                .ok_or_else(|| bad("The value of the parameter \"csvDelimiter\" is not valid")),
        }
    }

    /// Renders a table in the requested format.
    pub fn table(&self, t: &Table, root: &str) -> HResult {
        Ok(Reply::rendered(render::table(self.out(false)?, t, root)))
    }

    /// Appends to the project's log.
    pub fn log(&mut self, kind: &str, action: &str, details: &str, record: &str) -> Result<(), Failure> {
        self.store.log(self.project.id(), &self.user.username, kind, action, details, record, self.user.dag_id)?;
        Ok(())
    }
}

fn valid_token_shape(t: &str) -> bool {
    (t.len() == 32 || t.len() == 64) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Handles one API call.
pub fn handle(store: &mut Store, env: &Env, params: Params) -> HResult {
    let token = params.get("token").unwrap_or("");
    // Malformed tokens (wrong length, a trailing newline, non-hex) are refused like unknown ones.
    if !valid_token_shape(token) {
        return Err(forbidden(NO_API));
    }
    let Some(caller) = store.caller(token)? else {
        return Err(forbidden(NO_API));
    };
    let content = params.get("content").unwrap_or("").to_owned();
    if !KNOWN_CONTENT.contains(&content.as_str()) {
        return Err(bad("The value of the parameter \"content\" is not valid"));
    }
    let user = match caller {
        Caller::Super { username } => return project::super_call(store, env, params, &username, &content),
        Caller::Project(u) => u,
    };
    let Some(project) = store.project(user.project_id)? else {
        return Err(bad("The REDCap project no longer exists because it was deleted."));
    };
    let action = params.get("action").unwrap_or("").to_owned();
    let has_data = params.has("data");
    let mut ctx = Ctx { store, env, params, user, project };
    match (content.as_str(), action.as_str()) {
        ("version", _) => project::version(&mut ctx),
        ("project", _) if has_data => Err(forbidden(NO_API)),
        ("project", _) => project::export_info(&mut ctx),
        ("fileRepository", "createFolder") => file_repo::create_folder(&mut ctx),
        ("fileRepository", "list") => file_repo::list(&mut ctx),
        ("fileRepository", "export") => file_repo::export(&mut ctx),
        ("fileRepository", "import") => file_repo::import(&mut ctx),
        ("fileRepository", "delete") => file_repo::delete(&mut ctx),
        ("fileRepository", _) => Err(bad("The value of the parameter \"action\" is not valid")),
        ("report", _) => reports::export(&mut ctx),
        ("record", "delete") => records::delete(&mut ctx),
        ("record", "rename") => records::rename(&mut ctx),
        ("record", "" | "import" | "export") if has_data => records::import(&mut ctx),
        ("record", "" | "export") => records::export(&mut ctx),
        ("generateNextRecordName", _) => records::next_name(&mut ctx),
        ("metadata", _) if !has_data => meta::metadata(&mut ctx),
        ("exportFieldNames", _) => meta::field_names(&mut ctx),
        ("instrument", _) => meta::instruments(&mut ctx),
        ("formEventMapping", _) if !has_data => meta::form_event_mapping(&mut ctx),
        ("repeatingFormsEvents", _) if !has_data => meta::repeating(&mut ctx),
        ("arm", "" | "export") if !has_data => meta::arms(&mut ctx),
        ("event", "" | "export") if !has_data => meta::events(&mut ctx),
        ("dag", "" | "export") if !has_data => users::dags(&mut ctx),
        ("userDagMapping", "" | "export") if !has_data => users::user_dag_mapping(&mut ctx),
        ("user", "" | "export") if !has_data => users::users(&mut ctx),
        ("userRole", "" | "export") if !has_data => users::roles(&mut ctx),
        ("userRoleMapping", "" | "export") if !has_data => users::user_role_mapping(&mut ctx),
        ("log", _) => logging::export(&mut ctx),
        (c, a) => Err(unimplemented(c, a, has_data)),
    }
}

const KNOWN_CONTENT: &[&str] = &[
    "record",
    "report",
    "metadata",
    "exportFieldNames",
    "instrument",
    "pdf",
    "formEventMapping",
    "repeatingFormsEvents",
    "event",
    "arm",
    "project",
    "project_settings",
    "project_xml",
    "version",
    "user",
    "userRole",
    "userRoleMapping",
    "dag",
    "userDagMapping",
    "file",
    "fileRepository",
    "log",
    "surveyLink",
    "surveyAccessCode",
    "surveyQueueLink",
    "surveyReturnCode",
    "participantList",
    "generateNextRecordName",
];

/// The honest answer for a documented method the emulator does not emulate yet.
fn unimplemented(content: &str, action: &str, has_data: bool) -> Failure {
    let name = match (content, action, has_data) {
        ("record", "randomize", _) => "Randomize Record",
        ("record", _, _) => "this record action",
        ("metadata", _, true) => "Import Metadata",
        ("formEventMapping", _, true) => "Import Instrument-Event Mappings",
        ("repeatingFormsEvents", _, true) => "Import Repeating Instruments and Events",
        ("arm", "delete", _) => "Delete Arms",
        ("arm", _, _) => "Import Arms",
        ("event", "delete", _) => "Delete Events",
        ("event", _, _) => "Import Events",
        ("dag", "delete", _) => "Delete DAGs",
        ("dag", "switch", _) => "Switch DAG",
        ("dag", _, _) => "Import DAGs",
        ("userDagMapping", _, _) => "Import User-DAG Assignments",
        ("user", "delete", _) => "Delete Users",
        ("user", _, _) => "Import Users",
        ("userRole", "delete", _) => "Delete User Roles",
        ("userRole", _, _) => "Import User Roles",
        ("userRoleMapping", _, _) => "Import User-Role Assignments",
        ("project_settings", _, _) => "Import Project Info",
        ("project_xml", _, _) => "Export Project XML",
        ("pdf", _, _) => "Export PDF",
        ("file", "export", _) => "Export a File",
        ("file", "import", _) => "Import a File",
        ("file", "delete", _) => "Delete a File",
        ("file", _, _) => "record file methods",
        ("surveyLink", _, _) => "Export a Survey Link",
        ("surveyAccessCode", _, _) => "Export a Survey Access Code",
        ("surveyQueueLink", _, _) => "Export a Survey Queue Link",
        ("surveyReturnCode", _, _) => "Export a Survey Return Code",
        ("participantList", _, _) => "Export a Survey Participant List",
        _ => "this method",
    };
    let call =
        if action.is_empty() { format!("content={content}") } else { format!("content={content}, action={action}") };
    bad(format!("The emulator does not implement \"{name}\" ({call}) yet"))
}
