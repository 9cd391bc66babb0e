//! Loader of REDCap project XML (CDISC ODM 1.3.1 with `redcap:` extensions).
//!
//! The definition is read into a small element tree first and then interpreted; the data is
//! handed on one record at a time ([`parse_streamed`]), read from a file as it is parsed
//! ([`XmlSource::File`]), so a project of any size is never held whole. Element and attribute
//! names keep their prefix (`redcap:Reports`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use quick_xml::events::{BytesStart, Event as XmlEvent};

use crate::auth::{DataExport, Rights};
use crate::model::{
    Arm, Dag, Event, Field, Form, ProjectDef, Repeating, Report, Role, checkbox_column, parse_choices, unique_dag_name,
};

/// Why a project XML file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("project XML: {0}")]
pub struct OdmError(pub String);

/// One stored value of the project's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataValue {
    pub record: String,
    pub event: String,
    /// Repeating instrument name, or empty.
    pub instrument: String,
    pub instance: i64,
    pub field: String,
    pub value: String,
}

/// A file attached to a record's file-upload field.
#[derive(Clone, Debug)]
pub struct DataFile {
    pub record: String,
    pub event: String,
    pub instrument: String,
    pub instance: i64,
    pub field: String,
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// A loaded project: definition plus clinical data.
#[derive(Debug, Default)]
pub struct LoadedProject {
    pub def: ProjectDef,
    pub values: Vec<DataValue>,
    pub files: Vec<DataFile>,
    /// record → unique DAG name.
    pub record_dags: Vec<(String, String)>,
    /// Record names in file order.
    pub records: Vec<String>,
}

#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn a(&self, name: &str) -> String {
        self.attr(name).unwrap_or("").to_owned()
    }
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn child_text(&self, name: &str) -> String {
        self.child(name).map(|c| c.text.clone()).unwrap_or_default()
    }
}

fn unescape(raw: &str) -> Cow<'_, str> {
    // Fall back to the raw text for entities XML does not define (REDCap exports HTML text).
    quick_xml::escape::unescape(raw).unwrap_or(Cow::Borrowed(raw))
}

/// Bytes of the document as text: project XML is UTF-8 (a file in another encoding is refused,
/// not loaded with its characters replaced). The pieces are cut at ASCII markup, so a piece of
/// a UTF-8 document is UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, OdmError> {
    std::str::from_utf8(bytes).map_err(|e| OdmError(format!("the document is not UTF-8 text ({e})")))
}

fn start_element(e: &BytesStart) -> Result<Element, OdmError> {
    let name = utf8(e.name().as_ref())?.to_owned();
    let mut attrs = Vec::new();
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|err| OdmError(format!("bad attribute in <{name}>: {err}")))?;
        let key = utf8(a.key.as_ref())?.to_owned();
        let value = unescape(utf8(&a.value)?).into_owned();
        attrs.push((key, value));
    }
    Ok(Element { name, attrs, ..Default::default() })
}

/// Where a project XML document is read from.
#[derive(Clone, Copy, Debug)]
pub enum XmlSource<'a> {
    /// Text in memory.
    Text(&'a str),
    /// A file, read as it is parsed (and read again when its data comes before its definition).
    File(&'a Path),
}

impl XmlSource<'_> {
    /// The document's size in bytes.
    pub fn len(&self) -> std::io::Result<u64> {
        match self {
            XmlSource::Text(t) => Ok(t.len() as u64),
            XmlSource::File(p) => Ok(std::fs::metadata(p)?.len()),
        }
    }

    /// Parses the document's tree (see [`parse_tree_with`]) from its start.
    fn tree(&self, subjects: Option<SubjectSink<'_>>) -> Result<Element, OdmError> {
        match self {
            XmlSource::Text(t) => parse_tree_with(quick_xml::Reader::from_reader(t.as_bytes()), subjects),
            XmlSource::File(p) => {
                let f = std::fs::File::open(p).map_err(|e| OdmError(format!("{}: {e}", p.display())))?;
                parse_tree_with(quick_xml::Reader::from_reader(std::io::BufReader::with_capacity(1 << 16, f)), subjects)
            }
        }
    }
}

/// Deepest element nesting accepted. REDCap's project XML nests about ten levels; the bound keeps
/// hostile documents from exhausting the stack (the tree is dropped recursively).
pub const MAX_DEPTH: usize = 100;

fn parse_tree(xml: &str) -> Result<Element, OdmError> {
    XmlSource::Text(xml).tree(None)
}

/// A handler for each `SubjectData` of `ClinicalData`, which then stays out of the tree. It also
/// gets the elements still open around it, outermost first (the document, `ODM`, `ClinicalData`),
/// each with the children completed so far.
type SubjectSink<'a> = &'a mut dyn FnMut(&[Element], Element) -> Result<(), OdmError>;

