//! Atomic dataset commits: a pull or sync writes a whole new *generation* of the dataset into
//! `DIR/.redcap/gen-NNNNNN/`, then switches to it by one atomic rename of the `current` pointer.
//!
//! The documented paths stay: `DIR/<table>.<ext>` and `DIR/_manifest.json` are relative
//! symbolic links to `.redcap/current/<file>`, and `.redcap/current` is a relative link to the
//! generation. A reader opening `DIR/demographics.parquet` resolves both links, so every table
//! it opens is of the same generation: the rename of `current` switches all tables at once.
//! The links are relative, so a copied or moved dataset directory still reads.
//!
//! A crash at any point leaves a readable, consistent dataset:
//!
//! * before the switch, `current` names the previous generation, complete; the new one is an
//!   unreferenced folder, but for the links of tables it adds, made before the switch and
//!   pointing straight into it;
//! * the links of tables the new generation no longer has are pointed straight at the previous
//!   generation before the switch and removed after it.
//!
//! So every file the manifest (`DIR/_manifest.json`) lists is there and of the manifest's
//! generation at every step; a table the other generation has may be there too, for a moment.
//!
//! [`recover`] converges from any such state (it runs at the start of every pull and sync):
//! links follow the current generation's manifest, other generations and temporary names are
//! removed. The `current` pointer is the journal: nothing else needs replaying.
//!
//! On platforms without symbolic links (Windows), the generation's files are renamed into
//! `DIR` one by one, the manifest last; a crash there can leave tables of two generations.

use std::path::{Path, PathBuf};

use crate::error::local;
use crate::{Error, Manifest, names};

/// The dataset's private folder.
pub const STATE_DIR: &str = ".redcap";
const CURRENT: &str = "current";
const GEN_PREFIX: &str = "gen-";
const LEGACY: &str = "legacy.json";

/// Counts the steps of a commit so a test can stop it at step `k` as a crash would (nothing
/// cleaned up); `None` never stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashAt(pub Option<usize>);

impl CrashAt {
    pub(crate) fn step(&mut self) -> Result<(), Error> {
        match &mut self.0 {
            Some(0) => Err(Error::Injected),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// A generation being written. Dropping it without [`Generation::commit`] leaves an
/// unreferenced folder that the next [`recover`] removes.
#[derive(Debug)]
pub struct Generation {
    dataset: PathBuf,
    name: String,
    path: PathBuf,
    crash: CrashAt,
}

fn state_dir(dataset: &Path) -> PathBuf {
    dataset.join(STATE_DIR)
}

/// The folder of the dataset's current generation, if it has one (a dataset written before
/// generations existed has its files in `DIR` itself).
pub fn current_generation(dataset: &Path) -> Option<PathBuf> {
    let link = state_dir(dataset).join(CURRENT);
    let target = std::fs::read_link(&link).ok()?;
    let path = state_dir(dataset).join(target);
    path.is_dir().then_some(path)
}

fn generation_number(name: &str) -> Option<u64> {
    name.strip_prefix(GEN_PREFIX)?.parse().ok()
}

fn remove_dir(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(local(path)(e)),
    }
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(local(path)(e)),
    }
}

/// The link target of a dataset file: `.redcap/current/<file>`.
fn link_target(file: &str) -> PathBuf {
    Path::new(STATE_DIR).join(CURRENT).join(file)
}

/// Whether `path` is one of this module's links (a user's own files are never touched).
fn is_our_link(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t.starts_with(STATE_DIR))
}

/// Checks that `dir` can hold a dataset publishing `files`: it is a directory (or missing), and
/// each of `files` in it is missing, one of this module's links, or a file of a dataset written
/// before generations (which its plain `_manifest.json` lists). Anything else there is a user's
/// own file that a commit would replace by a link ([`Error::InTheWay`]).
pub fn check_free(dir: &Path, files: &[String]) -> Result<(), Error> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(local(dir)(e)),
        Ok(m) if !m.is_dir() => return Err(Error::NotADirectory(dir.to_owned())),
        Ok(_) => {}
    }
    let top = dir.join(names::MANIFEST);
    let legacy: Vec<String> = match std::fs::symlink_metadata(&top) {
        Ok(m) if m.is_file() => Manifest::load(dir).map(|old| published(&old)).unwrap_or_default(),
        _ => Vec::new(),
    };
    for file in files {
        let path = dir.join(file);
        if std::fs::symlink_metadata(&path).is_ok() && !is_our_link(&path) && !legacy.contains(file) {
            return Err(Error::InTheWay { path });
        }
    }
    Ok(())
}

/// The files a generation holds for readers: its manifest's tables and the manifest.
fn published(manifest: &Manifest) -> Vec<String> {
    let mut files: Vec<String> = manifest.tables.values().map(|t| t.file.clone()).collect();
    files.push(names::MANIFEST.to_owned());
    files
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(local(path))
}

