//! The engine's one driver loop against the in-process emulator: add-app (happy path, second
//! run, replication lag, faults per step, reload/resume, missing admin role, tenant policy),
//! check and repair, renew, delete-registrator; and every request body we build validated
//! against Microsoft Graph's JSON Schema. Deterministic: a fake clock advanced by the fake
//! `Sleep` (and by a simulated latency per request); no sockets, no real time.
//!
//! Run with `cargo test --features emulator --test flow_engine`.
#![cfg(feature = "emulator")]

#[path = "emulator_support/mod.rs"]
mod emulator_support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::task::{Context, Poll};

use emulator_support::{cert, BASE, GRAPH, REGISTRATOR, T, T0};
use m365_registrator::emulator::{
    EmulatorConfig, FaultKind, FaultRule, Lag, Outcome as EmuOutcome,
};
use m365_registrator::engine::error::{AdminRole, Error, ErrorKind};
use m365_registrator::engine::graph::{self, GraphCtx, NewKeyCredential};
use m365_registrator::engine::http::{
    HttpClient, HttpRequest, HttpResponse, Sleep, TransportError,
};
use m365_registrator::engine::permissions::{self, Service};
use m365_registrator::engine::provision::*;
use m365_registrator::engine::retry::RetryReason;
use m365_registrator::engine::secret::{AccessToken, AppId, KeyId, ObjectId, PrivateKeyDer};
use serde_json::{json, Value};

const APP: &str = DEFAULT_APP_NAME;
const NOW: i64 = (T0 / 1000) as i64;

/// The emulator behind the engine's `HttpClient`, and a fake `Sleep` on the same clock.
struct Harness {
    t: RefCell<T>,
    latency_ms: Cell<u64>,
    sent: RefCell<Vec<HttpRequest>>,
}

impl Harness {
    fn now(&self) -> u64 {
        self.t.borrow().now
    }
    fn state(&self) -> Value {
        self.t.borrow().emu.state_json()
    }
}

impl HttpClient for Harness {
    fn send(&self, req: HttpRequest) -> impl Future<Output = Result<HttpResponse, TransportError>> {
        let out = {
            let mut t = self.t.borrow_mut();
            t.now += self.latency_ms.get();
            let now = t.now;
            t.emu.handle(&req, now)
        };
        self.sent.borrow_mut().push(req);
        std::future::ready(match out {
            EmuOutcome::Respond(r) => Ok(r),
            EmuOutcome::Drop => Err(TransportError("connection closed without an answer".into())),
        })
    }
}

impl Sleep for Harness {
    fn sleep(&self, millis: u64) -> impl Future<Output = ()> {
        self.t.borrow_mut().now += millis;
        std::future::ready(())
    }
}

/// Our futures never wait on anything but the harness: poll to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn harness(cfg: EmulatorConfig, upn: &str) -> (Harness, GraphCtx) {
    let mut t = T::with(EmulatorConfig {
        registrator_consented: true,
        registrator_spa_redirect_uris: vec![emulator_support::PAGE.into()],
        ..cfg
    });
    let token = t.sign_in(&format!("{upn}@contoso.onmicrosoft.com"));
    let h = Harness {
        t: RefCell::new(t),
        latency_ms: Cell::new(0),
        sent: RefCell::new(Vec::new()),
    };
    (
        h,
        GraphCtx {
            base: format!("{BASE}/v1.0"),
            token: AccessToken::new(token),
        },
    )
}

fn certificate(seed: u64, run_id: &str) -> NewKeyCredential {
    NewKeyCredential {
        key_base64: cert(seed).key_b64(),
        display_name: credential_marker(run_id),
        start_unix: 1_767_225_600, // 2026-01-01, as emulator_support::cert
        end_unix: 1_830_297_600,   // 2028-01-01
    }
}

fn add_app_spec(run_id: &str) -> AddAppSpec {
    let mut s = AddAppSpec::for_services(Service::all(), run_id, NOW);
    s.certificate = Some(certificate(1, run_id));
    s
}

struct Ran {
    result: Result<Outcome, Error>,
    events: Vec<Event>,
    wall_ms: u64,
}