/// Adds a completed element to its parent, or hands a `SubjectData` to `subjects`.
fn complete(stack: &mut [Element], el: Element, subjects: &mut Option<SubjectSink<'_>>) -> Result<(), OdmError> {
    let subject = el.name == "SubjectData" && stack.last().is_some_and(|p| p.name == "ClinicalData");
    match subjects.as_mut() {
        Some(sink) if subject => sink(stack, el),
        _ => {
            stack.last_mut().ok_or_else(|| OdmError("unbalanced end tag".into()))?.children.push(el);
            Ok(())
        }
    }
}

/// The document's tree; with `subjects`, each record's `SubjectData` goes there as soon as it is
/// complete instead (a project's data is never held whole).
fn parse_tree_with<R: BufRead>(
    mut reader: quick_xml::Reader<R>,
    mut subjects: Option<SubjectSink<'_>>,
) -> Result<Element, OdmError> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| OdmError(format!("not well-formed XML at byte {}: {e}", reader.error_position())))?;
        match ev {
            XmlEvent::Start(e) => {
                if stack.len() > MAX_DEPTH {
                    return Err(OdmError(format!(
                        "elements nest deeper than {MAX_DEPTH} levels (at byte {})",
                        reader.buffer_position()
                    )));
                }
                stack.push(start_element(&e)?)
            }
            XmlEvent::Empty(e) => {
                let el = start_element(&e)?;
                complete(&mut stack, el, &mut subjects)?;
            }
            XmlEvent::End(_) => {
                let el = stack.pop().expect("balanced");
                complete(&mut stack, el, &mut subjects)?;
            }
            XmlEvent::Text(t) => {
                stack.last_mut().expect("root").text.push_str(&unescape(utf8(t.as_ref())?));
            }
            XmlEvent::CData(t) => {
                stack.last_mut().expect("root").text.push_str(utf8(t.as_ref())?);
            }
            XmlEvent::Eof => break,
            _ => {}
        }
        if stack.is_empty() {
            return Err(OdmError("unbalanced end tag".into()));
        }
    }
    if stack.len() != 1 {
        return Err(OdmError("the document ends inside an element".into()));
    }
    let root = stack.pop().expect("root");
    root.children.into_iter().find(|c| c.name == "ODM").ok_or_else(|| OdmError("no <ODM> root element".into()))
}

fn flag(s: &str) -> bool {
    s.trim() == "1"
}

/// Parses a project XML document. Ids of events, DAGs, roles and reports are left 0 for the store
/// to assign.
pub fn parse(xml: &str) -> Result<LoadedProject, OdmError> {
    let odm = parse_tree(xml)?;
    let (mut loaded, checkbox_items) = parse_project(&odm)?;
    if let Some(clinical) = odm.child("ClinicalData") {
        let part = clinical_part(clinical, &loaded.def, &checkbox_items)?;
        loaded.values = part.values;
        loaded.files = part.files;
        loaded.record_dags = part.record_dags;
        loaded.records = part.records;
    }
    Ok(loaded)
}

/// The data of some records of a project document.
#[derive(Debug, Default)]
pub struct ClinicalPart {
    pub values: Vec<DataValue>,
    pub files: Vec<DataFile>,
    /// record → unique DAG name.
    pub record_dags: Vec<(String, String)>,
    /// Record names in document order.
    pub records: Vec<String>,
}

impl ClinicalPart {
    /// Adds the data of the records of `later`, after these.
    pub fn append(&mut self, mut later: ClinicalPart) {
        self.values.append(&mut later.values);
        self.files.append(&mut later.files);
        self.record_dags.append(&mut later.record_dags);
        self.records.append(&mut later.records);
    }
}

/// What [`parse_streamed`] hands on, in this order.
#[derive(Debug)]
pub enum Streamed<'a> {
    /// The project without data (before any of it).
    Definition(&'a mut LoadedProject),
    /// The data of one `SubjectData`.
    Data(ClinicalPart),
}

