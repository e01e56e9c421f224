//! What a reviewer is shown about a request, decoded from the call's own
//! arguments: the audit log keeps arguments redacted (HMACs), which is
//! right for a log and useless to an approver deciding on an Owner role
//! assignment. Decoding never shows a secret: an argument whose name or
//! value says it holds one is shown as hidden.
//!
//! Decoded: role assignments (role by name, assignee with display name and
//! type, scope), VM size and count, the method and path of a raw ARM
//! request, and every argument the policy schema lets policies test
//! (`context.args`: the decision inputs). Time windows show what they ask
//! for, with the members of any action group they name.

use serde_json::Value;

use super::model::{Fact, Facts, OperationRef};
use crate::audit::redact::is_secret;
use crate::catalog::roles::built_in_role;

/// What decoding a call needs besides its arguments.
pub struct Lookups<'a> {
    /// Decision inputs: argument names with ASCII case, `_` and `-`
    /// removed (`vmsize`, `location`, ...).
    pub decision_inputs: &'a [String],
    /// A principal's display name by object id, when Warden knows it.
    pub name_of: &'a dyn Fn(&str) -> Option<String>,
}

/// An argument name with ASCII case, `_` and `-` removed.
fn key(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The first argument whose name (normalized) is one of `names`.
fn find<'v>(
    arguments: &'v serde_json::Map<String, Value>,
    names: &[&str],
) -> Option<(&'v str, &'v Value)> {
    arguments
        .iter()
        .find(|(name, value)| names.contains(&key(name).as_str()) && !value.is_null())
        .map(|(name, value)| (name.as_str(), value))
}

/// A value as shown: strings as they are, anything else as JSON; a secret
/// never.
fn shown(name: &str, value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if is_secret(name, &text) {
        "hidden (a secret)".to_owned()
    } else {
        text
    }
}

const ROLE: &[&str] = &["roledefinitionid", "roledefinition", "role", "roleid"];
const ASSIGNEE: &[&str] = &[
    "principalid",
    "assignee",
    "assigneeobjectid",
    "objectid",
    "principal",
];
const ASSIGNEE_TYPE: &[&str] = &["principaltype", "assigneeprincipaltype"];
const SCOPE: &[&str] = &["scope"];
const ASSIGNMENT: &[&str] = &[
    "assignmentname",
    "roleassignmentid",
    "assignmentid",
    "assignment",
];
const SIZE: &[&str] = &["vmsize", "size"];
const COUNT: &[&str] = &["count", "instancecount", "vmcount", "capacity"];

/// The facts of a tool call with `arguments` performing `operations`.
pub fn of_call(
    arguments: Option<&Value>,
    operations: &[OperationRef],
    lookups: &Lookups<'_>,
) -> Facts {
    let mut facts = Vec::new();
    let Some(Value::Object(arguments)) = arguments else {
        return Facts(facts);
    };
    let mut used: Vec<&str> = Vec::new();

    let assigns_roles = operations.iter().any(|op| {
        op.azure_op
            .eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments/write")
    });
    if assigns_roles {
        if let Some((name, value)) = find(arguments, ROLE) {
            used.push(name);
            let given = shown(name, value);
            facts.push(match built_in_role(&given) {
                Some(role) => Fact::new("Role", role.name).noted(format!(
                    "built-in role {}{}",
                    role.guid,
                    if role.privileged { ", privileged" } else { "" }
                )),
                None => Fact::new("Role", given)
                    .noted("not a built-in role Warden knows: check the role definition"),
            });
        }
        if let Some((name, value)) = find(arguments, ASSIGNEE) {
            used.push(name);
            let oid = shown(name, value);
            facts.push(match (lookups.name_of)(&oid) {
                Some(display) => Fact::new("Assignee", display)
                    .noted(format!("object id {oid}, as Warden has seen it sign in")),
                None => Fact::new("Assignee", oid.clone())
                    .noted("object id; Warden has not seen this principal sign in"),
            });
        }
        if let Some((name, value)) = find(arguments, ASSIGNEE_TYPE) {
            used.push(name);
            facts.push(Fact::new("Assignee type", shown(name, value)));
        }
        if let Some((name, value)) = find(arguments, SCOPE) {
            used.push(name);
            facts.push(Fact::new("Scope", shown(name, value)));
        }
    }
    let removes_roles = operations.iter().any(|op| {
        op.azure_op
            .eq_ignore_ascii_case("Microsoft.Authorization/roleAssignments/delete")
    });
    if removes_roles {
        if let Some((name, value)) = find(arguments, ASSIGNMENT) {
            used.push(name);
            facts.push(Fact::new("Role assignment removed", shown(name, value)));
        }
        if let Some((name, value)) = find(arguments, SCOPE) {
            used.push(name);
            facts.push(Fact::new("Scope", shown(name, value)));
        }
    }
    if let Some((name, value)) = find(arguments, SIZE) {
        used.push(name);
        facts.push(Fact::new("VM size", shown(name, value)));
    }
    if let Some((name, value)) = find(arguments, COUNT) {
        used.push(name);
        facts.push(Fact::new("Count", shown(name, value)));
    }
    if let (Some((m, method)), Some((p, path))) =
        (find(arguments, &["method"]), find(arguments, &["path"]))
    {
        used.extend([m, p]);
        facts.push(Fact::new(
            "Method and path",
            format!(
                "{} {}",
                shown(m, method).to_ascii_uppercase(),
                shown(p, path)
            ),
        ));
    }
    for (name, value) in arguments {
        if used.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        if lookups.decision_inputs.contains(&key(name)) {
            facts.push(
                Fact::new(name, shown(name, value)).noted("a decision input of the policies"),
            );
        }
    }
    Facts(facts)
}