fn run_with(h: &Harness, ctx: &GraphCtx, plan: &Plan, state: &mut RunState) -> Ran {
    let start = h.now();
    let mut events = Vec::new();
    let mut seed = 0x1234_5678u32;
    let mut rand = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed
    };
    let result = block_on(run(plan, state, ctx, h, h, &mut rand, &mut |e| {
        events.push(e)
    }));
    Ran {
        result,
        events,
        wall_ms: h.now() - start,
    }
}

fn run_plan(h: &Harness, ctx: &GraphCtx, plan: &Plan) -> Ran {
    run_with(h, ctx, plan, &mut RunState::new())
}

fn secrets(events: &[Event]) -> Vec<Credentials> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SecretCreated(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// What exists in the tenant for the plugin app.
#[derive(Debug, PartialEq)]
struct Tenant {
    apps: usize,
    sps: usize,
    owners: Vec<String>,
    assigned_role_ids: Vec<String>,
    grants: Vec<(String, Vec<String>)>,
    secrets: usize,
    certs: usize,
}

fn tenant(state: &Value) -> Tenant {
    let apps: Vec<&Value> = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["displayName"] == APP)
        .collect();
    let app_ids: Vec<&str> = apps.iter().filter_map(|a| a["appId"].as_str()).collect();
    let sps: Vec<&Value> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| app_ids.contains(&s["appId"].as_str().unwrap_or("")))
        .collect();
    let sp_ids: Vec<&str> = sps.iter().filter_map(|s| s["id"].as_str()).collect();
    let mut assigned_role_ids: Vec<String> = state["appRoleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| sp_ids.contains(&a["principalId"].as_str().unwrap_or("")))
        .map(|a| a["appRoleId"].as_str().unwrap().to_string())
        .collect();
    assigned_role_ids.sort();
    let grants = state["oauth2PermissionGrants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| sp_ids.contains(&g["clientId"].as_str().unwrap_or("")))
        .map(|g| {
            assert_eq!(g["consentType"], "AllPrincipals");
            let mut s: Vec<String> = g["scope"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect();
            s.sort();
            (g["resourceId"].as_str().unwrap().to_string(), s)
        })
        .collect();
    let one = apps.first();
    Tenant {
        apps: apps.len(),
        sps: sps.len(),
        owners: one
            .map(|a| {
                a["owners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        assigned_role_ids,
        grants,
        secrets: one.map_or(0, |a| a["passwordCredentials"].as_array().unwrap().len()),
        certs: one.map_or(0, |a| a["keyCredentials"].as_array().unwrap().len()),
    }
}

fn admin_id(h: &Harness) -> String {
    h.state()["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["displayName"] == "Ada Admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The tenant's ids of every manifest permission (the emulator's resource SPs).
fn expected(h: &Harness, ctx: &GraphCtx) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let mut roles = Vec::new();
    let mut grants = Vec::new();
    let perms = permissions::manifest(Service::all());
    for res in [
        permissions::Resource::Graph,
        permissions::Resource::SharePoint,
    ] {
        let mut t = h.t.borrow_mut();
        let r = t.get(
            &format!("/v1.0/servicePrincipals(appId='{}')", res.app_id()),
            ctx.token.expose(),
        );
        let sp: Value = serde_json::from_str(&r.body).unwrap();
        let mut scopes = Vec::new();
        for p in perms.iter().filter(|p| p.resource == res) {
            match p.kind {
                PermKind::Application => roles.push(
                    sp["appRoles"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|r| r["value"] == p.name)
                        .unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                PermKind::Delegated => scopes.push(p.name.to_string()),
            }
        }
        if !scopes.is_empty() {
            scopes.sort();
            grants.push((sp["id"].as_str().unwrap().to_string(), scopes));
        }
    }
    roles.sort();
    (roles, grants)
}

fn assert_complete(h: &Harness, ctx: &GraphCtx) {
    let got = tenant(&h.state());
    let (roles, grants) = expected(h, ctx);
    assert_eq!(got.apps, 1, "{got:?}");
    assert_eq!(got.sps, 1, "{got:?}");
    assert_eq!(got.owners, vec![admin_id(h)]);
    assert_eq!(got.assigned_role_ids, roles);
    assert_eq!(got.grants, grants);
    assert_eq!(got.secrets, 1, "{got:?}");
    assert_eq!(got.certs, 1, "{got:?}");
}

#[test]
fn add_app_happy_path_then_second_run_creates_nothing() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let plan = plan_add_app(&add_app_spec("run-1"));
    assert_eq!(
        plan.step_names(),
        [
            "discover",
            "app",
            "service-principal",
            "secret",
            "owner",
            "grants"
        ]
    );
    let ran = run_plan(&h, &ctx, &plan);
    let out = ran.result.expect("add-app");
    assert_complete(&h, &ctx);
    let creds = secrets(&ran.events);
    assert_eq!(creds.len(), 1);
    let c = &creds[0];
    let state = h.state();
    let app = &state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["displayName"] == APP)
        .unwrap()
        .clone();
    assert_eq!(app["uniqueName"], APP);
    assert_eq!(app["appId"].as_str(), Some(c.app_id.as_str()));
    assert_eq!(app["id"].as_str(), Some(c.app_object_id.as_str()));
    assert!(c.sp_object_id.is_some());
    assert_eq!(c.tenant_id.as_deref(), Some(emulator_support::TENANT));
    assert_eq!(out.credentials.as_ref(), Some(c));
    // The secret works: a client-credentials token from the emulator.
    let tok =
        h.t.borrow_mut()
            .client_credentials(c.app_id.as_str(), c.secret.expose());
    assert_eq!(tok.status, 200, "{}", tok.body);
    println!(
        "add-app, no lag: {} round trips, {} ms simulated",
        out.round_trips, ran.wall_ms
    );
    assert!(out.round_trips <= 8, "{}", out.round_trips);
    let done: Vec<&str> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepDone { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(done, plan.step_names());

    // Second run: nothing new, reports already set up.
    let before = h.state();
    let plan2 = plan_add_app(&add_app_spec("run-2"));
    let ran2 = run_plan(&h, &ctx, &plan2);
    let out2 = ran2.result.expect("second add-app");
    assert!(out2.already_set_up);
    assert!(
        out2.notices.contains(&Notice::AlreadySetUp)
            || ran2.events.iter().any(|e| matches!(
                e,
                Event::StepSkipped {
                    step: Step::Secret,
                    ..
                }
            ))
    );
    assert!(secrets(&ran2.events).is_empty());
    assert_eq!(tenant(&h.state()), tenant(&before));
    assert_eq!(h.state()["applications"], before["applications"]);
    assert_eq!(
        h.state()["appRoleAssignments"],
        before["appRoleAssignments"]
    );
    assert_eq!(
        h.state()["oauth2PermissionGrants"],
        before["oauth2PermissionGrants"]
    );
    println!("add-app, second run: {} round trips", out2.round_trips);
}

#[test]
fn add_app_waits_out_20s_replication_lag_quickly() {
    let cfg = EmulatorConfig {
        lag: Lag {
            app_ms: 20_000,
            sp_ms: 20_000,
        },
        ..Default::default()
    };
    let (h, ctx) = harness(cfg, "admin");
    h.latency_ms.set(100);
    let plan = plan_add_app(&add_app_spec("run-lag"));
    let ran = run_plan(&h, &ctx, &plan);
    let out = ran.result.expect("add-app with lag");
    assert_complete(&h, &ctx);
    let polls = ran
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Retrying {
                    reason: RetryReason::Replication,
                    ..
                }
            )
        })
        .count();
    println!(
        "add-app, 20 s lag on app and service principal, 100 ms latency: {} round trips ({} replication polls), {} ms simulated wall time, {} ms slept",
        out.round_trips, polls, ran.wall_ms, out.slept_ms
    );
    // Two sequential lags (the SP can only be made once the app is visible; grants only once
    // the SP is visible) plus polling granularity (≤ 2 s each) and latency.
    assert!(ran.wall_ms <= 40_000 + 6_000, "{}", ran.wall_ms);
}

/// Which requests of a fresh add-app belong to which step.
fn step_matchers() -> Vec<(&'static str, FaultRule)> {
    vec![
        (
            "discover",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("$batch")
                .nth(1),
        ),
        (
            "app",
            FaultRule::new(FaultKind::Throttle)
                .method("PATCH")
                .path_contains("/applications(")
                .nth(1),
        ),
        (
            "service-principal",
            FaultRule::new(FaultKind::Throttle)
                .method("PATCH")
                .path_contains("/servicePrincipals(")
                .nth(1),
        ),
        (
            "secret",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("/addPassword")
                .nth(1),
        ),
        (
            "owner",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("/owners/")
                .nth(1),
        ),
        (
            "grants",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("$batch")
                .nth(2),
        ),
        (
            "grants (one assignment)",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("/appRoleAssignedTo")
                .nth(3),
        ),
        (
            "grants (delegated grant)",
            FaultRule::new(FaultKind::Throttle)
                .method("POST")
                .path_contains("/oauth2PermissionGrants")
                .nth(1),
        ),
    ]
}

#[test]
fn add_app_survives_one_fault_per_step() {
    let kinds = [
        (FaultKind::Throttle, Some(3)),
        (FaultKind::Unavailable, Some(2)),
        (FaultKind::Unavailable, None),
        (FaultKind::GatewayTimeout, None),
        (FaultKind::Drop, None),
        (FaultKind::DropAfter, None),
        (FaultKind::Resend, None),
        (FaultKind::Lag404, None),
    ];
    let mut table = Vec::new();
    for (step, matcher) in step_matchers() {
        for (kind, ra) in kinds {
            // A replication 404 is only meaningful on objects this run created.
            if kind == FaultKind::Lag404 && (step == "discover" || step == "app") {
                continue;
            }
            // Requests inside the grants' $batch have no connection of their own: connection
            // faults apply to the $batch (the "grants" row), not to them.
            if kind.is_connection_level() && step.starts_with("grants (") {
                continue;
            }
            let mut rule = matcher.clone();
            rule.kind = kind;
            rule.retry_after_s = ra;
            let (h, ctx) = harness(EmulatorConfig::default(), "admin");
            h.t.borrow_mut().emu.add_fault(rule);
            let plan = plan_add_app(&add_app_spec("run-f"));
            let ran = run_plan(&h, &ctx, &plan);
            let fired = h.t.borrow().emu.faults()[0].fired;
            let out = ran
                .result
                .unwrap_or_else(|e| panic!("{step} × {kind:?}: {e}\n{}", e.diagnostics()));
            assert_eq!(fired, 1, "{step} × {kind:?}: the fault did not fire");
            assert_complete(&h, &ctx);
            assert_eq!(secrets(&ran.events).len(), 1, "{step} × {kind:?}");
            if let Some(s) = ra {
                // Retry-After honoured: some wait of at least that long.
                assert!(
                    ran.events.iter().any(
                        |e| matches!(e, Event::Retrying { wait_ms, .. } if *wait_ms >= s * 1000)
                    ),
                    "{step} × {kind:?}: Retry-After not honoured"
                );
            }
            // The delivered secret is the one on the app.
            let c = &secrets(&ran.events)[0];
            let tok =
                h.t.borrow_mut()
                    .client_credentials(c.app_id.as_str(), c.secret.expose());
            assert_eq!(tok.status, 200, "{step} × {kind:?}: {}", tok.body);
            table.push(format!(
                "{step:>26} × {kind:?}{}: {} round trips",
                ra.map(|s| format!(" (Retry-After {s})"))
                    .unwrap_or_default(),
                out.round_trips
            ));
        }
    }
    println!("{}", table.join("\n"));
}

#[test]
fn application_administrator_fails_on_grants_with_a_secret_delivered() {
    let (h, ctx) = harness(EmulatorConfig::default(), "appadmin");
    let plan = plan_add_app(&add_app_spec("run-aa"));
    let ran = run_plan(&h, &ctx, &plan);
    let err = ran
        .result
        .expect_err("an Application Administrator cannot grant Graph app roles");
    assert_eq!(err.step(), Some("grants"));
    assert_eq!(
        err.kind(),
        ErrorKind::NeedsAdmin {
            missing_role: AdminRole::PrivilegedRoleAdministrator
        }
    );
    assert!(
        err.diagnostics().contains("request-id: "),
        "{}",
        err.diagnostics()
    );
    assert_eq!(
        secrets(&ran.events).len(),
        1,
        "the config can be downloaded anyway"
    );
    assert!(ran.events.iter().any(|e| matches!(
        e,
        Event::StepFailed {
            step: Step::Grants,
            ..
        }
    )));
}

#[test]
fn tenant_lifetime_policy_is_a_policy_limit() {
    let cfg = EmulatorConfig {
        password_max_lifetime_days: Some(180),
        ..Default::default()
    };
    let (h, ctx) = harness(cfg, "admin");
    let plan = plan_add_app(&add_app_spec("run-p"));
    let err = run_plan(&h, &ctx, &plan)
        .result
        .expect_err("24 months is over the policy");
    assert_eq!(err.kind(), ErrorKind::PolicyLimit);
    assert_eq!(err.step(), Some("secret"));
    // The admin picks the policy's maximum and runs again: completes.
    let mut spec = add_app_spec("run-p2");
    spec.secret_lifetime_days = 180;
    spec.resume = Some(ResumeInfo {
        run_id: "run-p".into(),
        undelivered_secret_key_ids: vec![],
        delivered_secret_key_ids: vec![],
    });
    run_plan(&h, &ctx, &plan_add_app(&spec))
        .result
        .expect("shorter lifetime");
    assert_complete(&h, &ctx);
}

#[test]
fn resumed_run_removes_the_undelivered_secret() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    // The first run is interrupted (a reload) right after the secret step.
    let plan = plan_add_app(&add_app_spec("run-a"));
    h.t.borrow_mut().emu.add_fault(
        FaultRule::new(FaultKind::Drop)
            .method("POST")
            .path_contains("/owners/")
            .times(100),
    );
    let ran = run_plan(&h, &ctx, &plan);
    assert!(ran.result.is_err());
    let first = secrets(&ran.events);
    assert_eq!(first.len(), 1);
    h.t.borrow_mut().emu.set_faults(vec![]);
    // After the reload: the page never delivered that secret.
    let mut spec = add_app_spec("run-b");
    spec.resume = Some(ResumeInfo {
        run_id: "run-a".into(),
        undelivered_secret_key_ids: vec![first[0].secret_key_id.clone()],
        delivered_secret_key_ids: vec![],
    });
    let ran = run_plan(&h, &ctx, &plan_add_app(&spec));
    ran.result.expect("resumed run");
    let second = secrets(&ran.events);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].secret_key_id, first[0].secret_key_id);
    assert_complete(&h, &ctx);
    let state = h.state();
    let app = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["displayName"] == APP)
        .unwrap()
        .clone();
    assert_eq!(
        app["passwordCredentials"][0]["keyId"].as_str(),
        Some(second[0].secret_key_id.as_str())
    );
    assert!(ran.events.iter().any(|e| matches!(
        e,
        Event::Notice {
            notice: Notice::SecretsRemoved { count: 1 },
            ..
        }
    )));
    // The certificate the interrupted run put on the app never reached the admin: replacing it
    // is not worth a "stops working" warning (found by a helper).
    assert!(
        !ran.events.iter().any(|e| matches!(
            e,
            Event::Notice {
                notice: Notice::CertificatesReplaced { .. },
                ..
            }
        )),
        "{:?}",
        ran.events
    );
}

