//! Property tests of the redirect (consent / sign-in landing) parser and the tenant input in
//! `engine::auth`; the invariants live in `tests/invariants` (shared with `fuzz/`).
#![cfg(not(target_arch = "wasm32"))]

mod invariants;

use m365_registrator::engine::auth::aadsts_code;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Query-like text: known and unknown keys, `=`, `&`, `+`, good and broken percent escapes,
/// Entra's description lines, and arbitrary characters.
fn oauth_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("code"),
        Just("state"),
        Just("error"),
        Just("error_description"),
        Just("error_uri"),
        Just("error_subcode"),
        Just("suberror"),
        Just("admin_consent"),
        Just("tenant"),
        Just("scope"),
        Just("trace_id"),
        Just("session_state"),
        Just("%63ode"),
        Just("x"),
        Just(""),
    ];
    let value = prop_oneof![
        "[a-zA-Z0-9%+=&#?._~-]{0,12}",
        Just("True".to_string()),
        Just("AADSTS65004%3A+declined%0D%0ATrace+ID%3A+t1%0D%0ACorrelation+ID%3A+c1".to_string()),
        Just("https%3A%2F%2Flogin.microsoftonline.com%2Ferror%3Fcode%3D50011".to_string()),
        Just("%".to_string()),
        Just("%E2%82".to_string()),
        Just("%3Cscript%3E".to_string()),
        any::<String>(),
    ];
    proptest::collection::vec((key, value, any::<bool>()), 0..6).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(k, v, eq)| {
                if eq {
                    format!("{k}={v}")
                } else {
                    format!("{k}{v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_redirect_any_text(query in any::<String>(), fragment in any::<String>()) {
        invariants::redirect(&query, &fragment);
    }

    #[test]
    fn prop_redirect_oauth_like(
        query in oauth_text(),
        fragment in prop_oneof![Just(String::new()), oauth_text()],
        prefix in prop_oneof![Just(""), Just("?"), Just("#")],
    ) {
        invariants::redirect(&format!("{prefix}{query}"), &fragment);
        invariants::redirect(&fragment, &query);
    }

    #[test]
    fn prop_redirect_code_round_trip(
        code in "\\PC{0,64}",
        state in any::<String>(),
        in_fragment in any::<bool>(),
    ) {
        invariants::redirect_code_round_trip(&code, &state, in_fragment);
    }

    #[test]
    fn prop_redirect_error_round_trip(
        error in "[ a-z_]{0,20}",
        message in "[^\r\n]{0,80}",
        trace in "[ a-f0-9-]{0,40}",
        state in any::<String>(),
    ) {
        // Lines that start like Entra's own trailers are not a message.
        prop_assume!(!["Trace ID:", "Correlation ID:", "Timestamp:"]
            .iter()
            .any(|p| message.trim().starts_with(p)));
        invariants::redirect_error_round_trip(&error, &message, &trace, &state);
    }

    #[test]
    fn prop_aadsts_number_read_back(n in 0u32..1_000_000_000, before in "[^A]{0,10}", after in "[^0-9]{0,10}") {
        prop_assert_eq!(aadsts_code(&format!("{before}AADSTS{n}{after}")), Some(n));
    }

    #[test]
    fn prop_tenant_any_text(input in any::<String>()) {
        invariants::tenant(&input);
    }

    #[test]
    fn prop_tenant_like_input(
        input in prop_oneof![
            "[ ]{0,2}[a-zA-Z0-9-]{1,12}(\\.[a-zA-Z0-9-]{1,12}){0,3}[ ]{0,2}",
            "[0-9a-fA-FxX-]{30,40}",
            "(https?://)?[a-z.]{1,20}(/[a-zA-Z0-9.-]{0,40}){0,4}([?#].{0,10})?",
            "[a-z.]{1,10}@[a-zA-Z0-9. -]{0,20}",
            "(common|organizations|consumers|COMMON)",
        ],
    ) {
        invariants::tenant(&input);
    }
}

// Regressions from `cargo fuzz run redirect` (scripts/fuzz.sh): a state longer than the
// parser's value limit comes back clipped, as promised (the invariant had assumed it whole).
#[test]
fn fuzz_regression_long_state_is_clipped() {
    let state = "\u{0}\u{fffd}".repeat(2000);
    invariants::redirect_error_round_trip("x", "m", "0b7f", &state);
    invariants::redirect_code_round_trip("code", &state, false);
    invariants::redirect_code_round_trip("code", &"s".repeat(10_000), true);
}
