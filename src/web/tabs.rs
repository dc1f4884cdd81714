//! The tab bar and the maintenance tabs: Renew (B-4), Check permissions, Delete registrator (B-5).
//! Components only: the operations and their state are in `web::maint`; no retries, sleeps or
//! status codes here.

use leptos::prelude::*;

use crate::engine::auth::parse_tenant;
use crate::web::adapters;
use crate::web::app::{use_st, ErrorPanel, SignIn, St, Tab, TenantField};
use crate::web::maint::{self, Op};
use crate::web::ops;

const TABS: [(Tab, &str, &str); 4] = [
    (Tab::Connect, "Connect (add app)", "tab-connect"),
    (Tab::Renew, "Renew credentials", "tab-renew"),
    (Tab::Check, "Check permissions", "tab-check"),
    (Tab::Delete, "Delete registrator", "tab-delete"),
];

fn select_tab(st: St, t: Tab) {
    st.tab.set(t);
    ops::save_ui(st);
}

/// Tabs with the WAI-ARIA keyboard pattern: Tab reaches the selected tab, arrow keys, Home and
/// End move between tabs (and select them).
#[component]
pub fn TabBar() -> impl IntoView {
    let st = use_st();
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let i = TABS
            .iter()
            .position(|(t, _, _)| *t == st.tab.get_untracked())
            .unwrap_or(0);
        let n = TABS.len();
        let j = match ev.key().as_str() {
            "ArrowRight" => (i + 1) % n,
            "ArrowLeft" => (i + n - 1) % n,
            "Home" => 0,
            "End" => n - 1,
            _ => return,
        };
        ev.prevent_default();
        select_tab(st, TABS[j].0);
        if let Some(el) = adapters::element_by_id(TABS[j].2) {
            use wasm_bindgen::JsCast;
            if let Ok(el) = el.dyn_into::<web_sys::HtmlElement>() {
                let _ = el.focus();
            }
        }
    };
    view! {
        <nav class="tabs" role="tablist" aria-label="Operations" on:keydown=on_key>
            {TABS.iter().map(|&(t, label, id)| view! {
                <button role="tab" id=id data-testid=id
                    aria-selected=move || (st.tab.get() == t).to_string()
                    tabindex=move || if st.tab.get() == t { "0" } else { "-1" }
                    class=move || if st.tab.get() == t { "tab active" } else { "tab" }
                    on:click=move |_| select_tab(st, t)>{label}</button>
            }).collect_view()}
        </nav>
    }
}

fn signed_in(st: St) -> bool {
    st.session.with(|s| s.is_some())
}

/// Tenant and sign-in, at the top of every maintenance tab.
#[component]
fn TenantAndSignIn(#[prop(into)] heading: String, intro: &'static str) -> impl IntoView {
    let id = format!("{}-h", heading.to_ascii_lowercase().replace(' ', "-"));
    let labelledby = id.clone();
    view! {
        <section class="card" aria-labelledby=labelledby>
            <h2 id=id>{heading}</h2>
            <p>{intro}</p>
            <TenantField />
            <SignIn />
        </section>
    }
}

/// The progress of the last maintenance operation, when it belongs to `tab`.
#[component]
fn OpProgress(tab: Op) -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let mine = move || m.op.get().map(Op::tab) == Some(tab);
    let head = format!("progress-{}", tab.button_id());
    let labelledby = head.clone();
    view! {
        <Show when=move || mine() && (m.generating.get() || !m.steps.with(|s| s.is_empty()))>
            <section class="card" aria-labelledby=labelledby.clone()>
                <h2 id=head.clone()>"Progress"</h2>
                <Show when=move || m.generating.get()>
                    <p class="running" data-testid="generating">"Generating the new RSA key, certificate and PFX in this page…"</p>
                </Show>
                <crate::web::app::StepList steps=m.steps />
                {move || m.finished.get().map(|f| view! { <p class="ok" data-testid="finished" role="status">{f}</p> })}
                <ul class="notices">
                    {move || m.notices.get().into_iter().map(|n| view! { <li data-testid="notice">{n}</li> }).collect_view()}
                </ul>
            </section>
        </Show>
    }
}

