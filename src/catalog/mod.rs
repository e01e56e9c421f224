//! The catalog stage: which Azure operations a tool call performs, on which
//! resources (pipeline stage 2; docs/ARCHITECTURE.md).
//!
//! A [`Catalog`] is loaded from TOML files (`schemas/catalog/*.toml`, format
//! in `schemas/catalog/README.md`) and answers two questions:
//!
//! - [`Catalog::resolve`]: the [`Operation`]s one `tools/call` performs —
//!   each an Azure RBAC operation string, its [`Class`] and the lower-cased
//!   [`Resource`] built from the call's arguments. A tool performing several
//!   operations is authorized once per operation; all must allow.
//! - [`Catalog::operations_of`]: every operation a tool may perform whatever
//!   its arguments (to filter `tools/list`).
//!
//! Resolution order: an explicit entry (`[tools.NAME]`, [`Source::Catalog`]);
//! else the first rule whose name pattern matches, for tools the upstream
//! annotates read-only ([`Source::Rule`]); else the tool's MCP annotations
//! ([`Source::Annotations`]: `destructiveHint` → delete, `readOnlyHint` →
//! read, otherwise write); else one operation of class
//! [`Class::Unknown`] ([`Source::Unknown`]), which the baseline policy denies.
//! Fallback operations are synthetic: `Warden/tools/<tool>/<class>`.
//!
//! Resource rules (also in the README):
//!
//! - ids are lower-cased ARM ids of the narrowest known scope;
//! - a missing argument widens the scope: no resource group → the
//!   subscription, no subscription → `/`, no resource name → its parent
//!   (while `resource_type`/`name` still say what was named);
//! - a `subscription` that is not a GUID is a display name: it is kept
//!   lower-cased as given, and the id stays at subscription scope by name
//!   (`/subscriptions/<name>`), because a name is not a stable identifier;
//! - an argument value that cannot be part of an ARM id (a name containing
//!   `/`, an id that does not parse) resolves the whole call to one
//!   operation of class `unknown` (see [`Resolution::problem`]).

pub mod arm;
mod file;
pub mod inventory;
pub mod roles;
mod template;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rmcp::model::ToolAnnotations;
use serde_json::Value;

use crate::azure::ArmId;

pub use inventory::{Inventory, InventoryTool};

/// What kind of change an operation is; Cedar action groups of the same names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Read,
    Write,
    Delete,
    /// POST-style operations (`.../start/action`).
    Action,
    /// Changes access or reveals secrets: role assignments, Key Vault
    /// secret/key/certificate values, policy and diagnostic settings,
    /// firewall rules, private endpoint approvals, files on the upstream's host.
    Privileged,
    /// Nothing is known about the tool; the baseline denies it.
    Unknown,
}

