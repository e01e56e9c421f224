//! The Cedar schema: the static file completed with actions.
//!
//! `schemas/warden.cedarschema` declares the entity types, the context, the
//! class groups (`read`, `write`, `delete`, `action`, `privileged`,
//! `unknown`) and the operations policies name. [`build`] adds
//!
//! * every known operation (the catalog's) that the file does not declare,
//!   applying to the same principal and resource types and context as every
//!   operation, and a member of each class group the catalog gives it;
//! * Azure-style wildcard groups: every operation is in the group of its
//!   parent path (`"A/b/c"` in `"A/b/*"`), every group in its parent's
//!   (`"A/b/*"` in `"A/*"`), so `action in Action::"Microsoft.Compute/*"`
//!   reads like the `Actions` of an Azure custom role.
//!
//! The class of an operation is a fact of each call, not of the operation:
//! the catalog may classify the same operation differently per tool (a VM
//! created with a password is `privileged`, a VM update a `write`). So the
//! schema's class memberships only serve validation; a request's action
//! entity is built per call, in the class group of the call's class (and
//! its wildcard groups, and any other group the schema puts it in).
//!
//! Operation names are matched ignoring ASCII case (ARM is
//! case-insensitive); the first spelling wins, the static file's first.

use std::collections::HashMap;
use std::path::Path;

use cedar_policy::{Schema, SchemaFragment};
use serde_json::{Map, Value, json};

use super::error::PolicyError;

/// The class groups, as the catalog names its classes.
pub const CLASSES: [&str; 6] = ["read", "write", "delete", "action", "privileged", "unknown"];

/// Principal types every operation applies to.
pub(crate) const PRINCIPAL_TYPES: [&str; 2] = ["User", "ServicePrincipal"];
/// Resource types every operation applies to.
pub(crate) const RESOURCE_TYPES: [&str; 5] = [
    "Tenant",
    "ManagementGroup",
    "Subscription",
    "ResourceGroup",
    "Resource",
];

/// The class group of `class`, if it is one (ASCII case ignored).
pub fn class_of(class: &str) -> Option<&'static str> {
    CLASSES
        .iter()
        .copied()
        .find(|c| c.eq_ignore_ascii_case(class))
}

/// The schema with its actions, and what the engine needs to build requests.
pub(crate) struct SchemaParts {
    pub schema: Schema,
    pub actions: ActionTable,
    pub args: Vec<ArgSpec>,
}

/// How a tool argument may fill `context.args.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgSpec {
    /// The attribute of `Args`.
    pub name: String,
    /// The name with ASCII case, `_` and `-` removed, to match arguments.
    pub key: String,
    pub kind: ArgKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgKind {
    String,
    Long,
    Bool,
    StringSet,
}

