//! The JavaScript API of the WebAssembly module (`web::js_api`), in headless Chromium: each
//! export with good input and with bad input (a thrown JS Error with a clear message, never a
//! panic).
#![cfg(target_arch = "wasm32")]

use m365_registrator::engine::permissions::{self, PermKind, Service};
use m365_registrator::web::js_api::{
    compare_permissions, consent_url, credential_expiry, parse_config, parse_consent_result,
    render_config,
};
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// JSON as a plain JS value (objects, not Maps).
fn js(v: Value) -> JsValue {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap()
}

fn back(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap()
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

const U: JsValue = JsValue::UNDEFINED;

/// The message of the JS Error an export threw.
fn message<T: std::fmt::Debug>(r: Result<T, JsError>) -> String {
    let e = r.expect_err("expected a thrown Error");
    let v: JsValue = e.into();
    let e: js_sys::Error = v.dyn_into().expect("a JS Error object");
    e.message().into()
}

// --- consentUrl --------------------------------------------------------------------------------

#[wasm_bindgen_test]
fn consent_url_in_the_documented_form() {
    let url = consent_url(
        s("Contoso.onmicrosoft.com"),
        U,
        s("https://bweb.example/m365/"),
        s("st4te"),
        U,
    )
    .unwrap();
    assert_eq!(
        url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=8ed4fad3-3f63-44fb-b7e0-e324895d7df9&state=st4te&redirect_uri=https://bweb.example/m365/"
    );
    // Own client id (upper case accepted), another cloud, null for the optional ones.
    let url = consent_url(
        s("72f988bf-86f1-41af-91ab-2d7cd011db47"),
        s("11111111-2222-3333-4444-55555555AAAA"),
        s("http://localhost:8080/"),
        s("a b&c"),
        s("usgov"),
    )
    .unwrap();
    assert!(url.starts_with("https://login.microsoftonline.us/72f988bf-86f1-41af-91ab-2d7cd011db47/adminconsent?client_id=11111111-2222-3333-4444-55555555aaaa&state=a%20b%26c&"), "{url}");
    let url = consent_url(
        s("contoso.com"),
        JsValue::NULL,
        s("https://x.example/"),
        s("z"),
        JsValue::NULL,
    )
    .unwrap();
    assert!(url.contains("client_id=8ed4fad3-"));
}

#[wasm_bindgen_test]
fn consent_url_refuses_bad_input_with_advice() {
    let ok =
        |t: JsValue, c: JsValue, r: JsValue, st: JsValue, cl: JsValue| consent_url(t, c, r, st, cl);
    let m = message(ok(s("common"), U, s("https://x.example/"), s("s"), U));
    assert!(m.contains("is not a tenant"), "{m}");
    let m = message(ok(
        s("admin@contoso.com"),
        U,
        s("https://x.example/"),
        s("s"),
        U,
    ));
    assert!(m.contains("e-mail address"), "{m}");
    let m = message(ok(s(""), U, s("https://x.example/"), s("s"), U));
    assert!(m.contains("tenant id"), "{m}");
    let m = message(ok(
        JsValue::from_f64(3.0),
        U,
        s("https://x.example/"),
        s("s"),
        U,
    ));
    assert_eq!(m, "tenant must be a string");
    let m = message(ok(
        s("contoso.com"),
        s("not-a-guid"),
        s("https://x.example/"),
        s("s"),
        U,
    ));
    assert!(m.starts_with("clientId must be"), "{m}");
    for bad in [
        "ftp://x.example/",
        "https://x.example/#frag",
        "/relative",
        "http://evil.example/",
    ] {
        let m = message(ok(s("contoso.com"), U, s(bad), s("s"), U));
        assert!(m.starts_with("redirectUri must be"), "{bad}: {m}");
    }
    let m = message(ok(s("contoso.com"), U, U, s("s"), U));
    assert_eq!(m, "redirectUri must be a string");
    let m = message(ok(s("contoso.com"), U, s("https://x.example/"), s(""), U));
    assert!(m.starts_with("state must be"), "{m}");
    let m = message(ok(s("contoso.com"), U, s("https://x.example/"), U, U));
    assert_eq!(m, "state must be a string");
    let m = message(ok(
        s("contoso.com"),
        U,
        s("https://x.example/"),
        s("s"),
        s("mars"),
    ));
    assert!(m.starts_with("cloud must be one of"), "{m}");
}

// --- parseConsentResult ------------------------------------------------------------------------

#[wasm_bindgen_test]
fn consent_results_of_every_kind() {
    let r = back(parse_consent_result(s("https://bweb.example/m365/?admin_consent=True&tenant=72f988bf-86f1-41af-91ab-2d7cd011db47&state=xyz")).unwrap());
    assert_eq!(r["status"], "success");
    assert_eq!(r["tenant"], "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_eq!(r["state"], "xyz");
    assert_eq!(r["error"], Value::Null);
    assert!(r["advice"].as_str().unwrap().contains("2-3 minutes"));

    // Cancelled (AADSTS65004), as a bare query.
    let r = back(parse_consent_result(s("error=access_denied&error_description=AADSTS65004%3A+User+declined+to+consent+to+access+the+app.%0D%0ATrace+ID%3A+t1%0D%0ACorrelation+ID%3A+c1%0D%0ATimestamp%3A+2026-01-01+00%3A00%3A00Z&admin_consent=True&state=s1")).unwrap());
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["error"], "access_denied");
    assert_eq!(r["aadsts"], 65004);
    assert_eq!(r["state"], "s1");
    assert_eq!(r["traceId"], "t1");
    assert_eq!(r["correlationId"], "c1");
    assert!(r["errorDescription"].as_str().unwrap().contains("declined"));

    // Not an administrator (AADSTS90094), with a leading '?'.
    let r = back(
        parse_consent_result(s(
            "?error=consent_required&error_description=AADSTS90094%3A+needs+admin&state=s2",
        ))
        .unwrap(),
    );
    assert_eq!(r["status"], "error");
    assert_eq!(r["aadsts"], 90094);
    assert!(r["advice"].as_str().unwrap().contains("Global"), "{r}");

    // Consent not granted.
    let r = back(parse_consent_result(s("?admin_consent=False&state=s3")).unwrap());
    assert_eq!(r["status"], "error");

    // A sign-in answer: reported, the code is never returned.
    let r = back(parse_consent_result(s("https://x.example/#code=SECRETCODE&state=s4")).unwrap());
    assert_eq!(r["status"], "code");
    assert_eq!(r["state"], "s4");
    assert!(!r.to_string().contains("SECRETCODE"));

    // Nothing, and nonsense.
    for none in ["", "https://bweb.example/m365/", "/m365/", "?foo=bar"] {
        let r = back(parse_consent_result(s(none)).unwrap());
        assert_eq!(r["status"], "none", "{none}");
    }
    let r = back(parse_consent_result(s("?state=a&state=b&admin_consent=True")).unwrap());
    assert_eq!(r["status"], "malformed");
    assert!(r["errorDescription"].as_str().unwrap().contains("state"));
    let r = back(parse_consent_result(s("?admin_consent=True#admin_consent=True")).unwrap());
    assert_eq!(r["status"], "malformed");
}

#[wasm_bindgen_test]
fn consent_result_needs_a_string() {
    assert_eq!(
        message(parse_consent_result(U)),
        "queryOrUrl must be a string"
    );
    assert_eq!(
        message(parse_consent_result(js(json!({"q": 1})))),
        "queryOrUrl must be a string"
    );
}

// --- renderConfig / parseConfig -----------------------------------------------------------------

fn config_input() -> Value {
    json!({
        "secret": "s3cr=t:#!",
        "appid": "1587ba33-8eef-4512-bcb1-6d65fd393f51",
        "objectid": "8cee7605-0d5e-42b6-b269-c39f3411b5b9",
        "tenant": "e4a1df55-de8a-4a83-945a-bfaabb6fa166",
        "certificatePath": "/opt/bacula/etc/m365/contoso/bacula-m365-plugin-standalone-cert.pfx",
        "certificatePassword": "fAG@2O5PoOSSU<j2u65zqEKIN<Dh~ya3AWKqK]vv"
    })
}

#[wasm_bindgen_test]
fn render_and_parse_a_config_round_trip() {
    // 2021-07-01 10:30:34 UTC, the spec's sample date.
    let text = render_config(js(config_input()), JsValue::from_f64(1_625_135_434.0)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#Thu Jul 01 10:30:34 UTC 2021");
    assert!(lines[1].starts_with("secret="));
    assert_eq!(lines[2], "appid=1587ba33-8eef-4512-bcb1-6d65fd393f51");
    assert!(lines[5].starts_with("sharepoint_certificate_path="));
    let back_cfg = back(parse_config(s(&text)).unwrap());
    let input = config_input();
    for (k, field) in [
        ("secret", "secret"),
        ("appid", "appid"),
        ("objectid", "objectid"),
        ("tenant", "tenant"),
        ("certificatePath", "certificatePath"),
        ("certificatePassword", "certificatePassword"),
    ] {
        assert_eq!(back_cfg[field], input[k], "{k}");
    }
    assert_eq!(back_cfg["other"], json!([]));
}

#[wasm_bindgen_test]
fn parse_config_keeps_other_keys_and_reports_absent_ones_as_null() {
    let r = back(parse_config(s("# comment\nappid = abc\nmy_key: 1\nmy_key=2\n")).unwrap());
    assert_eq!(r["appid"], "abc");
    assert_eq!(r["secret"], Value::Null);
    assert_eq!(r["certificatePassword"], Value::Null);
    assert_eq!(r["other"], json!([{"key": "my_key", "value": "2"}]));
    let r = back(parse_config(s("")).unwrap());
    assert_eq!(r["tenant"], Value::Null);
}

#[wasm_bindgen_test]
fn config_functions_refuse_bad_input() {
    let now = JsValue::from_f64(1_700_000_000.0);
    let m = message(render_config(s("secret=x"), now.clone()));
    assert!(m.starts_with("renderConfig needs an object"), "{m}");
    let mut missing = config_input();
    missing
        .as_object_mut()
        .unwrap()
        .remove("certificatePassword");
    let m = message(render_config(js(missing), now.clone()));
    assert!(m.contains("certificatePassword"), "{m}");
    let mut typo = config_input();
    typo.as_object_mut()
        .unwrap()
        .insert("appId".into(), json!("x"));
    let m = message(render_config(js(typo), now.clone()));
    assert!(m.contains("appId"), "{m}");
    let mut number = config_input();
    number["secret"] = json!(5);
    let m = message(render_config(js(number), now.clone()));
    assert!(m.contains("string"), "{m}");
    let m = message(render_config(
        js(config_input()),
        JsValue::from_f64(1_700_000_000_000.0),
    ));
    assert!(m.contains("not milliseconds"), "{m}");
    let m = message(render_config(js(config_input()), s("now")));
    assert!(m.starts_with("nowUnix must be a number"), "{m}");
    let m = message(render_config(
        js(config_input()),
        JsValue::from_f64(f64::NAN),
    ));
    assert!(m.starts_with("nowUnix must be"), "{m}");

    assert_eq!(
        message(parse_config(JsValue::NULL)),
        "text must be a string"
    );
    let m = message(parse_config(s("secret=\\uZZZZ\n")));
    assert!(m.contains("cannot be read") && m.contains("escape"), "{m}");
}

// --- comparePermissions --------------------------------------------------------------------------

const REFERENCE: &str = include_str!("../src/emulator/data/permissions.json");
const GRAPH_SP: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const SPO_SP: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const PLUGIN_SP: &str = "8cee7605-0d5e-42b6-b269-c39f3411b5b9";

/// The resource service principals as Graph returns them (from the reference dump).
fn resources() -> Value {
    let r: Value = serde_json::from_str(REFERENCE).unwrap();
    let sp = |app_id: &str, id: &str| {
        let x = &r["resources"][app_id];
        json!({
            "id": id,
            "appId": app_id,
            "displayName": x["displayName"],
            "appRoles": x["applicationPermissions"],
            "oauth2PermissionScopes": x["delegatedPermissions"],
        })
    };
    json!([
        sp("00000003-0000-0000-c000-000000000000", GRAPH_SP),
        sp("00000003-0000-0ff1-ce00-000000000000", SPO_SP),
    ])
}

fn id_of(resources: &Value, res_sp: &str, kind: PermKind, name: &str) -> String {
    let list = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == res_sp)
        .unwrap();
    let key = match kind {
        PermKind::Application => "appRoles",
        PermKind::Delegated => "oauth2PermissionScopes",
    };
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["value"] == name)
        .unwrap_or_else(|| panic!("{name} not in the reference"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Grants that match the manifest of `services` exactly, minus `skip` names.
fn grants(services: &[Service], skip: &[&str]) -> Value {
    let res = resources();
    let mut assignments = Vec::new();
    let mut scopes: Vec<(String, Vec<String>)> = Vec::new();
    for p in permissions::manifest(services) {
        if skip.contains(&p.name) {
            continue;
        }
        let sp = if p.resource.app_id() == "00000003-0000-0000-c000-000000000000" {
            GRAPH_SP
        } else {
            SPO_SP
        };
        match p.kind {
            PermKind::Application => assignments.push(json!({
                "id": format!("as-{}", assignments.len()),
                "appRoleId": id_of(&res, sp, p.kind, p.name),
                "principalId": PLUGIN_SP,
                "resourceId": sp,
            })),
            PermKind::Delegated => match scopes.iter_mut().find(|(r, _)| r == sp) {
                Some((_, l)) => l.push(p.name.to_string()),
                None => scopes.push((sp.to_string(), vec![p.name.to_string()])),
            },
        }
    }
    let grants: Vec<Value> = scopes
        .into_iter()
        .map(|(r, l)| {
            json!({"id": format!("g-{r}"), "clientId": PLUGIN_SP, "consentType": "AllPrincipals", "resourceId": r, "scope": l.join(" ")})
        })
        .collect();
    json!({
        "servicePrincipalId": PLUGIN_SP,
        "appRoleAssignments": assignments,
        "oauth2PermissionGrants": grants,
        "resources": res,
    })
}

fn ids(services: &[Service]) -> JsValue {
    js(Value::Array(
        services.iter().map(|s| json!(s.id())).collect(),
    ))
}

#[wasm_bindgen_test]
fn all_permissions_set() {
    let services = [Service::Mail, Service::Drive];
    let r = back(compare_permissions(ids(&services), js(grants(&services, &[]))).unwrap());
    assert_eq!(r["allSet"], true, "{r}");
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["extra"], json!([]));
    assert_eq!(r["lines"], json!(["All permissions are correctly set"]));
}

#[wasm_bindgen_test]
fn each_kind_of_missing_permission_in_the_spec_words() {
    let services = [Service::Chats];
    let manifest = permissions::manifest(&services);
    let app_perm = manifest
        .iter()
        .find(|p| p.kind == PermKind::Application && !p.protected)
        .unwrap()
        .name;
    let r = back(
        compare_permissions(
            ids(&services),
            js(grants(&services, &["Chat.ReadWrite", app_perm])),
        )
        .unwrap(),
    );
    assert_eq!(r["allSet"], false);
    let lines: Vec<&str> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&format!("Delegated permission Chat.ReadWrite was not found in your Azure service principal {PLUGIN_SP}").as_str()), "{lines:?}");
    assert!(lines.contains(&format!("Application permission {app_perm} was not found in your Azure service principal {PLUGIN_SP}").as_str()), "{lines:?}");
    assert!(lines.contains(&"Please review your app permissions"));
    let missing = r["missing"].as_array().unwrap();
    assert!(missing.iter().any(|m| m["name"] == "Chat.ReadWrite"
        && m["kind"] == "Delegated"
        && m["resource"] == "Microsoft Graph"
        && m["resourceAppId"] == "00000003-0000-0000-c000-000000000000"));
    // Protected APIs present are reported as not checkable.
    assert!(
        lines.iter().any(|l| l.contains("cannot be checked")),
        "{lines:?}"
    );
}

