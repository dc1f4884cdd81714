//! Browser adapters for the engine's small traits and for the page: fetch, timers, random bytes,
//! the clock, sessionStorage (the only storage used), the address bar, downloads, clipboard.
//! Nothing here decides; nothing here logs a request body or a header value.

use crate::engine::http::{HttpClient, HttpRequest, HttpResponse, Method, Sleep, TransportError};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

pub fn element_by_id(id: &str) -> Option<web_sys::Element> {
    window()?.document()?.get_element_by_id(id)
}

/// Milliseconds since the Unix epoch (the only clock read in the page).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

pub fn now_unix() -> i64 {
    (now_ms() / 1000.0) as i64
}

/// Fills `buf` from the browser's CSPRNG (`crypto.getRandomValues`).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("no secure random source: {e}"))
}

pub fn random_array<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    random_bytes(&mut b)?;
    Ok(b)
}

/// Headers the engine reads from responses (fetch exposes only CORS-exposed ones anyway).
const READ_HEADERS: &[&str] = &[
    "retry-after",
    "request-id",
    "client-request-id",
    "date",
    "content-type",
    "location",
    "x-ms-ags-diagnostic",
];

/// `fetch` through gloo-net.
#[derive(Clone, Copy, Default)]
pub struct FetchClient;

impl HttpClient for FetchClient {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => gloo_net::http::Method::GET,
            Method::Post => gloo_net::http::Method::POST,
            Method::Patch => gloo_net::http::Method::PATCH,
            Method::Delete => gloo_net::http::Method::DELETE,
        };
        let mut b = gloo_net::http::RequestBuilder::new(&req.url)
            .method(method)
            .mode(web_sys::RequestMode::Cors)
            .cache(web_sys::RequestCache::NoStore)
            .credentials(web_sys::RequestCredentials::Omit);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let request = match req.body {
            Some(body) => b.body(body),
            None => b.build(),
        }
        .map_err(|_| TransportError("the request could not be built".into()))?;
        let resp = request.send().await.map_err(|_| {
            TransportError(
                "no answer (connection failed, was dropped, or the browser blocked it)".into(),
            )
        })?;
        let status = resp.status();
        let headers = READ_HEADERS
            .iter()
            .filter_map(|h| resp.headers().get(h).map(|v| (h.to_string(), v)))
            .collect();
        let body = resp
            .text()
            .await
            .map_err(|_| TransportError("the answer was cut off".into()))?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// `setTimeout` as a future.
#[derive(Clone, Copy, Default)]
pub struct TimeoutSleep;

impl Sleep for TimeoutSleep {
    async fn sleep(&self, millis: u64) {
        let ms = millis.min(i32::MAX as u64) as i32;
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            if let Some(w) = window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = JsFuture::from(promise).await;
    }
}

/// Runs `f` when the page is being left (reload, navigation, tab closed): `pagehide`.
pub fn on_pagehide(f: impl Fn() + 'static) {
    let Some(w) = window() else { return };
    let cb = Closure::<dyn Fn()>::new(f);
    let _ = w.add_event_listener_with_callback("pagehide", cb.as_ref().unchecked_ref());
    cb.forget();
}

/// localStorage, shared by the tabs of this origin: only the add-app run records (run id, the
/// key *ids* of secrets already downloaded, complete, last sign of life) live here, so that a tab
/// cannot undo another's run. Never a secret, token or key.
pub mod local {
    fn storage() -> Option<web_sys::Storage> {
        super::window()?.local_storage().ok().flatten()
    }
    pub fn get(key: &str) -> Option<String> {
        super::store_get(storage(), key)
    }
    pub fn set(key: &str, value: &str) {
        super::store_set(storage(), key, value)
    }
    pub fn remove(key: &str) {
        super::store_remove(storage(), key)
    }
}

fn store_get(s: Option<web_sys::Storage>, key: &str) -> Option<String> {
    s?.get_item(key).ok().flatten()
}
fn store_set(s: Option<web_sys::Storage>, key: &str, value: &str) {
    if let Some(s) = s {
        let _ = s.set_item(key, value);
    }
}
fn store_remove(s: Option<web_sys::Storage>, key: &str) {
    if let Some(s) = s {
        let _ = s.remove_item(key);
    }
}

