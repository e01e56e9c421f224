//! Stage 7: performing a tool call. For now, through upstream MCP servers.

mod upstream;

pub(crate) use upstream::cancel;
pub use upstream::{Downstream, REQUEST_CANCELLED, UpstreamConn, UpstreamError};
