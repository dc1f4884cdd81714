//! The emulator's login endpoints, in-process with a fake clock: authorize (sign-in page,
//! consent, errors), token (auth code + PKCE, CORS rules, client credentials with a secret and
//! a certificate), admin consent (success, cancel, non-admins).

mod emulator_support;
use emulator_support::*;
use m365_registrator::engine::http::{HttpRequest, Method};
use serde_json::{json, Value};

#[test]
fn sign_in_page_lists_users_without_javascript() {
    let mut t = T::new(true);
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, None, None);
    assert_eq!(r.status, 200);
    assert!(r
        .get_header("Content-Type")
        .unwrap()
        .starts_with("text/html"));
    for upn in [
        "admin@contoso.onmicrosoft.com",
        "appadmin@contoso.onmicrosoft.com",
        "user@contoso.onmicrosoft.com",
    ] {
        assert!(
            r.body
                .contains(&format!("data-testid=\"emulator-user\" data-upn=\"{upn}\"")),
            "{}",
            r.body
        );
    }
    assert!(!r.body.contains("<script"));
    // The link of a user choice carries every parameter and the user.
    let start = r.body.find("data-upn=\"admin@").unwrap();
    let href_start = r.body[start..].find("href=\"").unwrap() + start + 6;
    let href_end = r.body[href_start..].find('"').unwrap() + href_start;
    let href = r.body[href_start..href_end].replace("&amp;", "&");
    let r2 = t.send(HttpRequest::new(Method::Get, href));
    assert_eq!(r2.status, 302);
    assert!(location(&r2).starts_with(PAGE));
    assert!(location_param(&r2, "code").is_some());
    assert_eq!(location_param(&r2, "state").as_deref(), Some("st-1"));
}

#[test]
fn authorize_errors_shown_on_own_page_or_redirected() {
    let mut t = T::new(true);
    let r = t.authorize(
        "11111111-2222-3333-4444-555555555555",
        PAGE,
        SCOPES,
        Some("admin"),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("AADSTS700016"), "{}", r.body);
    assert!(r.get_header("Location").is_none());

    let r = t.authorize(
        REGISTRATOR,
        "https://evil.example/cb",
        SCOPES,
        Some("admin"),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("data-code=\"AADSTS50011\""), "{}", r.body);
    assert!(r.body.contains("https://evil.example/cb"));

    // Unknown tenant.
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/nope.onmicrosoft.com/oauth2/v2.0/authorize?client_id={REGISTRATOR}"),
    ));
    assert!(r.body.contains("AADSTS90002"));

    // SPA without PKCE → error redirect.
    let q = format!(
        "client_id={REGISTRATOR}&response_type=code&redirect_uri={}&scope=User.Read&state=s9",
        m365_registrator::engine::http::encode_component(PAGE)
    );
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/{TENANT}/oauth2/v2.0/authorize?{q}"),
    ));
    assert_eq!(r.status, 302);
    assert_eq!(
        location_param(&r, "error").as_deref(),
        Some("invalid_request")
    );
    let d = location_param(&r, "error_description").unwrap();
    assert!(d.starts_with("AADSTS9002325: "), "{d}");
    assert!(
        d.contains("\r\nTrace ID: ")
            && d.contains("\r\nCorrelation ID: ")
            && d.contains("\r\nTimestamp: "),
        "{d}"
    );
    assert_eq!(location_param(&r, "state").as_deref(), Some("s9"));
    assert!(location_param(&r, "error_uri")
        .unwrap()
        .ends_with("/error?code=9002325"));

    // Unknown Graph scope.
    let r = t.authorize(REGISTRATOR, PAGE, "openid Foo.Bar", Some("admin"), None);
    assert!(location_param(&r, "error_description")
        .unwrap()
        .starts_with("AADSTS650053"));
    // Another resource.
    let r = t.authorize(
        REGISTRATOR,
        PAGE,
        "https://outlook.office.com/Mail.Read",
        Some("admin"),
        None,
    );
    assert_eq!(
        location_param(&r, "error").as_deref(),
        Some("invalid_resource")
    );

    // The tenant's verified domain works as the tenant segment.
    let q = format!(
        "client_id={REGISTRATOR}&response_type=code&redirect_uri={}&scope=User.Read&code_challenge={}&code_challenge_method=S256&emulator_user=admin",
        m365_registrator::engine::http::encode_component(PAGE),
        challenge(VERIFIER)
    );
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/contoso.onmicrosoft.com/oauth2/v2.0/authorize?{q}"),
    ));
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(location_param(&r, "code").is_some());
}

