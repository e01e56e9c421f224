//! Just-in-time approvals (pipeline stage 5, the `approve` stage): a
//! call that policy denies with advice `require_approval` becomes a JIT
//! request; security managers review it; an approved request is a grant
//! that reaches Cedar as `context.jit`, bound to the exact call (single
//! use) or to operations at a scope for a time window.
//!
//! State is event-sourced from the audit log: every change is an
//! `approval` record carrying the request's new state, so the log is the
//! store of record and the in-memory state is rebuilt from it at start.

pub mod engine;
pub mod facts;
pub mod lifecycle;
pub mod model;
pub mod notify;
pub mod tools;

pub use engine::{
    ApprovalError, Approvals, ApprovalsConfig, Filter, Gate, Listing, RiskAlert, WindowAsk,
    risk_score,
};
pub use lifecycle::Verdict;
pub use model::{Ask, Fact, Facts, Grant, OperationRef, Party, Request, Review, Status};