/// Parses a project XML document without ever holding its data whole: `each` gets the project
/// without data, then each record's data (one `SubjectData`, in document order). The document is
/// read once when its definition (`Study`) comes before its data, as REDCap writes it; otherwise
/// twice: its definition, then its data.
pub fn parse_streamed(
    xml: XmlSource<'_>,
    each: &mut dyn FnMut(Streamed<'_>) -> Result<(), OdmError>,
) -> Result<(), OdmError> {
    type Definition = (LoadedProject, HashMap<String, (String, String)>);
    let mut defined: Option<Definition> = None;
    let mut data_first = false;
    let odm = xml.tree(Some(&mut |open, subject| {
        if data_first {
            return Ok(());
        }
        if defined.is_none() {
            // `open` is the document, then `ODM` holding the finished `Study`, then `ClinicalData`.
            let odm = match open {
                [_, odm, _] if odm.name == "ODM" && odm.child("Study").is_some() => odm,
                _ => {
                    data_first = true;
                    return Ok(());
                }
            };
            let (mut loaded, checkbox_items) = parse_project(odm)?;
            each(Streamed::Definition(&mut loaded))?;
            defined = Some((loaded, checkbox_items));
        }
        let (loaded, checkbox_items) = defined.as_ref().expect("defined above");
        subject_data(subject, &loaded.def, checkbox_items, each)
    }))?;
    if defined.is_some() {
        return Ok(());
    }
    let (mut loaded, checkbox_items) = parse_project(&odm)?;
    drop(odm);
    each(Streamed::Definition(&mut loaded))?;
    if data_first {
        let def = &loaded.def;
        xml.tree(Some(&mut |_, subject| subject_data(subject, def, &checkbox_items, each)))?;
    }
    Ok(())
}

/// Hands one `SubjectData`'s values on.
fn subject_data(
    subject: Element,
    def: &ProjectDef,
    checkbox_items: &HashMap<String, (String, String)>,
    each: &mut dyn FnMut(Streamed<'_>) -> Result<(), OdmError>,
) -> Result<(), OdmError> {
    let clinical = Element { name: "ClinicalData".into(), children: vec![subject], ..Default::default() };
    each(Streamed::Data(clinical_part(&clinical, def, checkbox_items)?))
}

/// The definition of a parsed document (no data), and its checkbox items (OID → field, code).
#[allow(clippy::type_complexity)]
fn parse_project(odm: &Element) -> Result<(LoadedProject, HashMap<String, (String, String)>), OdmError> {
    let study = odm.child("Study").ok_or_else(|| OdmError("no <Study> element".into()))?;
    let gv = study.child("GlobalVariables").ok_or_else(|| OdmError("no <GlobalVariables> element".into()))?;
    let mdv = study.child("MetaDataVersion").ok_or_else(|| OdmError("no <MetaDataVersion> element".into()))?;

    let mut def = ProjectDef::default();
    let info = &mut def.info;
    info.title = gv.child_text("StudyName");
    info.purpose = gv.child_text("redcap:Purpose").trim().parse().unwrap_or(0);
    info.purpose_other = gv.child_text("redcap:PurposeOther");
    info.notes = gv.child_text("redcap:ProjectNotes");
    info.custom_record_label = gv.child_text("redcap:CustomRecordLabel");
    info.secondary_unique_field = gv.child_text("redcap:SecondaryUniqueField");
    info.surveys_enabled = flag(&gv.child_text("redcap:SurveysEnabled"));
    info.scheduling_enabled = flag(&gv.child_text("redcap:SchedulingEnabled"));
    info.record_autonumbering_enabled = flag(&gv.child_text("redcap:RecordAutonumberingEnabled"));
    info.randomization_enabled = flag(&gv.child_text("redcap:RandomizationEnabled"));
    info.display_today_now_button = flag(&gv.child_text("redcap:DisplayTodayNowButton"));
    info.bypass_branching_erase_field_prompt = flag(&gv.child_text("redcap:PreventBranchingEraseValues"));
    info.missing_data_codes = gv.child_text("redcap:MissingDataCodes");
    info.project_language = "English".into();

    def.record_id_field = mdv.a("redcap:RecordIdField");

    // Forms and fields.
    let item_groups: HashMap<&str, &Element> =
        mdv.children("ItemGroupDef").map(|g| (g.attr("OID").unwrap_or(""), g)).collect();
    let item_defs: HashMap<&str, &Element> =
        mdv.children("ItemDef").map(|d| (d.attr("OID").unwrap_or(""), d)).collect();
    let code_lists: HashMap<&str, &Element> =
        mdv.children("CodeList").map(|c| (c.attr("OID").unwrap_or(""), c)).collect();
    let mut seen = HashSet::new();
    // ItemOID of a checkbox option → (field, code).
    let mut checkbox_items: HashMap<String, (String, String)> = HashMap::new();
    for form in mdv.children("FormDef") {
        let form_name = form.a("redcap:FormName");
        def.forms.push(Form { name: form_name.clone(), label: form.a("Name") });
        for gref in form.children("ItemGroupRef") {
            let Some(group) = item_groups.get(gref.attr("ItemGroupOID").unwrap_or("")) else {
                continue;
            };
            for iref in group.children("ItemRef") {
                let oid = iref.attr("ItemOID").unwrap_or("");
                let Some(item) = item_defs.get(oid) else { continue };
                // Pseudo-fields (DAG, survey identifier, timestamps) have no field type.
                let Some(ftype) = item.attr("redcap:FieldType") else { continue };
                let var = item.attr("redcap:Variable").unwrap_or(oid).to_owned();
                if var == format!("{form_name}_complete") {
                    continue;
                }
                if !seen.insert(var.clone()) {
                    if ftype == "checkbox" {
                        note_checkbox_item(&mut checkbox_items, &def.fields, &var, oid);
                    }
                    continue;
                }
                let field = field_from_item(item, &var, &form_name, ftype, &code_lists);
                def.fields.push(field);
                if ftype == "checkbox" {
                    note_checkbox_item(&mut checkbox_items, &def.fields, &var, oid);
                }
            }
        }
    }
    if def.record_id_field.is_empty() {
        def.record_id_field = def.fields.first().map(|f| f.name.clone()).unwrap_or_default();
    }

    // Events and arms.
    let event_defs: Vec<&Element> = mdv.children("StudyEventDef").collect();
    if event_defs.is_empty() {
        def.longitudinal = false;
        def.arms.push(Arm { num: 1, name: "Arm 1".into() });
        def.events.push(Event {
            id: 0,
            unique_name: "event_1_arm_1".into(),
            name: "Event 1".into(),
            arm_num: 1,
            day_offset: "0".into(),
            offset_min: "0".into(),
            offset_max: "0".into(),
            custom_label: String::new(),
        });
        for f in &def.forms {
            def.form_events.push(("event_1_arm_1".into(), f.name.clone()));
        }
    } else {
        def.longitudinal = true;
        // Protocol gives the event order; fall back to document order.
        let mut ordered: Vec<&Element> = Vec::new();
        if let Some(protocol) = mdv.child("Protocol") {
            for r in protocol.children("StudyEventRef") {
                let oid = r.attr("StudyEventOID").unwrap_or("");
                if let Some(e) = event_defs.iter().find(|e| e.attr("OID") == Some(oid)) {
                    ordered.push(e);
                }
            }
        }
        for e in &event_defs {
            if !ordered.iter().any(|o| std::ptr::eq(*o, *e)) {
                ordered.push(e);
            }
        }
        for e in ordered {
            let arm_num: i64 = e.a("redcap:ArmNum").parse().unwrap_or(1);
            if !def.arms.iter().any(|a| a.num == arm_num) {
                def.arms.push(Arm { num: arm_num, name: e.a("redcap:ArmName") });
            }
            let unique = e.a("redcap:UniqueEventName");
            for fr in e.children("FormRef") {
                def.form_events.push((unique.clone(), fr.a("redcap:FormName")));
            }
            def.events.push(Event {
                id: 0,
                unique_name: unique,
                name: if e.attr("redcap:EventName").is_some() { e.a("redcap:EventName") } else { e.a("Name") },
                arm_num,
                day_offset: e.a("redcap:DayOffset"),
                offset_min: e.a("redcap:OffsetMin"),
                offset_max: e.a("redcap:OffsetMax"),
                custom_label: e.a("redcap:CustomEventLabel"),
            });
        }
        def.arms.sort_by_key(|a| a.num);
    }

    // Repeating setup.
    if let Some(rep) = gv.child("redcap:RepeatingInstrumentsAndEvents") {
        for ev in rep.children("redcap:RepeatingEvent") {
            def.repeating.push(Repeating { event: ev.a("redcap:UniqueEventName"), form: None, label: String::new() });
        }
        for group in rep.children("redcap:RepeatingInstruments") {
            for ri in group.children("redcap:RepeatingInstrument") {
                def.repeating.push(Repeating {
                    event: ri.a("redcap:UniqueEventName"),
                    form: Some(ri.a("redcap:RepeatInstrument")),
                    label: ri.a("redcap:CustomLabel"),
                });
            }
        }
    }

    // DAGs, roles, surveys, reports.
    if let Some(group) = gv.child("redcap:DataAccessGroupsGroup") {
        for d in group.children("redcap:DataAccessGroups") {
            let name = d.a("group_name");
            // `unique_group_name` is written by the emulator's own export; REDCap's files derive
            // the unique name from the label.
            let unique = match d.attr("unique_group_name").filter(|u| !u.is_empty()) {
                Some(u) => u.to_owned(),
                None => unique_dag_name(&name),
            };
            def.dags.push(Dag { id: 0, unique, name });
        }
    }
    if let Some(group) = gv.child("redcap:UserRolesGroup") {
        for r in group.children("redcap:UserRoles") {
            def.roles.push(Role {
                id: 0,
                unique: r.a("unique_role_name"),
                label: r.a("role_name"),
                rights: role_rights(r),
            });
        }
    }
    if let Some(group) = gv.child("redcap:SurveysGroup") {
        for s in group.children("redcap:Surveys") {
            def.surveys.push(s.a("form_name"));
        }
    }
    def.survey_settings.invitation_email_field = gv.child_text("redcap:SurveyInvitationEmailField");
    if let Some(group) = gv.child("redcap:SurveysQueueGroup") {
        for q in group.children("redcap:SurveysQueue").filter(|q| flag(&q.a("active"))) {
            def.survey_settings.queue.push((q.a("event_id"), q.a("survey_id")));
        }
    }
    if let Some(group) = gv.child("redcap:ReportsGroup") {
        let mut reports: Vec<(i64, Report)> =
            group.children("redcap:Reports").map(|r| (r.a("report_order").parse().unwrap_or(0), report(r))).collect();
        reports.sort_by_key(|(order, _)| *order);
        def.reports = reports.into_iter().map(|(_, r)| r).collect();
    }

    Ok((LoadedProject { def, ..Default::default() }, checkbox_items))
}

fn note_checkbox_item(map: &mut HashMap<String, (String, String)>, fields: &[Field], var: &str, oid: &str) {
    if let Some(field) = fields.iter().find(|f| f.name == var) {
        for (code, _) in field.choice_list() {
            if checkbox_column(var, &code) == oid {
                map.insert(oid.to_owned(), (var.to_owned(), code));
            }
        }
    }
}

fn field_from_item(item: &Element, var: &str, form: &str, ftype: &str, code_lists: &HashMap<&str, &Element>) -> Field {
    let question = item.child("Question");
    let label = question
        .and_then(|q| q.child("redcap:FormattedTranslatedText").or_else(|| q.child("TranslatedText")))
        .map(|t| t.text.clone())
        .unwrap_or_default();
    let code_list = item.child("CodeListRef").and_then(|r| code_lists.get(r.attr("CodeListOID").unwrap_or("")));
    let field_type = match ftype {
        "textarea" => "notes",
        "select" => "dropdown",
        other => other,
    }
    .to_owned();
    let choices = match field_type.as_str() {
        "checkbox" => code_list
            .and_then(|c| c.attr("redcap:CheckboxChoices"))
            .map(|s| render_choices(&parse_choices(s)))
            .unwrap_or_default(),
        "radio" | "dropdown" => code_list
            .map(|c| {
                let pairs: Vec<(String, String)> = c
                    .children("CodeListItem")
                    .map(|i| {
                        let label = i
                            .child("Decode")
                            .and_then(|d| d.child("TranslatedText"))
                            .map(|t| t.text.clone())
                            .unwrap_or_default();
                        (i.a("CodedValue"), label)
                    })
                    .collect();
                render_choices(&pairs)
            })
            .unwrap_or_default(),
        "calc" => item.a("redcap:Calculation"),
        "slider" => item.a("redcap:SliderLabels"),
        _ => String::new(),
    };
    let validation = match item.attr("redcap:TextValidationType").unwrap_or("") {
        "float" => "number",
        "int" => "integer",
        other => other,
    }
    .to_owned();
    let mut min = String::new();
    let mut max = String::new();
    for rc in item.children("RangeCheck") {
        let v = rc.child_text("CheckValue");
        match rc.attr("Comparator") {
            Some("GE") | Some("GT") => min = v,
            Some("LE") | Some("LT") => max = v,
            _ => {}
        }
    }
    Field {
        name: var.to_owned(),
        form: form.to_owned(),
        section_header: item.a("redcap:SectionHeader"),
        field_type,
        label,
        choices,
        note: item.a("redcap:FieldNote"),
        validation,
        min,
        max,
        identifier: item.attr("redcap:Identifier") == Some("y"),
        branching_logic: item.a("redcap:BranchingLogic"),
        required: item.attr("redcap:RequiredField") == Some("y"),
        alignment: item.a("redcap:CustomAlignment"),
        question_number: item.a("redcap:QuestionNumber"),
        matrix_group: item.a("redcap:MatrixGroupName"),
        matrix_ranking: item.attr("redcap:MatrixRanking") == Some("y"),
        annotation: item.a("redcap:FieldAnnotation"),
    }
}

/// `1, Yes | 2, No`, as Export Metadata writes choices.
pub fn render_choices(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(c, l)| format!("{c}, {l}")).collect::<Vec<_>>().join(" | ")
}

fn role_rights(r: &Element) -> Rights {
    let on = |k: &str| flag(&r.a(k));
    // `data_export_tool` is blank on servers with per-form export rights; then the best
    // per-instrument level stands for the role (`[form,1]` = full, 2 de-identified, 3 remove ids).
    let data_export = match r.attr("data_export_tool").unwrap_or("").trim() {
        "" => {
            let codes: Vec<i64> = r
                .a("data_export_instruments")
                .split('[')
                .filter_map(|p| p.trim_end_matches(']').rsplit_once(',').and_then(|(_, c)| c.trim().parse().ok()))
                .collect();
            [1, 3, 2]
                .into_iter()
                .find(|c| codes.contains(c))
                .and_then(DataExport::from_code)
                .unwrap_or(DataExport::NoAccess)
        }
        code => code.parse().ok().and_then(DataExport::from_code).unwrap_or(DataExport::NoAccess),
    };
    let user_rights = r.a("user_rights").trim().to_owned();
    Rights {
        api_export: on("api_export"),
        api_import: on("api_import"),
        file_repository: on("file_repository"),
        data_export,
        user_rights: matches!(user_rights.as_str(), "1" | "2"),
        user_rights_read_only: user_rights == "2",
        data_access_groups: on("data_access_groups"),
        design: on("design"),
        logging: on("data_logging"),
        reports: on("reports"),
        record_create: on("record_create"),
        record_rename: on("record_rename"),
        record_delete: on("record_delete"),
        other: crate::auth::OTHER_RIGHTS
            .iter()
            .filter_map(|(api, xml)| Some(((*api).to_owned(), r.attr(xml)?.trim().parse::<i64>().ok()?)))
            .filter(|(_, v)| *v != 0)
            .collect(),
        forms: form_codes(&r.a("data_entry")),
        forms_export: form_codes(&r.a("data_export_instruments")),
    }
}

/// `[form_1,2][form_2,1]` (the project XML's per-instrument rights) as (form, code) pairs.
pub fn form_codes(s: &str) -> Vec<(String, i64)> {
    s.split('[')
        .filter_map(|p| {
            let (form, code) = p.trim().trim_end_matches(']').rsplit_once(',')?;
            Some((form.trim().to_owned(), code.trim().parse().ok()?))
        })
        .filter(|(f, _)| !f.is_empty())
        .collect()
}

fn report(r: &Element) -> Report {
    let list =
        |k: &str| -> Vec<String> { r.a(k).split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect() };
    let mut order_by = Vec::new();
    for i in 1..=3 {
        let f = r.a(&format!("orderby_field{i}"));
        if !f.is_empty() {
            order_by.push((f, r.a(&format!("orderby_sort{i}")) != "DESC"));
        }
    }
    Report {
        id: 0,
        title: r.a("title"),
        unique_name: r.a("unique_report_name"),
        fields: list("redcap_reports_fields"),
        order_by,
        advanced_logic: r.a("advanced_logic").trim().to_owned(),
        filter_type: r.a("filter_type"),
        filter_dags: list("redcap_reports_filter_dags"),
        filter_events: list("redcap_reports_filter_events"),
        combine_checkbox_values: flag(&r.a("combine_checkbox_values")),
        output_dags: flag(&r.a("output_dags")),
        output_survey_fields: flag(&r.a("output_survey_fields")),
        remove_line_breaks: flag(&r.a("remove_line_breaks_in_values")),
        user_access: r.a("user_access"),
    }
}

/// One `FormData` of ClinicalData with the row it belongs to.
struct Block<'a> {
    record: String,
    event: String,
    /// Repeating instrument, or empty.
    instrument: String,
    instance: i64,
    form: String,
    form_data: &'a Element,
}

