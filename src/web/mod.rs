//! The browser page: a thin Leptos layer over engine types. Browser APIs are reached only through
//! `adapters`; components never retry, sleep or read status codes (the engine's driver does).

pub mod adapters;
pub mod app;
/// Benchmark hooks (`bench/run.sh`); not in the shipped page.
#[cfg(feature = "bench")]
pub mod bench;
pub mod js_api;
pub mod maint;
pub mod ops;
pub mod tabs;

use wasm_bindgen::prelude::*;

/// Module start (Trunk builds with feature `app`): install the panic hook, mount the page.
#[cfg(feature = "app")]
#[wasm_bindgen(start)]
pub fn start() {
    install_panic_hook();
    let Some(root) = adapters::element_by_id("app") else {
        return;
    };
    root.set_inner_html("");
    let root: web_sys::HtmlElement = root.unchecked_into();
    leptos::mount::mount_to(root, app::App).forget();
}

/// A panic kills the WebAssembly instance; replace the page with an error panel that says so
/// (text only, no details that could hold a secret) instead of leaving a dead page.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|_info| {
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            if let Some(body) = doc.body() {
                body.set_text_content(None);
                if let Ok(div) = doc.create_element("div") {
                    let _ = div.set_attribute("data-testid", "error-panel");
                    let _ = div.set_attribute("role", "alert");
                    div.set_class_name("error-panel fatal");
                    div.set_text_content(Some(
                        "The page hit an internal error and stopped. Nothing was sent anywhere. \
                         Reload the page to start again; if you had not downloaded your \
                         configuration yet, run Add app again (it finds the app and issues new \
                         credentials). Please report this to Bacula support.",
                    ));
                    let _ = body.append_child(&div);
                }
            }
        }
    }));
}
