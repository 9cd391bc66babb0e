//! A download being written: a temporary file beside its final path that becomes the final file
//! only once it is complete and on disk, so a failed or interrupted download never leaves a
//! partial file where the caller looks for the real one.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Prefix of the temporary file a download is written to before it is renamed into place.
/// A later run may remove a stale one left by an interrupted process (Ctrl-C, kill).
pub const PARTIAL_PREFIX: &str = ".redcap-download-";

/// A temporary file in the final file's directory (same file system, so the final rename is
/// atomic), removed if it is dropped before [`StagedFile::commit`].
#[derive(Debug)]
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
    final_path: PathBuf,
    replaces: bool,
}

impl StagedFile {
    /// A new empty temporary file in `dir`, to become `final_path`. `replaces`: whether the
    /// commit may replace a file already there (otherwise it fails with `AlreadyExists`).
    pub fn create(dir: &Path, final_path: PathBuf, replaces: bool) -> std::io::Result<Self> {
        let tmp = tempfile::Builder::new().prefix(PARTIAL_PREFIX).tempfile_in(dir)?;
        Ok(StagedFile { tmp, final_path, replaces })
    }

    /// The open temporary file, to write to (`&File` is `Write`; an async client clones it
    /// into its runtime's file type).
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Where it goes.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Renames the (complete and synced) file into place. Only a staged file that may replace
    /// a file renames over one; the others fail rather than replace.
    pub fn commit(self) -> std::io::Result<PathBuf> {
        let placed = if self.replaces {
            self.tmp.persist(&self.final_path)
        } else {
            self.tmp.persist_noclobber(&self.final_path)
        };
        placed.map(|_| self.final_path).map_err(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn partials(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(PARTIAL_PREFIX))
            .count()
    }

    #[test]
    fn commits_into_place_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let staged = StagedFile::create(dir.path(), path.clone(), false).unwrap();
        staged.file().write_all(b"hello").unwrap();
        assert!(!path.exists(), "nothing at the final path before the commit");
        assert_eq!(staged.commit().unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");

        let again = StagedFile::create(dir.path(), path.clone(), false).unwrap();
        again.file().write_all(b"other").unwrap();
        assert_eq!(again.commit().unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello", "a file that may not be replaced stays");

        let replace = StagedFile::create(dir.path(), path.clone(), true).unwrap();
        replace.file().write_all(b"new").unwrap();
        replace.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");

        drop(StagedFile::create(dir.path(), dir.path().join("b.txt"), false).unwrap());
        assert_eq!(partials(dir.path()), 0, "a dropped staged file is removed");
        assert!(!dir.path().join("b.txt").exists());
    }
}
