//! Fuzz target: the PKCS#12 builder's inputs (friendly name, password, format, RNG bytes): it
//! refuses exactly what it must and anything it writes reads back (`tests/invariants::pfx`).
//! Slow per input (100,000 PBKDF2 iterations in the modern format).
#![no_main]
use libfuzzer_sys::fuzz_target;
use m365_registrator::engine::crypto::PfxKind;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let mut src = invariants::Source::new(data);
    let kind = if src.byte() & 1 == 1 {
        PfxKind::Legacy
    } else {
        PfxKind::Modern
    };
    let name = src.text(64);
    let password = src.text(64);
    let rng = src.rest();
    invariants::pfx(&name, &password, kind, rng);
});