/// Normalises an argument or attribute name for matching.
pub(crate) fn arg_key(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Every declared action: operations and groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionTable {
    /// By lower-cased name.
    nodes: HashMap<String, ActionNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionNode {
    /// The declared spelling.
    pub name: String,
    /// Direct parents (declared spellings).
    pub parents: Vec<String>,
    /// An operation (it applies to principals and resources), not a group.
    pub operation: bool,
}

/// An operation as a request's action: its entity and every ancestor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedAction {
    /// The action entity id (declared spelling, when declared).
    pub name: String,
    /// Whether the schema declares it (so the request can be validated).
    pub declared: bool,
    /// The action and its ancestors, each with its direct parents.
    pub entities: Vec<(String, Vec<String>)>,
}

impl ActionTable {
    pub fn get(&self, name: &str) -> Option<&ActionNode> {
        self.nodes.get(&name.to_ascii_lowercase())
    }

    /// Some declared operation, if any (deterministic: the first by name).
    pub fn any_operation(&self) -> Option<String> {
        self.nodes
            .values()
            .filter(|n| n.operation)
            .map(|n| n.name.clone())
            .min()
    }

    /// Number of declared operations (not groups).
    pub fn operations(&self) -> usize {
        self.nodes.values().filter(|n| n.operation).count()
    }

    /// The action of a call's operation `azure_op` of `class`: in the class
    /// group of `class`, in its wildcard groups, and in any other
    /// (non-class) group the schema declares it in. An undeclared operation
    /// (the catalog's synthetic `Warden/tools/<tool>/<class>`, or one the
    /// catalog learnt after load) is evaluated too: policies on classes and
    /// wildcards apply to it, though none can name it.
    pub fn resolve(&self, azure_op: &str, class: &str) -> Result<ResolvedAction, String> {
        let class = class_of(class).ok_or_else(|| {
            format!("unknown operation class {class:?} (expected one of {CLASSES:?})")
        })?;
        check_operation_name(azure_op)?;
        let (name, declared, mut parents) = match self.get(azure_op) {
            Some(node) if node.operation => (
                node.name.clone(),
                true,
                node.parents
                    .iter()
                    .filter(|p| class_of(p).is_none())
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            Some(_) => return Err(format!("{azure_op:?} is an action group, not an operation")),
            None => (
                azure_op.to_owned(),
                false,
                parent_group(azure_op)
                    .map(|g| vec![self.spelling(&g)])
                    .unwrap_or_default(),
            ),
        };
        parents.insert(0, class.to_owned());
        let mut entities = vec![(name.clone(), parents.clone())];
        // The ancestors: declared ones from the table, undeclared wildcard
        // groups computed from their names.
        let mut queue = parents;
        while let Some(next) = queue.pop() {
            if entities.iter().any(|(n, _)| n == &next) {
                continue;
            }
            let parents = match self.get(&next) {
                Some(node) => node.parents.clone(),
                None => parent_group(&next)
                    .map(|g| vec![self.spelling(&g)])
                    .unwrap_or_default(),
            };
            queue.extend(parents.iter().cloned());
            entities.push((next, parents));
        }
        Ok(ResolvedAction {
            name,
            declared,
            entities,
        })
    }

    /// The declared spelling of `name`, or `name` itself.
    fn spelling(&self, name: &str) -> String {
        self.get(name)
            .map_or_else(|| name.to_owned(), |n| n.name.clone())
    }
}

/// `"A/b/c"` → `"A/b/*"`, `"A/b/*"` → `"A/*"`, `"A/*"` and `"A"` → none.
fn parent_group(name: &str) -> Option<String> {
    let base = name.strip_suffix("/*").unwrap_or(name);
    let (parent, _) = base.rsplit_once('/')?;
    Some(format!("{parent}/*"))
}

/// An operation name: `/`-separated, non-empty segments of visible
/// characters other than `*` and `"`.
pub(crate) fn check_operation_name(op: &str) -> Result<(), String> {
    let ok = !op.is_empty()
        && op.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '*' && c != '"')
        });
    if !ok {
        return Err(format!(
            "{op:?} is not an operation name (non-empty `/`-separated segments, no `*`, quotes or spaces)"
        ));
    }
    if class_of(op).is_some() {
        return Err(format!("{op:?} is the name of a class group"));
    }
    Ok(())
}

/// Builds the schema from the static Cedar-format source and the known
/// operations `(azure_op, class)`.
pub(crate) fn build(
    file: &Path,
    source: &str,
    known_operations: &[(String, String)],
) -> Result<SchemaParts, PolicyError> {
    let schema_error = |message: String| PolicyError::Schema {
        file: file.to_path_buf(),
        message,
    };
    let (fragment, _warnings) =
        SchemaFragment::from_cedarschema_str(source).map_err(|e| schema_error(e.to_string()))?;
    let mut json = fragment
        .to_json_value()
        .map_err(|e| schema_error(e.to_string()))?;
    let root = json
        .as_object_mut()
        .ok_or_else(|| schema_error("not a schema".into()))?;
    if root.keys().any(|ns| !ns.is_empty()) {
        return Err(schema_error(
            "namespaces are not supported: declare everything at the top level".into(),
        ));
    }
    let namespace = root
        .get_mut("")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| schema_error("the schema declares nothing".into()))?;
    let args = arg_specs(namespace).map_err(schema_error)?;
    let actions = namespace
        .entry("actions")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| schema_error("`actions` is not an object".into()))?;
    complete_actions(actions, known_operations, &schema_error)?;
    let table = table_of(actions);

    let fragment =
        SchemaFragment::from_json_value(json).map_err(|e| schema_error(e.to_string()))?;
    let schema =
        Schema::from_schema_fragments([fragment]).map_err(|e| schema_error(e.to_string()))?;
    Ok(SchemaParts {
        schema,
        actions: table,
        args,
    })
}

