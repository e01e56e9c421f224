//! Catalog files: the TOML format of `schemas/catalog/*.toml` (described in
//! `schemas/catalog/README.md`) and its checks. Every error names the file,
//! the line and the key.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::inventory::{Inventory, InventoryTool};
use super::template::{self, Template};
use super::{
    ArmArg, ArmSpec, Catalog, CatalogError, Class, Entry, OpSpec, Origin, Rule, glob_match,
};

/// One catalog file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    classes: Option<ClassesDoc>,
    #[serde(default)]
    tools: BTreeMap<Spanned<String>, Spanned<EntryDoc>>,
    #[serde(default)]
    rules: Vec<Spanned<RuleDoc>>,
}

/// `[classes]`: operation patterns whose class is not the one their last
/// segment says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesDoc {
    #[serde(default)]
    privileged: Vec<Spanned<String>>,
    #[serde(default)]
    delete: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    #[serde(default)]
    action: Vec<Spanned<String>>,
    #[serde(default)]
    read: Vec<Spanned<String>>,
}

/// `[tools.NAME]`: one operation (`op`, `class`, `resource`, `when`, `unless`) or
/// several (`[[tools.NAME.ops]]`, with `class`/`resource` here as defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    op: Option<Spanned<String>>,
    class: Option<Spanned<Class>>,
    resource: Option<Spanned<Resources>>,
    when: Option<Spanned<Vec<String>>>,
    unless: Option<Spanned<Vec<String>>>,
    ops: Option<Vec<Spanned<OpDoc>>>,
    /// A raw ARM request: the operation is derived from its method and path.
    arm: Option<Spanned<ArmDoc>>,
}

/// `arm = { method = "GET" | "{arg}", path = "{arg}" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmDoc {
    method: String,
    path: String,
}

/// `[[rules]]`: like an entry, for every read-only tool whose name matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    tools: Spanned<Vec<String>>,
    op: Option<Spanned<String>>,
    class: Option<Spanned<Class>>,
    resource: Option<Spanned<Resources>>,
    ops: Option<Vec<Spanned<OpDoc>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpDoc {
    op: Spanned<String>,
    class: Option<Spanned<Class>>,
    resource: Option<Spanned<Resources>>,
    when: Option<Spanned<Vec<String>>>,
    unless: Option<Spanned<Vec<String>>>,
}

/// One template or a list of alternatives.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Resources {
    One(String),
    Many(Vec<String>),
}