#[test]
fn fragment_response_mode() {
    let mut t = T::new(true);
    let q = format!(
        "client_id={REGISTRATOR}&response_type=code&redirect_uri={}&scope=User.Read&code_challenge={}&code_challenge_method=S256&emulator_user=admin&response_mode=fragment&state=f",
        m365_registrator::engine::http::encode_component(PAGE),
        challenge(VERIFIER)
    );
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/{TENANT}/oauth2/v2.0/authorize?{q}"),
    ));
    let loc = location(&r);
    assert!(loc.starts_with(&format!("{PAGE}#code=")), "{loc}");
    assert_eq!(location_param(&r, "state").as_deref(), Some("f"));
}

#[test]
fn code_flow_tokens_claims_and_cors() {
    let mut t = T::new(true);
    let r = t.authorize(
        REGISTRATOR,
        PAGE,
        SCOPES,
        Some("admin@contoso.onmicrosoft.com"),
        None,
    );
    let code = location_param(&r, "code").unwrap();
    let tok = t.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(tok.status, 200, "{}", tok.body);
    assert_eq!(
        tok.get_header("Access-Control-Allow-Origin"),
        Some(PAGE_ORIGIN)
    );
    let b = body(&tok);
    assert_eq!(b["token_type"], "Bearer");
    assert!(b.get("refresh_token").is_none());
    let at = claims(b["access_token"].as_str().unwrap());
    assert_eq!(at["tid"], TENANT);
    assert_eq!(at["aud"], "https://graph.microsoft.com");
    assert_eq!(at["appid"], REGISTRATOR);
    assert_eq!(at["oid"], "a11ce000-0000-4000-8000-000000000001");
    let scp = at["scp"].as_str().unwrap();
    for s in [
        "User.Read",
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "DelegatedPermissionGrant.ReadWrite.All",
    ] {
        assert!(scp.split(' ').any(|x| x == s), "{scp}");
    }
    assert!(at["exp"].as_u64().unwrap() > at["iat"].as_u64().unwrap());
    let id = claims(b["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], REGISTRATOR);
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["tid"], TENANT);
    assert_eq!(id["preferred_username"], "admin@contoso.onmicrosoft.com");
    assert_eq!(id["iss"], format!("{BASE}/{TENANT}/v2.0"));

    // Reuse.
    let again = t.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(again.status, 400);
    assert_eq!(body(&again)["error"], "invalid_grant");
    assert_eq!(body(&again)["error_codes"], json!([54005]));
    assert!(body(&again)["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS54005:"));
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body(&again).get(k).is_some(), "{k}");
    }
}