#[wasm_bindgen_test]
fn a_user_consent_grant_does_not_count() {
    let services = [Service::Mail];
    let mut g = grants(&services, &[]);
    for grant in g["oauth2PermissionGrants"].as_array_mut().unwrap() {
        grant["consentType"] = json!("Principal");
    }
    let r = back(compare_permissions(ids(&services), js(g)).unwrap());
    let delegated = permissions::manifest(&services)
        .iter()
        .filter(|p| p.kind == PermKind::Delegated)
        .count();
    assert_eq!(r["missing"].as_array().unwrap().len(), delegated, "{r}");
}

#[wasm_bindgen_test]
fn extra_permissions_are_reported() {
    let services = [Service::Mail];
    let mut g = grants(&services, &[]);
    let res = resources();
    let extra_id = id_of(
        &res,
        GRAPH_SP,
        PermKind::Application,
        "Directory.ReadWrite.All",
    );
    g["appRoleAssignments"]
        .as_array_mut()
        .unwrap()
        .push(json!({"appRoleId": extra_id, "resourceId": GRAPH_SP}));
    g["oauth2PermissionGrants"][0]["scope"] = json!(format!(
        "{} Sites.FullControl.All",
        g["oauth2PermissionGrants"][0]["scope"].as_str().unwrap()
    ));
    // Graph's list envelopes are accepted too.
    g["appRoleAssignments"] = json!({"value": g["appRoleAssignments"].clone()});
    let r = back(compare_permissions(ids(&services), js(g)).unwrap());
    assert_eq!(r["allSet"], true);
    let extra = r["extra"].as_array().unwrap();
    assert!(
        extra
            .iter()
            .any(|e| e["name"] == "Directory.ReadWrite.All" && e["kind"] == "Application"),
        "{r}"
    );
    assert!(
        extra
            .iter()
            .any(|e| e["name"] == "Sites.FullControl.All" && e["kind"] == "Delegated"),
        "{r}"
    );
    let lines = r["lines"].to_string();
    assert!(lines.contains("Application permission Directory.ReadWrite.All (Microsoft Graph) is granted but not needed"), "{lines}");
}

