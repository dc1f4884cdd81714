//! The page's components: tenant, consent (B-1) and its landing result, sign-in, review, create
//! (B-2) with live progress, downloads. State lives in signals of engine types; the async work
//! is in `web::ops`; components never retry, sleep or read status codes.

use leptos::prelude::*;

use crate::engine::auth::{self, parse_tenant};
use crate::engine::crypto::PfxKind;
use crate::engine::permissions::{self, Service};
use crate::engine::provision::{Credentials, PlannedStep};
use crate::web::ops::{self, ConsentView, Session, StepStatus, StepView, UiError};
use crate::web::{adapters, tabs};

/// Admin's choices for the app (persisted in sessionStorage across the sign-in redirect: none is
/// secret).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    pub app_name: String,
    pub secret_months: u32,
    pub cert_years: u32,
    pub legacy_pfx: bool,
    pub config_dir: String,
    pub services: Vec<String>,
}

impl Options {
    pub fn services(&self) -> Vec<Service> {
        let mut v: Vec<Service> = self
            .services
            .iter()
            .filter_map(|s| Service::from_id(s))
            .collect();
        for s in Service::all() {
            if s.always_on() && !v.contains(s) {
                v.push(*s);
            }
        }
        v
    }
    pub fn pfx_kind(&self) -> PfxKind {
        if self.legacy_pfx {
            PfxKind::Legacy
        } else {
            PfxKind::Modern
        }
    }
}

/// A generated certificate file and its password (memory only).
#[derive(Clone)]
pub struct PfxFile {
    pub bytes: Vec<u8>,
    pub password: crate::engine::secret::PfxPassword,
    pub file_name: String,
}

/// Which operation the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    Connect,
    Renew,
    Check,
    Delete,
}

/// All page state. `RwSignal` is `Copy`, so is this.
#[derive(Clone, Copy)]
pub struct St {
    pub deploy: RwSignal<Option<crate::engine::deploy::DeployConfig>>,
    pub fatal: RwSignal<Option<String>>,
    pub page_url: RwSignal<String>,
    pub tab: RwSignal<Tab>,
    pub tenant_text: RwSignal<String>,
    pub consent: RwSignal<Option<ConsentView>>,
    pub session: RwSignal<Option<Session>>,
    pub signing_in: RwSignal<bool>,
    pub signin_error: RwSignal<Option<UiError>>,
    pub opts: RwSignal<Options>,
    pub steps: RwSignal<Vec<StepView>>,
    pub running: RwSignal<bool>,
    pub generating: RwSignal<bool>,
    pub creds: RwSignal<Option<Credentials>>,
    pub org_domain: RwSignal<Option<String>>,
    pub pfx: RwSignal<Option<PfxFile>>,
    pub delivered: RwSignal<bool>,
    pub error: RwSignal<Option<UiError>>,
    pub notices: RwSignal<Vec<String>>,
    pub finished: RwSignal<Option<String>>,
    pub report: RwSignal<Option<Vec<String>>>,
    pub report_ok: RwSignal<Option<bool>>,
    pub credential_list: RwSignal<Vec<String>>,
    pub confirm_delete: RwSignal<bool>,
    pub op_done: RwSignal<Option<String>>,
    pub current_pfx: RwSignal<Option<(Vec<u8>, String)>>,
    /// State of the Renew, Check and Delete tabs (`web::maint`).
    pub maint: crate::web::maint::Maint,
}

impl St {
    fn new() -> St {
        St {
            deploy: RwSignal::new(None),
            fatal: RwSignal::new(None),
            page_url: RwSignal::new(String::new()),
            tab: RwSignal::new(Tab::Connect),
            tenant_text: RwSignal::new(String::new()),
            consent: RwSignal::new(None),
            session: RwSignal::new(None),
            signing_in: RwSignal::new(false),
            signin_error: RwSignal::new(None),
            opts: RwSignal::new(ops::default_options(None)),
            steps: RwSignal::new(Vec::new()),
            running: RwSignal::new(false),
            generating: RwSignal::new(false),
            creds: RwSignal::new(None),
            org_domain: RwSignal::new(None),
            pfx: RwSignal::new(None),
            delivered: RwSignal::new(false),
            error: RwSignal::new(None),
            notices: RwSignal::new(Vec::new()),
            finished: RwSignal::new(None),
            report: RwSignal::new(None),
            report_ok: RwSignal::new(None),
            credential_list: RwSignal::new(Vec::new()),
            confirm_delete: RwSignal::new(false),
            op_done: RwSignal::new(None),
            current_pfx: RwSignal::new(None),
            maint: crate::web::maint::Maint::new(),
        }
    }

