//! The types every stage shares: the authenticated caller ([`Principal`],
//! which identity builds from a token) and the tool call ([`ToolCall`],
//! built by the front once the caller is authenticated, read by
//! resolution, risk, policy, approvals and the audit log). A leaf module:
//! it imports no other module of the crate.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use rmcp::model::ToolAnnotations;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether the token represents a signed-in user or an application acting
/// as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A delegated token (it carries `scp`).
    User,
    /// An app-only token (no `scp`, or `idtyp = "app"`).
    Application,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Application => "application",
        }
    }
}

/// Who is calling. Identity is [`Principal::key`] = (`tid`, `oid`); every
/// other field is a fact for policy and audit, and `display_name` is for
/// display only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Tenant id.
    pub tid: String,
    /// Object id of the user or service principal in `tid`.
    pub oid: String,
    pub kind: PrincipalKind,
    /// First of `upn`, `preferred_username`, `app_displayname`, `name`,
    /// else the oid. Never use it for decisions: users can often edit it.
    pub display_name: String,
    /// Group object ids from `groups`. Empty and meaningless when
    /// `groups_overage` is set.
    pub groups: BTreeSet<String>,
    /// The token said the user has more groups than fit in it; the group set
    /// is unknown (not empty).
    pub groups_overage: bool,
    /// App roles (`roles`).
    pub roles: BTreeSet<String>,
    /// Delegated scopes (`scp`, space-separated in the token).
    pub scopes: BTreeSet<String>,
    /// The calling client application (`azp` in v2, `appid` in v1).
    pub client_app: Option<String>,
    /// Peer address of the HTTP connection, as given by the caller.
    pub source_ip: Option<IpAddr>,
    /// The `ipaddr` claim: where the token was obtained, per Entra.
    pub ip_claim: Option<String>,
    /// The `uti` claim (token identifier, for correlation with sign-in logs).
    pub token_id: Option<String>,
    /// Multi-factor authentication: `amr` contains `mfa`, or `acrs` holds a
    /// configured MFA authentication context.
    pub mfa: bool,
    /// Satisfied authentication contexts (`acrs`).
    pub acrs: BTreeSet<String>,
    /// Client capabilities (`xms_cc`); `cp1` means the client handles claims
    /// challenges.
    pub client_capabilities: BTreeSet<String>,
    /// `iat`, unix seconds; `None` only for the anonymous principal or a
    /// token without `iat`.
    pub issued_at: Option<u64>,
    /// `exp`, unix seconds; `None` only for the anonymous principal.
    pub expires_at: Option<u64>,
    /// The facade grant a Warden access token stands for (`None` for an
    /// Entra token): an MCP session is bound to the grant that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// A guest (B2B) user of the tenant: the token's `acct` is 1, or its
    /// `idp` names another tenant's issuer.
    #[serde(default)]
    pub guest: bool,
}

/// Tenant and object id of [`Principal::anonymous`].
pub const ANONYMOUS: &str = "anonymous";

impl Principal {
    /// The identity key: (`tid`, `oid`).
    pub fn key(&self) -> (String, String) {
        (self.tid.clone(), self.oid.clone())
    }

    /// The principal every request gets under `identity.allow_anonymous`:
    /// tid and oid `"anonymous"`, no groups, roles, scopes or MFA.
    pub fn anonymous(source_ip: Option<IpAddr>) -> Self {
        Self {
            tid: ANONYMOUS.to_owned(),
            oid: ANONYMOUS.to_owned(),
            kind: PrincipalKind::User,
            display_name: ANONYMOUS.to_owned(),
            groups: BTreeSet::new(),
            groups_overage: false,
            roles: BTreeSet::new(),
            scopes: BTreeSet::new(),
            client_app: None,
            source_ip,
            ip_claim: None,
            token_id: None,
            mfa: false,
            acrs: BTreeSet::new(),
            client_capabilities: BTreeSet::new(),
            issued_at: None,
            expires_at: None,
            grant: None,
            guest: false,
        }
    }

    /// Whether this is the [`Principal::anonymous`] principal.
    pub fn is_anonymous(&self) -> bool {
        self.tid == ANONYMOUS && self.oid == ANONYMOUS
    }
}

/// What the front knows about a tool call when it enters the pipeline.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The verified caller, as the front authenticated it.
    pub principal: Arc<Principal>,
    /// MCP session the call arrived on (`stdio` for the stdio front).
    pub session: String,
    /// The tool name as the client called it (namespaced if several upstreams).
    pub tool: String,
    /// The upstream that serves the tool.
    pub upstream: String,
    /// The tool name at the upstream.
    pub upstream_tool: String,
    /// Identifies the call across its audit records (UUIDv7).
    pub call_id: String,
    /// The call's arguments as the client sent them.
    pub arguments: Option<Value>,
    /// The HTTP `User-Agent` of the client, when there is one.
    pub user_agent: Option<String>,
    /// The tool's MCP annotations as its upstream lists them (resolution
    /// falls back on them for tools the catalog does not name).
    pub annotations: Option<ToolAnnotations>,
    /// Where the client finds the protected-resource metadata, for step-up
    /// challenges (`None` on stdio).
    pub resource_metadata: Option<String>,
}

impl ToolCall {
    /// A new call id.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}
