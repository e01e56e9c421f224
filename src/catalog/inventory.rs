//! Tool inventories: a snapshot of an upstream's `tools/list` (tool names,
//! argument names, annotations, `_meta` hints), kept beside the catalog as
//! `<server>.inventory.json`. With an inventory present, loading a catalog
//! checks every tool name and every template placeholder against it, so a
//! typo is a load error rather than a silently widened scope. The
//! `tests/catalog.rs` integration test compares the inventory with the live
//! server's `tools/list` (and rewrites it when `WARDEN_WRITE_INVENTORY=1`).

use serde::{Deserialize, Serialize};

/// One upstream server's tools, as listed by `tools/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The server's name, e.g. `azmcp`.
    pub server: String,
    /// The server's version the snapshot was taken from, e.g. `2.0.5`.
    pub version: String,
    pub tools: Vec<InventoryTool>,
}

/// One tool of an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryTool {
    pub name: String,
    /// The property names of the tool's `inputSchema`, sorted.
    pub arguments: Vec<String>,
    /// `annotations.readOnlyHint`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// `annotations.destructiveHint`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    /// `_meta.SecretHint`: the tool handles secrets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// `_meta.LocalRequiredHint`: the tool works on the server's own host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_required: bool,
}

impl InventoryTool {
    /// The tool's annotations as an MCP client sees them.
    pub fn annotations(&self) -> Option<rmcp::model::ToolAnnotations> {
        if self.read_only.is_none() && self.destructive.is_none() {
            return None;
        }
        let mut annotations = rmcp::model::ToolAnnotations::new();
        annotations.read_only_hint = self.read_only;
        annotations.destructive_hint = self.destructive;
        Some(annotations)
    }

    /// The inventory entry of a tool as listed by an MCP server.
    pub fn from_tool(tool: &rmcp::model::Tool) -> InventoryTool {
        let mut arguments: Vec<String> = tool
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        arguments.sort();
        let hint = |key: &str| {
            tool.meta
                .as_ref()
                .and_then(|m| m.get(key))
                .is_some_and(|v| v == &serde_json::Value::Bool(true))
        };
        InventoryTool {
            name: tool.name.to_string(),
            arguments,
            read_only: tool.annotations.as_ref().and_then(|a| a.read_only_hint),
            destructive: tool.annotations.as_ref().and_then(|a| a.destructive_hint),
            secret: hint("SecretHint"),
            local_required: hint("LocalRequiredHint"),
        }
    }
}

impl Inventory {
    /// The inventory as stored: one tool per line, sorted by name, so that a
    /// new upstream version shows as a readable diff.
    pub fn to_file_text(&self) -> String {
        let mut tools = self.tools.clone();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        let lines: Vec<String> = tools
            .iter()
            .map(|t| format!("    {}", serde_json::to_string(t).unwrap_or_default()))
            .collect();
        format!(
            "{{\n  \"server\": {},\n  \"version\": {},\n  \"tools\": [\n{}\n  ]\n}}\n",
            serde_json::Value::from(self.server.as_str()),
            serde_json::Value::from(self.version.as_str()),
            lines.join(",\n")
        )
    }
}
