//! The console: one page served at `/` that signs in with an API key, lists calls, shows a call's
//! transcript, claim and synthesis, and is a softphone to the agent over `/ws/audio` with the browser's
//! microphone. The page itself holds no data; every read goes through the authenticated API.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("../console/index.html");

/// `GET /`.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page talks to its own origin only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; media-src 'self' blob:",
            ),
        ],
        PAGE,
    )
}
