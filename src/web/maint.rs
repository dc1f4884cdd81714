//! The maintenance operations behind the Renew (B-4), Check permissions and Delete registrator
//! (B-5) tabs: their state, the runs of the engine's plans through its driver (events mapped to
//! `step-<name>` progress), reading the admin's current files in the page (never uploaded), and
//! the pure helpers the tabs show (credential rows, what renew will do, the renewed config).
//! Decisions stay in the engine; browser access through `adapters` (plus `File` reading here).

use std::cell::RefCell;

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::engine::crypto::{self, CryptoError};
use crate::engine::error::{Error, ErrorKind};
use crate::engine::graph::{self, GraphCtx, NewKeyCredential};
use crate::engine::properties::{self, BaculaConfig, ParsedConfig};
use crate::engine::provision::{
    self, CheckReport, CheckSpec, CheckTarget, CredentialInfo, CredentialKind, Credentials,
    CurrentKey, DeleteSpec, Event, Outcome, Plan, RenewSpec, RunState, Step, RENEW_WINDOW_DAYS,
};
use crate::engine::secret::{AppId, ObjectId, PfxPassword, TenantId};
use crate::web::adapters::{self, session, FetchClient, TimeoutSleep};
use crate::web::app::{PfxFile, St};
use crate::web::ops::{self, StepStatus, StepView, UiError};

/// The add-app run record `ops` keeps in sessionStorage (`SavedRun`: `complete: false` while a
/// run is unfinished). Delete refuses while it says so.
pub const RUN_KEY: &str = "m365reg.run";

/// Largest file the page reads (a PFX or a config file is a few kilobytes).
pub const MAX_FILE_BYTES: f64 = 1_000_000.0;

/// Which maintenance operation a progress list or an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Renew,
    Check,
    Repair,
    Delete,
}

impl Op {
    /// The tab the operation lives in (Repair is shown on the Check tab).
    pub fn tab(self) -> Op {
        match self {
            Op::Repair => Op::Check,
            o => o,
        }
    }
    fn button(self) -> &'static str {
        match self {
            Op::Renew => "Renew",
            Op::Check => "Check",
            Op::Repair => "Repair",
            Op::Delete => "Delete the registrator",
        }
    }
}

/// What a renew produced (memory only: the config text holds the new secret).
#[derive(Clone)]
pub struct Renewed {
    /// A new secret was added.
    pub secret: bool,
    /// A new certificate was added (its PFX is `pfx`).
    pub certificate: bool,
    pub pfx: Option<PfxFile>,
    /// The complete new `bacula_m365_config.conf`, when the page could write one.
    pub config: Option<String>,
    /// What the admin must do by hand (lines the page could not fill).
    pub warnings: Vec<String>,
    /// Where the files go on the Bacula client.
    pub config_dir: String,
}

/// The state of the three maintenance tabs. `RwSignal` is `Copy`, so is this. Owned by the
/// page's root (created in `St::new`), so it survives switching tabs.
#[derive(Clone, Copy)]
pub struct Maint {
    /// The operation whose progress is shown (each tab shows only its own).
    pub op: RwSignal<Option<Op>>,
    pub steps: RwSignal<Vec<StepView>>,
    pub running: RwSignal<bool>,
    pub generating: RwSignal<bool>,
    pub notices: RwSignal<Vec<String>>,
    pub error: RwSignal<Option<(Op, UiError)>>,
    /// Renew: the app's credentials (from a check by app name).
    pub credentials: RwSignal<Option<Vec<CredentialInfo>>>,
    pub credentials_loading: RwSignal<bool>,
    pub credentials_error: RwSignal<Option<UiError>>,
    pub force: RwSignal<bool>,
    pub pfx_password: RwSignal<String>,
    /// A problem with the current PFX (wrong password, not a PFX …).
    pub pfx_message: RwSignal<Option<String>>,
    /// The admin's current config file: (file name, contents).
    pub current_config: RwSignal<Option<(String, ParsedConfig)>>,
    pub config_message: RwSignal<Option<String>>,
    pub renewed: RwSignal<Option<Renewed>>,
    pub renew_delivered: RwSignal<bool>,
    /// The last renew was refused by a tenant lifetime policy: offer shorter lifetimes.
    pub policy_choice: RwSignal<bool>,
    pub finished: RwSignal<Option<String>>,
    /// Check: the object id typed (empty: find the app by its name).
    pub objectid: RwSignal<String>,
    /// Delete: `deleted`, `already-gone` or `refused` (the result's `data-status`).
    pub delete_status: RwSignal<Option<&'static str>>,
}

impl Default for Maint {
    fn default() -> Self {
        Self::new()
    }
}

