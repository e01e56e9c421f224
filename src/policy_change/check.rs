//! Checking a proposed set before anything is kept of it: written into a
//! temporary directory, loaded and strictly validated exactly as the
//! running set was (the running `[policy]` configuration with only the
//! directory changed, the catalog's operations), then its tests run.

use std::path::{Path, PathBuf};

use super::files::FileSet;
use super::model::Tally;
use crate::policy::{Engine, PolicyConfig, PolicyError, Problem, run_tests};

/// A set that loads, and how its tests went.
#[derive(Debug, Clone)]
pub struct Checked {
    pub hash: String,
    pub policies: usize,
    pub tally: Tally,
    /// One line per failed case: `file: case: what failed`.
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
}

/// Why a set was refused (nothing is kept of it).
#[derive(Debug, Clone)]
pub enum Refused {
    /// A file name a policy directory cannot hold.
    Names(String),
    /// Problems in the policies, each with its file (by name) and line.
    Invalid(Vec<Problem>),
    /// Anything else the load said (schema, configuration, I/O).
    Other(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Names(message) | Refused::Other(message) => f.write_str(message),
            Refused::Invalid(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{} problem{} in the proposed set: {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    lines.join("; ")
                )
            }
        }
    }
}

/// Loads `set` as `running` would load it, with `operations` the
/// catalog's `(azure_op, class)` pairs, and runs its tests. Blocks
/// (parsing, validation and the cases take CPU): call it off the async
/// runtime.
pub fn check(
    set: &FileSet,
    running: &PolicyConfig,
    operations: &[(String, String)],
) -> Result<Checked, Refused> {
    set.check_names().map_err(Refused::Names)?;
    let scratch = tempfile::Builder::new()
        .prefix("warden-proposal-")
        .tempdir()
        .map_err(|e| Refused::Other(format!("a directory to check the set in: {e}")))?;
    let dir = scratch.path();
    set.write_into(dir)
        .map_err(|e| Refused::Other(format!("writing the set to check it: {e}")))?;
    let config = PolicyConfig {
        dir: dir.to_path_buf(),
        ..running.clone()
    };
    let engine = Engine::load(&config, operations).map_err(|e| refused(e, dir))?;
    let report = run_tests(&engine, &dir.join("tests"));
    let failures = report
        .cases
        .iter()
        .filter(|c| !c.passed())
        .map(|c| {
            format!(
                "{}: {}: {}",
                relative(&c.file, dir).display(),
                c.name,
                c.failures.join("; ")
            )
        })
        .collect();
    let summary = engine.summary();
    Ok(Checked {
        hash: summary.hash,
        policies: summary.policies.len(),
        tally: Tally {
            passed: report.passed(),
            failed: report.failed(),
        },
        failures,
        warnings: summary.warnings.iter().map(|w| unrooted(w, dir)).collect(),
    })
}

/// A load error, with the scratch directory taken out of its paths.
fn refused(error: PolicyError, dir: &Path) -> Refused {
    match error {
        PolicyError::Invalid(problems) => Refused::Invalid(
            problems
                .into_iter()
                .map(|p| Problem {
                    file: relative(&p.file, dir),
                    ..p
                })
                .collect(),
        ),
        other => Refused::Other(unrooted(&other.to_string(), dir)),
    }
}

/// `path` relative to `dir` (a file of the set by its name).
fn relative(path: &Path, dir: &Path) -> PathBuf {
    path.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `text` with the scratch directory's path taken out.
fn unrooted(text: &str, dir: &Path) -> String {
    let root = dir.display().to_string();
    text.replace(&format!("{root}/"), "").replace(&root, ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERMIT: &str = "@id(\"reader\")\npermit (principal in AppRole::\"Reader\", action in Action::\"read\", resource);\n";

    fn set(files: &[(&str, &str)], tests: &[(&str, &str)]) -> FileSet {
        FileSet {
            files: files
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
            tests: tests
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_valid_set_is_hashed_and_tested() {
        let case = "[[case]]\nname = \"reader reads\"\nprincipal = { roles = [\"Reader\"] }\n\
                    operation = { azure_op = \"Microsoft.Compute/virtualMachines/read\", class = \"read\", resource_id = \"/subscriptions/s1\" }\n\
                    expect = { effect = \"allow\" }\n\
                    [[case]]\nname = \"wrong on purpose\"\nprincipal = { roles = [\"Reader\"] }\n\
                    operation = { azure_op = \"Microsoft.Compute/virtualMachines/read\", class = \"read\", resource_id = \"/subscriptions/s1\" }\n\
                    expect = { effect = \"deny\" }\n";
        let s = set(&[("roles.cedar", PERMIT)], &[("reader.toml", case)]);
        let checked = check(&s, &PolicyConfig::default(), &[]).unwrap();
        assert_eq!(checked.hash, s.hash());
        assert_eq!(checked.policies, 1);
        assert_eq!(
            checked.tally,
            Tally {
                passed: 1,
                failed: 1
            }
        );
        assert!(
            checked.failures[0].starts_with("tests/reader.toml: wrong on purpose: effect"),
            "{:?}",
            checked.failures
        );
    }

    #[test]
    fn problems_name_the_file_and_line_without_the_scratch_directory() {
        let bad = format!(
            "{PERMIT}\n@id(\"typo\")\npermit (principal, action in Action::\"Microsoft.Nope/things/read\", resource);\n"
        );
        let s = set(&[("roles.cedar", &bad)], &[]);
        let Err(Refused::Invalid(problems)) = check(&s, &PolicyConfig::default(), &[]) else {
            panic!("an unknown action is refused");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, PathBuf::from("roles.cedar"));
        assert_eq!(problems[0].line, 4);
        let Err(Refused::Names(_)) = check(
            &set(&[("../x.cedar", PERMIT)], &[]),
            &PolicyConfig::default(),
            &[],
        ) else {
            panic!("a path is not a file name");
        };
    }
}
