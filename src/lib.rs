//! Warden: a security gateway in front of MCP tool servers that manage Azure.
//!
//! See `docs/ARCHITECTURE.md` for the map: [`app`] builds and runs
//! everything; [`pipeline`] composes the stages; [`gateway`] is the MCP
//! front; [`executor`] talks to upstream servers.

pub mod admin;
pub mod app;
pub mod approvals;
pub mod audit;
pub mod azure;
pub mod call;
pub mod catalog;
pub mod config;
pub mod cookies;
pub mod delivery;
pub mod dev;
pub mod executor;
pub mod facts;
pub mod gateway;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod pipeline;
pub mod policy;
pub mod policy_change;
pub mod replicas;
pub mod report;
pub mod response;
pub mod review;
pub mod risk;
pub mod siem;
pub mod store;
