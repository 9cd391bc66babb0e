//! File Repository trees: walking, pulling into a directory, pushing a directory.
//!
//! The API lists one folder level per call (seed RC-API-46 §8), so a tree is walked folder by
//! folder. Local names are REDCap's names made safe as paths; when two entries of one folder
//! would get the same local name (REDCap allows duplicates, and file systems may ignore case),
//! the one with the lowest id keeps it and the others gain ` (doc_id N)` / ` (folder_id N)`
//! before the extension, so every run maps the same entry to the same path. Names in the
//! `.redcap-` namespace (the manifest, its journal, partial downloads) are this library's own,
//! so a remote entry of such a name gets `_` for its leading dot.
//!
//! A pull never replaces a local file it cannot prove it wrote (by the manifest, with the size
//! it wrote) unless asked to overwrite: a remote file whose path is taken by another local
//! file is downloaded beside it, under the same ` (doc_id N)` disambiguation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use redcap_core::{FileRepositoryEntry, disambiguate, sanitize_file_name};
use serde::{Deserialize, Serialize};

/// A folder found by a walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemoteFolder {
    /// `folder_id`.
    pub folder_id: u64,
    /// REDCap's name.
    pub name: String,
    /// Local relative path (`/`-separated) from the walk's root.
    pub path: String,
    /// The parent folder (`None`: the walk's root).
    pub parent: Option<u64>,
    /// Role restriction.
    pub role: Option<String>,
    /// DAG restriction.
    pub dag: Option<String>,
}

/// A file found by a walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemoteFile {
    /// `doc_id`.
    pub doc_id: u64,
    /// REDCap's name.
    pub name: String,
    /// Local relative path (`/`-separated) from the walk's root.
    pub path: String,
    /// The folder it is in (`None`: the walk's root).
    pub folder_id: Option<u64>,
}

/// Everything under one folder (or the whole repository).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemoteTree {
    /// The folder walked (`None`: the top level).
    pub root: Option<u64>,
    /// Folders, in path order.
    pub folders: Vec<RemoteFolder>,
    /// Files, in path order.
    pub files: Vec<RemoteFile>,
}

impl RemoteTree {
    /// The folder at a local relative path.
    pub fn folder_at(&self, path: &str) -> Option<&RemoteFolder> {
        self.folders.iter().find(|f| f.path == path)
    }
}

/// A walk of a folder tree, one listing per folder: ask [`TreeWalk::next_folder`] which folder
/// to list, list it, hand the entries to [`TreeWalk::add_listing`]. Several folders may be
/// listed at once (the async driver does); the walk is done when nothing is pending.
#[derive(Clone, Debug)]
pub struct TreeWalk {
    pending: VecDeque<(Option<u64>, String)>,
    in_flight: usize,
    seen: BTreeSet<Option<u64>>,
    tree: RemoteTree,
}

/// Deepest folder nesting a walk follows; REDCap's own interface nests far less, so a deeper
/// tree is a server inventing folders.
pub const MAX_DEPTH: usize = 64;

impl TreeWalk {
    /// A walk from `root` (`None`: the top level).
    pub fn new(root: Option<u64>) -> Self {
        TreeWalk {
            pending: VecDeque::from([(root, String::new())]),
            in_flight: 0,
            seen: BTreeSet::from([root]),
            tree: RemoteTree { root, ..RemoteTree::default() },
        }
    }

    /// The next folder to list and its local path, if any is waiting.
    pub fn next_folder(&mut self) -> Option<(Option<u64>, String)> {
        let next = self.pending.pop_front()?;
        self.in_flight += 1;
        Some(next)
    }