impl Class {
    /// The name used in catalog files, policies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Delete => "delete",
            Class::Action => "action",
            Class::Privileged => "privileged",
            Class::Unknown => "unknown",
        }
    }

    /// The class named `name` (any case).
    pub fn parse(name: &str) -> Option<Class> {
        [
            Class::Read,
            Class::Write,
            Class::Delete,
            Class::Action,
            Class::Privileged,
            Class::Unknown,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

/// The Azure scope an operation acts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resource {
    /// ARM id of the narrowest known scope: a resource, a resource group,
    /// a subscription, or "/" when nothing is known (compared and
    /// serialized lower-cased).
    pub id: ArmId,
    /// Lower-cased as given: a subscription id (GUID) or a display name.
    /// Set when the id is at or below subscription scope (always agrees with `id`).
    pub subscription: Option<String>,
    /// Lower-cased. Set when the id is at or below resource group scope
    /// (always agrees with `id`; a group named under an unknown subscription
    /// or a subscription given by name is not part of the id, so not here).
    pub resource_group: Option<String>,
    /// Lower-cased, e.g. "microsoft.compute/virtualmachines" (child types
    /// are joined: "microsoft.keyvault/vaults/secrets"). Known even when the
    /// id had to widen (no resource group argument).
    pub resource_type: Option<String>,
    /// The name of the narrowest named resource (the last name segment).
    pub name: Option<String>,
    /// Lower-cased: the resource group the arguments name, also when it is
    /// not part of the id (under a subscription given by name, or no
    /// subscription), so that what the call touches can still be looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// The names along `resource_type`, top-level resource first
    /// (`["kv1", "s1"]` for secret `s1` of vault `kv1`), also when the id
    /// had to widen; empty when no resource is named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl Resource {
    /// The root scope: nothing known.
    pub fn root() -> Resource {
        Resource {
            id: ArmId::root(),
            subscription: None,
            resource_group: None,
            resource_type: None,
            name: None,
            group_name: None,
            names: Vec::new(),
        }
    }

    /// Whether the subscription was given by display name rather than id.
    pub fn subscription_is_name(&self) -> bool {
        self.subscription
            .as_deref()
            .is_some_and(|s| !template::is_guid(s))
    }
}

/// One Azure operation a call performs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    pub azure_op: String,
    pub class: Class,
    pub resource: Resource,
}

/// Where a resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An explicit `[tools.NAME]` entry.
    Catalog,
    /// A `[[rules]]` pattern (read-only tools only).
    Rule,
    /// The tool's MCP annotations.
    Annotations,
    /// Nothing: one operation of class `unknown`.
    Unknown,
}

/// The operations of one tool call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    /// Never empty.
    pub operations: Vec<Operation>,
    pub source: Source,
    /// Why the call resolved to class `unknown` although the catalog knows
    /// the tool (e.g. "argument `vm-name` is not a valid resource name").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Resolution {
    /// The operations' distinct classes.
    pub fn classes(&self) -> BTreeSet<Class> {
        self.operations.iter().map(|o| o.class).collect()
    }
}

/// Where a catalog entry or rule is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

/// A catalog that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {}{message}", key_prefix(.key))]
    Invalid {
        file: String,
        line: usize,
        /// The TOML key, e.g. `tools.compute_vm_delete.resource` (empty for
        /// syntax errors, whose message names it).
        key: String,
        message: String,
    },
    #[error("{}: no catalog files (*.toml)", dir.display())]
    Empty { dir: std::path::PathBuf },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// One operation of an entry or a rule, as loaded.
#[derive(Debug, Clone)]
struct OpSpec {
    azure_op: String,
    class: Class,
    /// Resource templates; every one that applies names a resource.
    alternatives: Vec<template::Template>,
    /// Only when one of these arguments is given (empty: always).
    when: Vec<String>,
    /// Only when none of these arguments is given (empty: always).
    unless: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    ops: Vec<OpSpec>,
    /// Set for a raw ARM request tool (`ops` is then empty).
    arm: Option<ArmSpec>,
    origin: Origin,
}

/// How a raw ARM request tool names its method and path.
#[derive(Debug, Clone)]
struct ArmSpec {
    method: ArmArg,
    /// The argument holding the path.
    path: String,
}

#[derive(Debug, Clone)]
enum ArmArg {
    Literal(String),
    Argument(String),
}

#[derive(Debug, Clone)]
struct Rule {
    patterns: Vec<String>,
    ops: Vec<OpSpec>,
}

impl Rule {
    fn matches(&self, tool: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, tool))
    }
}

