//! Azure: Warden's own credential toward Azure (`azure_identity`, chosen by
//! configuration) and the Azure Resource Manager side of the gateway; and
//! [`ArmId`], the parsed ARM resource id every stage shares (a leaf).

pub mod certificate;
pub mod client;
pub mod credential;
pub mod id;
pub mod sim;

pub use id::ArmId;

use std::path::Path;

use serde::Deserialize;

/// `[azure]`: Warden's own access to Azure Resource Manager, used by the
/// built-in Azure tools (`[upstreams.NAME] builtin = "arm"`).
///
/// ```toml
/// [azure.arm]
/// endpoint = "https://management.azure.com"
/// [azure.credential]
/// kind = "managed_identity"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Endpoint, timeouts, retries, long-running operations, api-versions.
    #[serde(default)]
    pub arm: client::ArmConfig,
    /// Which credential fetches Warden's tokens (default: the chain).
    #[serde(default)]
    pub credential: credential::CredentialSettings,
}

impl AzureConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.arm.validate()
    }

    /// Makes the credential's files relative to `base` (the config file's
    /// folder).
    pub fn resolve(&mut self, base: &Path) {
        self.credential.credential.resolve_files(base);
    }
}
