//! Users' rights and API tokens.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Data export level (the `data_export` right; wire codes 0 none, 2 de-identified, 3 remove
/// identifiers, 1 full).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataExport {
    /// No Access: data exports fail.
    NoAccess,
    /// De-identified: identifier fields, free text and dates are left out.
    DeIdentified,
    /// Remove all identifier fields.
    RemoveIdentifiers,
    /// Full data set.
    #[default]
    Full,
}

impl DataExport {
    /// The code REDCap uses in user exports and imports.
    pub fn code(self) -> i64 {
        match self {
            DataExport::NoAccess => 0,
            DataExport::Full => 1,
            DataExport::DeIdentified => 2,
            DataExport::RemoveIdentifiers => 3,
        }
    }

    /// From a user-import code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => DataExport::NoAccess,
            1 => DataExport::Full,
            2 => DataExport::DeIdentified,
            3 => DataExport::RemoveIdentifiers,
            _ => return None,
        })
    }
}

/// Data entry rights on one instrument (the `forms` right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormEntry {
    /// No Access: the instrument's data can be neither seen nor changed.
    NoAccess,
    /// Read Only: seen, not changed.
    ReadOnly,
    /// View and edit (with or without editing survey responses, deleting).
    Edit,
}

impl FormEntry {
    /// From either of REDCap's encodings (reference §3.8; redcapAPI issue #469 quoting the API
    /// help): legacy `0` none, `2` read only, `1` and `3` edit; from 15.6 a bit set flagged by
    /// 128, with 1 read and 2 edit (`128` none, `129` read only, `130` edit, +8 edit survey
    /// responses, +16 delete). Any other code grants nothing.
    pub fn from_code(code: i64) -> FormEntry {
        if code & 128 != 0 {
            if code & 2 != 0 {
                FormEntry::Edit
            } else if code & 1 != 0 {
                FormEntry::ReadOnly
            } else {
                FormEntry::NoAccess
            }
        } else {
            match code {
                1 | 3 => FormEntry::Edit,
                2 => FormEntry::ReadOnly,
                _ => FormEntry::NoAccess,
            }
        }
    }

    /// The right's name on REDCap's User Rights page.
    pub fn label(self) -> &'static str {
        match self {
            FormEntry::NoAccess => "No Access",
            FormEntry::ReadOnly => "Read Only",
            FormEntry::Edit => "View & Edit",
        }
    }
}

/// What one user may do in one project. [`Rights::full`] grants everything; [`Rights::none`]
/// nothing. Fields are public so tests can build any combination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rights {
    /// API Export.
    pub api_export: bool,
    /// API Import/Update.
    pub api_import: bool,
    /// File Repository.
    pub file_repository: bool,
    /// Data export level.
    pub data_export: DataExport,
    /// User Rights (manage users and roles).
    pub user_rights: bool,
    /// Data Access Groups (manage DAGs).
    pub data_access_groups: bool,
    /// Project Design and Setup.
    pub design: bool,
    /// Logging.
    pub logging: bool,
    /// Reports and report builder.
    pub reports: bool,
    /// Create records.
    pub record_create: bool,
    /// Rename records.
    pub record_rename: bool,
    /// Delete records.
    pub record_delete: bool,
    /// User Rights is read-only (code 2): users and roles may be exported, not changed.
    pub user_rights_read_only: bool,
    /// The rights the emulator does not act on (`alerts`, `calendar`, `stats_and_charts` …),
    /// by API name, with the code they were given (absent: 0).
    pub other: BTreeMap<String, i64>,
    /// Per-instrument data entry rights as given (legacy 0 none, 2 read only, 1 view and edit,
    /// 3 edit survey responses; from REDCap 15.6 128 none, 129 read only, 130 view and edit, plus
    /// 8 edit survey responses and 16 delete). Instruments not listed: view and edit.
    pub forms: Vec<(String, i64)>,
    /// Per-instrument export rights as given (0 none, 2 de-identified, 3 remove identifiers,
    /// 1 full). Instruments not listed: [`Rights::data_export`].
    pub forms_export: Vec<(String, i64)>,
}

/// The rights the emulator keeps but does not act on: (API name, project XML attribute).
pub const OTHER_RIGHTS: &[(&str, &str)] = &[
    ("alerts", "alerts"),
    ("stats_and_charts", "graphical"),
    ("manage_survey_participants", "participants"),
    ("calendar", "calendar"),
    ("data_import_tool", "data_import_tool"),
    ("data_comparison_tool", "data_comparison_tool"),
    ("email_logging", "email_logging"),
    ("data_quality_create", "data_quality_design"),
    ("data_quality_execute", "data_quality_execute"),
    ("api_modules", "api_modules"),
    ("mobile_app", "mobile_app"),
    ("mobile_app_download_data", "mobile_app_download_data"),
    ("lock_records_all_forms", "lock_record_multiform"),
    ("lock_records", "lock_record"),
    ("lock_records_customization", "lock_record_customize"),
];

impl Default for Rights {
    fn default() -> Self {
        Rights::full()
    }
}

