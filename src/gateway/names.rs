//! How names from several upstreams share one client-facing namespace.
//!
//! With one upstream nothing is renamed: the gateway is transparent. With
//! several, each upstream's items are prefixed with its configured name:
//!
//! | item            | at the upstream     | seen by the client            |
//! |-----------------|---------------------|-------------------------------|
//! | tool, prompt    | `vm_list`           | `azure__vm_list`              |
//! | resource URI    | `file:///x`         | `azure+file:///x`             |
//! | URI template    | `file:///{path}`    | `azure+file:///{path}`        |
//! | list cursor     | `abc`               | `w1.<upstream index>.abc`     |
//!
//! Upstream names are `[a-z][a-z0-9-]*` without `--` (see `config`), so `__`
//! can never be part of one and `name+scheme:` is still a valid URI.

use rmcp::ErrorData as McpError;

/// The namespace of one session: the ordered upstream names.
#[derive(Debug, Clone)]
pub struct Names {
    upstreams: Vec<String>,
}

const TOOL_SEPARATOR: &str = "__";
const URI_SEPARATOR: char = '+';
const CURSOR_PREFIX: &str = "w1.";

impl Names {
    pub fn new(upstreams: Vec<String>) -> Self {
        Self { upstreams }
    }

    /// True when names carry an upstream prefix (more than one upstream).
    pub fn namespaced(&self) -> bool {
        self.upstreams.len() > 1
    }

    pub fn upstream(&self, index: usize) -> &str {
        &self.upstreams[index]
    }

    pub fn index_of(&self, upstream: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u == upstream)
    }

    /// Tool or prompt name as the client sees it.
    pub fn outward(&self, upstream: usize, name: &str) -> String {
        if self.namespaced() {
            format!("{}{TOOL_SEPARATOR}{name}", self.upstreams[upstream])
        } else {
            name.to_owned()
        }
    }

    /// The upstream and its own name for a client-facing tool or prompt name.
    pub fn route<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        if !self.namespaced() {
            return Some((0, name));
        }
        let (upstream, inner) = name.split_once(TOOL_SEPARATOR)?;
        Some((self.index_of(upstream)?, inner))
    }

    /// Resource URI (or URI template) as the client sees it.
    pub fn outward_uri(&self, upstream: usize, uri: &str) -> String {
        if self.namespaced() {
            format!("{}{URI_SEPARATOR}{uri}", self.upstreams[upstream])
        } else {
            uri.to_owned()
        }
    }

    /// The upstream and its own URI for a client-facing resource URI.
    pub fn route_uri<'a>(&self, uri: &'a str) -> Option<(usize, &'a str)> {
        if !self.namespaced() {
            return Some((0, uri));
        }
        let (upstream, inner) = uri.split_once(URI_SEPARATOR)?;
        Some((self.index_of(upstream)?, inner))
    }

    /// Where a list request starts: the upstream and its own cursor.
    pub fn route_cursor(&self, cursor: Option<&str>) -> Result<(usize, Option<String>), McpError> {
        let Some(cursor) = cursor else {
            return Ok((0, None));
        };
        if !self.namespaced() {
            return Ok((0, Some(cursor.to_owned())));
        }
        let invalid = || McpError::invalid_params(format!("invalid cursor {cursor:?}"), None);
        let rest = cursor.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
        let (index, inner) = rest.split_once('.').ok_or_else(invalid)?;
        let index: usize = index.parse().map_err(|_| invalid())?;
        if index >= self.upstreams.len() {
            return Err(invalid());
        }
        Ok((index, (!inner.is_empty()).then(|| inner.to_owned())))
    }

    /// The client-facing cursor after a page from `upstream` that ended with
    /// `next` (that upstream's own cursor); `None` when every upstream is done.
    pub fn next_cursor(&self, upstream: usize, next: Option<String>) -> Option<String> {
        if !self.namespaced() {
            return next;
        }
        match next {
            Some(next) => Some(format!("{CURSOR_PREFIX}{upstream}.{next}")),
            None if upstream + 1 < self.upstreams.len() => {
                Some(format!("{CURSOR_PREFIX}{}.", upstream + 1))
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Names {
        Names::new(vec!["azure".into(), "demo-2".into()])
    }

    #[test]
    fn single_upstream_is_transparent() {
        let names = Names::new(vec!["azure".into()]);
        assert_eq!(names.outward(0, "a__b"), "a__b");
        assert_eq!(names.route("a__b"), Some((0, "a__b")));
        assert_eq!(names.route_uri("x+y://z"), Some((0, "x+y://z")));
        assert_eq!(
            names.route_cursor(Some("c")).unwrap(),
            (0, Some("c".into()))
        );
        assert_eq!(names.next_cursor(0, Some("n".into())), Some("n".into()));
    }

    #[test]
    fn tools_and_uris_round_trip() {
        let names = two();
        let tool = names.outward(1, "vm_list__x");
        assert_eq!(tool, "demo-2__vm_list__x");
        assert_eq!(names.route(&tool), Some((1, "vm_list__x")));
        let uri = names.outward_uri(0, "file:///a+b");
        assert_eq!(uri, "azure+file:///a+b");
        assert_eq!(names.route_uri(&uri), Some((0, "file:///a+b")));
        assert_eq!(names.route("unknown__x"), None);
        assert_eq!(names.route("nounderscore"), None);
    }

    #[test]
    fn cursors_walk_every_upstream() {
        let names = two();
        assert_eq!(names.route_cursor(None).unwrap(), (0, None));
        let c = names.next_cursor(0, Some("p2".into())).unwrap();
        assert_eq!(
            names.route_cursor(Some(&c)).unwrap(),
            (0, Some("p2".into()))
        );
        let c = names.next_cursor(0, None).unwrap();
        assert_eq!(names.route_cursor(Some(&c)).unwrap(), (1, None));
        assert_eq!(names.next_cursor(1, None), None);
        assert!(names.route_cursor(Some("w1.9.")).is_err());
        assert!(names.route_cursor(Some("garbage")).is_err());
    }
}
