//! Errors of loading and validating a policy set.

use std::fmt;
use std::path::PathBuf;

/// One problem in a policy file, located by file and line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line where the policy (its first annotation) starts.
    pub line: usize,
    /// The policy's `@id`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(id) = &self.policy {
            write!(f, "policy `{id}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy set could not be loaded. A set that fails to load never
/// replaces the running one.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy directory holds no `*.cedar` file (a set that could only
    /// deny is almost certainly a wrong path).
    #[error("{}: no *.cedar policy files", .0.display())]
    Empty(PathBuf),
    /// The schema (the static file, or the actions derived from the known
    /// operations) is not valid.
    #[error("schema {}: {message}", file.display())]
    Schema { file: PathBuf, message: String },
    /// A known operation is malformed, has an unknown class, or its class
    /// contradicts the schema.
    #[error("operation {operation:?}: {message}")]
    Operation { operation: String, message: String },
    /// `[policy]` configuration is inconsistent (the key is named).
    #[error("policy configuration `{key}`: {message}")]
    Config { key: String, message: String },
    /// The policies do not parse, lack or misuse annotations, or fail strict
    /// validation against the schema. Every problem found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
    /// A policy generated from another (an access review's narrowed
    /// permit) could not be made.
    #[error("policy {policy}: {message}")]
    Generated { policy: String, message: String },
}

fn list(problems: &[Problem]) -> String {
    let mut out = format!(
        "{} problem{} in the policy set",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_problem_with_file_and_line() {
        let e = PolicyError::Invalid(vec![
            Problem {
                file: "p/a.cedar".into(),
                line: 3,
                policy: Some("x".into()),
                message: "bad".into(),
            },
            Problem {
                file: "p/b.cedar".into(),
                line: 1,
                policy: None,
                message: "worse".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            "2 problems in the policy set\n  p/a.cedar:3: policy `x`: bad\n  p/b.cedar:1: worse"
        );
    }
}