pub mod session {
    fn storage() -> Option<web_sys::Storage> {
        super::window()?.session_storage().ok().flatten()
    }
    pub fn get(key: &str) -> Option<String> {
        super::store_get(storage(), key)
    }
    pub fn set(key: &str, value: &str) {
        super::store_set(storage(), key, value)
    }
    pub fn remove(key: &str) {
        super::store_remove(storage(), key)
    }
}

/// The address bar.
pub mod location {
    use super::window;

    /// (origin + path, query without `?`, fragment without `#`).
    pub fn parts() -> (String, String, String) {
        let Some(loc) = window().map(|w| w.location()) else {
            return (String::new(), String::new(), String::new());
        };
        let origin = loc.origin().unwrap_or_default();
        let path = loc.pathname().unwrap_or_default();
        let q = loc.search().unwrap_or_default();
        let h = loc.hash().unwrap_or_default();
        (
            format!("{origin}{path}"),
            q.trim_start_matches('?').to_string(),
            h.trim_start_matches('#').to_string(),
        )
    }

    /// Removes query and fragment (code, state, errors) from the address bar and history entry.
    pub fn clear_params() {
        let (base, q, h) = parts();
        if q.is_empty() && h.is_empty() {
            return;
        }
        if let Some(hist) = window().and_then(|w| w.history().ok()) {
            let _ = hist.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&base));
        }
    }

    pub fn navigate(url: &str) {
        if let Some(w) = window() {
            let _ = w.location().assign(url);
        }
    }
}

/// Offers bytes as a file download (Blob + object URL), made in the page; nothing is uploaded.
pub fn download(file_name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let doc = window().and_then(|w| w.document()).ok_or("no document")?;
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
        .map_err(|_| "the browser refused to make the file")?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "the browser refused to make the file")?;
    let a: web_sys::HtmlAnchorElement = doc
        .create_element("a")
        .map_err(|_| "no document")?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(file_name);
    a.set_class_name("hidden");
    if let Some(body) = doc.body() {
        let _ = body.append_child(&a);
        a.click();
        let _ = body.remove_child(&a);
    }
    // Revoke later: revoking at once can cancel the download in some browsers.
    let cb = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(w) = window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 60_000);
    }
    Ok(())
}

/// Copies text to the clipboard (best effort).
pub fn copy_text(text: &str) {
    if let Some(w) = window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}

/// Asks before leaving while `armed()` says an undownloaded secret is in memory.
pub fn guard_unload(armed: impl Fn() -> bool + 'static) {
    let Some(w) = window() else { return };
    let cb =
        Closure::<dyn Fn(web_sys::BeforeUnloadEvent)>::new(move |e: web_sys::BeforeUnloadEvent| {
            if armed() {
                e.prevent_default();
                e.set_return_value("Your new secret has not been downloaded yet.");
            }
        });
    let _ = w.add_event_listener_with_callback("beforeunload", cb.as_ref().unchecked_ref());
    cb.forget();
}

/// Fetches `config.json` beside the page (all keys optional; missing file = defaults).
pub async fn fetch_deploy_config() -> Result<Option<String>, String> {
    let resp = gloo_net::http::Request::get("config.json")
        .cache(web_sys::RequestCache::NoStore)
        .send()
        .await
        .map_err(|_| "config.json could not be read".to_string())?;
    if resp.status() == 404 {
        return Ok(None);
    }
    if !resp.ok() {
        return Err(format!("config.json answered HTTP {}", resp.status()));
    }
    resp.text()
        .await
        .map(Some)
        .map_err(|_| "config.json could not be read".to_string())
}