/// Walks SubjectData → (StudyEventData →) FormData, resolving each form's row the way REDCap
/// numbers instances: the event's repeat key for repeating events, the form's for repeating
/// instruments, 1 otherwise.
fn blocks<'a>(clinical: &'a Element, def: &ProjectDef) -> Vec<Block<'a>> {
    let default_event = def.events.first().map(|e| e.unique_name.clone()).unwrap_or_default();
    let form_by_oid: HashMap<String, String> =
        def.forms.iter().map(|f| (format!("Form.{}", f.name), f.name.clone())).collect();
    let is_rep_event = |ev: &str| def.repeating.iter().any(|r| r.event == ev && r.form.is_none());
    let is_rep_form =
        |ev: &str, form: &str| def.repeating.iter().any(|r| r.event == ev && r.form.as_deref() == Some(form));
    let mut out = Vec::new();
    for subject in clinical.children("SubjectData") {
        let record = subject.a("SubjectKey");
        // Classic projects put FormData straight under SubjectData.
        let mut events: Vec<(String, i64, &Element)> = Vec::new();
        for sed in subject.children("StudyEventData") {
            let ev = sed
                .attr("redcap:UniqueEventName")
                .map(str::to_owned)
                .unwrap_or_else(|| sed.a("StudyEventOID").trim_start_matches("Event.").to_owned());
            let key = sed.a("StudyEventRepeatKey").trim().parse().unwrap_or(1);
            events.push((ev, key, sed));
        }
        if events.is_empty() {
            events.push((default_event.clone(), 1, subject));
        }
        for (event, event_key, parent) in events {
            for fd in parent.children("FormData") {
                let form = form_by_oid.get(fd.attr("FormOID").unwrap_or("")).cloned().unwrap_or_default();
                let form_key: i64 = fd.a("FormRepeatKey").trim().parse().unwrap_or(1);
                let (instrument, instance) = if is_rep_event(&event) {
                    (String::new(), event_key)
                } else if is_rep_form(&event, &form) {
                    (form.clone(), form_key)
                } else {
                    (String::new(), 1)
                };
                out.push(Block {
                    record: record.clone(),
                    event: event.clone(),
                    instrument,
                    instance,
                    form,
                    form_data: fd,
                });
            }
        }
    }
    out
}

