//! The emulator's Graph endpoints, in-process with a fake clock: status codes, ODataError
//! bodies, `$filter`/`$select`, upserts, credentials, owners, service principals, app role
//! assignments, delegated grants, authorization by role and scope, schema rejection, lag,
//! faults, `$batch`, the log and the state.

mod emulator_support;
use emulator_support::*;
use m365_registrator::emulator::{FaultKind, FaultRule, Lag, Outcome, Role};
use m365_registrator::engine::http::{HttpRequest, Method};
use serde_json::{json, Value};

#[test]
fn bearer_checked() {
    let mut t = T::new(true);
    let r = t.send(HttpRequest::new(Method::Get, format!("{BASE}/v1.0/me")));
    assert_eq!(r.status, 401);
    assert_eq!(err_code(&r), "InvalidAuthenticationToken");
    let b = body(&r);
    assert!(
        b["error"]["innerError"]["date"].as_str().unwrap().len() == 19,
        "{b}"
    );
    assert_eq!(
        b["error"]["innerError"]["request-id"],
        r.get_header("request-id").unwrap()
    );
    assert_eq!(t.get("/v1.0/me", "garbage").status, 401);
    let tok = t.sign_in("admin");
    // A token signed by someone else.
    let mut parts: Vec<&str> = tok.split('.').collect();
    parts[2] = "AAAA";
    assert_eq!(t.get("/v1.0/me", &parts.join(".")).status, 401);
    assert_eq!(t.get("/v1.0/me", &tok).status, 200);
    t.advance(3600 * 1000);
    let r = t.get("/v1.0/me", &tok);
    assert_eq!(r.status, 401);
    assert!(err_msg(&r).contains("expired"));
}

#[test]
fn me_and_organization_and_request_ids() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let r = t.send(
        HttpRequest::new(Method::Get, format!("{BASE}/v1.0/me"))
            .header("Authorization", format!("Bearer {tok}"))
            .header("client-request-id", "cr-1")
            .header("Origin", PAGE_ORIGIN),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.get_header("client-request-id"), Some("cr-1"));
    assert_eq!(
        r.get_header("Access-Control-Allow-Origin"),
        Some(PAGE_ORIGIN)
    );
    assert!(r
        .get_header("Access-Control-Expose-Headers")
        .unwrap()
        .contains("Retry-After"));
    let me = body(&r);
    assert_eq!(me["userPrincipalName"], "admin@contoso.onmicrosoft.com");
    assert!(me["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/v1.0/$metadata#users/$entity"));
    let org = body(&t.get("/v1.0/organization", &tok));
    assert_eq!(org["value"][0]["id"], TENANT);
    assert_eq!(org["value"][0]["displayName"], "Contoso Backup Lab");
    assert_eq!(
        org["value"][0]["verifiedDomains"][0]["name"],
        "contoso.onmicrosoft.com"
    );
    let sel = body(&t.get("/v1.0/organization?$select=id,displayName", &tok));
    assert_eq!(sel["value"][0].as_object().unwrap().len(), 2);
}

