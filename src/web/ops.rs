//! The page's operations: boot (config, redirect handling), consent and sign-in redirects, the
//! token exchange, credential generation and the add-app run through the engine's driver, and the
//! downloads. Browser access only through `adapters`; decisions in the engine.

use std::cell::RefCell;

use leptos::prelude::*;

use crate::engine::auth::{self, parse_tenant, IdClaims, Redirect, StateCheck, Tenant};
use crate::engine::cloud::Endpoints;
use crate::engine::crypto::{self, CertSpec};
use crate::engine::deploy::{parse_deploy_config, DeployConfig};
use crate::engine::error::{Error, ErrorKind};
use crate::engine::graph::{GraphCtx, NewKeyCredential};
use crate::engine::http::HttpClient;
use crate::engine::permissions::{self, Service};
use crate::engine::properties::{self, BaculaConfig};
use crate::engine::provision::{
    self, AddAppSpec, Credentials, Event, PermissionReq, PlannedStep, ResumeInfo, RunState, Step,
};
use crate::engine::secret::{
    AccessToken, AppId, CodeVerifier, KeyId, ObjectId, PfxPassword, TenantId,
};
use crate::web::adapters::{self, location, session, FetchClient, TimeoutSleep};
use crate::web::app::{Options, PfxFile, St, Tab};

const UI_KEY: &str = "m365reg.ui";
const PENDING_KEY: &str = "m365reg.pending";
const RUN_KEY: &str = "m365reg.run";
/// A pending redirect older than this is ignored (Entra's codes live 10 minutes).
const PENDING_MAX_AGE_MS: f64 = 30.0 * 60.0 * 1000.0;

/// The signed-in admin: token in memory only.
#[derive(Clone)]
pub struct Session {
    pub token: AccessToken,
    pub claims: IdClaims,
    pub tenant: Tenant,
}

impl Session {
    pub fn user_label(&self) -> String {
        self.claims
            .preferred_username
            .clone()
            .or_else(|| self.claims.name.clone())
            .unwrap_or_else(|| self.claims.oid.clone())
    }
}

/// What the consent landing shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentView {
    /// `success`, `error`, `cancelled`, `unknown-state`.
    pub status: &'static str,
    pub title: String,
    pub advice: String,
    pub detail: Option<String>,
}

/// A user-facing error: advice chosen from a kind, diagnostics for a ticket. Never a raw body.
#[derive(Debug, Clone, PartialEq)]
pub struct UiError {
    pub kind: &'static str,
    pub title: String,
    pub advice: String,
    pub diagnostics: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Pending,
    Running,
    Retrying,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    pub name: &'static str,
    pub title: String,
    pub status: StepStatus,
    pub detail: String,
}

/// The record kept in sessionStorage across a redirect (no token, no secret; consumed on return).
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    kind: String,
    state: String,
    #[serde(default)]
    verifier: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    created_ms: f64,
    tenant: String,
    redirect_uri: String,
}

/// Non-secret UI choices kept across the sign-in redirect.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedUi {
    tenant: String,
    opts: Options,
    tab: Tab,
}

/// An add-app run in progress (key ids only: never a secret), for resuming after a reload.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct SavedRun {
    run_id: String,
    created: Vec<KeyId>,
    delivered: Vec<KeyId>,
    complete: bool,
}

thread_local! {
    static CONSENT_STATE: RefCell<Option<String>> = const { RefCell::new(None) };
    static RUN: RefCell<RunState> = RefCell::new(RunState::new());
}

pub fn default_options(d: Option<&DeployConfig>) -> Options {
    Options {
        app_name: d
            .map(|d| d.app_name.clone())
            .unwrap_or_else(|| provision::DEFAULT_APP_NAME.into()),
        secret_months: 24,
        cert_years: 2,
        legacy_pfx: false,
        config_dir: d
            .map(|d| d.config_dir.clone())
            .unwrap_or_else(|| crate::engine::deploy::DEFAULT_CONFIG_DIR.into()),
        services: Service::all().iter().map(|s| s.id().to_string()).collect(),
    }
}

fn rand_token(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    adapters::random_bytes(&mut b)?;
    Ok(auth::random_token(&b))
}

fn deploy(st: St) -> Option<DeployConfig> {
    st.deploy.get_untracked()
}

fn redirect_uri(st: St) -> String {
    deploy(st)
        .map(|d| d.redirect_uri_for(&st.page_url.get_untracked()))
        .unwrap_or_default()
}

pub fn save_ui(st: St) {
    let ui = SavedUi {
        tenant: st.tenant_text.get_untracked(),
        opts: st.opts.get_untracked(),
        tab: st.tab.get_untracked(),
    };
    if let Ok(s) = serde_json::to_string(&ui) {
        session::set(UI_KEY, &s);
    }
}

