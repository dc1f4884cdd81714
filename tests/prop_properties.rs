//! Property tests of the Java `.properties` writer and reader in `engine::properties`; the
//! invariants live in `tests/invariants` (shared with `fuzz/`).
#![cfg(not(target_arch = "wasm32"))]

mod invariants;

use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text rich in what `.properties` treats specially: separators, escapes, comments, every kind of
/// line break and white space, `\u` escapes, non-ASCII and non-BMP characters.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\"),
        Just("\\\\"),
        Just("="),
        Just(":"),
        Just(" "),
        Just("\t"),
        Just("\x0C"),
        Just("\n"),
        Just("\r"),
        Just("\r\n"),
        Just("#"),
        Just("!"),
        Just("\\u"),
        Just("\\u00e9"),
        Just("\\uD83D\\uDE00"),
        Just("\\uZZZZ"),
        Just("é"),
        Just("😀"),
        Just("\u{0}"),
        Just("\u{85}"),
        Just("\u{2028}"),
        Just("a"),
        Just("key"),
    ];
    prop_oneof![
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_properties_round_trip(
        comment in proptest::option::of(tricky()),
        date in tricky(),
        pairs in proptest::collection::vec((tricky(), tricky()), 0..6),
    ) {
        invariants::properties_round_trip(comment.as_deref(), &date, &pairs);
    }

    #[test]
    fn prop_properties_read_any_text(text in tricky()) {
        invariants::properties_read(&text);
    }

    #[test]
    fn prop_config_round_trip(
        values in proptest::array::uniform6(tricky()),
        now in any::<i64>(),
    ) {
        invariants::config_round_trip(&values, now);
    }
}