/// The facts of a time-window request: what it asks for, the members of
/// each action group it names (`privileged`: role assignments, ...), the
/// scope and how long.
pub fn of_window(
    asked: &[String],
    scope: &str,
    duration_secs: u64,
    members: &[(String, String)],
) -> Facts {
    let mut facts = vec![Fact::new("Operations", asked.join(", "))];
    for group in asked
        .iter()
        .filter(|g| crate::policy::CLASSES.contains(&g.to_ascii_lowercase().as_str()))
    {
        let in_group: Vec<&str> = members
            .iter()
            .filter(|(_, class)| class.eq_ignore_ascii_case(group))
            .map(|(op, _)| op.as_str())
            .collect();
        let sample = in_group
            .iter()
            .take(8)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = in_group.len().saturating_sub(8);
        facts.push(
            Fact::new(
                &format!("Group {group}"),
                if more > 0 {
                    format!("{sample}, and {more} more")
                } else {
                    sample
                },
            )
            .noted(format!("{} operations Warden knows", in_group.len())),
        );
    }
    facts.push(Fact::new("Scope", scope));
    facts.push(Fact::new(
        "Duration",
        humantime::format_duration(std::time::Duration::from_secs(duration_secs)).to_string(),
    ));
    Facts(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(azure_op: &str) -> OperationRef {
        OperationRef {
            azure_op: azure_op.into(),
            class: "privileged".into(),
            resource: "/subscriptions/s".into(),
        }
    }

    fn find_fact<'a>(facts: &'a Facts, label: &str) -> &'a Fact {
        facts
            .0
            .iter()
            .find(|f| f.label == label)
            .unwrap_or_else(|| panic!("no {label} in {facts:?}"))
    }

    #[test]
    fn role_assignments_show_the_role_by_name_and_the_assignee() {
        let known = |oid: &str| (oid == "b0b").then(|| "bob@contoso.example".to_owned());
        let lookups = Lookups {
            decision_inputs: &[],
            name_of: &known,
        };
        let facts = of_call(
            Some(&json!({
                "scope": "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
                "role-definition-id": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
                "principal-id": "b0b",
                "principal-type": "User",
            })),
            &[op("Microsoft.Authorization/roleAssignments/write")],
            &lookups,
        );
        let role = find_fact(&facts, "Role");
        assert_eq!(role.value, "Owner");
        assert!(role.note.as_deref().unwrap().contains("privileged"));
        assert_eq!(find_fact(&facts, "Assignee").value, "bob@contoso.example");
        assert_eq!(find_fact(&facts, "Assignee type").value, "User");
        assert_eq!(
            find_fact(&facts, "Scope").value,
            "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
        );
        // A stranger and a custom role are shown as what they are.
        let facts = of_call(
            Some(&json!({"role-definition-id": "1234", "principal-id": "c4r01"})),
            &[op("Microsoft.Authorization/roleAssignments/write")],
            &lookups,
        );
        assert!(
            find_fact(&facts, "Role")
                .note
                .as_deref()
                .unwrap()
                .contains("not a built-in role")
        );
        assert_eq!(find_fact(&facts, "Assignee").value, "c4r01");
    }

    #[test]
    fn sizes_counts_raw_requests_and_decision_inputs_are_shown_and_secrets_never() {
        let inputs = vec!["location".to_owned(), "sku".to_owned()];
        let nobody = |_: &str| None;
        let lookups = Lookups {
            decision_inputs: &inputs,
            name_of: &nobody,
        };
        let facts = of_call(
            Some(&json!({
                "vm-size": "Standard_D64s_v5",
                "count": 12,
                "location": "westeurope",
                "sku": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
                "admin-password": "hunter2",
                "method": "delete",
                "path": "/subscriptions/s/resourceGroups/g",
            })),
            &[op("Microsoft.Compute/virtualMachines/write")],
            &lookups,
        );
        assert_eq!(find_fact(&facts, "VM size").value, "Standard_D64s_v5");
        assert_eq!(find_fact(&facts, "Count").value, "12");
        assert_eq!(find_fact(&facts, "location").value, "westeurope");
        assert_eq!(find_fact(&facts, "sku").value, "hidden (a secret)");
        assert_eq!(
            find_fact(&facts, "Method and path").value,
            "DELETE /subscriptions/s/resourceGroups/g"
        );
        let text = serde_json::to_string(&facts).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        // No role facts without a role assignment.
        assert!(facts.0.iter().all(|f| f.label != "Role"));
        // A removal names the assignment and its scope.
        let facts = of_call(
            Some(&json!({"scope": "/subscriptions/s", "assignment-name": "6f1c0d4e"})),
            &[op("Microsoft.Authorization/roleAssignments/delete")],
            &lookups,
        );
        assert_eq!(
            find_fact(&facts, "Role assignment removed").value,
            "6f1c0d4e"
        );
        assert_eq!(find_fact(&facts, "Scope").value, "/subscriptions/s");
    }

    #[test]
    fn windows_show_the_members_of_their_groups() {
        let members = vec![
            (
                "Microsoft.Authorization/roleAssignments/write".to_owned(),
                "privileged".to_owned(),
            ),
            (
                "Microsoft.Compute/virtualMachines/read".to_owned(),
                "read".to_owned(),
            ),
        ];
        let facts = of_window(
            &["privileged".to_owned()],
            "/subscriptions/s",
            3600,
            &members,
        );
        let group = find_fact(&facts, "Group privileged");
        assert_eq!(group.value, "Microsoft.Authorization/roleAssignments/write");
        assert_eq!(find_fact(&facts, "Duration").value, "1h");
        assert_eq!(find_fact(&facts, "Scope").value, "/subscriptions/s");
    }
}
