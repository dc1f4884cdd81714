//! The thin HTTP layer of the emulator (hyper + optional rustls): wall clock → `now_ms`, CORS
//! preflight, latency sleeps, dropped connections (`Outcome::Drop` closes the connection
//! without an answer), a locally generated CA for HTTPS, the static page server of the demo,
//! and a tiny HTTP/1.1 client for native tests. Everything that decides is in [`Emulator`].

use super::{cors_preflight, Emulator, EmulatorConfig, Outcome};
use crate::engine::http::{HttpRequest, HttpResponse, Method, TransportError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Largest request body accepted (Graph's own limit is 4 MB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The emulator's state shared between connections (tests lock it to inspect or inject).
pub type Shared = Arc<Mutex<Emulator>>;

/// TLS material: a locally generated CA and a server certificate for `localhost`/`127.0.0.1`.
#[derive(Clone)]
pub struct TlsConfig {
    pub ca_pem: String,
    cert_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(<self-signed CA>)")
    }
}

impl TlsConfig {
    /// Generates a CA ("Emulated Entra ID test CA") and a server certificate signed by it for
    /// `localhost`, `127.0.0.1` and `extra_names`. Writes the CA's PEM to `ca_out` if given.
    pub fn generate(ca_out: Option<&Path>, extra_names: &[String]) -> Result<TlsConfig, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Emulated Entra ID test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| e.to_string())?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().cloned());
        let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut leaf_params = CertificateParams::new(names).map_err(|e| e.to_string())?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .map_err(|e| e.to_string())?;
        let ca_pem = ca_cert.pem();
        if let Some(p) = ca_out {
            std::fs::write(p, &ca_pem).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
        Ok(TlsConfig {
            ca_pem,
            cert_chain: vec![leaf.der().clone(), ca_cert.der().clone()],
            key_der: leaf_key.serialize_der(),
        })
    }

    fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), key)
            .map_err(|e| e.to_string())?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
    }
}

/// A running server; shuts down when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` with TLS).
    pub base_url: String,
    pub addr: SocketAddr,
    pub state: Shared,
    /// The CA's PEM when serving HTTPS.
    pub ca_pem: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Running {
    /// Locks the emulator (to inspect state or inject faults).
    pub fn emulator(&self) -> std::sync::MutexGuard<'_, Emulator> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    /// The login authority for this tenant (`{base}/{tenant id}`).
    pub fn authority(&self) -> String {
        let tid = self.emulator().tenant().id.clone();
        format!("{}/{tid}", self.base_url)
    }
    /// Stops accepting connections.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Milliseconds since the Unix epoch (the emulator's only clock read).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Starts an emulator with `cfg` on `127.0.0.1:0` (plain HTTP).
pub async fn start_on_random_port(cfg: EmulatorConfig) -> Running {
    match serve(
        Emulator::new(cfg),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => panic!("cannot start the emulator: {e}"),
    }
}

/// Binds `addr` and serves `emu` in the background until the returned [`Running`] is dropped.
pub async fn serve(
    emu: Emulator,
    addr: SocketAddr,
    tls: Option<TlsConfig>,
) -> std::io::Result<Running> {
    serve_shared(Arc::new(Mutex::new(emu)), addr, tls).await
}

/// Like [`serve`] with an already shared emulator.
pub async fn serve_shared(
    state: Shared,
    addr: SocketAddr,
    tls: Option<TlsConfig>,
) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = if tls.is_some() && local.ip().is_loopback() {
        "localhost".to_string()
    } else {
        local.ip().to_string()
    };
    let base_url = format!("{scheme}://{host}:{}", local.port());
    let acceptor = match &tls {
        Some(t) => Some(t.acceptor().map_err(std::io::Error::other)?),
        None => None,
    };
    let (tx, mut rx) = oneshot::channel::<()>();
    let st = state.clone();
    let default_base = base_url.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = &mut rx => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let st = st.clone();
            let acceptor = acceptor.clone();
            let default_base = default_base.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    let default_base = default_base.clone();
                    async move { handle_hyper(st, req, default_base).await }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(a) => {
                        if let Ok(tls_stream) = a.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(tls_stream), svc)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    Ok(Running {
        base_url,
        addr: local,
        state,
        ca_pem: tls.map(|t| t.ca_pem),
        shutdown: Some(tx),
    })
}

