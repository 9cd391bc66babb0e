//! Typed outputs of methods whose response shape is fixed.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

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
    /// Columns this version does not know (a newer REDCap's), kept as they came; `None` when
    /// there are none (boxed so a listing of many files costs no map per row).
    pub extra: Option<Box<Map<String, Value>>>,
}

/// A File Repository file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositoryFile {
    /// `doc_id`.
    pub doc_id: u64,
    /// File name.
    pub name: String,
    /// Columns this version does not know (a newer REDCap's), kept as they came; `None` when
    /// there are none (boxed so a listing of many files costs no map per row).
    pub extra: Option<Box<Map<String, Value>>>,
}

/// A listing row as it came. Written out rather than derived with `#[serde(flatten)]`, which
/// would buffer every row as a map before reading it (the cost a listing test measures); the
/// unknown columns alone are kept as values.
#[derive(Default)]
struct RawEntry {
    folder_id: Option<u64>,
    doc_id: Option<u64>,
    name: String,
    role: Option<String>,
    dag: Option<String>,
    extra: Option<Box<Map<String, Value>>>,
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OptU64(Option<u64>);
        impl<'de> Deserialize<'de> for OptU64 {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                de::opt_u64(d).map(OptU64)
            }
        }
        struct Blank(Option<String>);
        impl<'de> Deserialize<'de> for Blank {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                de::blank_as_none(d).map(Blank)
            }
        }
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = RawEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a File Repository entry")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
                let mut row = RawEntry::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "folder_id" => row.folder_id = map.next_value::<OptU64>()?.0,
                        "doc_id" => row.doc_id = map.next_value::<OptU64>()?.0,
                        "name" => row.name = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "role" => row.role = map.next_value::<Blank>()?.0,
                        "dag" => row.dag = map.next_value::<Blank>()?.0,
                        _ => {
                            let value = map.next_value::<Value>()?;
                            row.extra.get_or_insert_with(Default::default).insert(key, value);
                        }
                    }
                }
                Ok(row)
            }
        }
        d.deserialize_map(Entry)
    }
}

impl TryFrom<RawEntry> for FileRepositoryEntry {
    type Error = String;
    fn try_from(r: RawEntry) -> Result<Self, String> {
        match (r.folder_id, r.doc_id) {
            (Some(folder_id), None) => Ok(FileRepositoryEntry::Folder(Folder {
                folder_id,
                name: r.name,
                role: r.role,
                dag: r.dag,
                extra: r.extra,
            })),
            (None, Some(doc_id)) => {
                Ok(FileRepositoryEntry::File(RepositoryFile { doc_id, name: r.name, extra: r.extra }))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::DataResponse;
    use crate::types::Format;

    #[test]
    fn listing_rows_keep_unknown_columns_in_every_format() {
        let bodies = [
            (
                Format::Json,
                r#"[{"folder_id":"","doc_id":"7","name":"a.pdf","size":"12"},{"folder_id":3,"doc_id":"","name":"Scans","role":"","dag":"site_a","size":""}]"#,
            ),
            (Format::Csv, "folder_id,doc_id,name,role,dag,size\n,7,a.pdf,,,12\n3,,Scans,,site_a,\n"),
            (
                Format::Xml,
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><files><item><folder_id></folder_id><doc_id>7</doc_id><name>a.pdf</name><size>12</size></item><item><folder_id>3</folder_id><doc_id></doc_id><name>Scans</name><role></role><dag>site_a</dag><size></size></item></files>",
            ),
        ];
        for (format, body) in bodies {
            let rows: Vec<FileRepositoryEntry> =
                DataResponse::new(format, None, Bytes::from_static(body.as_bytes())).rows_as().unwrap();
            let [FileRepositoryEntry::File(file), FileRepositoryEntry::Folder(folder)] = &rows[..] else {
                panic!("{format:?}: {rows:?}");
            };
            assert_eq!((file.doc_id, file.name.as_str()), (7, "a.pdf"), "{format:?}");
            let extra = |e: &Option<Box<Map<String, Value>>>| e.as_deref().cloned().unwrap_or_default();
            assert_eq!(extra(&file.extra).get("size").and_then(Value::as_str), Some("12"), "{format:?}");
            assert_eq!((folder.folder_id, folder.dag.as_deref(), folder.role.as_deref()), (3, Some("site_a"), None));
            assert_eq!(extra(&folder.extra).get("size").and_then(Value::as_str), Some(""), "{format:?}");
            assert_eq!(extra(&folder.extra).len(), 1, "{format:?}");
        }
    }
}
