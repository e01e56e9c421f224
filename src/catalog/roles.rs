//! Azure's built-in role definitions by GUID, so that a role assignment
//! can be shown to a reviewer as `Owner` rather than as a GUID. A role not
//! in this table (a custom role, or a built-in one added later) is shown
//! by its GUID and said to be unknown to Warden.

/// `(GUID, role name, privileged)`: privileged roles can grant access or
/// manage every resource in their scope.
const BUILT_IN: &[(&str, &str, bool)] = &[
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", true),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", true),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", false),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
        true,
    ),
    (
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        true,
    ),
    (
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        "Virtual Machine Contributor",
        false,
    ),
    (
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "Key Vault Administrator",
        true,
    ),
    (
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        true,
    ),
    (
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        true,
    ),
    (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Contributor",
        false,
    ),
    (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "Storage Blob Data Owner",
        true,
    ),
    (
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "Storage Blob Data Reader",
        false,
    ),
    (
        "4d97b98b-1d4f-4787-a291-c67834d212e7",
        "Network Contributor",
        false,
    ),
    (
        "fb1c8493-542b-48eb-b624-b4c8fea62acd",
        "Security Admin",
        true,
    ),
    (
        "39bc4728-0917-49c7-9d2c-d95423bc2eb4",
        "Security Reader",
        false,
    ),
    (
        "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
        "Monitoring Reader",
        false,
    ),
];

/// A built-in role, as this table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltInRole {
    pub guid: &'static str,
    pub name: &'static str,
    pub privileged: bool,
}

/// The built-in role of a role definition given as a GUID or as a full id
/// (`/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`),
/// ignoring case.
pub fn built_in_role(role_definition: &str) -> Option<BuiltInRole> {
    let guid = role_definition
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    BUILT_IN
        .iter()
        .find(|(g, _, _)| g.eq_ignore_ascii_case(guid))
        .map(|&(guid, name, privileged)| BuiltInRole {
            guid,
            name,
            privileged,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_found_by_guid_or_id_in_any_case() {
        let owner = built_in_role("8E3AF657-A8FF-443C-A75C-2FE8C4BCB635").unwrap();
        assert_eq!((owner.name, owner.privileged), ("Owner", true));
        let id = "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
        assert_eq!(built_in_role(id).unwrap().name, "Reader");
        assert_eq!(built_in_role("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(built_in_role(""), None);
    }

    /// The simulator serves the same GUIDs under the same names.
    #[test]
    fn the_simulators_roles_agree() {
        for (guid, name, ..) in crate::azure::sim::seed::BUILT_IN_ROLES {
            assert_eq!(built_in_role(guid).map(|r| r.name), Some(name), "{guid}");
        }
    }
}