/// An RSA-2048 key from the browser's WebCrypto (native code, does not block the page the way
/// big-number arithmetic in WebAssembly does), exported as PKCS#8 DER for the engine.
pub async fn webcrypto_rsa_pkcs8() -> Result<crate::engine::secret::PrivateKeyDer, String> {
    let fail = |_| {
        "WebCrypto could not make an RSA key (a current browser over https or localhost is needed)"
            .to_string()
    };
    let subtle = window()
        .ok_or("no window")?
        .crypto()
        .map_err(|_| "this browser has no WebCrypto")?
        .subtle();
    let alg = js_sys::Object::new();
    let set =
        |k: &str, v: &JsValue| js_sys::Reflect::set(&alg, &JsValue::from_str(k), v).map(|_| ());
    set("name", &JsValue::from_str("RSASSA-PKCS1-v1_5")).map_err(fail)?;
    set("modulusLength", &JsValue::from_f64(2048.0)).map_err(fail)?;
    set(
        "publicExponent",
        &js_sys::Uint8Array::from(&[1u8, 0, 1][..]).into(),
    )
    .map_err(fail)?;
    set("hash", &JsValue::from_str("SHA-256")).map_err(fail)?;
    let usages = js_sys::Array::of2(&JsValue::from_str("sign"), &JsValue::from_str("verify"));
    let pair = JsFuture::from(
        subtle
            .generate_key_with_object(&alg, true, &usages)
            .map_err(fail)?,
    )
    .await
    .map_err(fail)?;
    let pair: web_sys::CryptoKeyPair = pair.unchecked_into();
    let exported = JsFuture::from(
        subtle
            .export_key("pkcs8", &pair.get_private_key())
            .map_err(fail)?,
    )
    .await
    .map_err(fail)?;
    let bytes = js_sys::Uint8Array::new(&exported).to_vec();
    Ok(crate::engine::secret::PrivateKeyDer::new(bytes))
}

/// PBKDF2 derivations by WebCrypto (`importKey("raw", password, "PBKDF2")`, then
/// `deriveBits({name: "PBKDF2", hash, salt, iterations}, key, bits)`), all started before any is
/// awaited: the browser runs them in native code off the page's thread, concurrently. Outputs in
/// the order of `requests` (what `PfxPlan::finish` takes).
pub async fn webcrypto_pbkdf2(
    requests: &[crate::engine::crypto::Pbkdf2Request],
) -> Result<Vec<Vec<u8>>, String> {
    let fail = |_| {
        "WebCrypto could not derive the PFX encryption keys (PBKDF2; a current browser over https or localhost is needed)"
            .to_string()
    };
    let subtle = window()
        .ok_or("no window")?
        .crypto()
        .map_err(|_| "this browser has no WebCrypto")?
        .subtle();
    let usages = js_sys::Array::of1(&JsValue::from_str("deriveBits"));
    let imports = requests
        .iter()
        .map(|r| {
            let raw = js_sys::Uint8Array::from(r.password());
            subtle.import_key_with_str("raw", &raw, "PBKDF2", false, &usages)
        })
        .collect::<Result<js_sys::Array, _>>()
        .map_err(fail)?;
    let keys: js_sys::Array = JsFuture::from(js_sys::Promise::all(&imports))
        .await
        .map_err(fail)?
        .unchecked_into();
    let derivations = js_sys::Array::new();
    for (r, key) in requests.iter().zip(keys.iter()) {
        let alg = js_sys::Object::new();
        let set =
            |k: &str, v: &JsValue| js_sys::Reflect::set(&alg, &JsValue::from_str(k), v).map(|_| ());
        set("name", &JsValue::from_str("PBKDF2")).map_err(fail)?;
        set("hash", &JsValue::from_str(r.hash.webcrypto_name())).map_err(fail)?;
        set("salt", &js_sys::Uint8Array::from(r.salt.as_slice()).into()).map_err(fail)?;
        set("iterations", &JsValue::from_f64(f64::from(r.iterations))).map_err(fail)?;
        let bits = u32::try_from(r.key_len * 8).map_err(|_| "PBKDF2 output too long")?;
        let key: web_sys::CryptoKey = key.unchecked_into();
        let promise = subtle
            .derive_bits_with_object(&alg, &key, bits)
            .map_err(fail)?;
        derivations.push(promise.as_ref());
    }
    let derived: js_sys::Array = JsFuture::from(js_sys::Promise::all(&derivations))
        .await
        .map_err(fail)?
        .unchecked_into();
    Ok(derived
        .iter()
        .map(|bits| js_sys::Uint8Array::new(&bits).to_vec())
        .collect())
}

/// Runs two futures concurrently on the page's thread (each makes progress while the other
/// waits) and returns both outputs.
pub async fn join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        match (out_a.take(), out_b.take()) {
            (Some(x), Some(y)) => std::task::Poll::Ready((x, y)),
            (x, y) => {
                out_a = x;
                out_b = y;
                std::task::Poll::Pending
            }
        }
    })
    .await
}
