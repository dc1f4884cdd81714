//! Fuzz target: the PKCS#12 reader on damaged and arbitrary files (renew reads a PFX the admin
//! uploads): never panics, never hangs, accepts only a key with its certificate
//! (`tests/invariants::pfx_read`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/invariants/mod.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| invariants::pfx_read(data));
