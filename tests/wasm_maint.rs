//! The pure parts of the maintenance tabs (`web::maint`), in headless Chromium: credential rows,
//! what renew will do, the refusal rule of delete, the renewed config file, and the advice per
//! error kind.
#![cfg(target_arch = "wasm32")]

use m365_registrator::engine::error::{Error, GraphError};
use m365_registrator::engine::properties::{self, ParsedConfig};
use m365_registrator::engine::provision::{CredentialInfo, CredentialKind, Credentials};
use m365_registrator::engine::secret::{AppId, ClientSecret, KeyId, ObjectId, PfxPassword};
use m365_registrator::web::maint::{
    add_app_incomplete, compose_config, credential_line, credential_state, renew_due, ui_error,
    ConfigInputs, Op,
};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400;

fn date(unix: i64) -> String {
    m365_registrator::engine::graph::format_datetime(unix)
}

fn cred(kind: CredentialKind, name: &str, end: Option<i64>) -> CredentialInfo {
    let limit = NOW + 90 * DAY;
    CredentialInfo {
        kind,
        key_id: Some(KeyId::new("k")),
        display_name: Some(name.to_string()),
        end: end.map(date),
        made_by_tool: name.starts_with("bacula-m365-registrator"),
        expiring: end.is_some_and(|e| e <= limit),
        expired: end.is_some_and(|e| e <= NOW),
    }
}

#[wasm_bindgen_test]
fn credential_rows() {
    let ok = cred(
        CredentialKind::Secret,
        "bacula-m365-registrator run a",
        Some(NOW + 200 * DAY),
    );
    assert_eq!(credential_state(&ok), "ok");
    assert_eq!(
        credential_line(&ok, NOW),
        "Secret \"bacula-m365-registrator run a\", ends 2026-07-20 (in 200 days): ok, made by this tool"
    );
    let soon = cred(CredentialKind::Certificate, "manual", Some(NOW + 10 * DAY));
    assert_eq!(credential_state(&soon), "expiring");
    assert!(credential_line(&soon, NOW).ends_with("expiring, not made by this tool (left alone)"));
    let gone = cred(CredentialKind::Secret, "old", Some(NOW - 3 * DAY));
    assert_eq!(credential_state(&gone), "expired");
    assert!(credential_line(&gone, NOW).contains("ended 2025-12-29 (3 days ago)"));
    let unknown = cred(CredentialKind::Secret, "x", None);
    assert_eq!(credential_state(&unknown), "unknown");
    assert!(credential_line(&unknown, NOW).contains("no end date"));
}

#[wasm_bindgen_test]
fn renew_rule_90_days() {
    let healthy = vec![
        cred(CredentialKind::Secret, "s", Some(NOW + 400 * DAY)),
        cred(CredentialKind::Certificate, "c", Some(NOW + 400 * DAY)),
    ];
    assert_eq!(renew_due(&healthy, false, NOW), (false, false));
    assert_eq!(renew_due(&healthy, true, NOW), (true, true));
    let secret_soon = vec![
        cred(CredentialKind::Secret, "s", Some(NOW + 30 * DAY)),
        cred(CredentialKind::Certificate, "c", Some(NOW + 400 * DAY)),
    ];
    assert_eq!(renew_due(&secret_soon, false, NOW), (true, false));
    // One valid secret beyond the window is enough, whoever made it.
    let mixed = vec![
        cred(CredentialKind::Secret, "s", Some(NOW - DAY)),
        cred(CredentialKind::Secret, "manual", Some(NOW + 100 * DAY)),
    ];
    assert_eq!(renew_due(&mixed, false, NOW), (false, true));
    assert_eq!(renew_due(&[], false, NOW), (true, true));
}

#[wasm_bindgen_test]
fn delete_refuses_only_an_unfinished_add_app() {
    assert!(add_app_incomplete(Some(
        r#"{"run_id":"r","created":[],"delivered":[],"complete":false}"#
    )));
    assert!(!add_app_incomplete(Some(
        r#"{"run_id":"r","created":["k"],"delivered":[],"complete":true}"#
    )));
    assert!(!add_app_incomplete(None));
    assert!(!add_app_incomplete(Some("not json")));
}

fn new_secret() -> Credentials {
    Credentials {
        app_object_id: ObjectId::new("app-obj"),
        app_id: AppId::new("1587ba33-8eef-4512-bcb1-6d65fd393f51"),
        sp_object_id: Some(ObjectId::new("8cee7605-0d5e-42b6-b269-c39f3411b5b9")),
        tenant_id: None,
        secret: ClientSecret::new("NEW-SECRET"),
        secret_key_id: KeyId::new("k-new"),
        secret_end: None,
    }
}

fn inputs<'a>(
    secret: Option<&'a Credentials>,
    pfx: Option<(&'a str, &'a PfxPassword)>,
    current: Option<&'a ParsedConfig>,
    current_pfx: Option<(&'a str, &'a PfxPassword)>,
) -> ConfigInputs<'a> {
    ConfigInputs {
        new_secret: secret,
        new_pfx: pfx,
        current,
        current_pfx,
        config_dir: "/opt/bacula/etc/m365/contoso/",
        tenant_id: "e4a1df55-de8a-4a83-945a-bfaabb6fa166",
        app_name: "bacula-m365-plugin-standalone",
        app_id: Some("1587ba33-8eef-4512-bcb1-6d65fd393f51"),
        sp_id: Some("8cee7605-0d5e-42b6-b269-c39f3411b5b9"),
    }
}

