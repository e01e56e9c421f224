//! A principal suspended for real: a Warden with the baseline policies and
//! the baseline response rules, in front of the demo upstream through a
//! test catalog that makes `echo` a VM delete and `add` a VM read, and a
//! principal deleting VM after VM until the mass-deletion rule
//! (`floor:delete_spike`: more than five times the usual deletes in an
//! hour, and at least three) suspends it and opens an incident.
//!
//! This Warden has no Azure to look the VMs up in, and the burst scores
//! high before the floor: the guardrails that would hold or refuse those
//! deletes (`delete-without-facts-requires-jit`, `high-risk-requires-jit`,
//! `critical-risk-denied`) are recorded, not enforced, so every delete
//! runs and counts until the floor, and only the suspension refuses.
//! Included with `#[path]` beside `mod common;`.

#![allow(dead_code)]

use serde_json::{Value, json};

use crate::common::gate::{Gate, baseline_copy, shadow_policy};
use crate::common::{Client, InProcess, call, text};

/// `echo` deletes the VM its arguments name, `add` reads it.
pub const DELETE_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
class = "delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

/// What a suspended principal's call is answered with.
pub const SUSPENDED: &str = "is suspended by Warden";

/// The arguments of `echo` (a delete) of VM `name`.
pub fn delete(name: &str) -> Value {
    json!({"text": name, "subscription": SUB, "resource-group": "dev-web", "vm": name})
}

/// The arguments of `add` (a read) of VM `name`.
pub fn read(name: &str) -> Value {
    json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "dev-web", "vm": name})
}

/// The Warden, and the directory its policies are in (kept while it runs).
pub struct Responding {
    pub gate: Gate<InProcess>,
    _policies: tempfile::TempDir,
}

impl Responding {
    /// Warden as above; `tables`: more config tables (e.g. `[response]`).
    pub async fn start(tables: &str) -> Responding {
        let policies_dir = tempfile::tempdir().unwrap();
        let policies = baseline_copy(policies_dir.path(), None);
        shadow_policy(&policies, "delete-without-facts-requires-jit");
        shadow_policy(&policies, "high-risk-requires-jit");
        shadow_policy(&policies, "critical-risk-denied");
        let gate =
            Gate::start_in_process(DELETE_CATALOG, &format!("dir = {policies:?}\n"), tables).await;
        Responding {
            gate,
            _policies: policies_dir,
        }
    }

    /// A client of `user` (a Contributor, signed in with MFA).
    pub async fn contributor(&self, user: &str) -> Client {
        self.gate.client(user, &["Contributor"], true).await
    }
}

/// What a burst of deletes ended with.
pub struct Burst {
    /// The VMs deleted (each call ran).
    pub deleted: Vec<String>,
    /// The refusal of the first call after the suspension.
    pub refusal: String,
}

/// `client` deletes VMs named `{prefix}-01`, `-02`, ... until a call is
/// refused for the suspension (at most `most` calls).
pub async fn delete_until_suspended(client: &Client, prefix: &str, most: usize) -> Burst {
    let mut deleted = Vec::new();
    for i in 1..=most {
        let name = format!("{prefix}-{i:02}");
        let result = call(client, "echo", delete(&name)).await.unwrap();
        let answer = text(&result);
        if result.is_error == Some(true) {
            assert!(
                answer.contains(SUSPENDED),
                "only the suspension refuses a delete here: {answer}"
            );
            return Burst {
                deleted,
                refusal: answer,
            };
        }
        deleted.push(name);
    }
    panic!("{most} deletes never led to a suspension: {deleted:?}");
}