/// The files shipped in `schemas/catalog/` (a unit test checks that this
/// list is the directory's content).
const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "azmcp-ai.toml",
        include_str!("../../schemas/catalog/azmcp-ai.toml"),
    ),
    (
        "azmcp-compute.toml",
        include_str!("../../schemas/catalog/azmcp-compute.toml"),
    ),
    (
        "azmcp-data.toml",
        include_str!("../../schemas/catalog/azmcp-data.toml"),
    ),
    (
        "azmcp-guidance.toml",
        include_str!("../../schemas/catalog/azmcp-guidance.toml"),
    ),
    (
        "azmcp-messaging.toml",
        include_str!("../../schemas/catalog/azmcp-messaging.toml"),
    ),
    (
        "azmcp-monitor.toml",
        include_str!("../../schemas/catalog/azmcp-monitor.toml"),
    ),
    (
        "azmcp-platform.toml",
        include_str!("../../schemas/catalog/azmcp-platform.toml"),
    ),
    (
        "azmcp-security.toml",
        include_str!("../../schemas/catalog/azmcp-security.toml"),
    ),
    (
        "azmcp-storage.toml",
        include_str!("../../schemas/catalog/azmcp-storage.toml"),
    ),
    (
        "classes.toml",
        include_str!("../../schemas/catalog/classes.toml"),
    ),
    (
        "warden-arm.toml",
        include_str!("../../schemas/catalog/warden-arm.toml"),
    ),
];

const BUILTIN_INVENTORIES: &[(&str, &str)] = &[
    (
        "azmcp.inventory.json",
        include_str!("../../schemas/catalog/azmcp.inventory.json"),
    ),
    (
        "warden-arm.inventory.json",
        include_str!("../../schemas/catalog/warden-arm.inventory.json"),
    ),
];

/// Tool → operations, loaded from catalog files.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: BTreeMap<String, Entry>,
    rules: Vec<Rule>,
    inventory: Vec<InventoryTool>,
    classes: file::ClassTable,
}