    /// An undownloaded secret is in memory.
    pub fn secret_at_risk(&self) -> bool {
        self.creds.with_untracked(|c| c.is_some()) && !self.delivered.get_untracked()
    }
}

#[component]
pub fn App() -> impl IntoView {
    let st = St::new();
    provide_context(st);
    adapters::guard_unload(move || st.secret_at_risk());
    leptos::task::spawn_local(ops::boot(st));
    view! {
        <header class="top">
            <h1>"Connect Microsoft 365 to Bacula"</h1>
            <p class="sub">
                "Registers " <code>{move || st.opts.with(|o| o.app_name.clone())}</code>
                " in your tenant for Bacula Enterprise's M365 plugin. Everything happens in this page: no server sees your token, secret or key."
            </p>
        </header>
        {move || st.fatal.get().map(|m| view! {
            <div class="error-panel" role="alert" data-testid="error-panel">
                <h2>"This page is not configured correctly"</h2>
                <p>{m}</p>
                <p>"Ask the administrator of this Bacula web console to fix config.json beside this page."</p>
            </div>
        })}
        <Show when=move || st.deploy.with(|d| d.is_some())>
            <tabs::TabBar />
            <Show when=move || st.tab.get() == Tab::Connect>
                <ConnectTab />
            </Show>
            <Show when=move || st.tab.get() == Tab::Renew>
                <tabs::RenewTab />
            </Show>
            <Show when=move || st.tab.get() == Tab::Check>
                <tabs::CheckTab />
            </Show>
            <Show when=move || st.tab.get() == Tab::Delete>
                <tabs::DeleteTab />
            </Show>
        </Show>
    }
}

pub fn use_st() -> St {
    expect_context::<St>()
}

/// The tenant field, shared by every tab.
#[component]
pub fn TenantField() -> impl IntoView {
    let st = use_st();
    let check = move || {
        let t = st.tenant_text.get();
        if t.trim().is_empty() {
            return None;
        }
        parse_tenant(&t).err().map(|e| e.advice())
    };
    view! {
        <label for="tenant">"Tenant ID or verified domain"</label>
        <input id="tenant" type="text" data-testid="tenant-input" autocomplete="off" spellcheck="false"
            placeholder="contoso.onmicrosoft.com or 00000000-0000-0000-0000-000000000000"
            aria-describedby="tenant-help"
            prop:value=move || st.tenant_text.get()
            on:input=move |ev| {
                st.tenant_text.set(event_target_value(&ev));
                ops::save_ui(st);
            } />
        <p id="tenant-help" class=move || if check().is_some() { "field-error" } else { "hint" } data-testid="tenant-message">
            {move || check().unwrap_or_else(|| "Find it in the Microsoft Entra admin center, Overview: Tenant ID or Primary domain.".into())}
        </p>
    }
}

/// Sign-in status and button, shared by every tab.
#[component]
pub fn SignIn() -> impl IntoView {
    let st = use_st();
    let tenant_ok = move || parse_tenant(&st.tenant_text.get()).is_ok();
    view! {
        {move || match st.session.get() {
            Some(s) => view! {
                <p class="ok" data-testid="signed-in-user">
                    "Signed in as " <strong>{s.user_label()}</strong> " to tenant " <code>{s.claims.tid.clone()}</code>
                </p>
            }.into_any(),
            None => view! {
                <button data-testid="sign-in-button" class="primary"
                    disabled=move || !tenant_ok() || st.signing_in.get()
                    on:click=move |_| ops::start_sign_in(st)>
                    {move || if st.signing_in.get() { "Signing in…" } else { "Sign in as a tenant administrator" }}
                </button>
                {crate::web::maint::add_app_incomplete(
                    crate::web::adapters::session::get(crate::web::maint::RUN_KEY).as_deref(),
                ).then(|| view! {
                    <p class="note" data-testid="resume-note">
                        "An add-app run in this tab was interrupted (the page was reloaded or left). Sign in, then press Create: it finishes the run and removes the secret that was never downloaded."
                    </p>
                })}
            }.into_any(),
        }}
        {move || st.signin_error.get().map(|e| view! { <ErrorPanel err=e /> })}
    }
}

