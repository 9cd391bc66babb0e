//! API methods: token check, the route table keyed by `(content, action)`, and one module per
//! content area mirroring `spec/<area>.toml`.

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use redcap_core::{CsvDelimiter, Format, WireEnum};

use crate::auth::{Caller, DataExport, ProjectUser};
use crate::input::{self, InRow};
use crate::model::{Project, ProjectDef};
use crate::params::Params;
use crate::records::{entry_refusal, hidden_by_export_level};
use crate::render::{self, Out, Table};
use crate::store::{Store, StoreError};

// One module per spec area (spec/<area>.toml), each with that area's exports and imports.
mod arm;
mod dag;
mod event;
mod file;
mod file_repository;
mod instrument;
mod log;
mod lookup;
mod metadata;
mod pdf;
mod project;
pub(crate) mod record;
mod repeating;
mod report;
mod survey;
mod user;
mod user_role;
mod version;

/// Instance-wide settings handlers read.
#[derive(Clone, Debug)]
pub struct Env {
    /// What Export Version answers.
    pub version: String,
    /// Send `Content-Disposition` on file downloads (seed RC-API-47) besides the Content-Type name.
    pub content_disposition: bool,
    /// REDCap's base URL (survey links live under it), e.g. `https://redcap.example.org/`;
    /// `None`: the URL the request was sent to, less `api/`.
    pub base_url: Option<String>,
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
    /// A file made for this answer (Export PDF), named in the headers as a stored file is.
    Download { mime: String, name: String, body: Vec<u8> },
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
            Reply::Download { mime, name, body } => {
                f.debug_struct("Download").field("mime", mime).field("name", name).field("len", &body.len()).finish()
            }
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

/// A bare count answer (reference §5.6).
fn count(n: usize) -> HResult {
    Ok(Reply::text(n.to_string()))
}

/// 400 listing the values of `param` that are not valid.
fn invalid(param: &str, values: &[String]) -> Failure {
    bad(format!(
        "The following values in the parameter \"{param}\" are not valid: {}",
        values.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
    ))
}

/// A row's trimmed value of `key`, if the row has the column.
fn given<'a>(row: &'a InRow, key: &str) -> Option<&'a str> {
    input::get(row, key).map(str::trim)
}

/// A row's trimmed value of `key`, empty when the row lacks the column.
fn value<'a>(row: &'a InRow, key: &str) -> &'a str {
    given(row, key).unwrap_or("")
}

/// Saves `def`, runs `data` (data changes) and logs, in one transaction: every structure import
/// changes the stored definition and the data together.
fn commit(
    ctx: &mut Ctx,
    def: ProjectDef,
    details: &str,
    data: impl FnOnce(&mut Store, i64) -> Result<(), StoreError>,
) -> Result<(), Failure> {
    let pid = def.id;
    let (user, dag) = (ctx.user.username.clone(), ctx.user.dag_id);
    ctx.store.transaction(|s| {
        s.save_def(def)?;
        data(s, pid)?;
        s.log(pid, &user, "manage", "Manage/Design", details, "", dag)
    })?;
    Ok(())
}

/// Arms, events and their mappings exist only in longitudinal projects.
fn need_longitudinal(ctx: &Ctx, what: &str) -> Result<(), Failure> {
    if ctx.project.def.longitudinal {
        Ok(())
    } else {
        // Modelled on the recorded export messages (UNVERIFIED for imports and deletes).
        Err(bad(format!("You cannot {what} for classic projects")))
    }
}