/// Dropping the connection is signalled to hyper as a service error.
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection dropped")
    }
}
impl std::error::Error for DropConnection {}

fn to_hyper(resp: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        if let (Ok(n), Ok(val)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            b = b.header(n, val);
        }
    }
    b.body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"internal error"))))
}

fn plain(status: u16, text: &str) -> hyper::Response<Full<Bytes>> {
    to_hyper(HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: text.to_string(),
    })
}

async fn handle_hyper(
    st: Shared,
    req: hyper::Request<Incoming>,
    default_base: String,
) -> Result<hyper::Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let origin = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("origin"))
        .map(|(_, v)| v.clone());
    if parts.method == hyper::Method::OPTIONS {
        let path = path_q.split('?').next().unwrap_or("/");
        return Ok(to_hyper(cors_preflight(path, origin.as_deref())));
    }
    let method = match parts.method.as_str() {
        "GET" | "HEAD" => Method::Get,
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        _ => return Ok(plain(405, "Method Not Allowed")),
    };
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(plain(413, "Request Entity Too Large")),
    };
    let body = if bytes.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    // Absolute URL as the client addressed us.
    let scheme_base = match parts.uri.scheme_str() {
        Some(s) => format!(
            "{s}://{}",
            parts.uri.authority().map(|a| a.as_str()).unwrap_or("")
        ),
        None => {
            let host = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.clone());
            match host {
                Some(h) => format!(
                    "{}://{h}",
                    default_base.split("://").next().unwrap_or("http")
                ),
                None => default_base,
            }
        }
    };
    let req = HttpRequest {
        method,
        url: format!("{scheme_base}{path_q}"),
        headers,
        body,
    };
    let (outcome, delay) = {
        let mut emu = match st.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        emu.handle_timed(&req, wall_ms())
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay.min(600_000))).await;
    }
    match outcome {
        Outcome::Respond(r) => Ok(to_hyper(r)),
        Outcome::Drop => Err(DropConnection),
    }
}

/// Settings of the demo's static page server.
#[derive(Debug, Clone)]
pub struct PageConfig {
    /// Trunk's `dist/`.
    pub dir: PathBuf,
    /// The emulator's origin (login and Graph host), e.g. `http://127.0.0.1:8400`.
    pub emulator_origin: String,
    /// The page's own URL, registered as the registrator's `spa` redirect URI.
    pub page_url: String,
    /// The tenant (verified domain) the page's tenant field starts with (`tenant_hint` in
    /// `config.json`).
    pub tenant: Option<String>,
}

/// The page's `config.json`: login and Graph hosts pointing at the emulator.
pub fn page_config_json(cfg: &PageConfig) -> serde_json::Value {
    let mut v = serde_json::json!({
        "login_host": cfg.emulator_origin,
        "graph_host": cfg.emulator_origin,
        "redirect_uri": cfg.page_url,
    });
    if let Some(t) = &cfg.tenant {
        v["tenant_hint"] = serde_json::json!(t);
    }
    v
}

/// The Content-Security-Policy the page is served with. `connect-src` also allows `'self'`:
/// the page fetches its own `.wasm` and `config.json` (WebAssembly streaming compilation is a
/// fetch), which `connect-src <login> <graph>` alone would block.
pub fn page_csp(emulator_origin: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' {emulator_origin}; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action {emulator_origin}"
    )
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves `cfg.dir` on `addr` (GET only), with a generated `config.json` and the CSP header.
pub async fn serve_page(
    cfg: PageConfig,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, oneshot::Sender<()>)> {
    serve_page_on(cfg, TcpListener::bind(addr).await?)
}

