//! The JavaScript API of the WebAssembly module (`window.m365Registrator` once `boot.js` has
//! loaded it): pure functions BWeb's own scripts call without the page's UI. Each checks its input
//! and throws a JavaScript `Error` with a plain message on bad input; none panics, none does I/O,
//! none reads the clock (`nowUnix` is passed in). Built only on engine code; must not touch the
//! page's state, storage or network. Documented in README.md, "JavaScript API".

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::engine::auth::{self, ConsentForm, Redirect, RedirectErrorKind};
use crate::engine::cloud::{Cloud, Endpoints};
use crate::engine::graph::{self, KeyCredential, PasswordCredential};
use crate::engine::permissions::{self, PermKind, ResourcePermissions, Service};
use crate::engine::properties::{self, BaculaConfig};
use crate::engine::provision::{
    self, CheckReport, PermissionRef, REGISTRATOR_APP_ID, RENEW_WINDOW_DAYS,
};
use crate::engine::secret::{AppId, ClientSecret, ObjectId, PfxPassword, TenantId};

type JsResult<T> = Result<T, JsError>;

fn err(msg: impl AsRef<str>) -> JsError {
    JsError::new(msg.as_ref())
}

/// Plain JS objects (not `Map`s), `null` for absent values.
fn to_js<T: Serialize>(v: &T) -> JsResult<JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| err(format!("internal error: {e}")))
}

/// A required string argument.
fn req_string(v: &JsValue, what: &str) -> JsResult<String> {
    v.as_string()
        .ok_or_else(|| err(format!("{what} must be a string")))
}

/// An optional string argument: `undefined`, `null` and `""` mean absent.
fn opt_string(v: &JsValue, what: &str) -> JsResult<Option<String>> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let s = req_string(v, what)?;
    Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
}

/// `nowUnix`: whole seconds since the Unix epoch, between 1970 and 9999.
fn unix_seconds(v: &JsValue) -> JsResult<i64> {
    let n = v.as_f64().ok_or_else(|| {
        err("nowUnix must be a number (seconds since 1970, e.g. Math.floor(Date.now() / 1000))")
    })?;
    if !n.is_finite() || !(0.0..=253_402_300_799.0).contains(&n) {
        return Err(err(
            "nowUnix must be seconds since 1970 (not milliseconds), before the year 10000",
        ));
    }
    Ok(n.floor() as i64)
}

/// A JS value as JSON (objects, arrays, strings, numbers, booleans, null).
fn to_json(v: &JsValue, what: &str) -> JsResult<Value> {
    if v.is_undefined() {
        return Err(err(format!("{what} is missing")));
    }
    serde_wasm_bindgen::from_value(v.clone())
        .map_err(|e| err(format!("{what} is not plain JSON data: {e}")))
}

// ---------------------------------------------------------------------------------------------
// consentUrl

