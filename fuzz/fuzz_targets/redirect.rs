//! Fuzz target: the redirect parser (query and fragment) and the tenant input, through the
//! invariants the property tests check (`tests/invariants`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let mut src = invariants::Source::new(data);
    match src.byte() % 5 {
        // Raw query and fragment.
        0 => {
            let query = src.text(4096);
            let fragment = String::from_utf8_lossy(src.rest()).into_owned();
            invariants::redirect(&query, &fragment);
        }
        // A genuine code answer (with any code and state) must round-trip.
        1 => {
            let in_fragment = src.byte() & 1 == 1;
            // As the property test: no control characters in a code.
            let code: String = src.text(512).chars().filter(|c| !c.is_control()).collect();
            let state = String::from_utf8_lossy(src.rest()).into_owned();
            invariants::redirect_code_round_trip(&code, &state, in_fragment);
        }
        // A genuine error answer must round-trip (code, message, trace lines).
        // The same preconditions as the property test: an error code and a trace id in their
        // alphabets, a one-line message that does not itself look like a trailer line.
        2 => {
            let error = in_alphabet(src.bytes(64), b" abcdefghijklmnopqrstuvwxyz_");
            let message: String = src.text(1024).replace(['\r', '\n'], " ");
            let trace = in_alphabet(src.bytes(128), b" abcdef0123456789-");
            let state = String::from_utf8_lossy(src.rest()).into_owned();
            let trailer = ["Trace ID:", "Correlation ID:", "Timestamp:"]
                .iter()
                .any(|p| message.trim().starts_with(p));
            if !trailer {
                invariants::redirect_error_round_trip(&error, &message, &trace, &state);
            }
        }
        // What an admin types or pastes as the tenant.
        _ => invariants::tenant(&String::from_utf8_lossy(src.rest())),
    }
});

/// Each byte mapped onto `alphabet`.
fn in_alphabet(bytes: &[u8], alphabet: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}