/// Start-up: read config.json, restore choices, handle a redirect back from Entra.
pub async fn boot(st: St) {
    let (page, query, fragment) = location::parts();
    st.page_url.set(page);
    // Parse and clear the address bar at once: the code and state must not linger.
    let redirect = auth::parse_redirect(&query, &fragment);
    location::clear_params();

    let cfg = match adapters::fetch_deploy_config().await {
        Ok(None) => Ok(DeployConfig::default()),
        Ok(Some(text)) => parse_deploy_config(&text).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            st.fatal.set(Some(e));
            return;
        }
    };
    st.opts.set(default_options(Some(&cfg)));
    if let Some(saved) = session::get(UI_KEY).and_then(|s| serde_json::from_str::<SavedUi>(&s).ok())
    {
        st.tenant_text.set(saved.tenant);
        st.opts.set(saved.opts);
        st.tab.set(saved.tab);
    } else if let Some(h) = &cfg.tenant_hint {
        st.tenant_text.set(h.clone());
    }
    st.deploy.set(Some(cfg));
    handle_redirect(st, redirect).await;
}

/// A consent answer whose `tenant` is not the tenant the consent was started for: Entra answers
/// with the tenant id, so this is sure only when a tenant id was entered; a value that is no tenant
/// at all is said too. `None` when nothing is wrong or nothing can be told.
fn consent_tenant_problem(asked: &str, returned: Option<&str>) -> Option<String> {
    let returned = returned?.trim();
    match parse_tenant(returned) {
        Err(_) => Some(
            "Microsoft's answer names no valid tenant, so this page cannot confirm the consent. Authorize the registrator again from this page.".into(),
        ),
        Ok(t) if t.is_guid() && auth::is_guid(asked) && t.as_str() != asked => Some(format!(
            "You started the consent for tenant {asked}, but the answer is for tenant {}. Sign in to the right tenant (use a private window if your browser is signed in to several) and authorize the registrator again.",
            t.as_str()
        )),
        Ok(_) => None,
    }
}

fn take_pending() -> Option<Pending> {
    let p = session::get(PENDING_KEY).and_then(|s| serde_json::from_str::<Pending>(&s).ok());
    session::remove(PENDING_KEY);
    p.filter(|p| adapters::now_ms() - p.created_ms < PENDING_MAX_AGE_MS)
}

