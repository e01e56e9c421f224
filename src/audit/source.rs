//! A log's records in order, read from a store or from an export bundle:
//! what the offline reports (access reviews, compliance) read. Reading is
//! not verifying: a report that vouches for the log runs the verifier too.

use std::io::BufRead;
use std::path::PathBuf;

use crate::store::{Location, Reader, StoreError};

/// Where a log's records are.
#[derive(Debug, Clone)]
pub enum Source {
    /// A Warden store: a SQLite file or a PostgreSQL database.
    Store(Location),
    /// An export bundle directory (`records.jsonl`).
    Bundle(PathBuf),
}

/// Why the records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Stopped(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Store(location) => write!(f, "{location}"),
            Source::Bundle(dir) => write!(f, "bundle {}", dir.display()),
        }
    }
}

impl Source {
    /// Calls `each` with every record's bytes, in log order; how many
    /// there were. `each` stops the reading by returning an error.
    pub fn for_each(
        &self,
        mut each: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, SourceError> {
        let mut count = 0u64;
        match self {
            Source::Store(location) => {
                let reader = Reader::open(location.clone())?;
                let mut stopped = None;
                let read = reader.for_each_record(0, |row| {
                    count += 1;
                    each(&row.bytes).map_err(|e| {
                        stopped = Some(e.clone());
                        StoreError::Read(e)
                    })
                });
                if let Some(reason) = stopped {
                    return Err(SourceError::Stopped(reason));
                }
                read?;
            }
            Source::Bundle(dir) => {
                let path = dir.join("records.jsonl");
                let io = |source| SourceError::Io {
                    path: path.clone(),
                    source,
                };
                let mut lines = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).map_err(io)? == 0 {
                        break;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if line.is_empty() {
                        continue;
                    }
                    count += 1;
                    each(&line).map_err(SourceError::Stopped)?;
                }
            }
        }
        Ok(count)
    }

    /// The log's signed checkpoints (notes), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, SourceError> {
        match self {
            Source::Store(location) => Ok(Reader::open(location.clone())?
                .checkpoints()?
                .into_iter()
                .map(|row| row.note)
                .collect()),
            Source::Bundle(dir) => {
                let dir = dir.join("checkpoints");
                let io = |source| SourceError::Io {
                    path: dir.clone(),
                    source,
                };
                let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(io)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                    .collect();
                paths.sort();
                paths
                    .into_iter()
                    .map(|path| {
                        std::fs::read_to_string(&path).map_err(|source| SourceError::Io {
                            path: path.clone(),
                            source,
                        })
                    })
                    .collect()
            }
        }
    }
}