impl Resources {
    fn list(&self) -> Vec<&str> {
        match self {
            Resources::One(s) => vec![s.as_str()],
            Resources::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A file's name and text, for error messages.
struct Text<'a> {
    file: &'a str,
    text: &'a str,
}

impl Text<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn origin(&self, span: std::ops::Range<usize>) -> Origin {
        Origin {
            file: self.file.to_owned(),
            line: self.line(span.start),
        }
    }

    fn error(
        &self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> CatalogError {
        CatalogError::Invalid {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Class patterns gathered from every file's `[classes]`, most severe first.
#[derive(Debug, Clone, Default)]
pub(super) struct ClassTable(Vec<(Class, String)>);

impl ClassTable {
    /// The class of `op`: the first (most severe) matching pattern, else the
    /// last segment of the operation (`read`, `write`, `delete`, `action`).
    pub(super) fn class_of(&self, op: &str) -> Option<Class> {
        let lower = op.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(_, pattern)| glob_match(pattern, &lower))
            .map(|(class, _)| *class)
            .or_else(|| class_from_suffix(op))
    }
}

/// The class an operation's last segment gives it.
pub(super) fn class_from_suffix(op: &str) -> Option<Class> {
    match op.rsplit('/').next()?.to_ascii_lowercase().as_str() {
        "read" => Some(Class::Read),
        "write" => Some(Class::Write),
        "delete" => Some(Class::Delete),
        "action" => Some(Class::Action),
        _ => None,
    }
}

/// Parses and checks catalog files (`(file name, text)`) and inventories.
pub(super) fn load(
    files: &[(String, String)],
    inventories: &[(String, String)],
) -> Result<Catalog, CatalogError> {
    // Inventories first: they are what names are checked against.
    let mut inventory: BTreeMap<String, InventoryTool> = BTreeMap::new();
    for (file, text) in inventories {
        let parsed: Inventory = serde_json::from_str(text).map_err(|e| CatalogError::Invalid {
            file: file.clone(),
            line: e.line(),
            key: String::new(),
            message: e.to_string(),
        })?;
        for tool in parsed.tools {
            if inventory.contains_key(&tool.name) {
                return Err(CatalogError::Invalid {
                    file: file.clone(),
                    line: 1,
                    key: format!("tools.{}", tool.name),
                    message: "tool listed by two inventories".into(),
                });
            }
            inventory.insert(tool.name.clone(), tool);
        }
    }

    let mut docs = Vec::new();
    for (file, text) in files {
        let src = Text { file, text };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| src.line(s.start)).unwrap_or(1);
            CatalogError::Invalid {
                file: file.clone(),
                line,
                key: String::new(),
                message: e.message().to_owned(),
            }
        })?;
        docs.push((src, doc));
    }

    let mut table = Vec::new();
    for (src, doc) in &docs {
        let Some(classes) = &doc.classes else {
            continue;
        };
        for (class, patterns) in [
            (Class::Privileged, &classes.privileged),
            (Class::Delete, &classes.delete),
            (Class::Write, &classes.write),
            (Class::Action, &classes.action),
            (Class::Read, &classes.read),
        ] {
            for pattern in patterns {
                let key = format!("classes.{}", class.as_str());
                check_op(pattern.get_ref(), true)
                    .map_err(|m| src.error(pattern.span(), &key, m))?;
                table.push((class, pattern.get_ref().to_ascii_lowercase()));
            }
        }
    }
    // Most severe class first, whatever the file order.
    table.sort_by_key(|(class, _)| severity(*class));
    let table = ClassTable(table);

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut rules = Vec::new();
    for (src, doc) in &docs {
        for (name, entry) in &doc.tools {
            let tool = name.get_ref();
            let key = format!("tools.{tool}");
            check_tool_name(tool).map_err(|m| src.error(name.span(), &key, m))?;
            if let Some(previous) = entries.get(tool) {
                return Err(src.error(
                    name.span(),
                    &key,
                    format!(
                        "tool already has an entry at {}:{}",
                        previous.origin.file, previous.origin.line
                    ),
                ));
            }
            let arguments = if inventory.is_empty() {
                None
            } else {
                let Some(listed) = inventory.get(tool) else {
                    return Err(src.error(name.span(), &key, "no such tool in the inventory"));
                };
                Some(vec![listed])
            };
            let e = entry.get_ref();
            if let Some(arm) = &e.arm {
                if e.op.is_some() || e.ops.is_some() || e.resource.is_some() || e.class.is_some() {
                    return Err(src.error(
                        arm.span(),
                        format!("{key}.arm"),
                        "an `arm` entry derives its operation, class and resource from the request: \
                         it takes no `op`, `ops`, `class` or `resource`",
                    ));
                }
                let spec = arm_spec(arm.get_ref(), arguments.as_deref())
                    .map_err(|m| src.error(arm.span(), format!("{key}.arm"), m))?;
                entries.insert(
                    tool.clone(),
                    Entry {
                        ops: Vec::new(),
                        arm: Some(spec),
                        origin: src.origin(name.span()),
                    },
                );
                continue;
            }
            let ops = build_ops(
                src,
                &key,
                &table,
                OpsDoc {
                    op: e.op.as_ref(),
                    class: e.class.as_ref(),
                    resource: e.resource.as_ref(),
                    when: e.when.as_ref(),
                    unless: e.unless.as_ref(),
                    ops: e.ops.as_deref(),
                },
                name.span(),
                arguments.as_deref(),
            )?;
            entries.insert(
                tool.clone(),
                Entry {
                    ops,
                    arm: None,
                    origin: src.origin(name.span()),
                },
            );
        }
        for (index, rule) in doc.rules.iter().enumerate() {
            let key = format!("rules[{index}]");
            let r = rule.get_ref();
            if r.tools.get_ref().is_empty() {
                return Err(src.error(
                    r.tools.span(),
                    format!("{key}.tools"),
                    "a rule needs at least one tool pattern",
                ));
            }
            for pattern in r.tools.get_ref() {
                check_tool_name(&pattern.replace('*', "x"))
                    .map_err(|m| src.error(r.tools.span(), format!("{key}.tools"), m))?;
            }
            // The inventory tools the rule can apply to: matching and read-only.
            let matched: Vec<&InventoryTool> = inventory
                .values()
                .filter(|t| r.tools.get_ref().iter().any(|p| glob_match(p, &t.name)))
                .filter(|t| t.read_only == Some(true) && t.destructive != Some(true))
                .collect();
            if !inventory.is_empty() && matched.is_empty() {
                return Err(src.error(
                    r.tools.span(),
                    format!("{key}.tools"),
                    "the patterns match no read-only tool of the inventory",
                ));
            }
            let ops = build_ops(
                src,
                &key,
                &table,
                OpsDoc {
                    op: r.op.as_ref(),
                    class: r.class.as_ref(),
                    resource: r.resource.as_ref(),
                    when: None,
                    unless: None,
                    ops: r.ops.as_deref(),
                },
                rule.span(),
                (!inventory.is_empty()).then_some(matched.as_slice()),
            )?;
            if let Some(op) = ops.iter().find(|o| o.class != Class::Read) {
                return Err(src.error(
                    rule.span(),
                    &key,
                    format!(
                        "rules are for read-only tools: `{}` is class {} (give the tools explicit entries)",
                        op.azure_op,
                        op.class.as_str()
                    ),
                ));
            }
            rules.push(Rule {
                patterns: r.tools.get_ref().clone(),
                ops,
            });
        }
    }
    Ok(Catalog {
        entries,
        rules,
        inventory: inventory.into_values().collect(),
        classes: table,
    })
}

/// An `arm` entry's method (a literal or `{arg}`) and path (`{arg}`).
fn arm_spec(doc: &ArmDoc, tools: Option<&[&InventoryTool]>) -> Result<ArmSpec, String> {
    let placeholder = |text: &str| {
        text.strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .map(str::to_owned)
    };
    let method = match placeholder(&doc.method) {
        Some(arg) => {
            check_argument(tools, &arg)?;
            ArmArg::Argument(arg)
        }
        None => {
            let method = doc.method.to_ascii_uppercase();
            if !["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"].contains(&method.as_str()) {
                return Err(format!(
                    "method {:?} is neither an HTTP method nor an {{argument}}",
                    doc.method
                ));
            }
            ArmArg::Literal(method)
        }
    };
    let path = placeholder(&doc.path)
        .ok_or_else(|| format!("path {:?} must be an {{argument}}", doc.path))?;
    check_argument(tools, &path)?;
    Ok(ArmSpec { method, path })
}

fn severity(class: Class) -> u8 {
    match class {
        Class::Privileged => 0,
        Class::Delete => 1,
        Class::Write => 2,
        Class::Action => 3,
        Class::Read => 4,
        Class::Unknown => 5,
    }
}

/// The operation fields of an entry or a rule (or of one of its `ops`).
#[derive(Clone, Copy)]
struct OpsDoc<'a> {
    op: Option<&'a Spanned<String>>,
    class: Option<&'a Spanned<Class>>,
    resource: Option<&'a Spanned<Resources>>,
    when: Option<&'a Spanned<Vec<String>>>,
    unless: Option<&'a Spanned<Vec<String>>>,
    ops: Option<&'a [Spanned<OpDoc>]>,
}