async fn handle_redirect(st: St, redirect: Redirect) {
    match redirect {
        Redirect::None => {}
        Redirect::Malformed { reason } => {
            // Said where the admin is: under Sign in when a sign-in was under way.
            if take_pending().is_some_and(|p| p.kind == "signin") {
                st.signin_error.set(Some(UiError {
                    kind: "malformed",
                    title: "The answer to the sign-in could not be read".into(),
                    advice: format!(
                        "{reason}. Nothing was sent to Microsoft. Sign in again from here."
                    ),
                    diagnostics: None,
                }));
                return;
            }
            st.consent.set(Some(ConsentView {
                status: "error",
                title: "The answer from Microsoft could not be read".into(),
                advice: format!("{reason}. Start again from this page."),
                detail: None,
            }));
        }
        Redirect::Consent {
            admin_consent,
            tenant,
            state,
            ..
        } => {
            let pending = take_pending().filter(|p| p.kind == "consent");
            let check =
                auth::check_state(pending.as_ref().map(|p| p.state.as_str()), state.as_deref());
            // Only a value that is a tenant id or domain is repeated (never arbitrary text from
            // the address bar in a sentence that looks like the page's own).
            let returned = tenant.clone();
            let shown_tenant = tenant
                .and_then(|t| parse_tenant(&t).ok())
                .map_or_else(|| "your tenant".into(), |t| t.as_str().to_string());
            st.consent.set(Some(if check != StateCheck::Match {
                ConsentView {
                    status: "unknown-state",
                    title: "This consent was not started from this page".into(),
                    advice: format!(
                        "Microsoft reports admin consent {} for {shown_tenant}, but this page did not start that request, so it cannot confirm it. If you did not just authorize the registrator yourself, check Enterprise applications in the Entra admin center. Otherwise continue with Sign in.",
                        if admin_consent { "granted" } else { "not granted" }
                    ),
                    detail: None,
                }
            } else if let Some(problem) = pending
                .as_ref()
                .and_then(|p| consent_tenant_problem(&p.tenant, returned.as_deref()))
            {
                ConsentView {
                    status: "other-tenant",
                    title: "Consent was answered for another tenant".into(),
                    advice: problem,
                    detail: None,
                }
            } else if admin_consent {
                ConsentView {
                    status: "success",
                    title: "The registrator is authorized".into(),
                    advice: "Azure needs 2-3 minutes before the registrator can be used everywhere; the next steps wait and retry by themselves if it is not ready yet. Continue with Sign in.".into(),
                    detail: None,
                }
            } else {
                ConsentView {
                    status: "error",
                    title: "Consent was not granted".into(),
                    advice: "Microsoft did not report a granted consent. Try again as a Global Administrator.".into(),
                    detail: None,
                }
            }));
        }
        Redirect::Error(e) => {
            let pending = take_pending();
            let check = auth::check_state(
                pending.as_ref().map(|p| p.state.as_str()),
                e.state.as_deref(),
            );
            let kind = e.kind();
            let d = deploy(st).unwrap_or_default();
            let advice = kind.advice_for(&d.client_id, &redirect_uri(st));
            let mut detail = vec![format!("error: {}", e.error)];
            if let Some(desc) = &e.description {
                detail.push(format!("description: {desc}"));
            }
            for (k, v) in [
                ("trace id", &e.trace_id),
                ("correlation id", &e.correlation_id),
                ("timestamp", &e.timestamp),
            ] {
                if let Some(v) = v {
                    detail.push(format!("{k}: {v}"));
                }
            }
            let detail = Some(detail.join("\n"));
            let is_signin = pending
                .as_ref()
                .map(|p| p.kind == "signin")
                .unwrap_or(false);
            if is_signin && check == StateCheck::Match {
                // Microsoft's own words beside the advice (the full details stay in diagnostics).
                let advice = match e.description.as_deref() {
                    Some(d) if !d.trim().is_empty() => {
                        let mut said: String = d.chars().take(300).collect();
                        if said.len() < d.len() {
                            said.push('…');
                        }
                        format!("{advice} Microsoft's message: {said}")
                    }
                    _ => advice,
                };
                st.signin_error.set(Some(UiError {
                    kind: "sign-in",
                    title: if kind == auth::RedirectErrorKind::Cancelled {
                        "Sign-in was cancelled".into()
                    } else {
                        "Sign-in failed".into()
                    },
                    advice,
                    diagnostics: detail,
                }));
                return;
            }
            // A sign-in was under way and this error is not its answer (no state, or another's):
            // say so there, with Microsoft's words, rather than as a consent result.
            if is_signin && !e.admin_consent {
                st.signin_error.set(Some(UiError {
                    kind: "state",
                    title: "This answer does not match the sign-in this page started".into(),
                    advice: format!(
                        "Microsoft reported an error for a request this page cannot match to its sign-in (another tab, an old link, or it expired). Microsoft says: {advice} Sign in again from here."
                    ),
                    diagnostics: detail,
                }));
                return;
            }
            let cancelled = kind == auth::RedirectErrorKind::Cancelled;
            let status = if check != StateCheck::Match {
                "unknown-state"
            } else if cancelled {
                "cancelled"
            } else {
                "error"
            };
            let title = match (status, cancelled) {
                ("unknown-state", _) => {
                    "This consent was not started from this page, and Microsoft reported an error"
                }
                (_, true) => "Consent was cancelled",
                _ => "Consent failed",
            };
            st.consent.set(Some(ConsentView {
                status,
                title: title.into(),
                advice,
                detail,
            }));
        }
        Redirect::Code { code, state } => {
            let pending = take_pending().filter(|p| p.kind == "signin");
            let check =
                auth::check_state(pending.as_ref().map(|p| p.state.as_str()), state.as_deref());
            let (Some(p), StateCheck::Match) = (pending, check) else {
                st.signin_error.set(Some(UiError {
                    kind: "state",
                    title: "This sign-in was not started from this page".into(),
                    advice: "The answer does not match a sign-in this page started (another tab, an old link, or it expired). Sign in again from here.".into(),
                    diagnostics: None,
                }));
                return;
            };
            st.signing_in.set(true);
            let r = redeem(st, &p, code).await;
            st.signing_in.set(false);
            match r {
                Ok(s) => {
                    st.tenant_text.set(p.tenant.clone());
                    st.session.set(Some(s));
                }
                Err(e) => st.signin_error.set(Some(e)),
            }
        }
    }
}

async fn redeem(
    st: St,
    p: &Pending,
    code: crate::engine::secret::AuthCode,
) -> Result<Session, UiError> {
    let d = deploy(st).unwrap_or_default();
    let endpoints = d.endpoints();
    let tenant = parse_tenant(&p.tenant).map_err(|e| UiError {
        kind: "invalid-input",
        title: "The tenant is not valid".into(),
        advice: e.advice(),
        diagnostics: None,
    })?;
    let verifier = CodeVerifier::new(p.verifier.clone().unwrap_or_default());
    let scopes = auth::signin_scopes(&endpoints);
    let req = auth::token_request(
        &endpoints,
        &tenant,
        &d.client_id,
        &code,
        &p.redirect_uri,
        &verifier,
        &scopes,
    );
    let resp = FetchClient.send(req).await.map_err(|_| UiError {
        kind: "transient",
        title: "Could not reach the Microsoft sign-in service".into(),
        advice: "Check the network (and that a proxy or firewall allows the login host), then sign in again.".into(),
        diagnostics: None,
    })?;
    let tokens = auth::parse_token_response(&resp).map_err(|e| UiError {
        kind: "sign-in",
        title: "Sign-in failed".into(),
        advice: e.kind().advice_for(&d.client_id, &p.redirect_uri),
        diagnostics: Some(entra_diagnostics(&e)),
    })?;
    let bad_token = |what: String| UiError {
        kind: "sign-in",
        title: "The sign-in answer could not be trusted".into(),
        advice: format!("{what}. Sign in again; if it repeats, report it to Bacula support."),
        diagnostics: None,
    };
    let id = tokens
        .id_token
        .as_ref()
        .ok_or_else(|| bad_token("no id token came back".into()))?;
    let claims = auth::decode_id_token(id).map_err(|e| bad_token(e.to_string()))?;
    auth::check_id_claims(
        &claims,
        p.nonce.as_deref().unwrap_or(""),
        &d.client_id,
        adapters::now_unix(),
    )
    .map_err(|e| bad_token(e.to_string()))?;
    auth::check_tenant(&claims, &tenant).map_err(|_| UiError {
        kind: "sign-in",
        title: "You signed in to another tenant".into(),
        advice: "The account you chose belongs to a different tenant than the one entered. Sign in again with an administrator of this tenant (use a private window if the browser picks the wrong account).".into(),
        diagnostics: None,
    })?;
    Ok(Session {
        token: tokens.access_token,
        claims,
        tenant,
    })
}

