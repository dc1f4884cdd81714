//! Fuzz target: the plan driver on scripted Graph answers derived from the bytes (any plan, any
//! sequence of statuses, headers and JSON bodies): it ends, never panics, and keeps its promises
//! (`tests/invariants::driver`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| invariants::driver(data));
