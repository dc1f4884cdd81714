//! Timings for the benchmark (`bench/run.sh`, issue 6 (a)), called from the benchmark page's
//! JavaScript API (`window.m365Registrator.benchCredentials`). Nothing here runs unless called;
//! it makes throw-away keys and files and keeps none of them.
//!
//! Every sample is a window `[start, start + ms]` on `performance.now()`'s clock, so the caller
//! can match the page's long-task entries (PerformanceObserver `longtask`) to what ran.
//!
//! Compiled only with feature `bench` (the benchmark's own page build; `web/mod.rs` gates it): the
//! product page carries none of it (the `rsa` crate's keygen alone would add about 45 KB gzip).

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::engine::crypto::{self, CertSpec, PfxKind};
use crate::engine::http::Sleep;
use crate::web::adapters::{self, TimeoutSleep};
use crate::web::ops;

/// One timed call.
#[derive(serde::Serialize)]
struct Sample {
    start: f64,
    ms: f64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialTimings {
    kind: &'static str,
    /// The page's whole path: `ops::make_credentials` (WebCrypto keygen and PBKDF2 together, then
    /// the certificate, then the PFX, a task each) and the key credential, as
    /// `ops::make_certificate` does it (which itself takes the page's whole state, whose
    /// constructor is private to `app`).
    ours: Vec<Sample>,
    /// The engine's synchronous part alone, from a WebCrypto key and derived keys in hand:
    /// certificate + `PfxPlan::finish` (two tasks in the page, one call here).
    cert_pfx: Vec<Sample>,
    /// The certificate alone (`crypto::self_signed_certificate`: key parsing and RSA signing in
    /// WASM), the longest single task of our path.
    cert: Vec<Sample>,
    /// WebCrypto PBKDF2 alone (the plan's derivations, concurrently; none for legacy).
    pbkdf2: Vec<Sample>,
    /// WebCrypto `generateKey` (RSASSA-PKCS1-v1_5 2048, e = 65537) alone.
    webcrypto_keygen: Vec<Sample>,
    /// The `rsa` crate's keygen in WASM alone (`crypto::generate_rsa_key`, getrandom's RNG).
    rsa_keygen: Vec<Sample>,
    pfx_bytes: usize,
}

fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_else(adapters::now_ms)
}

/// Back to the event loop between samples, so each sample is its own task.
async fn yield_now() {
    TimeoutSleep.sleep(0).await;
}

async fn webcrypto_generate_key() -> Result<(), String> {
    let fail = |e: JsValue| format!("WebCrypto generateKey failed: {e:?}");
    let subtle = web_sys::window()
        .ok_or("no window")?
        .crypto()
        .map_err(fail)?
        .subtle();
    let alg = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&alg, &JsValue::from_str(k), v);
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
    let _: web_sys::CryptoKeyPair = pair.unchecked_into();
    Ok(())
}

/// Certificate spec as `ops::make_certificate` makes it (default options: the app name, 2 years).
fn spec() -> Result<CertSpec, String> {
    let now = adapters::now_unix();
    Ok(CertSpec {
        common_name: crate::engine::provision::DEFAULT_APP_NAME.into(),
        not_before_unix: now - 300,
        not_after_unix: now + 2 * 365 * 86_400,
        serial: crypto::serial_from_random(adapters::random_array::<16>()?),
    })
}

/// The page's path (`ops::make_certificate` without the page's state). Returns the PFX's size.
async fn our_path(kind: PfxKind) -> Result<usize, String> {
    let s = spec()?;
    let made =
        ops::make_credentials(&s.common_name, s.not_before_unix, s.not_after_unix, kind).await?;
    crypto::key_credential_parts(&made.cert).map_err(|e| e.to_string())?;
    Ok(made.pfx.len())
}