/// Builds the operations of an entry or a rule. `tools` is what placeholders
/// are checked against when an inventory is loaded: the entry's tool, or the
/// read-only tools a rule matches (a placeholder must be an argument of at
/// least one of them).
fn build_ops(
    src: &Text<'_>,
    key: &str,
    table: &ClassTable,
    doc: OpsDoc<'_>,
    span: std::ops::Range<usize>,
    tools: Option<&[&InventoryTool]>,
) -> Result<Vec<OpSpec>, CatalogError> {
    let parts: Vec<(String, OpsDoc<'_>)> = match (doc.op, doc.ops) {
        (Some(_), Some(_)) => {
            return Err(src.error(span, key, "give either `op` or `ops`, not both"));
        }
        (None, None) => return Err(src.error(span, key, "missing `op` (or `ops`)")),
        (Some(_), None) => vec![(key.to_owned(), doc)],
        (None, Some(ops)) => {
            for (name, list) in [("when", doc.when), ("unless", doc.unless)] {
                if let Some(list) = list {
                    return Err(src.error(
                        list.span(),
                        format!("{key}.{name}"),
                        format!("`{name}` belongs on each of `ops`"),
                    ));
                }
            }
            if ops.is_empty() {
                return Err(src.error(span, format!("{key}.ops"), "`ops` is empty"));
            }
            ops.iter()
                .enumerate()
                .map(|(i, o)| {
                    let o = o.get_ref();
                    let part = OpsDoc {
                        op: Some(&o.op),
                        // The entry's `class` and `resource` are defaults.
                        class: o.class.as_ref().or(doc.class),
                        resource: o.resource.as_ref().or(doc.resource),
                        when: o.when.as_ref(),
                        unless: o.unless.as_ref(),
                        ops: None,
                    };
                    (format!("{key}.ops[{i}]"), part)
                })
                .collect()
        }
    };
    let mut out = Vec::new();
    for (key, part) in parts {
        let OpsDoc {
            op,
            class,
            resource,
            when,
            unless,
            ..
        } = part;
        let Some(op) = op else { continue };
        check_op(op.get_ref(), false).map_err(|m| src.error(op.span(), format!("{key}.op"), m))?;
        let class = match class {
            Some(c) if *c.get_ref() == Class::Unknown => {
                return Err(src.error(
                    c.span(),
                    format!("{key}.class"),
                    "class `unknown` is for tools the catalog cannot resolve; it cannot be given",
                ));
            }
            Some(c) => *c.get_ref(),
            None => table.class_of(op.get_ref()).ok_or_else(|| {
                src.error(
                    op.span(),
                    format!("{key}.op"),
                    format!(
                        "cannot tell the class of `{}` from its last segment (read, write, delete, action): give `class`",
                        op.get_ref()
                    ),
                )
            })?,
        };
        let (texts, rspan) = match resource {
            Some(r) => (r.get_ref().list(), r.span()),
            None => (vec![template::DEFAULT_TEMPLATE], op.span()),
        };
        if texts.is_empty() {
            return Err(src.error(
                rspan,
                format!("{key}.resource"),
                "empty list of alternatives",
            ));
        }
        let mut alternatives = Vec::new();
        for text in texts {
            let t = Template::parse(text)
                .map_err(|m| src.error(rspan.clone(), format!("{key}.resource"), m))?;
            if resource.is_some() {
                for (arg, _) in t.placeholders() {
                    check_argument(tools, arg)
                        .map_err(|m| src.error(rspan.clone(), format!("{key}.resource"), m))?;
                }
            }
            alternatives.push(t);
        }
        let when = condition(src, &key, "when", when, tools)?;
        let unless = condition(src, &key, "unless", unless, tools)?;
        out.push(OpSpec {
            azure_op: op.get_ref().clone(),
            class,
            alternatives,
            when,
            unless,
        });
    }
    // Every call must resolve to at least one operation, whichever of the
    // `when`/`unless` arguments it gives: try each combination.
    let mut conditional: Vec<&String> = out
        .iter()
        .flat_map(|o| o.when.iter().chain(&o.unless))
        .collect();
    conditional.sort();
    conditional.dedup();
    if conditional.len() > 10 {
        return Err(src.error(span, key, "more than 10 distinct `when`/`unless` arguments"));
    }
    for mask in 0u32..(1 << conditional.len()) {
        let given = |a: &String| {
            conditional
                .iter()
                .position(|c| *c == a)
                .is_some_and(|i| mask & (1 << i) != 0)
        };
        let active = out.iter().any(|o| {
            (o.when.is_empty() || o.when.iter().any(given)) && !o.unless.iter().any(given)
        });
        if !active {
            let args: Vec<&str> = conditional
                .iter()
                .filter(|a| given(a))
                .map(|a| a.as_str())
                .collect();
            return Err(src.error(
                span,
                key,
                format!("a call giving {args:?} (of the `when`/`unless` arguments) would resolve to no operation"),
            ));
        }
    }
    Ok(out)
}