#[wasm_bindgen_test]
fn the_service_principal_id_falls_back_to_the_grants() {
    let services = [Service::Mail];
    let mut g = grants(&services, &["Mail.ReadWrite"]);
    g.as_object_mut().unwrap().remove("servicePrincipalId");
    let r = back(compare_permissions(ids(&services), js(g)).unwrap());
    assert!(r["lines"][0].as_str().unwrap().ends_with(PLUGIN_SP), "{r}");
}

#[wasm_bindgen_test]
fn compare_permissions_refuses_bad_input() {
    let services = [Service::Mail];
    let good = grants(&services, &[]);
    let m = message(compare_permissions(s("mail"), js(good.clone())));
    assert_eq!(m, "services must be an array of service ids");
    let m = message(compare_permissions(
        js(json!(["mail", "fax"])),
        js(good.clone()),
    ));
    assert!(
        m.starts_with("unknown service \"fax\"") && m.contains("onenote"),
        "{m}"
    );
    let m = message(compare_permissions(js(json!([1])), js(good.clone())));
    assert!(m.starts_with("unknown service 1"), "{m}");
    let m = message(compare_permissions(ids(&services), U));
    assert_eq!(m, "servicePrincipalGrants is missing");
    let m = message(compare_permissions(ids(&services), js(json!([]))));
    assert!(
        m.starts_with("servicePrincipalGrants must be an object"),
        "{m}"
    );
    for key in ["appRoleAssignments", "oauth2PermissionGrants", "resources"] {
        let mut g = good.clone();
        g.as_object_mut().unwrap().remove(key);
        assert_eq!(
            message(compare_permissions(ids(&services), js(g))),
            format!("{key} is missing")
        );
        let mut g = good.clone();
        g[key] = json!("x");
        assert!(message(compare_permissions(ids(&services), js(g)))
            .starts_with(&format!("{key} must be an array")));
    }
    let mut g = good.clone();
    g["appRoleAssignments"] = json!([{"resourceId": GRAPH_SP}]);
    assert_eq!(
        message(compare_permissions(ids(&services), js(g))),
        "appRoleAssignments[0] has no appRoleId"
    );
    let mut g = good.clone();
    g["oauth2PermissionGrants"] = json!([{"scope": "Mail.Read"}]);
    assert_eq!(
        message(compare_permissions(ids(&services), js(g))),
        "oauth2PermissionGrants[0] has no resourceId"
    );
    let mut g = good.clone();
    g["resources"] = json!([{"id": "x"}]);
    assert_eq!(
        message(compare_permissions(ids(&services), js(g))),
        "resources[0] has no appId"
    );
    let mut g = good;
    g["resources"].as_array_mut().unwrap().remove(0);
    let m = message(compare_permissions(ids(&services), js(g)));
    assert!(
        m.contains("Microsoft Graph") && m.contains("00000003-0000-0000-c000-000000000000"),
        "{m}"
    );
}

