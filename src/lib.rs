//! m365-registrator: the engine (always), the browser page (wasm32 only) and the emulated tenant (native, feature `emulator`).

pub mod engine;

#[cfg(target_arch = "wasm32")]
pub mod web;

#[cfg(all(not(target_arch = "wasm32"), feature = "emulator"))]
pub mod emulator;