/// The error of the last maintenance operation, when it belongs to `tab`.
#[component]
fn OpError(tab: Op) -> impl IntoView {
    let m = use_st().maint;
    move || {
        m.error
            .get()
            .filter(|(op, _)| op.tab() == tab)
            .map(|(_, e)| view! { <ErrorPanel err=e /> })
    }
}

impl Op {
    fn button_id(self) -> &'static str {
        match self {
            Op::Renew => "renew",
            Op::Check | Op::Repair => "check",
            Op::Delete => "delete",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Renew (B-4)

#[component]
pub fn RenewTab() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    // Read the credentials once signed in (and again after each renew).
    Effect::new(move |_| {
        if signed_in(st)
            && m.credentials.with_untracked(|c| c.is_none())
            && m.credentials_error.with_untracked(|e| e.is_none())
        {
            maint::start_load_credentials(st);
        }
    });
    view! {
        <div role="tabpanel" aria-labelledby="tab-renew" class="panel">
            <TenantAndSignIn heading="Renew credentials"
                intro="Issues a new secret and certificate for the plugin's app when the current ones expire within 90 days (or have expired), or both at once when forced (the console's q_addapp_renew=true). New credentials are added first; the ones they replace are removed only after, and only those this tool made, so the app is never without a working credential. Permissions are brought up to date on the way. You get a new configuration file and .pfx to copy to the Bacula client." />
            <Show when=move || signed_in(st)>
                <CredentialList />
                <RenewForm />
            </Show>
            <OpProgress tab=Op::Renew />
            <RenewDownloads />
            <OpError tab=Op::Renew />
        </div>
    }
}

#[component]
fn CredentialList() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let app = move || st.opts.with(|o| o.app_name.clone());
    view! {
        <section class="card" aria-labelledby="creds-h">
            <h2 id="creds-h">"Credentials of " <code>{app}</code></h2>
            <Show when=move || m.credentials_loading.get()>
                <p class="running" data-testid="credentials-loading" role="status">"Reading the app's credentials…"</p>
            </Show>
            {move || m.credentials.get().map(|list| {
                let now = adapters::now_unix();
                let empty = list.is_empty();
                view! {
                    <ul class="credentials" data-testid="credential-list">
                        {list.into_iter().map(|c| view! {
                            <li data-kind=maint::credential_kind(&c) data-state=maint::credential_state(&c)
                                data-made-by-tool=c.made_by_tool.to_string()
                                class=format!("credential {}", maint::credential_state(&c))>
                                {maint::credential_line(&c, now)}
                            </li>
                        }).collect_view()}
                    </ul>
                    {empty.then(|| view! { <p class="hint" data-testid="credential-empty">"The app has no secret and no certificate: Renew adds both."</p> })}
                }
            })}
            {move || m.credentials_error.get().map(|e| view! { <ErrorPanel err=e /> })}
            <button data-testid="credentials-refresh" disabled=move || m.credentials_loading.get() || m.running.get()
                on:click=move |_| { m.credentials_error.set(None); maint::start_load_credentials(st); }>
                "Read the credentials again"
            </button>
        </section>
    }
}

