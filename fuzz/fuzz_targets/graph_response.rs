//! Fuzz target: every Graph response classifier on any status, headers and body, and the retry
//! delay for any policy input (`tests/invariants`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let mut src = invariants::Source::new(data);
    let status = src.u16();
    let headers: Vec<(String, String)> = (0..src.below(4))
        .map(|_| {
            let name = match src.byte() % 4 {
                0 => "Retry-After".to_string(),
                1 => "request-id".to_string(),
                2 => "Content-Type".to_string(),
                _ => src.text(16),
            };
            (name, src.text(40))
        })
        .collect();
    let body = String::from_utf8_lossy(src.rest()).into_owned();
    invariants::graph_response(status, &headers, &body);
});
