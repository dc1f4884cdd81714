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
    /// The page's whole path, the steps of `ops::make_certificate` in its order: WebCrypto keygen
    /// and PKCS#8 export (`adapters::webcrypto_rsa_pkcs8`), then the engine's certificate, PFX
    /// password, PFX and key credential. (`make_certificate` itself takes the page's whole state,
    /// whose constructor is private to `app`.)
    ours: Vec<Sample>,
    /// The engine's synchronous part alone (certificate + PFX from a WebCrypto key).
    cert_pfx: Vec<Sample>,
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

/// Certificate, PFX password, PFX and key credential from `key`, as `ops::make_certificate`
/// makes them after keygen (default options: the app name, 2 years). Returns the PFX's size.
fn cert_and_pfx(
    key: &crate::engine::secret::PrivateKeyDer,
    kind: PfxKind,
) -> Result<usize, String> {
    let now = adapters::now_unix();
    let name = crate::engine::provision::DEFAULT_APP_NAME;
    let spec = CertSpec {
        common_name: name.into(),
        not_before_unix: now - 300,
        not_after_unix: now + 2 * 365 * 86_400,
        serial: crypto::serial_from_random(adapters::random_array::<16>()?),
    };
    let cert = crypto::self_signed_certificate(key, &spec).map_err(|e| e.to_string())?;
    let mut rnd = vec![0u8; crypto::PFX_PASSWORD_RANDOM_BYTES];
    adapters::random_bytes(&mut rnd)?;
    let password = crypto::pfx_password(&rnd).map_err(|e| e.to_string())?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let pfx = crypto::build_pfx(key, &cert, &password, kind, name, &mut rng)
        .map_err(|e| e.to_string())?;
    crypto::key_credential_parts(&cert).map_err(|e| e.to_string())?;
    Ok(pfx.len())
}

/// Times `n` runs each of: the page's whole credential path, its certificate + PFX part alone,
/// WebCrypto `generateKey` alone and the `rsa` crate's keygen alone. `kind` is `modern` or
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
        webcrypto_keygen: Vec::new(),
        rsa_keygen: Vec::new(),
        pfx_bytes: 0,
    };

    // The whole path.
    for _ in 0..=n {
        yield_now().await;
        let start = now();
        let key = adapters::webcrypto_rsa_pkcs8().await.map_err(err)?;
        t.pfx_bytes = cert_and_pfx(&key, kind).map_err(err)?;
        let ms = now() - start;
        t.ours.push(Sample { start, ms });
    }

    // The engine's part alone, from one WebCrypto key.
    let key = adapters::webcrypto_rsa_pkcs8().await.map_err(err)?;
    for _ in 0..=n {
        yield_now().await;
        let start = now();
        cert_and_pfx(&key, kind).map_err(err)?;
        let ms = now() - start;
        t.cert_pfx.push(Sample { start, ms });
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