#[component]
fn RenewForm() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let busy = move || m.running.get() || m.generating.get() || m.credentials_loading.get();
    let preview = move || {
        let force = m.force.get();
        m.credentials.with(|l| {
            l.as_ref().map(|l| {
                match maint::renew_due(l, force, adapters::now_unix()) {
                    (true, true) => "Renew will add a new secret and a new certificate.",
                    (true, false) => "Renew will add a new secret; the certificate is valid for more than 90 days and stays.",
                    (false, true) => "Renew will add a new certificate; the secret is valid for more than 90 days and stays.",
                    (false, false) => "Nothing is due: the secret and the certificate are valid for more than 90 days. Tick the box above to renew them anyway.",
                }
            })
        })
    };
    let months = move || st.opts.with(|o| o.secret_months);
    view! {
        <section class="card" aria-labelledby="renew-h">
            <h2 id="renew-h">"Renew"</h2>
            <p>
                <label class="inline">
                    <input type="checkbox" id="renew-force" data-testid="renew-force"
                        prop:checked=move || m.force.get()
                        on:change=move |ev| m.force.set(event_target_checked(&ev)) />
                    " Renew both the secret and the certificate now, whatever their expiry"
                </label>
            </p>
            {move || preview().map(|p| view! { <p class="hint" data-testid="renew-preview">{p}</p> })}
            <div class="grid">
                <label for="renew-secret-months">"New secret lifetime (months)"</label>
                <input id="renew-secret-months" type="number" min="1" max="24" data-testid="renew-secret-months"
                    prop:value=move || months().to_string()
                    on:change=move |ev| {
                        let v = event_target_value(&ev).parse().unwrap_or(24u32).clamp(1, 24);
                        st.opts.update(|o| o.secret_months = v);
                        ops::save_ui(st);
                    } />
            </div>
            <fieldset class="files">
                <legend>"Your current files (optional; read in this page, never uploaded)"</legend>
                <label for="current-pfx">"Current certificate (.pfx)"</label>
                <input id="current-pfx" type="file" data-testid="current-pfx" accept=".pfx,.p12,application/x-pkcs12"
                    aria-describedby="current-pfx-help"
                    on:change=move |ev| maint::pick_current_pfx(st, ev) />
                <label for="current-pfx-password">"Its password (sharepoint_certificate_password)"</label>
                <input id="current-pfx-password" type="password" data-testid="current-pfx-password" autocomplete="off"
                    prop:value=move || m.pfx_password.get()
                    on:input=move |ev| { m.pfx_password.set(event_target_value(&ev)); m.pfx_message.set(None); } />
                <p id="current-pfx-help" class="hint">
                    "With the current certificate and its password, the new certificate is added beside the old one with a proof signed by the old key (addKey), and the old one is removed after."
                </p>
                {move || m.pfx_message.get().map(|msg| view! { <p class="field-error" data-testid="current-pfx-message" role="alert">{msg}</p> })}
                <Show when=move || st.current_pfx.with(|p| p.is_none())>
                    <p class="note" data-testid="renew-cert-warning">
                        "Without the current .pfx, a renewed certificate replaces the old one: the old certificate stops working at once, so install the new .pfx on the Bacula client right after renewing."
                    </p>
                </Show>
                <label for="current-config">"Current bacula_m365_config.conf"</label>
                <input id="current-config" type="file" data-testid="current-config" accept=".conf,.properties,text/plain"
                    aria-describedby="current-config-help"
                    on:change=move |ev| maint::pick_current_config(st, ev) />
                <p id="current-config-help" class="hint">
                    "When only one of the secret and the certificate is renewed, the new file keeps the other from this one."
                </p>
                {move || m.config_message.get().map(|msg| view! { <p class="field-error" data-testid="current-config-message" role="alert">{msg}</p> })}
                {move || m.current_config.get().map(|(name, c)| view! {
                    <p class="hint" data-testid="current-config-read">
                        {format!("Read {name} (appid {}).", c.appid.as_ref().map(|a| a.as_str().to_string()).unwrap_or_else(|| "?".into()))}
                    </p>
                })}
            </fieldset>
            <button class="primary" data-testid="renew-button" disabled=busy
                on:click=move |_| maint::start_renew(st)>
                {move || if busy() { "Working…" } else if m.force.get() { "Renew the secret and the certificate" } else { "Renew what is due" }}
            </button>
            <Show when=move || m.policy_choice.get()>
                <div class="note" data-testid="policy-choice" role="group" aria-label="Shorter secret lifetime">
                    <p>{move || format!("Your tenant's policy does not allow a secret that lives {} months. Renew with a shorter lifetime:", months())}</p>
                    {move || [12u32, 6, 3].into_iter().filter(|n| *n < months()).map(|n| view! {
                        <button data-testid=format!("policy-renew-{n}") on:click=move |_| maint::renew_with_months(st, n)>
                            {format!("{n} months")}
                        </button>
                    }).collect_view()}
                </div>
            </Show>
        </section>
    }
}

