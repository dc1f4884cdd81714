//! The page's WebCrypto paths in headless Chromium (issue 6 (a)): PBKDF2 by WebCrypto gives the
//! engine's own derivation for every request of a PFX plan, and the credentials the page makes
//! (WebCrypto key, engine certificate, PFX finished with WebCrypto-derived keys) read back with
//! the password.
#![cfg(target_arch = "wasm32")]

use m365_registrator::engine::crypto::{self, PfxKind, PfxPlan};
use m365_registrator::engine::secret::PfxPassword;
use m365_registrator::web::{adapters, ops};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webcrypto_pbkdf2_equals_the_engine_derivation() {
    let password = PfxPassword::new("a-generated-password-0123456789");
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let plan = PfxPlan::new(&password, PfxKind::Modern, &mut rng).unwrap();
    let requests = plan.pbkdf2_requests();
    assert_eq!(requests.len(), 2);
    let by_browser = adapters::webcrypto_pbkdf2(&requests).await.unwrap();
    let by_engine: Vec<Vec<u8>> = requests.iter().map(|r| r.derive()).collect();
    assert_eq!(by_browser, by_engine);
    assert!(by_browser.iter().all(|k| k.len() == 32));
    // No derivations for the legacy format: nothing to ask WebCrypto.
    let legacy = PfxPlan::new(&password, PfxKind::Legacy, &mut rng).unwrap();
    assert!(adapters::webcrypto_pbkdf2(&legacy.pbkdf2_requests())
        .await
        .unwrap()
        .is_empty());
}

#[wasm_bindgen_test]
async fn the_page_credentials_read_back() {
    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let made = ops::make_credentials("bacula-test", 1_767_225_600, 1_830_297_600, kind)
            .await
            .unwrap();
        let (_, cert) = crypto::read_pfx(&made.pfx, &made.password).unwrap();
        assert_eq!(cert, made.cert, "{kind:?}");
        let wrong = PfxPassword::new("not-the-password");
        assert!(crypto::read_pfx(&made.pfx, &wrong).is_err(), "{kind:?}");
    }
}
