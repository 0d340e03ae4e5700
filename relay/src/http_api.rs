//! Plain HTTP routes: `/healthz`, `POST /api/login` (password → device token) and
//! `POST /api/logout` (ends the device session named by the bearer token).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tracing::{info, warn};
use zedops_protocol::{ErrorCode, ErrorReply, LoginRequest, LoginResponse, payload::Validate};

use crate::login_limit::Refusal;
use crate::state::AppState;

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

/// `/readyz`: 200 when this relay can serve (its database answers and, in a cluster, NATS is
/// connected), else 503 with what is missing, so a load balancer sends peers elsewhere. A
/// draining relay (SIGTERM) is not ready either.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let database = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping())
        .await
        .unwrap_or(false);
    let nats = state.hub.cluster().map(|c| c.nats_connected());
    let draining = *state.shutdown.borrow() || state.hub.drain.is_draining();
    let ready = database && nats != Some(false) && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database,
        "nats": nats,
        "draining": draining,
    });
    (status, Json(body)).into_response()
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = client_address(&state.trusted_proxies, peer, &headers);
    let request: LoginRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            // serde's message quotes what the peer sent (field names): Debug-formatted.
            warn!(error = ?e.to_string(), %client, "malformed login request");
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
    let mut attempt = match state.login_limit.begin(&request.username, client) {
        Ok(attempt) => attempt,
        Err(Refusal::TooManyFailures(retry)) => {
            warn!(user = ?request.username, %client, "login refused: too many failures");
            return rate_limited(
                StatusCode::TOO_MANY_REQUESTS,
                retry,
                format!(
                    "too many failed logins for this user from your address; try again in {retry} s"
                ),
            );
        }
        Err(Refusal::Busy(retry)) => {
            warn!(user = ?request.username, %client, "login refused: every password-check slot is busy");
            return rate_limited(
                StatusCode::SERVICE_UNAVAILABLE,
                retry,
                format!("the relay is busy checking other logins; try again in {retry} s"),
            );
        }
    };
    // The check keeps its slot until argon2 finishes, even if this request is dropped meanwhile.
    let permit = attempt.take_permit();
    match state
        .store
        .login_holding(
            &request.username,
            &request.password,
            request.device.as_deref(),
            permit,
        )
        .await
    {
        Ok(Some((session, token))) => {
            attempt.succeeded();
            state.hub.login_outcome(&request.username, client, true);
            info!(user = ?session.user, device = ?request.device, %client, "login");
            Json(LoginResponse {
                token,
                user: session.user,
                role: session.role,
            })
            .into_response()
        }
        Ok(None) => {
            // The attempt stays counted as a failure, here and on the other relays.
            state.hub.login_outcome(&request.username, client, false);
            warn!(user = ?request.username, %client, "failed login");
            error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "wrong user name or password",
            )
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(ErrorReply::from(e))).into_response(),
    }
}

/// `RATE_LIMITED` with `Retry-After` in the header and the body.
fn rate_limited(status: StatusCode, retry: u64, message: String) -> Response {
    let reply = crate::failure::rate_limited(message, retry);
    (
        status,
        [(header::RETRY_AFTER, retry.to_string())],
        Json(reply),
    )
        .into_response()
}

/// The address a request came from: the TCP peer, or, when the peer is a trusted proxy, the
/// address that proxy names in `Forwarded` (RFC 7239) or else `X-Forwarded-For`. The headers are
/// read from the right (the entry the proxy added) past any other trusted proxies; a header that
/// does not parse leaves the proxy's own address, never a made-up one.
pub fn client_address(trusted: &[IpNet], peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_node(value))
            })
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_node)
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// One address from a forwarding header: `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`.
fn parse_node(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse::<IpAddr>().ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.6")]);
        assert_eq!(client_address(&trusted, stranger, &xff), stranger.ip());
        assert_eq!(
            client_address(&trusted, proxy, &xff),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // A client cannot hide behind a forged left-most entry: the right-most untrusted wins.
        let forged = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")]);
        assert_eq!(
            client_address(&trusted, proxy, &forged),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(
            client_address(&trusted, proxy, &fwd),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let junk = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(client_address(&trusted, proxy, &junk), proxy.ip());
        assert_eq!(client_address(&[], proxy, &xff), proxy.ip());
    }
}