    /// Records the listing of `folder` (at local `path`) and queues its sub-folders. A folder
    /// met a second time (a folder listing itself, a server ignoring `folder_id`) or a tree
    /// deeper than [`MAX_DEPTH`] ends the walk with an error instead of walking forever.
    pub fn add_listing(
        &mut self,
        folder: Option<u64>,
        path: &str,
        entries: Vec<FileRepositoryEntry>,
    ) -> Result<(), super::WorkflowError> {
        self.in_flight = self.in_flight.saturating_sub(1);
        for (entry, name) in local_names(&entries) {
            let child = if path.is_empty() { name } else { format!("{path}/{name}") };
            match entry {
                FileRepositoryEntry::Folder(f) => {
                    if !self.seen.insert(Some(f.folder_id)) {
                        self.pending.clear();
                        return Err(super::WorkflowError::FolderLoop { folder_id: f.folder_id, path: child });
                    }
                    if child.split('/').count() > MAX_DEPTH {
                        self.pending.clear();
                        return Err(super::WorkflowError::TooDeep { path: child });
                    }
                    self.pending.push_back((Some(f.folder_id), child.clone()));
                    self.tree.folders.push(RemoteFolder {
                        folder_id: f.folder_id,
                        name: f.name.clone(),
                        path: child,
                        parent: folder,
                        role: f.role.clone(),
                        dag: f.dag.clone(),
                    });
                }
                FileRepositoryEntry::File(f) => self.tree.files.push(RemoteFile {
                    doc_id: f.doc_id,
                    name: f.name.clone(),
                    path: child,
                    folder_id: folder,
                }),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether every folder has been listed.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.in_flight == 0
    }

    /// The tree, sorted by path.
    pub fn finish(mut self) -> RemoteTree {
        self.tree.folders.sort_by(|a, b| a.path.cmp(&b.path));
        self.tree.files.sort_by(|a, b| a.path.cmp(&b.path));
        self.tree
    }
}

fn entry_id(e: &FileRepositoryEntry) -> (u8, u64) {
    match e {
        FileRepositoryEntry::Folder(f) => (0, f.folder_id),
        FileRepositoryEntry::File(f) => (1, f.doc_id),
        _ => (2, 0),
    }
}

/// Safe, unique local names for the entries of one folder (see the module docs).
pub fn local_names(entries: &[FileRepositoryEntry]) -> Vec<(&FileRepositoryEntry, String)> {
    let mut sorted: Vec<&FileRepositoryEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| entry_id(e));
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for e in sorted {
        let mut base = sanitize_file_name(e.name()).unwrap_or_else(|| "unnamed".to_owned());
        if is_reserved(&base) {
            base.replace_range(..1, "_");
        }
        let mut name = base.clone();
        if taken.contains(&name.to_lowercase()) {
            name = match e {
                FileRepositoryEntry::Folder(f) => format!("{base} (folder_id {})", f.folder_id),
                FileRepositoryEntry::File(f) => disambiguate(&base, &format!("doc_id {}", f.doc_id)),
                _ => base.clone(),
            };
        }
        taken.insert(name.to_lowercase());
        out.push((e, name));
    }
    out
}

/// Whether a local name is in the `.redcap-` namespace this library keeps for itself (the
/// manifest, its journal, partial downloads).
pub fn is_reserved(name: &str) -> bool {
    name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case(".redcap-"))
}

/// One downloaded file in a pull manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Local relative path (`/`-separated).
    pub path: String,
    /// Size when written.
    pub bytes: u64,
}

/// What a pull (doc_id → local file) or a push (local file → doc_id) has done, so a re-run
/// transfers only what is new. A pull keeps it in its directory; a push keeps it elsewhere
/// (see [`super::PushOptions::manifest`]), never in the directory it uploads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Pull: downloaded files by `doc_id`.
    #[serde(default)]
    pub pulled: BTreeMap<u64, ManifestEntry>,
    /// Push: uploaded local files (relative path) and the `doc_id` each got.
    #[serde(default)]
    pub pushed: BTreeMap<String, PushedEntry>,
}

/// One uploaded file in a push manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedEntry {
    /// The `doc_id` REDCap gave it.
    pub doc_id: u64,
    /// Size when uploaded.
    pub bytes: u64,
}

/// One change to a manifest, as appended to its journal between checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Change {
    Pulled { doc_id: u64, path: String, bytes: u64 },
    Forget { doc_id: u64 },
    Pushed { path: String, doc_id: u64, bytes: u64 },
}

impl Manifest {
    /// File name of the manifest inside a pull's directory.
    pub const FILE_NAME: &'static str = ".redcap-manifest.json";