/// Items of a FormData, in document order.
fn items<'a>(fd: &'a Element) -> impl Iterator<Item = &'a Element> + 'a {
    fd.children("ItemGroupData").flat_map(|g| g.children.iter())
}

fn clinical_part(
    clinical: &Element,
    def: &ProjectDef,
    checkbox_items: &HashMap<String, (String, String)>,
) -> Result<ClinicalPart, OdmError> {
    let fields: HashMap<&str, &Field> = def.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut values = Vec::new();
    let mut files = Vec::new();
    let mut record_dags = Vec::new();
    let mut records = Vec::new();
    let mut known = std::collections::HashSet::new();
    for subject in clinical.children("SubjectData") {
        let record = subject.a("SubjectKey");
        if known.insert(record.clone()) {
            records.push(record);
        }
    }
    let mut with_dag = std::collections::HashSet::new();
    for b in blocks(clinical, def) {
        for item in items(b.form_data) {
            let oid = item.a("ItemOID");
            if item.name == "ItemDataBase64Binary" {
                let bytes =
                    base64_decode(item.text.trim()).ok_or_else(|| OdmError(format!("bad base64 in file of {oid}")))?;
                files.push(DataFile {
                    record: b.record.clone(),
                    event: b.event.clone(),
                    instrument: b.instrument.clone(),
                    instance: b.instance,
                    field: oid,
                    name: item.a("redcap:DocName"),
                    mime: item.a("redcap:MimeType"),
                    bytes,
                });
                continue;
            }
            if item.name != "ItemData" {
                continue;
            }
            let value = item.a("Value");
            if oid == "redcap_data_access_group" {
                if !value.is_empty() && with_dag.insert(b.record.clone()) {
                    record_dags.push((b.record.clone(), value));
                }
                continue;
            }
            if value.is_empty() {
                continue;
            }
            let (field, value) = if let Some((field, code)) = checkbox_items.get(&oid) {
                if value != "1" {
                    continue;
                }
                (field.clone(), code.clone())
            } else if let Some(f) = fields.get(oid.as_str()) {
                // A File Upload value without the file (no base64) cannot become a stored file.
                if f.field_type == "file" {
                    continue;
                }
                (oid, value)
            } else if oid.ends_with("_complete")
                || oid == "redcap_survey_identifier"
                || oid.strip_suffix("_timestamp").is_some_and(|f| def.forms.iter().any(|x| x.name == f))
            {
                // Survey identifiers and timestamps are kept as pseudo-fields for
                // `exportSurveyFields`; REDCap ignores them on import.
                (oid, value)
            } else {
                continue;
            };
            values.push(DataValue {
                record: b.record.clone(),
                event: b.event.clone(),
                instrument: b.instrument.clone(),
                instance: b.instance,
                field,
                value,
            });
        }
    }
    Ok(ClinicalPart { values, files, record_dags, records })
}

