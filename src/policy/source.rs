//! Reading `policies/*.cedar`: files, statements, annotations and the
//! policy-set hash.
//!
//! Each file is split into statements (one policy each, ending with `;`) so
//! that every problem names the file and the line where its policy starts;
//! Cedar's own messages carry no position through its public API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cedar_policy::{Effect, Policy, PolicyId};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::PolicyConfig;
use super::decision::Advice;
use super::error::{PolicyError, Problem};

/// Annotations Warden reads. Others are kept by Cedar but reported as a
/// warning, since a misspelt `@advice` or `@shadow` would silently change
/// what a policy means.
const KNOWN_ANNOTATIONS: [&str; 5] = ["id", "advice", "shadow", "alert", "description"];

/// What Warden knows of one policy besides its Cedar text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    /// `@id`: the policy's id in decisions and the audit log.
    pub id: String,
    pub file: PathBuf,
    /// 1-based line where the policy starts.
    pub line: usize,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// `@advice` (forbids only): what a deny by this policy asks of the
    /// pipeline. A forbid without it advises `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// `@shadow`: evaluated and recorded, never enforced.
    pub shadow: bool,
    /// `@alert("<name>")`: every call the policy is satisfied by raises this
    /// alert (the name defaults to the policy id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The policy files of a directory, parsed and annotated.
pub(crate) struct Sources {
    /// The `*.cedar` files, sorted by name.
    pub files: Vec<PathBuf>,
    /// See [`hash_files`].
    pub hash: String,
    /// Every policy, re-identified by its `@id`, in file order.
    pub policies: Vec<(Policy, PolicyInfo)>,
    pub warnings: Vec<String>,
}

/// Reads and parses every `*.cedar` file directly in `dir` (not recursive;
/// names starting with `.` are skipped, as editors leave such files around).
/// Every problem of every file is collected before failing.
pub(crate) fn read_dir(dir: &Path) -> Result<Sources, PolicyError> {
    let (files, contents) = read_files(dir)?;
    let hash = hash_files(
        files
            .iter()
            .zip(&contents)
            .map(|(path, bytes)| (file_name(path), bytes.as_slice())),
    );

    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut policies = Vec::new();
    for (path, bytes) in files.iter().zip(&contents) {
        match std::str::from_utf8(bytes) {
            Ok(text) => parse_file(path, text, &mut policies, &mut problems, &mut warnings),
            Err(e) => problems.push(Problem {
                file: path.clone(),
                line: line_of(bytes, e.valid_up_to()),
                policy: None,
                message: "not valid UTF-8".into(),
            }),
        }
    }
    check_unique_ids(&policies, &mut problems);
    if problems.is_empty() {
        Ok(Sources {
            files,
            hash,
            policies,
            warnings,
        })
    } else {
        Err(PolicyError::Invalid(problems))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `*.cedar` files directly in `dir`, sorted, and their bytes.
fn read_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Vec<u8>>), PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.extension().is_some_and(|e| e == "cedar")
            && !name.starts_with('.')
            && path.is_file()
        {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(PolicyError::Empty(dir.to_path_buf()));
    }
    let mut contents = Vec::with_capacity(files.len());
    for path in &files {
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        contents.push(bytes);
    }
    Ok((files, contents))
}

/// What a change of the policy set changes: the hash of the `*.cedar`
/// files and of the schema file (when one is configured) as they are now,
/// or the reason they cannot be read. The watcher reloads when it changes.
pub fn fingerprint(config: &PolicyConfig) -> String {
    let policies = match read_files(&config.dir) {
        Ok((files, contents)) => hash_files(
            files
                .iter()
                .zip(&contents)
                .map(|(path, bytes)| (file_name(path), bytes.as_slice())),
        ),
        Err(e) => format!("unreadable: {e}"),
    };
    let schema = match &config.schema {
        None => String::new(),
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => hash_files([(String::from("schema"), bytes.as_slice())]),
            Err(e) => format!("unreadable: {e}"),
        },
    };
    format!("{policies} {schema}")
}

/// The policy-set hash: hex SHA-256 over, for each file in order of its
/// name, `len(name) ‖ name ‖ len(bytes) ‖ bytes` (lengths as 8-byte
/// big-endian integers, names without their directory). Identical files
/// give the identical hash wherever the directory is.
pub fn hash_files<'a>(files: impl IntoIterator<Item = (String, &'a [u8])>) -> String {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, bytes) in files {
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hex::encode(hasher.finalize())
}