    /// Reads the manifest of the pull directory `dir` (an empty one if there is none).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        Self::load_file(&dir.join(Self::FILE_NAME))
    }

    /// Reads the manifest at `path` and replays its journal (changes recorded since the last
    /// checkpoint; a torn last line from an interrupted run is ignored).
    pub fn load_file(path: &Path) -> std::io::Result<Self> {
        let mut manifest = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest { version: 1, ..Manifest::default() },
            Err(e) => return Err(e),
        };
        match std::fs::read(journal_path(path)) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n') {
                    if let Ok(change) = serde_json::from_slice::<Change>(line) {
                        manifest.apply(change);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(manifest)
    }

    /// Writes the manifest into the pull directory `dir` atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        self.save_file(&dir.join(Self::FILE_NAME))
    }

    /// Writes the manifest to `path` atomically (buffered into a temporary file, synced,
    /// renamed into place), then removes its journal, whose changes it now holds.
    pub fn save_file(&self, path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new().prefix(".redcap-manifest-").tempfile_in(dir)?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            serde_json::to_writer(&mut w, self).map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut w)?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        match std::fs::remove_file(journal_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Pulled { doc_id, path, bytes } => {
                self.pulled.insert(doc_id, ManifestEntry { path, bytes });
            }
            Change::Forget { doc_id } => {
                self.pulled.remove(&doc_id);
            }
            Change::Pushed { path, doc_id, bytes } => {
                self.pushed.insert(path, PushedEntry { doc_id, bytes });
            }
        }
    }
}

/// The journal beside a manifest: `.redcap-manifest.json` → `.redcap-manifest.journal`.
pub fn journal_path(manifest: &Path) -> PathBuf {
    manifest.with_extension("journal")
}

/// Fewest changes journaled before the manifest is rewritten.
const CHECKPOINT_MIN: usize = 512;

/// A manifest being updated: each change is appended to the journal as one line (one write,
/// so an interrupted run loses nothing it finished), and the manifest itself is rewritten
/// only when the journal holds as many changes as the manifest has entries. Rewrites double
/// in spacing as the manifest grows, so keeping the books costs time linear in the files.
#[derive(Debug)]
pub(crate) struct ManifestStore {
    path: PathBuf,
    manifest: Manifest,
    journal: Option<std::fs::File>,
    pending: usize,
}

impl ManifestStore {
    pub(crate) fn new(path: PathBuf, manifest: Manifest) -> Self {
        ManifestStore { path, manifest, journal: None, pending: 0 }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `change`, checkpointing when the journal is long enough.
    pub(crate) fn record(&mut self, change: Change) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&change).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.manifest.apply(change);
        let journal = match &mut self.journal {
            Some(f) => f,
            None => self
                .journal
                .insert(std::fs::OpenOptions::new().create(true).append(true).open(journal_path(&self.path))?),
        };
        std::io::Write::write_all(journal, &line)?;
        self.pending += 1;
        let entries = self.manifest.pulled.len() + self.manifest.pushed.len();
        if self.pending >= entries.max(CHECKPOINT_MIN) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Rewrites the manifest with every change so far (nothing to do if none).
    pub(crate) fn checkpoint(&mut self) -> std::io::Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.journal = None;
        self.manifest.save_file(&self.path)?;
        self.pending = 0;
        Ok(())
    }
}

/// A file a pull must download.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullItem {
    /// `doc_id`.
    pub doc_id: u64,
    /// Local relative path.
    pub path: String,
    /// A local file at `path` may be replaced (the manifest proves an earlier pull wrote it,
    /// or the pull was asked to overwrite); otherwise the download must not replace one.
    pub replace: bool,
}

/// What a pull will do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullPlan {
    /// Folders to create locally (relative paths, parents first).
    pub folders: Vec<String>,
    /// Files to download.
    pub fetch: Vec<PullItem>,
    /// Files already downloaded (relative paths).
    pub skip: Vec<String>,
    /// Files an earlier pull wrote whose remote file is gone, unchanged locally, and whose path
    /// no current remote file takes (removed only when asked).
    pub gone: Vec<String>,
    /// `doc_id`s in the manifest that are gone remotely (their entries are dropped when
    /// removing).
    pub forget: Vec<u64>,
    /// Remote files that cannot be placed without replacing local files a pull did not write
    /// (their path and the disambiguated one are both taken).
    pub blocked: Vec<String>,
}