impl Maint {
    pub fn new() -> Maint {
        Maint {
            op: RwSignal::new(None),
            steps: RwSignal::new(Vec::new()),
            running: RwSignal::new(false),
            generating: RwSignal::new(false),
            notices: RwSignal::new(Vec::new()),
            error: RwSignal::new(None),
            credentials: RwSignal::new(None),
            credentials_loading: RwSignal::new(false),
            credentials_error: RwSignal::new(None),
            force: RwSignal::new(false),
            pfx_password: RwSignal::new(String::new()),
            pfx_message: RwSignal::new(None),
            current_config: RwSignal::new(None),
            config_message: RwSignal::new(None),
            renewed: RwSignal::new(None),
            renew_delivered: RwSignal::new(false),
            policy_choice: RwSignal::new(false),
            finished: RwSignal::new(None),
            objectid: RwSignal::new(String::new()),
            delete_status: RwSignal::new(None),
        }
    }

    /// A renewed secret that was not downloaded is in memory.
    pub fn secret_at_risk(&self) -> bool {
        self.renewed
            .with_untracked(|r| r.as_ref().is_some_and(|r| r.secret && r.config.is_some()))
            && !self.renew_delivered.get_untracked()
    }

    /// Something runs (no second operation may start).
    pub fn busy(&self) -> bool {
        self.running.get_untracked()
            || self.generating.get_untracked()
            || self.credentials_loading.get_untracked()
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers (tested in tests/wasm_maint.rs).

/// How a credential stands: `expired`, `expiring` (within 90 days), `ok`, or `unknown` (no
/// readable end date).
pub fn credential_state(c: &CredentialInfo) -> &'static str {
    if c.expired {
        "expired"
    } else if c.expiring {
        "expiring"
    } else if c.end.as_deref().and_then(graph::parse_datetime).is_some() {
        "ok"
    } else {
        "unknown"
    }
}

/// `secret` or `certificate`.
pub fn credential_kind(c: &CredentialInfo) -> &'static str {
    match c.kind {
        CredentialKind::Secret => "secret",
        CredentialKind::Certificate => "certificate",
    }
}

/// One line of the credential list: `Secret "name", ends 2027-01-01 (in 200 days): ok, made by
/// this tool`.
pub fn credential_line(c: &CredentialInfo, now_unix: i64) -> String {
    let what = match c.kind {
        CredentialKind::Secret => "Secret",
        CredentialKind::Certificate => "Certificate",
    };
    let name = c.display_name.as_deref().unwrap_or("(no name)");
    let end_unix = c.end.as_deref().and_then(graph::parse_datetime);
    let end = match (end_unix, c.end.as_deref()) {
        (Some(e), _) => {
            let date = graph::format_datetime(e);
            let date = date.get(..10).unwrap_or(&date).to_string();
            let days = (e - now_unix).div_euclid(86_400);
            if e <= now_unix {
                format!("ended {date} ({} days ago)", -days)
            } else {
                format!("ends {date} (in {days} days)")
            }
        }
        (None, Some(raw)) => format!("ends {raw}"),
        (None, None) => "no end date".to_string(),
    };
    let made = if c.made_by_tool {
        "made by this tool"
    } else {
        "not made by this tool (left alone)"
    };
    format!("{what} \"{name}\", {end}: {}, {made}", credential_state(c))
}

/// What renew's automatic rule will do with these credentials: (secret due, certificate due).
/// The engine's rule: a kind is due when none of its credentials is valid beyond 90 days.
pub fn renew_due(list: &[CredentialInfo], force: bool, now_unix: i64) -> (bool, bool) {
    if force {
        return (true, true);
    }
    let limit = now_unix + i64::from(RENEW_WINDOW_DAYS) * 86_400;
    let valid = |kind: CredentialKind| {
        list.iter().any(|c| {
            c.kind == kind
                && c.end
                    .as_deref()
                    .and_then(graph::parse_datetime)
                    .is_some_and(|e| e > limit)
        })
    };
    (
        !valid(CredentialKind::Secret),
        !valid(CredentialKind::Certificate),
    )
}

/// Whether the add-app record in sessionStorage says a run is unfinished.
pub fn add_app_incomplete(saved_run: Option<&str>) -> bool {
    saved_run
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("complete").and_then(|c| c.as_bool()))
        == Some(false)
}