#[component]
fn RenewDownloads() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let show_pw = RwSignal::new(false);
    view! {
        {move || m.renewed.get().map(|r| {
            let has_config = r.config.is_some();
            let has_pfx = r.pfx.is_some();
            view! {
                <section class="card" aria-labelledby="renew-dl-h">
                    <h2 id="renew-dl-h">"Download the renewed configuration"</h2>
                    <p>"Copy the files to the Bacula client, into "<code>{r.config_dir.clone()}</code>
                       ", replacing the old ones. They hold secrets: keep them readable by the Bacula user only."</p>
                    <ul class="warnings">
                        {r.warnings.iter().map(|w| view! { <li class="note" data-testid="renew-warning">{w.clone()}</li> }).collect_view()}
                    </ul>
                    <div class="buttons">
                        <button data-testid="download-config" disabled=!has_config
                            on:click=move |_| maint::download_renewed_config(st)>"Download bacula_m365_config.conf"</button>
                        <button data-testid="download-pfx" disabled=!has_pfx
                            on:click=move |_| maint::download_renewed_pfx(st)>"Download the new certificate (.pfx)"</button>
                    </div>
                    {r.pfx.map(|p| {
                        let pw = p.password.clone();
                        let pw2 = p.password.clone();
                        view! {
                            <p>"New certificate password (also inside the .conf): "
                                <code data-testid="pfx-password" class=move || if show_pw.get() { "pw" } else { "pw masked" }>
                                    {move || if show_pw.get() { pw.expose().to_string() } else { "•".repeat(pw.expose().len()) }}
                                </code>
                                " "
                                <button data-testid="show-password" on:click=move |_| show_pw.update(|v| *v = !*v)>
                                    {move || if show_pw.get() { "Hide" } else { "Show" }}
                                </button>
                                <button data-testid="copy-password" on:click=move |_| adapters::copy_text(pw2.expose())>"Copy"</button>
                            </p>
                        }
                    })}
                </section>
            }
        })}
    }
}

// ---------------------------------------------------------------------------------------------
// Check permissions

#[component]
pub fn CheckTab() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let busy = move || m.running.get() || m.credentials_loading.get() || m.generating.get();
    let id_error = move || {
        m.objectid.track();
        maint::check_target(st).err()
    };
    let perm_count = move || st.opts.with(|o| ops::permission_reqs(&o.services()).len());
    let report_ok = move || st.report_ok.get();
    view! {
        <div role="tabpanel" aria-labelledby="tab-check" class="panel">
            <TenantAndSignIn heading="Check permissions"
                intro="Compares the app role assignments and delegated grants of the plugin app's service principal with the permissions the plugin needs, reports each missing one (and extra ones and expiring credentials), and offers to grant what is missing." />
            <Show when=move || signed_in(st)>
                <section class="card" aria-labelledby="check-h">
                    <h2 id="check-h">"What to check"</h2>
                    <label for="objectid-input">"Service principal object id (optional)"</label>
                    <input id="objectid-input" type="text" data-testid="objectid-input" autocomplete="off" spellcheck="false"
                        placeholder="8cee7605-0d5e-42b6-b269-c39f3411b5b9"
                        aria-describedby="objectid-help"
                        prop:value=move || m.objectid.get()
                        on:input=move |ev| m.objectid.set(event_target_value(&ev)) />
                    <p id="objectid-help" class=move || if id_error().is_some() { "field-error" } else { "hint" } data-testid="objectid-message">
                        {move || id_error().unwrap_or_else(|| format!(
                            "The objectid= line of your config file. Leave it empty to find the app named {} in the tenant.",
                            st.opts.with(|o| o.app_name.clone())))}
                    </p>
                    <p class="hint">{move || format!("Compared with the {} permissions of the services chosen on the Connect tab.", perm_count())}</p>
                    <button class="primary" data-testid="check-button" disabled=move || busy() || id_error().is_some()
                        on:click=move |_| maint::start_check(st, false)>
                        {move || if busy() { "Working…" } else { "Check permissions" }}
                    </button>
                </section>
            </Show>
            <OpProgress tab=Op::Check />
            {move || st.report.get().map(|lines| {
                let ok = report_ok() == Some(true);
                view! {
                    <section class="card" aria-labelledby="report-h">
                        <h2 id="report-h">"Report"</h2>
                        <div data-testid="check-report" data-status=if ok { "ok" } else { "missing" }
                            class=if ok { "result ok" } else { "result bad" } role="status">
                            <ul class="report">
                                {lines.into_iter().map(|l| view! { <li>{l}</li> }).collect_view()}
                            </ul>
                        </div>
                        <p class="hint">"Microsoft's protected Teams APIs are checked for presence only: whether Microsoft enabled them for the app cannot be read."</p>
                        <Show when=move || report_ok() == Some(false)>
                            <p>"Repair grants the missing permissions (a Global Administrator or Privileged Role Administrator is needed), then checks again."</p>
                            <button class="primary" data-testid="repair-button" disabled=busy
                                on:click=move |_| maint::start_check(st, true)>
                                "Grant the missing permissions"
                            </button>
                        </Show>
                    </section>
                }
            })}
            <OpError tab=Op::Check />
        </div>
    }
}