/// Parses one file's statements, each into one static policy identified by
/// its `@id`.
fn parse_file(
    path: &Path,
    text: &str,
    policies: &mut Vec<(Policy, PolicyInfo)>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) {
    for statement in statements(text) {
        let problem = |policy: Option<&str>, message: String| Problem {
            file: path.to_path_buf(),
            line: statement.line,
            policy: policy.map(str::to_owned),
            message,
        };
        let policy = match Policy::parse(None, statement.text) {
            Ok(policy) => policy,
            Err(errors) => {
                let message = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                problems.push(problem(None, message));
                continue;
            }
        };
        let id = match policy.annotation("id") {
            Some(id) if valid_id(id) => id.to_owned(),
            Some(id) => {
                problems.push(problem(
                    None,
                    format!("@id({id:?}) must be 1-128 characters of A-Z a-z 0-9 . _ : -"),
                ));
                continue;
            }
            None => {
                problems.push(problem(None, "the policy has no @id annotation".into()));
                continue;
            }
        };
        let before = problems.len();
        let info = match annotations(&policy, &id) {
            Ok((info, unknown)) => {
                for name in unknown {
                    warnings.push(format!(
                        "{}:{}: policy `{id}`: annotation @{name} is not one Warden reads ({})",
                        path.display(),
                        statement.line,
                        KNOWN_ANNOTATIONS.join(", ")
                    ));
                }
                PolicyInfo {
                    file: path.to_path_buf(),
                    line: statement.line,
                    ..info
                }
            }
            Err(message) => {
                problems.push(problem(Some(&id), message));
                continue;
            }
        };
        if problems.len() == before {
            policies.push((policy.new_id(PolicyId::new(&id)), info));
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// Reads Warden's annotations; returns the info (file and line left empty)
/// and the names of annotations Warden does not read.
fn annotations(policy: &Policy, id: &str) -> Result<(PolicyInfo, Vec<String>), String> {
    let effect = policy.effect();
    let advice = match policy.annotation("advice") {
        None => None,
        Some(_) if effect == Effect::Permit => {
            return Err("@advice is only meaningful on forbid policies".into());
        }
        Some(value) => Some(Advice::parse(value).ok_or_else(|| {
            format!("@advice({value:?}) must be \"step_up\", \"require_approval\" or \"deny\"")
        })?),
    };
    let shadow = match policy.annotation("shadow") {
        None | Some("false") => false,
        Some("" | "true") => true,
        Some(value) => {
            return Err(format!(
                "@shadow({value:?}) must be empty, \"true\" or \"false\""
            ));
        }
    };
    let alert = policy.annotation("alert").map(|name| {
        if name.is_empty() {
            id.to_owned()
        } else {
            name.to_owned()
        }
    });
    let unknown = policy
        .annotations()
        .map(|(name, _)| name)
        .filter(|name| !KNOWN_ANNOTATIONS.contains(name))
        .map(str::to_owned)
        .collect();
    let info = PolicyInfo {
        id: id.to_owned(),
        file: PathBuf::new(),
        line: 0,
        effect: match effect {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        },
        advice,
        shadow,
        alert,
        description: policy.annotation("description").map(str::to_owned),
    };
    Ok((info, unknown))
}

fn check_unique_ids(policies: &[(Policy, PolicyInfo)], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, &PolicyInfo> = HashMap::new();
    for (_, info) in policies {
        if let Some(first) = seen.get(info.id.as_str()) {
            problems.push(Problem {
                file: info.file.clone(),
                line: info.line,
                policy: Some(info.id.clone()),
                message: format!(
                    "@id is already used by the policy at {}:{}",
                    first.file.display(),
                    first.line
                ),
            });
        } else {
            seen.insert(&info.id, info);
        }
    }
}

/// One policy's source text within a file.
#[derive(Debug, PartialEq, Eq)]
struct Statement<'a> {
    /// 1-based line of its first character.
    line: usize,
    text: &'a str,
}

/// The statements of Cedar source `text` (see [`statements`]): the line
/// each starts on and its byte range in `text`, in order.
pub(crate) fn statement_spans(text: &str) -> Vec<(usize, std::ops::Range<usize>)> {
    let base = text.as_ptr() as usize;
    statements(text)
        .into_iter()
        .map(|s| {
            let start = s.text.as_ptr() as usize - base;
            (s.line, start..start + s.text.len())
        })
        .collect()
}

/// Splits Cedar source into statements at each `;` outside string literals
/// and `//` comments. Text after the last `;` that is not blank or a comment
/// is returned as a final (unterminated) statement, so that it fails to
/// parse with its line.
fn statements(text: &str) -> Vec<Statement<'_>> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Str,
        StrEscape,
        Comment,
    }
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut state = State::Code;
    let mut line = 1;
    // Start of the current statement: its first byte that is code.
    let mut start: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match state {
            State::Code => match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    state = State::Comment;
                    i += 1;
                }
                b'"' => {
                    start.get_or_insert((i, line));
                    state = State::Str;
                }
                b';' => {
                    let (from, from_line) = start.take().unwrap_or((i, line));
                    out.push(Statement {
                        line: from_line,
                        text: &text[from..=i],
                    });
                }
                b if b.is_ascii_whitespace() => {}
                _ => {
                    start.get_or_insert((i, line));
                }
            },
            State::Str => match b {
                b'\\' => state = State::StrEscape,
                b'"' => state = State::Code,
                _ => {}
            },
            State::StrEscape => state = State::Str,
            State::Comment => {
                if b == b'\n' {
                    state = State::Code;
                }
            }
        }
        if b == b'\n' {
            line += 1;
        }
        i += 1;
    }
    if let Some((from, from_line)) = start {
        out.push(Statement {
            line: from_line,
            text: &text[from..],
        });
    }
    out
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_strings_and_comments() {
        let text = "// a; comment\n@id(\"a;b\")\npermit(principal, action, resource)\n  when { \"x\\\";\" == \"y\" };\n\n  forbid(principal, action, resource); // tail;\n";
        let s = statements(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].line, 2);
        assert!(s[0].text.starts_with("@id(\"a;b\")") && s[0].text.ends_with("};"));
        assert_eq!(s[1].line, 6);
        assert_eq!(s[1].text, "forbid(principal, action, resource);");
    }

    #[test]
    fn unterminated_tail_is_a_statement() {
        let s = statements("permit(principal, action, resource);\n\npermit(principal,\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, 3);
        assert!(statements("  // only a comment\n").is_empty());
    }

    #[test]
    fn hash_is_over_sorted_names_and_bytes() {
        let a = hash_files([
            ("b.cedar".to_owned(), &b"2"[..]),
            ("a.cedar".to_owned(), &b"1"[..]),
        ]);
        let b = hash_files([
            ("a.cedar".to_owned(), &b"1"[..]),
            ("b.cedar".to_owned(), &b"2"[..]),
        ]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        // Moving bytes between name and content changes the hash.
        let c = hash_files([
            ("a.cedar1".to_owned(), &b""[..]),
            ("b.cedar".to_owned(), &b"2"[..]),
        ]);
        assert_ne!(a, c);
        let d = hash_files([
            ("a.cedar".to_owned(), &b"1 "[..]),
            ("b.cedar".to_owned(), &b"2"[..]),
        ]);
        assert_ne!(a, d);
    }

    fn parse(text: &str) -> (Vec<(Policy, PolicyInfo)>, Vec<Problem>, Vec<String>) {
        let (mut policies, mut problems, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
        parse_file(
            Path::new("p.cedar"),
            text,
            &mut policies,
            &mut problems,
            &mut warnings,
        );
        check_unique_ids(&policies, &mut problems);
        (policies, problems, warnings)
    }

    #[test]
    fn policies_are_identified_by_their_id_annotation() {
        let (policies, problems, warnings) = parse(
            "@id(\"reader\")\n@description(\"d\")\npermit(principal, action, resource);\n\
             @id(\"mfa\") @advice(\"step_up\") @alert @shadow\nforbid(principal, action, resource);\n\
             @id(\"x\") @owner(\"team\") permit(principal, action, resource);",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(policies.len(), 3);
        assert_eq!(policies[0].0.id().to_string(), "reader");
        assert_eq!(policies[0].1.description.as_deref(), Some("d"));
        let mfa = &policies[1].1;
        assert_eq!(
            (
                mfa.line,
                mfa.effect,
                mfa.advice,
                mfa.shadow,
                mfa.alert.as_deref()
            ),
            (4, "forbid", Some(Advice::StepUp), true, Some("mfa"))
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("@owner"), "{warnings:?}");
    }

    #[test]
    fn annotation_and_syntax_problems_name_the_line() {
        let (_, problems, _) = parse(
            "permit(principal, action, resource);\n\
             @id(\"a\") @advice(\"step_up\") permit(principal, action, resource);\n\
             @id(\"b\") @advice(\"later\") forbid(principal, action, resource);\n\
             @id(\"c\") @shadow(\"maybe\") forbid(principal, action, resource);\n\
             @id(\"a b\") permit(principal, action, resource);\n\
             @id(\"d\") permit(principal, action resource);\n\
             @id(\"e\") permit(principal == ?principal, action, resource);\n\
             @id(\"f\") permit(principal, action, resource);\n\
             @id(\"f\") forbid(principal, action, resource);\n",
        );
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 9], "{problems:#?}");
        assert!(problems[0].message.contains("no @id"));
        assert!(problems[1].message.contains("only meaningful on forbid"));
        assert!(
            problems[7]
                .message
                .contains("already used by the policy at p.cedar:8")
        );
    }
}
