//! What a file upload is: its name, type and where its bytes come from (a path, bytes, or a
//! reader). Core never opens the file: the transport does.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Where an upload's bytes come from. Core never opens the file: the transport does.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadSource {
    /// A file on disk, streamed by the transport.
    Path(PathBuf),
    /// Bytes already in memory.
    Bytes(Bytes),
    /// A reader of known length, read once as the request is sent (uploads are never retried).
    Reader(ReaderSource),
}

impl fmt::Debug for UploadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            UploadSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            UploadSource::Reader(r) => write!(f, "Reader({} bytes)", r.len),
        }
    }
}

/// A one-shot reader for an upload. Clones share it; the first transport to take it reads it.
#[derive(Clone)]
pub struct ReaderSource {
    reader: std::sync::Arc<std::sync::Mutex<Option<Box<dyn std::io::Read + Send>>>>,
    len: u64,
}

impl ReaderSource {
    /// The number of bytes the reader yields (sent as part of Content-Length).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the reader yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the reader, limited to `len` bytes; `None` if it was already taken.
    pub fn take(&self) -> Option<Box<dyn std::io::Read + Send>> {
        let reader = self.reader.lock().ok()?.take()?;
        Some(Box::new(std::io::Read::take(reader, self.len)))
    }
}

impl fmt::Debug for ReaderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReaderSource({} bytes)", self.len)
    }
}

impl PartialEq for ReaderSource {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl Eq for ReaderSource {}

/// A file to upload (multipart part named after its parameter, i.e. `file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The name REDCap will store (the part's `filename`).
    pub file_name: String,
    /// The part's Content-Type.
    pub content_type: String,
    /// The bytes.
    pub source: UploadSource,
}

impl Upload {
    /// An upload of a file on disk, named after the path's last component, typed by extension.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let file_name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "upload".to_owned());
        let content_type = guess_mime(&path);
        Upload { file_name, content_type, source: UploadSource::Path(path) }
    }

    /// An upload of bytes in memory under `file_name`.
    pub fn from_bytes(file_name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let file_name = file_name.into();
        let content_type = guess_mime(Path::new(&file_name));
        Upload { file_name, content_type, source: UploadSource::Bytes(bytes.into()) }
    }

    /// An upload read from `reader`, which must yield exactly `len` bytes, stored as
    /// `file_name`. The reader is consumed by the one request that sends it.
    pub fn from_reader(file_name: impl Into<String>, reader: impl std::io::Read + Send + 'static, len: u64) -> Self {
        let file_name = file_name.into();
        let content_type = guess_mime(Path::new(&file_name));
        Upload {
            file_name,
            content_type,
            source: UploadSource::Reader(ReaderSource {
                reader: std::sync::Arc::new(std::sync::Mutex::new(Some(Box::new(reader)))),
                len,
            }),
        }
    }

    /// Replaces the stored name.
    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }
}

fn guess_mime(path: &Path) -> String {
    mime_guess::from_path(path).first_raw().unwrap_or("application/octet-stream").to_owned()
}