#[test]
fn code_errors_pkce_expiry_origin() {
    let mut t = T::new(true);
    let code = location_param(
        &t.authorize(REGISTRATOR, PAGE, SCOPES, Some("admin"), None),
        "code",
    )
    .unwrap();
    let r = t.redeem(
        &code,
        PAGE,
        "wrong-verifier-wrong-verifier-wrong-verifier-x",
        Some(PAGE_ORIGIN),
    );
    assert_eq!(body(&r)["error_codes"], json!([501481]));
    // A SPA redirect redeemed without Origin.
    let r = t.redeem(&code, PAGE, VERIFIER, None);
    assert_eq!(body(&r)["error_codes"], json!([9002327]));
    // Expired after 10 minutes.
    t.advance(11 * 60 * 1000);
    let r = t.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(body(&r)["error_codes"], json!([70008]));

    // A `web` redirect URI redeemed cross-origin: AADSTS9002326 and no CORS header.
    let mut t = T::new(true);
    let r = t.authorize(REGISTRATOR, BACULA, SCOPES, Some("admin"), None);
    assert_eq!(r.status, 302, "{}", r.body);
    let code = location_param(&r, "code").unwrap();
    let r = t.redeem(&code, BACULA, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(r.status, 400);
    assert_eq!(body(&r)["error"], "invalid_request");
    assert!(body(&r)["error_description"].as_str().unwrap().starts_with("AADSTS9002326: Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type."));
    assert!(r.get_header("Access-Control-Allow-Origin").is_none());
    // Wrong redirect on redemption.
    let r = t.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(body(&r)["error_codes"], json!([500112]));
}

const BACULA: &str = "https://www.baculasystems.com/m365-plugin-auth/standalone";

#[test]
fn unconsented_registrator_consent_prompt_and_refusals() {
    let mut t = T::new(false);
    // A plain user cannot consent.
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("user"), None);
    assert_eq!(
        location_param(&r, "error").as_deref(),
        Some("consent_required")
    );
    assert!(location_param(&r, "error_description")
        .unwrap()
        .starts_with("AADSTS65001"));
    // An admin gets the prompt.
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("admin"), None);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("data-testid=\"emulator-accept\"")
            && r.body.contains("data-testid=\"emulator-cancel\"")
    );
    assert!(r.body.contains("Application.ReadWrite.All"));
    // Cancel.
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("admin"), Some("cancel"));
    assert_eq!(
        location_param(&r, "error").as_deref(),
        Some("access_denied")
    );
    assert!(location_param(&r, "error_description")
        .unwrap()
        .starts_with("AADSTS65004: User declined to consent to access the app."));
    assert!(t.emu.state_json()["registrator"]["servicePrincipalId"].is_null());
    // Accept: SP + grant recorded, code issued.
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("admin"), Some("accept"));
    assert_eq!(r.status, 302);
    let code = location_param(&r, "code").unwrap();
    let st = t.emu.state_json();
    assert!(st["registrator"]["servicePrincipalId"].is_string());
    let grants = st["oauth2PermissionGrants"].as_array().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["consentType"], "AllPrincipals");
    // As in B-1: the app roles too, and the static delegated scopes merged with the asked ones.
    assert_eq!(st["appRoleAssignments"].as_array().unwrap().len(), 5);
    assert_eq!(grants[0]["scope"].as_str().unwrap().split(' ').count(), 7);
    let tok = t.redeem(&code, PAGE, VERIFIER, Some(PAGE_ORIGIN));
    assert_eq!(tok.status, 200, "{}", tok.body);
    // Now the plain user can sign in (AllPrincipals grant).
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("user"), None);
    assert!(location_param(&r, "code").is_some());
}

fn adminconsent(
    t: &mut T,
    v2: bool,
    user: Option<&str>,
    consent: Option<&str>,
    redirect: &str,
) -> m365_registrator::engine::http::HttpResponse {
    let path = if v2 {
        format!("/{TENANT}/v2.0/adminconsent")
    } else {
        format!("/{TENANT}/adminconsent")
    };
    let mut q = format!(
        "client_id={REGISTRATOR}&state=12345&redirect_uri={}",
        m365_registrator::engine::http::encode_component(redirect)
    );
    if v2 {
        q.push_str("&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
    }
    if let Some(u) = user {
        q.push_str(&format!("&emulator_user={u}"));
    }
    if let Some(c) = consent {
        q.push_str(&format!("&emulator_consent={c}"));
    }
    t.send(HttpRequest::new(Method::Get, format!("{BASE}{path}?{q}")))
}

#[test]
fn admin_consent_b1_success_records_sp_roles_and_grant() {
    let mut t = T::new(false);
    let r = adminconsent(&mut t, false, None, None, BACULA);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data-testid=\"emulator-user\""));
    let r = adminconsent(&mut t, false, Some("admin"), None, BACULA);
    assert!(r.body.contains("data-testid=\"emulator-accept\""));
    assert!(r.body.contains("AppRoleAssignment.ReadWrite.All"));
    let r = adminconsent(&mut t, false, Some("admin"), Some("accept"), BACULA);
    assert_eq!(r.status, 302);
    assert_eq!(
        location_params(&r),
        vec![
            ("admin_consent".into(), "True".into()),
            ("tenant".into(), TENANT.into()),
            ("state".into(), "12345".into())
        ]
    );
    assert!(location(&r).starts_with(BACULA));
    let st = t.emu.state_json();
    let sp = st["registrator"]["servicePrincipalId"]
        .as_str()
        .unwrap()
        .to_string();
    let roles: Vec<&Value> = st["appRoleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["principalId"] == sp)
        .collect();
    assert_eq!(roles.len(), 5);
    let grant = &st["oauth2PermissionGrants"][0];
    assert_eq!(grant["clientId"], sp);
    assert_eq!(grant["scope"].as_str().unwrap().split(' ').count(), 7);

    // v2 adds scope.
    let mut t = T::new(false);
    let r = adminconsent(&mut t, true, Some("admin"), Some("accept"), PAGE);
    let p = location_params(&r);
    assert_eq!(p[0], ("admin_consent".into(), "True".into()));
    assert!(p.contains(&(
        "scope".into(),
        "https://graph.microsoft.com/.default".into()
    )));
    assert!(p.contains(&("tenant".into(), TENANT.into())));
}