/// Like [`serve_page`] on an already bound listener (so the page URL is known before the
/// emulator starts, even with port 0).
pub fn serve_page_on(
    cfg: PageConfig,
    listener: TcpListener,
) -> std::io::Result<(SocketAddr, oneshot::Sender<()>)> {
    let local = listener.local_addr()?;
    let (tx, mut rx) = oneshot::channel::<()>();
    let cfg = Arc::new(cfg);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = &mut rx => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let cfg = cfg.clone();
                    async move { Ok::<_, Infallible>(page_response(&cfg, req.uri().path())) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((local, tx))
}

fn page_response(cfg: &PageConfig, path: &str) -> hyper::Response<Full<Bytes>> {
    let csp = page_csp(&cfg.emulator_origin);
    let decoded = super::util::pct_decode(path);
    let rel = decoded.trim_start_matches('/');
    let resp = if rel == "config.json" {
        HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: page_config_json(cfg).to_string(),
        }
    } else if rel.split('/').any(|s| s == ".." || s.starts_with('.')) || rel.contains('\\') {
        HttpResponse {
            status: 404,
            headers: vec![],
            body: "not found".into(),
        }
    } else {
        let mut p = cfg
            .dir
            .join(if rel.is_empty() { "index.html" } else { rel });
        if p.is_dir() {
            p = p.join("index.html");
        }
        match std::fs::read(&p) {
            Ok(bytes) => {
                let mut r = hyper::Response::builder()
                    .status(200)
                    .header("Content-Type", content_type(&p))
                    .header("Content-Security-Policy", csp.clone())
                    .header("X-Content-Type-Options", "nosniff")
                    .header("Cache-Control", "no-cache")
                    .body(Full::new(Bytes::from(bytes)))
                    .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
                *r.status_mut() = hyper::StatusCode::OK;
                return r;
            }
            Err(_) => HttpResponse {
                status: 404,
                headers: vec![],
                body: "not found".into(),
            },
        }
    };
    let mut r = to_hyper(resp);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&csp) {
        r.headers_mut().insert("Content-Security-Policy", v);
    }
    r
}

/// A minimal HTTP/1.1 client for native tests against `http://` URLs (one request per
/// connection). A closed connection without an answer is a [`TransportError`].
pub async fn send(req: &HttpRequest) -> Result<HttpResponse, TransportError> {
    let (origin, path, query) = super::util::split_url(&req.url);
    let hostport = origin
        .strip_prefix("http://")
        .ok_or_else(|| TransportError(format!("only http:// is supported: {}", req.url)))?
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&hostport)
        .await
        .map_err(|e| TransportError(e.to_string()))?;
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let verb = req.method.as_str();
    let mut head = format!("{verb} {target} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n");
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("host")
            && !k.eq_ignore_ascii_case("content-length")
            && !k.eq_ignore_ascii_case("connection")
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let body = req.body.clone().unwrap_or_default();
    if req.body.is_some() || matches!(req.method, Method::Post | Method::Patch) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| TransportError(e.to_string()))?;
    stream
        .write_all(body.as_bytes())
        .await
        .map_err(|e| TransportError(e.to_string()))?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .await
        .map_err(|e| TransportError(e.to_string()))?;
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Result<HttpResponse, TransportError> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| TransportError("connection closed without a response".into()))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut rest = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TransportError(format!("bad status line: {status_line}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(nl) = rest
            .get(i..)
            .and_then(|r| r.windows(2).position(|w| w == b"\r\n"))
        {
            let size_str = String::from_utf8_lossy(&rest[i..i + nl]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("0").trim(), 16)
                .unwrap_or(0);
            i += nl + 2;
            if size == 0 || i + size > rest.len() {
                break;
            }
            out.extend_from_slice(&rest[i..i + size]);
            i += size + 2;
        }
        rest = out;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&rest).into_owned(),
    })
}

/// An [`crate::engine::http::HttpClient`] over [`send`] (plain HTTP), for native tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHttpClient;

impl crate::engine::http::HttpClient for TestHttpClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        send(&req).await
    }
}
