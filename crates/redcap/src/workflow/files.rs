//! File Repository trees: walking, pulling into a directory, pushing a directory.
//!
//! The API lists one folder level per call (seed RC-API-46 §8), so a tree is walked folder by
//! folder. Local names are REDCap's names made safe as paths; when two entries of one folder
//! would get the same local name (REDCap allows duplicates, and file systems may ignore case),
//! the one with the lowest id keeps it and the others gain ` (doc_id N)` / ` (folder_id N)`
//! before the extension, so every run maps the same entry to the same path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use redcap_core::{FileRepositoryEntry, sanitize_file_name};
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
    tree: RemoteTree,
}

impl TreeWalk {
    /// A walk from `root` (`None`: the top level).
    pub fn new(root: Option<u64>) -> Self {
        TreeWalk {
            pending: VecDeque::from([(root, String::new())]),
            in_flight: 0,
            tree: RemoteTree { root, ..RemoteTree::default() },
        }
    }

    /// The next folder to list and its local path, if any is waiting.
    pub fn next_folder(&mut self) -> Option<(Option<u64>, String)> {
        let next = self.pending.pop_front()?;
        self.in_flight += 1;
        Some(next)
    }

    /// Records the listing of `folder` (at local `path`) and queues its sub-folders.
    pub fn add_listing(&mut self, folder: Option<u64>, path: &str, entries: Vec<FileRepositoryEntry>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for (entry, name) in local_names(&entries) {
            let child = if path.is_empty() { name } else { format!("{path}/{name}") };
            match entry {
                FileRepositoryEntry::Folder(f) => {
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
        let base = sanitize_file_name(e.name()).unwrap_or_else(|| "unnamed".to_owned());
        let mut name = base.clone();
        if taken.contains(&name.to_lowercase()) {
            let tag = match e {
                FileRepositoryEntry::Folder(f) => format!(" (folder_id {})", f.folder_id),
                FileRepositoryEntry::File(f) => format!(" (doc_id {})", f.doc_id),
                _ => String::new(),
            };
            name = match (e, base.rfind('.')) {
                (FileRepositoryEntry::File(_), Some(dot)) if dot > 0 => {
                    format!("{}{tag}{}", &base[..dot], &base[dot..])
                }
                _ => format!("{base}{tag}"),
            };
        }
        taken.insert(name.to_lowercase());
        out.push((e, name));
    }
    out
}

/// One downloaded file in a pull manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Local relative path (`/`-separated).
    pub path: String,
    /// Size when written.
    pub bytes: u64,
}

/// What a pull (doc_id → local file) or a push (local file → doc_id) has done, kept in the local
/// directory so a re-run transfers only what is new.
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

impl Manifest {
    /// File name of the manifest inside the local directory.
    pub const FILE_NAME: &'static str = ".redcap-manifest.json";

    /// Reads the manifest of `dir` (an empty one if there is none).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(dir.join(Self::FILE_NAME)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", Self::FILE_NAME))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest { version: 1, ..Manifest::default() }),
            Err(e) => Err(e),
        }
    }

    /// Writes the manifest into `dir` atomically (temp file, then rename).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer_pretty(&mut tmp, self).map_err(std::io::Error::other)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dir.join(Self::FILE_NAME)).map_err(|e| e.error)?;
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
    /// Files in the manifest that are gone remotely (removed only when asked).
    pub gone: Vec<String>,
}