impl Catalog {
    /// The catalog files shipped in schemas/catalog (include_str!), parsed.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        let named = |files: &[(&str, &str)]| -> Vec<(String, String)> {
            files
                .iter()
                .map(|(name, text)| (format!("schemas/catalog/{name}"), (*text).to_owned()))
                .collect()
        };
        file::load(&named(BUILTIN_FILES), &named(BUILTIN_INVENTORIES))
    }

    /// Every *.toml in `dir` (errors name the file, line and key), checked
    /// against every `*.inventory.json` there when there is one. Files are
    /// read in name order; rules apply in that order.
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let io = |path: &Path, source| CatalogError::Io {
            path: path.to_owned(),
            source,
        };
        let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .map(|entry| entry.map(|e| e.path()).map_err(|e| io(dir, e)))
            .collect::<Result<_, _>>()?;
        paths.sort();
        let mut files = Vec::new();
        let mut inventories = Vec::new();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let target = if name.ends_with(".inventory.json") {
                &mut inventories
            } else if name.ends_with(".toml") {
                &mut files
            } else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            target.push((path.display().to_string(), text));
        }
        if files.is_empty() {
            return Err(CatalogError::Empty {
                dir: dir.to_owned(),
            });
        }
        file::load(&files, &inventories)
    }

    /// Operations a call to `tool` (the upstream's own tool name) with `arguments` performs.
    /// Falls back on `annotations` (readOnlyHint → read, destructiveHint → delete, else write;
    /// neither → one operation of class Unknown).
    pub fn resolve(
        &self,
        tool: &str,
        arguments: &Value,
        annotations: Option<&ToolAnnotations>,
    ) -> Resolution {
        if let Some(entry) = self.entries.get(tool) {
            if let Some(arm) = &entry.arm {
                return self.resolve_arm(tool, arm, arguments);
            }
            return resolve_ops(tool, &entry.ops, arguments, Source::Catalog);
        }
        if let Some(rule) = self.rule_for(tool, annotations) {
            return resolve_ops(tool, &rule.ops, arguments, Source::Rule);
        }
        let class = annotation_class(annotations);
        let resource = template::Template::parse(template::DEFAULT_TEMPLATE)
            .ok()
            .and_then(|t| template::resolve(&[t], arguments).ok())
            .and_then(|mut r| r.pop())
            .unwrap_or_else(Resource::root);
        Resolution {
            operations: vec![Operation {
                azure_op: fallback_op(tool, class),
                class,
                resource,
            }],
            source: if class == Class::Unknown {
                Source::Unknown
            } else {
                Source::Annotations
            },
            problem: None,
        }
    }

    /// A raw ARM request: its operation from its method and path (see
    /// [`arm::operation_of`]), its class from the `[classes]` table.
    fn resolve_arm(&self, tool: &str, spec: &ArmSpec, arguments: &Value) -> Resolution {
        let text = |name: &str| {
            arguments
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("argument `{name}` is missing or not a string"))
        };
        let method = match &spec.method {
            ArmArg::Literal(method) => Ok(method.clone()),
            ArmArg::Argument(name) => text(name),
        };
        let derived = method
            .and_then(|method| Ok((method, text(&spec.path)?)))
            .and_then(|(method, path)| arm::operation_of(&method, &path));
        match derived {
            Ok(op) => {
                let class = self
                    .classes
                    .class_of(&op.azure_op)
                    .unwrap_or(Class::Unknown);
                Resolution {
                    operations: vec![Operation {
                        azure_op: op.azure_op,
                        class,
                        resource: op.resource,
                    }],
                    source: Source::Catalog,
                    problem: None,
                }
            }
            Err(problem) => Resolution {
                operations: vec![Operation {
                    azure_op: fallback_op(tool, Class::Unknown),
                    class: Class::Unknown,
                    resource: Resource::root(),
                }],
                source: Source::Catalog,
                problem: Some(problem),
            },
        }
    }

    /// Whether the catalog has an explicit entry for `tool` (its
    /// resolution needs no annotations).
    pub fn has_entry(&self, tool: &str) -> bool {
        self.entries.contains_key(tool)
    }

    /// The operations the tool may perform whatever its arguments.
    pub fn operations_of(
        &self,
        tool: &str,
        annotations: Option<&ToolAnnotations>,
    ) -> Vec<(String, Class)> {
        self.operations_where(tool, annotations, |_| true)
    }

    /// The operations every call of the tool may perform: those not tied to
    /// an optional argument (`when`). A caller who could be allowed these
    /// can call the tool (without the optional arguments); the
    /// `tools/list` filter uses them.
    pub fn baseline_operations_of(
        &self,
        tool: &str,
        annotations: Option<&ToolAnnotations>,
    ) -> Vec<(String, Class)> {
        self.operations_where(tool, annotations, |op| op.when.is_empty())
    }

    fn operations_where(
        &self,
        tool: &str,
        annotations: Option<&ToolAnnotations>,
        keep: impl Fn(&OpSpec) -> bool,
    ) -> Vec<(String, Class)> {
        let ops = match (self.entries.get(tool), self.rule_for(tool, annotations)) {
            // A raw ARM request may perform any operation: it is listed to
            // callers who may read (the call itself is authorized on the
            // operation its method and path name).
            (Some(entry), _) if entry.arm.is_some() => {
                return vec![(fallback_op(tool, Class::Read), Class::Read)];
            }
            (Some(entry), _) => &entry.ops,
            (None, Some(rule)) => &rule.ops,
            (None, None) => {
                let class = annotation_class(annotations);
                return vec![(fallback_op(tool, class), class)];
            }
        };
        let mut out: Vec<(String, Class)> = Vec::new();
        for op in ops.iter().filter(|op| keep(op)) {
            let pair = (op.azure_op.clone(), op.class);
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        out
    }

    /// Every operation named by an entry or a rule, with the classes it
    /// carries (an entry may override the class of an operation, so one
    /// operation can carry several). For building Cedar actions; fallback
    /// operations are `Warden/tools/<tool>/<class>` (see [`fallback_op`]).
    /// [`Catalog::actions`] as `(operation, class)` pairs, one per class an
    /// operation carries: the known operations the policy engine declares.
    pub fn operation_classes(&self) -> Vec<(String, String)> {
        self.actions()
            .into_iter()
            .flat_map(|(op, classes)| {
                classes
                    .into_iter()
                    .map(move |class| (op.clone(), class.as_str().to_owned()))
            })
            .collect()
    }

    /// The class of any operation name, known to an entry or not: the
    /// `[classes]` table, else its last segment (`None` when neither says).
    pub fn classify(&self, op: &str) -> Option<Class> {
        self.classes.class_of(op)
    }

    pub fn actions(&self) -> BTreeMap<String, BTreeSet<Class>> {
        let mut out: BTreeMap<String, BTreeSet<Class>> = BTreeMap::new();
        let all = self
            .entries
            .values()
            .flat_map(|e| &e.ops)
            .chain(self.rules.iter().flat_map(|r| &r.ops));
        for op in all {
            out.entry(op.azure_op.clone()).or_default().insert(op.class);
        }
        out
    }

    /// The tools with an explicit entry, with where each is written.
    pub fn explicit_tools(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.entries
            .iter()
            .map(|(name, e)| (name.as_str(), &e.origin))
    }

    /// The tools of the inventories loaded with the catalog (empty without).
    pub fn inventory(&self) -> &[InventoryTool] {
        &self.inventory
    }

    fn rule_for(&self, tool: &str, annotations: Option<&ToolAnnotations>) -> Option<&Rule> {
        let read_only = annotations
            .is_some_and(|a| a.read_only_hint == Some(true) && a.destructive_hint != Some(true));
        if !read_only {
            return None;
        }
        self.rules.iter().find(|r| r.matches(tool))
    }
}