fn entra_diagnostics(e: &auth::EntraError) -> String {
    let mut lines = vec![
        format!("status: {}", e.status),
        format!("error: {}", e.error),
    ];
    if let Some(n) = e.aadsts {
        lines.push(format!("AADSTS{n}"));
    }
    for (k, v) in [
        ("trace id", &e.trace_id),
        ("correlation id", &e.correlation_id),
        ("timestamp", &e.timestamp),
    ] {
        if let Some(v) = v {
            lines.push(format!("{k}: {v}"));
        }
    }
    lines.join("\n")
}

/// The consent URL shown (with this page load's state, stored only when the link is used).
pub fn consent_url_preview(d: &DeployConfig, tenant: &Tenant, page_url: &str) -> String {
    let state = CONSENT_STATE.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| rand_token(16).unwrap_or_default())
            .clone()
    });
    crate::web::app::consent_for(d, tenant, &d.redirect_uri_for(page_url), &state)
}

pub fn start_consent(st: St) {
    let Ok(tenant) = parse_tenant(&st.tenant_text.get_untracked()) else {
        return;
    };
    let Some(d) = deploy(st) else { return };
    let url = consent_url_preview(&d, &tenant, &st.page_url.get_untracked());
    let state = CONSENT_STATE
        .with(|s| s.borrow().clone())
        .unwrap_or_default();
    let p = Pending {
        kind: "consent".into(),
        state,
        verifier: None,
        nonce: None,
        created_ms: adapters::now_ms(),
        tenant: tenant.as_str().to_string(),
        redirect_uri: redirect_uri(st),
    };
    if let Ok(s) = serde_json::to_string(&p) {
        session::set(PENDING_KEY, &s);
    }
    save_ui(st);
    location::navigate(&url);
}

pub fn start_sign_in(st: St) {
    st.signin_error.set(None);
    let Ok(tenant) = parse_tenant(&st.tenant_text.get_untracked()) else {
        return;
    };
    let Some(d) = deploy(st) else { return };
    let (Ok(rnd), Ok(state), Ok(nonce)) = (
        adapters::random_array::<32>(),
        rand_token(16),
        rand_token(16),
    ) else {
        st.signin_error.set(Some(UiError {
            kind: "bug",
            title: "This browser has no secure random source".into(),
            advice: "Use a current browser over https (or localhost).".into(),
            diagnostics: None,
        }));
        return;
    };
    let (verifier, challenge) = auth::new_pkce(&rnd);
    let endpoints = d.endpoints();
    let scopes = auth::signin_scopes(&endpoints);
    let ru = redirect_uri(st);
    let url = auth::AuthorizeRequest {
        endpoints: &endpoints,
        tenant: &tenant,
        client_id: &d.client_id,
        redirect_uri: &ru,
        scopes: &scopes,
        state: &state,
        nonce: &nonce,
        code_challenge: &challenge,
        response_mode: auth::ResponseMode::Query,
        login_hint: None,
        prompt: Some("select_account"),
    }
    .url();
    let p = Pending {
        kind: "signin".into(),
        state,
        verifier: Some(verifier.expose().to_string()),
        nonce: Some(nonce),
        created_ms: adapters::now_ms(),
        tenant: tenant.as_str().to_string(),
        redirect_uri: ru,
    };
    if let Ok(s) = serde_json::to_string(&p) {
        session::set(PENDING_KEY, &s);
    }
    save_ui(st);
    st.signing_in.set(true);
    location::navigate(&url);
}

/// The plugin's permissions for the chosen services, as the driver takes them.
pub fn permission_reqs(services: &[Service]) -> Vec<PermissionReq> {
    PermissionReq::from_manifest(&permissions::manifest(services))
}

fn spec_for(
    st: St,
    run_id: &str,
    certificate: Option<NewKeyCredential>,
    resume: Option<ResumeInfo>,
) -> AddAppSpec {
    let o = st.opts.get_untracked();
    let mut spec = AddAppSpec::new(permission_reqs(&o.services()), run_id, adapters::now_unix());
    spec.app_name = o.app_name.clone();
    spec.secret_lifetime_days = o.secret_months.clamp(1, 24) * 365 / 12 + 1;
    spec.certificate = certificate;
    spec.resume = resume;
    spec
}

/// The plan shown before running: step titles with their calls, and every permission.
pub fn preview_plan(st: St) -> Option<(Vec<PlannedStep>, Vec<String>)> {
    st.opts.track();
    let spec = spec_for(st, "preview", None, None);
    let plan = provision::plan_add_app(&spec);
    let perms = plan.permissions.iter().map(|p| p.describe()).collect();
    Some((plan.steps, perms))
}