impl PullPlan {
    /// Plans a pull of `tree` given what the manifest says was downloaded and the local size of a
    /// relative path (`None` if absent). A file is downloaded again when its manifest entry is
    /// missing or the local file is gone or has another size.
    pub fn new(tree: &RemoteTree, manifest: &Manifest, local_size: impl Fn(&str) -> Option<u64>) -> Self {
        let mut plan =
            PullPlan { folders: tree.folders.iter().map(|f| f.path.clone()).collect(), ..Default::default() };
        let remote: BTreeSet<u64> = tree.files.iter().map(|f| f.doc_id).collect();
        for f in &tree.files {
            let done = manifest.pulled.get(&f.doc_id).is_some_and(|m| local_size(&m.path) == Some(m.bytes));
            if done {
                plan.skip.push(manifest.pulled[&f.doc_id].path.clone());
            } else {
                plan.fetch.push(PullItem { doc_id: f.doc_id, path: f.path.clone() });
            }
        }
        plan.gone =
            manifest.pulled.iter().filter(|(id, _)| !remote.contains(id)).map(|(_, m)| m.path.clone()).collect();
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

/// Lists the files and folders under `dir` (skipping the manifest and dot-files), sorted.
pub fn scan_local(dir: &Path) -> std::io::Result<(Vec<String>, Vec<LocalFile>)> {
    fn walk(root: &Path, dir: &Path, folders: &mut Vec<String>, files: &mut Vec<LocalFile>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            let meta = e.metadata()?;
            if meta.is_dir() {
                folders.push(rel);
                walk(root, &path, folders, files)?;
            } else if meta.is_file() {
                files.push(LocalFile { path: rel, bytes: meta.len() });
            }
        }
        Ok(())
    }
    let (mut folders, mut files) = (Vec::new(), Vec::new());
    walk(dir, dir, &mut folders, &mut files)?;
    Ok((folders, files))
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
    let old: BTreeSet<u64> = before
        .iter()
        .filter_map(|e| match e {
            FileRepositoryEntry::File(f) => Some(f.doc_id),
            _ => None,
        })
        .collect();
    let new: Vec<&redcap_core::RepositoryFile> = after
        .iter()
        .filter_map(|e| match e {
            FileRepositoryEntry::File(f) if !old.contains(&f.doc_id) => Some(f),
            _ => None,
        })
        .collect();
    new.iter().filter(|f| f.name == name).map(|f| f.doc_id).max().or(match new.as_slice() {
        [only] => Some(only.doc_id),
        _ => None,
    })
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
        );
        assert!(!walk.is_done());
        let (id, path) = walk.next_folder().unwrap();
        assert_eq!((id, path.as_str()), (Some(2), "Site A"));
        walk.add_listing(Some(2), "Site A", listing(r#"[{"doc_id":12,"name":"notes.txt"}]"#));
        assert!(walk.is_done());
        let tree = walk.finish();
        let files: Vec<(u64, &str)> = tree.files.iter().map(|f| (f.doc_id, f.path.as_str())).collect();
        assert_eq!(files, [(11, ".._x"), (9, "A.pdf"), (12, "Site A/notes.txt"), (10, "a (doc_id 10).pdf")]);
        assert_eq!(tree.folders[0].dag.as_deref(), Some("site_a"));
    }

    fn tree() -> RemoteTree {
        let mut walk = TreeWalk::new(None);
        walk.next_folder();
        walk.add_listing(None, "", listing(r#"[{"folder_id":2,"name":"docs"},{"doc_id":10,"name":"a.pdf"}]"#));
        walk.next_folder();
        walk.add_listing(Some(2), "docs", listing(r#"[{"doc_id":12,"name":"b.txt"}]"#));
        walk.finish()
    }

    #[test]
    fn pull_skips_what_the_manifest_and_disk_agree_on() {
        let mut m = Manifest::default();
        m.pulled.insert(10, ManifestEntry { path: "a.pdf".into(), bytes: 5 });
        m.pulled.insert(99, ManifestEntry { path: "old.txt".into(), bytes: 1 });
        let plan = PullPlan::new(&tree(), &m, |p| (p == "a.pdf").then_some(5));
        assert_eq!(plan.skip, ["a.pdf"]);
        assert_eq!(plan.fetch, [PullItem { doc_id: 12, path: "docs/b.txt".into() }]);
        assert_eq!(plan.gone, ["old.txt"]);
        // A changed or missing local file is fetched again.
        let plan = PullPlan::new(&tree(), &m, |p| (p == "a.pdf").then_some(4));
        assert_eq!(plan.fetch.len(), 2);
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
    fn local_paths_stay_inside() {
        assert_eq!(local_path(Path::new("out"), "a/b.txt"), Some(PathBuf::from("out/a/b.txt")));
        assert_eq!(local_path(Path::new("out"), "../b.txt"), None);
        assert_eq!(local_path(Path::new("out"), "a//b"), None);
    }
}
