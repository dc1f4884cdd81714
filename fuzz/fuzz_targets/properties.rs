//! Fuzz target: the Java properties writer/reader round trip, the reader on any text, and the
//! Bacula config round trip (`tests/invariants`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let mut src = invariants::Source::new(data);
    match src.byte() % 3 {
        0 => invariants::properties_read(&String::from_utf8_lossy(src.rest())),
        1 => {
            let comment = (src.byte() & 1 == 1).then(|| src.text(200));
            let date = src.text(64);
            let pairs: Vec<(String, String)> = (0..src.below(8))
                .map(|_| (src.text(40), src.text(200)))
                .collect();
            invariants::properties_round_trip(comment.as_deref(), &date, &pairs);
        }
        _ => {
            let now = i64::from(src.u32()) * if src.byte() & 1 == 1 { 1 } else { -1 };
            let values: [String; 6] = std::array::from_fn(|_| src.text(200));
            invariants::config_round_trip(&values, now);
        }
    }
});