#[test]
fn applications_create_get_filter_select_delete() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let r = t.post(
        "/v1.0/applications",
        &tok,
        json!({"displayName": "bacula-m365-plugin-standalone", "signInAudience": "AzureADMyOrg",
               "requiredResourceAccess": [{"resourceAppId": GRAPH, "resourceAccess": [{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"}]}]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.get_header("Location").is_some());
    let app = body(&r);
    assert!(app["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("#applications/$entity"));
    let (id, app_id) = (
        app["id"].as_str().unwrap().to_string(),
        app["appId"].as_str().unwrap().to_string(),
    );
    assert_eq!(app["publisherDomain"], "contoso.onmicrosoft.com");
    assert_eq!(app["passwordCredentials"], json!([]));
    t.create_app(&tok, "other-app");

    assert_eq!(
        body(&t.get(&format!("/v1.0/applications/{id}"), &tok))["appId"],
        app_id
    );
    assert_eq!(
        t.get(&format!("/v1.0/applications/{id}?$select=nope"), &tok)
            .status,
        400
    );
    let sel = body(&t.get(
        &format!("/v1.0/applications/{id}?$select=appId,keyCredentials"),
        &tok,
    ));
    assert_eq!(sel.as_object().unwrap().len(), 3, "{sel}");
    assert_eq!(
        body(&t.get(&format!("/v1.0/applications(appId='{app_id}')"), &tok))["id"],
        id
    );
    let l = body(&t.get(
        "/v1.0/applications?$filter=displayName%20eq%20'bacula-m365-plugin-standalone'",
        &tok,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
    assert!(l["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("#applications"));
    let l = body(&t.get(
        &format!("/v1.0/applications?$filter=appId eq '{app_id}'&$select=id,appId"),
        &tok,
    ));
    assert_eq!(
        l["value"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["appId", "id"]
    );
    let l = body(&t.get(&format!("/v1.0/applications?$filter=appId in ('{app_id}', '00000000-0000-0000-0000-000000000000')"), &tok));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
    let l = body(&t.get(
        "/v1.0/applications?$filter=startswith(displayName,'BACULA')",
        &tok,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
    let l = body(&t.get("/v1.0/applications?$top=1", &tok));
    assert!(l["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("$skiptoken="));
    // Advanced operators need ConsistencyLevel + $count.
    let r = t.get("/v1.0/applications?$filter=displayName ne 'x'", &tok);
    assert_eq!(r.status, 400);
    assert_eq!(err_code(&r), "Request_UnsupportedQuery");
    let r = t.send(
        HttpRequest::new(
            Method::Get,
            format!("{BASE}/v1.0/applications?$filter=displayName ne 'x'&$count=true"),
        )
        .header("Authorization", format!("Bearer {tok}"))
        .header("ConsistencyLevel", "eventual"),
    );
    assert_eq!(body(&r)["@odata.count"], 2);
    // Bad $select / $filter property / syntax.
    assert_eq!(t.get("/v1.0/applications?$select=nope", &tok).status, 400);
    assert_eq!(
        t.get("/v1.0/applications?$filter=nope eq 'x'", &tok).status,
        400
    );
    assert_eq!(
        t.get("/v1.0/applications?$filter=displayName eq", &tok)
            .status,
        400
    );
    // Delete.
    assert_eq!(
        t.delete(&format!("/v1.0/applications/{id}"), &tok).status,
        204
    );
    let r = t.get(&format!("/v1.0/applications/{id}"), &tok);
    assert_eq!(r.status, 404);
    assert_eq!(err_code(&r), "Request_ResourceNotFound");
    assert_eq!(err_msg(&r), format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."));
}

#[test]
fn schema_and_graph_rules_reject_bad_bodies() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let cases = [
        (
            json!({"displayName": "x", "displayNme": "y"}),
            "Property 'displayNme' does not exist on type 'microsoft.graph.application'.",
        ),
        (
            json!({"displayName": "x", "spa": {"redirectUri": ["a"]}}),
            "Property 'redirectUri' does not exist on type 'microsoft.graph.spaApplication'.",
        ),
        (
            json!({"displayName": "x", "requiredResourceAccess": [{"resourceAppId": 123}]}),
            "resourceAppId",
        ),
        (
            json!({"displayName": "x", "spa": {"redirectUris": "http://x"}}),
            "redirectUris",
        ),
        (
            json!({"displayName": "x", "appId": "11111111-1111-1111-1111-111111111111"}),
            "Property 'appId' is read-only",
        ),
        (
            json!({"displayName": "x", "passwordCredentials": []}),
            "passwordCredentials",
        ),
        (json!({"signInAudience": "AzureADMyOrg"}), "displayName"),
        (
            json!({"displayName": "x", "signInAudience": "Everyone"}),
            "signInAudience",
        ),
        (
            json!({"displayName": "x", "requiredResourceAccess": [{"resourceAppId": GRAPH, "resourceAccess": [{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Delegated"}]}]}),
            "type",
        ),
        (
            json!({"displayName": "x", "keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": "bm90IGEgY2VydA=="}]}),
            "key",
        ),
    ];
    for (b, needle) in cases {
        let r = t.post("/v1.0/applications", &tok, b.clone());
        assert_eq!(r.status, 400, "{b} → {}", r.body);
        assert_eq!(err_code(&r), "Request_BadRequest", "{b}");
        assert!(err_msg(&r).contains(needle), "{b} → {}", err_msg(&r));
    }
    for raw in [
        "",
        "{",
        "[1,2]",
        "null",
        "\"x\"",
        "{\"displayName\": \"x\"",
        "\u{feff}",
    ] {
        let mut r = HttpRequest::new(Method::Post, format!("{BASE}/v1.0/applications"))
            .header("Authorization", format!("Bearer {tok}"));
        r.body = Some(raw.to_string());
        let resp = t.send(r);
        assert_eq!(resp.status, 400, "{raw:?}");
    }
    let app_id = t.create_app(&tok, "a")["id"].as_str().unwrap().to_string();
    let r = t.post(
        &format!("/v1.0/applications/{app_id}/addPassword"),
        &tok,
        json!({"passwordCredential": {"endDateTime": "next year"}}),
    );
    assert_eq!(r.status, 400);
    assert!(t.emu.state_json()["applications"].as_array().unwrap().len() == 1);
}

#[test]
fn upsert_by_unique_name_and_sp_by_app_id() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let path = "/v1.0/applications(uniqueName='bacula-m365-plugin-standalone')";
    let body_ =
        json!({"displayName": "bacula-m365-plugin-standalone", "signInAudience": "AzureADMyOrg"});
    assert_eq!(t.patch(path, &tok, body_.clone()).status, 404);
    let prefer = |t: &mut T, b: Value| {
        t.send(
            HttpRequest::new(Method::Patch, format!("{BASE}{path}"))
                .header("Authorization", format!("Bearer {tok}"))
                .header("Prefer", "create-if-missing")
                .json(&b),
        )
    };
    let r = prefer(&mut t, body_.clone());
    assert_eq!(r.status, 201, "{}", r.body);
    let app = body(&r);
    assert_eq!(app["uniqueName"], "bacula-m365-plugin-standalone");
    let r = prefer(
        &mut t,
        json!({"displayName": "bacula-m365-plugin-standalone", "notes": "v2"}),
    );
    assert_eq!(r.status, 204);
    assert_eq!(body(&t.get(path, &tok))["notes"], "v2");
    assert_eq!(
        t.emu.state_json()["applications"].as_array().unwrap().len(),
        1
    );
    // uniqueName clash on create.
    let r = t.post(
        "/v1.0/applications",
        &tok,
        json!({"displayName": "dup", "uniqueName": "bacula-m365-plugin-standalone"}),
    );
    assert_eq!(r.status, 409);

    let app_id = app["appId"].as_str().unwrap();
    let sp_path = format!("/v1.0/servicePrincipals(appId='{app_id}')");
    assert_eq!(t.patch(&sp_path, &tok, json!({"tags": ["x"]})).status, 404);
    let r = t.send(
        HttpRequest::new(Method::Patch, format!("{BASE}{sp_path}"))
            .header("Authorization", format!("Bearer {tok}"))
            .header("Prefer", "create-if-missing")
            .json(&json!({"tags": ["WindowsAzureActiveDirectoryIntegratedApp"]})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(body(&r)["appId"], app_id);
    assert_eq!(body(&r)["displayName"], "bacula-m365-plugin-standalone");
    let r = t.send(
        HttpRequest::new(Method::Patch, format!("{BASE}{sp_path}"))
            .header("Authorization", format!("Bearer {tok}"))
            .header("Prefer", "create-if-missing")
            .json(&json!({"tags": []})),
    );
    assert_eq!(r.status, 204);
    // POST a second SP for the same app.
    let r = t.post("/v1.0/servicePrincipals", &tok, json!({"appId": app_id}));
    assert_eq!(r.status, 409, "{}", r.body);
    // SP for an unknown app.
    let r = t.post(
        "/v1.0/servicePrincipals",
        &tok,
        json!({"appId": "12345678-1234-1234-1234-123456789012"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(err_msg(&r), "The appId '12345678-1234-1234-1234-123456789012' of the service principal does not reference a valid application object.");
    let l = body(&t.get(
        &format!("/v1.0/servicePrincipals?$filter=appId eq '{app_id}'"),
        &tok,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
}

#[test]
fn passwords_policy_and_state_never_shows_secrets() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let id = t.create_app(&tok, "p")["id"].as_str().unwrap().to_string();
    let r = t.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        &tok,
        json!({"passwordCredential": {"displayName": "bacula"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let pw = body(&r);
    let secret = pw["secretText"].as_str().unwrap();
    assert_eq!(secret.len(), 40);
    assert_eq!(pw["hint"], &secret[..3]);
    assert_eq!(pw["displayName"], "bacula");
    assert_eq!(pw["startDateTime"], "2026-06-01T00:00:00Z");
    assert_eq!(pw["endDateTime"], "2028-05-31T00:00:00Z");
    let st = t.emu.state_json().to_string();
    assert!(!st.contains(secret));
    let app = body(&t.get(&format!("/v1.0/applications/{id}"), &tok));
    assert!(app["passwordCredentials"][0]["secretText"].is_null());
    assert!(!format!("{:?}", t.emu.log()).contains(secret));
    // Policy: 180 days max.
    t.emu.set_password_max_lifetime_days(Some(180));
    let r = t.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        &tok,
        json!({"passwordCredential": {"displayName": "b"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(err_code(&r), "CredentialInvalidLifetimeAsPerAppPolicy");
    let r = t.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        &tok,
        json!({"passwordCredential": {"endDateTime": "2026-09-01T00:00:00Z"}}),
    );
    assert_eq!(r.status, 200);
    // removePassword.
    let key = pw["keyId"].as_str().unwrap();
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/removePassword"),
            &tok,
            json!({"keyId": key})
        )
        .status,
        204
    );
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/removePassword"),
            &tok,
            json!({"keyId": key})
        )
        .status,
        400
    );
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/addPassword"),
            &tok,
            json!({"passwordCredential": {"secretText": "mine"}})
        )
        .status,
        400
    );
}

#[test]
fn key_credentials_patch_add_key_with_proof_remove_key() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let app = t.create_app(&tok, "k");
    let id = app["id"].as_str().unwrap().to_string();
    let c1 = cert(1);
    assert_eq!(
        t.patch(
            &format!("/v1.0/applications/{id}"),
            &tok,
            json!({"keyCredentials": [key_credential(&c1)]})
        )
        .status,
        204
    );
    let got = body(&t.get(&format!("/v1.0/applications/{id}"), &tok));
    let k1 = &got["keyCredentials"][0];
    assert!(k1["key"].is_null());
    assert_eq!(k1["startDateTime"], "2026-01-01T00:00:00Z");
    assert_eq!(k1["endDateTime"], "2028-01-01T00:00:00Z");
    // Dates that do not match the certificate.
    let mut bad = key_credential(&c1);
    bad["endDateTime"] = json!("2030-01-01T00:00:00Z");
    assert_eq!(
        t.patch(
            &format!("/v1.0/applications/{id}"),
            &tok,
            json!({"keyCredentials": [bad]})
        )
        .status,
        400
    );

    // addKey: a proof signed by the current key.
    let c2 = cert(3);
    let now = t.now / 1000;
    let proof = c1.sign(&json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": id, "nbf": now, "exp": now + 600}));
    let r = t.post(
        &format!("/v1.0/applications/{id}/addKey"),
        &tok,
        json!({"keyCredential": key_credential(&c2), "passwordCredential": null, "proof": proof}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let k2 = body(&r)["keyId"].as_str().unwrap().to_string();
    // A proof signed by an unknown key, or for another app.
    let forged = cert(4).sign(&json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": id, "nbf": now, "exp": now + 600}));
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/addKey"),
            &tok,
            json!({"keyCredential": key_credential(&cert(5)), "proof": forged})
        )
        .status,
        400
    );
    let wrong_iss = c1.sign(&json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": "x", "nbf": now, "exp": now + 600}));
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/addKey"),
            &tok,
            json!({"keyCredential": key_credential(&cert(5)), "proof": wrong_iss})
        )
        .status,
        400
    );
    // removeKey with a proof.
    let proof = c2.sign(&json!({"aud": "00000002-0000-0000-c000-000000000000", "iss": id, "nbf": now, "exp": now + 600}));
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/removeKey"),
            &tok,
            json!({"keyId": k1["keyId"], "proof": proof})
        )
        .status,
        204
    );
    let got = body(&t.get(&format!("/v1.0/applications/{id}"), &tok));
    assert_eq!(got["keyCredentials"].as_array().unwrap().len(), 1);
    assert_eq!(got["keyCredentials"][0]["keyId"], k2);
    // PATCH keeping an existing key without `key` (as GET returns it).
    let keep = got["keyCredentials"][0].clone();
    assert_eq!(
        t.patch(
            &format!("/v1.0/applications/{id}"),
            &tok,
            json!({"keyCredentials": [keep]})
        )
        .status,
        204
    );
}

#[test]
fn owners_ref() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let id = t.create_app(&tok, "o")["id"].as_str().unwrap().to_string();
    let me = body(&t.get("/v1.0/me", &tok))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{me}")});
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/owners/$ref"),
            &tok,
            b.clone()
        )
        .status,
        204
    );
    let r = t.post(&format!("/v1.0/applications/{id}/owners/$ref"), &tok, b);
    assert_eq!(r.status, 400);
    assert_eq!(err_code(&r), "Request_BadRequest");
    assert_eq!(err_msg(&r), "One or more added object references already exist for the following modified properties: 'owners'.");
    let r = t.post(&format!("/v1.0/applications/{id}/owners/$ref"), &tok, json!({"@odata.id": format!("{BASE}/v1.0/directoryObjects/00000000-0000-0000-0000-00000000dead")}));
    assert_eq!(r.status, 404);
    let owners = body(&t.get(&format!("/v1.0/applications/{id}/owners"), &tok));
    assert_eq!(owners["value"][0]["id"], me);
    assert_eq!(owners["value"][0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(
        t.delete(&format!("/v1.0/applications/{id}/owners/{me}/$ref"), &tok)
            .status,
        204
    );
}

#[test]
fn app_role_assignments_and_roles_of_the_signed_in_user() {
    let mut t = T::new(true);
    let admin = t.sign_in("admin");
    let app = t.create_app(&admin, "r");
    let sp = body(&t.post(
        "/v1.0/servicePrincipals",
        &admin,
        json!({"appId": app["appId"]}),
    ));
    let sp_id = sp["id"].as_str().unwrap().to_string();
    let graph = t.sp_id(&admin, GRAPH);
    let role = t.graph_role_id("Mail.ReadWrite");
    let b = json!({"principalId": sp_id, "resourceId": graph, "appRoleId": role});

    // Application Administrator: 403 for Microsoft Graph app roles.
    let appadmin = t.sign_in("appadmin");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &appadmin,
        b.clone(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(err_code(&r), "Authorization_RequestDenied");
    assert_eq!(
        err_msg(&r),
        "Insufficient privileges to complete the operation."
    );
    // …but may create apps and grants.
    assert_eq!(
        t.post(
            "/v1.0/applications",
            &appadmin,
            json!({"displayName": "by-appadmin"})
        )
        .status,
        201
    );
    // A plain user may read but not write.
    let user = t.sign_in("user");
    assert_eq!(
        t.post(
            "/v1.0/applications",
            &user,
            json!({"displayName": "by-user"})
        )
        .status,
        403
    );
    assert_eq!(t.get("/v1.0/applications", &user).status, 200);

    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &admin,
        b.clone(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let a = body(&r);
    assert_eq!(a["principalType"], "ServicePrincipal");
    assert_eq!(a["resourceDisplayName"], "Microsoft Graph");
    assert_eq!(a["principalDisplayName"], "r");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &admin,
        b.clone(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        err_msg(&r),
        "Permission being assigned already exists on the object."
    );
    // The same through appRoleAssignments of the principal.
    let role2 = t.graph_role_id("Files.ReadWrite.All");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"),
        &admin,
        json!({"principalId": sp_id, "resourceId": graph, "appRoleId": role2}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let l = body(&t.get(
        &format!("/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"),
        &admin,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 2);
    // Unknown role id.
    let r = t.post(&format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"), &admin, json!({"principalId": sp_id, "resourceId": graph, "appRoleId": "00000000-1111-2222-3333-444444444444"}));
    assert_eq!(r.status, 400);
    // A permission missing from the tenant.
    t.emu.remove_app_role(GRAPH, "Sites.FullControl.All");
    let gone = t.graph_role_id("Sites.FullControl.All");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &admin,
        json!({"principalId": sp_id, "resourceId": graph, "appRoleId": gone}),
    );
    assert_eq!(r.status, 400);
    assert!(err_msg(&r).contains("not found"), "{}", r.body);
    let sel = body(&t.get(
        &format!("/v1.0/servicePrincipals/{graph}?$select=appRoles"),
        &admin,
    ));
    assert!(!sel["appRoles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["value"] == "Sites.FullControl.All"));
    // Delete an assignment.
    let aid = a["id"].as_str().unwrap();
    assert_eq!(
        t.delete(
            &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo/{aid}"),
            &admin
        )
        .status,
        204
    );
    // Role taken away at run time.
    t.emu.set_user_role("admin", Role::ApplicationAdministrator);
    assert_eq!(
        t.post(
            &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
            &admin,
            b
        )
        .status,
        403
    );
}

#[test]
fn delegated_grants() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let app = t.create_app(&tok, "g");
    let sp = body(&t.post(
        "/v1.0/servicePrincipals",
        &tok,
        json!({"appId": app["appId"]}),
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let graph = t.sp_id(&tok, GRAPH);
    let b = json!({"clientId": sp, "consentType": "AllPrincipals", "resourceId": graph, "scope": "User.Read"});
    let r = t.post("/v1.0/oauth2PermissionGrants", &tok, b.clone());
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = body(&r)["id"].as_str().unwrap().to_string();
    let r = t.post("/v1.0/oauth2PermissionGrants", &tok, b);
    assert_eq!(r.status, 409);
    assert_eq!(err_code(&r), "Request_MultipleObjectsWithSameKeyValue");
    let l = body(&t.get(
        &format!(
            "/v1.0/oauth2PermissionGrants?$filter=clientId eq '{sp}' and resourceId eq '{graph}'"
        ),
        &tok,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.patch(
            &format!("/v1.0/oauth2PermissionGrants/{gid}"),
            &tok,
            json!({"scope": "User.Read Chat.ReadWrite"})
        )
        .status,
        204
    );
    assert_eq!(
        body(&t.get(&format!("/v1.0/oauth2PermissionGrants/{gid}"), &tok))["scope"],
        "User.Read Chat.ReadWrite"
    );
    assert_eq!(
        t.patch(
            &format!("/v1.0/oauth2PermissionGrants/{gid}"),
            &tok,
            json!({"clientId": graph})
        )
        .status,
        400
    );
    let l = body(&t.get(
        &format!("/v1.0/servicePrincipals/{sp}/oauth2PermissionGrants"),
        &tok,
    ));
    assert_eq!(l["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.delete(&format!("/v1.0/oauth2PermissionGrants/{gid}"), &tok)
            .status,
        204
    );
    assert_eq!(
        t.delete(&format!("/v1.0/oauth2PermissionGrants/{gid}"), &tok)
            .status,
        404
    );
    let r = t.post(
        "/v1.0/oauth2PermissionGrants",
        &tok,
        json!({"clientId": sp, "resourceId": graph, "scope": "x"}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn app_only_tokens_are_authorized_by_roles() {
    let mut t = T::new(true);
    let admin = t.sign_in("admin");
    let app = t.create_app(&admin, "daemon");
    let id = app["id"].as_str().unwrap().to_string();
    let app_id = app["appId"].as_str().unwrap().to_string();
    let secret = body(&t.post(
        &format!("/v1.0/applications/{id}/addPassword"),
        &admin,
        json!({}),
    ))["secretText"]
        .as_str()
        .unwrap()
        .to_string();
    let sp = body(&t.post("/v1.0/servicePrincipals", &admin, json!({"appId": app_id})))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tok = body(&t.client_credentials(&app_id, &secret))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(t.get("/v1.0/applications", &tok).status, 403);
    assert_eq!(t.get("/v1.0/me", &tok).status, 400);
    let graph = t.sp_id(&admin, GRAPH);
    let role = t.graph_role_id("Application.ReadWrite.All");
    t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &admin,
        json!({"principalId": sp, "resourceId": graph, "appRoleId": role}),
    );
    let tok = body(&t.client_credentials(&app_id, &secret))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(t.get("/v1.0/applications", &tok).status, 200);
    assert_eq!(
        t.post(
            "/v1.0/applications",
            &tok,
            json!({"displayName": "made-by-daemon"})
        )
        .status,
        201
    );
}

#[test]
fn replication_lag_hides_new_objects_and_fails_dependent_calls() {
    let mut c = cfg(true);
    c.lag = Lag {
        app_ms: 30_000,
        sp_ms: 20_000,
    };
    let mut t = T::with(c);
    let tok = t.sign_in("admin");
    let app = t.create_app(&tok, "lagged");
    let id = app["id"].as_str().unwrap().to_string();
    let app_id = app["appId"].as_str().unwrap().to_string();
    let r = t.get(&format!("/v1.0/applications/{id}"), &tok);
    assert_eq!(r.status, 404);
    assert_eq!(err_msg(&r), format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."));
    assert_eq!(
        t.get(&format!("/v1.0/applications(appId='{app_id}')"), &tok)
            .status,
        404
    );
    assert_eq!(
        body(&t.get(
            &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
            &tok
        ))["value"],
        json!([])
    );
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/addPassword"),
            &tok,
            json!({})
        )
        .status,
        404
    );
    assert_eq!(
        t.patch(
            &format!("/v1.0/applications/{id}"),
            &tok,
            json!({"notes": "x"})
        )
        .status,
        404
    );
    let me = body(&t.get("/v1.0/me", &tok))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/owners/$ref"),
            &tok,
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{me}")})
        )
        .status,
        404
    );
    let r = t.post("/v1.0/servicePrincipals", &tok, json!({"appId": app_id}));
    assert_eq!(r.status, 400);
    assert!(err_msg(&r).contains("does not reference a valid application object"));
    t.advance(30_000);
    assert_eq!(t.get(&format!("/v1.0/applications/{id}"), &tok).status, 200);
    assert_eq!(
        t.post(
            &format!("/v1.0/applications/{id}/addPassword"),
            &tok,
            json!({})
        )
        .status,
        200
    );
    let r = t.post("/v1.0/servicePrincipals", &tok, json!({"appId": app_id}));
    assert_eq!(r.status, 201);
    let sp = body(&r)["id"].as_str().unwrap().to_string();
    // The new SP is invisible to dependent calls for sp_ms.
    let graph = t.sp_id(&tok, GRAPH);
    let role = t.graph_role_id("User.Read.All");
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &tok,
        json!({"principalId": sp, "resourceId": graph, "appRoleId": role}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = t.post("/v1.0/oauth2PermissionGrants", &tok, json!({"clientId": sp, "consentType": "AllPrincipals", "resourceId": graph, "scope": "User.Read"}));
    assert_eq!(r.status, 404);
    assert_eq!(
        t.get(&format!("/v1.0/servicePrincipals/{sp}"), &tok).status,
        404
    );
    // The other observed shape of the same race.
    t.emu.config_mut().assignment_lag_400 = true;
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &tok,
        json!({"principalId": sp, "resourceId": graph, "appRoleId": role}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(err_msg(&r), "Not a valid reference update.");
    t.advance(20_000);
    let r = t.post(
        &format!("/v1.0/servicePrincipals/{graph}/appRoleAssignedTo"),
        &tok,
        json!({"principalId": sp, "resourceId": graph, "appRoleId": role}),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn faults_throttle_5xx_drop_lag404_latency() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    t.emu.add_fault(
        FaultRule::new(FaultKind::Throttle)
            .method("POST")
            .path_contains("/applications")
            .nth(2)
            .retry_after(7),
    );
    assert_eq!(
        t.post("/v1.0/applications", &tok, json!({"displayName": "a"}))
            .status,
        201
    );
    let r = t.post("/v1.0/applications", &tok, json!({"displayName": "b"}));
    assert_eq!(r.status, 429);
    assert_eq!(r.get_header("Retry-After"), Some("7"));
    assert_eq!(err_code(&r), "TooManyRequests");
    assert_eq!(
        t.post("/v1.0/applications", &tok, json!({"displayName": "c"}))
            .status,
        201
    );
    assert_eq!(
        t.emu.state_json()["applications"].as_array().unwrap().len(),
        2
    );

    t.emu.set_faults(vec![FaultRule::new(FaultKind::Unavailable)
        .path_contains("/me")
        .every(2)
        .times(1)]);
    assert_eq!(t.get("/v1.0/me", &tok).status, 200);
    let r = t.get("/v1.0/me", &tok);
    assert_eq!(r.status, 503);
    assert!(r.get_header("Retry-After").is_some());
    assert_eq!(t.get("/v1.0/me", &tok).status, 200);
    assert_eq!(t.get("/v1.0/me", &tok).status, 200);

    t.emu
        .set_faults(vec![FaultRule::new(FaultKind::GatewayTimeout)
            .path_contains("/organization")
            .times(1)]);
    assert_eq!(t.get("/v1.0/organization", &tok).status, 504);
    assert_eq!(t.get("/v1.0/organization", &tok).status, 200);

    // Dropped before processing: nothing created.
    t.emu.set_faults(vec![FaultRule::new(FaultKind::Drop)
        .method("POST")
        .times(1)]);
    let o = t.outcome(
        HttpRequest::new(Method::Post, format!("{BASE}/v1.0/applications"))
            .header("Authorization", format!("Bearer {tok}"))
            .json(&json!({"displayName": "d"})),
    );
    assert_eq!(o, Outcome::Drop);
    assert_eq!(
        t.emu.state_json()["applications"].as_array().unwrap().len(),
        2
    );
    // Dropped after processing: created, but no answer.
    t.emu.set_faults(vec![FaultRule::new(FaultKind::DropAfter)
        .method("POST")
        .times(1)]);
    let o = t.outcome(
        HttpRequest::new(Method::Post, format!("{BASE}/v1.0/applications"))
            .header("Authorization", format!("Bearer {tok}"))
            .json(&json!({"displayName": "e"})),
    );
    assert_eq!(o, Outcome::Drop);
    assert_eq!(
        t.emu.state_json()["applications"].as_array().unwrap().len(),
        3
    );
    assert_eq!(t.emu.log().last().unwrap().status, 0);

    t.emu.set_faults(vec![FaultRule::new(FaultKind::Lag404)
        .path_contains("/applications(")
        .times(1)]);
    let r = t.get("/v1.0/applications(appId='x')", &tok);
    assert_eq!(r.status, 404);
    assert_eq!(err_code(&r), "Request_ResourceNotFound");

    t.emu
        .set_faults(vec![FaultRule::new(FaultKind::Latency).latency(250)]);
    t.emu.set_latency_ms(10);
    let req = HttpRequest::new(Method::Get, format!("{BASE}/v1.0/me"))
        .header("Authorization", format!("Bearer {tok}"));
    let (o, delay) = t.emu.handle_timed(&req, t.now);
    assert_eq!(o.response().unwrap().status, 200);
    assert_eq!(delay, 260);

    // Faults from JSON, as the scenario file and the control API take them.
    let rules: Vec<FaultRule> = serde_json::from_value(json!([{"match": {"method": "GET", "path_contains": "/me"}, "nth": 1, "kind": "429", "retry_after_s": 3}])).unwrap();
    t.emu.set_faults(rules);
    assert_eq!(t.get("/v1.0/me", &tok).status, 429);
    // Login endpoints can be throttled too.
    t.emu.set_faults(vec![
        FaultRule::new(FaultKind::Throttle).path_contains("/oauth2/v2.0/token")
    ]);
    let r = t.client_credentials("x", "y");
    assert_eq!(r.status, 429);
    assert_eq!(body(&r)["error"], "temporarily_unavailable");
}

#[test]
fn batch_requests() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let b = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "POST", "url": "/applications", "headers": {"Content-Type": "application/json"}, "body": {"displayName": "batched"}},
        {"id": "3", "method": "GET", "url": "/applications?$filter=displayName eq 'batched'&$select=id", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?$select=id"},
        {"id": "5", "method": "POST", "url": "/applications", "headers": {"Content-Type": "application/json"}, "body": {"displayNme": "typo"}},
        {"id": "6", "method": "GET", "url": "/me", "dependsOn": ["5"]}
    ]});
    let r = t.post("/v1.0/$batch", &tok, b);
    assert_eq!(r.status, 200, "{}", r.body);
    let rs = body(&r)["responses"].as_array().unwrap().clone();
    let by = |id: &str| rs.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(by("1")["status"], 200);
    assert_eq!(by("2")["status"], 201);
    assert_eq!(by("2")["body"]["displayName"], "batched");
    assert_eq!(by("3")["body"]["value"].as_array().unwrap().len(), 1);
    assert!(by("4")["body"]["id"].is_string());
    assert_eq!(by("5")["status"], 400);
    assert_eq!(by("6")["status"], 424);
    // Throttled inside the batch.
    t.emu.add_fault(
        FaultRule::new(FaultKind::Throttle)
            .path_contains("/organization")
            .retry_after(2)
            .times(1),
    );
    let r = t.post("/v1.0/$batch", &tok, json!({"requests": [{"id": "a", "method": "GET", "url": "/organization"}, {"id": "b", "method": "GET", "url": "/organization"}]}));
    let rs = body(&r)["responses"].as_array().unwrap().clone();
    assert_eq!(rs[0]["status"], 429);
    assert_eq!(rs[0]["headers"]["Retry-After"], "2");
    assert_eq!(rs[1]["status"], 200);
    // Whole-batch errors.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    assert_eq!(
        t.post("/v1.0/$batch", &tok, json!({"requests": many}))
            .status,
        400
    );
    assert_eq!(t.post("/v1.0/$batch", &tok, json!({"requests": [{"id": "1", "method": "GET", "url": "/me"}, {"id": "1", "method": "GET", "url": "/me"}]})).status, 400);
    assert_eq!(t.post("/v1.0/$batch", &tok, json!({"requests": [{"id": "1", "method": "POST", "url": "/applications", "body": {"displayName": "x"}}]})).status, 400);
    assert_eq!(t.post("/v1.0/$batch", &tok, json!({"nope": 1})).status, 400);
    assert_eq!(
        t.post(
            "/v1.0/$batch",
            &tok,
            json!({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]})
        )
        .status,
        400
    );
    // Sub-requests are logged.
    assert!(t
        .emu
        .log()
        .iter()
        .any(|e| e.batch_of.is_some() && e.path == "/v1.0/organization" && e.status == 429));
}

#[test]
fn log_and_state() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    t.create_app(&tok, "s");
    let log = t.emu.log();
    assert!(log
        .iter()
        .any(|e| e.method == "POST" && e.path == "/v1.0/applications" && e.status == 201));
    assert!(
        log.iter()
            .any(|e| e.path.ends_with("/oauth2/v2.0/authorize")
                && e.query.contains("code_challenge="))
    );
    assert!(log.iter().all(|e| !e.query.contains(VERIFIER)));
    let st = t.emu.state_json();
    assert_eq!(st["tenant"]["id"], TENANT);
    assert_eq!(st["users"].as_array().unwrap().len(), 3);
    assert_eq!(st["applications"][0]["displayName"], "s");
    assert!(st["servicePrincipals"].as_array().unwrap().len() >= 3);
    // Determinism: the same seed gives the same ids.
    let mut t2 = T::new(true);
    let tok2 = t2.sign_in("admin");
    assert_eq!(
        t2.create_app(&tok2, "s")["appId"],
        st["applications"][0]["appId"]
    );
}

#[test]
fn garbage_never_panics() {
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let id = t.create_app(&tok, "g")["id"].as_str().unwrap().to_string();
    let paths = [
        "/v1.0/applications".to_string(),
        format!("/v1.0/applications/{id}"),
        format!("/v1.0/applications/{id}/addPassword"),
        format!("/v1.0/applications/{id}/addKey"),
        format!("/v1.0/applications/{id}/removeKey"),
        format!("/v1.0/applications/{id}/owners/$ref"),
        "/v1.0/applications(uniqueName='x')".into(),
        "/v1.0/applications(appId=".into(),
        "/v1.0/servicePrincipals".into(),
        "/v1.0/servicePrincipals(appId='x')/appRoleAssignedTo".into(),
        "/v1.0/oauth2PermissionGrants".into(),
        "/v1.0/$batch".into(),
        "/v1.0/%ff%fe".into(),
        "/v1.0/applications?$filter=((((((((((".into(),
        "/v1.0/applications?$filter='".into(),
        "/v1.0/applications?$top=-1&$skiptoken=abc".into(),
    ];
    let bodies = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({"a": {"b": [1, {"c": null}]}}),
        json!({"displayName": {"x": 1}}),
        json!({"keyCredentials": [{"key": 5}]}),
        json!({"keyCredentials": "x"}),
        json!({"passwordCredential": {"endDateTime": "9999-99-99T99:99:99Z"}}),
        json!({"requests": [{"id": {}, "method": 1}]}),
        json!({"@odata.id": 7}),
        json!({"proof": "a.b.c", "keyCredential": {"key": "!!!"}}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/$batch", "headers": {"Content-Type": "application/json"}, "body": {"requests": []}}]}),
        json!({"displayName": "x".repeat(100_000)}),
    ];
    for p in &paths {
        for m in [Method::Get, Method::Post, Method::Patch, Method::Delete] {
            for b in &bodies {
                let r = t.send(
                    HttpRequest::new(m, format!("{BASE}{p}"))
                        .header("Authorization", format!("Bearer {tok}"))
                        .json(b),
                );
                assert!(r.status < 500, "{m:?} {p} {b} → {} {}", r.status, r.body);
            }
        }
    }
}

/// Random paths, queries, headers and bodies (multi-byte characters included) against every
/// route family: the emulator answers each with a status below 500 and never panics.
#[test]
fn fuzzish_random_requests_never_panic() {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    let mut t = T::new(true);
    let tok = t.sign_in("admin");
    let app = t.create_app(&tok, "fz");
    let id = app["id"].as_str().unwrap().to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let alphabet: Vec<char> = "aZ09-_.~'()=,/$?&%+ é€😀\"{}[]:\\\u{0}\n".chars().collect();
    let rand_str = |rng: &mut ChaCha8Rng, max: u32| -> String {
        let n = rng.next_u32() % max;
        (0..n)
            .map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()])
            .collect()
    };
    let prefixes = [
        "/v1.0/applications".to_string(),
        format!("/v1.0/applications/{id}/"),
        "/v1.0/applications(".into(),
        "/v1.0/servicePrincipals".into(),
        "/v1.0/oauth2PermissionGrants/".into(),
        "/v1.0/$batch".into(),
        "/v1.0/".into(),
        format!("/{TENANT}/oauth2/v2.0/authorize?"),
        format!("/{TENANT}/oauth2/v2.0/token"),
        format!("/{TENANT}/adminconsent?"),
        format!("/{TENANT}/v2.0/adminconsent?client_id={REGISTRATOR}&redirect_uri="),
        "/".into(),
    ];
    for i in 0..1500 {
        let p = &prefixes[i % prefixes.len()];
        let tail = rand_str(&mut rng, 40);
        let m = [Method::Get, Method::Post, Method::Patch, Method::Delete]
            [(rng.next_u32() % 4) as usize];
        let mut req = HttpRequest::new(m, format!("{BASE}{p}{tail}"));
        if rng.next_u32() % 4 != 0 {
            req = req.header("Authorization", format!("Bearer {tok}"));
        }
        if rng.next_u32() % 3 == 0 {
            req = req.header("Origin", rand_str(&mut rng, 10));
        }
        if rng.next_u32() % 2 == 0 {
            let b = if rng.next_u32() % 2 == 0 {
                format!(
                    "{{\"displayName\":\"{}\",\"{}\":{}}}",
                    rand_str(&mut rng, 8),
                    rand_str(&mut rng, 6),
                    rng.next_u32()
                )
            } else {
                rand_str(&mut rng, 200)
            };
            req.body = Some(b);
        }
        match t.outcome(req.clone()) {
            Outcome::Respond(r) => assert!(r.status < 500, "{req:?} → {} {}", r.status, r.body),
            Outcome::Drop => panic!("no fault configured"),
        }
    }
    // Multi-byte characters exactly where prefixes are compared.
    for p in [
        "/v1.0/applicatioñs",
        "/v1.0/servicePrincipalé(appId='x')",
        "/v1.0/ñ",
    ] {
        assert_eq!(t.get(p, &tok).status, 400);
    }
    let r = t.client_credentials("x", "y");
    assert!(r.status < 500);
    let r = t.send(
        HttpRequest::new(Method::Post, format!("{BASE}/{TENANT}/oauth2/v2.0/token")).form(&[
            ("client_id", "x"),
            ("grant_type", "client_credentials"),
            ("client_secret", "y"),
            ("scope", "https://graph.microsoft.coñ/.default"),
        ]),
    );
    assert_eq!(r.status, 400);
}