#[test]
fn console_made_app_is_found_by_display_name() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let made = h.t.borrow_mut().create_app(ctx.token.expose(), APP);
    let ran = run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-c")));
    let out = ran.result.expect("adopts the console app");
    assert!(out
        .notices
        .iter()
        .any(|n| matches!(n, Notice::AdoptedConsoleApp { .. })));
    assert_complete(&h, &ctx);
    assert_eq!(
        secrets(&ran.events)[0].app_id.as_str(),
        made["appId"].as_str().unwrap()
    );
}

#[test]
fn missing_permission_in_tenant_is_reported_by_name() {
    let cfg = EmulatorConfig {
        graph_missing_app_roles: vec!["Mail.ReadWrite".into()],
        ..Default::default()
    };
    let (h, ctx) = harness(cfg, "admin");
    let err = run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-m")))
        .result
        .expect_err("missing role");
    assert_eq!(
        err,
        Error::MissingPermissionsInTenant(vec![
            "Application permission Mail.ReadWrite (Microsoft Graph)".into()
        ])
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // Nothing was created.
    assert_eq!(tenant(&h.state()).apps, 0);
}

fn check_spec(target: CheckTarget) -> CheckSpec {
    CheckSpec {
        target,
        permissions: PermissionReq::from_manifest(&permissions::manifest(Service::all())),
        now_unix: NOW,
    }
}

#[test]
fn check_reports_missing_and_repair_fixes_it() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let out = run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-1")))
        .result
        .expect("add-app");
    let sp = out.credentials.unwrap().sp_object_id.unwrap();

    let by_id = check_spec(CheckTarget::ServicePrincipal(sp.clone()));
    let report = run_plan(&h, &ctx, &plan_check(&by_id))
        .result
        .expect("check")
        .report
        .expect("report");
    assert_eq!(report.lines()[0], "All permissions are correctly set");
    assert!(report.extra.is_empty());

    // Take one application permission and one delegated scope away.
    let (chat_role, grant_id) = {
        let state = h.state();
        let chat = h.t.borrow_mut().graph_role_id("ChatMember.Read.All");
        let a = state["appRoleAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["appRoleId"] == chat.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let g = state["oauth2PermissionGrants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["clientId"] == sp.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        (a, g)
    };
    {
        let mut t = h.t.borrow_mut();
        let tok = ctx.token.expose().to_string();
        let r = t.delete(
            &format!("/v1.0/servicePrincipals/{sp}/appRoleAssignments/{chat_role}"),
            &tok,
        );
        assert!(r.status == 204 || r.status == 404, "{}", r.body);
        let r = t.delete(
            &format!("/v1.0/servicePrincipals/{GRAPH}/appRoleAssignedTo/{chat_role}"),
            &tok,
        );
        let _ = r;
        let g: Value = serde_json::from_str(
            &t.get(&format!("/v1.0/oauth2PermissionGrants/{grant_id}"), &tok)
                .body,
        )
        .unwrap();
        let scopes: Vec<&str> = g["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .filter(|s| *s != "Chat.ReadWrite")
            .collect();
        let r = t.patch(
            &format!("/v1.0/oauth2PermissionGrants/{grant_id}"),
            &tok,
            json!({"scope": scopes.join(" ")}),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let by_name = check_spec(CheckTarget::AppName(APP.into()));
    let report = run_plan(&h, &ctx, &plan_check(&by_name))
        .result
        .expect("check")
        .report
        .expect("report");
    let lines = report.lines();
    println!("{}", lines.join("\n"));
    assert!(lines.contains(&format!("Delegated permission Chat.ReadWrite was not found in your Azure service principal {sp}")), "{lines:?}");
    if tenant(&h.state()).assigned_role_ids.len() < expected(&h, &ctx).0.len() {
        assert!(lines.contains(&format!("Application permission ChatMember.Read.All was not found in your Azure service principal {sp}")), "{lines:?}");
    }
    assert!(!report.all_set());

    let repair = plan_repair(&by_name);
    let out = run_plan(&h, &ctx, &repair).result.expect("repair");
    assert!(out.report.unwrap().all_set());
    let report = run_plan(&h, &ctx, &plan_check(&by_id))
        .result
        .expect("re-check")
        .report
        .unwrap();
    assert!(report.all_set(), "{:?}", report.lines());
    assert_complete(&h, &ctx);
}

#[test]
fn check_by_name_before_add_app_says_run_add_app_first() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let spec = check_spec(CheckTarget::AppName(APP.into()));
    for plan in [plan_check(&spec), plan_repair(&spec)] {
        let err = run_plan(&h, &ctx, &plan).result.expect_err("no app yet");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert!(err.to_string().contains("run Add app first"), "{err}");
    }
}

#[test]
fn delete_registrator_is_idempotent_and_refused_while_add_app_is_incomplete() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let refused = plan_delete_registrator(&DeleteSpec {
        add_app_incomplete: true,
        ..DeleteSpec::default()
    });
    assert_eq!(
        run_plan(&h, &ctx, &refused).result.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let plan = plan_delete_registrator(&DeleteSpec::default());
    assert_eq!(plan.step_names(), ["delete-registrator"]);
    let out = run_plan(&h, &ctx, &plan).result.expect("delete");
    assert_eq!(
        out.summaries,
        vec![(Step::DeleteRegistrator, "deleted".to_string())]
    );
    let sps = h.state()["servicePrincipals"].clone();
    assert!(!sps
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["appId"] == REGISTRATOR));
    let out = run_plan(&h, &ctx, &plan).result.expect("delete again");
    assert_eq!(
        out.summaries,
        vec![(Step::DeleteRegistrator, "already gone".to_string())]
    );
}

fn renew_spec(run_id: &str, force: bool, now: i64) -> RenewSpec {
    RenewSpec {
        app_name: APP.into(),
        permissions: PermissionReq::from_manifest(&permissions::manifest(Service::all())),
        run_id: run_id.into(),
        now_unix: now,
        force,
        secret_lifetime_days: DEFAULT_SECRET_DAYS,
        new_certificate: Some(certificate(2, run_id)),
        current_key: None,
    }
}

#[test]
fn renew_leaves_healthy_credentials_and_forced_renews_both() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let first = run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-1")))
        .result
        .expect("add-app")
        .credentials
        .unwrap();

    // Healthy (secret 2 years, certificate until 2028): nothing issued.
    let ran = run_plan(&h, &ctx, &plan_renew(&renew_spec("run-r1", false, NOW)));
    let out = ran.result.expect("renew");
    assert!(out.credentials.is_none());
    assert!(secrets(&ran.events).is_empty());
    assert_complete(&h, &ctx);

    // Forced, with the current key: addKey with a proof, then the old ones removed.
    let c1 = cert(1);
    let mut spec = renew_spec("run-r2", true, NOW);
    spec.current_key = Some(CurrentKey {
        key: PrivateKeyDer::new(c1.key_pkcs8_der.clone()),
        cert_der: c1.cert_der.clone(),
    });
    let plan = plan_renew(&spec);
    let ran = run_plan(&h, &ctx, &plan);
    let out = ran.result.unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let new = out.credentials.expect("a new secret");
    assert_ne!(new.secret_key_id, first.secret_key_id);
    let state = h.state();
    let app = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["displayName"] == APP)
        .unwrap()
        .clone();
    let keys: Vec<&str> = app["passwordCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keyId"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![new.secret_key_id.as_str()]);
    let certs = app["keyCredentials"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(certs[0]["displayName"], credential_marker("run-r2"));
    // The old secret no longer works, the new one does.
    let mut t = h.t.borrow_mut();
    assert_eq!(
        t.client_credentials(new.app_id.as_str(), new.secret.expose())
            .status,
        200
    );
    assert_ne!(
        t.client_credentials(first.app_id.as_str(), first.secret.expose())
            .status,
        200
    );
}

#[test]
fn renew_replaces_an_expiring_secret_and_certificate_without_proof() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-1")))
        .result
        .expect("add-app");
    // 23 months later: both end within 90 days.
    let later = NOW + 700 * 86_400;
    h.t.borrow_mut().now = T0 + 700 * 86_400 * 1000;
    let ctx = GraphCtx {
        token: AccessToken::new(h.t.borrow_mut().sign_in("admin@contoso.onmicrosoft.com")),
        ..ctx
    };
    let mut spec = renew_spec("run-r3", false, later);
    spec.new_certificate = Some(NewKeyCredential {
        key_base64: emulator_support::cert(3).key_b64(),
        display_name: credential_marker("run-r3"),
        start_unix: 1_767_225_600,
        end_unix: 1_830_297_600,
    });
    let ran = run_plan(&h, &ctx, &plan_renew(&spec));
    let out = ran.result.unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert!(out.credentials.is_some());
    assert!(out
        .notices
        .iter()
        .any(|n| matches!(n, Notice::CertificatesReplaced { count: 1 })));
    let t = tenant(&h.state());
    assert_eq!((t.secrets, t.certs), (1, 1));
}

