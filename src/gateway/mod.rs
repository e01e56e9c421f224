//! The MCP front: Streamable HTTP (`/mcp`) and stdio, plus the operational
//! endpoints `/healthz`, `/readyz` and `/metrics`.

mod auth;
pub mod http;
mod jsonrpc;
mod lane;
mod message;
mod names;
mod origin;
mod ready;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use names::Names;

use crate::identity::Principal;
pub use session::{Gateway, Session};

/// The HTTP application: `/mcp`, the operational endpoints and `/admin/`,
/// whose page offers sign-in with Entra ID when `page_entra` is given, and
/// the access review `campaigns`.
pub fn router(
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    page_entra: Option<crate::admin::EntraSignIn>,
    campaigns: Arc<crate::review::campaigns::Campaigns>,
) -> Router {
    let server = &gateway.config.server;
    // The transport checks `Host`; `Origin` is checked before it, by
    // Warden's own rules (same-origin for the allowed hosts, or listed).
    let mut http = StreamableHttpServerConfig::default()
        .with_allowed_hosts(server.allowed_hosts.clone())
        .disable_allowed_origins();
    let origins = Arc::new(origin::Origins::new(
        &server.allowed_hosts,
        &server.allowed_origins,
    ));
    http.max_request_body_bytes = server.max_body_bytes;
    http.cancellation_token = shutdown;
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(server.session_idle_timeout);
    let sessions = Arc::new(sessions);
    let lanes = lane::Lanes::new(gateway.clone(), sessions.clone());
    let factory = {
        let gateway = gateway.clone();
        move || Ok(gateway.session())
    };
    let bindings = Arc::new(auth::Bindings::new(sessions.clone(), server.max_sessions));
    let mcp = Shared(Arc::new(StreamableHttpService::new(
        factory, sessions, http,
    )));
    // Outermost first: check the origin, authenticate, take the fast lane
    // (a plain `tools/call`), else screen the body, then MCP.
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn_with_state(
            server.max_body_bytes,
            jsonrpc::screen,
        ))
        .layer(axum::middleware::from_fn_with_state(lanes, lane::serve))
        .layer(axum::middleware::from_fn_with_state(
            (gateway.clone(), bindings),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(origins, origin::guard));
    let admin = crate::admin::router(
        gateway.identity.clone(),
        gateway.pipeline.approvals().clone(),
        crate::admin::SignInOptions {
            audit: Some(gateway.pipeline.audit().clone()),
            entra: page_entra,
            policy: Some((
                gateway.pipeline.policy().clone(),
                gateway.pipeline.catalog().clone(),
            )),
            campaigns: Some(campaigns.clone()),
            responses: Some(gateway.pipeline.responses().clone()),
        },
    );
    let campaigns_admin = crate::admin::campaigns_router(gateway.identity.clone(), campaigns);
    let policy_admin =
        crate::admin::policy_router(gateway.identity.clone(), gateway.pipeline.clone());
    let responses_admin = crate::admin::responses_router(
        gateway.identity.clone(),
        gateway.pipeline.approvals().clone(),
        gateway.pipeline.responses().clone(),
    );
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/.well-known/oauth-protected-resource", get(auth::metadata))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(auth::metadata),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gateway)
        .merge(admin)
        .merge(policy_admin)
        .merge(campaigns_admin)
        .merge(responses_admin)
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let report = ready::check(
        &gateway.identity,
        gateway.pipeline.audit(),
        gateway.upstreams(),
        gateway.shared(),
        gateway.replicas.agreement(),
    )
    .await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.metrics.render(),
    )
}

/// Serves one MCP session over this process's stdin/stdout until the client
/// closes it or `shutdown` is cancelled, on behalf of `principal`.
pub async fn serve_stdio(
    gateway: Arc<Gateway>,
    principal: Principal,
    shutdown: CancellationToken,
) -> Result<(), std::io::Error> {
    let session = gateway
        .stdio_session(principal)
        .serve_with_ct(rmcp::transport::stdio(), shutdown.child_token());
    let running = tokio::select! {
        running = session => running.map_err(std::io::Error::other)?,
        () = shutdown.cancelled() => return Ok(()),
    };
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// The SDK's Streamable HTTP service behind an `Arc`. The router clones
/// the service it falls back to for every request, the lane's included,
/// and the SDK's own clone copies its configuration (the allowed hosts, a
/// cancellation token); this one clones a pointer.
struct Shared<S>(Arc<S>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<S, M> tower::Service<axum::extract::Request> for Shared<StreamableHttpService<S, M>>
where
    S: rmcp::ServerHandler + Send + 'static,
    M: rmcp::transport::streamable_http_server::SessionManager,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(request).await.into_response()) })
    }
}
