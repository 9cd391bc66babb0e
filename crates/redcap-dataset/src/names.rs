//! The dataset's naming conventions, in one place.
//!
//! Key columns keep REDCap's export names. Sibling columns take the field's name, REDCap's own
//! separator for derived export columns (`___`, as in checkbox options `<field>___<code>`) and a
//! suffix: `<field>___label` (the choice label beside a code) and `<field>___missing` (the
//! missing-data code that stood in the field). REDCap's field names are `[a-z0-9_]`, so only a
//! checkbox option coded `label` or `missing` could take such a name; then the sibling gets one
//! more `_` before the suffix.

/// The event column of longitudinal projects.
pub const EVENT: &str = "redcap_event_name";
/// The repeat-instance column of instruments that repeat (as instruments or in repeating events).
pub const INSTANCE: &str = "redcap_repeat_instance";
/// The Data Access Group column (when the project has DAGs the token can see).
pub const DAG: &str = "redcap_data_access_group";
/// Between a field's name and a sibling column's suffix.
pub const SEPARATOR: &str = "___";
/// Suffix of label columns.
pub const LABEL_SUFFIX: &str = "label";
/// Suffix of missing-data code columns.
pub const MISSING_SUFFIX: &str = "missing";
/// The problems table.
pub const PROBLEMS: &str = "_problems";
/// The data dictionary table.
pub const DICTIONARY: &str = "_dictionary";
/// The manifest.
pub const MANIFEST: &str = "_manifest.json";