// ---------------------------------------------------------------------------------------------
// Delete registrator (B-5)

#[component]
pub fn DeleteTab() -> impl IntoView {
    let st = use_st();
    let m = st.maint;
    let confirm_ref = NodeRef::<leptos::html::Button>::new();
    // Move the focus to the confirmation when it opens (keyboard users land on it).
    Effect::new(move |_| {
        if let Some(b) = confirm_ref.get() {
            let _ = b.focus();
        }
    });
    let busy = move || m.running.get() || m.credentials_loading.get() || m.generating.get();
    let client_id = move || {
        st.deploy
            .with(|d| d.as_ref().map(|d| d.client_id.clone()))
            .unwrap_or_default()
    };
    let tenant = move || {
        st.session
            .with(|s| s.as_ref().map(|s| s.claims.tid.clone()))
            .or_else(|| {
                parse_tenant(&st.tenant_text.get())
                    .ok()
                    .map(|t| t.as_str().to_string())
            })
            .unwrap_or_default()
    };
    view! {
        <div role="tabpanel" aria-labelledby="tab-delete" class="panel">
            <TenantAndSignIn heading="Delete the registrator"
                intro="bacula-m365-registrator holds elevated permissions (it creates applications and grants permissions). Once the plugin's app is set up you may remove it from the tenant (B-5). The plugin's app, its permissions and your configuration stay as they are. Afterwards, Add app and Renew need the registrator again: authorize it first (step 2 on the Connect tab, B-1)." />
            <Show when=move || signed_in(st)>
                <section class="card" aria-labelledby="delete-h">
                    <h2 id="delete-h">"Delete"</h2>
                    <Show when=move || { st.running.get(); maint::add_app_running(st) }>
                        <p class="note" data-testid="delete-blocked">
                            "An Add app run in this browser is not finished. Finish it on the Connect tab before deleting the registrator."
                        </p>
                    </Show>
                    <button class="danger" data-testid="delete-registrator-button"
                        disabled=move || busy() || st.confirm_delete.get()
                        on:click=move |_| maint::ask_delete(st)>
                        "Delete bacula-m365-registrator from this tenant"
                    </button>
                    <Show when=move || st.confirm_delete.get()>
                        <div class="confirm" role="alertdialog" aria-labelledby="confirm-h" aria-describedby="confirm-text" data-testid="delete-confirm">
                            <h3 id="confirm-h">"Delete the registrator?"</h3>
                            <p id="confirm-text">{move || format!(
                                "This deletes the service principal of application {} from tenant {}. Add app and Renew will not work until the registrator is authorized again (B-1).",
                                client_id(), tenant())}</p>
                            <button class="danger" data-testid="confirm-button" node_ref=confirm_ref
                                on:click=move |_| maint::start_delete(st)>"Yes, delete it"</button>
                            <button data-testid="cancel-button" on:click=move |_| st.confirm_delete.set(false)>"Cancel"</button>
                        </div>
                    </Show>
                    {move || st.op_done.get().map(|t| {
                        let status = m.delete_status.get().unwrap_or("done");
                        view! {
                            <p data-testid="op-result" data-status=status role="status"
                                class=if status == "refused" { "result warn" } else { "result ok" }>{t}</p>
                        }
                    })}
                </section>
            </Show>
            <OpProgress tab=Op::Delete />
            <OpError tab=Op::Delete />
        </div>
    }
}
