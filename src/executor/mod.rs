//! Stage 7: performing a tool call, through upstream MCP servers (child
//! processes, remote servers) or Warden's own built-in servers.

pub mod arm_tools;
mod post;
mod shared;
mod upstream;

use std::sync::Arc;

use rmcp::ServiceExt;

pub use shared::SharedServers;
pub(crate) use upstream::cancel;
pub use upstream::{
    Downstream, REQUEST_CANCELLED, Timeouts, UPSTREAM_TIMEOUT, UpstreamConn, UpstreamError,
};

use crate::azure::client::ArmClient;

/// The servers Warden runs itself for its sessions: the built-in MCP
/// servers it runs in process, by the name `[upstreams.NAME] builtin =
/// "..."` gives them, and the shared children of `serve = "http"`
/// upstreams.
#[derive(Clone, Default, Debug)]
pub struct Builtins {
    arm: Option<Arc<ArmClient>>,
    shared: SharedServers,
}

impl Builtins {
    /// The shared children (started by [`SharedServers::start`]).
    pub fn with_shared(mut self, shared: SharedServers) -> Self {
        self.shared = shared;
        self
    }

    /// The shared children of `serve = "http"` upstreams.
    pub fn shared(&self) -> &SharedServers {
        &self.shared
    }

    /// The built-in Azure tools ([`arm_tools`]), calling ARM with `client`.
    pub fn with_arm(mut self, client: Arc<ArmClient>) -> Self {
        self.arm = Some(client);
        self
    }

    /// Whether `name` can be started.
    pub fn has(&self, name: &str) -> bool {
        name == arm_tools::BUILTIN_NAME && self.arm.is_some()
    }

    /// Serves built-in `name` for one session on `transport`.
    fn start(&self, name: &str, transport: tokio::io::DuplexStream) -> Result<(), String> {
        match (name, &self.arm) {
            (arm_tools::BUILTIN_NAME, Some(client)) => {
                let server = arm_tools::ArmTools::new(client.clone());
                tokio::spawn(async move {
                    match server.serve(transport).await {
                        Ok(running) => {
                            let _ = running.waiting().await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "built-in ARM tools did not start");
                        }
                    }
                });
                Ok(())
            }
            (arm_tools::BUILTIN_NAME, None) => {
                Err("the built-in Azure tools need the [azure] table".to_owned())
            }
            (other, _) => Err(format!("no built-in server named {other:?}")),
        }
    }
}
