//! Plain HTTP request/response values and the two small traits the driver needs; no I/O here.
//!
//! The browser (`web::adapters`) and native tests (reqwest-free: a tiny hyper client or the
//! emulator's in-process router) implement [`HttpClient`] and [`Sleep`]. No `Send` bound, so
//! the browser's `!Send` futures fit.

use std::future::Future;

/// HTTP method of a request the engine builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A request as data. `url` is absolute. Headers are (name, value); names compare case-insensitively.
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    // Never prints header values (Authorization) or the body (may hold a secret or a key).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        HttpRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.headers
            .push(("Content-Type".into(), "application/json".into()));
        self.body = Some(body.to_string());
        self
    }
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        self.body = Some(form_encode(pairs));
        self
    }
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response as data. `status` 0 never occurs: a transport failure is [`TransportError`].
#[derive(Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The request never got an HTTP answer (connection refused or dropped, CORS refusal, timeout).
/// Whether the server acted on it is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network error: {0}")]
pub struct TransportError(pub String);

/// Sends one request. Implemented by the browser adapter and by native test clients.
pub trait HttpClient {
    fn send(&self, req: HttpRequest) -> impl Future<Output = Result<HttpResponse, TransportError>>;
}

/// Waits. The browser uses `setTimeout`; tests use a fake clock or tokio.
pub trait Sleep {
    fn sleep(&self, millis: u64) -> impl Future<Output = ()>;
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Characters left as-is in `application/x-www-form-urlencoded` and query components
/// (RFC 3986 unreserved).
pub const QUERY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one query or form component.
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_ENCODE).to_string()
}

/// `a=1&b=2` with each key and value percent-encoded.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space). Invalid UTF-8 is replaced.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// Decodes one component: `+` → space, `%XX` → byte; a broken escape is kept literally.
pub fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_round_trip() {
        let enc = form_encode(&[("a b", "x&y=z/é"), ("k", "")]);
        assert_eq!(enc, "a%20b=x%26y%3Dz%2F%C3%A9&k=");
        assert_eq!(
            form_decode(&enc),
            vec![("a b".into(), "x&y=z/é".into()), ("k".into(), "".into())]
        );
        assert_eq!(decode_component("a+b%2"), "a b%2");
    }

    #[test]
    fn debug_hides_headers_and_body() {
        let r = HttpRequest::new(Method::Post, "https://g/x")
            .header("Authorization", "Bearer SECRET")
            .json(&serde_json::json!({"secretText": "S3CR3T"}));
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET") && !d.contains("S3CR3T"), "{d}");
    }
}