#[test]
fn admin_consent_cancel_and_non_admins() {
    let mut t = T::new(false);
    let r = adminconsent(&mut t, false, Some("admin"), Some("cancel"), BACULA);
    let p = location_params(&r);
    let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "error",
            "error_description",
            "error_uri",
            "admin_consent",
            "state"
        ]
    );
    assert_eq!(p[0].1, "access_denied");
    assert!(p[1]
        .1
        .starts_with("AADSTS65004: User declined to consent to access the app."));
    assert_eq!(p[3].1, "True");
    assert!(!location(&r).contains("tenant="));

    let r = adminconsent(&mut t, false, Some("user"), None, BACULA);
    assert!(location_param(&r, "error_description")
        .unwrap()
        .starts_with("AADSTS90094"));
    assert_eq!(location_param(&r, "admin_consent").as_deref(), Some("True"));
    let r = adminconsent(&mut t, false, Some("appadmin"), None, BACULA);
    assert!(location_param(&r, "error_description")
        .unwrap()
        .starts_with("AADSTS90094"));
    assert!(t.emu.state_json()["registrator"]["servicePrincipalId"].is_null());

    // Redirect URI not registered: the emulator's page, no redirect.
    let r = adminconsent(
        &mut t,
        false,
        Some("admin"),
        Some("accept"),
        "https://www.baculasystems.com/other",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("AADSTS50011"));
    // Unknown client.
    let r = t.send(HttpRequest::new(Method::Get, format!("{BASE}/{TENANT}/adminconsent?client_id=00000000-1111-2222-3333-444444444444&redirect_uri=x")));
    assert!(r.body.contains("AADSTS700016"));
}

#[test]
fn deleting_the_registrator_sp_brings_the_prompt_back() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let sp = t.sp_id(&tok, REGISTRATOR);
    assert_eq!(
        t.delete(&format!("/v1.0/servicePrincipals/{sp}"), &tok)
            .status,
        204
    );
    let st = t.emu.state_json();
    assert!(st["oauth2PermissionGrants"].as_array().unwrap().is_empty());
    assert!(st["appRoleAssignments"].as_array().unwrap().is_empty());
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("admin"), None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("emulator-accept"));
}

#[test]
fn client_credentials_with_secret() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let app = t.create_app(&tok, "plugin");
    let (id, app_id) = (
        app["id"].as_str().unwrap().to_string(),
        app["appId"].as_str().unwrap().to_string(),
    );
    let pw = body(&t.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        &tok,
        json!({"passwordCredential": {"displayName": "s"}}),
    ));
    let secret = pw["secretText"].as_str().unwrap().to_string();
    // No SP yet.
    let r = t.client_credentials(&app_id, &secret);
    assert_eq!(body(&r)["error_codes"], json!([7000229]), "{}", r.body);
    let sp = body(&t.post("/v1.0/servicePrincipals", &tok, json!({"appId": app_id})));
    let graph_sp = t.sp_id(&tok, GRAPH);
    let role = t.graph_role_id("User.Read.All");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph_sp}/appRoleAssignedTo"),
        &tok,
        json!({"principalId": sp["id"], "resourceId": graph_sp, "appRoleId": role}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = t.client_credentials(&app_id, &secret);
    assert_eq!(r.status, 200, "{}", r.body);
    let at = claims(body(&r)["access_token"].as_str().unwrap());
    assert_eq!(at["roles"], json!(["User.Read.All"]));
    assert_eq!(at["idtyp"], "app");
    assert_eq!(at["oid"], sp["id"]);
    // Wrong secret, wrong scope, cross-origin.
    let r = t.client_credentials(&app_id, "nope");
    assert_eq!(r.status, 401);
    assert_eq!(body(&r)["error"], "invalid_client");
    assert_eq!(body(&r)["error_codes"], json!([7000215]));
    let r = t.send(
        HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token")).form(&[
            ("client_id", &app_id),
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
            ("scope", "User.Read"),
        ]),
    );
    assert_eq!(body(&r)["error"], "invalid_scope");
    // Expired secret.
    t.advance(731 * 86_400_000);
    let r = t.client_credentials(&app_id, &secret);
    assert_eq!(body(&r)["error_codes"], json!([7000222]));
    // Unknown client.
    let r = t.client_credentials("99999999-9999-9999-9999-999999999999", "x");
    assert_eq!(body(&r)["error_codes"], json!([700016]));
}

