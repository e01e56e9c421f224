//! Building blocks of Warden's OAuth authorization-server facade in front
//! of Entra ID.
//!
//! With `[oauth] mode = "facade"` or `"both"`, Warden is the MCP clients'
//! authorization server: clients register (pre-registered, Client ID
//! Metadata Documents, or dynamic registration), consent once per client,
//! and receive Warden's own opaque tokens; Warden signs the user in at
//! Entra ID as a confidential client and keeps Entra's tokens, sealed,
//! beside the grant. [`routes`] serves the endpoints (metadata, authorize,
//! consent, callback, token, revoke, register) over [`service`], which
//! composes the checks and formats of the other files, each doing one thing:
//!
//! | File | What it does |
//! |---|---|
//! | [`config`] | the `[oauth]` section: mode, issuer, lifetimes, clients, CIMD, DCR, key files, Entra upstream |
//! | [`tokens`] | opaque `wdn_at_` / `wdn_rt_` / `wdn_code_` tokens and their peppered HMAC stored form |
//! | [`seal`] | AES-256-GCM sealing with HKDF-derived keys from a rotating key file |
//! | [`pkce`] | S256 verification, verifier and challenge syntax, Warden's own PKCE pair |
//! | [`redirect`] | redirect URI registration rules and matching (exact; any port on loopback) |
//! | [`resource`] | RFC 8707 `resource` canonicalisation and the `invalid_target` check |
//! | [`metadata`] | the issuer, the RFC 8414 metadata document and the paths it is served at |
//! | [`client`] | the resolved client every flow works with, and how a client id is told apart |
//! | [`cimd`] | SSRF-safe fetching, validation and caching of Client ID Metadata Documents |
//! | [`dcr`] | dynamic registration requests, stateless `wdc_` client ids, a per-IP rate limiter |
//! | [`entra`] | Warden as Entra ID's confidential client: the authorize URL, code redemption and refresh (client secret, certificate or workload-identity assertion), refusals told apart from outages |
//! | [`consent`] | consents waiting for an answer, remembered consents, and sign-ins in flight toward Entra |
//! | [`grants`] | the grant book: grants, issued codes and tokens, rotation, reuse detection, revocation (pure, time as input) |
//! | [`service`] | the facade: authorize, decide, callback, token, refresh, revoke, register, authenticate; its state in the store; its audit records |
//! | [`routes`] | the HTTP endpoints over [`service`] |
//! | [`page`] | the consent and error pages |
//! | [`shared`] | keyed reads and compare-and-sets on the store's `state` table: how replicas share grants, consents, transactions and the approvals page's sessions |
//! | [`step_up`] | step-up marks on grants: wanted by policy, taken by one `403 insufficient_scope`, answered by the client's step-up sign-in |
//!
//! Nothing here logs a token, a secret or a key; the types that hold one
//! implement `Debug` without it.

pub mod cimd;
pub mod client;
pub mod config;
pub mod consent;
pub mod dcr;
pub mod entra;
pub mod grants;
pub mod metadata;
pub mod page;
pub mod pkce;
pub mod redirect;
pub mod resource;
pub mod routes;
pub mod seal;
pub mod service;
pub mod shared;
pub mod step_up;
pub mod tokens;