impl Rights {
    /// Every right, full data export; the rights the emulator does not act on are given too
    /// (code 1), as REDCap gives a project's creator every right (PyCap 2.7.0 doctest
    /// redcap.methods.users.Users.export_users: `'design': 1, 'alerts': 1, …`).
    pub fn full() -> Self {
        Rights {
            api_export: true,
            api_import: true,
            file_repository: true,
            data_export: DataExport::Full,
            user_rights: true,
            data_access_groups: true,
            design: true,
            logging: true,
            reports: true,
            record_create: true,
            record_rename: true,
            record_delete: true,
            user_rights_read_only: false,
            other: OTHER_RIGHTS.iter().map(|(k, _)| ((*k).to_owned(), 1)).collect(),
            forms: Vec::new(),
            forms_export: Vec::new(),
        }
    }

    /// No rights at all (data export: no access).
    pub fn none() -> Self {
        Rights {
            api_export: false,
            api_import: false,
            file_repository: false,
            data_export: DataExport::NoAccess,
            user_rights: false,
            data_access_groups: false,
            design: false,
            logging: false,
            reports: false,
            record_create: false,
            record_rename: false,
            record_delete: false,
            user_rights_read_only: false,
            other: BTreeMap::new(),
            forms: Vec::new(),
            forms_export: Vec::new(),
        }
    }

    /// The data entry right on `form`; an instrument not listed: view and edit.
    pub fn form_entry(&self, form: &str) -> FormEntry {
        form_code(&self.forms, form).map_or(FormEntry::Edit, FormEntry::from_code)
    }

    /// The export right on `form`, when one is listed for it.
    pub fn form_export(&self, form: &str) -> Option<DataExport> {
        form_code(&self.forms_export, form).and_then(DataExport::from_code)
    }

    /// The code of a right the emulator does not act on (0 when never given).
    pub fn other(&self, name: &str) -> i64 {
        self.other.get(name).copied().unwrap_or(0)
    }

    /// Manage Survey Participants (Survey Distribution Tools), which the survey methods need.
    pub fn manage_survey_participants(&self) -> bool {
        self.other("manage_survey_participants") != 0
    }

    /// The code exported for User Rights: 0 none, 1 full, 2 read only.
    pub fn user_rights_code(&self) -> i64 {
        match (self.user_rights, self.user_rights_read_only) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        }
    }
}

/// The code given for `form` in a per-instrument rights list.
fn form_code(list: &[(String, i64)], form: &str) -> Option<i64> {
    list.iter().find(|(f, _)| f == form).map(|(_, c)| *c)
}

/// Who a token belongs to.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A project token.
    Project(ProjectUser),
    /// A super token.
    Super {
        /// Its owner.
        username: String,
    },
}

/// A user's membership in a project, resolved from a token.
#[derive(Clone, Debug)]
pub struct ProjectUser {
    pub project_id: i64,
    pub username: String,
    /// Effective rights (the role's when the user has one).
    pub rights: Rights,
    pub dag_id: Option<i64>,
    pub role_id: Option<i64>,
}

/// Makes tokens: REDCap-style upper-case hex, random or from a seed.
#[derive(Debug)]
pub struct TokenGen {
    state: Mutex<u64>,
    seeded: bool,
}

impl TokenGen {
    /// Random tokens.
    pub fn random() -> Self {
        TokenGen { state: Mutex::new(0), seeded: false }
    }

    /// Reproducible tokens from `seed` (tests only: they are guessable).
    pub fn seeded(seed: u64) -> Self {
        TokenGen { state: Mutex::new(seed), seeded: true }
    }

    /// A token of `hex_len` hexadecimal characters.
    pub fn make(&self, hex_len: usize) -> String {
        let mut bytes = vec![0u8; hex_len / 2];
        if self.seeded {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for chunk in bytes.chunks_mut(8) {
                let v = splitmix64(&mut state).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        } else if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness: fall back to time-seeded mixing (still unique per instance).
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if *state == 0 {
                *state = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1);
            }
            for chunk in bytes.chunks_mut(8) {
                let v = splitmix64(&mut state).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let a = TokenGen::seeded(7);
        let b = TokenGen::seeded(7);
        let t = a.make(32);
        assert_eq!(t, b.make(32));
        assert_eq!(t.len(), 32);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a.make(32), t);
        let r = TokenGen::random();
        assert_ne!(r.make(64), r.make(64));
    }

    #[test]
    fn form_entry_codes_in_both_encodings() {
        use FormEntry::*;
        for (code, right) in [(0, NoAccess), (2, ReadOnly), (1, Edit), (3, Edit), (7, NoAccess)] {
            assert_eq!(FormEntry::from_code(code), right, "legacy {code}");
        }
        for (code, right) in [(128, NoAccess), (129, ReadOnly), (130, Edit), (138, Edit), (146, Edit), (154, Edit)] {
            assert_eq!(FormEntry::from_code(code), right, "15.6 code {code}");
        }
        let r = Rights { forms: vec![("a".into(), 129), ("b".into(), 0)], ..Rights::full() };
        assert_eq!((r.form_entry("a"), r.form_entry("b"), r.form_entry("c")), (ReadOnly, NoAccess, Edit));
    }
}
