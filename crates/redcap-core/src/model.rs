//! Typed outputs of methods whose response shape is fixed.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;

use crate::de;

use crate::download::DownloadHead;

/// One entry of a File Repository listing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawEntry")]
#[non_exhaustive]
pub enum FileRepositoryEntry {
    /// A folder.
    Folder(Folder),
    /// A file.
    File(RepositoryFile),
}

/// A File Repository folder.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Folder {
    /// `folder_id`.
    pub folder_id: u64,
    /// Folder name.
    pub name: String,
    /// Unique role name, when the folder is restricted to a role.
    pub role: Option<String>,
    /// Unique DAG name, when the folder is restricted to a DAG.
    pub dag: Option<String>,
}

/// A File Repository file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryFile {
    /// `doc_id`.
    pub doc_id: u64,
    /// File name.
    pub name: String,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default, deserialize_with = "de::opt_u64")]
    folder_id: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    doc_id: Option<u64>,
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "de::blank_as_none")]
    role: Option<String>,
    #[serde(default, deserialize_with = "de::blank_as_none")]
    dag: Option<String>,
}

impl TryFrom<RawEntry> for FileRepositoryEntry {
    type Error = String;
    fn try_from(r: RawEntry) -> Result<Self, String> {
        match (r.folder_id, r.doc_id) {
            (Some(folder_id), None) => {
                Ok(FileRepositoryEntry::Folder(Folder { folder_id, name: r.name, role: r.role, dag: r.dag }))
            }
            (None, Some(doc_id)) => Ok(FileRepositoryEntry::File(RepositoryFile { doc_id, name: r.name })),
            _ => Err(format!("entry `{}` has neither or both of folder_id and doc_id", r.name)),
        }
    }
}

impl FileRepositoryEntry {
    /// The entry's name.
    pub fn name(&self) -> &str {
        match self {
            FileRepositoryEntry::Folder(f) => &f.name,
            FileRepositoryEntry::File(f) => &f.name,
        }
    }
}

/// A REDCap version, `MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// A version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version { major, minor, patch }
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let num = |i: usize| -> Result<u32, String> {
            parts
                .get(i)
                .ok_or_else(|| format!("`{s}` is not MAJOR.MINOR.PATCH"))?
                .parse()
                .map_err(|_| format!("`{s}` is not MAJOR.MINOR.PATCH"))
        };
        if parts.len() != 3 {
            return Err(format!("`{s}` is not MAJOR.MINOR.PATCH"));
        }
        Ok(Version::new(num(0)?, num(1)?, num(2)?))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A new record name paired with the name it had in the imported data (`returnContent=auto_ids`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoId {
    /// The name REDCap assigned.
    pub new: String,
    /// The name in the imported data.
    pub original: String,
}

/// What Import Records returned, per `returnContent` (and `backgroundProcess`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportOutcome {
    /// Number of distinct records imported (not rows).
    Count(u64),
    /// Names of the records imported.
    Ids(Vec<String>),
    /// New names paired with the submitted ones.
    AutoIds(Vec<AutoId>),
    /// Nothing was asked for.
    Nothing,
    /// A background import was accepted (or not).
    Background(bool),
}

/// A buffered file download.
#[derive(Clone, PartialEq, Eq)]
pub struct FileDownload {
    /// What the headers said.
    pub head: DownloadHead,
    /// The bytes.
    pub bytes: Bytes,
}

impl fmt::Debug for FileDownload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDownload")
            .field("head", &self.head)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .finish()
    }
}
