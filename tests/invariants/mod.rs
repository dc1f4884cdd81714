//! Invariants shared by the property tests (`tests/prop_*.rs`) and the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, which include this file by path): each check feeds arbitrary input
//! to engine code and panics when the engine breaks a promise. Engine only: must not import
//! `web` or `emulator`.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use m365_registrator::engine::auth::{
    aadsts_code, check_state, decode_id_token, decode_jwt_claims, parse_redirect, parse_tenant,
    parse_token_response, Redirect, StateCheck, TenantError, MAX_VALUE_BYTES,
};
use m365_registrator::engine::crypto::{build_pfx, read_pfx, CryptoError, PfxKind};
use m365_registrator::engine::error::{Error, GraphError};
use m365_registrator::engine::graph::{self, GraphCtx, NewKeyCredential, Reply, Verdict};
use m365_registrator::engine::http::{
    encode_component, HttpClient, HttpRequest, HttpResponse, Sleep, TransportError,
};
use m365_registrator::engine::permissions::{ResourcePermissions, Service};
use m365_registrator::engine::properties::{
    java_date_utc, parse_config, read_properties, render_config, write_properties, BaculaConfig,
    PropertiesError,
};
use m365_registrator::engine::provision::{
    self, AddAppSpec, CheckSpec, CheckTarget, DeleteSpec, Event, Operation, PermissionReq, Plan,
    RenewSpec, ResumeInfo, RunState,
};
use m365_registrator::engine::retry::{next_delay, RetryPolicy, RetryReason};
use m365_registrator::engine::secret::{
    AccessToken, AppId, ClientSecret, IdToken, KeyId, ObjectId, PfxPassword, PrivateKeyDer,
    TenantId,
};

// ---------------------------------------------------------------------------------------------
// A byte source: turns fuzzer (or proptest) bytes into structured choices. Exhausted = zeros.

pub struct Source<'a> {
    data: &'a [u8],
}

impl<'a> Source<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Source { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
    /// Up to `max` bytes as text (invalid UTF-8 replaced).
    pub fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

// ---------------------------------------------------------------------------------------------
// Redirect and tenant input (engine::auth)

/// What [`clip`](m365_registrator::engine::auth) may return at most: the limit plus `…`.
const MAX_CLIPPED: usize = MAX_VALUE_BYTES + '…'.len_utf8();

/// What the parser promises to give back for a value it was sent: the value itself up to
/// [`MAX_VALUE_BYTES`], else its longest prefix within that limit (on a character boundary)
/// marked with `…`. (Found by `cargo fuzz` target `redirect`: states longer than the limit.)
fn expected_value(sent: &str) -> String {
    if sent.len() <= MAX_VALUE_BYTES {
        return sent.to_string();
    }
    let end = (0..=MAX_VALUE_BYTES)
        .rev()
        .find(|i| sent.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &sent[..end])
}

fn clipped(v: &Option<String>) {
    if let Some(s) = v {
        assert!(!s.is_empty(), "an empty value counts as absent");
        assert!(s.len() <= MAX_CLIPPED, "value of {} bytes", s.len());
    }
}

