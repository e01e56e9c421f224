//! The intent record the audit benchmarks write (`benches/verify.rs`,
//! `examples/audit_bench.rs`): like a real one, ~700 bytes of canonical
//! JSON with redacted arguments. Included by path, so it is one file.

use serde_json::json;
use warden::audit::Audit;
use warden::audit::record::{Actor, Kind, Record};

/// An intent of writer `w` (its principal, session and VM); the caller
/// sets the call id.
pub fn intent(audit: &Audit, w: u64) -> Record {
    let tool = "azure_vm_restart";
    let args = json!({
        "subscription_id": "6f1c2a9e-3b7d-4c1e-9a2f-8d0e5b4c7a13",
        "resource_group": "rg-prod-weu-payments",
        "vm_name": format!("vm-payments-weu-{w:03}"),
        "location": "westeurope",
        "reason": "Restart after the patch window, change CHG0041823",
    });
    Record {
        principal: Some(Actor {
            tid: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            oid: format!("00000000-0000-4000-8000-{w:012}"),
            name: format!("writer{w}@contoso.example"),
            kind: "user".into(),
            client_app: None,
            auth_path: None,
            guest: false,
            roles: vec!["Operator".into()],
            groups: Vec::new(),
        }),
        session_id: Some(format!("session-{w}")),
        tool: Some(tool.into()),
        upstream: Some("azure-mcp".into()),
        upstream_tool: Some("vm_restart".into()),
        arguments: Some(audit.redactor().arguments(tool, &args)),
        ..Record::new(Kind::Intent)
    }
}
