//! The browser page (thin Leptos layer over engine types).