#[cfg(unix)]
fn replace_with_link(path: &Path, target: &Path) -> Result<(), Error> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.link"));
    remove_file(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp).map_err(local(&tmp))?;
    std::fs::rename(&tmp, path).map_err(local(path))
}

/// Brings the dataset in `dir` to a consistent state after an interrupted commit: the links
/// follow the current generation, every other generation and temporary name is removed.
/// Idempotent; a no-op on a consistent dataset.
pub fn recover(dir: &Path) -> Result<(), Error> {
    let state = state_dir(dir);
    if !state.is_dir() {
        return remove_partials(dir);
    }
    remove_file(&state.join(format!("{CURRENT}.new")))?;
    let current = current_generation(dir);
    // Links first, so none is left pointing into a generation about to be removed.
    match &current {
        Some(generation) => {
            let manifest = Manifest::load(generation)?;
            publish(dir, &manifest, &mut CrashAt::default())?;
            unpublish(dir, &published(&manifest), &mut CrashAt::default())?;
        }
        None => {
            // No switch happened: the links made ahead of it go; a pre-generation dataset stays.
            for file in our_links(dir) {
                remove_file(&dir.join(file))?;
            }
            remove_file(&state.join(LEGACY))?;
        }
    }
    let keep = current.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    for entry in std::fs::read_dir(&state).map_err(local(&state))? {
        let entry = entry.map_err(local(&state))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if generation_number(&name).is_some() && keep.as_deref() != Some(name.as_str()) {
            remove_dir(&entry.path())?;
        }
    }
    remove_partials(dir)
}