/// Whether a JSON-schema action applies to principals and resources (an
/// operation) rather than being only a group.
fn is_operation(action: &Value) -> bool {
    let non_empty = |key: &str| {
        action
            .get("appliesTo")
            .and_then(|a| a.get(key))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    non_empty("principalTypes") && non_empty("resourceTypes")
}

fn member_ids(action: &Value) -> Vec<String> {
    action
        .get("memberOf")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn add_member(action: &mut Value, group: &str) {
    if member_ids(action).iter().any(|m| m == group) {
        return;
    }
    if let Some(obj) = action.as_object_mut() {
        let list = obj.entry("memberOf").or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.push(json!({ "id": group }));
        }
    }
}

/// Adds the known operations and the wildcard groups to the static actions.
fn complete_actions(
    actions: &mut Map<String, Value>,
    known_operations: &[(String, String)],
    schema_error: &dyn Fn(String) -> PolicyError,
) -> Result<(), PolicyError> {
    for class in CLASSES {
        match actions.get(class) {
            Some(a) if !is_operation(a) => {}
            Some(_) => {
                return Err(schema_error(format!(
                    "action {class:?} must be a group (it is a class group)"
                )));
            }
            None => {
                return Err(schema_error(format!(
                    "the class group action {class:?} is not declared"
                )));
            }
        }
    }

    // Operations by lower-cased name → declared spelling, and the declared
    // spellings in order: the static file's, then the catalog's.
    let mut operations: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (name, action) in actions.iter() {
        if !is_operation(action) {
            continue;
        }
        check_operation_name(name).map_err(schema_error)?;
        if let Some(first) = operations.insert(name.to_ascii_lowercase(), name.clone()) {
            return Err(schema_error(format!(
                "operations {first:?} and {name:?} differ only in case"
            )));
        }
        order.push(name.clone());
    }
    for (op, class) in known_operations {
        let operation_error = |message: String| PolicyError::Operation {
            operation: op.clone(),
            message,
        };
        check_operation_name(op).map_err(operation_error)?;
        let class = class_of(class).ok_or_else(|| {
            operation_error(format!(
                "unknown class {class:?} (expected one of {CLASSES:?})"
            ))
        })?;
        let spelling = match operations.get(&op.to_ascii_lowercase()) {
            Some(spelling) => spelling.clone(),
            None => {
                if actions.keys().any(|k| k.eq_ignore_ascii_case(op)) {
                    return Err(operation_error("is declared as an action group".into()));
                }
                actions.insert(
                    op.clone(),
                    json!({
                        "appliesTo": {
                            "principalTypes": PRINCIPAL_TYPES,
                            "resourceTypes": RESOURCE_TYPES,
                            "context": { "type": "Context" },
                        },
                    }),
                );
                operations.insert(op.to_ascii_lowercase(), op.clone());
                order.push(op.clone());
                op.clone()
            }
        };
        if let Some(action) = actions.get_mut(&spelling) {
            add_member(action, class);
        }
    }

    // Wildcard groups, spelt as first met (the static file's operations
    // first, so its spelling wins).
    let mut spelling: HashMap<String, String> = actions
        .keys()
        .filter(|k| !is_operation(&actions[k.as_str()]))
        .map(|k| (k.to_ascii_lowercase(), k.clone()))
        .collect();
    let canonical = |name: String, spelling: &mut HashMap<String, String>| -> String {
        spelling
            .entry(name.to_ascii_lowercase())
            .or_insert(name)
            .clone()
    };
    let mut edges: Vec<(String, String)> = Vec::new();
    for name in &order {
        let mut child = name.clone();
        while let Some(group) = parent_group(&child) {
            let group = canonical(group, &mut spelling);
            edges.push((child.clone(), group.clone()));
            child = group;
        }
    }
    for (child, group) in edges {
        match actions.get(&group) {
            Some(a) if is_operation(a) => {
                return Err(schema_error(format!(
                    "{group:?} is a wildcard group name but is declared as an operation"
                )));
            }
            Some(_) => {}
            None => {
                actions.insert(group.clone(), json!({}));
            }
        }
        if let Some(action) = actions.get_mut(&child) {
            add_member(action, &group);
        }
    }
    Ok(())
}

fn table_of(actions: &Map<String, Value>) -> ActionTable {
    let nodes = actions
        .iter()
        .map(|(name, action)| {
            (
                name.to_ascii_lowercase(),
                ActionNode {
                    name: name.clone(),
                    parents: member_ids(action),
                    operation: is_operation(action),
                },
            )
        })
        .collect();
    ActionTable { nodes }
}

/// The attributes of the common type `Args`: all optional, of type String,
/// Long, Bool or Set<String>.
fn arg_specs(namespace: &Map<String, Value>) -> Result<Vec<ArgSpec>, String> {
    let Some(args) = namespace.get("commonTypes").and_then(|t| t.get("Args")) else {
        return Err("the common type `Args` (context.args) is not declared".into());
    };
    let attributes = args
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or("`Args` must be a record")?;
    let mut specs: Vec<ArgSpec> = Vec::new();
    for (name, ty) in attributes {
        if ty.get("required").and_then(Value::as_bool) != Some(false) {
            return Err(format!(
                "`Args.{name}` must be optional (`{name}?`): calls need not carry it"
            ));
        }
        let kind = match type_name(ty) {
            Some("String") => ArgKind::String,
            Some("Long") => ArgKind::Long,
            Some("Bool" | "Boolean") => ArgKind::Bool,
            Some("Set") if ty.get("element").and_then(type_name) == Some("String") => {
                ArgKind::StringSet
            }
            _ => {
                return Err(format!(
                    "`Args.{name}` must be String, Long, Bool or Set<String>"
                ));
            }
        };
        let key = arg_key(name);
        if let Some(other) = specs.iter().find(|s| s.key == key) {
            return Err(format!(
                "`Args.{name}` and `Args.{}` match the same argument names",
                other.name
            ));
        }
        specs.push(ArgSpec {
            name: name.clone(),
            key,
            kind,
        });
    }
    Ok(specs)
}

/// `String`, `Long`, `Bool`, `Set`... of a JSON-schema type.
fn type_name(ty: &Value) -> Option<&str> {
    match ty.get("type").and_then(Value::as_str)? {
        "EntityOrCommon" => ty
            .get("name")
            .and_then(Value::as_str)
            .map(|n| n.strip_prefix("__cedar::").unwrap_or(n)),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATIC: &str = include_str!("../../schemas/warden.cedarschema");

    fn ops(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(o, c)| ((*o).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn build_with(list: &[(&str, &str)]) -> Result<SchemaParts, PolicyError> {
        build(Path::new("warden.cedarschema"), STATIC, &ops(list))
    }

    #[test]
    fn wildcard_groups_nest_like_azure_actions() {
        let parts = build_with(&[(
            "Microsoft.Compute/virtualMachines/extensions/write",
            "write",
        )])
        .unwrap();
        let t = &parts.actions;
        let ext = t
            .get("microsoft.compute/virtualmachines/extensions/write")
            .unwrap();
        assert!(ext.operation);
        assert_eq!(
            ext.parents,
            ["write", "Microsoft.Compute/virtualMachines/extensions/*"]
        );
        assert_eq!(
            t.get("Microsoft.Compute/virtualMachines/extensions/*")
                .unwrap()
                .parents,
            ["Microsoft.Compute/virtualMachines/*"]
        );
        assert_eq!(
            t.get("Microsoft.Compute/virtualMachines/*")
                .unwrap()
                .parents,
            ["Microsoft.Compute/*"]
        );
        assert!(t.get("Microsoft.Compute/*").unwrap().parents.is_empty());
        // Static operations keep their class and gain their group.
        let delete = t.get("Microsoft.Compute/virtualMachines/delete").unwrap();
        assert_eq!(
            delete.parents,
            ["delete", "Microsoft.Compute/virtualMachines/*"]
        );
        assert!(parts.schema.action_entities().is_ok());
    }

    #[test]
    fn catalog_operations_match_ignoring_case_and_may_carry_several_classes() {
        let parts = build_with(&[
            ("microsoft.compute/virtualmachines/DELETE", "privileged"),
            ("Microsoft.Compute/virtualMachines/write", "write"),
            ("Microsoft.Compute/virtualMachines/write", "privileged"),
        ])
        .unwrap();
        let delete = parts
            .actions
            .get("microsoft.compute/virtualmachines/delete")
            .unwrap();
        assert_eq!(delete.name, "Microsoft.Compute/virtualMachines/delete");
        assert!(delete.parents.contains(&"privileged".to_owned()));
        let write = parts
            .actions
            .get("Microsoft.Compute/virtualMachines/write")
            .unwrap();
        assert!(write.parents.contains(&"write".to_owned()));
        assert!(write.parents.contains(&"privileged".to_owned()));
        let err = build_with(&[("Microsoft.Compute/x", "sideways")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown class"), "{err}");
        let err = build_with(&[("Microsoft.Compute/*", "read")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("not an operation name"), "{err}");
        let err = build_with(&[("delete", "delete")]).err().unwrap();
        assert!(err.to_string().contains("class group"), "{err}");
    }

    #[test]
    fn a_request_action_is_in_the_class_of_the_call() {
        let parts =
            build_with(&[("Microsoft.Compute/virtualMachines/write", "privileged")]).unwrap();
        // Declared in `write` (static file) and `privileged` (catalog); a
        // call of class `write` is only in `write`.
        let r = parts
            .actions
            .resolve("microsoft.compute/virtualmachines/write", "write")
            .unwrap();
        assert!(r.declared);
        assert_eq!(r.name, "Microsoft.Compute/virtualMachines/write");
        assert_eq!(
            r.entities[0].1,
            ["write", "Microsoft.Compute/virtualMachines/*"]
        );
        let names: Vec<&str> = r.entities.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Microsoft.Compute/virtualMachines/write",
                "Microsoft.Compute/virtualMachines/*",
                "Microsoft.Compute/*",
                "write"
            ]
        );
        let r = parts
            .actions
            .resolve("Microsoft.Compute/virtualMachines/write", "privileged")
            .unwrap();
        assert_eq!(r.entities[0].1[0], "privileged");
        assert!(parts.actions.resolve("read", "read").is_err());
        assert!(parts.actions.resolve("A/b", "sideways").is_err());
    }

    #[test]
    fn undeclared_operations_resolve_into_class_and_wildcard_groups() {
        let parts = build_with(&[]).unwrap();
        let r = parts
            .actions
            .resolve("Warden/tools/mystery/unknown", "unknown")
            .unwrap();
        assert!(!r.declared);
        let names: Vec<&str> = r.entities.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Warden/tools/mystery/unknown",
                "Warden/tools/mystery/*",
                "Warden/tools/*",
                "Warden/*",
                "unknown"
            ]
        );
        // An undeclared operation under a declared prefix joins the declared
        // groups with their spelling.
        let r = parts
            .actions
            .resolve(
                "microsoft.compute/virtualmachines/powerOff/action",
                "action",
            )
            .unwrap();
        assert_eq!(
            r.entities[0].1,
            ["action", "microsoft.compute/virtualmachines/powerOff/*"]
        );
        assert!(
            r.entities
                .iter()
                .any(|(n, p)| n == "microsoft.compute/virtualmachines/powerOff/*"
                    && p == &["Microsoft.Compute/virtualMachines/*"])
        );
    }

    #[test]
    fn args_are_the_optional_attributes_of_the_args_type() {
        let parts = build_with(&[]).unwrap();
        let vm_size = parts.args.iter().find(|a| a.name == "vm_size").unwrap();
        assert_eq!(
            (vm_size.key.as_str(), vm_size.kind),
            ("vmsize", ArgKind::String)
        );
        let capacity = parts.args.iter().find(|a| a.name == "capacity").unwrap();
        assert_eq!(capacity.kind, ArgKind::Long);
        let bad = STATIC.replace("vm_size?: String", "vm_size: String");
        let err = build(Path::new("s"), &bad, &[]).err().unwrap();
        assert!(err.to_string().contains("must be optional"), "{err}");
    }

    #[test]
    fn class_groups_are_required() {
        let bad = STATIC.replace(
            "action \"read\", \"write\", \"delete\", \"action\", \"privileged\", \"unknown\";",
            "action \"read\", \"write\", \"delete\", \"action\", \"privileged\";",
        );
        let err = build(Path::new("s"), &bad, &[]).err().unwrap();
        assert!(
            err.to_string().contains("\"unknown\" is not declared"),
            "{err}"
        );
    }
}