/// What every tab sees of a run (localStorage, key `m365reg.run.<run id>`): a duplicated tab
/// copies the sessionStorage record of a run another tab is doing or has done, and must neither
/// resume it while it lives nor remove the secret that tab delivered.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
struct SharedRun {
    delivered: Vec<KeyId>,
    complete: bool,
    /// `Date.now()` of the running page's last sign of life; 0 once it has left.
    alive_ms: f64,
}

/// How long a running page's sign of life counts (it renews it every [`HEARTBEAT_MS`]).
const ALIVE_FOR_MS: f64 = 15_000.0;
const HEARTBEAT_MS: u64 = 4_000;

fn shared_key(run_id: &str) -> String {
    format!("m365reg.run.{run_id}")
}

fn load_shared(run_id: &str) -> Option<SharedRun> {
    adapters::local::get(&shared_key(run_id)).and_then(|s| serde_json::from_str(&s).ok())
}

fn update_shared(run_id: &str, f: impl FnOnce(&mut SharedRun)) {
    let mut r = load_shared(run_id).unwrap_or_default();
    f(&mut r);
    if let Ok(s) = serde_json::to_string(&r) {
        adapters::local::set(&shared_key(run_id), &s);
    }
}

/// Whether this page is running a run now (its id), for the heartbeat and `pagehide`.
fn live_run_id() -> Option<String> {
    LIVE_RUN.with(|l| l.borrow().clone())
}

