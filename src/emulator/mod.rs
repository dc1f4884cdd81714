//! The emulated tenant.
