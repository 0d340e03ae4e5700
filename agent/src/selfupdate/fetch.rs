//! One HTTP(S) GET from the relay the agent is connected to, with the body handed over chunk by
//! chunk and a hard size bound: hyper's HTTP/1.1 client (already in the binary for Docker) over
//! the same TLS trust the WebSocket uses.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use zedops_transport::RelayUrl;

/// Time to connect (TCP and TLS) and get the response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for a whole download: a 5 MB build over a slow line takes seconds, not minutes.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Gets `path` from `relay` and feeds the body to `sink`; returns the bytes received. Refuses a
/// response that says it is larger than `max` before reading it, and stops at the first byte
/// past `max` when it did not say.
pub async fn get(
    relay: &RelayUrl,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    max: u64,
    sink: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    // The connection and the whole body, within one bound.
    let download = async move {
        let url = relay.http(path);
        let uri: hyper::Uri = url
            .parse()
            .map_err(|err| format!("cannot make a URL of {url}: {err}"))?;
        let host = uri.host().ok_or("the relay URL has no host")?.to_string();
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if relay.is_tls() { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or(host);
        let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, authority)
            .header(
                header::USER_AGENT,
                concat!("zedops-agent/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|err| format!("cannot make the request: {err}"))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((bare.as_str(), port)))
            .await
            .map_err(|_| format!("cannot connect to {url}: timed out"))?
            .map_err(|err| format!("cannot connect to {url}: {err}"))?;
        if relay.is_tls() {
            let name = rustls::pki_types::ServerName::try_from(bare)
                .map_err(|err| format!("the relay's host name is not usable for TLS: {err}"))?;
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| format!("TLS with {url} timed out"))?
            .map_err(|err| format!("TLS with {url} failed: {err}"))?;
            send(stream, request, &url, max, sink).await
        } else {
            send(tcp, request, &url, max, sink).await
        }
    };
    match tokio::time::timeout(DOWNLOAD_TIMEOUT, download).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the download of {path} took longer than {} s",
            DOWNLOAD_TIMEOUT.as_secs()
        )),
    }
}

async fn send<S>(
    io: S,
    request: hyper::Request<Empty<Bytes>>,
    url: &str,
    max: u64,
    mut sink: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| format!("cannot talk HTTP to {url}: {err}"))?;
    // The connection is driven by its own task; it ends when the response is read or dropped.
    let driver = tokio::spawn(connection);
    let result = async {
        let response = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| format!("{url} did not answer in time"))?
            .map_err(|err| format!("{url} failed: {err}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the relay answered {status} for {url}"));
        }
        let announced = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = announced
            && len > max
        {
            return Err(format!(
                "{url} is {len} bytes, more than the {max} expected"
            ));
        }
        let mut body = response.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| format!("the download of {url} broke off: {err}"))?;
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > max {
                    return Err(format!("{url} sent more than the {max} bytes expected"));
                }
                sink(&data)?;
            }
        }
        Ok(total)
    }
    .await;
    driver.abort();
    result
}