/// Removes the temporary names a crashed write left in `dir` (`.NAME.partial`, `.NAME.link`).
fn remove_partials(dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(local(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(local(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.ends_with(".partial") || name.ends_with(".link")) {
            remove_file(&entry.path())?;
        }
    }
    Ok(())
}

/// Makes `DIR/<file>` a link into the current generation for each file it publishes.
#[cfg(unix)]
fn publish(dir: &Path, manifest: &Manifest, crash: &mut CrashAt) -> Result<(), Error> {
    for file in published(manifest) {
        let path = dir.join(&file);
        let target = link_target(&file);
        if std::fs::read_link(&path).ok().as_deref() != Some(target.as_path()) {
            crash.step()?;
            replace_with_link(&path, &target)?;
        }
    }
    Ok(())
}

/// Points `DIR/<file>` straight at generation `name`'s file for each of `files` that
/// `select` picks, so the link holds that generation's content whatever `current` says.
#[cfg(unix)]
fn pin(
    dir: &Path,
    name: &str,
    files: &[String],
    select: impl Fn(&Path) -> bool,
    crash: &mut CrashAt,
) -> Result<(), Error> {
    for file in files {
        let path = dir.join(file);
        if select(&path) {
            crash.step()?;
            replace_with_link(&path, &Path::new(STATE_DIR).join(name).join(file))?;
        }
    }
    Ok(())
}

/// This module's links in `dir`, by file name.
fn our_links(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| is_our_link(&e.path())).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

#[cfg(not(unix))]
fn publish(_dir: &Path, _manifest: &Manifest, _crash: &mut CrashAt) -> Result<(), Error> {
    Ok(())
}

/// Removes this module's links in `DIR` that `keep` does not list, then the files of a dataset
/// written before generations (`.redcap/legacy.json`, noted before the first switch).
fn unpublish(dir: &Path, keep: &[String], crash: &mut CrashAt) -> Result<(), Error> {
    let legacy_list = state_dir(dir).join(LEGACY);
    let legacy: Vec<String> =
        std::fs::read(&legacy_list).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    for file in our_links(dir).into_iter().chain(legacy) {
        let path = dir.join(&file);
        if !keep.contains(&file) && (std::fs::symlink_metadata(&path).is_ok()) {
            crash.step()?;
            remove_file(&path)?;
        }
    }
    remove_file(&legacy_list)
}

/// Notes the files of a dataset written before generations (its manifest is a plain file), so
/// they are removed once the first generation is current.
#[cfg_attr(not(unix), allow(dead_code))]
fn note_legacy(dir: &Path) -> Result<(), Error> {
    let top = dir.join(names::MANIFEST);
    if std::fs::symlink_metadata(&top).is_err() || is_our_link(&top) {
        return Ok(());
    }
    let Ok(old) = Manifest::load(dir) else { return Ok(()) };
    let files: Vec<String> = old.tables.values().map(|t| t.file.clone()).collect();
    let path = state_dir(dir).join(LEGACY);
    let bytes = serde_json::to_vec(&files).map_err(|e| Error::State { path: path.clone(), message: e.to_string() })?;
    crate::write::atomic_write(&path, &bytes)
}

impl Generation {
    /// Starts the next generation of the dataset in `dir` (recovering an interrupted commit
    /// first). `crash` is the test hook of [`CrashAt`].
    pub fn begin(dir: &Path, crash: CrashAt) -> Result<Generation, Error> {
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        recover(dir)?;
        let state = state_dir(dir);
        std::fs::create_dir_all(&state).map_err(local(&state))?;
        let last = current_generation(dir)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .and_then(|n| generation_number(&n))
            .unwrap_or(0);
        let name = format!("{GEN_PREFIX}{:06}", last + 1);
        let path = state.join(&name);
        remove_dir(&path)?;
        std::fs::create_dir_all(&path).map_err(local(&path))?;
        Ok(Generation { dataset: dir.to_owned(), name, path, crash })
    }

    /// The folder the generation's files are written into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A step of writing the generation (the test hook counts it).
    pub fn step(&mut self) -> Result<(), Error> {
        self.crash.step()
    }

    /// Switches the dataset to this generation, whose `_manifest.json` must be written: tables
    /// it no longer has are removed, then `current` is switched, then its new tables are
    /// linked and the previous generation removed.
    pub fn commit(mut self) -> Result<(), Error> {
        let manifest = Manifest::load(&self.path)?;
        let keep = published(&manifest);
        // Before anything is switched: a sync may publish a table the pull did not (a new
        // instrument), at a name a user's file took meanwhile.
        check_free(&self.dataset, &keep)?;
        #[cfg(unix)]
        {
            sync_dir(&self.path)?;
            // The new generation's new tables appear (pointing into it) before the switch, the
            // previous generation's dropped tables stay (pinned to it) until after: every
            // file a manifest lists is there, of that manifest's generation, at every step.
            pin(&self.dataset, &self.name, &keep, |p| std::fs::symlink_metadata(p).is_err(), &mut self.crash)?;
            let previous =
                current_generation(&self.dataset).and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            if let Some(previous) = previous {
                let dropped: Vec<String> = our_links(&self.dataset).into_iter().filter(|f| !keep.contains(f)).collect();
                pin(&self.dataset, &previous, &dropped, |_| true, &mut self.crash)?;
            }
            note_legacy(&self.dataset)?;
            let state = state_dir(&self.dataset);
            let tmp = state.join(format!("{CURRENT}.new"));
            remove_file(&tmp)?;
            std::os::unix::fs::symlink(&self.name, &tmp).map_err(local(&tmp))?;
            self.crash.step()?;
            // The commit point.
            std::fs::rename(&tmp, state.join(CURRENT)).map_err(local(&state))?;
            sync_dir(&state)?;
            self.crash.step()?;
            publish(&self.dataset, &manifest, &mut self.crash)?;
            unpublish(&self.dataset, &keep, &mut self.crash)?;
            self.crash.step()?;
            recover(&self.dataset)
        }
        #[cfg(not(unix))]
        {
            unpublish(&self.dataset, &keep, &mut self.crash)?;
            // `published` lists the manifest last: it says the dataset is complete.
            for file in &keep {
                self.crash.step()?;
                let to = self.dataset.join(file);
                remove_file(&to)?;
                std::fs::rename(self.path.join(file), &to).map_err(local(&to))?;
            }
            remove_dir(&self.path)
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{PullOptions, TableEntry};

    /// Writes a generation whose tables are `tables`, each file holding `tag`, and commits it.
    fn generation(dir: &Path, tables: &[&str], tag: &str, crash: Option<usize>) -> Result<(), Error> {
        let mut g = Generation::begin(dir, CrashAt(crash))?;
        let mut entries = BTreeMap::new();
        for t in tables {
            g.step()?;
            let file = format!("{t}.parquet");
            std::fs::write(g.path().join(&file), tag).unwrap();
            entries.insert((*t).to_owned(), TableEntry { file, rows: 1 });
        }
        let manifest = Manifest {
            manifest_version: 1,
            schema_hash: tag.into(),
            project_id: None,
            project_title: String::new(),
            redcap_version: String::new(),
            pulled_at: String::new(),
            options: PullOptions::default(),
            records: 0,
            tables: entries,
            batches: Vec::new(),
            watermark: None,
            fingerprints: BTreeMap::new(),
        };
        std::fs::write(g.path().join(names::MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        g.commit()
    }

    /// Every dataset file in `dir` (hidden names aside) and its content.
    fn visible(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| {
                let text = std::fs::read_to_string(dir.join(&n)).unwrap_or_else(|e| panic!("{n} unreadable: {e}"));
                (n, text)
            })
            .collect()
    }

    fn tag_of(text: &str) -> String {
        match serde_json::from_str::<Manifest>(text) {
            Ok(m) => m.schema_hash,
            Err(_) => text.to_owned(),
        }
    }

    #[test]
    fn a_commit_switches_every_table_and_drops_tables_no_longer_produced() {
        let dir = tempfile::tempdir().unwrap();
        generation(dir.path(), &["a", "b"], "one", None).unwrap();
        generation(dir.path(), &["b", "c"], "two", None).unwrap();
        let files = visible(dir.path());
        assert_eq!(files.keys().cloned().collect::<Vec<_>>(), ["_manifest.json", "b.parquet", "c.parquet"]);
        assert!(files.values().all(|t| tag_of(t) == "two"), "{files:?}");
        let gens: Vec<_> =
            std::fs::read_dir(dir.path().join(STATE_DIR)).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(gens.len(), 2, "current and one generation: {gens:?}");
    }

    #[test]
    fn a_commit_stopped_at_any_step_leaves_one_generation_and_the_next_run_converges() {
        let mut k = 0;
        loop {
            let dir = tempfile::tempdir().unwrap();
            generation(dir.path(), &["a", "b"], "one", None).unwrap();
            let stopped = generation(dir.path(), &["b", "c"], "two", Some(k));
            // Whatever step it stopped at, every file the manifest lists is there and of the
            // manifest's generation.
            let files = visible(dir.path());
            let manifest: Manifest = serde_json::from_str(&files["_manifest.json"]).unwrap();
            for t in manifest.tables.values() {
                let text = files.get(&t.file).unwrap_or_else(|| panic!("step {k}: {} missing", t.file));
                assert_eq!(text, &manifest.schema_hash, "step {k}: {} of another generation", t.file);
            }
            recover(dir.path()).unwrap();
            let after = visible(dir.path());
            let tag = tag_of(&after["_manifest.json"]);
            let expected: &[&str] = if tag == "one" {
                &["_manifest.json", "a.parquet", "b.parquet"]
            } else {
                &["_manifest.json", "b.parquet", "c.parquet"]
            };
            assert_eq!(after.keys().map(String::as_str).collect::<Vec<_>>(), expected, "step {k} after recovery");
            generation(dir.path(), &["b", "c"], "two", None).unwrap();
            let done = visible(dir.path());
            assert_eq!(
                done.keys().map(String::as_str).collect::<Vec<_>>(),
                ["_manifest.json", "b.parquet", "c.parquet"]
            );
            assert!(done.values().all(|t| tag_of(t) == "two"), "step {k}: {done:?}");
            if stopped.is_ok() {
                break;
            }
            assert!(matches!(stopped, Err(Error::Injected)), "step {k}: {stopped:?}");
            k += 1;
        }
        assert!(k >= 6, "the commit has steps to stop at: {k}");
    }

    #[test]
    fn a_users_file_at_a_published_name_stops_the_commit_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.parquet"), "mine").unwrap();
        let e = generation(dir.path(), &["a", "b"], "one", None).unwrap_err();
        assert!(matches!(&e, Error::InTheWay { path } if path.ends_with("b.parquet")), "{e:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("b.parquet")).unwrap(), "mine");
        recover(dir.path()).unwrap();
        assert_eq!(visible(dir.path()).keys().map(String::as_str).collect::<Vec<_>>(), ["b.parquet"]);
        // Once it is moved away, the same commit goes through.
        std::fs::remove_file(dir.path().join("b.parquet")).unwrap();
        generation(dir.path(), &["a", "b"], "one", None).unwrap();
        assert!(check_free(dir.path(), &["a.parquet".into(), "_manifest.json".into()]).is_ok());
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "mine").unwrap();
        assert!(matches!(check_free(&file, &[]), Err(Error::NotADirectory(p)) if p == file));
        assert!(check_free(&dir.path().join("new"), &["a.parquet".into()]).is_ok(), "a missing directory is free");
    }

    #[test]
    fn a_dataset_written_before_generations_is_taken_over_and_its_leftovers_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"manifest_version":1,"schema_hash":"old","project_id":null,"project_title":"","redcap_version":"","pulled_at":"","options":{"format":"parquet","layout":{"forms":[],"events":[],"labels":false},"records":[],"batch_size":500},"records":0,"tables":{"a":{"file":"a.parquet","rows":1}},"batches":[]}"#;
        std::fs::write(dir.path().join("_manifest.json"), old).unwrap();
        std::fs::write(dir.path().join("a.parquet"), "old").unwrap();
        std::fs::write(dir.path().join(".a.parquet.partial"), "half").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        generation(dir.path(), &["b"], "new", None).unwrap();
        let files = visible(dir.path());
        assert_eq!(files.keys().map(String::as_str).collect::<Vec<_>>(), ["_manifest.json", "b.parquet", "notes.txt"]);
        assert_eq!(files["notes.txt"], "mine", "a user's own file is never touched");
        assert!(!dir.path().join(".a.parquet.partial").exists());
    }
}