impl PullPlan {
    /// Plans a pull of `tree` given what the manifest says was downloaded and the local size of
    /// a relative path (`None` if absent). A file is downloaded again when its manifest entry
    /// is missing or the local file is gone or has another size. It goes to its path when that
    /// is free or provably ours (or `overwrite`), else to its ` (doc_id N)` name.
    pub fn new(
        tree: &RemoteTree,
        manifest: &Manifest,
        local_size: impl Fn(&str) -> Option<u64>,
        overwrite: bool,
    ) -> Self {
        let mut plan =
            PullPlan { folders: tree.folders.iter().map(|f| f.path.clone()).collect(), ..Default::default() };
        let remote: BTreeSet<u64> = tree.files.iter().map(|f| f.doc_id).collect();
        let mut written: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for m in manifest.pulled.values() {
            written.entry(m.path.as_str()).or_default().push(m.bytes);
        }
        let ours = |path: &str, size: u64| written.get(path).is_some_and(|sizes| sizes.contains(&size));
        // Case-folded: two names differing only in case are one file on some file systems.
        let mut taken: BTreeSet<String> = tree.folders.iter().map(|f| f.path.to_lowercase()).collect();
        let mut pending = Vec::new();
        for f in &tree.files {
            match manifest.pulled.get(&f.doc_id) {
                Some(m) if local_size(&m.path) == Some(m.bytes) => {
                    taken.insert(m.path.to_lowercase());
                    plan.skip.push(m.path.clone());
                }
                _ => pending.push(f),
            }
        }
        for f in pending {
            let tag = format!("doc_id {}", f.doc_id);
            let alt = match f.path.rsplit_once('/') {
                Some((parent, name)) => format!("{parent}/{}", disambiguate(name, &tag)),
                None => disambiguate(&f.path, &tag),
            };
            let mut chosen = None;
            for candidate in [f.path.clone(), alt] {
                if taken.contains(&candidate.to_lowercase()) {
                    continue;
                }
                match local_size(&candidate) {
                    None => chosen = Some((candidate, false)),
                    Some(size) if overwrite || ours(&candidate, size) => chosen = Some((candidate, true)),
                    Some(_) => continue,
                }
                break;
            }
            match chosen {
                Some((path, replace)) => {
                    taken.insert(path.to_lowercase());
                    plan.fetch.push(PullItem { doc_id: f.doc_id, path, replace });
                }
                None => plan.blocked.push(f.path.clone()),
            }
        }
        for (id, m) in &manifest.pulled {
            if remote.contains(id) {
                continue;
            }
            plan.forget.push(*id);
            if !taken.contains(&m.path.to_lowercase()) && local_size(&m.path) == Some(m.bytes) {
                plan.gone.push(m.path.clone());
            }
        }
        plan
    }
}

/// A relative `/`-separated path under `root`, refusing anything that would leave it.
pub fn local_path(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for part in relative.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// A local file of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalFile {
    /// Relative path (`/`-separated).
    pub path: String,
    /// Size.
    pub bytes: u64,
}

/// The files and folders under a push's directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalScan {
    /// Folders (relative paths, parents first).
    pub folders: Vec<String>,
    /// Files, symbolic links to files included (under the link's name).
    pub files: Vec<LocalFile>,
    /// Entries that cannot be pushed, and why (a link whose target is missing, such as
    /// git-annex content not fetched; a link to a directory outside the tree or around a loop).
    pub unusable: Vec<(String, String)>,
}

/// Lists the files and folders under `dir` (skipping dot-files), sorted. Symbolic links are
/// followed, as git-annex and DataLad trees are made of them: a link to a file is that file;
/// a link to a directory is walked only when it stays inside `dir` and does not lead back to
/// a directory being walked (so no loop and no escape); anything else is reported as unusable,
/// never silently skipped.
pub fn scan_local(dir: &Path) -> std::io::Result<LocalScan> {
    struct Walk<'a> {
        root: &'a Path,
        ancestors: Vec<PathBuf>,
        scan: LocalScan,
    }
    fn walk(w: &mut Walk<'_>, dir: &Path, prefix: &str) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let link = e.file_type()?.is_symlink();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(err) if link && err.kind() == std::io::ErrorKind::NotFound => {
                    let why = "a symbolic link whose target is missing (git-annex content not fetched? \
                               `git annex get` or `datalad get` it first)";
                    w.scan.unusable.push((rel, why.to_owned()));
                    continue;
                }
                Err(err) => return Err(err),
            };
            if meta.is_dir() {
                let real = std::fs::canonicalize(&path)?;
                if link && (!real.starts_with(w.root) || w.ancestors.contains(&real)) {
                    let why = "a symbolic link to a directory outside the pushed tree or around a loop: not followed";
                    w.scan.unusable.push((rel, why.to_owned()));
                    continue;
                }
                w.scan.folders.push(rel.clone());
                w.ancestors.push(real);
                walk(w, &path, &rel)?;
                w.ancestors.pop();
            } else if meta.is_file() {
                w.scan.files.push(LocalFile { path: rel, bytes: meta.len() });
            }
        }
        Ok(())
    }
    let root = std::fs::canonicalize(dir)?;
    let mut w = Walk { root: &root, ancestors: vec![root.clone()], scan: LocalScan::default() };
    walk(&mut w, dir, "")?;
    Ok(w.scan)
}