/// The synthetic operation of a tool the catalog does not know:
/// `Warden/tools/<tool>/read|write|delete|unknown`.
pub fn fallback_op(tool: &str, class: Class) -> String {
    format!("Warden/tools/{tool}/{}", class.as_str())
}

/// The class MCP annotations give a tool the catalog does not know.
/// `destructiveHint: true` → delete (even if also read-only: the more
/// dangerous reading wins); `readOnlyHint: true` → read; `readOnlyHint:
/// false` without `destructiveHint` → delete (the MCP default of
/// `destructiveHint` is true); `destructiveHint: false` → write; no hint at
/// all (or no annotations) → unknown.
pub fn annotation_class(annotations: Option<&ToolAnnotations>) -> Class {
    let Some(a) = annotations else {
        return Class::Unknown;
    };
    match (a.read_only_hint, a.destructive_hint) {
        (_, Some(true)) => Class::Delete,
        (Some(true), _) => Class::Read,
        (Some(false), None) => Class::Delete,
        (_, Some(false)) => Class::Write,
        (None, None) => Class::Unknown,
    }
}

fn resolve_ops(tool: &str, ops: &[OpSpec], arguments: &Value, source: Source) -> Resolution {
    let given = |name: &String| match arguments.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    let mut operations: Vec<Operation> = Vec::new();
    for op in ops {
        if (!op.when.is_empty() && !op.when.iter().any(given)) || op.unless.iter().any(given) {
            continue;
        }
        let resources = match template::resolve(&op.alternatives, arguments) {
            Ok(resources) => resources,
            Err(problem) => {
                return Resolution {
                    operations: vec![Operation {
                        azure_op: fallback_op(tool, Class::Unknown),
                        class: Class::Unknown,
                        resource: Resource::root(),
                    }],
                    source,
                    problem: Some(problem),
                };
            }
        };
        for resource in resources {
            let operation = Operation {
                azure_op: op.azure_op.clone(),
                class: op.class,
                resource,
            };
            if !operations.contains(&operation) {
                operations.push(operation);
            }
        }
    }
    Resolution {
        operations,
        source,
        problem: None,
    }
}

/// `*` matches any run of characters (including none); everything else
/// matches itself. Case-sensitive (tool names are); callers lower-case
/// operation strings first.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}