/// What the renewed config file is made from.
pub struct ConfigInputs<'a> {
    /// The secret renew added.
    pub new_secret: Option<&'a Credentials>,
    /// The certificate renew added: (file name, password).
    pub new_pfx: Option<(&'a str, &'a PfxPassword)>,
    /// The admin's current config file.
    pub current: Option<&'a ParsedConfig>,
    /// The admin's current PFX: (file name, password).
    pub current_pfx: Option<(&'a str, &'a PfxPassword)>,
    /// Where the files go on the Bacula client.
    pub config_dir: &'a str,
    pub tenant_id: &'a str,
    pub app_name: &'a str,
    /// The app id and service principal found by this run (used when no secret was added).
    pub app_id: Option<&'a str>,
    pub sp_id: Option<&'a str>,
}

/// The renewed config (when the page can write one whole) and what the admin must do by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedConfig {
    pub config: Option<BaculaConfig>,
    pub warnings: Vec<String>,
}

fn join_path(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

/// Composes the new `bacula_m365_config.conf` after a renew: renewed values first, then the
/// admin's current config file (if it belongs to the same app), then the current PFX.
pub fn compose_config(i: &ConfigInputs) -> ComposedConfig {
    let mut warnings = Vec::new();
    let app_id = i
        .new_secret
        .map(|c| c.app_id.as_str().to_string())
        .or_else(|| i.app_id.map(str::to_string));
    // The current file counts only if it is this app's.
    let current = i.current.filter(|cur| {
        let other = match (&cur.appid, &app_id) {
            (Some(a), Some(b)) => !a.as_str().trim().eq_ignore_ascii_case(b),
            _ => false,
        };
        if other {
            warnings.push(format!(
                "The config file you gave belongs to another app (appid {}): it was not used.",
                cur.appid.as_ref().map(|a| a.as_str()).unwrap_or("")
            ));
        }
        !other
    });
    if i.new_secret.is_none() && i.new_pfx.is_none() {
        return ComposedConfig {
            config: None,
            warnings,
        };
    }
    let secret = match (i.new_secret, current.and_then(|c| c.secret.clone())) {
        (Some(c), _) => Some(c.secret.clone()),
        (None, Some(s)) if !s.expose().is_empty() => Some(s),
        _ => None,
    };
    let Some(secret) = secret else {
        warnings.push(
            "The secret was not renewed: keep your current bacula_m365_config.conf and change its \
             sharepoint_certificate_password line to the new certificate's password shown below, \
             then replace the .pfx file. (Give your current config file above and the page writes \
             the whole new file.)"
                .to_string(),
        );
        return ComposedConfig {
            config: None,
            warnings,
        };
    };
    let (certificate_path, certificate_password) = match (i.new_pfx, current, i.current_pfx) {
        (Some((name, pw)), _, _) => (join_path(i.config_dir, name), pw.clone()),
        (None, Some(cur), _) if cur.certificate_password.is_some() => (
            cur.certificate_path
                .clone()
                .unwrap_or_else(|| join_path(i.config_dir, &format!("{}-cert.pfx", i.app_name))),
            cur.certificate_password
                .clone()
                .unwrap_or_else(|| PfxPassword::new("")),
        ),
        (None, _, Some((name, pw))) => (join_path(i.config_dir, name), pw.clone()),
        _ => {
            warnings.push(
                "The certificate was not renewed and this page does not know its password: copy \
                 the sharepoint_certificate_path and sharepoint_certificate_password lines from \
                 your current config file into the new one."
                    .to_string(),
            );
            (
                join_path(i.config_dir, &format!("{}-cert.pfx", i.app_name)),
                PfxPassword::new(""),
            )
        }
    };
    let objectid = i
        .new_secret
        .and_then(|c| c.sp_object_id.clone())
        .or_else(|| i.sp_id.map(ObjectId::new))
        .or_else(|| current.and_then(|c| c.objectid.clone()))
        .unwrap_or_else(|| ObjectId::new(""));
    ComposedConfig {
        config: Some(BaculaConfig {
            secret,
            appid: AppId::new(app_id.unwrap_or_default()),
            objectid,
            tenant: TenantId::new(i.tenant_id),
            certificate_path,
            certificate_password,
        }),
        warnings,
    }
}

/// Advice for a failed maintenance operation, chosen by the error's kind.
pub fn ui_error(e: &Error, op: Op) -> UiError {
    let mut u = ops::ui_error_from(e);
    let again = op.button();
    match e.kind() {
        ErrorKind::Transient => {
            u.advice = format!(
                "Microsoft's service is busy or unreachable. Press {again} again{}.",
                if op == Op::Renew {
                    ": finished steps are not repeated"
                } else {
                    ""
                }
            )
        }
        ErrorKind::SignInAgain => {
            u.advice = format!("Sign in again (above), then press {again} again.")
        }
        ErrorKind::NeedsAdmin { missing_role } => {
            u.advice = format!(
                "This needs the {} role. Sign in with such an account (or ask one to run this \
                 page), then press {again} again.",
                missing_role.names()
            )
        }
        ErrorKind::InvalidInput => {
            let what = e.to_string();
            let what = what.strip_prefix("invalid input: ").unwrap_or(&what);
            u.advice = format!(
                "{}{}. Check the tenant, the app name and the services, then try again.",
                what.get(..1).unwrap_or("").to_uppercase(),
                what.get(1..).unwrap_or("")
            )
        }
        ErrorKind::PolicyLimit => {
            u.advice = "Your tenant limits how long app secrets may live. Choose a shorter secret \
                        lifetime below and renew again: nothing was removed, your current \
                        credentials still work."
                .into()
        }
        ErrorKind::RegistratorMissing => {
            u.advice = "The registrator is not authorized in this tenant (it was never authorized, \
                        or it was deleted with Delete registrator, B-5). On the Connect tab, run \
                        step 2 (Authorize the registrator) again, wait 2-3 minutes, sign in and \
                        retry."
                .into()
        }
        ErrorKind::Bug => {}
    }
    u
}

// ---------------------------------------------------------------------------------------------
// Running plans.

thread_local! {
    /// A renew that failed part-way: pressing Renew again continues it (same run id, same new
    /// certificate; finished steps are not repeated).
    static PENDING_RENEW: RefCell<Option<PendingRenew>> = const { RefCell::new(None) };
    static GUARD: RefCell<bool> = const { RefCell::new(false) };
}

struct PendingRenew {
    tenant_id: String,
    run_id: String,
    certificate: NewKeyCredential,
    pfx: PfxFile,
    state: RunState,
    secret: Option<Credentials>,
    cert_renewed: bool,
}

fn begin(st: St, op: Op) {
    let m = st.maint;
    m.op.set(Some(op));
    m.steps.set(Vec::new());
    m.notices.set(Vec::new());
    m.error.set(None);
    m.finished.set(None);
}

fn set_step(m: Maint, step: Step, status: StepStatus, detail: String) {
    m.steps.update(|v| {
        if let Some(s) = v.iter_mut().find(|s| s.name == step.as_str()) {
            s.status = status;
            s.detail = detail;
        }
    });
}

/// The steps of `plan` for the progress list: those in `finished` (a failed run's, which the
/// driver skips without events) shown done with what they did, the rest pending.
pub fn step_views(
    plan: &Plan,
    finished: &std::collections::BTreeMap<crate::engine::provision::Step, String>,
) -> Vec<StepView> {
    plan.steps
        .iter()
        .map(|s| {
            let done = finished.get(&s.step);
            StepView {
                name: s.step.as_str(),
                title: s.title.clone(),
                status: if done.is_some() {
                    StepStatus::Done
                } else {
                    StepStatus::Pending
                },
                detail: done.cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn show_plan(m: Maint, plan: &Plan, state: &RunState) {
    m.steps.set(step_views(plan, &state.finished));
}

/// Progress for the common events; returns the event for op-specific handling.
fn progress(m: Maint, ev: &Event) {
    match ev {
        Event::StepStarted { step } => set_step(m, *step, StepStatus::Running, String::new()),
        Event::Retrying {
            step,
            reason,
            wait_ms,
            attempt,
        } => set_step(
            m,
            *step,
            StepStatus::Retrying,
            format!(
                "{}; retrying in {:.1} s (attempt {})",
                reason.text(),
                *wait_ms as f64 / 1000.0,
                attempt + 1
            ),
        ),
        Event::StepDone { step, summary } | Event::StepSkipped { step, summary } => {
            set_step(m, *step, StepStatus::Done, summary.clone())
        }
        Event::Notice { notice, .. } => m.notices.update(|n| n.push(notice.text())),
        Event::StepFailed { step, error } => {
            set_step(m, *step, StepStatus::Failed, error.to_string())
        }
        Event::SecretCreated(_) => {}
    }
}

fn graph_ctx(st: St) -> Option<GraphCtx> {
    let session = st.session.get_untracked()?;
    let d = st.deploy.get_untracked()?;
    Some(GraphCtx {
        base: d.endpoints().graph_v1(),
        token: session.token.clone(),
    })
}

fn rand_u32() -> u32 {
    u32::from_le_bytes(adapters::random_array::<4>().unwrap_or([7, 7, 7, 7]))
}

/// Runs a plan through the engine's driver with the browser's fetch and timers.
async fn drive(
    plan: &Plan,
    state: &mut RunState,
    ctx: &GraphCtx,
    on_event: &mut impl FnMut(Event),
) -> Result<Outcome, Error> {
    let mut rand = rand_u32;
    provision::run(
        plan,
        state,
        ctx,
        &FetchClient,
        &TimeoutSleep,
        &mut rand,
        on_event,
    )
    .await
}

/// After an error: show it; a refused token signs the admin out so the sign-in button returns.
fn fail(st: St, op: Op, e: &Error) {
    if e.kind() == ErrorKind::SignInAgain {
        st.session.set(None);
    }
    st.maint.error.set(Some((op, ui_error(e, op))));
}

fn check_spec(st: St, target: CheckTarget) -> CheckSpec {
    let o = st.opts.get_untracked();
    CheckSpec {
        target,
        permissions: ops::permission_reqs(&o.services()),
        now_unix: adapters::now_unix(),
    }
}

// --- Renew: the credential list --------------------------------------------------------------

pub fn start_load_credentials(st: St) {
    if st.maint.busy() || st.session.with_untracked(|s| s.is_none()) {
        return;
    }
    leptos::task::spawn_local(load_credentials(st));
}

/// Reads the app's credentials (a check by app name: its report lists them with expiry).
async fn load_credentials(st: St) {
    let m = st.maint;
    let Some(ctx) = graph_ctx(st) else { return };
    m.credentials_loading.set(true);
    m.credentials_error.set(None);
    let name = st.opts.with_untracked(|o| o.app_name.clone());
    let plan = provision::plan_check(&check_spec(st, CheckTarget::AppName(name)));
    let mut state = RunState::new();
    let r = drive(&plan, &mut state, &ctx, &mut |_| {}).await;
    m.credentials_loading.set(false);
    match r {
        Ok(o) => m
            .credentials
            .set(Some(o.report.map(|r| r.credentials).unwrap_or_default())),
        Err(e) => {
            if e.kind() == ErrorKind::SignInAgain {
                st.session.set(None);
            }
            m.credentials.set(None);
            m.credentials_error.set(Some(ui_error(&e, Op::Renew)));
        }
    }
}

// --- Renew: reading the admin's current files -------------------------------------------------

/// Reads the first file of a file input in the page (nothing is uploaded).
pub async fn read_input_file(
    input: &web_sys::HtmlInputElement,
) -> Result<Option<(Vec<u8>, String)>, String> {
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return Ok(None);
    };
    if file.size() > MAX_FILE_BYTES {
        return Err(format!(
            "{} is too large for this kind of file (more than 1 MB)",
            file.name()
        ));
    }
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("the browser could not read {}", file.name()))?;
    Ok(Some((js_sys::Uint8Array::new(&buf).to_vec(), file.name())))
}

/// The current PFX chosen (or cleared) in `current-pfx`.
pub fn pick_current_pfx(st: St, ev: leptos::ev::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    leptos::task::spawn_local(async move {
        st.maint.pfx_message.set(None);
        match read_input_file(&input).await {
            Ok(f) => st.current_pfx.set(f),
            Err(e) => {
                st.current_pfx.set(None);
                st.maint.pfx_message.set(Some(e));
            }
        }
    });
}

/// The current config file chosen (or cleared) in `current-config`.
pub fn pick_current_config(st: St, ev: leptos::ev::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    leptos::task::spawn_local(async move {
        let m = st.maint;
        m.config_message.set(None);
        m.current_config.set(None);
        match read_input_file(&input).await {
            Ok(Some((bytes, name))) => {
                let parsed = String::from_utf8(bytes)
                    .map_err(|_| "this is not a text file".to_string())
                    .and_then(|t| properties::parse_config(&t).map_err(|e| e.to_string()));
                match parsed {
                    Ok(c) if c.appid.is_some() || c.secret.is_some() => {
                        m.current_config.set(Some((name, c)))
                    }
                    Ok(_) => m.config_message.set(Some(format!(
                        "{name} has no appid or secret: it is not a bacula_m365_config.conf"
                    ))),
                    Err(e) => m
                        .config_message
                        .set(Some(format!("{name} could not be read: {e}"))),
                }
            }
            Ok(None) => {}
            Err(e) => m.config_message.set(Some(e)),
        }
    });
}

/// Opens the current PFX with its password: the key that signs the addKey proof.
fn current_key(st: St) -> Result<Option<CurrentKey>, String> {
    let Some((bytes, name)) = st.current_pfx.get_untracked() else {
        return Ok(None);
    };
    let pw = PfxPassword::new(st.maint.pfx_password.get_untracked());
    match crypto::read_pfx(&bytes, &pw) {
        Ok((key, cert_der)) => Ok(Some(CurrentKey { key, cert_der })),
        Err(CryptoError::WrongPassword) => Err(format!(
            "The password does not open {name}: type the certificate password (sharepoint_certificate_password in your current config file)."
        )),
        Err(CryptoError::UnsupportedPfx) => Err(format!(
            "{name} uses an encryption this page cannot read. Leave the file out (the certificate is then replaced) or export it again with AES."
        )),
        Err(e) => Err(format!("{name} cannot be used: {e}.")),
    }
}

// --- Renew: the run ------------------------------------------------------------------------------

pub fn start_renew(st: St) {
    if st.maint.busy() || st.running.get_untracked() || st.generating.get_untracked() {
        return;
    }
    leptos::task::spawn_local(renew(st));
}

/// A shorter secret lifetime after a tenant policy refused the chosen one, then renew again.
pub fn renew_with_months(st: St, months: u32) {
    st.opts.update(|o| o.secret_months = months.clamp(1, 24));
    ops::save_ui(st);
    start_renew(st);
}

fn arm_unload_guard(st: St) {
    let first = GUARD.with(|g| !std::mem::replace(&mut *g.borrow_mut(), true));
    if first {
        adapters::guard_unload(move || st.maint.secret_at_risk());
    }
}

/// The app and service principal a renew found: (app id, service principal object id).
type Found = (Option<String>, Option<String>);

fn publish_renewed(
    st: St,
    secret: Option<&Credentials>,
    cert_renewed: bool,
    pfx: &PfxFile,
    found: Found,
) {
    let m = st.maint;
    let tid = st
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.claims.tid.clone()))
        .unwrap_or_default();
    let o = st.opts.get_untracked();
    let config_dir = ops::config_dir(st);
    let current = m.current_config.get_untracked().map(|(_, c)| c);
    let current_pfx = st.current_pfx.get_untracked().map(|(_, name)| name);
    let current_pw = PfxPassword::new(m.pfx_password.get_untracked());
    let composed = compose_config(&ConfigInputs {
        new_secret: secret,
        new_pfx: cert_renewed.then_some((pfx.file_name.as_str(), &pfx.password)),
        current: current.as_ref(),
        current_pfx: current_pfx.as_deref().map(|n| (n, &current_pw)),
        config_dir: &config_dir,
        tenant_id: &tid,
        app_name: &o.app_name,
        app_id: found.0.as_deref(),
        sp_id: found.1.as_deref(),
    });
    let config = composed
        .config
        .as_ref()
        .map(|c| properties::render_config(c, adapters::now_unix()));
    if secret.is_some() {
        arm_unload_guard(st);
    }
    m.renew_delivered.set(false);
    m.renewed.set(Some(Renewed {
        secret: secret.is_some(),
        certificate: cert_renewed,
        pfx: cert_renewed.then(|| pfx.clone()),
        config,
        warnings: composed.warnings,
        config_dir,
    }));
}

async fn renew(st: St) {
    let m = st.maint;
    let Some(ctx) = graph_ctx(st) else { return };
    let tid = st
        .session
        .with_untracked(|s| s.as_ref().map(|s| s.claims.tid.clone()))
        .unwrap_or_default();
    begin(st, Op::Renew);
    m.policy_choice.set(false);
    m.pfx_message.set(None);

    let current_key = match current_key(st) {
        Ok(k) => k,
        Err(msg) => {
            m.pfx_message.set(Some(msg.clone()));
            m.error.set(Some((
                Op::Renew,
                UiError {
                    kind: "invalid-input",
                    title: "The current certificate file cannot be opened".into(),
                    advice: msg,
                    diagnostics: None,
                },
            )));
            return;
        }
    };

    // Continue a renew that stopped part-way, or start one with a new certificate.
    let pending = PENDING_RENEW
        .with(|p| p.borrow_mut().take())
        .filter(|p| p.tenant_id == tid);
    let mut p = match pending {
        Some(p) => p,
        None => {
            m.renewed.set(None);
            let run_id = match adapters::random_array::<9>() {
                Ok(b) => crate::engine::auth::random_token(&b),
                Err(e) => {
                    m.error.set(Some((
                        Op::Renew,
                        UiError {
                            kind: "bug",
                            title: "No secure random source".into(),
                            advice: e,
                            diagnostics: None,
                        },
                    )));
                    return;
                }
            };
            m.generating.set(true);
            // Let the page paint the "generating" line before the CPU work.
            crate::engine::http::Sleep::sleep(&TimeoutSleep, 16).await;
            let made = ops::make_certificate(st).await;
            m.generating.set(false);
            let (mut certificate, pfx) = match made {
                Ok(x) => x,
                Err(e) => {
                    m.error.set(Some((
                        Op::Renew,
                        UiError {
                            kind: "bug",
                            title: "The certificate could not be made in this browser".into(),
                            advice: format!(
                                "{e}. Use a current browser; if it repeats, report it to Bacula support."
                            ),
                            diagnostics: None,
                        },
                    )));
                    return;
                }
            };
            // Named after this run, so the old certificate (another name) is the one removed.
            certificate.display_name = provision::credential_marker(&run_id);
            PendingRenew {
                tenant_id: tid.clone(),
                run_id,
                certificate,
                pfx,
                state: RunState::new(),
                secret: None,
                cert_renewed: false,
            }
        }
    };

    let o = st.opts.get_untracked();
    let spec = RenewSpec {
        app_name: o.app_name.clone(),
        permissions: ops::permission_reqs(&o.services()),
        run_id: p.run_id.clone(),
        now_unix: adapters::now_unix(),
        force: m.force.get_untracked(),
        secret_lifetime_days: o.secret_months.clamp(1, 24) * 365 / 12 + 1,
        new_certificate: Some(p.certificate.clone()),
        current_key,
    };
    let plan = provision::plan_renew(&spec);
    show_plan(m, &plan, &p.state);
    m.running.set(true);
    let mut secret = p.secret.clone();
    let mut cert_renewed = p.cert_renewed;
    let pfx = p.pfx.clone();
    let result = drive(&plan, &mut p.state, &ctx, &mut |ev: Event| {
        progress(m, &ev);
        match ev {
            // The secret exists: its config can be downloaded whatever fails later.
            Event::SecretCreated(c) => {
                publish_renewed(st, Some(&c), cert_renewed, &pfx, (None, None));
                secret = Some(c);
            }
            Event::StepDone {
                step: Step::Certificate,
                ..
            } => cert_renewed = true,
            _ => {}
        }
    })
    .await;
    m.running.set(false);
    match result {
        Ok(outcome) => {
            let f = &p.state.facts;
            let found = (
                f.app.as_ref().map(|a| a.app_id.as_str().to_string()),
                f.sp_id.as_ref().map(|s| s.as_str().to_string()),
            );
            publish_renewed(st, secret.as_ref(), cert_renewed, &pfx, found);
            let what = match (secret.is_some(), cert_renewed) {
                (true, true) => "a new secret and a new certificate were added; the ones they replace were removed",
                (true, false) => "a new secret was added (the certificate is valid for more than 90 days)",
                (false, true) => "a new certificate was added (the secret is valid for more than 90 days)",
                (false, false) => "nothing was due: the secret and the certificate are valid for more than 90 days (tick Force to renew them anyway)",
            };
            m.finished.set(Some(format!(
                "Done: {what}. Permissions are up to date ({} requests).",
                outcome.round_trips
            )));
            if secret.is_none() && !cert_renewed {
                m.renewed.set(None);
            }
            // Show the credentials as they are now.
            load_credentials(st).await;
        }
        Err(e) => {
            if e.kind() == ErrorKind::PolicyLimit {
                m.policy_choice.set(true);
            }
            p.secret = secret;
            p.cert_renewed = cert_renewed;
            PENDING_RENEW.with(|x| *x.borrow_mut() = Some(p));
            fail(st, Op::Renew, &e);
        }
    }
}

pub fn download_renewed_config(st: St) {
    let m = st.maint;
    let Some(text) = m
        .renewed
        .with_untracked(|r| r.as_ref().and_then(|r| r.config.clone()))
    else {
        return;
    };
    match adapters::download(properties::CONFIG_FILE_NAME, "text/plain", text.as_bytes()) {
        Ok(()) => m.renew_delivered.set(true),
        Err(e) => download_failed(st, e),
    }
}

pub fn download_renewed_pfx(st: St) {
    let Some(p) = st
        .maint
        .renewed
        .with_untracked(|r| r.as_ref().and_then(|r| r.pfx.clone()))
    else {
        return;
    };
    if let Err(e) = adapters::download(&p.file_name, "application/x-pkcs12", &p.bytes) {
        download_failed(st, e);
    }
}

fn download_failed(st: St, e: String) {
    st.maint.error.set(Some((
        Op::Renew,
        UiError {
            kind: "bug",
            title: "The download failed".into(),
            advice: format!("{e}. Try again."),
            diagnostics: None,
        },
    )));
}

// --- Check and repair -----------------------------------------------------------------------------

/// The check's target from the object id field: empty = the app by its name.
pub fn check_target(st: St) -> Result<CheckTarget, String> {
    let id = st.maint.objectid.get_untracked();
    let id = id.trim();
    if id.is_empty() {
        return Ok(CheckTarget::AppName(
            st.opts.with_untracked(|o| o.app_name.clone()),
        ));
    }
    if crate::engine::auth::is_guid(id) {
        Ok(CheckTarget::ServicePrincipal(ObjectId::new(
            id.to_ascii_lowercase(),
        )))
    } else {
        Err("An object id is a GUID such as 8cee7605-0d5e-42b6-b269-c39f3411b5b9 (objectid= in your config file). Leave it empty to find the app by its name.".into())
    }
}

pub fn start_check(st: St, repair: bool) {
    if st.maint.busy() || st.running.get_untracked() {
        return;
    }
    leptos::task::spawn_local(check(st, repair));
}

async fn check(st: St, repair: bool) {
    let m = st.maint;
    let Some(ctx) = graph_ctx(st) else { return };
    let op = if repair { Op::Repair } else { Op::Check };
    let target = match check_target(st) {
        Ok(t) => t,
        Err(_) => return,
    };
    begin(st, op);
    if !repair {
        st.report.set(None);
        st.report_ok.set(None);
    }
    let spec = check_spec(st, target);
    let plan = if repair {
        provision::plan_repair(&spec)
    } else {
        provision::plan_check(&spec)
    };
    let mut state = RunState::new();
    show_plan(m, &plan, &state);
    m.running.set(true);
    let r = drive(&plan, &mut state, &ctx, &mut |ev| progress(m, &ev)).await;
    m.running.set(false);
    match r {
        Ok(o) => match o.report {
            Some(report) => show_report(st, &report, repair),
            None => fail(
                st,
                op,
                &Error::Bug("the check finished without a report".into()),
            ),
        },
        Err(e) => fail(st, op, &e),
    }
}

fn show_report(st: St, report: &CheckReport, repaired: bool) {
    st.report.set(Some(report.lines()));
    st.report_ok.set(Some(report.all_set()));
    st.maint.finished.set(Some(if repaired {
        if report.all_set() {
            "Repaired: the missing permissions were granted and a new check is clean.".to_string()
        } else {
            format!(
                "Repair ran, but {} permission(s) are still missing (see the report).",
                report.missing.len()
            )
        }
    } else {
        format!("Checked service principal {}.", report.sp_object_id)
    }));
}

// --- Delete registrator --------------------------------------------------------------------------

/// An add-app run in this browser session is unfinished.
pub fn add_app_running(st: St) -> bool {
    st.running.get_untracked() || add_app_incomplete(session::get(RUN_KEY).as_deref())
}

/// The delete button: refuse while an add-app is unfinished, else ask for confirmation.
pub fn ask_delete(st: St) {
    let m = st.maint;
    m.error.set(None);
    if add_app_running(st) {
        st.confirm_delete.set(false);
        m.delete_status.set(Some("refused"));
        st.op_done.set(Some(
            "Not deleted: an Add app run in this browser is not finished, and it needs the \
             registrator. Finish it on the Connect tab (press Create again), download the \
             configuration, then delete the registrator."
                .into(),
        ));
        return;
    }
    m.delete_status.set(None);
    st.op_done.set(None);
    st.confirm_delete.set(true);
}

pub fn start_delete(st: St) {
    if st.maint.busy() {
        return;
    }
    st.confirm_delete.set(false);
    leptos::task::spawn_local(delete(st));
}

async fn delete(st: St) {
    let m = st.maint;
    let Some(ctx) = graph_ctx(st) else { return };
    let Some(d) = st.deploy.get_untracked() else {
        return;
    };
    begin(st, Op::Delete);
    st.op_done.set(None);
    m.delete_status.set(None);
    let spec = DeleteSpec {
        registrator_app_id: AppId::new(d.client_id.clone()),
        add_app_incomplete: add_app_running(st),
    };
    let plan = provision::plan_delete_registrator(&spec);
    let mut state = RunState::new();
    show_plan(m, &plan, &state);
    m.running.set(true);
    let r = drive(&plan, &mut state, &ctx, &mut |ev| progress(m, &ev)).await;
    m.running.set(false);
    match r {
        Ok(o) => {
            // The step's summary is the engine's own word for what happened (`next_delete`).
            let gone = o
                .summaries
                .iter()
                .any(|(s, text)| *s == Step::DeleteRegistrator && text == "already gone");
            m.delete_status
                .set(Some(if gone { "already-gone" } else { "deleted" }));
            st.op_done.set(Some(if gone {
                "The registrator was not in this tenant (already deleted): nothing to do.".into()
            } else {
                "The registrator's service principal was deleted from the tenant. The plugin's app \
                 and its credentials are untouched. To run Add app or Renew again later, \
                 authorize the registrator again first (step 2 on the Connect tab, B-1)."
                    .into()
            }));
        }
        Err(e) => fail(st, Op::Delete, &e),
    }
}