#[test]
fn client_credentials_with_certificate_assertion() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let c = cert(1);
    let r = t.post(
        "/v1.0/applications",
        &tok,
        json!({"displayName": "plugin", "keyCredentials": [key_credential(&c)]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let app = body(&r);
    assert!(app["keyCredentials"][0]["key"].is_null());
    let app_id = app["appId"].as_str().unwrap().to_string();
    t.post("/v1.0/servicePrincipals", &tok, json!({"appId": app_id}));
    let a = assertion(&c, &app_id, t.now);
    let r = t.client_assertion(&app_id, &a);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims(body(&r)["access_token"].as_str().unwrap())["appidacr"],
        "2"
    );
    // x5t#S256 also works.
    let now = t.now / 1000;
    let a256 = c.sign_s256(&json!({"aud": format!("{BASE}/{TENANT}/oauth2/v2.0/token"), "iss": app_id, "sub": app_id, "jti": "2", "nbf": now, "exp": now + 600}));
    assert_eq!(t.client_assertion(&app_id, &a256).status, 200);
    // Signed by another key.
    let other = cert(2);
    let forged = other.sign(&claims(&a));
    let r = t.client_assertion(&app_id, &forged);
    assert_eq!(body(&r)["error_codes"], json!([700027]));
    // Wrong audience, stale assertion.
    let bad_aud = c.sign(&json!({"aud": "https://elsewhere/token", "iss": app_id, "sub": app_id, "nbf": now, "exp": now + 600}));
    assert_eq!(t.client_assertion(&app_id, &bad_aud).status, 401);
    let stale = c.sign(&json!({"aud": format!("{BASE}/{TENANT}/oauth2/v2.0/token"), "iss": app_id, "sub": app_id, "nbf": now - 7200, "exp": now - 3600}));
    assert_eq!(
        body(&t.client_assertion(&app_id, &stale))["error_codes"],
        json!([700024])
    );
    // The certificate expires.
    t.advance(800 * 86_400_000);
    let a = assertion(&c, &app_id, t.now);
    let r = t.client_assertion(&app_id, &a);
    assert_eq!(body(&r)["error_codes"], json!([700027]));
    assert!(body(&r)["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[test]
fn openid_configuration_and_keys() {
    let mut t = T::new(true);
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/{TENANT}/v2.0/.well-known/openid-configuration"),
    ));
    assert_eq!(r.status, 200);
    let b = body(&r);
    assert_eq!(
        b["token_endpoint"],
        format!("{BASE}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(b["issuer"], format!("{BASE}/{TENANT}/v2.0"));
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/{TENANT}/discovery/v2.0/keys"),
    ));
    assert_eq!(body(&r)["keys"][0]["kty"], "RSA");
}

#[test]
fn token_endpoint_garbage_never_panics() {
    let mut t = T::new(true);
    for b in ["", "grant_type", "grant_type=authorization_code&code=%ZZ", "grant_type=client_credentials&client_assertion=a.b.c&client_id=x&scope=https://graph.microsoft.com/.default", "\u{0}\u{1}=\u{2}", &"a=b&".repeat(5000)] {
        let mut r = HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token"));
        r.body = Some(b.to_string());
        let resp = t.send(r);
        assert!((400..500).contains(&resp.status), "{b:?} → {}", resp.status);
    }
    let r = t.send(HttpRequest::new(
        Method::Get,
        format!("{BASE}/{TENANT}/oauth2/v2.0/token"),
    ));
    assert_eq!(r.status, 400);
}

#[test]
fn application_administrator_consents_delegated_scopes_only() {
    let mut t = T::new(false);
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("appadmin"), None);
    assert!(r.body.contains("emulator-accept"));
    let r = t.authorize(REGISTRATOR, PAGE, SCOPES, Some("appadmin"), Some("accept"));
    assert_eq!(r.status, 302);
    assert!(location_param(&r, "code").is_some());
    let st = t.emu.state_json();
    assert!(st["appRoleAssignments"].as_array().unwrap().is_empty());
    let scope = st["oauth2PermissionGrants"][0]["scope"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(scope.split(' ').count(), 4, "{scope}");
}