fn current_config(appid: &str) -> ParsedConfig {
    properties::parse_config(&format!(
        "#x\nsecret=OLD-SECRET\nappid={appid}\nobjectid=8cee7605-0d5e-42b6-b269-c39f3411b5b9\ntenant=t\nsharepoint_certificate_path=/etc/old.pfx\nsharepoint_certificate_password=OLDPW\n"
    ))
    .unwrap()
}

#[wasm_bindgen_test]
fn renewed_config_both_renewed() {
    let s = new_secret();
    let pw = PfxPassword::new("NEWPW");
    let c = compose_config(&inputs(Some(&s), Some(("app-cert.pfx", &pw)), None, None));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let cfg = c.config.unwrap();
    assert_eq!(cfg.secret.expose(), "NEW-SECRET");
    assert_eq!(
        cfg.certificate_path,
        "/opt/bacula/etc/m365/contoso/app-cert.pfx"
    );
    assert_eq!(cfg.certificate_password.expose(), "NEWPW");
    assert_eq!(
        cfg.objectid.as_str(),
        "8cee7605-0d5e-42b6-b269-c39f3411b5b9"
    );
    assert_eq!(cfg.tenant.as_str(), "e4a1df55-de8a-4a83-945a-bfaabb6fa166");
}

#[wasm_bindgen_test]
fn renewed_config_secret_only() {
    let s = new_secret();
    // The current config gives the certificate lines.
    let cur = current_config("1587ba33-8eef-4512-bcb1-6d65fd393f51");
    let c = compose_config(&inputs(Some(&s), None, Some(&cur), None));
    let cfg = c.config.unwrap();
    assert_eq!(cfg.secret.expose(), "NEW-SECRET");
    assert_eq!(cfg.certificate_path, "/etc/old.pfx");
    assert_eq!(cfg.certificate_password.expose(), "OLDPW");
    assert!(c.warnings.is_empty());
    // Or the current PFX and its password.
    let pw = PfxPassword::new("PFXPW");
    let c = compose_config(&inputs(Some(&s), None, None, Some(("mine.pfx", &pw))));
    let cfg = c.config.unwrap();
    assert_eq!(
        cfg.certificate_path,
        "/opt/bacula/etc/m365/contoso/mine.pfx"
    );
    assert_eq!(cfg.certificate_password.expose(), "PFXPW");
    // Neither: a warning says which lines to copy.
    let c = compose_config(&inputs(Some(&s), None, None, None));
    assert_eq!(c.config.unwrap().certificate_password.expose(), "");
    assert!(
        c.warnings[0].contains("sharepoint_certificate_password"),
        "{:?}",
        c.warnings
    );
    // A config of another app is not used.
    let other = current_config("99999999-8eef-4512-bcb1-6d65fd393f51");
    let c = compose_config(&inputs(Some(&s), None, Some(&other), None));
    assert!(
        c.warnings.iter().any(|w| w.contains("another app")),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("copy")),
        "{:?}",
        c.warnings
    );
}

#[wasm_bindgen_test]
fn renewed_config_certificate_only() {
    let pw = PfxPassword::new("NEWPW");
    let c = compose_config(&inputs(None, Some(("app-cert.pfx", &pw)), None, None));
    assert!(c.config.is_none());
    assert!(c.warnings[0].starts_with("The secret was not renewed"));
    let cur = current_config("1587ba33-8eef-4512-bcb1-6d65fd393f51");
    let c = compose_config(&inputs(None, Some(("app-cert.pfx", &pw)), Some(&cur), None));
    let cfg = c.config.unwrap();
    assert_eq!(cfg.secret.expose(), "OLD-SECRET");
    assert_eq!(cfg.certificate_password.expose(), "NEWPW");
    // Nothing renewed: no file.
    let c = compose_config(&inputs(None, None, Some(&cur), None));
    assert!(c.config.is_none() && c.warnings.is_empty());
}

fn graph_error(status: u16, code: &str) -> Box<GraphError> {
    Box::new(GraphError {
        step: "secret".into(),
        status,
        code: code.into(),
        message: String::new(),
        request_id: Some("req-1".into()),
        client_request_id: None,
        date: None,
    })
}

#[wasm_bindgen_test]
fn advice_per_error_kind() {
    let u = ui_error(
        &Error::Policy(graph_error(400, "CredentialInvalidLifetimeAsPerAppPolicy")),
        Op::Renew,
    );
    assert_eq!(u.kind, "policy");
    assert!(u.advice.contains("shorter secret lifetime"), "{}", u.advice);
    assert!(u.diagnostics.unwrap().contains("req-1"));
    let u = ui_error(&Error::RegistratorMissing, Op::Check);
    assert_eq!(u.kind, "registrator-missing");
    assert!(
        u.advice.contains("Authorize the registrator") && u.advice.contains("B-5"),
        "{}",
        u.advice
    );
    let u = ui_error(
        &Error::InvalidInput("no application named x in this tenant: run Add app first".into()),
        Op::Renew,
    );
    assert!(
        u.advice.starts_with("No application named x"),
        "{}",
        u.advice
    );
    let u = ui_error(&Error::NotSignedIn, Op::Delete);
    assert!(
        u.advice.contains("Delete the registrator again"),
        "{}",
        u.advice
    );
    let u = ui_error(
        &Error::Transport {
            step: "grants".into(),
            detail: "x".into(),
        },
        Op::Repair,
    );
    assert!(u.advice.contains("Press Repair again"), "{}", u.advice);
}
