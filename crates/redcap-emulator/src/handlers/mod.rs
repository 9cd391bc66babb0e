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

mod admin;
mod design;
mod file_repo;
mod files;
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
pub enum Reply {
    /// A body with its content type.
    Body { content_type: String, body: Vec<u8> },
    /// A body rendered while it is sent (large exports), from a store snapshot taken by the
    /// handler, so the store's lock is not held while it streams.
    Stream { content_type: String, producer: crate::stream::Producer },
    /// A stored file, streamed from disk.
    File { path: PathBuf, mime: String, name: String, size: u64 },
    /// Zero-length 200.
    Empty,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Body { content_type, body } => {
                f.debug_struct("Body").field("content_type", content_type).field("len", &body.len()).finish()
            }
            Reply::Stream { content_type, .. } => f.debug_struct("Stream").field("content_type", content_type).finish(),
            Reply::File { path, mime, name, size } => f
                .debug_struct("File")
                .field("path", path)
                .field("mime", mime)
                .field("name", name)
                .field("size", size)
                .finish(),
            Reply::Empty => f.write_str("Empty"),
        }
    }
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

    /// Requires API Import/Update and Project Design and Setup (the structure imports).
    pub fn need_design(&self) -> Result<(), Failure> {
        self.need_import()?;
        if self.user.rights.design {
            Ok(())
        } else {
            // UNVERIFIED text, modelled on the recorded privilege messages.
            Err(forbidden("You do not have Project Design and Setup privileges"))
        }
    }

    /// Requires Development status; `what` names the change (text UNVERIFIED, reference §8 #31).
    pub fn need_development(&self, what: &str) -> Result<(), Failure> {
        if self.project.def.info.in_production {
            Err(bad(format!(
                "{what} is only allowed while the project is in Development status, and this project is in Production"
            )))
        } else {
            Ok(())
        }
    }

    /// The `data` parameter as rows in its `format` (xml by default).
    pub fn data_rows(&self) -> Result<Vec<crate::input::InRow>, Failure> {
        let data = self.params.get("data").ok_or_else(|| bad("The parameter \"data\" is missing"))?;
        let format = self.params.get_nonempty("format").unwrap_or("xml");
        crate::input::rows(format, data, b',').map_err(bad)
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

    /// Logs an export the way REDCap does for its metadata-like exports: action `Manage/Design`,
    /// details such as `Export DAGs (API)` (REDCapR's recorded Export Logging, log-read/2024-10-11.R).
    pub fn log_export(&mut self, details: &str) -> Result<(), Failure> {
        self.log("manage", "Manage/Design", details, "")
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
        ("project_xml", _) => project::export_xml(&mut ctx),
        ("fileRepository", "createFolder") => file_repo::create_folder(&mut ctx),
        ("fileRepository", "list") => file_repo::list(&mut ctx),
        ("fileRepository", "export") => file_repo::export(&mut ctx),
        ("fileRepository", "import") => file_repo::import(&mut ctx),
        ("fileRepository", "delete") => file_repo::delete(&mut ctx),
        ("fileRepository", _) => Err(bad("The value of the parameter \"action\" is not valid")),
        ("file", "export") => files::export(&mut ctx),
        ("file", "import") => files::import(&mut ctx),
        ("file", "delete") => files::delete(&mut ctx),
        ("file", _) => Err(bad("The value of the parameter \"action\" is not valid")),
        ("report", _) => reports::export(&mut ctx),
        ("record", "delete") => records::delete(&mut ctx),
        ("record", "rename") => records::rename(&mut ctx),
        ("record", "" | "import" | "export") if has_data => records::import(&mut ctx),
        ("record", "" | "export") => records::export(&mut ctx),
        ("generateNextRecordName", _) => records::next_name(&mut ctx),
        ("metadata", _) if has_data => design::import_metadata(&mut ctx),
        ("metadata", _) => meta::metadata(&mut ctx),
        ("exportFieldNames", _) => meta::field_names(&mut ctx),
        ("instrument", _) => meta::instruments(&mut ctx),
        ("formEventMapping", "" | "import") if has_data => design::import_form_events(&mut ctx),
        ("formEventMapping", _) => meta::form_event_mapping(&mut ctx),
        ("repeatingFormsEvents", "" | "import") if has_data => design::import_repeating(&mut ctx),
        ("repeatingFormsEvents", _) => meta::repeating(&mut ctx),
        ("project_settings", _) => design::import_settings(&mut ctx),
        ("arm", "import") => design::import_arms(&mut ctx),
        ("arm", "delete") => design::delete_arms(&mut ctx),
        ("arm", "" | "export") if !has_data => meta::arms(&mut ctx),
        ("event", "import") => design::import_events(&mut ctx),
        ("event", "delete") => design::delete_events(&mut ctx),
        ("event", "" | "export") if !has_data => meta::events(&mut ctx),
        // `action=import` is documented as required for these (reference §1); without it the
        // emulator refuses rather than guess (UNVERIFIED what REDCap does).
        ("arm" | "event" | "dag", "") if has_data => {
            Err(bad(format!("The parameter \"action\" is missing: send action=import to import ({content})")))
        }
        ("dag", "import") => admin::import_dags(&mut ctx),
        ("dag", "delete") => admin::delete_dags(&mut ctx),
        ("dag", "switch") => admin::switch_dag(&mut ctx),
        ("dag", "" | "export") if !has_data => users::dags(&mut ctx),
        ("userDagMapping", "" | "import") if has_data => admin::import_user_dags(&mut ctx),
        ("userDagMapping", "" | "export") if !has_data => users::user_dag_mapping(&mut ctx),
        ("user", "delete") => admin::delete_users(&mut ctx),
        ("user", "" | "import") if has_data => admin::import_users(&mut ctx),
        ("user", "" | "export") if !has_data => users::users(&mut ctx),
        ("userRole", "delete") => admin::delete_roles(&mut ctx),
        ("userRole", "" | "import") if has_data => admin::import_roles(&mut ctx),
        ("userRole", "" | "export") if !has_data => users::roles(&mut ctx),
        // PyCap omits `action` for this import and its doctest passes (reference §1).
        ("userRoleMapping", "" | "import") if has_data => admin::import_user_roles(&mut ctx),
        ("userRoleMapping", "" | "export") if !has_data => users::user_role_mapping(&mut ctx),
        ("log", _) => logging::export(&mut ctx),
        (c, a) => Err(unimplemented(c, a)),
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

/// The honest answer for a documented method the emulator does not emulate (surveys, PDF,
/// randomization): a 400 naming the method, never fake data. Other unknown `action` values of
/// known contents are a plain bad parameter.
fn unimplemented(content: &str, action: &str) -> Failure {
    let name = match (content, action) {
        ("record", "randomize") => "Randomize Record",
        ("pdf", _) => "Export PDF",
        ("surveyLink", _) => "Export a Survey Link",
        ("surveyAccessCode", _) => "Export a Survey Access Code",
        ("surveyQueueLink", _) => "Export a Survey Queue Link",
        ("surveyReturnCode", _) => "Export a Survey Return Code",
        ("participantList", _) => "Export a Survey Participant List",
        _ => return bad("The value of the parameter \"action\" is not valid"),
    };
    let call =
        if action.is_empty() { format!("content={content}") } else { format!("content={content}, action={action}") };
    bad(format!("The emulator does not implement \"{name}\" ({call}) yet"))
}