/// A `when` or `unless` list: argument names of the tool.
fn condition(
    src: &Text<'_>,
    key: &str,
    name: &str,
    list: Option<&Spanned<Vec<String>>>,
    tools: Option<&[&InventoryTool]>,
) -> Result<Vec<String>, CatalogError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.get_ref().is_empty() {
        return Err(src.error(
            list.span(),
            format!("{key}.{name}"),
            format!("`{name}` lists no argument"),
        ));
    }
    for arg in list.get_ref() {
        template::check_arg_name(arg)
            .and_then(|()| check_argument(tools, arg))
            .map_err(|m| src.error(list.span(), format!("{key}.{name}"), m))?;
    }
    Ok(list.get_ref().clone())
}

/// A placeholder must name an argument of the tool (or, for a rule, of at
/// least one tool it applies to), when an inventory is known.
fn check_argument(tools: Option<&[&InventoryTool]>, arg: &str) -> Result<(), String> {
    match tools {
        None => Ok(()),
        Some(tools) if tools.iter().any(|t| t.arguments.iter().any(|a| a == arg)) => Ok(()),
        Some(tools) => {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).take(3).collect();
            Err(format!(
                "`{arg}` is not an argument of {}",
                names.join(", ")
            ))
        }
    }
}

/// Tool names: letters, digits, `_`, `-`, `.`.
fn check_tool_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        Ok(())
    } else {
        Err(format!(
            "malformed tool name `{name}` (letters, digits, `_`, `-`, `.`)"
        ))
    }
}

/// Operations: `Namespace/segment/...`, at least two segments of letters,
/// digits, `.`, `-`, `_` (and `*` in `[classes]` patterns).
fn check_op(op: &str, pattern: bool) -> Result<(), String> {
    let segments: Vec<&str> = op.split('/').collect();
    let ok = segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'-' | b'_')
                        || (pattern && b == b'*')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "malformed operation `{op}` (like Microsoft.Compute/virtualMachines/read{})",
            if pattern {
                ", `*` matches anything"
            } else {
                ""
            }
        ))
    }
}
