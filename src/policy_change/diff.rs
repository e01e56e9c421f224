//! The diff a reviewer reads: every file of the running set against the
//! proposed one (policies by name, tests as `tests/<name>`), unified, with
//! a summary of what was added, removed and changed.

use std::collections::BTreeSet;

use similar::{ChangeTag, TextDiff};

use super::files::FileSet;
use super::model::DiffSummary;

/// A unified diff of `running` against `proposed`, and its summary.
pub fn diff(running: &FileSet, proposed: &FileSet) -> (String, DiffSummary) {
    let mut out = String::new();
    let mut summary = DiffSummary::default();
    let pairs = [
        ("", &running.files, &proposed.files),
        ("tests/", &running.tests, &proposed.tests),
    ];
    for (prefix, old, new) in pairs {
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for name in names {
            let path = format!("{prefix}{name}");
            let (before, after) = (old.get(name), new.get(name));
            match (before, after) {
                (None, Some(_)) => summary.added.push(path.clone()),
                (Some(_), None) => summary.removed.push(path.clone()),
                (Some(a), Some(b)) if a != b => summary.changed.push(path.clone()),
                _ => continue,
            }
            let (before, after) = (
                before.map_or("", String::as_str),
                after.map_or("", String::as_str),
            );
            let lines = TextDiff::from_lines(before, after);
            for change in lines.iter_all_changes() {
                match change.tag() {
                    ChangeTag::Insert => summary.lines_added += 1,
                    ChangeTag::Delete => summary.lines_removed += 1,
                    ChangeTag::Equal => {}
                }
            }
            let old_name = if old.contains_key(name) {
                format!("running/{path}")
            } else {
                "/dev/null".to_owned()
            };
            let new_name = if new.contains_key(name) {
                format!("proposed/{path}")
            } else {
                "/dev/null".to_owned()
            };
            out.push_str(
                &lines
                    .unified_diff()
                    .context_radius(3)
                    .header(&old_name, &new_name)
                    .missing_newline_hint(true)
                    .to_string(),
            );
        }
    }
    (out, summary)
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
    fn files_added_removed_and_changed_are_summed_up() {
        let running = set(
            &[("a.cedar", "one\ntwo\n"), ("gone.cedar", "x\n")],
            &[("t.toml", "same\n")],
        );
        let proposed = set(
            &[("a.cedar", "one\nthree\n"), ("new.cedar", "y\nz\n")],
            &[("t.toml", "same\n"), ("u.toml", "case\n")],
        );
        let (text, summary) = diff(&running, &proposed);
        assert_eq!(summary.added, ["new.cedar", "tests/u.toml"]);
        assert_eq!(summary.removed, ["gone.cedar"]);
        assert_eq!(summary.changed, ["a.cedar"]);
        assert_eq!((summary.lines_added, summary.lines_removed), (4, 2));
        assert!(
            text.contains("--- running/a.cedar\n+++ proposed/a.cedar\n"),
            "{text}"
        );
        assert!(text.contains("-two\n+three\n"), "{text}");
        assert!(
            text.contains("--- /dev/null\n+++ proposed/new.cedar\n"),
            "{text}"
        );
        assert!(
            text.contains("--- running/gone.cedar\n+++ /dev/null\n"),
            "{text}"
        );
        assert!(!text.contains("tests/t.toml"), "{text}");
    }

    #[test]
    fn the_same_set_has_an_empty_diff() {
        let s = set(&[("a.cedar", "one\n")], &[]);
        let (text, summary) = diff(&s, &s);
        assert!(text.is_empty());
        assert_eq!(summary, DiffSummary::default());
    }
}