#[component]
fn ConnectTab() -> impl IntoView {
    let st = use_st();
    let tenant = move || parse_tenant(&st.tenant_text.get()).ok();
    let consent_url = move || {
        let t = tenant()?;
        st.deploy.with(|d| {
            d.as_ref()
                .map(|d| ops::consent_url_preview(d, &t, &st.page_url.get()))
        })
    };
    view! {
        <section class="card" aria-labelledby="s1">
            <h2 id="s1"><span class="num">"1"</span>"Your tenant"</h2>
            <TenantField />
        </section>

        <section class="card" aria-labelledby="s2">
            <h2 id="s2"><span class="num">"2"</span>"Authorize the registrator (once per tenant)"</h2>
            <ConsentResult />
            <p>"A tenant administrator grants Bacula's "<code>"bacula-m365-registrator"</code>
               " the permissions it needs to create the plugin's app. Skip this if it was done before."</p>
            {move || match consent_url() {
                Some(url) => view! {
                    <p>
                        <a class="button" data-testid="consent-link" href=url.clone()
                           on:click=move |ev| { ev.prevent_default(); ops::start_consent(st); }>
                           "Authorize bacula-m365-registrator"
                        </a>
                    </p>
                    <details><summary>"The consent URL"</summary><code class="url">{url}</code></details>
                }.into_any(),
                None => view! { <p class="hint">"Enter your tenant first."</p> }.into_any(),
            }}
        </section>

        <section class="card" aria-labelledby="s3">
            <h2 id="s3"><span class="num">"3"</span>"Sign in"</h2>
            <SignIn />
        </section>

        <Show when=move || st.session.with(|s| s.is_some())>
            <Review />
            <Progress />
        </Show>
        <Downloads />
        {move || st.error.get().map(|e| view! { <ErrorPanel err=e /> })}
    }
}

#[component]
fn ConsentResult() -> impl IntoView {
    let st = use_st();
    move || {
        st.consent.get().map(|c| {
            let cls = match c.status {
                "success" => "result ok",
                "cancelled" => "result warn",
                _ => "result bad",
            };
            view! {
                <div class=cls data-testid="consent-result" data-status=c.status role="status">
                    <p><strong>{c.title.clone()}</strong></p>
                    <p>{c.advice.clone()}</p>
                    {c.detail.clone().map(|d| view! { <pre class="diag">{d}</pre> })}
                </div>
            }
        })
    }
}