/// Import Records with `format=odm`: the ClinicalData of an ODM document as flat import rows
/// (record id, `redcap_event_name`, `redcap_repeat_instrument`/`_instance`, the DAG, and fields
/// with checkbox options as `<field>___<code>`). Files, survey identifiers and timestamps are
/// left out: Import Records does not take them.
pub fn clinical_rows(xml: &str, def: &ProjectDef) -> Result<Vec<Vec<(String, String)>>, OdmError> {
    let odm = parse_tree(xml)?;
    let clinical = odm.child("ClinicalData").ok_or_else(|| OdmError("no <ClinicalData> element".into()))?;
    let rid = def.record_id_field.as_str();
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    let mut index: HashMap<(String, String, String, i64), usize> = HashMap::new();
    for b in blocks(clinical, def) {
        let key = (b.record.clone(), b.event.clone(), b.instrument.clone(), b.instance);
        let i = *index.entry(key).or_insert_with(|| {
            let mut row = vec![(rid.to_owned(), b.record.clone())];
            if def.longitudinal {
                row.push(("redcap_event_name".into(), b.event.clone()));
            }
            let repeats =
                !b.instrument.is_empty() || def.repeating.iter().any(|r| r.event == b.event && r.form.is_none());
            if repeats {
                row.push(("redcap_repeat_instrument".into(), b.instrument.clone()));
                row.push(("redcap_repeat_instance".into(), b.instance.to_string()));
            }
            rows.push(row);
            rows.len() - 1
        });
        for item in items(b.form_data) {
            if item.name != "ItemData" {
                continue;
            }
            let oid = item.a("ItemOID");
            let skip = oid == rid
                || oid == "redcap_survey_identifier"
                || oid.strip_suffix("_timestamp").is_some_and(|f| f == b.form);
            if skip || rows[i].iter().any(|(k, _)| k == &oid) {
                continue;
            }
            rows[i].push((oid, item.a("Value")));
        }
    }
    Ok(rows)
}