/// `consentUrl(tenant, clientId?, redirectUri, state, cloud?)`: the admin-consent URL (B-1) for
/// the registrator, in the form of Bacula's documentation
/// (`{login}/{tenant}/adminconsent?client_id=…&state=…&redirect_uri=…`).
#[wasm_bindgen(js_name = consentUrl)]
pub fn consent_url(
    tenant: JsValue,
    client_id: JsValue,
    redirect_uri: JsValue,
    state: JsValue,
    cloud: JsValue,
) -> JsResult<String> {
    let tenant =
        auth::parse_tenant(&req_string(&tenant, "tenant")?).map_err(|e| err(e.advice()))?;
    let client_id = match opt_string(&client_id, "clientId")? {
        None => REGISTRATOR_APP_ID.to_string(),
        Some(c) if auth::is_guid(&c) => c.to_ascii_lowercase(),
        Some(_) => {
            return Err(err(
                "clientId must be an application (client) id GUID, or undefined for bacula-m365-registrator",
            ))
        }
    };
    let redirect = req_string(&redirect_uri, "redirectUri")?;
    let redirect = redirect.trim();
    let redirect_ok = (redirect.starts_with("https://")
        || redirect.starts_with("http://localhost")
        || redirect.starts_with("http://127.0.0.1"))
        && !redirect.contains('#')
        && !redirect.chars().any(char::is_whitespace);
    if !redirect_ok {
        return Err(err(
            "redirectUri must be the https:// address registered on the registrator (http://localhost is allowed for tests), without a #fragment",
        ));
    }
    let state = req_string(&state, "state")?;
    if state.is_empty() || state.len() > auth::MAX_VALUE_BYTES {
        return Err(err(
            "state must be a non-empty random string (check it when the browser comes back)",
        ));
    }
    let cloud = match opt_string(&cloud, "cloud")? {
        None => Cloud::Global,
        Some(c) => Cloud::parse(&c)
            .ok_or_else(|| err("cloud must be one of global, usgov, usgovdod, china"))?,
    };
    Ok(auth::admin_consent_url(
        &Endpoints::for_cloud(cloud),
        &tenant,
        &client_id,
        redirect,
        &state,
        ConsentForm::V1,
    ))
}

// ---------------------------------------------------------------------------------------------
// parseConsentResult

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConsentResult {
    status: &'static str,
    error: Option<String>,
    error_description: Option<String>,
    aadsts: Option<u32>,
    tenant: Option<String>,
    state: Option<String>,
    advice: String,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    timestamp: Option<String>,
}

/// (query, fragment) of a URL, a `?query`, a `#fragment` or a bare `a=b&c=d`.
fn split_query(input: &str) -> (&str, &str) {
    let s = input.trim();
    let (before, fragment) = match s.split_once('#') {
        Some((b, f)) => (b, f),
        None => (s, ""),
    };
    let query = match before.split_once('?') {
        Some((_, q)) => q,
        // A URL or path without a query has none; otherwise the whole text is the query.
        None if before.contains("://") || before.starts_with('/') => "",
        None => before,
    };
    (query, fragment)
}

/// `parseConsentResult(queryOrUrl)`: what came back to the redirect URI after the admin-consent
/// (or sign-in) page. Never returns an authorization code.
#[wasm_bindgen(js_name = parseConsentResult)]
pub fn parse_consent_result(query_or_url: JsValue) -> JsResult<JsValue> {
    let input = req_string(&query_or_url, "queryOrUrl")?;
    let (q, f) = split_query(&input);
    let r = match auth::parse_redirect(q, f) {
        Redirect::None => ConsentResult {
            status: "none",
            advice: "This address carries no answer from Microsoft.".into(),
            ..Default::default()
        },
        Redirect::Malformed { reason } => ConsentResult {
            status: "malformed",
            error_description: Some(reason.clone()),
            advice: format!("The answer from Microsoft could not be read ({reason}). Start the consent again."),
            ..Default::default()
        },
        Redirect::Consent {
            admin_consent: true,
            tenant,
            state,
            ..
        } => ConsentResult {
            status: "success",
            tenant,
            state,
            advice: "The registrator is authorized (check that state is the one you sent). Azure needs 2-3 minutes before it can be used everywhere.".into(),
            ..Default::default()
        },
        Redirect::Consent { tenant, state, .. } => ConsentResult {
            status: "error",
            tenant,
            state,
            advice: "Microsoft did not report a granted consent. Try again as a Global Administrator.".into(),
            ..Default::default()
        },
        Redirect::Error(e) => {
            let kind = e.kind();
            ConsentResult {
                status: if kind == RedirectErrorKind::Cancelled {
                    "cancelled"
                } else {
                    "error"
                },
                error: Some(e.error.clone()),
                error_description: e.description.clone(),
                aadsts: e.aadsts,
                tenant: None,
                state: e.state.clone(),
                advice: kind.advice().to_string(),
                trace_id: e.trace_id.clone(),
                correlation_id: e.correlation_id.clone(),
                timestamp: e.timestamp.clone(),
            }
        }
        Redirect::Code { state, .. } => ConsentResult {
            status: "code",
            state,
            advice: "This is a sign-in answer (an authorization code), not a consent result: the page that started the sign-in redeems it.".into(),
            ..Default::default()
        },
    };
    to_js(&r)
}

