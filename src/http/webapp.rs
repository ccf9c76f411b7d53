//! The clinician web app (`smart-launch/`), compiled into the binary and served at `/app/`, so a
//! deployment is one file. Its pages may be framed only by Wardline itself and the trusted EHRs
//! (`frame-ancestors`), and may load nothing from elsewhere.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use crate::error::Error;

/// The app's files: name, content type, content.
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../smart-launch/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../smart-launch/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/api.js"),
    ),
    (
        "composer.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/composer.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/live.js"),
    ),
    (
        "messages.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/messages.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../smart-launch/ui.js"),
    ),
];

/// `/` and `/app/...`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/app/") }))
        .route("/app", get(|| async { Redirect::to("/app/") }))
        .route(
            "/app/",
            get(|state: State<AppState>| file(state, Path("index.html".to_string()))),
        )
        .route("/app/{name}", get(file))
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let host_len = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + host_len])
}

/// The Content-Security-Policy of the app's pages.
pub fn policy(config: &crate::config::Config) -> String {
    let mut ancestors = vec!["'self'".to_string()];
    let candidates = config
        .smart
        .issuers
        .iter()
        .map(|i| i.iss.as_str())
        .chain(config.smart.frame_ancestors.iter().map(String::as_str));
    for url in candidates {
        if let Some(o) = origin(url)
            && !ancestors.iter().any(|a| a == o)
        {
            ancestors.push(o.to_string());
        }
    }
    format!(
        "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
         script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {}",
        ancestors.join(" ")
    )
}

async fn file(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Error::NotFound("file").into_response();
    };
    let mut resp = (*body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(csp) = HeaderValue::from_str(&policy(&state.config)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    // Small files that change with the binary: revalidate rather than cache blindly.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("smart-launch");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".html") {
                assert!(FILES.iter().any(|(n, _, _)| *n == name), "{name} is not in FILES");
            }
        }
    }

    #[test]
    fn frame_ancestors_are_self_and_trusted_ehrs() {
        let mut config = crate::config::Config::default();
        config.smart.issuers.push(crate::smart::config::TrustedIssuer {
            iss: "https://ehr.example.org:8443/fhir/r4".into(),
            ..Default::default()
        });
        let csp = policy(&config);
        assert!(
            csp.ends_with("frame-ancestors 'self' https://ehr.example.org:8443"),
            "{csp}"
        );
        assert_eq!(origin("http://a:1"), Some("http://a:1"));
    }
}