/// `parse_redirect` on any query and fragment: never panics, is deterministic, keeps every
/// value within the clip limit, never echoes input in a `Malformed` reason, and does not care
/// which of the two channels carries the parameters.
pub fn redirect(query: &str, fragment: &str) -> Redirect {
    let r = parse_redirect(query, fragment);
    assert_eq!(r, parse_redirect(query, fragment), "deterministic");
    match &r {
        Redirect::None => {}
        Redirect::Code { code, state } => {
            let c = code.expose();
            assert!(
                !c.is_empty() && c.len() <= 16 * 1024,
                "code of {} bytes",
                c.len()
            );
            clipped(state);
            if let Some(s) = state {
                assert_eq!(check_state(Some(s), Some(s)), StateCheck::Match);
            }
        }
        Redirect::Consent {
            tenant,
            scope,
            state,
            ..
        } => {
            clipped(tenant);
            clipped(scope);
            clipped(state);
        }
        Redirect::Error(e) => {
            assert!(!e.error.is_empty());
            assert_eq!(e.error.trim(), e.error, "error is trimmed");
            assert!(e.error.len() <= MAX_CLIPPED);
            for v in [
                &e.description,
                &e.error_uri,
                &e.error_subcode,
                &e.trace_id,
                &e.correlation_id,
                &e.timestamp,
                &e.state,
            ] {
                clipped(v);
            }
            if let Some(n) = e.aadsts {
                assert!(n < 1_000_000_000, "at most nine digits");
            }
            let kind = e.kind();
            assert!(!kind.advice().is_empty());
            let _ = kind.advice_for("client", "https://page/");
        }
        Redirect::Malformed { reason } => {
            let known = [
                "OAuth parameters in both the query and the fragment",
                "empty code",
                "code too long",
                "state without code, error or admin_consent",
            ];
            let dup = reason
                .strip_prefix("parameter ")
                .and_then(|r| r.strip_suffix(" appears twice"))
                .is_some_and(|k| {
                    k.len() < 20 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
            assert!(
                known.contains(&reason.as_str()) || dup,
                "reason echoes input: {reason:?}"
            );
        }
    }
    // The parameters may come in the query or in the fragment: same result.
    let plain = |s: &str| !s.starts_with(['?', '#']);
    if fragment.is_empty() && plain(query) {
        assert_eq!(r, parse_redirect("", query), "query vs fragment");
    }
    if query.is_empty() && plain(fragment) {
        assert_eq!(r, parse_redirect(fragment, ""), "fragment vs query");
    }
    r
}

/// A sign-in answer built with the page's own encoder reads back to the same code and state.
pub fn redirect_code_round_trip(code: &str, state: &str, in_fragment: bool) {
    let raw = format!(
        "code={}&state={}&session_state=x",
        encode_component(code),
        encode_component(state)
    );
    let (q, f) = if in_fragment {
        ("", raw.as_str())
    } else {
        (raw.as_str(), "")
    };
    let got = redirect(q, f);
    if code.is_empty() {
        assert_eq!(
            got,
            Redirect::Malformed {
                reason: "empty code".into()
            }
        );
        return;
    }
    match got {
        Redirect::Code { code: c, state: s } => {
            assert_eq!(c.expose(), code);
            assert_eq!(s, Some(expected_value(state)).filter(|s| !s.is_empty()));
        }
        other => panic!("{other:?}"),
    }
}

/// An error answer (one-line description, Entra's trace lines appended) reads back field by field.
pub fn redirect_error_round_trip(error: &str, message: &str, trace: &str, state: &str) {
    let description = format!("{message}\r\nTrace ID: {trace}\r\nTimestamp: 2026-06-01 10:00:00Z");
    let raw = format!(
        "error={}&error_description={}&state={}&admin_consent=True",
        encode_component(error),
        encode_component(&description),
        encode_component(state)
    );
    match redirect(&raw, "") {
        Redirect::Error(e) => {
            let want_error = if error.trim().is_empty() {
                "unknown_error"
            } else {
                error.trim()
            };
            assert_eq!(e.error, want_error);
            assert_eq!(
                e.description.as_deref(),
                Some(message.trim()).filter(|m| !m.is_empty())
            );
            assert_eq!(
                e.trace_id.as_deref(),
                Some(trace.trim()).filter(|t| !t.is_empty())
            );
            assert_eq!(e.timestamp.as_deref(), Some("2026-06-01 10:00:00Z"));
            assert_eq!(
                e.state,
                Some(expected_value(state)).filter(|s| !s.is_empty())
            );
            assert!(e.admin_consent);
            assert_eq!(e.aadsts, aadsts_code(&description));
        }
        other => panic!("{other:?}"),
    }
}

/// `parse_tenant` on any input: an accepted tenant is the trimmed, lower-cased input made only of
/// `a-z 0-9 . -` (so the page can put it in a URL path and in text without escaping), parsing is
/// idempotent and case-blind, and no advice text contains `<` or more of the input than a
/// suggestion that itself parses.
pub fn tenant(input: &str) {
    match parse_tenant(input) {
        Ok(t) => {
            let s = t.as_str();
            assert_eq!(s, input.trim().to_ascii_lowercase());
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'-'),
                "{s:?}"
            );
            assert!(t.is_guid() || s.contains('.'));
            assert_eq!(parse_tenant(s), Ok(t.clone()));
            assert_eq!(parse_tenant(&s.to_ascii_uppercase()), Ok(t.clone()));
            assert_eq!(t.to_string(), s);
        }
        Err(e) => {
            let advice = e.advice();
            assert!(!advice.contains('<'), "{advice:?}");
            match &e {
                TenantError::Url {
                    suggestion: Some(s),
                }
                | TenantError::Email {
                    suggestion: Some(s),
                } => assert_eq!(
                    parse_tenant(s).map(|t| t.as_str().to_string()),
                    Ok(s.clone())
                ),
                TenantError::MultiTenant(s) => {
                    assert!(["common", "organizations", "consumers"].contains(&s.as_str()))
                }
                TenantError::Empty => assert!(input.trim().is_empty()),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Java .properties (engine::properties)

/// `write_properties` then `read_properties` gives back exactly the pairs, in order; the text is
/// ASCII; the comment and date lines never turn into entries.
pub fn properties_round_trip(comment: Option<&str>, date_line: &str, pairs: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = write_properties(comment, date_line, &refs);
    assert!(text.is_ascii(), "the writer's output is ASCII");
    let back = read_properties(&text).expect("the writer's own output reads");
    assert_eq!(back, pairs, "round trip of {text:?}");
}

/// The config file: `render_config` then `parse_config` gives back the same six values and no
/// other key, whatever the values and the time.
pub fn config_round_trip(values: &[String; 6], now_unix: i64) {
    let cfg = BaculaConfig {
        secret: ClientSecret::new(values[0].clone()),
        appid: AppId::new(values[1].clone()),
        objectid: ObjectId::new(values[2].clone()),
        tenant: TenantId::new(values[3].clone()),
        certificate_path: values[4].clone(),
        certificate_password: PfxPassword::new(values[5].clone()),
    };
    let text = render_config(&cfg, now_unix);
    let parsed = parse_config(&text).expect("own config reads");
    assert!(parsed.other.is_empty(), "{:?}", parsed.other);
    assert_eq!(parsed.into_config().expect("all keys"), cfg);
    let date = java_date_utc(now_unix);
    assert!(date.is_ascii() && date.contains(" UTC "), "{date}");
}

/// Physical line count as the reader counts lines (`\r\n` is one break).
fn line_breaks(text: &str) -> usize {
    let b = text.as_bytes();
    b.iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\r' || (c == b'\n' && (i == 0 || b[i - 1] != b'\r')))
        .count()
}

/// `read_properties` on any text: never panics; what it reads, written again, reads the same
/// (the writer can store anything the reader accepts); `parse_config` keeps the last value of a
/// repeated key, like Java; an error names a line that exists.
pub fn properties_read(text: &str) {
    match read_properties(text) {
        Ok(entries) => {
            let refs: Vec<(&str, &str)> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let again = write_properties(Some("re-written"), "date", &refs);
            assert_eq!(read_properties(&again).expect("re-written reads"), entries);
            let cfg = parse_config(text).expect("same reader");
            let last = |key: &str| {
                entries
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(cfg.secret.map(|s| s.expose().to_string()), last("secret"));
            assert_eq!(cfg.appid.map(|s| s.as_str().to_string()), last("appid"));
            assert_eq!(cfg.certificate_path, last("sharepoint_certificate_path"));
        }
        Err(PropertiesError::MalformedUnicode { line } | PropertiesError::LineTooLong { line }) => {
            assert!(line >= 1 && line <= line_breaks(text) + 1, "line {line}");
            assert!(parse_config(text).is_err());
        }
        Err(e @ PropertiesError::MissingKey(_)) => panic!("read_properties returned {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Graph, token endpoint and retry decoders (engine::graph, auth, error, permissions, retry)

fn check_verdict<T: std::fmt::Debug>(
    name: &str,
    step: &str,
    reply: &Reply,
    fresh: bool,
    v: &Verdict<T>,
) {
    let ra = reply.retry_after_ms();
    match reply.status {
        429 => assert!(
            matches!(v, Verdict::Retry(RetryReason::Throttled { retry_after_ms }) if *retry_after_ms == ra),
            "{name}: 429 must be retried with its Retry-After: {v:?}"
        ),
        500 | 502 | 503 | 504 => assert!(
            matches!(v, Verdict::Retry(RetryReason::Unavailable { retry_after_ms }) if *retry_after_ms == ra),
            "{name}: {} must be retried: {v:?}",
            reply.status
        ),
        0 => assert!(
            matches!(v, Verdict::Fail(Error::Bug(_))),
            "{name}: status 0 is a broken sub-response: {v:?}"
        ),
        _ => {
            if let Verdict::Retry(r) = v {
                assert_eq!(*r, RetryReason::Replication, "{name}: {v:?}");
                assert!(
                    fresh,
                    "{name}: replication wait for an object not written by this run"
                );
            }
        }
    }
    if let Verdict::Fail(e) = v {
        check_error(e);
        if let Error::Graph(g) | Error::Policy(g) = e {
            assert_eq!(g.status, reply.status, "{name}");
            assert_eq!(g.step, step, "{name}");
        }
    }
}

fn check_error(e: &Error) {
    let _ = e.kind();
    let _ = e.step();
    let d = e.diagnostics();
    assert!(!d.contains(TOKEN), "diagnostics hold the access token");
    if let Error::Graph(g) | Error::Policy(g) = e {
        check_graph_error(g);
    }
}

fn check_graph_error(g: &GraphError) {
    assert!(!g.code.is_empty());
    assert!(
        g.message.chars().count() <= 500,
        "message is cut to 500 characters"
    );
    let _ = g.to_string();
}

/// Every classifier on one reply (a plain response or a `$batch` sub-response).
fn classify_all(step: &str, reply: &Reply) {
    for fresh in [false, true] {
        macro_rules! check {
            ($name:literal, $v:expr) => {
                check_verdict($name, step, reply, fresh, &$v)
            };
        }
        check!("me", graph::classify_me(step, reply));
        check!("organization", graph::classify_organization(step, reply));
        check!("sp", graph::classify_service_principal(step, reply, fresh));
        check!("app", graph::classify_application(step, reply, fresh));
        check!("app list", graph::classify_application_list(step, reply));
        check!(
            "upsert app",
            graph::classify_upsert_application(step, reply)
        );
        check!("no content", graph::classify_no_content(step, reply, fresh));
        check!(
            "upsert sp",
            graph::classify_upsert_service_principal(step, reply, fresh)
        );
        check!(
            "add password",
            graph::classify_add_password(step, reply, fresh)
        );
        check!("add key", graph::classify_add_key(step, reply));
        check!(
            "remove credential",
            graph::classify_remove_credential(step, reply)
        );
        check!("add owner", graph::classify_add_owner(step, reply, fresh));
        check!(
            "assign",
            graph::classify_assign_app_role(step, reply, fresh)
        );
        check!(
            "assignments",
            graph::classify_app_role_assignments(step, reply, fresh)
        );
        check!("grants", graph::classify_grants(step, reply, fresh));
        check!(
            "create grant",
            graph::classify_create_grant(step, reply, fresh)
        );
        check!("delete", graph::classify_delete(step, reply));
    }
    let success = (200..300).contains(&reply.status);
    if success {
        assert_eq!(
            graph::classify_no_content(step, reply, false),
            Verdict::Done(())
        );
        assert_eq!(
            graph::classify_remove_credential(step, reply),
            Verdict::Done(())
        );
        assert_eq!(
            graph::classify_delete(step, reply),
            Verdict::Done(graph::Added::Created)
        );
    }
    if reply.status == 404 {
        assert_eq!(
            graph::classify_remove_credential(step, reply),
            Verdict::Done(())
        );
        assert_eq!(
            graph::classify_delete(step, reply),
            Verdict::Done(graph::Added::AlreadyPresent)
        );
        assert_eq!(
            graph::classify_service_principal(step, reply, false),
            Verdict::Done(None)
        );
        assert_eq!(
            graph::classify_application(step, reply, false),
            Verdict::Done(None)
        );
    }
    let _ = graph::looks_unreplicated(reply);
    let _ = graph::looks_already_exists(reply);
    check_graph_error(&GraphError::from_parts(
        step,
        reply.status,
        &reply.headers,
        &reply.body,
    ));
    let perms = ResourcePermissions::from_service_principal(&reply.body);
    for (v, id) in perms.app_roles.iter().chain(&perms.scopes) {
        let _ = (v.len(), id.len());
    }
}

/// Everything that reads an HTTP answer from Graph or the token endpoint, on one answer:
/// never panics; 429 and 5xx are always retried with the server's `Retry-After`; status 0 is a
/// bug; a replication wait happens only for objects this run wrote; 2xx and 404 mean what the
/// classifiers promise; errors keep the status and step and never the token.
pub fn graph_response(status: u16, headers: &[(String, String)], body: &str) {
    let resp = HttpResponse {
        status,
        headers: headers.to_vec(),
        body: body.to_string(),
    };
    let reply = Reply::from_response(&resp);
    if let Some(ms) = reply.retry_after_ms() {
        assert!(ms % 1000 == 0 || ms == u64::MAX, "seconds in ms: {ms}");
    }
    classify_all("step", &reply);
    check_graph_error(&GraphError::from_response("step", &resp));
    match graph::split_batch(&resp) {
        Ok(parts) => {
            assert_eq!(status, 200, "only a 200 $batch is split");
            for (_, part) in &parts {
                classify_all("step", part);
            }
        }
        Err(whole) => assert!(
            (whole.status == status && status != 200) || (status == 200 && whole.status == 502),
            "{} from {status}",
            whole.status
        ),
    }
    // The token endpoint.
    match parse_token_response(&resp) {
        Ok(t) => {
            assert!((200..300).contains(&status));
            assert!(!t.access_token.expose().is_empty());
        }
        Err(e) => {
            assert!(!e.error.is_empty());
            assert!(e.error.len() <= MAX_CLIPPED && e.description.len() <= MAX_CLIPPED);
            let _ = e.kind().advice();
            check_error(&Error::Entra(Box::new(e)));
        }
    }
    // An id token and a Graph date are text from the network too.
    if let Ok(v) = decode_jwt_claims(body) {
        assert!(v.is_object());
    }
    let _ = decode_id_token(&IdToken::new(body));
    if let Some(t) = graph::parse_datetime(body) {
        // 0000-01-01 .. 9999-12-31 (plus an offset of at most ±99:99) formats and reads back.
        if (-62_167_219_200..=253_402_300_799).contains(&t) {
            assert_eq!(graph::parse_datetime(&graph::format_datetime(t)), Some(t));
        }
    }
    let _ = aadsts_code(body);
}

/// `next_delay` for any policy and reason: never panics (no overflow); a `Retry-After` within
/// the policy is honoured exactly; waits stay within the policy's caps and budget.
pub fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    reason: RetryReason,
    elapsed: u64,
    jitter: u32,
) {
    let d = next_delay(policy, attempt, reason, elapsed, jitter);
    let attempt = attempt.max(1);
    match reason {
        RetryReason::Replication => match d {
            Some(ms) => {
                assert!(elapsed < policy.replication_budget_ms);
                assert!(ms <= policy.replication_max_ms, "{ms}");
                assert!(ms <= policy.replication_budget_ms - elapsed, "{ms}");
            }
            None => assert!(elapsed >= policy.replication_budget_ms),
        },
        RetryReason::Throttled { retry_after_ms } | RetryReason::Unavailable { retry_after_ms } => {
            if attempt >= policy.max_attempts {
                assert_eq!(d, None);
            } else {
                match retry_after_ms {
                    Some(ra) if ra > policy.max_retry_after_ms => assert_eq!(d, None),
                    Some(ra) => assert_eq!(d, Some(ra)),
                    None => backoff_bounds(policy, attempt, d),
                }
            }
        }
        RetryReason::Network => {
            if attempt >= policy.max_attempts {
                assert_eq!(d, None);
            } else {
                backoff_bounds(policy, attempt, d);
            }
        }
    }
    let _ = reason.text();
}

fn backoff_bounds(policy: &RetryPolicy, attempt: u32, d: Option<u64>) {
    let ms = d.expect("a computed backoff");
    let base = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << (attempt - 1).min(20))
        .min(policy.max_backoff_ms);
    assert!(
        ms >= base && ms <= policy.max_backoff_ms,
        "{ms} for base {base}"
    );
}

// ---------------------------------------------------------------------------------------------
// The driver (engine::provision::run) against a scripted Graph whose answers come from bytes.

/// The access token the driver sends; must never appear in an error.
const TOKEN: &str = "tok-5e3f0c1d-never-shown";

/// Values a Graph answer may carry, so that decoded JSON often means something to the driver.
const WORDS: &[&str] = &[
    "00000003-0000-0000-c000-000000000000",
    "00000003-0000-0ff1-ce00-000000000000",
    "8ed4fad3-3f63-44fb-b7e0-e324895d7df9",
    "6f1c3b1e-2d4a-4c8e-9f10-0a1b2c3d4e5f",
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "bacula-m365-plugin-standalone",
    "Microsoft Graph",
    "User.Read.All",
    "User.Read",
    "Sites.FullControl.All",
    "Mail.ReadWrite",
    "Chat.ReadWrite",
    "Role",
    "Scope",
    "AllPrincipals",
    "Request_ResourceNotFound",
    "Request_BadRequest",
    "NoBackingApplicationObject",
    "Authorization_RequestDenied",
    "CredentialInvalidLifetimeAsPerAppPolicy",
    "Request_MultipleObjectsWithSameKeyValue",
    "ObjectConflict",
    "One or more added object references already exist",
    "does not exist",
    "does not reference a valid application",
    "2026-06-01T00:00:00Z",
    "2099-01-01T00:00:00.1234567Z",
    "Made by bacula-m365-registrator run r1",
    "contoso.onmicrosoft.com",
    "admin@contoso.onmicrosoft.com",
    "",
];

const KEYS: &[&str] = &[
    "value",
    "id",
    "appId",
    "uniqueName",
    "displayName",
    "error",
    "code",
    "message",
    "innerError",
    "request-id",
    "keyId",
    "secretText",
    "startDateTime",
    "endDateTime",
    "passwordCredentials",
    "keyCredentials",
    "requiredResourceAccess",
    "resourceAppId",
    "resourceAccess",
    "type",
    "appRoles",
    "oauth2PermissionScopes",
    "isEnabled",
    "principalId",
    "resourceId",
    "appRoleId",
    "clientId",
    "consentType",
    "scope",
    "responses",
    "status",
    "headers",
    "body",
    "tenantId",
    "verifiedDomains",
    "name",
    "isInitial",
    "userPrincipalName",
    "customKeyIdentifier",
    "servicePrincipalId",
];

fn json_value(src: &mut Source, depth: u32) -> Value {
    let tag = src.byte() % if depth == 0 { 5 } else { 9 };
    match tag {
        0 => Value::Null,
        1 => Value::Bool(src.byte() & 1 == 1),
        2 => match src.byte() % 4 {
            0 => json!(src.u32()),
            1 => json!(-(i64::from(src.u32()))),
            2 => json!(f64::from(src.u32()) / 7.0),
            _ => json!(src.u64()),
        },
        3 | 4 => Value::String(src.pick(WORDS).to_string()),
        5 => Value::String(src.text(24)),
        6 => Value::Array(
            (0..src.below(4))
                .map(|_| json_value(src, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..src.below(7) {
                let k = if src.byte().is_multiple_of(8) {
                    src.text(8)
                } else {
                    src.pick(KEYS).to_string()
                };
                m.insert(k, json_value(src, depth - 1));
            }
            Value::Object(m)
        }
    }
}

const STATUSES: &[u16] = &[
    200, 200, 201, 204, 204, 400, 401, 403, 404, 404, 409, 412, 429, 500, 502, 503, 504, 0,
];
const RETRY_AFTERS: &[&str] = &[
    "0",
    "1",
    "7",
    " 3 ",
    "-1",
    "abc",
    "99999999999999999999",
    "18446744073709551",
];

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(src: &mut Source) -> Answer {
    let status = if src.byte().is_multiple_of(16) {
        src.u16()
    } else {
        src.pick(STATUSES)
    };
    let mut headers = Vec::new();
    if src.byte().is_multiple_of(4) {
        headers.push((
            "Retry-After".to_string(),
            src.pick(RETRY_AFTERS).to_string(),
        ));
    }
    if src.byte().is_multiple_of(8) {
        headers.push(("request-id".to_string(), src.text(12)));
    }
    let body = match src.byte() % 8 {
        0 => String::new(),
        1 => src.text(64),
        _ => json_value(src, 4).to_string(),
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A Graph whose answers are read from bytes; a `$batch` gets one sub-answer per request id
/// (sometimes dropped, duplicated or renamed). Out of bytes: every request fails in transport,
/// so every run ends.
struct ScriptedGraph<'a> {
    src: RefCell<Source<'a>>,
    sent: Cell<u32>,
}

impl HttpClient for ScriptedGraph<'_> {
    fn send(&self, req: HttpRequest) -> impl Future<Output = Result<HttpResponse, TransportError>> {
        self.sent.set(self.sent.get() + 1);
        let expected_auth = format!("Bearer {TOKEN}");
        assert_eq!(
            req.get_header("Authorization"),
            Some(expected_auth.as_str())
        );
        assert!(req.get_header("client-request-id").is_some());
        let mut src = self.src.borrow_mut();
        let out = if src.is_empty() || src.byte().is_multiple_of(32) {
            Err(TransportError("scripted drop".into()))
        } else if req.url.ends_with("/$batch") {
            let body: Value =
                serde_json::from_str(req.body.as_deref().unwrap_or("")).expect("batch body");
            let ids: Vec<String> = body["requests"]
                .as_array()
                .expect("requests")
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_string())
                .collect();
            assert!(
                !ids.is_empty() && ids.len() <= 20,
                "a $batch holds 1..=20 requests"
            );
            if src.byte().is_multiple_of(8) {
                let a = answer(&mut src);
                Ok(HttpResponse {
                    status: a.status,
                    headers: a.headers,
                    body: a.body,
                })
            } else {
                let mut parts = Vec::new();
                for id in &ids {
                    let a = answer(&mut src);
                    let id = match src.byte() % 16 {
                        0 => continue,
                        1 => json!(src.text(4)),
                        2 => json!(id.parse::<u64>().unwrap_or(7)),
                        _ => json!(id),
                    };
                    let body: Value =
                        serde_json::from_str(&a.body).unwrap_or(Value::String(a.body));
                    let headers: Map<String, Value> = a
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    parts.push(
                        json!({"id": id, "status": a.status, "headers": headers, "body": body}),
                    );
                    if src.byte().is_multiple_of(16) {
                        let dup = parts[parts.len() - 1].clone();
                        parts.push(dup);
                    }
                }
                Ok(HttpResponse {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: json!({ "responses": parts }).to_string(),
                })
            }
        } else {
            let a = answer(&mut src);
            Ok(HttpResponse {
                status: a.status,
                headers: a.headers,
                body: a.body,
            })
        };
        std::future::ready(out)
    }
}

impl Sleep for ScriptedGraph<'_> {
    fn sleep(&self, _millis: u64) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// Polls a future whose I/O is always ready (the scripted Graph) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000_000 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the driver is pending on ready I/O");
}

/// A certificate credential for specs (only its base64 travels; no real certificate needed).
fn new_cert() -> NewKeyCredential {
    NewKeyCredential {
        key_base64: "MIIBfake".into(),
        display_name: "CN=bacula-m365-plugin-standalone".into(),
        start_unix: 1_780_000_000,
        end_unix: 1_840_000_000,
    }
}

fn plan_from(src: &mut Source) -> Plan {
    let services = Service::all();
    let chosen: Vec<Service> = services
        .iter()
        .copied()
        .filter(|_| src.byte() & 1 == 1)
        .collect();
    let perms =
        PermissionReq::from_manifest(&m365_registrator::engine::permissions::manifest(&chosen));
    let now = 1_780_000_000 + i64::from(src.u16()) * 86_400;
    match src.byte() % 6 {
        0 | 1 => {
            let mut spec = AddAppSpec::new(perms, "r1", now);
            if src.byte() & 1 == 1 {
                spec.certificate = Some(new_cert());
            }
            if src.byte().is_multiple_of(4) {
                spec.resume = Some(ResumeInfo {
                    run_id: "r0".into(),
                    undelivered_secret_key_ids: vec![KeyId::new(
                        "11111111-1111-4111-8111-111111111111",
                    )],
                    delivered_secret_key_ids: vec![KeyId::new(
                        "22222222-2222-4222-8222-222222222222",
                    )],
                });
            }
            provision::plan_add_app(&spec)
        }
        2 | 3 => {
            let target = if src.byte() & 1 == 1 {
                CheckTarget::ServicePrincipal(ObjectId::new("22222222-2222-4222-8222-222222222222"))
            } else {
                CheckTarget::AppName("bacula-m365-plugin-standalone".into())
            };
            let spec = CheckSpec {
                target,
                permissions: perms,
                now_unix: now,
            };
            if src.byte() & 1 == 1 {
                provision::plan_check(&spec)
            } else {
                provision::plan_repair(&spec)
            }
        }
        4 => provision::plan_renew(&RenewSpec {
            app_name: "bacula-m365-plugin-standalone".into(),
            permissions: perms,
            run_id: "r2".into(),
            now_unix: now,
            force: src.byte() & 1 == 1,
            secret_lifetime_days: u32::from(src.byte()) * 4,
            new_certificate: (src.byte() & 1 == 1).then(new_cert),
            current_key: None,
        }),
        _ => provision::plan_delete_registrator(&DeleteSpec::default()),
    }
}

/// Runs a plan (chosen by the bytes) against the scripted Graph, then once more from the state
/// it left: never panics, always ends, every event and error renders, no error shows the token,
/// and a finished add-app either issued credentials or says the app was already set up.
pub fn driver(data: &[u8]) {
    let mut src = Source::new(data);
    let plan = plan_from(&mut src);
    let graph = ScriptedGraph {
        src: RefCell::new(src),
        sent: Cell::new(0),
    };
    let ctx = GraphCtx {
        base: "https://graph.microsoft.com/v1.0".into(),
        token: AccessToken::new(TOKEN),
    };
    let mut state = RunState::new();
    let mut n = 0u32;
    let mut rand = || {
        n = n.wrapping_add(0x9E37_79B9);
        n
    };
    for _ in 0..2 {
        let mut on_event = |e: Event| match e {
            Event::StepFailed { error, .. } => check_error(&error),
            Event::Notice { notice, .. } => {
                let _ = notice.text();
            }
            Event::Retrying { reason, .. } => {
                let _ = reason.text();
            }
            _ => {}
        };
        let before = graph.sent.get();
        let result = block_on(provision::run(
            &plan,
            &mut state,
            &ctx,
            &graph,
            &graph,
            &mut rand,
            &mut on_event,
        ));
        assert!(
            graph.sent.get() - before <= 10 * 400,
            "the driver must give up (it sent {})",
            graph.sent.get() - before
        );
        match result {
            Ok(out) => {
                for n in &out.notices {
                    let _ = n.text();
                }
                if let Some(r) = &out.report {
                    assert!(!r.lines().is_empty());
                }
                if matches!(plan.operation, Operation::AddApp(_)) {
                    assert!(
                        out.credentials.is_some() || out.already_set_up,
                        "add-app finished without credentials and without saying it was set up"
                    );
                }
                break;
            }
            Err(e) => check_error(&e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 (engine::crypto)

/// The key and certificate of the OpenSSL-made fixture (a throwaway 2048-bit test key), read once
/// with the crate's own reader: no key generation in property tests or fuzzing.
pub fn fixture_key_and_cert() -> &'static (PrivateKeyDer, Vec<u8>) {
    static KC: OnceLock<(PrivateKeyDer, Vec<u8>)> = OnceLock::new();
    KC.get_or_init(|| {
        read_pfx(
            include_bytes!("../peers/pfx_openssl_legacy.p12"),
            &PfxPassword::new("Test-pass:1=#!"),
        )
        .expect("fixture reads")
    })
}

/// An RNG that plays back the given bytes, then zeros.
pub struct PlaybackRng<'a> {
    bytes: &'a [u8],
}

impl<'a> PlaybackRng<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        PlaybackRng { bytes }
    }
}

impl rand_core::TryRng for PlaybackRng<'_> {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for d in dst.iter_mut() {
            *d = match self.bytes.split_first() {
                Some((b, rest)) => {
                    self.bytes = rest;
                    *b
                }
                None => 0,
            };
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for PlaybackRng<'_> {}

/// `build_pfx` with any friendly name, password, kind and RNG bytes: refuses exactly the
/// passwords that are not non-empty printable ASCII and the names outside the BMP, and anything
/// it writes reads back (crate reader and p12-keystore) to the same key and certificate with the
/// same password, the friendly name as the alias, and a wrong password refused.
pub fn pfx(friendly_name: &str, password: &str, kind: PfxKind, rng_bytes: &[u8]) {
    let (key, cert) = fixture_key_and_cert();
    let pw = PfxPassword::new(password);
    let pw_ok = !password.is_empty() && password.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let name_ok = friendly_name.chars().all(|c| u32::from(c) <= 0xFFFF);
    let built = build_pfx(
        key,
        cert,
        &pw,
        kind,
        friendly_name,
        &mut PlaybackRng::new(rng_bytes),
    );
    let pfx = match built {
        Err(CryptoError::InvalidPassword) => {
            assert!(!pw_ok, "refused a good password");
            return;
        }
        Err(CryptoError::InvalidFriendlyName) => {
            assert!(pw_ok && !name_ok, "refused a storable friendly name");
            return;
        }
        Err(e) => panic!("build_pfx failed: {e}"),
        Ok(p) => p,
    };
    assert!(
        pw_ok && name_ok,
        "accepted a password or name it should refuse"
    );
    let (k, c) = read_pfx(&pfx, &pw).expect("our PFX reads back");
    assert_eq!(&k, key);
    assert_eq!(&c, cert);
    let ks = p12_keystore::KeyStore::from_pkcs12(
        &pfx,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .expect("p12-keystore reads it");
    let (alias, chain) = ks.private_key_chain().expect("a key chain");
    assert_eq!(chain.certs()[0].as_der(), &cert[..]);
    if !friendly_name.is_empty() {
        assert_eq!(alias, friendly_name, "friendly name is the alias");
    }
    if kind == PfxKind::Legacy {
        // Cheap enough to check twice: same bytes, same file; another password is refused.
        let again = build_pfx(
            key,
            cert,
            &pw,
            kind,
            friendly_name,
            &mut PlaybackRng::new(rng_bytes),
        )
        .expect("second build");
        assert_eq!(again, pfx, "same RNG bytes, same file");
        let wrong = PfxPassword::new(format!("{password}x"));
        assert_eq!(read_pfx(&pfx, &wrong), Err(CryptoError::WrongPassword));
    }
}

/// The password of the PFX fixtures below.
const READ_FIXTURE_PASSWORD: &str = "Read-fixture-1";

/// Legacy PFX files (cheap to read: 2,048 iterations) of the fixture key and certificate: with
/// their MAC, and the same file with the MAC taken off (so damage reaches decryption and bag
/// parsing instead of stopping at the MAC).
fn read_fixtures() -> &'static [Vec<u8>; 2] {
    static F: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    F.get_or_init(|| {
        use der::{Decode as _, Encode as _};
        let (key, cert) = fixture_key_and_cert();
        let pw = PfxPassword::new(READ_FIXTURE_PASSWORD);
        let with_mac = build_pfx(
            key,
            cert,
            &pw,
            PfxKind::Legacy,
            "fixture",
            &mut PlaybackRng::new(&[7; 64]),
        )
        .expect("fixture pfx");
        let mut outer = pkcs12::pfx::Pfx::from_der(&with_mac).expect("fixture parses");
        outer.mac_data = None;
        let without_mac = outer.to_der().expect("fixture re-encodes");
        [with_mac, without_mac]
    })
}

/// `read_pfx` on hostile files (the page reads a PFX the admin uploads to renew): `data` picks a
/// fixture (with or without MAC) and damages it (byte edits, a cut), or is itself the file. The
/// reader never panics, and whatever it accepts is a key with its own certificate.
pub fn pfx_read(data: &[u8]) {
    let mut src = Source::new(data);
    let pw = PfxPassword::new(READ_FIXTURE_PASSWORD);
    let file: Vec<u8> = match src.byte() % 3 {
        0 => src.rest().to_vec(),
        n => {
            let mut f = read_fixtures()[usize::from(n - 1)].clone();
            for _ in 0..src.below(8) {
                let at = usize::from(src.u16()) % f.len();
                f[at] = src.byte();
            }
            if src.byte().is_multiple_of(4) {
                let cut = usize::from(src.u16()) % (f.len() + 1);
                f.truncate(cut);
            }
            f
        }
    };
    if let Ok((key, cert)) = read_pfx(&file, &pw) {
        let sig = m365_registrator::engine::crypto::sign_rs256(&key, b"pair")
            .expect("an accepted key signs");
        m365_registrator::engine::crypto::verify_rs256(&cert, b"pair", &sig)
            .expect("the accepted certificate is the key's");
    }
}