// ---------------------------------------------------------------------------------------------
// renderConfig / parseConfig

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigInput {
    secret: String,
    appid: String,
    objectid: String,
    tenant: String,
    certificate_path: String,
    certificate_password: String,
}

/// `renderConfig({secret, appid, objectid, tenant, certificatePath, certificatePassword}, nowUnix)`:
/// the text of `bacula_m365_config.conf` (Java properties, the date line from `nowUnix`).
#[wasm_bindgen(js_name = renderConfig)]
pub fn render_config(config: JsValue, now_unix: JsValue) -> JsResult<String> {
    if !config.is_object() {
        return Err(err("renderConfig needs an object {secret, appid, objectid, tenant, certificatePath, certificatePassword}"));
    }
    // Through JSON: serde-wasm-bindgen reads only the known fields, serde_json also refuses
    // unknown ones (a typo such as `appId` must not pass silently).
    let c: ConfigInput = serde_json::from_value(to_json(&config, "config")?)
        .map_err(|e| err(format!("renderConfig: {e} (every field is a string)")))?;
    let now = unix_seconds(&now_unix)?;
    let cfg = BaculaConfig {
        secret: ClientSecret::new(c.secret),
        appid: AppId::new(c.appid),
        objectid: ObjectId::new(c.objectid),
        tenant: TenantId::new(c.tenant),
        certificate_path: c.certificate_path,
        certificate_password: PfxPassword::new(c.certificate_password),
    };
    Ok(properties::render_config(&cfg, now))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigOutput {
    secret: Option<String>,
    appid: Option<String>,
    objectid: Option<String>,
    tenant: Option<String>,
    certificate_path: Option<String>,
    certificate_password: Option<String>,
    /// Keys the plugin does not define, in file order.
    other: Vec<KeyValue>,
}

#[derive(Serialize)]
struct KeyValue {
    key: String,
    value: String,
}

/// `parseConfig(text)`: a `bacula_m365_config.conf` read back; absent keys are `null`.
#[wasm_bindgen(js_name = parseConfig)]
pub fn parse_config(text: JsValue) -> JsResult<JsValue> {
    let text = req_string(&text, "text")?;
    let c = properties::parse_config(&text)
        .map_err(|e| err(format!("the config file cannot be read: {e}")))?;
    to_js(&ConfigOutput {
        secret: c.secret.map(|s| s.expose().to_string()),
        appid: c.appid.map(|a| a.as_str().to_string()),
        objectid: c.objectid.map(|o| o.as_str().to_string()),
        tenant: c.tenant.map(|t| t.as_str().to_string()),
        certificate_path: c.certificate_path,
        certificate_password: c.certificate_password.map(|p| p.expose().to_string()),
        other: c
            .other
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// comparePermissions

/// The items of a Graph list: an array, or Graph's `{ "value": [...] }` envelope.
fn list_of<'a>(input: &'a Value, key: &str) -> JsResult<&'a Vec<Value>> {
    match input.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Object(o)) => match o.get("value") {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(err(format!(
                "{key} must be an array or Graph's {{value: [...]}}"
            ))),
        },
        Some(Value::Null) | None => Err(err(format!("{key} is missing"))),
        Some(_) => Err(err(format!(
            "{key} must be an array or Graph's {{value: [...]}}"
        ))),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

struct Assignment {
    app_role_id: String,
    resource_id: Option<String>,
}

struct Grant {
    resource_id: String,
    consent_type: Option<String>,
    scopes: Vec<String>,
}

struct ResourceSp {
    id: String,
    app_id: String,
    display_name: Option<String>,
    perms: ResourcePermissions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PermOut {
    resource: String,
    resource_app_id: Option<String>,
    kind: &'static str,
    name: String,
    protected: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompareOut {
    all_set: bool,
    missing: Vec<PermOut>,
    extra: Vec<PermOut>,
    protected_unverifiable: Vec<String>,
    lines: Vec<String>,
}

fn services_of(v: &JsValue) -> JsResult<Vec<Service>> {
    let ids: Vec<Value> = match to_json(v, "services")? {
        Value::Array(a) => a,
        _ => return Err(err("services must be an array of service ids")),
    };
    let valid = || {
        Service::all()
            .iter()
            .map(|s| s.id())
            .collect::<Vec<_>>()
            .join(", ")
    };
    ids.iter()
        .map(|id| {
            id.as_str().and_then(Service::from_id).ok_or_else(|| {
                err(format!(
                    "unknown service {id}: use some of {} (users is always included)",
                    valid()
                ))
            })
        })
        .collect()
}

/// Compares a service principal's grants with the plugin's manifest for `services`: the engine's
/// check (`provision` builds the same report from the same reads), as a pure function.
fn compare(services: &[Service], input: &Value) -> JsResult<CheckReport> {
    if !input.is_object() {
        return Err(err("servicePrincipalGrants must be an object {servicePrincipalId, appRoleAssignments, oauth2PermissionGrants, resources}"));
    }
    let assignments = list_of(input, "appRoleAssignments")?
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Assignment {
                app_role_id: str_field(a, "appRoleId")
                    .ok_or_else(|| err(format!("appRoleAssignments[{i}] has no appRoleId")))?
                    .to_string(),
                resource_id: str_field(a, "resourceId").map(str::to_string),
            })
        })
        .collect::<JsResult<Vec<_>>>()?;
    let grants = list_of(input, "oauth2PermissionGrants")?
        .iter()
        .enumerate()
        .map(|(i, g)| {
            Ok(Grant {
                resource_id: str_field(g, "resourceId")
                    .ok_or_else(|| err(format!("oauth2PermissionGrants[{i}] has no resourceId")))?
                    .to_string(),
                consent_type: str_field(g, "consentType").map(str::to_string),
                scopes: str_field(g, "scope")
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect::<JsResult<Vec<_>>>()?;
    let resources = list_of(input, "resources")?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |k: &str| {
                str_field(r, k)
                    .map(str::to_string)
                    .ok_or_else(|| err(format!("resources[{i}] has no {k}")))
            };
            Ok(ResourceSp {
                id: field("id")?,
                app_id: field("appId")?,
                display_name: str_field(r, "displayName").map(str::to_string),
                perms: ResourcePermissions::from_service_principal(r),
            })
        })
        .collect::<JsResult<Vec<_>>>()?;
    let sp_id = str_field(input, "servicePrincipalId")
        .map(str::to_string)
        .or_else(|| {
            list_of(input, "appRoleAssignments")
                .ok()
                .and_then(|l| l.iter().find_map(|a| str_field(a, "principalId")))
                .map(str::to_string)
        })
        .or_else(|| {
            list_of(input, "oauth2PermissionGrants")
                .ok()
                .and_then(|l| l.iter().find_map(|g| str_field(g, "clientId")))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "(unknown)".to_string());

    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let manifest = permissions::manifest(services);
    // Each wanted permission with its id and resource service principal (when the tenant has it).
    let mut wanted: Vec<(permissions::Permission, Option<(&ResourceSp, String)>)> = Vec::new();
    for p in &manifest {
        let res = resources
            .iter()
            .find(|r| eq(&r.app_id, p.resource.app_id()))
            .ok_or_else(|| {
                err(format!(
                    "resources must include the service principal of {} (appId {}): GET /servicePrincipals(appId='{}')",
                    p.resource.display_name(),
                    p.resource.app_id(),
                    p.resource.app_id()
                ))
            })?;
        let id = res.perms.id_of(p.kind, p.name).map(str::to_string);
        wanted.push((*p, id.map(|id| (res, id))));
    }
    let mut missing = Vec::new();
    let mut protected_unverifiable = Vec::new();
    for (p, resolved) in &wanted {
        let present = resolved.as_ref().is_some_and(|(res, id)| match p.kind {
            PermKind::Application => assignments.iter().any(|a| {
                eq(&a.app_role_id, id) && a.resource_id.as_deref().is_none_or(|r| eq(r, &res.id))
            }),
            PermKind::Delegated => grants.iter().any(|g| {
                eq(&g.resource_id, &res.id)
                    && g.consent_type.as_deref() == Some("AllPrincipals")
                    && g.scopes.iter().any(|s| eq(s, p.name))
            }),
        });
        if !present {
            missing.push(PermissionRef {
                resource_name: p.resource.display_name().to_string(),
                kind: p.kind,
                name: p.name.to_string(),
            });
        } else if p.protected {
            protected_unverifiable.push(p.name.to_string());
        }
    }
    let res_name =
        |res_id: &str| -> Option<&ResourceSp> { resources.iter().find(|r| eq(&r.id, res_id)) };
    let name_of_resource = |r: &ResourceSp| {
        permissions::Resource::from_app_id(&r.app_id)
            .map(|x| x.display_name().to_string())
            .or_else(|| r.display_name.clone())
            .unwrap_or_else(|| r.app_id.clone())
    };
    let mut extra = Vec::new();
    for a in &assignments {
        let is_wanted = wanted.iter().any(|(p, r)| {
            p.kind == PermKind::Application
                && r.as_ref().is_some_and(|(res, id)| {
                    eq(id, &a.app_role_id)
                        && a.resource_id.as_deref().is_none_or(|x| eq(x, &res.id))
                })
        });
        if is_wanted {
            continue;
        }
        let (resource_name, name) = match a.resource_id.as_deref().and_then(res_name) {
            Some(r) => (
                name_of_resource(r),
                r.perms
                    .app_roles
                    .iter()
                    .find(|(_, id)| eq(id, &a.app_role_id))
                    .map(|(v, _)| v.clone())
                    .unwrap_or_else(|| a.app_role_id.clone()),
            ),
            None => (
                a.resource_id.clone().unwrap_or_default(),
                a.app_role_id.clone(),
            ),
        };
        extra.push(PermissionRef {
            resource_name,
            kind: PermKind::Application,
            name,
        });
    }
    for g in &grants {
        for scope in &g.scopes {
            let is_wanted = wanted.iter().any(|(p, r)| {
                p.kind == PermKind::Delegated
                    && eq(p.name, scope)
                    && r.as_ref()
                        .is_some_and(|(res, _)| eq(&res.id, &g.resource_id))
            });
            if !is_wanted {
                extra.push(PermissionRef {
                    resource_name: res_name(&g.resource_id)
                        .map(name_of_resource)
                        .unwrap_or_else(|| g.resource_id.clone()),
                    kind: PermKind::Delegated,
                    name: scope.clone(),
                });
            }
        }
    }
    Ok(CheckReport {
        sp_object_id: ObjectId::new(sp_id),
        missing,
        extra,
        credentials: Vec::new(),
        protected_unverifiable,
    })
}

/// `comparePermissions(services, servicePrincipalGrants)`: which of the plugin's permissions
/// for `services` the service principal lacks, which it has beyond them, and the report lines in
/// the plugin's words. Input shape in README.md, "JavaScript API".
#[wasm_bindgen(js_name = comparePermissions)]
pub fn compare_permissions(
    services: JsValue,
    service_principal_grants: JsValue,
) -> JsResult<JsValue> {
    let services = services_of(&services)?;
    let input = to_json(&service_principal_grants, "servicePrincipalGrants")?;
    let report = compare(&services, &input)?;
    let manifest = permissions::manifest(&services);
    let out = |p: &PermissionRef| {
        let m = manifest.iter().find(|m| {
            m.kind == p.kind && m.name == p.name && m.resource.display_name() == p.resource_name
        });
        PermOut {
            resource: p.resource_name.clone(),
            resource_app_id: [
                permissions::Resource::Graph,
                permissions::Resource::SharePoint,
            ]
            .into_iter()
            .find(|r| r.display_name() == p.resource_name)
            .map(|r| r.app_id().to_string()),
            kind: p.kind.label(),
            name: p.name.clone(),
            protected: m.is_some_and(|m| m.protected),
        }
    };
    to_js(&CompareOut {
        all_set: report.all_set(),
        missing: report.missing.iter().map(out).collect(),
        extra: report.extra.iter().map(out).collect(),
        protected_unverifiable: report.protected_unverifiable.clone(),
        lines: report.lines(),
    })
}

// ---------------------------------------------------------------------------------------------
// credentialExpiry

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialOut {
    kind: &'static str,
    key_id: Option<String>,
    display_name: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// `end` as Unix seconds (`null` when absent or unreadable).
    end_unix: Option<i64>,
    /// Ends within 90 days (or has ended): renew's automatic rule renews it.
    expiring: bool,
    expired: bool,
    made_by_tool: bool,
}

fn credentials_field<T: serde::de::DeserializeOwned>(app: &Value, key: &str) -> JsResult<Vec<T>> {
    match app.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v @ Value::Array(_)) => {
            serde_json::from_value(v.clone()).map_err(|e| err(format!("application.{key}: {e}")))
        }
        Some(_) => Err(err(format!("application.{key} must be an array"))),
    }
}

/// `credentialExpiry(application, nowUnix)`: the secrets and certificates of a Graph
/// `application` object (`passwordCredentials`, `keyCredentials`) with their expiry.
#[wasm_bindgen(js_name = credentialExpiry)]
pub fn credential_expiry(application: JsValue, now_unix: JsValue) -> JsResult<JsValue> {
    let app = to_json(&application, "application")?;
    if !app.is_object() {
        return Err(err("application must be a Graph application object"));
    }
    if app.get("passwordCredentials").is_none() && app.get("keyCredentials").is_none() {
        return Err(err(
            "application has neither passwordCredentials nor keyCredentials: read it with $select=passwordCredentials,keyCredentials",
        ));
    }
    let now = unix_seconds(&now_unix)?;
    let passwords: Vec<PasswordCredential> = credentials_field(&app, "passwordCredentials")?;
    let keys: Vec<KeyCredential> = credentials_field(&app, "keyCredentials")?;
    let limit = now + i64::from(RENEW_WINDOW_DAYS) * 86_400;
    let one = |kind: &'static str,
               key_id: Option<String>,
               name: Option<String>,
               start: Option<String>,
               end: Option<String>| {
        let e = end.as_deref().and_then(graph::parse_datetime);
        CredentialOut {
            kind,
            key_id,
            made_by_tool: provision::made_by_tool(name.as_deref()),
            display_name: name,
            start,
            end,
            end_unix: e,
            expiring: e.is_some_and(|e| e <= limit),
            expired: e.is_some_and(|e| e <= now),
        }
    };
    let mut out: Vec<CredentialOut> = passwords
        .into_iter()
        .map(|p| {
            one(
                "secret",
                p.key_id.map(|k| k.as_str().to_string()),
                p.display_name,
                p.start_date_time,
                p.end_date_time,
            )
        })
        .collect();
    out.extend(keys.into_iter().map(|k| {
        one(
            "certificate",
            k.key_id.map(|k| k.as_str().to_string()),
            k.display_name,
            k.start_date_time,
            k.end_date_time,
        )
    }));
    to_js(&out)
}