thread_local! {
    static LIVE_RUN: RefCell<Option<String>> = const { RefCell::new(None) };
    static PAGEHIDE_HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks `run_id` alive now and every [`HEARTBEAT_MS`] while this page runs it or holds its
/// secret not yet downloaded; leaving the page (reload, close) marks it not alive, so the same tab
/// can resume it after a reload, and another tab only once this one is gone.
fn start_heartbeat(st: St, run_id: &str) {
    LIVE_RUN.with(|l| *l.borrow_mut() = Some(run_id.to_string()));
    update_shared(run_id, |r| r.alive_ms = adapters::now_ms());
    if !PAGEHIDE_HOOKED.with(|h| h.replace(true)) {
        adapters::on_pagehide(|| {
            if let Some(id) = live_run_id() {
                update_shared(&id, |r| r.alive_ms = 0.0);
            }
        });
    }
    let id = run_id.to_string();
    leptos::task::spawn_local(async move {
        loop {
            crate::engine::http::Sleep::sleep(&TimeoutSleep, HEARTBEAT_MS).await;
            if live_run_id().as_deref() != Some(id.as_str()) {
                break;
            }
            let holding = st.creds.with_untracked(|c| c.is_some()) && !st.delivered.get_untracked();
            if !st.running.get_untracked() && !holding {
                LIVE_RUN.with(|l| *l.borrow_mut() = None);
                if load_shared(&id).is_some() {
                    update_shared(&id, |r| r.alive_ms = 0.0);
                }
                break;
            }
            update_shared(&id, |r| r.alive_ms = adapters::now_ms());
        }
    });
}

/// The run is finished and every secret it made is downloaded: no tab needs its record.
fn forget_run(run_id: &str) {
    session::remove(RUN_KEY);
    adapters::local::remove(&shared_key(run_id));
}

fn load_run() -> Option<SavedRun> {
    session::get(RUN_KEY).and_then(|s| serde_json::from_str(&s).ok())
}

fn store_run(r: &SavedRun) {
    if let Ok(s) = serde_json::to_string(r) {
        session::set(RUN_KEY, &s);
    }
}

pub fn start_create(st: St) {
    if st.running.get_untracked() || st.generating.get_untracked() {
        return;
    }
    if let Some(problem) = st
        .opts
        .with_untracked(|o| provision::app_name_problem(&o.app_name))
    {
        st.error.set(Some(UiError {
            kind: "input",
            title: "The app name cannot be used".into(),
            advice: format!("{problem} Change it under Options."),
            diagnostics: None,
        }));
        return;
    }
    leptos::task::spawn_local(create(st));
}

pub(crate) fn ui_error_from(e: &Error) -> UiError {
    let (kind, title, advice) = match e.kind() {
        ErrorKind::Transient => ("transient", "Microsoft did not answer in time", "Microsoft's service is busy or unreachable. Press Create again: finished steps are not repeated.".to_string()),
        ErrorKind::SignInAgain => ("sign-in", "Your sign-in expired or was refused", "Sign in again, then press Create: finished steps are not repeated.".to_string()),
        ErrorKind::NeedsAdmin { missing_role } => ("needs-admin", "Your account lacks an administrator role", format!("This step needs the {} role. Sign in with such an account (or ask one to run this page), then press Create again.", missing_role.names())),
        ErrorKind::InvalidInput => ("invalid-input", "This cannot work as chosen", "Check the tenant, the services and the options, then try again.".to_string()),
        ErrorKind::RegistratorMissing => ("registrator-missing", "The registrator is not authorized in this tenant", "Run step 2 (Authorize the registrator) again, wait 2-3 minutes, sign in and retry.".to_string()),
        ErrorKind::PolicyLimit => ("policy", "A tenant policy refused the credential lifetime", "Your tenant limits how long app secrets may live. Choose a shorter secret lifetime under Options (for example 6 or 12 months) and press Create again.".to_string()),
        ErrorKind::Bug => ("bug", "Unexpected answer", "This tool did not understand an answer. Copy the diagnostics and send them to Bacula support.".to_string()),
    };
    UiError {
        kind,
        title: title.into(),
        advice,
        diagnostics: Some(e.diagnostics()),
    }
}

fn set_step(st: St, step: Step, status: StepStatus, detail: String) {
    st.steps.update(|v| {
        if let Some(s) = v.iter_mut().find(|s| s.name == step.as_str()) {
            s.status = status;
            s.detail = detail;
        }
    });
}

/// What [`make_credentials`] makes: the certificate (DER) and its PFX with the password.
pub struct MadeCredentials {
    pub cert: Vec<u8>,
    pub pfx: Vec<u8>,
    pub password: PfxPassword,
}

/// Key, self-signed certificate, PFX password and PFX, in an order that keeps the page
/// responsive (issue 6 (a): no main-thread task over 50 ms):
///
/// 1. the password and the PFX's salts first (`PfxPlan::new`): its PBKDF2 derivations need
///    neither key nor certificate, so WebCrypto runs them (native, off the page's thread) while it
///    generates the RSA key (also native, off the thread);
/// 2. then, each a task of its own (a `setTimeout(0)` in between lets the page paint and handle
///    input): the certificate (signed in WebAssembly), and the PFX (`PfxPlan::finish`: AES-256,
///    the MAC's PKCS#12 KDF, DER).
///
/// `ops::make_certificate` (the page) and `bench::benchCredentials` (the benchmark) both call it.
pub async fn make_credentials(
    common_name: &str,
    not_before_unix: i64,
    not_after_unix: i64,
    kind: crypto::PfxKind,
) -> Result<MadeCredentials, String> {
    let mut rnd = vec![0u8; crypto::PFX_PASSWORD_RANDOM_BYTES];
    adapters::random_bytes(&mut rnd)?;
    let password = crypto::pfx_password(&rnd).map_err(|e| e.to_string())?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let plan = crypto::PfxPlan::new(&password, kind, &mut rng).map_err(|e| e.to_string())?;
    let requests = plan.pbkdf2_requests();
    let (key, derived) = adapters::join(
        adapters::webcrypto_rsa_pkcs8(),
        adapters::webcrypto_pbkdf2(&requests),
    )
    .await;
    let (key, derived) = (key?, derived?);

    crate::engine::http::Sleep::sleep(&TimeoutSleep, 0).await;
    let spec = CertSpec {
        common_name: common_name.into(),
        not_before_unix,
        not_after_unix,
        serial: crypto::serial_from_random(adapters::random_array::<16>()?),
    };
    let cert = crypto::self_signed_certificate(&key, &spec).map_err(|e| e.to_string())?;

    crate::engine::http::Sleep::sleep(&TimeoutSleep, 0).await;
    let pfx = plan
        .finish(&key, &cert, common_name, &derived)
        .map_err(|e| e.to_string())?;
    Ok(MadeCredentials {
        cert,
        pfx,
        password,
    })
}

/// The key, certificate and PFX for the app ([`make_credentials`], the app name as common name
/// and friendly name), and the Graph `keyCredential` for the certificate.
pub(crate) async fn make_certificate(st: St) -> Result<(NewKeyCredential, PfxFile), String> {
    let o = st.opts.get_untracked();
    let now = adapters::now_unix();
    let made = make_credentials(
        &o.app_name,
        now - 300,
        now + i64::from(o.cert_years) * 365 * 86_400,
        o.pfx_kind(),
    )
    .await?;
    let parts = crypto::key_credential_parts(&made.cert).map_err(|e| e.to_string())?;
    let kc = NewKeyCredential {
        key_base64: parts.key_base64,
        display_name: format!("{} certificate", provision::CREDENTIAL_MARKER),
        start_unix: parts.not_before_unix,
        end_unix: parts.not_after_unix,
    };
    Ok((
        kc,
        PfxFile {
            bytes: made.pfx,
            password: made.password,
            file_name: format!("{}-cert.pfx", o.app_name),
        },
    ))
}

async fn create(st: St) {
    let Some(session) = st.session.get_untracked() else {
        return;
    };
    let Some(d) = deploy(st) else { return };
    st.error.set(None);
    st.finished.set(None);
    st.notices.set(Vec::new());

    // A run interrupted by a reload: resume it (its undelivered secrets are removed). The record
    // may be a copy made when this tab was duplicated from another: what every tab sees decides.
    let mut previous = load_run().filter(|r| !r.complete);
    if let Some(p) = previous.as_mut() {
        match load_shared(&p.run_id) {
            // Finished (or never known to the tabs): nothing to resume, nothing to remove.
            None | Some(SharedRun { complete: true, .. }) => {
                session::remove(RUN_KEY);
                previous = None;
            }
            // Alive in another page (this page's own run, e.g. one that just failed, is not).
            Some(shared)
                if adapters::now_ms() - shared.alive_ms < ALIVE_FOR_MS
                    && live_run_id().as_deref() != Some(p.run_id.as_str()) =>
            {
                st.error.set(Some(UiError {
                    kind: "other-tab",
                    title: "This app is being set up in another tab".into(),
                    advice: "Another tab of this page is running Create, or holds the new credentials not yet downloaded. Finish there and download the files from that tab; then close this one. (If that tab is gone, wait 15 seconds and press Create again here.)".into(),
                    diagnostics: None,
                }));
                return;
            }
            Some(shared) => {
                for k in shared.delivered {
                    if !p.delivered.contains(&k) {
                        p.delivered.push(k);
                    }
                }
            }
        }
    }
    let resume = previous.as_ref().map(|r| ResumeInfo {
        run_id: r.run_id.clone(),
        undelivered_secret_key_ids: r
            .created
            .iter()
            .filter(|k| !r.delivered.contains(k))
            .cloned()
            .collect(),
        delivered_secret_key_ids: r.delivered.clone(),
    });
    let run_id = match rand_token(9) {
        Ok(r) => r,
        Err(e) => {
            st.error.set(Some(UiError {
                kind: "bug",
                title: "No secure random source".into(),
                advice: e,
                diagnostics: None,
            }));
            return;
        }
    };

    // Credentials first (they go into the app's create body).
    if st.pfx.get_untracked().is_none() || st.creds.get_untracked().is_some() {
        st.generating.set(true);
        // Let the page paint the "generating" line before the CPU work.
        crate::engine::http::Sleep::sleep(&TimeoutSleep, 16).await;
        let made = make_certificate(st).await;
        st.generating.set(false);
        match made {
            Ok((kc, pfx)) => {
                st.pfx.set(Some(pfx));
                CERT.with(|c| *c.borrow_mut() = Some(kc));
                st.creds.set(None);
                st.delivered.set(false);
            }
            Err(e) => {
                st.error.set(Some(UiError {
                    kind: "bug",
                    title: "The certificate could not be made in this browser".into(),
                    advice: format!(
                        "{e}. Use a current browser; if it repeats, report it to Bacula support."
                    ),
                    diagnostics: None,
                }));
                return;
            }
        }
    }
    let kc = CERT.with(|c| c.borrow().clone());
    let spec = spec_for(st, &run_id, kc, resume);
    let plan = provision::plan_add_app(&spec);
    // Steps a failed run of this page already finished are skipped by the driver (no events).
    let finished = RUN.with(|r| r.borrow().finished.clone());
    st.steps
        .set(crate::web::maint::step_views(&plan, &finished));
    store_run(&SavedRun {
        run_id: run_id.clone(),
        ..Default::default()
    });
    // The run this one resumes is now this tab's: its shared record goes.
    if let Some(p) = &previous {
        adapters::local::remove(&shared_key(&p.run_id));
    }
    st.running.set(true);
    start_heartbeat(st, &run_id);

    let endpoints: Endpoints = d.endpoints();
    let ctx = GraphCtx {
        base: endpoints.graph_v1(),
        token: session.token.clone(),
    };
    let mut rand = || {
        let b = adapters::random_array::<4>().unwrap_or([7, 7, 7, 7]);
        u32::from_le_bytes(b)
    };
    let mut on_event = |ev: Event| match ev {
        Event::StepStarted { step } => set_step(st, step, StepStatus::Running, String::new()),
        Event::Retrying {
            step,
            reason,
            wait_ms,
            attempt,
        } => set_step(
            st,
            step,
            StepStatus::Retrying,
            format!(
                "{}; retrying in {:.1} s (attempt {})",
                reason.text(),
                wait_ms as f64 / 1000.0,
                attempt + 1
            ),
        ),
        Event::StepDone { step, summary } => set_step(st, step, StepStatus::Done, summary),
        Event::StepSkipped { step, summary } => set_step(st, step, StepStatus::Done, summary),
        Event::SecretCreated(c) => {
            let mut r = load_run().unwrap_or_default();
            r.run_id = run_id.clone();
            r.created.push(c.secret_key_id.clone());
            store_run(&r);
            st.creds.set(Some(c));
        }
        Event::Notice { notice, .. } => st.notices.update(|n| n.push(notice.text())),
        Event::StepFailed { step, error } => {
            set_step(st, step, StepStatus::Failed, error.to_string())
        }
    };
    let mut state = RUN.with(|r| std::mem::take(&mut *r.borrow_mut()));
    let result = provision::run(
        &plan,
        &mut state,
        &ctx,
        &FetchClient,
        &TimeoutSleep,
        &mut rand,
        &mut on_event,
    )
    .await;
    st.running.set(false);
    match result {
        Ok(outcome) => {
            RUN.with(|r| *r.borrow_mut() = RunState::new());
            let mut r = load_run().unwrap_or_default();
            r.complete = true;
            update_shared(&run_id, |s| s.complete = true);
            if r.created.iter().all(|k| r.delivered.contains(k)) {
                forget_run(&run_id);
            } else {
                store_run(&r);
            }
            if outcome.already_set_up {
                st.pfx.set(None);
                CERT.with(|c| *c.borrow_mut() = None);
                st.finished.set(Some("Everything was already in place: nothing was changed. To get a new config file, use Renew.".into()));
            } else {
                st.finished.set(Some(format!(
                    "Done: the app is ready ({} requests). Download your configuration below.",
                    outcome.round_trips
                )));
            }
        }
        Err(e) => {
            // Keep what was learned: pressing Create again continues where it stopped.
            RUN.with(|r| *r.borrow_mut() = state);
            st.error.set(Some(ui_error_from(&e)));
        }
    }
}

thread_local! {
    static CERT: RefCell<Option<NewKeyCredential>> = const { RefCell::new(None) };
}

fn tenant_label(st: St) -> String {
    let tid = st
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.claims.tid.clone()))
        .unwrap_or_default();
    let t = st.tenant_text.get_untracked();
    let domain = parse_tenant(&t)
        .ok()
        .filter(|t| !t.is_guid())
        .map(|t| t.as_str().to_string());
    properties::tenant_label(domain.as_deref(), &tid)
}

