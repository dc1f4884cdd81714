//! The page's components.

use leptos::prelude::*;

#[component]
pub fn App() -> impl IntoView {
    view! { <h1>"Bacula M365 registrator"</h1> }
}
