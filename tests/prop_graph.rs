//! Property tests of everything that reads a network answer: Graph classifiers and `$batch`
//! splitting (`engine::graph`), Graph errors (`engine::error`), the token endpoint and id token
//! (`engine::auth`), resource permissions, the retry rule (`engine::retry`) and the add-app /
//! check / renew / delete driver (`engine::provision`) against a scripted Graph. The invariants
//! live in `tests/invariants` (shared with `fuzz/`).
#![cfg(not(target_arch = "wasm32"))]

mod invariants;

use m365_registrator::engine::retry::{RetryPolicy, RetryReason};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(vec![
            0u16, 200, 201, 204, 400, 403, 404, 409, 429, 500, 502, 503, 504
        ]),
        any::<u16>(),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("Retry-After".to_string()),
        Just("retry-after".to_string()),
        Just("request-id".to_string()),
        Just("client-request-id".to_string()),
        Just("Date".to_string()),
        "[A-Za-z-]{1,12}",
    ];
    let value = prop_oneof![
        "[0-9]{1,25}",
        Just(" 5 ".to_string()),
        Just("-3".to_string()),
        any::<String>(),
    ];
    proptest::collection::vec((name, value), 0..4)
}

/// JSON made of Graph's words, so classifiers get past "not JSON".
fn graph_json() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec![
        "value",
        "id",
        "appId",
        "error",
        "code",
        "message",
        "innerError",
        "request-id",
        "keyId",
        "secretText",
        "responses",
        "status",
        "headers",
        "body",
        "appRoles",
        "isEnabled",
        "oauth2PermissionScopes",
        "access_token",
        "expires_in",
        "id_token",
        "error_description",
        "error_codes",
        "Request_ResourceNotFound",
        "NoBackingApplicationObject",
        "CredentialInvalidLifetimeAsPerAppPolicy",
        "already exist",
        "AADSTS50011",
        "2026-06-01T00:00:00Z",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        word.clone().prop_map(|w| json!(w)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((word.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        graph_json().prop_map(|v| v.to_string()),
        graph_json().prop_map(
            |v| json!({ "responses": [{"id": "1", "status": 200, "body": v}] }).to_string()
        ),
        any::<String>(),
        Just(String::new()),
    ]
}

fn reason() -> impl Strategy<Value = RetryReason> {
    prop_oneof![
        proptest::option::of(any::<u64>())
            .prop_map(|r| RetryReason::Throttled { retry_after_ms: r }),
        proptest::option::of(any::<u64>())
            .prop_map(|r| RetryReason::Unavailable { retry_after_ms: r }),
        Just(RetryReason::Replication),
        Just(RetryReason::Network),
    ]
}

/// Any u64, with the edges (0, small, near `u64::MAX`) as likely as the middle.
fn ms() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0u64..5000, (u64::MAX - 5000)..=u64::MAX,]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    prop_oneof![
        Just(RetryPolicy::default()),
        (
            prop_oneof![0u32..20, any::<u32>()],
            ms(),
            ms(),
            prop_oneof![0u32..400, any::<u32>()],
            ms(),
            ms(),
            ms(),
            ms(),
        )
            .prop_map(|(a, b, c, d, e, f, g, h)| RetryPolicy {
                max_attempts: a,
                replication_budget_ms: b,
                replication_initial_ms: c,
                replication_growth_pct: d,
                replication_max_ms: e,
                initial_backoff_ms: f,
                max_backoff_ms: g,
                max_retry_after_ms: h,
            }),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_graph_response_never_panics(status in status(), headers in headers(), body in body()) {
        invariants::graph_response(status, &headers, &body);
    }

    #[test]
    fn prop_retry_delay(
        policy in policy(),
        attempt in prop_oneof![0u32..12, any::<u32>()],
        reason in reason(),
        elapsed in ms(),
        jitter in any::<u32>(),
    ) {
        invariants::retry_delay(&policy, attempt, reason, elapsed, jitter);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prop_driver_on_scripted_graph(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        invariants::driver(&bytes);
    }
}