pub fn config_dir(st: St) -> String {
    let o = st.opts.get();
    properties::config_dir_for(&o.config_dir, &tenant_label(st))
}

fn pfx_path(st: St) -> String {
    let name = st
        .pfx
        .with_untracked(|p| p.as_ref().map(|p| p.file_name.clone()))
        .unwrap_or_default();
    format!("{}/{}", config_dir(st).trim_end_matches('/'), name)
}

fn config_text(st: St) -> Option<String> {
    let c: Credentials = st.creds.get_untracked()?;
    let tid = st
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.claims.tid.clone()))?;
    let password = st
        .pfx
        .with_untracked(|p| p.as_ref().map(|p| p.password.clone()))
        .unwrap_or_else(|| PfxPassword::new(""));
    let cfg = BaculaConfig {
        secret: c.secret.clone(),
        appid: AppId::new(c.app_id.as_str()),
        objectid: c.sp_object_id.clone().unwrap_or_else(|| ObjectId::new("")),
        tenant: TenantId::new(tid),
        certificate_path: pfx_path(st),
        certificate_password: password,
    };
    Some(properties::render_config(&cfg, adapters::now_unix()))
}

fn mark_delivered(st: St) {
    st.delivered.set(true);
    if let Some(c) = st.creds.get_untracked() {
        if let Some(mut r) = load_run() {
            if !r.delivered.contains(&c.secret_key_id) {
                r.delivered.push(c.secret_key_id.clone());
            }
            update_shared(&r.run_id, |s| {
                if !s.delivered.contains(&c.secret_key_id) {
                    s.delivered.push(c.secret_key_id.clone());
                }
            });
            if r.complete && r.created.iter().all(|k| r.delivered.contains(k)) {
                forget_run(&r.run_id);
            } else {
                store_run(&r);
            }
        }
    }
}