#[component]
fn Review() -> impl IntoView {
    let st = use_st();
    let plan = Memo::new(move |_| ops::preview_plan(st));
    let set_service = move |id: &'static str, on: bool| {
        st.opts.update(|o| {
            o.services.retain(|s| s != id);
            if on {
                o.services.push(id.to_string());
            }
        });
        ops::save_ui(st);
    };
    let protected = move || permissions::protected_apis(&st.opts.with(|o| o.services()));
    view! {
        <section class="card" aria-labelledby="s4">
            <h2 id="s4"><span class="num">"4"</span>"Review what will be created"</h2>
            <fieldset>
                <legend>"Plugin services to back up (least privilege: untick what you don't use)"</legend>
                <ul class="services">
                {Service::all().iter().map(|s| {
                    let s = *s;
                    let id = s.id();
                    view! {
                        <li>
                            <label>
                                <input type="checkbox" data-testid=format!("service-{id}")
                                    disabled=s.always_on()
                                    prop:checked=move || s.always_on() || st.opts.with(|o| o.services.iter().any(|x| x == id))
                                    on:change=move |ev| set_service(id, event_target_checked(&ev)) />
                                {s.label()}
                            </label>
                        </li>
                    }
                }).collect_view()}
                </ul>
            </fieldset>
            {move || {
                let p = protected();
                (!p.is_empty()).then(|| view! {
                    <p class="note" data-testid="protected-note">
                        {format!("{} are Microsoft protected APIs: after the app exists, request access for its application id at https://aka.ms/teamsgraph/requestaccess. Until Microsoft approves, chat and channel message backup may fail with 403.", p.join(", "))}
                    </p>
                })
            }}
            <details class="options">
                <summary>"Options"</summary>
                <div class="grid">
                    <label for="app-name">"App name"</label>
                    <input id="app-name" type="text" data-testid="app-name" prop:value=move || st.opts.with(|o| o.app_name.clone())
                        aria-describedby="app-name-message"
                        on:change=move |ev| { st.opts.update(|o| o.app_name = event_target_value(&ev).trim().to_string()); ops::save_ui(st); } />
                    {move || st.opts.with(|o| crate::engine::provision::app_name_problem(&o.app_name)).map(|m| view! {
                        <p id="app-name-message" class="field-error wide" data-testid="app-name-message" role="alert">{m}</p>
                    })}
                    <label for="secret-months">"Secret lifetime (months)"</label>
                    <input id="secret-months" type="number" min="1" max="24" data-testid="secret-months"
                        prop:value=move || st.opts.with(|o| o.secret_months.to_string())
                        on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(24u32).clamp(1, 24); st.opts.update(|o| o.secret_months = v); ops::save_ui(st); } />
                    <label for="cert-years">"Certificate validity (years)"</label>
                    <input id="cert-years" type="number" min="1" max="5" data-testid="cert-years"
                        prop:value=move || st.opts.with(|o| o.cert_years.to_string())
                        on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(2u32).clamp(1, 5); st.opts.update(|o| o.cert_years = v); ops::save_ui(st); } />
                    <label for="legacy">"Legacy PFX (3DES/SHA-1) for Java 8 before 8u301 or Windows Server 2016"</label>
                    <input id="legacy" type="checkbox" data-testid="legacy-pfx" prop:checked=move || st.opts.with(|o| o.legacy_pfx)
                        on:change=move |ev| { st.opts.update(|o| o.legacy_pfx = event_target_checked(&ev)); ops::save_ui(st); } />
                    <label for="config-dir">"Folder on the Bacula client"</label>
                    <input id="config-dir" type="text" data-testid="config-dir" prop:value=move || st.opts.with(|o| o.config_dir.clone())
                        on:change=move |ev| { st.opts.update(|o| o.config_dir = event_target_value(&ev)); ops::save_ui(st); } />
                </div>
            </details>
            <div data-testid="plan" class="plan">
                {move || plan.get().map(|(steps, perms)| view! {
                    <ol class="plan-steps">
                        {steps.into_iter().map(|s: PlannedStep| view! {
                            <li><strong>{s.title}</strong>
                                <ul class="calls">{s.calls.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}</ul>
                            </li>
                        }).collect_view()}
                    </ol>
                    <details>
                        <summary>{format!("{} permissions", perms.len())}</summary>
                        <ul class="perms" data-testid="plan-permissions">
                            {perms.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}
                        </ul>
                    </details>
                })}
            </div>
            {move || st.opts.with(|o| crate::engine::provision::app_name_problem(&o.app_name)).map(|m| view! {
                <p class="field-error" data-testid="create-blocked">{format!("The app name in Options cannot be used. {m}")}</p>
            })}
            <button class="primary" data-testid="create-button"
                disabled=move || st.running.get() || st.generating.get()
                    || st.opts.with(|o| crate::engine::provision::app_name_problem(&o.app_name).is_some())
                on:click=move |_| ops::start_create(st)>
                {move || if st.running.get() || st.generating.get() { "Working…" } else { "Create the app and credentials" }}
            </button>
        </section>
    }
}

#[component]
pub fn Progress() -> impl IntoView {
    let st = use_st();
    view! {
        <Show when=move || st.generating.get() || !st.steps.with(|s| s.is_empty())>
            <section class="card" aria-labelledby="s5">
                <h2 id="s5"><span class="num">"5"</span>"Progress"</h2>
                <Show when=move || st.generating.get()>
                    <p class="running" data-testid="generating">"Generating the RSA key, certificate and PFX in this page…"</p>
                </Show>
                <StepList steps=st.steps />
                {move || st.finished.get().map(|m| view! { <p class="ok" data-testid="finished">{m}</p> })}
                <ul class="notices">
                    {move || st.notices.get().into_iter().map(|n| view! { <li data-testid="notice">{n}</li> }).collect_view()}
                </ul>
            </section>
        </Show>
    }
}