/// Standard base64 (whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("dGVzdCB1cGxvYWQK").unwrap(), b"test upload\n");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn rejects_non_odm() {
        assert!(parse("<foo/>").is_err());
        assert!(parse("<ODM><Study>").is_err());
        assert!(parse("not xml <<<").is_err());
    }

    /// What `parse_streamed` hands on, as (record, field, value) per value; `D` marks the
    /// definition. The same from the text in memory and from a file.
    fn streamed(xml: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.xml");
        std::fs::write(&path, xml).unwrap();
        let from_file = streamed_from(XmlSource::File(&path)).expect("parses");
        let from_text = streamed_from(XmlSource::Text(xml)).expect("parses");
        assert_eq!(from_file, from_text, "the same from a file");
        from_text
    }

    fn streamed_from(xml: XmlSource<'_>) -> Result<Vec<String>, OdmError> {
        let mut seen = Vec::new();
        parse_streamed(xml, &mut |piece| {
            match piece {
                Streamed::Definition(p) => seen.push(format!("D {}", p.def.record_id_field)),
                Streamed::Data(part) => {
                    seen.extend(part.values.iter().map(|v| format!("{} {} {}", v.record, v.field, v.value)))
                }
            }
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_document_streams_the_same_whichever_comes_first_definition_or_data() {
        let study = r#"<Study OID="P"><GlobalVariables><StudyName>S</StudyName></GlobalVariables><MetaDataVersion OID="M" Name="M" redcap:RecordIdField="record_id"><FormDef OID="Form.f" Name="f" redcap:FormName="f"><ItemGroupRef ItemGroupOID="f.g"/></FormDef><ItemGroupDef OID="f.g" Name="f"><ItemRef ItemOID="record_id" redcap:Variable="record_id"/><ItemRef ItemOID="age" redcap:Variable="age"/></ItemGroupDef><ItemDef OID="record_id" Name="record_id" DataType="text" redcap:Variable="record_id" redcap:FieldType="text"><Question><TranslatedText>ID</TranslatedText></Question></ItemDef><ItemDef OID="age" Name="age" DataType="text" redcap:Variable="age" redcap:FieldType="text"><Question><TranslatedText>Age</TranslatedText></Question></ItemDef></MetaDataVersion></Study>"#;
        let subject = |r: u32| {
            format!(
                r#"<SubjectData SubjectKey="{r}"><FormData FormOID="Form.f" FormRepeatKey="1"><ItemGroupData ItemGroupOID="f.g" ItemGroupRepeatKey="1"><ItemData ItemOID="record_id" Value="{r}"/><ItemData ItemOID="age" Value="4{r}"/></ItemGroupData></FormData></SubjectData>"#
            )
        };
        let data =
            format!(r#"<ClinicalData StudyOID="P" MetaDataVersionOID="M">{}{}</ClinicalData>"#, subject(1), subject(2));
        let odm = |body: String| {
            format!(
                r#"<?xml version="1.0" encoding="UTF-8" ?><ODM xmlns:redcap="https://projectredcap.org">{body}</ODM>"#
            )
        };
        let expected = ["D record_id", "1 record_id 1", "1 age 41", "2 record_id 2", "2 age 42"];
        // REDCap's order (read once), the data first (read twice), and no data at all.
        assert_eq!(streamed(&odm(format!("{study}{data}"))), expected);
        assert_eq!(streamed(&odm(format!("{data}{study}"))), expected);
        assert_eq!(streamed(&odm(study.to_owned())), ["D record_id"]);
        // The definition is what `parse` reads, values included.
        let whole = parse(&odm(format!("{study}{data}"))).expect("parses");
        assert_eq!(whole.values.len(), 4);
        assert_eq!(whole.records, ["1", "2"]);
        // A document that is not UTF-8 (a Latin-1 label) is refused, not loaded with its text
        // replaced; in a file too (text in memory always is UTF-8).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.xml");
        let mut latin1 = odm(format!("{study}{data}")).into_bytes();
        let at = latin1.windows(3).position(|w| w == b"Age").unwrap();
        latin1[at + 1] = 0xE2;
        std::fs::write(&path, latin1).unwrap();
        let e = streamed_from(XmlSource::File(&path)).unwrap_err();
        assert!(e.0.contains("not UTF-8"), "{e}");
    }
}