/// Every plan run twice leaves the tenant as the first run left it.
#[test]
fn every_plan_twice_leaves_the_tenant_the_same() {
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    let add = plan_add_app(&add_app_spec("run-1"));
    run_plan(&h, &ctx, &add).result.expect("add-app");
    let plans = vec![
        add,
        plan_check(&check_spec(CheckTarget::AppName(APP.into()))),
        plan_repair(&check_spec(CheckTarget::AppName(APP.into()))),
        plan_renew(&renew_spec("run-r", false, NOW)),
        plan_delete_registrator(&DeleteSpec::default()),
    ];
    for plan in &plans {
        run_plan(&h, &ctx, plan)
            .result
            .unwrap_or_else(|e| panic!("{:?}: {e}", plan.step_names()));
        let after_first = h.state();
        run_plan(&h, &ctx, plan)
            .result
            .unwrap_or_else(|e| panic!("{:?} again: {e}", plan.step_names()));
        let after_second = h.state();
        for k in [
            "applications",
            "servicePrincipals",
            "appRoleAssignments",
            "oauth2PermissionGrants",
        ] {
            assert_eq!(
                after_first[k],
                after_second[k],
                "{:?}: {k} changed on the second run",
                plan.step_names()
            );
        }
    }
}

/// Every body the builders make is valid against Microsoft Graph's JSON Schema (strict: no
/// property the schema does not declare, except `@odata.*` annotations).
#[test]
fn request_bodies_validate_against_the_graph_schema() {
    let bundle: Value = serde_json::from_str(include_str!(
        "../src/emulator/data/graph-jsonschema-subset.json"
    ))
    .unwrap();
    let defs = bundle["$defs"].clone();
    let check = |def: &str, body: &Value| {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": defs,
            "$ref": format!("#/$defs/{def}"),
            "patternProperties": {"^@odata\\.": {}},
            "unevaluatedProperties": false,
        });
        let v = jsonschema::validator_for(&schema).expect("schema compiles");
        let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{def}: {errors:?}\n{body}");
    };
    let a = ObjectId::new("11111111-1111-4111-8111-111111111111");
    let b = ObjectId::new("22222222-2222-4222-8222-222222222222");
    let key = KeyId::new("33333333-3333-4333-8333-333333333333");
    let cert = certificate(1, "run-1");
    let app_body = graph::AppWrite {
        display_name: Some(APP.into()),
        sign_in_audience: Some("AzureADMyOrg".into()),
        is_fallback_public_client: Some(true),
        required_resource_access: Some(vec![graph::RequiredResourceAccess {
            resource_app_id: GRAPH.into(),
            resource_access: vec![graph::ResourceAccess {
                id: b.to_string(),
                kind: "Role".into(),
            }],
        }]),
        key_credentials: Some(vec![cert.clone()]),
        notes: Some("n".into()),
    };
    let cases = [
        (
            "request:applications.application.UpdateApplicationByUniqueName",
            graph::upsert_application(APP, &app_body),
        ),
        (
            "request:applications.application.UpdateApplication",
            graph::update_application(&a, &app_body),
        ),
        (
            "request:servicePrincipals.servicePrincipal.UpdateServicePrincipalByAppId",
            graph::upsert_service_principal(&AppId::new("x"), APP),
        ),
        (
            "request:applications.application.addPassword",
            graph::add_password(&a, &credential_marker("r"), NOW),
        ),
        (
            "request:applications.application.removePassword",
            graph::remove_password(&a, &key),
        ),
        (
            "request:applications.application.addKey",
            graph::add_key(&a, &cert, "x.y.z"),
        ),
        (
            "request:applications.application.removeKey",
            graph::remove_key(&a, &key, "x.y.z"),
        ),
        (
            "request:applications.CreateRefOwners",
            graph::add_owner(&ctx_base(), &a, &b),
        ),
        (
            "request:servicePrincipals.CreateAppRoleAssignedTo",
            graph::assign_app_role(&b, &a, key.as_str()),
        ),
        (
            "request:oauth2PermissionGrants.oAuth2PermissionGrant.CreateOAuth2PermissionGrant",
            graph::create_grant(&a, &b, &["User.Read".into(), "openid".into()]),
        ),
        (
            "request:oauth2PermissionGrants.oAuth2PermissionGrant.UpdateOAuth2PermissionGrant",
            graph::update_grant("gid", &["User.Read".into()]),
        ),
    ];
    for (def, call) in cases {
        check(def, call.body.as_ref().expect("a body"));
    }
    // And every body actually sent in a full run (plain and inside $batch) passes the emulator's
    // own validation: the run would have failed otherwise; count them for the record.
    let (h, ctx) = harness(EmulatorConfig::default(), "admin");
    run_plan(&h, &ctx, &plan_add_app(&add_app_spec("run-s")))
        .result
        .expect("add-app");
    let with_body = h.sent.borrow().iter().filter(|r| r.body.is_some()).count();
    assert!(with_body >= 5);
}

fn ctx_base() -> String {
    format!("{BASE}/v1.0")
}