/// Where a push of `dir` into `root` on the server at `url` keeps its manifest by default: a
/// file named after the three in the user's state directory (never inside `dir`, which may be
/// read-only, shared or under version control). `None` when there is no home directory.
pub fn default_push_manifest(url: &str, root: Option<u64>, dir: &Path) -> Option<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "redcap")?;
    let base = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir());
    Some(base.join("push").join(push_manifest_name(url, root, dir)))
}

/// The file name of a push's manifest: a stable hash of the server, the folder and the
/// directory's absolute path.
pub fn push_manifest_name(url: &str, root: Option<u64>, dir: &Path) -> String {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // FNV-1a: stable across Rust versions and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{url}\n{}\n{}", root.map_or("top".to_owned(), |r| r.to_string()), abs.display());
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("push-{h:016x}.json")
}

/// What a push will do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushPlan {
    /// Local folders (relative paths, parents first) that have no remote folder of that name.
    pub create: Vec<String>,
    /// Local folders that already exist remotely, with their `folder_id`.
    pub existing: BTreeMap<String, u64>,
    /// Files to upload.
    pub upload: Vec<LocalFile>,
    /// Files already uploaded (by the manifest).
    pub skip: Vec<String>,
}

impl PushPlan {
    /// Plans a push of the local `folders` and `files` into `tree`. A local folder matches the
    /// remote folder with the same name under the matching parent (the lowest `folder_id` if
    /// REDCap holds several). A file is skipped when the manifest records it with the same size
    /// and its `doc_id` is still in the tree, unless `force`.
    pub fn new(tree: &RemoteTree, manifest: &Manifest, folders: &[String], files: &[LocalFile], force: bool) -> Self {
        let mut plan = PushPlan::default();
        for path in folders {
            let (parent_path, name) = match path.rsplit_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, path.as_str()),
            };
            let parent_id = match parent_path {
                None => Some(tree.root),
                Some(p) => plan.existing.get(p).map(|id| Some(*id)),
            };
            let found = parent_id.and_then(|parent| {
                tree.folders.iter().filter(|f| f.parent == parent && f.name == name).map(|f| f.folder_id).min()
            });
            match found {
                Some(id) => {
                    plan.existing.insert(path.clone(), id);
                }
                None => plan.create.push(path.clone()),
            }
        }
        let remote_docs: BTreeSet<u64> = tree.files.iter().map(|f| f.doc_id).collect();
        for f in files {
            let done =
                manifest.pushed.get(&f.path).is_some_and(|m| m.bytes == f.bytes && remote_docs.contains(&m.doc_id));
            if done && !force {
                plan.skip.push(f.path.clone());
            } else {
                plan.upload.push(f.clone());
            }
        }
        plan
    }
}

/// Finds the `doc_id` an upload got. REDCap's import answers nothing, so the folder is listed
/// before and after: the new file is the entry named `name` that was not there before. If the
/// same name already existed, that old entry stays and the new one is told apart by its id; if
/// someone else uploaded a file of the same name meanwhile, the highest (newest) `doc_id` wins.
/// Should the server have stored the file under another name, a single new file in the folder
/// is taken as the upload (otherwise a re-run would upload a duplicate).
pub fn resolve_doc_id(before: &[FileRepositoryEntry], after: &[FileRepositoryEntry], name: &str) -> Option<u64> {
    resolve_doc_ids(before, after, &[name])[0]
}

/// [`resolve_doc_id`] for several uploads into one folder between the same two listings (a
/// push uploads several files at once): each name takes the newest new entry of that name no
/// other upload took; should exactly one upload be left without one, and exactly one new entry
/// be left unclaimed, that entry is it. Any other leftover stays unresolved, never guessed.
pub fn resolve_doc_ids(
    before: &[FileRepositoryEntry],
    after: &[FileRepositoryEntry],
    names: &[&str],
) -> Vec<Option<u64>> {
    resolve_with_leftovers(before, after, names).0
}

