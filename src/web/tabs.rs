//! The tab bar and the maintenance tabs: Renew (B-4), Check permissions, Delete registrator (B-5).

use leptos::prelude::*;

use crate::web::app::{use_st, Tab};

#[component]
pub fn TabBar() -> impl IntoView {
    let st = use_st();
    let tab = move |t: Tab, label: &'static str, id: &'static str| {
        view! {
            <button role="tab" data-testid=id aria-selected=move || (st.tab.get() == t).to_string()
                class=move || if st.tab.get() == t { "tab active" } else { "tab" }
                on:click=move |_| { st.tab.set(t); crate::web::ops::save_ui(st); }>{label}</button>
        }
    };
    view! {
        <nav class="tabs" role="tablist" aria-label="Operations">
            {tab(Tab::Connect, "Connect (add app)", "tab-connect")}
            {tab(Tab::Renew, "Renew credentials", "tab-renew")}
            {tab(Tab::Check, "Check permissions", "tab-check")}
            {tab(Tab::Delete, "Delete registrator", "tab-delete")}
        </nav>
    }
}

#[component]
pub fn RenewTab() -> impl IntoView {
    view! { <section class="card"><h2>"Renew credentials"</h2></section> }
}

#[component]
pub fn CheckTab() -> impl IntoView {
    view! { <section class="card"><h2>"Check permissions"</h2></section> }
}

#[component]
pub fn DeleteTab() -> impl IntoView {
    view! { <section class="card"><h2>"Delete the registrator"</h2></section> }
}