/// The `arms` filter of the arm, event and mapping exports (absent: every arm).
fn arms_filter(ctx: &Ctx) -> Result<Option<Vec<i64>>, Failure> {
    match ctx.params.list("arms") {
        None => Ok(None),
        Some(list) => list
            .iter()
            .map(|a| a.parse::<i64>().map_err(|_| invalid("arms", std::slice::from_ref(a))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("The REDCap emulator's storage failed: {e}"),
        }
    }
}

impl From<crate::stream::StreamError> for Failure {
    fn from(e: crate::stream::StreamError) -> Self {
        match e {
            crate::stream::StreamError::Store(e) => e.into(),
            gone @ crate::stream::StreamError::Gone => {
                Failure { status: StatusCode::INTERNAL_SERVER_ERROR, message: gone.to_string() }
            }
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

    /// Whether an export leaves `name` (a field or `<form>_complete`) out for the caller.
    /// Export rights are per instrument (`forms_export`, the project XML's
    /// `data_export_instruments`; the users export replaced `data_export` with it by 12.5.2,
    /// REDCapR#396): a field follows its form's level, and a form without export rights is left
    /// out whole, `<form>_complete` too (API help: exp_records, "data-export rights are
    /// applied"). A form not listed follows `level`, the user's; the record id always stays.
    pub fn export_hides(&self, level: DataExport, name: &str) -> bool {
        let p = &*self.project;
        if name == p.def.record_id_field {
            return false;
        }
        let level = p.form_of(name).and_then(|form| self.user.rights.form_export(form)).unwrap_or(level);
        level == DataExport::NoAccess || hidden_by_export_level(p, level, name)
    }

    /// Refuses (403) a write of `name` (a field or `<form>_complete`) that the caller's data
    /// entry rights do not allow: the import-side counterpart of [`Ctx::export_hides`]. Data
    /// entry rights are per instrument (`forms`, the project XML's `data_entry`), and an API
    /// write follows them as the user's own would ("tokens inherit the requesting user's access
    /// rights", seed RC-API-01; RSVC B.3.16.1100: data "changed only by a user who has edit
    /// access to the data entry form").
    pub fn need_entry_right(&self, name: &str) -> Result<(), Failure> {
        match entry_refusal(&self.project, &self.user.rights, name) {
            None => Ok(()),
            Some(why) => Err(forbidden(why)),
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

    /// The names a delete method takes (`arms[]`, `dags[]`, `users[]`, `roles[]`): at least
    /// one. Recorded text for each of these four sent without it (AndrewPoppe/ApiUserRights
    /// tests/playwright/e2e/unit_test.spec.js, against a live REDCap).
    pub fn names_to_delete(&self, name: &str) -> Result<Vec<String>, Failure> {
        self.params.list(name).ok_or_else(|| {
            bad(format!(
                "The '{name}' parameter is either missing or is not an array. It must be provided as an array even if it only contains one value."
            ))
        })
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
    if !known_content(&content) {
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
    let with_data = params.has("data");
    let target = route(&content, &action, with_data);
    let mut ctx = Ctx { store, env, params, user, project };
    match target {
        Target::Run(handler) => handler(&mut ctx),
        // Recorded text (AndrewPoppe/ApiUserRights' Playwright suite, against a live REDCap);
        // the status is not recorded: 403, as for the other refusals of a token.
        Target::NeedsSuperToken => Err(forbidden(
            "You do not have permissions to use the API 'Create Project' method. You must have been granted a 64-character Super API Token from a REDCap administrator in order to utilize this method.",
        )),
        // `action=import` is documented as required for these (reference §1); without it the
        // emulator refuses rather than guess (UNVERIFIED what REDCap does).
        Target::ActionMissing => {
            Err(bad(format!("The parameter \"action\" is missing: send action=import to import ({content})")))
        }
        Target::BadAction => Err(bad("The value of the parameter \"action\" is not valid")),
        Target::NotEmulated(name) => Err(not_emulated(name, &content, &action)),
    }
}

/// A handler of one API method.
type Handler = fn(&mut Ctx) -> HResult;

/// What a `(content, action)` pair is routed to.
#[derive(Clone, Copy)]
enum Target {
    Run(Handler),
    /// Create Project (an import to Export Project Info's content) with a project token.
    NeedsSuperToken,
    /// An import without the `action` REDCap documents as required.
    ActionMissing,
    /// A known content with an action it does not have.
    BadAction,
    /// A documented method the emulator does not emulate, by its name in REDCap's API help.
    NotEmulated(&'static str),
}

/// One row of the route table: `action` is `*` for any action (REDCap ignores `action` there).
/// Where REDCap tells an import from an export by the presence of `data` (no `action`, or an
/// action it ignores), the row has a target for each.
struct Route {
    content: &'static str,
    action: &'static str,
    with_data: Target,
    without_data: Target,
}

const fn r(content: &'static str, action: &'static str, run: Handler) -> Route {
    Route { content, action, with_data: Target::Run(run), without_data: Target::Run(run) }
}

const fn by_data(content: &'static str, action: &'static str, with_data: Target, without_data: Target) -> Route {
    Route { content, action, with_data, without_data }
}

const fn not_emulated_route(content: &'static str, action: &'static str, name: &'static str) -> Route {
    Route { content, action, with_data: Target::NotEmulated(name), without_data: Target::NotEmulated(name) }
}

use Target::{ActionMissing, BadAction, NeedsSuperToken, Run};

/// Every `(content, action)` the API knows, grouped by spec area. A known content with an action
/// not listed is a bad `action`; a content not listed is a bad `content`.
static ROUTES: &[Route] = &[
    // arm
    r("arm", "import", arm::import),
    r("arm", "delete", arm::delete),
    by_data("arm", "", ActionMissing, Run(arm::export)),
    by_data("arm", "export", BadAction, Run(arm::export)),
    // dag
    r("dag", "import", dag::import),
    r("dag", "delete", dag::delete),
    r("dag", "switch", dag::switch),
    by_data("dag", "", ActionMissing, Run(dag::export)),
    by_data("dag", "export", BadAction, Run(dag::export)),
    by_data("userDagMapping", "", Run(dag::import_mappings), Run(dag::export_mappings)),
    by_data("userDagMapping", "import", Run(dag::import_mappings), BadAction),
    by_data("userDagMapping", "export", BadAction, Run(dag::export_mappings)),
    // event
    r("event", "import", event::import),
    r("event", "delete", event::delete),
    by_data("event", "", ActionMissing, Run(event::export)),
    by_data("event", "export", BadAction, Run(event::export)),
    // file
    r("file", "export", file::export),
    r("file", "import", file::import),
    r("file", "delete", file::delete),
    // file_repository
    r("fileRepository", "createFolder", file_repository::create_folder),
    r("fileRepository", "list", file_repository::list),
    r("fileRepository", "export", file_repository::export),
    r("fileRepository", "import", file_repository::import),
    r("fileRepository", "delete", file_repository::delete),
    // instrument
    r("instrument", "*", instrument::export),
    r("pdf", "*", pdf::export_pdf),
    by_data("formEventMapping", "", Run(instrument::import_event_mappings), Run(instrument::export_event_mappings)),
    by_data(
        "formEventMapping",
        "import",
        Run(instrument::import_event_mappings),
        Run(instrument::export_event_mappings),
    ),
    r("formEventMapping", "*", instrument::export_event_mappings),
    // log
    r("log", "*", log::export),
    // metadata
    by_data("metadata", "*", Run(metadata::import), Run(metadata::export)),
    r("exportFieldNames", "*", metadata::export_field_names),
    // project
    by_data("project", "*", NeedsSuperToken, Run(project::export_info)),
    r("project_settings", "*", project::import_info),
    r("project_xml", "*", project::export_xml),
    // record
    by_data("record", "", Run(record::import), Run(record::export)),
    by_data("record", "export", Run(record::import), Run(record::export)),
    by_data("record", "import", Run(record::import), BadAction),
    r("record", "delete", record::delete),
    r("record", "rename", record::rename),
    not_emulated_route("record", "randomize", "Randomize Record"),
    r("generateNextRecordName", "*", record::generate_next_name),
    // repeating
    by_data("repeatingFormsEvents", "", Run(repeating::import), Run(repeating::export)),
    by_data("repeatingFormsEvents", "import", Run(repeating::import), Run(repeating::export)),
    r("repeatingFormsEvents", "*", repeating::export),
    // report
    r("report", "*", report::export),
    // survey
    r("surveyLink", "*", survey::export_link),
    r("surveyAccessCode", "*", survey::export_access_code),
    r("surveyQueueLink", "*", survey::export_queue_link),
    r("surveyReturnCode", "*", survey::export_return_code),
    r("participantList", "*", survey::export_participant_list),
    // user
    r("user", "delete", user::delete),
    by_data("user", "", Run(user::import), Run(user::export)),
    by_data("user", "import", Run(user::import), BadAction),
    by_data("user", "export", BadAction, Run(user::export)),
    // user_role
    r("userRole", "delete", user_role::delete),
    by_data("userRole", "", Run(user_role::import), Run(user_role::export)),
    by_data("userRole", "import", Run(user_role::import), BadAction),
    by_data("userRole", "export", BadAction, Run(user_role::export)),
    // PyCap omits `action` for this import and its doctest passes (reference §1).
    by_data("userRoleMapping", "", Run(user_role::import_mappings), Run(user_role::export_mappings)),
    by_data("userRoleMapping", "import", Run(user_role::import_mappings), BadAction),
    by_data("userRoleMapping", "export", BadAction, Run(user_role::export_mappings)),
    // version
    r("version", "*", version::export),
];

/// Whether `content` is one the API knows (super-token calls are checked against it too).
fn known_content(content: &str) -> bool {
    ROUTES.iter().any(|r| r.content == content)
}

/// The target of a project-token call: the row for its exact action, else its content's `*` row.
fn route(content: &str, action: &str, with_data: bool) -> Target {
    let rows = || ROUTES.iter().filter(|r| r.content == content);
    let row = rows().find(|r| r.action == action).or_else(|| rows().find(|r| r.action == "*"));
    match row {
        Some(r) if with_data => r.with_data,
        Some(r) => r.without_data,
        None => BadAction,
    }
}

/// The honest answer for a documented method the emulator does not emulate (randomization): a 400 naming the method, never fake data.
fn not_emulated(name: &str, content: &str, action: &str) -> Failure {
    let call =
        if action.is_empty() { format!("content={content}") } else { format!("content={content}, action={action}") };
    bad(format!("The emulator does not implement \"{name}\" ({call}) yet"))
}