// --- credentialExpiry ----------------------------------------------------------------------------

const NOW: f64 = 1_767_225_600.0; // 2026-01-01T00:00:00Z

#[wasm_bindgen_test]
fn credential_expiry_flags() {
    let app = json!({
        "id": "x", "appId": "y",
        "passwordCredentials": [
            {"keyId": "k1", "displayName": "bacula-m365-registrator run abc", "startDateTime": "2024-01-01T00:00:00Z", "endDateTime": "2026-01-31T00:00:00Z"},
            {"keyId": "k2", "displayName": "manual", "endDateTime": "2025-12-01T00:00:00.1234567Z"},
            {"keyId": "k3", "displayName": null, "endDateTime": "2028-01-01T00:00:00Z"}
        ],
        "keyCredentials": [
            {"keyId": "c1", "displayName": "bacula-m365-registrator certificate", "endDateTime": "2027-06-01T00:00:00Z", "type": "AsymmetricX509Cert", "usage": "Verify"},
            {"keyId": "c2", "displayName": "odd", "endDateTime": "garbage"}
        ]
    });
    let r = back(credential_expiry(js(app), JsValue::from_f64(NOW)).unwrap());
    let l = r.as_array().unwrap();
    assert_eq!(l.len(), 5);
    assert_eq!(l[0]["kind"], "secret");
    assert_eq!(l[0]["keyId"], "k1");
    assert_eq!(
        (l[0]["expiring"].as_bool(), l[0]["expired"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(l[0]["madeByTool"], true);
    assert_eq!(l[0]["endUnix"], 1_769_817_600i64);
    assert_eq!(l[0]["start"], "2024-01-01T00:00:00Z");
    assert_eq!(
        (l[1]["expiring"].as_bool(), l[1]["expired"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(l[1]["madeByTool"], false);
    assert_eq!(
        (l[2]["expiring"].as_bool(), l[2]["expired"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(l[2]["displayName"], Value::Null);
    assert_eq!(l[3]["kind"], "certificate");
    assert_eq!(l[3]["expiring"], false);
    assert_eq!(l[4]["endUnix"], Value::Null);
    assert_eq!(l[4]["expiring"], false);
    // Only one of the two lists.
    let r =
        back(credential_expiry(js(json!({"keyCredentials": []})), JsValue::from_f64(NOW)).unwrap());
    assert_eq!(r, json!([]));
}

#[wasm_bindgen_test]
fn credential_expiry_refuses_bad_input() {
    let now = JsValue::from_f64(NOW);
    assert_eq!(
        message(credential_expiry(U, now.clone())),
        "application is missing"
    );
    assert_eq!(
        message(credential_expiry(js(json!([1])), now.clone())),
        "application must be a Graph application object"
    );
    let m = message(credential_expiry(js(json!({"id": "x"})), now.clone()));
    assert!(
        m.contains("$select=passwordCredentials,keyCredentials"),
        "{m}"
    );
    let m = message(credential_expiry(
        js(json!({"passwordCredentials": {"a": 1}})),
        now.clone(),
    ));
    assert_eq!(m, "application.passwordCredentials must be an array");
    let m = message(credential_expiry(
        js(json!({"passwordCredentials": [{"endDateTime": 5}]})),
        now,
    ));
    assert!(m.starts_with("application.passwordCredentials:"), "{m}");
    let m = message(credential_expiry(
        js(json!({"keyCredentials": []})),
        JsValue::from_f64(-5.0),
    ));
    assert!(m.starts_with("nowUnix must be"), "{m}");
}