/// [`resolve_doc_ids`], and how many new entries no upload took (files nobody can account for).
pub(crate) fn resolve_with_leftovers(
    before: &[FileRepositoryEntry],
    after: &[FileRepositoryEntry],
    names: &[&str],
) -> (Vec<Option<u64>>, usize) {
    let old: BTreeSet<u64> = before
        .iter()
        .filter_map(|e| match e {
            FileRepositoryEntry::File(f) => Some(f.doc_id),
            _ => None,
        })
        .collect();
    let mut new: Vec<&redcap_core::RepositoryFile> = after
        .iter()
        .filter_map(|e| match e {
            FileRepositoryEntry::File(f) if !old.contains(&f.doc_id) => Some(f),
            _ => None,
        })
        .collect();
    // Newest first, so each name takes the highest doc_id of its name.
    new.sort_by_key(|f| std::cmp::Reverse(f.doc_id));
    let mut claimed = vec![false; new.len()];
    let mut found: Vec<Option<u64>> = names
        .iter()
        .map(|name| {
            let i = new.iter().enumerate().position(|(i, f)| !claimed[i] && f.name == *name)?;
            claimed[i] = true;
            Some(new[i].doc_id)
        })
        .collect();
    let unresolved: Vec<usize> = (0..names.len()).filter(|i| found[*i].is_none()).collect();
    let unclaimed: Vec<usize> = (0..new.len()).filter(|i| !claimed[*i]).collect();
    if let ([u], [c]) = (unresolved.as_slice(), unclaimed.as_slice()) {
        found[*u] = Some(new[*c].doc_id);
        return (found, 0);
    }
    (found, unclaimed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(json: &str) -> Vec<FileRepositoryEntry> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn walk_builds_paths_and_disambiguates() {
        let mut walk = TreeWalk::new(None);
        let (id, path) = walk.next_folder().unwrap();
        assert_eq!((id, path.as_str()), (None, ""));
        walk.add_listing(
            None,
            "",
            listing(r#"[{"folder_id":2,"name":"Site A","dag":"site_a"},{"doc_id":10,"name":"a.pdf"},{"doc_id":9,"name":"A.pdf"},{"doc_id":11,"name":"../x"}]"#),
        )
        .unwrap();
        assert!(!walk.is_done());
        let (id, path) = walk.next_folder().unwrap();
        assert_eq!((id, path.as_str()), (Some(2), "Site A"));
        walk.add_listing(Some(2), "Site A", listing(r#"[{"doc_id":12,"name":"notes.txt"}]"#)).unwrap();
        assert!(walk.is_done());
        let tree = walk.finish();
        let files: Vec<(u64, &str)> = tree.files.iter().map(|f| (f.doc_id, f.path.as_str())).collect();
        assert_eq!(files, [(11, ".._x"), (9, "A.pdf"), (12, "Site A/notes.txt"), (10, "a (doc_id 10).pdf")]);
        assert_eq!(tree.folders[0].dag.as_deref(), Some("site_a"));
    }

    fn tree() -> RemoteTree {
        let mut walk = TreeWalk::new(None);
        walk.next_folder();
        walk.add_listing(None, "", listing(r#"[{"folder_id":2,"name":"docs"},{"doc_id":10,"name":"a.pdf"}]"#)).unwrap();
        walk.next_folder();
        walk.add_listing(Some(2), "docs", listing(r#"[{"doc_id":12,"name":"b.txt"}]"#)).unwrap();
        walk.finish()
    }

    #[test]
    fn pull_skips_what_the_manifest_and_disk_agree_on() {
        let mut m = Manifest::default();
        m.pulled.insert(10, ManifestEntry { path: "a.pdf".into(), bytes: 5 });
        m.pulled.insert(99, ManifestEntry { path: "old.txt".into(), bytes: 1 });
        let plan = PullPlan::new(
            &tree(),
            &m,
            |p| (p == "a.pdf" || p == "old.txt").then_some(5 - (p == "old.txt") as u64 * 4),
            false,
        );
        assert_eq!(plan.skip, ["a.pdf"]);
        assert_eq!(plan.fetch, [PullItem { doc_id: 12, path: "docs/b.txt".into(), replace: false }]);
        assert_eq!((plan.gone, plan.forget), (vec!["old.txt".to_owned()], vec![99]));
        // A missing local file is fetched again to its path; a changed one is not ours any more
        // and stays, the remote file going beside it.
        let plan = PullPlan::new(&tree(), &m, |_| None, false);
        assert_eq!(plan.fetch[0], PullItem { doc_id: 10, path: "a.pdf".into(), replace: false });
        assert!(plan.gone.is_empty(), "a file no longer there is not removed");
        let plan = PullPlan::new(&tree(), &m, |p| (p == "a.pdf").then_some(4), false);
        assert_eq!(plan.fetch[0], PullItem { doc_id: 10, path: "a (doc_id 10).pdf".into(), replace: false });
        let plan = PullPlan::new(&tree(), &m, |p| (p == "a.pdf").then_some(4), true);
        assert_eq!(plan.fetch[0], PullItem { doc_id: 10, path: "a.pdf".into(), replace: true });
    }

    #[test]
    fn a_replaced_file_takes_its_old_path_and_is_never_removed() {
        // doc 10 was pulled to a.pdf; it was deleted and uploaded again as doc 20.
        let mut m = Manifest::default();
        m.pulled.insert(10, ManifestEntry { path: "a.pdf".into(), bytes: 5 });
        let mut walk = TreeWalk::new(None);
        walk.next_folder();
        walk.add_listing(None, "", listing(r#"[{"doc_id":20,"name":"a.pdf"}]"#)).unwrap();
        let plan = PullPlan::new(&walk.finish(), &m, |p| (p == "a.pdf").then_some(5), false);
        assert_eq!(plan.fetch, [PullItem { doc_id: 20, path: "a.pdf".into(), replace: true }]);
        assert!(plan.gone.is_empty(), "{plan:?}");
        assert_eq!(plan.forget, [10]);
    }

    #[test]
    fn a_local_file_not_ours_is_never_replaced() {
        let plan = PullPlan::new(&tree(), &Manifest::default(), |p| (p == "a.pdf").then_some(1), false);
        assert_eq!(plan.fetch[0], PullItem { doc_id: 10, path: "a (doc_id 10).pdf".into(), replace: false });
        let both = |p: &str| (p == "a.pdf" || p == "a (doc_id 10).pdf").then_some(1);
        let plan = PullPlan::new(&tree(), &Manifest::default(), both, false);
        assert_eq!(plan.blocked, ["a.pdf"]);
        assert!(plan.fetch.iter().all(|f| f.doc_id != 10));
    }

    #[test]
    fn a_walk_that_loops_or_dives_forever_ends() {
        // A folder that lists itself.
        let mut walk = TreeWalk::new(None);
        walk.next_folder();
        walk.add_listing(None, "", listing(r#"[{"folder_id":2,"name":"a"}]"#)).unwrap();
        let (id, path) = walk.next_folder().unwrap();
        let err = walk.add_listing(id, &path, listing(r#"[{"folder_id":2,"name":"a"}]"#)).unwrap_err();
        assert!(matches!(err, crate::workflow::WorkflowError::FolderLoop { folder_id: 2, .. }), "{err}");
        assert!(walk.next_folder().is_none());
        // A server inventing a new folder at every level.
        let mut walk = TreeWalk::new(None);
        let mut n = 0;
        let err = loop {
            let (id, path) = walk.next_folder().unwrap();
            n += 1;
            let next = listing(&format!(r#"[{{"folder_id":{n},"name":"d"}}]"#));
            if let Err(e) = walk.add_listing(id, &path, next) {
                break e;
            }
        };
        assert!(matches!(err, crate::workflow::WorkflowError::TooDeep { .. }), "{err}");
        assert_eq!(n, MAX_DEPTH + 1, "the root and one listing per level");
    }

    #[test]
    fn our_own_names_are_never_given_to_remote_entries() {
        let entries = listing(
            r#"[{"folder_id":3,"name":".redcap-manifest.json"},{"doc_id":4,"name":".REDCAP-manifest.json"},{"doc_id":5,"name":".redcap-download-x"},{"doc_id":6,"name":".bashrc"}]"#,
        );
        let names: Vec<String> = local_names(&entries).into_iter().map(|(_, n)| n).collect();
        assert_eq!(
            names,
            ["_redcap-manifest.json", "_REDCAP-manifest (doc_id 4).json", "_redcap-download-x", ".bashrc"]
        );
    }

    #[test]
    fn the_manifest_journal_is_replayed_and_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Manifest::FILE_NAME);
        let mut store = ManifestStore::new(path.clone(), Manifest::default());
        for i in 0..3 {
            store.record(Change::Pulled { doc_id: i, path: format!("f{i}"), bytes: i }).unwrap();
        }
        store.record(Change::Forget { doc_id: 1 }).unwrap();
        // Interrupted here: no checkpoint, but the journal holds every change.
        assert!(!path.exists() && journal_path(&path).exists());
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"pulled\":{\"doc"))
            .unwrap();
        let loaded = Manifest::load(dir.path()).unwrap();
        assert_eq!(loaded.pulled.keys().copied().collect::<Vec<_>>(), [0, 2], "a torn last line is ignored");
        let mut store = ManifestStore::new(path.clone(), loaded);
        store.record(Change::Pulled { doc_id: 7, path: "g".into(), bytes: 1 }).unwrap();
        store.checkpoint().unwrap();
        assert!(path.exists() && !journal_path(&path).exists());
        assert_eq!(Manifest::load(dir.path()).unwrap().pulled.len(), 3);
    }

    #[test]
    fn checkpoints_are_spaced_so_the_books_stay_linear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Manifest::FILE_NAME);
        let mut store = ManifestStore::new(path.clone(), Manifest::default());
        let mut rewrites = 0;
        let mut last = None;
        for i in 0..5000u64 {
            store.record(Change::Pulled { doc_id: i, path: format!("f{i}"), bytes: 1 }).unwrap();
            let modified = std::fs::metadata(&path).ok().map(|m| m.len());
            if modified != last {
                rewrites += 1;
                last = modified;
            }
        }
        // 512, 1024, 2048, 4096: doubling, not one rewrite per file.
        assert!(rewrites <= 5, "{rewrites} rewrites");
    }

    #[test]
    fn push_matches_folders_and_skips_by_manifest() {
        let mut m = Manifest::default();
        m.pushed.insert("docs/b.txt".into(), PushedEntry { doc_id: 12, bytes: 3 });
        let files =
            [LocalFile { path: "docs/b.txt".into(), bytes: 3 }, LocalFile { path: "new/c.txt".into(), bytes: 1 }];
        let plan = PushPlan::new(&tree(), &m, &["docs".into(), "new".into(), "new/deep".into()], &files, false);
        assert_eq!(plan.existing.get("docs"), Some(&2));
        assert_eq!(plan.create, ["new", "new/deep"]);
        assert_eq!(plan.skip, ["docs/b.txt"]);
        assert_eq!(plan.upload.len(), 1);
        assert_eq!(PushPlan::new(&tree(), &m, &[], &files, true).upload.len(), 2);
    }

    #[test]
    fn doc_id_of_an_upload_whose_name_already_existed() {
        let before = listing(r#"[{"doc_id":10,"name":"a.pdf"}]"#);
        let after =
            listing(r#"[{"doc_id":10,"name":"a.pdf"},{"doc_id":15,"name":"a.pdf"},{"doc_id":14,"name":"z.pdf"}]"#);
        assert_eq!(resolve_doc_id(&before, &after, "a.pdf"), Some(15));
        assert_eq!(resolve_doc_id(&after, &after, "a.pdf"), None);
        // Stored under another name: the one new file is it.
        let renamed = listing(r#"[{"doc_id":10,"name":"a.pdf"},{"doc_id":16,"name":"a_1.pdf"}]"#);
        assert_eq!(resolve_doc_id(&before, &renamed, "a.pdf"), Some(16));
    }

    #[test]
    fn doc_ids_of_uploads_made_together() {
        let before = listing(r#"[{"doc_id":10,"name":"a.pdf"}]"#);
        let after = listing(
            r#"[{"doc_id":10,"name":"a.pdf"},{"doc_id":21,"name":"b.txt"},{"doc_id":20,"name":"a.pdf"},{"doc_id":22,"name":"c_1.txt"}]"#,
        );
        // Each by its name; the one stored under another name is the one new entry left.
        assert_eq!(resolve_doc_ids(&before, &after, &["a.pdf", "b.txt", "c.txt"]), [Some(20), Some(21), Some(22)]);
        // Two uploads without an entry of their name and two entries left: neither is guessed.
        let after = listing(r#"[{"doc_id":21,"name":"x_1"},{"doc_id":22,"name":"y_1"},{"doc_id":23,"name":"z"}]"#);
        assert_eq!(resolve_doc_ids(&before, &after, &["x", "y", "z"]), [None, None, Some(23)]);
        // An upload that did not arrive takes nothing from the others.
        let after = listing(r#"[{"doc_id":10,"name":"a.pdf"},{"doc_id":21,"name":"b.txt"}]"#);
        assert_eq!(resolve_doc_ids(&before, &after, &["b.txt", "lost.txt"]), [Some(21), None]);
    }

    #[test]
    fn local_paths_stay_inside() {
        assert_eq!(local_path(Path::new("out"), "a/b.txt"), Some(PathBuf::from("out/a/b.txt")));
        assert_eq!(local_path(Path::new("out"), "../b.txt"), None);
        assert_eq!(local_path(Path::new("out"), "a//b"), None);
    }
}
