//! A policy set as files: the `*.cedar` files directly in a policy
//! directory and its `tests/*.toml`; read from a directory, checked by
//! name, hashed as the engine hashes them, and written into a directory
//! file by file (each through a temporary file, fsynced and renamed, then
//! the files the set does not hold removed).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::policy::hash_files;

/// Files a set may hold, policies and tests together.
pub const MAX_FILES: usize = 256;

/// The files of a policy set, by name (no directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSet {
    /// `*.cedar` files: the set the engine loads and hashes.
    pub files: BTreeMap<String, String>,
    /// `tests/*.toml` files: the set's `warden policy test` cases.
    #[serde(default)]
    pub tests: BTreeMap<String, String>,
}

impl FileSet {
    /// The policy-set hash of the `*.cedar` files (the one the engine gives
    /// the same files, see [`hash_files`]).
    pub fn hash(&self) -> String {
        hash_files(
            self.files
                .iter()
                .map(|(name, text)| (name.clone(), text.as_bytes())),
        )
    }

    /// Names only a policy directory could hold: `*.cedar` files and
    /// `*.toml` tests, plain names (no directory, not hidden), at least
    /// one policy file.
    pub fn check_names(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("the set has no *.cedar file".into());
        }
        if self.files.len() + self.tests.len() > MAX_FILES {
            return Err(format!("a set holds at most {MAX_FILES} files"));
        }
        for name in self.files.keys() {
            if !plain_name(name, ".cedar") {
                return Err(format!(
                    "{name:?}: a policy file is a plain name ending in .cedar \
                     (letters, digits, . _ -; not starting with .)"
                ));
            }
        }
        for name in self.tests.keys() {
            if !plain_name(name, ".toml") {
                return Err(format!(
                    "tests/{name:?}: a test file is a plain name ending in .toml \
                     (letters, digits, . _ -; not starting with .)"
                ));
            }
        }
        Ok(())
    }

    /// The set in `dir`: the `*.cedar` files directly in it and the
    /// `*.toml` files directly in `dir/tests` (none when it is missing),
    /// names starting with `.` left out, as the engine reads them.
    pub fn read(dir: &Path) -> std::io::Result<FileSet> {
        let tests_dir = dir.join("tests");
        let tests = if tests_dir.is_dir() {
            read_texts(&tests_dir, "toml")?
        } else {
            BTreeMap::new()
        };
        Ok(FileSet {
            files: read_texts(dir, "cedar")?,
            tests,
        })
    }

    /// Writes the set into `dir` (created if missing): each file through
    /// a temporary file in the same directory, fsynced and renamed over
    /// the old one; then the `*.cedar` files (and `tests/*.toml` files)
    /// the set does not hold are removed and the directories fsynced.
    /// Readers of `dir` never see a file half written; Warden's own
    /// reloads wait until the whole set is written (the caller holds the
    /// load lock).
    pub fn write_into(&self, dir: &Path) -> std::io::Result<()> {
        self.check_names().map_err(std::io::Error::other)?;
        std::fs::create_dir_all(dir)?;
        let tests_dir = dir.join("tests");
        if !self.tests.is_empty() {
            std::fs::create_dir_all(&tests_dir)?;
        }
        for (name, text) in &self.files {
            replace(dir, name, text)?;
        }
        for (name, text) in &self.tests {
            replace(&tests_dir, name, text)?;
        }
        remove_others(dir, "cedar", &self.files)?;
        if tests_dir.is_dir() {
            remove_others(&tests_dir, "toml", &self.tests)?;
            sync_dir(&tests_dir)?;
        }
        sync_dir(dir)
    }
}

/// A plain file name ending in `extension` (with its dot).
fn plain_name(name: &str, extension: &str) -> bool {
    name.len() > extension.len()
        && name.len() <= 128
        && name.ends_with(extension)
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Whether `path` is a file of the set's kind (`extension` without its
/// dot), as the engine picks them.
fn of_kind(path: &Path, extension: &str) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.extension().is_some_and(|e| e == extension) && !name.starts_with('.') && path.is_file()
}

/// The files of `dir` with `extension`, by name, as text.
fn read_texts(dir: &Path, extension: &str) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !of_kind(&path, extension) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = String::from_utf8(std::fs::read(&path)?).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not valid UTF-8", path.display()),
            )
        })?;
        out.insert(name, text);
    }
    Ok(out)
}

/// Writes `dir/name` through a temporary file renamed over it.
fn replace(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Removes the files of `dir` with `extension` that `keep` does not name.
fn remove_others(
    dir: &Path,
    extension: &str,
    keep: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if of_kind(&path, extension) && !keep.contains_key(name) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)], tests: &[(&str, &str)]) -> FileSet {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect()
        };
        FileSet {
            files: map(files),
            tests: map(tests),
        }
    }

    #[test]
    fn names_must_be_plain_files_of_their_kind() {
        assert!(
            set(&[("a.cedar", "")], &[("t.toml", "")])
                .check_names()
                .is_ok()
        );
        for bad in [
            "../a.cedar",
            "a/b.cedar",
            ".a.cedar",
            "a.txt",
            ".cedar",
            "a b.cedar",
        ] {
            let error = set(&[(bad, "")], &[]).check_names().unwrap_err();
            assert!(error.contains(".cedar"), "{bad}: {error}");
        }
        assert!(
            set(&[("a.cedar", "")], &[("x.cedar", "")])
                .check_names()
                .is_err()
        );
        assert!(set(&[], &[("t.toml", "")]).check_names().is_err());
    }

    #[test]
    fn a_written_set_reads_back_whole_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old.cedar"), "old").unwrap();
        std::fs::write(dir.path().join("README.md"), "kept").unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/old.toml"), "old").unwrap();
        let new = set(
            &[("a.cedar", "permit"), ("b.cedar", "forbid")],
            &[("t.toml", "[[case]]")],
        );
        new.write_into(dir.path()).unwrap();
        let read = FileSet::read(dir.path()).unwrap();
        assert_eq!(read, new);
        assert_eq!(read.hash(), new.hash());
        // Other files stay; no temporary file is left behind.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("README.md")).unwrap(),
            "kept"
        );
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_hash_is_the_engines() {
        let s = set(&[("b.cedar", "2"), ("a.cedar", "1")], &[("t.toml", "x")]);
        assert_eq!(
            s.hash(),
            hash_files([
                ("a.cedar".to_owned(), &b"1"[..]),
                ("b.cedar".to_owned(), &b"2"[..])
            ])
        );
    }
}