fn report_download(st: St, r: Result<(), String>) {
    if let Err(e) = r {
        st.error.set(Some(UiError {
            kind: "bug",
            title: "The download failed".into(),
            advice: format!("{e}. Try again."),
            diagnostics: None,
        }));
    }
}

pub fn download_config(st: St) {
    if let Some(text) = config_text(st) {
        report_download(
            st,
            adapters::download(properties::CONFIG_FILE_NAME, "text/plain", text.as_bytes()),
        );
        mark_delivered(st);
    }
}

pub fn download_pfx(st: St) {
    if let Some(p) = st.pfx.get_untracked() {
        report_download(
            st,
            adapters::download(&p.file_name, "application/x-pkcs12", &p.bytes),
        );
    }
}

pub fn plugin_line(st: St) -> String {
    let dir = config_dir(st);
    format!(
        "Plugin = \"m365: config_file={}/{} service=drive\"",
        dir.trim_end_matches('/'),
        properties::CONFIG_FILE_NAME
    )
}

pub fn download_zip(st: St) {
    let Some(text) = config_text(st) else { return };
    let dir = config_dir(st);
    let fileset = format!(
        "# Sample Fileset for Bacula Enterprise's M365 plugin (generated {}).\n# Copy bacula_m365_config.conf and the .pfx to {dir} on the Bacula client.\nFileset {{\n  Name = FS_M365\n  Include {{\n    Options {{\n      signature = MD5\n      compression = LZO\n    }}\n    {}\n  }}\n}}\n",
        properties::java_date_utc(adapters::now_unix()),
        plugin_line(st)
    );
    let pfx = st.pfx.get_untracked();
    let mut entries: Vec<(&str, &[u8])> = vec![
        (properties::CONFIG_FILE_NAME, text.as_bytes()),
        ("fileset-m365.conf", fileset.as_bytes()),
    ];
    if let Some(p) = &pfx {
        entries.push((p.file_name.as_str(), &p.bytes));
    }
    let zip = crate::engine::zip::build_zip(&entries, adapters::now_unix());
    report_download(
        st,
        adapters::download("bacula-m365-config.zip", "application/zip", &zip),
    );
    mark_delivered(st);
}
