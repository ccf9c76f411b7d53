//! The HTTP surface: REST under `/api/v1`, the WebSocket, operations endpoints, and the shared
//! [`AppState`] every handler receives through `with_state`.

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod break_glass;
pub mod error;
pub mod extract;
pub mod hl7;
pub mod messages;
pub mod oncall;
pub mod openapi;
pub mod ops;
pub mod retention;
pub mod rooms;
pub mod signin;
pub mod webapp;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::audit::sink::AuditSink;
use crate::auth::UsageLog;
use crate::chat::Chat;
use crate::chat::receipts::Delivered;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::store::Store;

/// Everything handlers need; cloned per request (all fields are cheap handles).
#[derive(Clone)]
pub struct AppState {
    /// The chat core.
    pub chat: Arc<Chat>,
    /// The HL7 v2 interface.
    pub hl7: Arc<crate::hl7::Hl7>,
    /// Rosters, role routing and escalation.
    pub oncall: Arc<crate::oncall::Oncall>,
    /// The database.
    pub store: Store,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Queue of delivery receipts for the batch writer.
    pub receipts: mpsc::UnboundedSender<Delivered>,
    /// Cancelled when the server shuts down; long-lived connections watch it.
    pub shutdown: CancellationToken,
    /// Group-committed audit entries for accesses without a change transaction.
    pub audit: AuditSink,
    /// When each token's use was last audited.
    pub token_usage: Arc<UsageLog>,
    /// Service tokens validated in the last moments (forget it after revoking or deactivating).
    pub tokens: Arc<crate::auth::cache::TokenCache>,
    /// Budget of failed authentications per client address.
    pub auth_failures: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// EHR and identity-provider discovery, and the HTTP client that talks to them.
    pub providers: Arc<crate::smart::discovery::Providers>,
}

/// Builds the router with all routes, limits and middleware.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/me", get(admin::me))
        .route("/users", get(admin::list_users).post(admin::create_user))
        .route("/tokens", post(admin::create_token))
        .route("/tokens/{token_id}", delete(admin::revoke_token))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route("/rooms/{room_id}", get(rooms::get_one))
        .route(
            "/rooms/{room_id}/members",
            get(rooms::members).post(rooms::add_member),
        )
        .route("/rooms/{room_id}/members/{user_id}", delete(rooms::remove_member))
        .route(
            "/rooms/{room_id}/messages",
            get(messages::history).post(messages::send),
        )
        .route("/rooms/{room_id}/break-glass", post(break_glass::request))
        .route("/break-glass", get(break_glass::list))
        .route("/break-glass/{grant_id}/review", post(break_glass::review))
        .route(
            "/rooms/{room_id}/attachments",
            post(attachments::upload).layer(DefaultBodyLimit::max(state.config.limits.max_attachment_bytes)),
        )
        .route("/attachments/{attachment_id}", get(attachments::download))
        .route("/rooms/{room_id}/archive", post(retention::archive))
        .route("/legal-holds", get(retention::list).post(retention::place))
        .route("/legal-holds/{hold_id}/release", post(retention::release))
        .route("/retention/run", post(retention::run))
        .route("/rosters", post(oncall::upload))
        .route("/oncall/run", post(oncall::run))
        .route("/oncall/{service}", get(oncall::lookup))
        .route("/oncall/{service}/messages", post(oncall::message))
        .route("/messages", get(messages::sync))
        .route("/messages/{message_id}/read", post(messages::read))
        .route("/messages/{message_id}/ack", post(messages::ack))
        .route("/messages/{message_id}/receipts", get(messages::receipts))
        .route("/ws", get(ws::upgrade))
        .route("/session", get(signin::session))
        .route("/rooms/{room_id}/patient", get(rooms::patient))
        .route("/audit", get(audit::search))
        .route("/audit/export", get(audit::export))
        .route("/audit/verify", get(audit::verify))
        .route("/openapi.json", get(openapi::document));
    let max_body = state.config.limits.max_request_bytes;
    let tls = state.config.tls.cert_file.is_some();
    let router = Router::new()
        .nest("/api/v1", api)
        .nest("/fhir", crate::fhir::routes())
        .route("/hl7", post(hl7::receive))
        .route("/smart/launch", get(crate::smart::launch::launch))
        .route("/smart/callback", get(crate::smart::launch::callback))
        .route("/smart/jwks.json", get(crate::smart::launch::jwks))
        .route("/auth/login", get(signin::login))
        .route("/auth/callback", get(signin::callback))
        .route("/auth/logout", post(signin::logout))
        .merge(webapp::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let router = contain_panics(router, panic_problem)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The route template only: never the query string, which may carry a token.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "unmatched".into());
                    tracing::info_span!("http", method = %req.method(), route)
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state);
    if tls {
        // Browsers must not fall back to plain HTTP once they have seen this server over TLS.
        router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
    } else {
        router
    }
}

/// A handler under `router` that panics gets `answer` sent for it (and is counted and traced by
/// the layers outside this one) instead of its client's connection dropped without an answer.
/// The panic's message is never echoed: it may hold data the handler was working on. `/fhir`
/// answers with an OperationOutcome, the rest with [`panic_problem`].
pub fn contain_panics<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    answer: fn() -> Response,
) -> Router<S> {
    router.layer(CatchPanicLayer::custom(
        move |_: Box<dyn std::any::Any + Send>| answer(),
    ))
}

/// The REST answer for a handler that panicked: a 500 problem document (logged as an internal
/// error).
pub fn panic_problem() -> Response {
    Error::Internal("a request handler failed unexpectedly".into()).into_response()
}

async fn not_found() -> Error {
    Error::NotFound("resource")
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Labels without per-request formatting: a static method name, the route template shared
    // by the two series, and the status as its three digits.
    let method = method_label(req.method());
    let route: Arc<str> = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| Arc::from("unmatched"), |p| Arc::from(p.as_str()));
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("wardline_http_requests_total", "method" => method, "route" => metrics::SharedString::from_shared(route.clone()), "status" => status)
        .increment(1);
    metrics::histogram!("wardline_http_request_duration_seconds", "method" => method, "route" => metrics::SharedString::from_shared(route))
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The method as a metric label; anything outside the standard set is counted as `other`, so a
/// client sending made-up methods cannot create new series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("while reading MRN-12345")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_a_problem_document() {
        let app: Router = contain_panics(Router::new().route("/boom", get(boom)), panic_problem);
        let request = Request::get("/boom").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("answered");
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(problem["status"], 500);
        assert!(!String::from_utf8_lossy(&body).contains("MRN-12345"), "{problem}");
    }
}