/// A plan of `kind` with a fresh password.
fn plan(kind: PfxKind) -> Result<crypto::PfxPlan, String> {
    let mut rnd = vec![0u8; crypto::PFX_PASSWORD_RANDOM_BYTES];
    adapters::random_bytes(&mut rnd)?;
    let password = crypto::pfx_password(&rnd).map_err(|e| e.to_string())?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    crypto::PfxPlan::new(&password, kind, &mut rng).map_err(|e| e.to_string())
}

/// Times `n` runs each of: the page's whole credential path, its synchronous certificate + PFX
/// part alone, the certificate alone, WebCrypto PBKDF2 alone, WebCrypto `generateKey` alone and
/// the `rsa` crate's keygen alone. `kind` is `modern` or
/// `legacy` (the PFX protection). Each list holds `n + 1` samples: the first is the cold
/// (warm-up) call, the caller keeps it apart.
#[wasm_bindgen(js_name = benchCredentials)]
pub async fn bench_credentials(kind: String, n: u32) -> Result<JsValue, JsValue> {
    let (kind, label) = match kind.as_str() {
        "modern" => (PfxKind::Modern, "modern"),
        "legacy" => (PfxKind::Legacy, "legacy"),
        other => return Err(JsValue::from_str(&format!("unknown PFX kind {other}"))),
    };
    let err = |e: String| JsValue::from_str(&e);
    let mut t = CredentialTimings {
        kind: label,
        ours: Vec::new(),
        cert_pfx: Vec::new(),
        cert: Vec::new(),
        pbkdf2: Vec::new(),
        webcrypto_keygen: Vec::new(),
        rsa_keygen: Vec::new(),
        pfx_bytes: 0,
    };

    // The whole path.
    for _ in 0..=n {
        yield_now().await;
        let start = now();
        t.pfx_bytes = our_path(kind).await.map_err(err)?;
        let ms = now() - start;
        t.ours.push(Sample { start, ms });
    }

    // The engine's synchronous parts, from one WebCrypto key (and a plan's derived keys).
    let key = adapters::webcrypto_rsa_pkcs8().await.map_err(err)?;
    let name = crate::engine::provision::DEFAULT_APP_NAME;
    for _ in 0..=n {
        let p = plan(kind).map_err(err)?;
        let derived = adapters::webcrypto_pbkdf2(&p.pbkdf2_requests())
            .await
            .map_err(err)?;
        let s = spec().map_err(err)?;
        yield_now().await;
        let start = now();
        let cert = crypto::self_signed_certificate(&key, &s).map_err(|e| err(e.to_string()))?;
        p.finish(&key, &cert, name, &derived)
            .map_err(|e| err(e.to_string()))?;
        let ms = now() - start;
        t.cert_pfx.push(Sample { start, ms });
    }
    for _ in 0..=n {
        let s = spec().map_err(err)?;
        yield_now().await;
        let start = now();
        crypto::self_signed_certificate(&key, &s).map_err(|e| err(e.to_string()))?;
        let ms = now() - start;
        t.cert.push(Sample { start, ms });
    }

    // WebCrypto PBKDF2 alone.
    for _ in 0..=n {
        let requests = plan(kind).map_err(err)?.pbkdf2_requests();
        yield_now().await;
        let start = now();
        adapters::webcrypto_pbkdf2(&requests).await.map_err(err)?;
        let ms = now() - start;
        t.pbkdf2.push(Sample { start, ms });
    }

    // WebCrypto generateKey alone.
    for _ in 0..=n {
        yield_now().await;
        let start = now();
        webcrypto_generate_key().await.map_err(err)?;
        let ms = now() - start;
        t.webcrypto_keygen.push(Sample { start, ms });
    }

    // The rsa crate in WASM alone (blocks the page for the whole call).
    for _ in 0..=n {
        yield_now().await;
        let start = now();
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        crypto::generate_rsa_key(&mut rng).map_err(|e| err(e.to_string()))?;
        let ms = now() - start;
        t.rsa_keygen.push(Sample { start, ms });
    }
    serde_wasm_bindgen::to_value(&t).map_err(|e| JsValue::from_str(&e.to_string()))
}
