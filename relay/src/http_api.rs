//! Plain HTTP routes: `/healthz`, `POST /api/login` (password → device token) and
//! `POST /api/logout` (ends the device session named by the bearer token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};
use zedops_protocol::{ErrorCode, ErrorReply, LoginRequest, LoginResponse, payload::Validate};

use crate::server::AppState;

/// Largest request body the HTTP routes read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An error answer with its HTTP status.
fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorReply::new(code, message))).into_response()
}

pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    Json(serde_json::json!({ "status": "ok", "agentsOnline": state.hub.online_count() }))
        .into_response()
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let request: LoginRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            warn!(%e, "malformed login request");
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("malformed login request: {e}"),
            );
        }
    };
    if let Err(e) = request.validate() {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            e.to_string(),
        );
    }
    if let Some(retry) = state.login_limit.check(&request.username, peer.ip()) {
        warn!(user = %request.username, %peer, "login refused: too many failures");
        let mut reply = ErrorReply::new(
            ErrorCode::RateLimited,
            format!("too many failed logins; try again in {retry} s"),
        );
        reply.retry_after_secs = Some(retry);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.to_string())],
            Json(reply),
        )
            .into_response();
    }
    match state
        .store
        .login(
            &request.username,
            &request.password,
            request.device.as_deref(),
        )
        .await
    {
        Ok(Some((session, token))) => {
            state.login_limit.succeeded(&session.user);
            info!(user = %session.user, device = ?request.device, "login");
            Json(LoginResponse {
                token,
                user: session.user,
                role: session.role,
            })
            .into_response()
        }
        Ok(None) => {
            state.login_limit.failed(&request.username, peer.ip());
            warn!(user = %request.username, %peer, "failed login");
            error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "wrong user name or password",
            )
        }
        Err(e) => {
            tracing::error!(%e, "store failure during login");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the relay could not read its database; see the relay's log",
            )
        }
    }
}

pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty() && t.len() <= zedops_protocol::MAX_TOKEN_LEN);
    let Some(token) = token else {
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "send the device token as `Authorization: Bearer <token>`",
        );
    };
    match state.store.revoke_session_token(token).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the device token is unknown or already logged out",
        ),
        Err(e) => {
            tracing::error!(%e, "store failure during logout");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the relay could not write its database; see the relay's log",
            )
        }
    }
}