/// The steps of a running plan (`step-<name>` with `data-status`), shared by every operation.
#[component]
pub fn StepList(steps: RwSignal<Vec<StepView>>) -> impl IntoView {
    view! {
        <ol class="steps" aria-live="polite">
            {move || steps.get().into_iter().map(|s| {
                let status = s.status.as_str();
                view! {
                    <li data-testid=format!("step-{}", s.name) data-status=status class=format!("step {status}")>
                        <span class="badge">{status}</span>
                        <strong>{s.title.clone()}</strong>
                        " "
                        <span class="detail">{s.detail.clone()}</span>
                    </li>
                }
            }).collect_view()}
        </ol>
    }
}

#[component]
pub fn Downloads() -> impl IntoView {
    let st = use_st();
    let show_pw = RwSignal::new(false);
    view! {
        // Only once a secret exists: the certificate is then on the app too (the app step comes
        // first). A .pfx made for a run that failed earlier is kept for the next Create, not
        // offered as a configuration (found by a helper).
        <Show when=move || st.creds.with(|c| c.is_some())>
            <section class="card" aria-labelledby="s6">
                <h2 id="s6"><span class="num">"6"</span>"Download your configuration"</h2>
                <p>"Copy both files to the Bacula client, into "<code>{move || ops::config_dir(st)}</code>
                   ". They hold secrets: keep them readable by the Bacula user only."</p>
                <div class="buttons">
                    <button data-testid="download-config" disabled=move || st.creds.with(|c| c.is_none())
                        on:click=move |_| ops::download_config(st)>"Download bacula_m365_config.conf"</button>
                    <button data-testid="download-pfx" disabled=move || st.pfx.with(|p| p.is_none())
                        on:click=move |_| ops::download_pfx(st)>"Download the certificate (.pfx)"</button>
                    <button data-testid="download-zip" disabled=move || st.creds.with(|c| c.is_none())
                        on:click=move |_| ops::download_zip(st)>"Download both + Fileset sample (.zip)"</button>
                </div>
                {move || st.pfx.get().map(|p| {
                    let pw = p.password.clone();
                    let pw2 = p.password.clone();
                    view! {
                        <p>"Certificate password (also inside the .conf): "
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
                {move || st.creds.with(|c| c.is_some()).then(|| view! {
                    <p>"Add this to the Plugin line of your M365 filesets:"</p>
                    <pre data-testid="plugin-line" class="snippet">{ops::plugin_line(st)}</pre>
                })}
            </section>
        </Show>
    }
}

/// Advice for an error, chosen by its kind, with a diagnostics block to paste into a ticket.
#[component]
pub fn ErrorPanel(err: UiError) -> impl IntoView {
    let diag = err.diagnostics.clone();
    let diag2 = diag.clone();
    view! {
        <div class="error-panel" role="alert" data-testid="error-panel" data-kind=err.kind>
            <h2>{err.title}</h2>
            <p>{err.advice}</p>
            {diag.map(|d| view! {
                <details>
                    <summary>"Diagnostics for Bacula support"</summary>
                    <pre class="diag" data-testid="diagnostics">{d}</pre>
                </details>
            })}
            {diag2.map(|d| view! { <button data-testid="copy-diagnostics" on:click=move |_| adapters::copy_text(&d)>"Copy diagnostics"</button> })}
        </div>
    }
}

/// A step status as shown (also `data-status`).
impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Retrying => "retrying",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }
}

/// The consent URL for the admin's tenant, for the JavaScript API and the page.
pub fn consent_for(
    d: &crate::engine::deploy::DeployConfig,
    tenant: &auth::Tenant,
    redirect: &str,
    state: &str,
) -> String {
    auth::admin_consent_url(
        &d.endpoints(),
        tenant,
        &d.client_id,
        redirect,
        state,
        auth::ConsentForm::V1,
    )
}
