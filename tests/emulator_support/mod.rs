//! Helpers shared by the emulator's own tests: requests against an in-process [`Emulator`],
//! a fake clock, the auth-code + PKCE sign-in, client-credential tokens, test certificates.
#![allow(dead_code)]

use base64::Engine as _;
use m365_registrator::emulator::jwt::TestCert;
use m365_registrator::emulator::{Emulator, EmulatorConfig, Outcome};
use m365_registrator::engine::http::{form_decode, HttpRequest, HttpResponse, Method};
use serde_json::{json, Value};
use sha2::Digest;

pub const BASE: &str = "http://127.0.0.1:8400";
pub const PAGE: &str = "http://127.0.0.1:8401/";
pub const PAGE_ORIGIN: &str = "http://127.0.0.1:8401";
/// 2026-06-01T00:00:00Z
pub const T0: u64 = 1_780_272_000_000;
pub const TENANT: &str = "6f1c3b1e-2d4a-4c8e-9f10-0a1b2c3d4e5f";
pub const REGISTRATOR: &str = "8ed4fad3-3f63-44fb-b7e0-e324895d7df9";
pub const GRAPH: &str = "00000003-0000-0000-c000-000000000000";
pub const VERIFIER: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
pub const SCOPES: &str = "openid profile User.Read Application.ReadWrite.All AppRoleAssignment.ReadWrite.All DelegatedPermissionGrant.ReadWrite.All";

/// An emulator plus a fake clock.
pub struct T {
    pub emu: Emulator,
    pub now: u64,
}

pub fn cfg(consented: bool) -> EmulatorConfig {
    EmulatorConfig {
        registrator_consented: consented,
        registrator_spa_redirect_uris: vec![PAGE.into()],
        ..Default::default()
    }
}

impl T {
    pub fn new(consented: bool) -> T {
        T {
            emu: Emulator::new(cfg(consented)),
            now: T0,
        }
    }
    pub fn with(c: EmulatorConfig) -> T {
        T {
            emu: Emulator::new(c),
            now: T0,
        }
    }
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }
    pub fn outcome(&mut self, req: HttpRequest) -> Outcome {
        self.emu.handle(&req, self.now)
    }
    pub fn send(&mut self, req: HttpRequest) -> HttpResponse {
        match self.emu.handle(&req, self.now) {
            Outcome::Respond(r) => r,
            Outcome::Drop => panic!("connection dropped for {req:?}"),
        }
    }
    pub fn get(&mut self, path: &str, token: &str) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Get, format!("{BASE}{path}"))
                .header("Authorization", format!("Bearer {token}")),
        )
    }
    pub fn post(&mut self, path: &str, token: &str, body: Value) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Post, format!("{BASE}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .json(&body),
        )
    }
    pub fn patch(&mut self, path: &str, token: &str, body: Value) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Patch, format!("{BASE}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .json(&body),
        )
    }
    pub fn delete(&mut self, path: &str, token: &str) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Delete, format!("{BASE}{path}"))
                .header("Authorization", format!("Bearer {token}")),
        )
    }

    /// GET /authorize with the picked user (and consent answer); returns the response.
    pub fn authorize(
        &mut self,
        client: &str,
        redirect: &str,
        scope: &str,
        user: Option<&str>,
        consent: Option<&str>,
    ) -> HttpResponse {
        let mut q = vec![
            ("client_id", client.to_string()),
            ("response_type", "code".into()),
            ("redirect_uri", redirect.into()),
            ("scope", scope.into()),
            ("state", "st-1".into()),
            ("nonce", "n-1".into()),
            ("code_challenge", challenge(VERIFIER)),
            ("code_challenge_method", "S256".into()),
            ("response_mode", "query".into()),
        ];
        if let Some(u) = user {
            q.push(("emulator_user", u.into()));
        }
        if let Some(c) = consent {
            q.push(("emulator_consent", c.into()));
        }
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let qs = m365_registrator::engine::http::form_encode(&pairs);
        self.send(HttpRequest::new(
            Method::Get,
            format!("{BASE}/{TENANT}/oauth2/v2.0/authorize?{qs}"),
        ))
    }

    pub fn redeem(
        &mut self,
        code: &str,
        redirect: &str,
        verifier: &str,
        origin: Option<&str>,
    ) -> HttpResponse {
        let mut r = HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token"))
            .form(&[
                ("client_id", REGISTRATOR),
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("scope", SCOPES),
            ]);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        self.send(r)
    }

    /// The whole delegated sign-in for `upn`; returns the access token.
    pub fn sign_in(&mut self, upn: &str) -> String {
        let r = self.authorize(REGISTRATOR, PAGE, SCOPES, Some(upn), None);
        assert_eq!(r.status, 302, "{}", r.body);
        let code = location_param(&r, "code").expect("code");
        let t = self.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
        assert_eq!(t.status, 200, "{}", t.body);
        body(&t)["access_token"].as_str().unwrap().to_string()
    }

    /// Creates an app (as admin) and returns its JSON.
    pub fn create_app(&mut self, token: &str, name: &str) -> Value {
        let r = self.post("/v1.0/applications", token, json!({"displayName": name}));
        assert_eq!(r.status, 201, "{}", r.body);
        body(&r)
    }

    pub fn client_credentials(&mut self, client_id: &str, secret: &str) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token")).form(&[
                ("client_id", client_id),
                ("grant_type", "client_credentials"),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
        )
    }

    pub fn client_assertion(&mut self, client_id: &str, assertion: &str) -> HttpResponse {
        self.send(
            HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token")).form(&[
                ("client_id", client_id),
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
        )
    }

    /// A Graph SP's id by appId (as admin token).
    pub fn sp_id(&mut self, token: &str, app_id: &str) -> String {
        let r = self.get(&format!("/v1.0/servicePrincipals(appId='{app_id}')"), token);
        assert_eq!(r.status, 200, "{}", r.body);
        body(&r)["id"].as_str().unwrap().to_string()
    }

    pub fn graph_role_id(&mut self, value: &str) -> String {
        m365_registrator::emulator::directory::reference_permission_id(GRAPH, value, true).unwrap()
    }
}

pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

pub fn body(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

pub fn location(r: &HttpResponse) -> String {
    r.get_header("Location")
        .unwrap_or_else(|| panic!("no Location: {} {}", r.status, r.body))
        .to_string()
}

/// A parameter of the redirect (query or fragment).
pub fn location_param(r: &HttpResponse, k: &str) -> Option<String> {
    let loc = location(r);
    let q = loc.split_once(['?', '#']).map(|(_, q)| q).unwrap_or("");
    form_decode(q)
        .into_iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v)
}

pub fn location_params(r: &HttpResponse) -> Vec<(String, String)> {
    let loc = location(r);
    let q = loc.split_once(['?', '#']).map(|(_, q)| q).unwrap_or("");
    form_decode(q)
}

pub fn err_code(r: &HttpResponse) -> String {
    body(r)["error"]["code"].as_str().unwrap_or("").to_string()
}

pub fn err_msg(r: &HttpResponse) -> String {
    body(r)["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Claims of a JWT (unverified).
pub fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

/// A certificate valid 2026-01-01 .. 2028-01-01 (seeded, cached key).
pub fn cert(seed: u64) -> TestCert {
    TestCert::new(
        seed,
        "bacula-m365-plugin-standalone",
        (2026, 1, 1),
        (2028, 1, 1),
    )
    .unwrap()
}

pub fn expired_cert(seed: u64) -> TestCert {
    TestCert::new(seed, "old", (2024, 1, 1), (2025, 1, 1)).unwrap()
}

pub fn key_credential(c: &TestCert) -> Value {
    json!({"type": "AsymmetricX509Cert", "usage": "Verify", "key": c.key_b64(), "displayName": "CN=bacula-m365-plugin-standalone"})
}

/// A client assertion for the tenant's token endpoint.
pub fn assertion(c: &TestCert, client_id: &str, now_ms: u64) -> String {
    let now = now_ms / 1000;
    c.sign(&json!({
        "aud": format!("{BASE}/{TENANT}/oauth2/v2.0/token"),
        "iss": client_id, "sub": client_id, "jti": "j-1",
        "nbf": now, "exp": now + 600, "iat": now,
    }))
}
