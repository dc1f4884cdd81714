//! Property tests of the PKCS#12 writer (`engine::crypto::build_pfx`): any friendly name,
//! password, kind and RNG bytes; the invariants live in `tests/invariants` (shared with `fuzz/`).
//! Few cases: a modern PFX costs 2 x 10,000 PBKDF2 rounds and a 2,048-round MAC to write, as many
//! to read.
#![cfg(not(target_arch = "wasm32"))]

mod invariants;

use m365_registrator::engine::crypto::PfxKind;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ -~]{1,40}",
        "\\PC{1,20}",
        any::<String>(),
        Just("emoji 😀".to_string()),
    ]
}

fn password() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{1,64}",
        1 => any::<String>(),
        1 => Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn prop_pkcs12_round_trip(
        name in name(),
        password in password(),
        legacy in any::<bool>(),
        rng in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let kind = if legacy { PfxKind::Legacy } else { PfxKind::Modern };
        invariants::pfx(&name, &password, kind, &rng);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Damaged and arbitrary files given to the reader (renew reads an uploaded PFX).
    #[test]
    fn prop_pfx_read_hostile_files(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        invariants::pfx_read(&data);
    }
}
