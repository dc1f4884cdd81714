//! Microsoft Graph v1.0 as data: serde types for what we read, one pure request builder and one
//! pure response classifier per endpoint, `$batch` helpers, Graph date-time and UUID helpers.
//! No I/O, no clock, no RNG (randomness is passed in); must not import `web` or `emulator`.
//!
//! Status codes follow the Graph API reference pages (summarised in
//! `shared/reference/entra-endpoints.md` §11); error bodies follow
//! https://learn.microsoft.com/graph/errors (§6); throttling
//! https://learn.microsoft.com/graph/throttling (§7); batching
//! https://learn.microsoft.com/graph/json-batching (§9).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::error::{Error, GraphError, CODE_LIFETIME_POLICY};
use crate::engine::http::{encode_component, HttpRequest, HttpResponse, Method};
use crate::engine::retry::RetryReason;
use crate::engine::secret::{AccessToken, AppId, ClientSecret, KeyId, ObjectId};

/// Where and as whom Graph is called. `base` is `Endpoints::graph_v1()`
/// (`https://graph.microsoft.com/v1.0`, no trailing slash).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphCtx {
    pub base: String,
    pub token: AccessToken,
}

/// One Graph call as data, relative to the v1.0 base (`path` starts with `/`). The same value
/// becomes a plain request ([`GraphCtx::request`]) or a `$batch` sub-request ([`GraphCtx::batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub path: String,
    /// Extra headers (`Prefer`, `ConsistencyLevel`); never `Authorization`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    fn header(mut self, n: &str, v: &str) -> Call {
        self.headers.push((n.to_string(), v.to_string()));
        self
    }
    fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }
    /// `GET /applications(uniqueName='x')` style, for plans and logs.
    pub fn describe(&self) -> String {
        let path = self.path.split('?').next().unwrap_or(&self.path);
        format!(
            "{} {}",
            self.method.as_str(),
            percent_encoding::percent_decode_str(path).decode_utf8_lossy()
        )
    }
}

/// Most sub-requests one `$batch` may carry (GBATCH).
pub const BATCH_MAX: usize = 20;

impl GraphCtx {
    /// A plain request: absolute URL, bearer token, `client-request-id` (a fresh UUID per call,
    /// echoed by Graph in `innerError`, for support tickets), JSON body if any.
    pub fn request(&self, call: &Call, client_request_id: &str) -> HttpRequest {
        let mut req = HttpRequest::new(call.method, format!("{}{}", self.base, call.path))
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("client-request-id", client_request_id)
            .header("Accept", "application/json");
        for (n, v) in &call.headers {
            req = req.header(n, v.clone());
        }
        match &call.body {
            Some(b) => req.json(b),
            None => req,
        }
    }

    /// `POST /$batch` with up to [`BATCH_MAX`] sub-requests, ids as given (unique).
    /// A sub-request with a body gets its own `Content-Type` (GBATCH requires it).
    pub fn batch(
        &self,
        calls: &[(String, Call)],
        client_request_id: &str,
    ) -> Result<HttpRequest, Error> {
        if calls.is_empty() || calls.len() > BATCH_MAX {
            return Err(Error::Bug(format!("batch of {} requests", calls.len())));
        }
        let mut ids: Vec<&str> = calls.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Bug("duplicate batch ids".into()));
        }
        let requests: Vec<Value> = calls
            .iter()
            .map(|(id, c)| {
                let mut headers = serde_json::Map::new();
                for (n, v) in &c.headers {
                    headers.insert(n.clone(), Value::String(v.clone()));
                }
                let mut r = json!({"id": id, "method": c.method.as_str(), "url": c.path});
                if let Some(b) = &c.body {
                    headers.insert(
                        "Content-Type".into(),
                        Value::String("application/json".into()),
                    );
                    r["body"] = b.clone();
                }
                if !headers.is_empty() {
                    r["headers"] = Value::Object(headers);
                }
                r
            })
            .collect();
        let call = Call::new(Method::Post, "/$batch").json(json!({ "requests": requests }));
        Ok(self.request(&call, client_request_id))
    }
}

/// A response (or a `$batch` sub-response) reduced to what classifiers read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Null` when empty or not JSON.
    pub body: Value,
}

impl Reply {
    pub fn from_response(resp: &HttpResponse) -> Reply {
        Reply {
            status: resp.status,
            headers: resp.headers.clone(),
            body: serde_json::from_str(&resp.body).unwrap_or(Value::Null),
        }
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn code(&self) -> &str {
        self.body
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// `Retry-After` in milliseconds (delta-seconds form; an HTTP-date is ignored).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000))
    }
    fn graph_error(&self, step: &str) -> GraphError {
        GraphError::from_parts(step, self.status, &self.headers, &self.body)
    }
}

/// Splits a `$batch` answer into sub-responses by id (they come in any order, GBATCH).
/// A `$batch` that itself failed (429, 503 …) is returned as `Err(reply)` for the caller to
/// classify like any reply.
pub fn split_batch(resp: &HttpResponse) -> Result<Vec<(String, Reply)>, Reply> {
    let whole = Reply::from_response(resp);
    if whole.status != 200 {
        return Err(whole);
    }
    let Some(list) = whole.body.get("responses").and_then(Value::as_array) else {
        return Err(Reply {
            status: 502,
            headers: whole.headers,
            body: Value::Null,
        });
    };
    Ok(list
        .iter()
        .filter_map(|r| {
            let id = match r.get("id")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
            let headers = r
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some((
                id,
                Reply {
                    status: u16::try_from(status).unwrap_or(0),
                    headers,
                    body: r.get("body").cloned().unwrap_or(Value::Null),
                },
            ))
        })
        .collect())
}

/// What one reply means for the step that asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<T> {
    Done(T),
    Retry(RetryReason),
    Fail(Error),
}

impl<T> Verdict<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Verdict<U> {
        match self {
            Verdict::Done(t) => Verdict::Done(f(t)),
            Verdict::Retry(r) => Verdict::Retry(r),
            Verdict::Fail(e) => Verdict::Fail(e),
        }
    }
}

/// The failure part common to every endpoint: 429 and 5xx are retried (a throttled or refused
/// request was not executed: GTHROTTLE), anything else becomes a [`GraphError`].
/// Status 0 (a broken `$batch` sub-response) is a bug.
pub fn failure<T>(step: &str, reply: &Reply) -> Verdict<T> {
    let retry_after_ms = reply.retry_after_ms();
    match reply.status {
        429 => Verdict::Retry(RetryReason::Throttled { retry_after_ms }),
        500 | 502 | 503 | 504 => Verdict::Retry(RetryReason::Unavailable { retry_after_ms }),
        0 => Verdict::Fail(Error::Bug(format!("{step}: malformed batch sub-response"))),
        _ if reply.code() == CODE_LIFETIME_POLICY => {
            Verdict::Fail(Error::Policy(Box::new(reply.graph_error(step))))
        }
        _ => Verdict::Fail(Error::Graph(Box::new(reply.graph_error(step)))),
    }
}

/// Parses a success body, or fails as a bug (never panics on garbage).
fn parse<T: serde::de::DeserializeOwned>(step: &str, what: &str, reply: &Reply) -> Verdict<T> {
    match T::deserialize(&reply.body) {
        Ok(v) => Verdict::Done(v),
        Err(e) => Verdict::Fail(Error::Bug(format!(
            "{step}: unexpected {what} in answer: {e}"
        ))),
    }
}

/// Not-found style answers that, right after we wrote the object they name, mean "not
/// replicated yet": 404 `Request_ResourceNotFound`, and the 400s Entra gives when a reference
/// (an app for a new service principal, a principal for an assignment or grant) is not visible
/// yet. Graph has no specific code for the 400 case (its code is `Request_BadRequest`), so the
/// message is inspected here, only to choose "poll again" for an object this run just wrote;
/// the user's advice never depends on it.
pub fn looks_unreplicated(reply: &Reply) -> bool {
    match reply.status {
        404 => true,
        400 => {
            let code = reply.code();
            let msg = reply.message().to_ascii_lowercase();
            code == "NoBackingApplicationObject"
                || code == "Request_ResourceNotFound"
                || (code == "Request_BadRequest"
                    && (msg.contains("does not reference a valid application")
                        || msg.contains("does not exist")
                        || msg.contains("invalid value specified for property 'principalid'")
                        || msg.contains("invalid value specified for property 'clientid'")
                        || msg.contains("invalid value specified for property 'resourceid'")))
        }
        _ => false,
    }
}

/// "Already there" answers to a reference or assignment POST: Graph answers 400
/// `Request_BadRequest` ("One or more added object references already exist …" for owners,
/// "Permission being assigned already exists on the object" for app role assignments) or 409.
/// Like [`looks_unreplicated`], used only to treat a repeat as done.
pub fn looks_already_exists(reply: &Reply) -> bool {
    matches!(reply.status, 400 | 409)
        && (reply.code() == "Request_MultipleObjectsWithSameKeyValue"
            || reply.code() == "ObjectConflict"
            || reply
                .message()
                .to_ascii_lowercase()
                .contains("already exist"))
}

// ---------------------------------------------------------------------------------------------
// Types we read. Every list defaults to empty and every optional field to None, so a sparse
// answer (`$select`) parses.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAccess {
    pub id: String,
    /// `Role` (application permission) or `Scope` (delegated).
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredResourceAccess {
    pub resource_app_id: String,
    #[serde(default)]
    pub resource_access: Vec<ResourceAccess>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyCredential {
    pub key_id: Option<KeyId>,
    pub display_name: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub usage: Option<String>,
    pub custom_key_identifier: Option<String>,
}

/// A password credential as listed (never carries `secretText`: Graph returns it only from
/// addPassword, see [`AddedPassword`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordCredential {
    pub key_id: Option<KeyId>,
    pub display_name: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: ObjectId,
    pub app_id: AppId,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub unique_name: Option<String>,
    #[serde(default)]
    pub required_resource_access: Vec<RequiredResourceAccess>,
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AppRole {
    pub id: String,
    pub value: Option<String>,
    pub allowed_member_types: Vec<String>,
    pub is_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PermissionScope {
    pub id: String,
    pub value: Option<String>,
    pub is_enabled: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: ObjectId,
    pub app_id: AppId,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
    #[serde(default)]
    pub oauth2_permission_scopes: Vec<PermissionScope>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    #[serde(default)]
    pub id: Option<String>,
    pub app_role_id: String,
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2PermissionGrant {
    pub id: String,
    pub client_id: String,
    #[serde(default)]
    pub consent_type: Option<String>,
    #[serde(default)]
    pub principal_id: Option<String>,
    pub resource_id: String,
    #[serde(default)]
    pub scope: Option<String>,
}

impl OAuth2PermissionGrant {
    /// The granted scopes (space separated in Graph).
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: ObjectId,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The answer of addPassword: the only time the secret text exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPassword {
    pub key_id: KeyId,
    pub secret: ClientSecret,
    pub end_date_time: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAddedPassword {
    key_id: Option<KeyId>,
    secret_text: Option<String>,
    #[serde(default)]
    end_date_time: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
}

// ---------------------------------------------------------------------------------------------
// Builders. Paths are relative; string keys are OData literals (quote doubled) percent-encoded.

fn key_literal(v: &str) -> String {
    encode_component(&v.replace('\'', "''"))
}

fn filter_eq(prop: &str, v: &str) -> String {
    format!(
        "$filter={}",
        encode_component(&format!("{prop} eq '{}'", v.replace('\'', "''")))
    )
}

const APP_SELECT: &str =
    "$select=id,appId,displayName,uniqueName,requiredResourceAccess,keyCredentials,passwordCredentials";

/// `GET /me` (id and UPN of the signed-in admin; the owner to add).
pub fn get_me() -> Call {
    Call::new(Method::Get, "/me?$select=id,userPrincipalName,displayName")
}

/// `GET /organization` (tenant id and name, for progress text).
pub fn get_organization() -> Call {
    Call::new(Method::Get, "/organization?$select=id,displayName")
}

/// `GET /servicePrincipals(appId='…')` with its permissions (resource SPs, the app's own SP,
/// the registrator's SP).
pub fn get_service_principal(app_id: &str) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/servicePrincipals(appId='{}')?$select=id,appId,displayName,appRoles,oauth2PermissionScopes",
            key_literal(app_id)
        ),
    )
}

/// `GET /servicePrincipals/{id}` (check by object id).
pub fn get_service_principal_by_id(id: &ObjectId) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/servicePrincipals/{}?$select=id,appId,displayName",
            key_literal(id.as_str())
        ),
    )
}

/// `GET /applications(uniqueName='…')`.
pub fn get_application_by_unique_name(unique_name: &str) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/applications(uniqueName='{}')?{APP_SELECT}",
            key_literal(unique_name)
        ),
    )
}

/// `GET /applications(appId='…')`.
pub fn get_application_by_app_id(app_id: &AppId) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/applications(appId='{}')?{APP_SELECT}",
            key_literal(app_id.as_str())
        ),
    )
}

/// `GET /applications/{id}`.
pub fn get_application(id: &ObjectId) -> Call {
    Call::new(
        Method::Get,
        format!("/applications/{}?{APP_SELECT}", key_literal(id.as_str())),
    )
}

/// `GET /applications?$filter=displayName eq '…'` (apps made by the older console command
/// have no uniqueName).
pub fn list_applications_by_display_name(name: &str) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/applications?{}&{APP_SELECT}",
            filter_eq("displayName", name)
        ),
    )
}

/// What we write on an application: only settable properties (no `appId`, `id`,
/// `publisherDomain`, `passwordCredentials` …: read-only or not settable by PATCH, per the
/// application resource page and UPSERT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppWrite {
    pub display_name: Option<String>,
    pub sign_in_audience: Option<String>,
    /// The plugin signs users in with the device code flow: a public client
    /// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code).
    pub is_fallback_public_client: Option<bool>,
    pub required_resource_access: Option<Vec<RequiredResourceAccess>>,
    pub key_credentials: Option<Vec<NewKeyCredential>>,
    pub notes: Option<String>,
}

/// A certificate to put on an application (`keyCredentials` entry, or addKey's `keyCredential`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKeyCredential {
    /// Base64 (standard alphabet) DER of the X.509 certificate.
    pub key_base64: String,
    pub display_name: String,
    /// Unix seconds from the certificate's validity.
    pub start_unix: i64,
    pub end_unix: i64,
}

impl NewKeyCredential {
    fn to_json(&self) -> Value {
        json!({
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": self.key_base64,
            "displayName": self.display_name,
            "startDateTime": format_datetime(self.start_unix),
            "endDateTime": format_datetime(self.end_unix),
        })
    }
}

impl AppWrite {
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(v) = &self.display_name {
            m.insert("displayName".into(), json!(v));
        }
        if let Some(v) = &self.sign_in_audience {
            m.insert("signInAudience".into(), json!(v));
        }
        if let Some(v) = self.is_fallback_public_client {
            m.insert("isFallbackPublicClient".into(), json!(v));
        }
        if let Some(v) = &self.required_resource_access {
            m.insert("requiredResourceAccess".into(), json!(v));
        }
        if let Some(v) = &self.key_credentials {
            m.insert(
                "keyCredentials".into(),
                Value::Array(v.iter().map(NewKeyCredential::to_json).collect()),
            );
        }
        if let Some(v) = &self.notes {
            m.insert("notes".into(), json!(v));
        }
        Value::Object(m)
    }
}

/// `PATCH /applications(uniqueName='…')` + `Prefer: create-if-missing`: 201 + body when
/// created, 204 when it existed (UPSERT, https://learn.microsoft.com/graph/api/application-upsert).
pub fn upsert_application(unique_name: &str, body: &AppWrite) -> Call {
    Call::new(
        Method::Patch,
        format!("/applications(uniqueName='{}')", key_literal(unique_name)),
    )
    .header("Prefer", "create-if-missing")
    .json(body.to_json())
}

/// `PATCH /applications/{id}` (204).
pub fn update_application(id: &ObjectId, body: &AppWrite) -> Call {
    Call::new(
        Method::Patch,
        format!("/applications/{}", key_literal(id.as_str())),
    )
    .json(body.to_json())
}

/// `PATCH /servicePrincipals(appId='…')` + `Prefer: create-if-missing` (201 created, 204 existed;
/// https://learn.microsoft.com/graph/api/serviceprincipal-upsert). Body as in the doc's example.
pub fn upsert_service_principal(app_id: &AppId, display_name: &str) -> Call {
    Call::new(
        Method::Patch,
        format!(
            "/servicePrincipals(appId='{}')",
            key_literal(app_id.as_str())
        ),
    )
    .header("Prefer", "create-if-missing")
    .json(json!({ "displayName": display_name }))
}

/// `POST /applications/{id}/addPassword` (200 + passwordCredential with `secretText`).
/// Not idempotent: every call adds a credential.
pub fn add_password(app: &ObjectId, display_name: &str, end_unix: i64) -> Call {
    Call::new(Method::Post, format!("/applications/{}/addPassword", key_literal(app.as_str()))).json(json!({
        "passwordCredential": { "displayName": display_name, "endDateTime": format_datetime(end_unix) }
    }))
}

/// `POST /applications/{id}/removePassword` (204).
pub fn remove_password(app: &ObjectId, key_id: &KeyId) -> Call {
    Call::new(
        Method::Post,
        format!("/applications/{}/removePassword", key_literal(app.as_str())),
    )
    .json(json!({ "keyId": key_id.as_str() }))
}

/// `POST /applications/{id}/addKey` (200 + keyCredential): certificate rollover, `proof` is a
/// JWT signed by a current key of the app (https://learn.microsoft.com/graph/application-rollkey-prooftoken).
pub fn add_key(app: &ObjectId, key: &NewKeyCredential, proof: &str) -> Call {
    Call::new(
        Method::Post,
        format!("/applications/{}/addKey", key_literal(app.as_str())),
    )
    .json(json!({
        "keyCredential": key.to_json(),
        "passwordCredential": null,
        "proof": proof,
    }))
}

/// `POST /applications/{id}/removeKey` (204), with a proof JWT.
pub fn remove_key(app: &ObjectId, key_id: &KeyId, proof: &str) -> Call {
    Call::new(
        Method::Post,
        format!("/applications/{}/removeKey", key_literal(app.as_str())),
    )
    .json(json!({ "keyId": key_id.as_str(), "proof": proof }))
}

/// `POST /applications/{id}/owners/$ref` (204) with
/// `{"@odata.id": "<graph base>/directoryObjects/{userId}"}`.
pub fn add_owner(graph_base: &str, app: &ObjectId, user: &ObjectId) -> Call {
    Call::new(
        Method::Post,
        format!("/applications/{}/owners/$ref", key_literal(app.as_str())),
    )
    .json(json!({
        "@odata.id": format!("{graph_base}/directoryObjects/{}", user.as_str())
    }))
}

/// `POST /servicePrincipals/{resourceSpId}/appRoleAssignedTo` (201): grants one application
/// permission (app role of the resource) to the principal.
pub fn assign_app_role(resource_sp: &ObjectId, principal_sp: &ObjectId, app_role_id: &str) -> Call {
    Call::new(
        Method::Post,
        format!(
            "/servicePrincipals/{}/appRoleAssignedTo",
            key_literal(resource_sp.as_str())
        ),
    )
    .json(json!({
        "principalId": principal_sp.as_str(),
        "resourceId": resource_sp.as_str(),
        "appRoleId": app_role_id,
    }))
}

/// `GET /servicePrincipals/{id}/appRoleAssignments` (what the principal was granted).
pub fn list_app_role_assignments(sp: &ObjectId) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/servicePrincipals/{}/appRoleAssignments?$top=999",
            key_literal(sp.as_str())
        ),
    )
}

/// `GET /servicePrincipals/{id}/oauth2PermissionGrants` (delegated grants where it is the client).
pub fn list_grants(sp: &ObjectId) -> Call {
    Call::new(
        Method::Get,
        format!(
            "/servicePrincipals/{}/oauth2PermissionGrants",
            key_literal(sp.as_str())
        ),
    )
}

/// `POST /oauth2PermissionGrants` (201): one tenant-wide (`AllPrincipals`) delegated grant per
/// (client, resource) with the scopes space separated.
pub fn create_grant(client_sp: &ObjectId, resource_sp: &ObjectId, scopes: &[String]) -> Call {
    Call::new(Method::Post, "/oauth2PermissionGrants").json(json!({
        "clientId": client_sp.as_str(),
        "consentType": "AllPrincipals",
        "resourceId": resource_sp.as_str(),
        "scope": scopes.join(" "),
    }))
}

/// `PATCH /oauth2PermissionGrants/{id}` (204) with the merged scope list.
pub fn update_grant(grant_id: &str, scopes: &[String]) -> Call {
    Call::new(
        Method::Patch,
        format!("/oauth2PermissionGrants/{}", key_literal(grant_id)),
    )
    .json(json!({ "scope": scopes.join(" ") }))
}

/// `DELETE /servicePrincipals(appId='…')` (204).
pub fn delete_service_principal_by_app_id(app_id: &AppId) -> Call {
    Call::new(
        Method::Delete,
        format!(
            "/servicePrincipals(appId='{}')",
            key_literal(app_id.as_str())
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Classifiers. `fresh` means "this run wrote the object the call names moments ago", so a
// not-found is replication lag (poll again), not a real absence.

fn replication_or_failure<T>(step: &str, reply: &Reply, fresh: bool) -> Verdict<T> {
    if fresh && looks_unreplicated(reply) {
        Verdict::Retry(RetryReason::Replication)
    } else {
        failure(step, reply)
    }
}

/// `GET /me`.
pub fn classify_me(step: &str, reply: &Reply) -> Verdict<User> {
    if reply.status == 200 {
        parse(step, "user", reply)
    } else {
        failure(step, reply)
    }
}

/// `GET /organization` → the first organization.
pub fn classify_organization(step: &str, reply: &Reply) -> Verdict<Option<Organization>> {
    if reply.status == 200 {
        parse::<List<Organization>>(step, "organization list", reply)
            .map(|l| l.value.into_iter().next())
    } else {
        failure(step, reply)
    }
}

/// `GET /servicePrincipals(appId=…)` → `None` when absent (404).
pub fn classify_service_principal(
    step: &str,
    reply: &Reply,
    fresh: bool,
) -> Verdict<Option<ServicePrincipal>> {
    match reply.status {
        200 => parse(step, "service principal", reply).map(Some),
        404 if fresh => Verdict::Retry(RetryReason::Replication),
        404 => Verdict::Done(None),
        _ => failure(step, reply),
    }
}

/// `GET /applications(uniqueName=…)` / `(appId=…)` / `/{id}` → `None` when absent (404).
pub fn classify_application(
    step: &str,
    reply: &Reply,
    fresh: bool,
) -> Verdict<Option<Application>> {
    match reply.status {
        200 => parse(step, "application", reply).map(Some),
        404 if fresh => Verdict::Retry(RetryReason::Replication),
        404 => Verdict::Done(None),
        _ => failure(step, reply),
    }
}

/// `GET /applications?$filter=…`.
pub fn classify_application_list(step: &str, reply: &Reply) -> Verdict<Vec<Application>> {
    if reply.status == 200 {
        parse::<List<Application>>(step, "application list", reply).map(|l| l.value)
    } else {
        failure(step, reply)
    }
}

/// Result of an upsert.
#[derive(Debug, Clone, PartialEq)]
pub enum Upserted<T> {
    /// 201: the object was made by this call.
    Created(T),
    /// 204: it existed and was updated.
    Existed,
}

/// `PATCH /applications(uniqueName=…)` upsert.
pub fn classify_upsert_application(step: &str, reply: &Reply) -> Verdict<Upserted<Application>> {
    match reply.status {
        201 | 200 => parse(step, "application", reply).map(Upserted::Created),
        204 => Verdict::Done(Upserted::Existed),
        _ => failure(step, reply),
    }
}

/// Any 204 write (PATCH, removePassword, removeKey, owners/$ref …); `fresh` as above.
pub fn classify_no_content(step: &str, reply: &Reply, fresh: bool) -> Verdict<()> {
    if reply.is_success() {
        Verdict::Done(())
    } else {
        replication_or_failure(step, reply, fresh)
    }
}

/// `PATCH /servicePrincipals(appId=…)` upsert. Right after the app was created, Entra answers
/// 400 (no backing application) or 404 until the app has replicated: poll.
pub fn classify_upsert_service_principal(
    step: &str,
    reply: &Reply,
    app_fresh: bool,
) -> Verdict<Upserted<ServicePrincipal>> {
    match reply.status {
        201 | 200 => parse(step, "service principal", reply).map(Upserted::Created),
        204 => Verdict::Done(Upserted::Existed),
        _ => replication_or_failure(step, reply, app_fresh),
    }
}

/// `addPassword` → the new secret.
pub fn classify_add_password(step: &str, reply: &Reply, app_fresh: bool) -> Verdict<AddedPassword> {
    if !reply.is_success() {
        return replication_or_failure(step, reply, app_fresh);
    }
    match RawAddedPassword::deserialize(&reply.body) {
        Ok(RawAddedPassword {
            key_id: Some(key_id),
            secret_text: Some(s),
            end_date_time,
            display_name,
        }) if !s.is_empty() => Verdict::Done(AddedPassword {
            key_id,
            secret: ClientSecret::new(s),
            end_date_time,
            display_name,
        }),
        _ => Verdict::Fail(Error::Bug(format!(
            "{step}: addPassword answer without keyId or secretText"
        ))),
    }
}

/// `addKey` → the new key credential.
pub fn classify_add_key(step: &str, reply: &Reply) -> Verdict<KeyCredential> {
    if reply.is_success() {
        parse(step, "key credential", reply)
    } else {
        failure(step, reply)
    }
}

/// `removePassword` / `removeKey`: a credential already gone (404) counts as removed.
pub fn classify_remove_credential(step: &str, reply: &Reply) -> Verdict<()> {
    match reply.status {
        200..=299 | 404 => Verdict::Done(()),
        _ => failure(step, reply),
    }
}

/// Whether a write created something or found it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Created,
    AlreadyPresent,
}

/// `owners/$ref`: 204 added; "already exist" 400 = already an owner (done).
pub fn classify_add_owner(step: &str, reply: &Reply, app_fresh: bool) -> Verdict<Added> {
    if reply.is_success() {
        Verdict::Done(Added::Created)
    } else if looks_already_exists(reply) {
        Verdict::Done(Added::AlreadyPresent)
    } else {
        replication_or_failure(step, reply, app_fresh)
    }
}

/// `appRoleAssignedTo`: 201 created; duplicate 400 = already present (done).
pub fn classify_assign_app_role(step: &str, reply: &Reply, sp_fresh: bool) -> Verdict<Added> {
    if reply.is_success() {
        Verdict::Done(Added::Created)
    } else if looks_already_exists(reply) {
        Verdict::Done(Added::AlreadyPresent)
    } else {
        replication_or_failure(step, reply, sp_fresh)
    }
}

/// `GET …/appRoleAssignments`.
pub fn classify_app_role_assignments(
    step: &str,
    reply: &Reply,
    fresh: bool,
) -> Verdict<Vec<AppRoleAssignment>> {
    if reply.status == 200 {
        parse::<List<AppRoleAssignment>>(step, "assignment list", reply).map(|l| l.value)
    } else {
        replication_or_failure(step, reply, fresh)
    }
}

/// `GET …/oauth2PermissionGrants`.
pub fn classify_grants(
    step: &str,
    reply: &Reply,
    fresh: bool,
) -> Verdict<Vec<OAuth2PermissionGrant>> {
    if reply.status == 200 {
        parse::<List<OAuth2PermissionGrant>>(step, "grant list", reply).map(|l| l.value)
    } else {
        replication_or_failure(step, reply, fresh)
    }
}

/// `POST /oauth2PermissionGrants`: `Some(grant)` when created, `None` when one for this
/// (client, resource) already exists (409 / "already exist"): re-read and merge.
pub fn classify_create_grant(
    step: &str,
    reply: &Reply,
    sp_fresh: bool,
) -> Verdict<Option<OAuth2PermissionGrant>> {
    if reply.is_success() {
        parse(step, "grant", reply).map(Some)
    } else if looks_already_exists(reply) {
        Verdict::Done(None)
    } else {
        replication_or_failure(step, reply, sp_fresh)
    }
}

/// `DELETE`: 204 deleted, 404 already gone — both done.
pub fn classify_delete(step: &str, reply: &Reply) -> Verdict<Added> {
    match reply.status {
        200..=299 => Verdict::Done(Added::Created),
        404 => Verdict::Done(Added::AlreadyPresent),
        _ => failure(step, reply),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: Graph date-time (`2026-12-03T10:00:00Z`; Graph also sends fractional seconds and may
// omit the offset, which we read as UTC) and random UUIDs.

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_datetime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]` → Unix seconds (fraction dropped); `None` if malformed.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = rest.get(1..)?;
            let (oh, om) = t.split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

// Howard Hinnant's civil-date algorithms (public domain, http://howardhinnant.github.io/date_algorithms.html).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A random (version 4) UUID from the caller's RNG, e.g. for `client-request-id`.
pub fn new_uuid(rand: &mut impl FnMut() -> u32) -> String {
    let mut b = [0u8; 16];
    for chunk in b.chunks_mut(4) {
        chunk.copy_from_slice(&rand().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> GraphCtx {
        GraphCtx {
            base: "https://graph.microsoft.com/v1.0".into(),
            token: AccessToken::new("T0K"),
        }
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![],
            body,
        }
    }

    fn err(status: u16, code: &str, message: &str) -> Reply {
        reply(
            status,
            json!({"error": {"code": code, "message": message,
            "innerError": {"date": "2026-01-01T00:00:00", "request-id": "rq", "client-request-id": "cr"}}}),
        )
    }

    fn oid(s: &str) -> ObjectId {
        ObjectId::new(s)
    }

    #[test]
    fn request_has_auth_crid_and_body() {
        let call = upsert_application(
            "bacula-m365-plugin-standalone",
            &AppWrite {
                display_name: Some("bacula-m365-plugin-standalone".into()),
                sign_in_audience: Some("AzureADMyOrg".into()),
                is_fallback_public_client: None,
                required_resource_access: None,
                key_credentials: None,
                notes: None,
            },
        );
        let req = ctx().request(&call, "c-1");
        assert_eq!(req.method, Method::Patch);
        assert_eq!(
            req.url,
            "https://graph.microsoft.com/v1.0/applications(uniqueName='bacula-m365-plugin-standalone')"
        );
        assert_eq!(req.get_header("authorization"), Some("Bearer T0K"));
        assert_eq!(req.get_header("client-request-id"), Some("c-1"));
        assert_eq!(req.get_header("Prefer"), Some("create-if-missing"));
        assert_eq!(req.get_header("Content-Type"), Some("application/json"));
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"displayName": "bacula-m365-plugin-standalone", "signInAudience": "AzureADMyOrg"})
        );
        assert_eq!(
            call.describe(),
            "PATCH /applications(uniqueName='bacula-m365-plugin-standalone')"
        );
    }

    #[test]
    fn keys_and_filters_are_quoted_and_encoded() {
        let c = get_application_by_unique_name("o'brien app");
        assert!(
            c.path
                .starts_with("/applications(uniqueName='o%27%27brien%20app')?$select="),
            "{}",
            c.path
        );
        let c = list_applications_by_display_name("a b");
        assert!(
            c.path
                .starts_with("/applications?$filter=displayName%20eq%20%27a%20b%27&$select="),
            "{}",
            c.path
        );
    }

    #[test]
    fn builders_exact_bodies() {
        let a = oid("11111111-1111-1111-1111-111111111111");
        let u = oid("22222222-2222-2222-2222-222222222222");
        let c = add_owner("https://graph.microsoft.com/v1.0", &a, &u);
        assert_eq!(c.method, Method::Post);
        assert_eq!(c.path, format!("/applications/{}/owners/$ref", a.as_str()));
        assert_eq!(
            c.body.unwrap(),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", u.as_str())})
        );
        let c = add_password(&a, "bacula-m365-registrator run r1", 1_800_000_000);
        assert_eq!(c.path, format!("/applications/{}/addPassword", a.as_str()));
        assert_eq!(
            c.body.unwrap(),
            json!({"passwordCredential": {"displayName": "bacula-m365-registrator run r1", "endDateTime": "2027-01-15T08:00:00Z"}})
        );
        let c = assign_app_role(&u, &a, "role-id");
        assert_eq!(
            c.path,
            format!("/servicePrincipals/{}/appRoleAssignedTo", u.as_str())
        );
        assert_eq!(
            c.body.unwrap(),
            json!({"principalId": a.as_str(), "resourceId": u.as_str(), "appRoleId": "role-id"})
        );
        let c = create_grant(&a, &u, &["User.Read".into(), "openid".into()]);
        assert_eq!(
            c.body.unwrap(),
            json!({"clientId": a.as_str(), "consentType": "AllPrincipals", "resourceId": u.as_str(), "scope": "User.Read openid"})
        );
        let c = upsert_service_principal(&AppId::new("app-1"), "n");
        assert_eq!(c.path, "/servicePrincipals(appId='app-1')");
        assert_eq!(
            c.headers,
            vec![("Prefer".to_string(), "create-if-missing".to_string())]
        );
        assert_eq!(c.body.unwrap(), json!({"displayName": "n"}));
        let k = NewKeyCredential {
            key_base64: "AAAA".into(),
            display_name: "d".into(),
            start_unix: 0,
            end_unix: 86_400,
        };
        let c = add_key(&a, &k, "jwt");
        assert_eq!(
            c.body.unwrap(),
            json!({"keyCredential": {"type": "AsymmetricX509Cert", "usage": "Verify", "key": "AAAA", "displayName": "d",
                "startDateTime": "1970-01-01T00:00:00Z", "endDateTime": "1970-01-02T00:00:00Z"},
                "passwordCredential": null, "proof": "jwt"})
        );
    }

    #[test]
    fn batch_request_and_split() {
        let calls = vec![
            ("me".to_string(), get_me()),
            (
                "g".to_string(),
                create_grant(&oid("a"), &oid("b"), &["x".into()]),
            ),
        ];
        let req = ctx().batch(&calls, "c").unwrap();
        assert_eq!(req.url, "https://graph.microsoft.com/v1.0/$batch");
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body["requests"][0],
            json!({"id": "me", "method": "GET", "url": "/me?$select=id,userPrincipalName,displayName"})
        );
        assert_eq!(
            body["requests"][1]["headers"]["Content-Type"],
            "application/json"
        );
        assert_eq!(body["requests"][1]["body"]["consentType"], "AllPrincipals");
        assert!(ctx().batch(&[], "c").is_err());
        let dup = vec![("a".to_string(), get_me()), ("a".to_string(), get_me())];
        assert!(ctx().batch(&dup, "c").is_err());
        let many: Vec<_> = (0..21).map(|i| (i.to_string(), get_me())).collect();
        assert!(ctx().batch(&many, "c").is_err());

        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: json!({"responses": [
                {"id": "g", "status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"code": "TooManyRequests", "message": "slow"}}},
                {"id": "me", "status": 200, "headers": {}, "body": {"id": "u1"}},
                {"id": 7, "status": 204},
                {"status": 200}
            ]})
            .to_string(),
        };
        let parts = split_batch(&resp).unwrap();
        assert_eq!(parts.len(), 3);
        let g = &parts.iter().find(|(id, _)| id == "g").unwrap().1;
        assert_eq!(
            failure::<()>("grants", g),
            Verdict::Retry(RetryReason::Throttled {
                retry_after_ms: Some(3000)
            })
        );
        let me = &parts.iter().find(|(id, _)| id == "me").unwrap().1;
        assert_eq!(
            classify_me("discover", me).map(|u| u.id),
            Verdict::Done(oid("u1"))
        );
        // A throttled $batch as a whole comes back to be classified as a reply.
        let whole = HttpResponse {
            status: 503,
            headers: vec![("Retry-After".into(), "2".into())],
            body: String::new(),
        };
        let r = split_batch(&whole).unwrap_err();
        assert_eq!(
            failure::<()>("x", &r),
            Verdict::Retry(RetryReason::Unavailable {
                retry_after_ms: Some(2000)
            })
        );
        let garbage = HttpResponse {
            status: 200,
            headers: vec![],
            body: "not json".into(),
        };
        assert_eq!(split_batch(&garbage).unwrap_err().status, 502);
    }

    #[test]
    fn classifies_documented_errors() {
        let mut throttled = err(429, "TooManyRequests", "");
        throttled.headers.push(("Retry-After".into(), "10".into()));
        assert_eq!(
            classify_add_password("secret", &throttled, false),
            Verdict::Retry(RetryReason::Throttled {
                retry_after_ms: Some(10_000)
            })
        );
        assert_eq!(
            classify_no_content("app", &err(503, "serviceNotAvailable", ""), false),
            Verdict::Retry(RetryReason::Unavailable {
                retry_after_ms: None
            })
        );
        // 404 under replication vs a real 404.
        let nf = err(
            404,
            "Request_ResourceNotFound",
            "Resource 'x' does not exist",
        );
        assert_eq!(
            classify_add_password("secret", &nf, true),
            Verdict::Retry(RetryReason::Replication)
        );
        assert!(
            matches!(classify_add_password("secret", &nf, false), Verdict::Fail(Error::Graph(g)) if g.status == 404)
        );
        // No backing application on SP creation.
        let nb = err(
            400,
            "Request_BadRequest",
            "The appId 'x' of the service principal does not reference a valid application object.",
        );
        assert_eq!(
            classify_upsert_service_principal("service-principal", &nb, true),
            Verdict::Retry(RetryReason::Replication)
        );
        let nb2 = err(400, "NoBackingApplicationObject", "");
        assert_eq!(
            classify_upsert_service_principal("service-principal", &nb2, true),
            Verdict::Retry(RetryReason::Replication)
        );
        assert!(matches!(
            classify_upsert_service_principal("service-principal", &nb, false),
            Verdict::Fail(_)
        ));
        // Already owner / duplicate assignment.
        let owner = err(400, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'owners'.");
        assert_eq!(
            classify_add_owner("owner", &owner, true),
            Verdict::Done(Added::AlreadyPresent)
        );
        let dup = err(
            400,
            "Request_BadRequest",
            "Permission being assigned already exists on the object",
        );
        assert_eq!(
            classify_assign_app_role("grants", &dup, true),
            Verdict::Done(Added::AlreadyPresent)
        );
        assert_eq!(
            classify_assign_app_role("grants", &reply(201, json!({})), true),
            Verdict::Done(Added::Created)
        );
        // 401 / 403.
        match classify_add_owner("owner", &err(401, "InvalidAuthenticationToken", ""), false) {
            Verdict::Fail(e) => assert_eq!(e.kind(), crate::engine::error::ErrorKind::SignInAgain),
            v => panic!("{v:?}"),
        }
        match classify_assign_app_role(
            "grants",
            &err(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges",
            ),
            true,
        ) {
            Verdict::Fail(e) => {
                assert!(matches!(
                    e.kind(),
                    crate::engine::error::ErrorKind::NeedsAdmin { .. }
                ));
                let Error::Graph(g) = e else { panic!() };
                assert_eq!(g.request_id.as_deref(), Some("rq"));
            }
            v => panic!("{v:?}"),
        }
        // Tenant lifetime policy.
        match classify_add_password(
            "secret",
            &err(
                400,
                CODE_LIFETIME_POLICY,
                "Credential lifetime exceeds the max value allowed",
            ),
            false,
        ) {
            Verdict::Fail(e @ Error::Policy(_)) => {
                assert_eq!(e.kind(), crate::engine::error::ErrorKind::PolicyLimit)
            }
            v => panic!("{v:?}"),
        }
        // Grant exists.
        assert_eq!(
            classify_create_grant(
                "grants",
                &err(409, "Request_MultipleObjectsWithSameKeyValue", ""),
                true
            ),
            Verdict::Done(None)
        );
        // Deleting twice.
        assert_eq!(
            classify_delete("delete", &err(404, "Request_ResourceNotFound", "")),
            Verdict::Done(Added::AlreadyPresent)
        );
        assert_eq!(
            classify_delete("delete", &reply(204, Value::Null)),
            Verdict::Done(Added::Created)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let bodies = [
            Value::Null,
            json!("x"),
            json!([1]),
            json!({"value": 3}),
            json!({"id": 1}),
            json!({"keyId": "k"}),
        ];
        for b in bodies {
            for status in [0u16, 200, 201, 204, 400, 404, 999] {
                let r = reply(status, b.clone());
                let _ = classify_me("s", &r);
                let _ = classify_organization("s", &r);
                let _ = classify_service_principal("s", &r, true);
                let _ = classify_application("s", &r, false);
                let _ = classify_application_list("s", &r);
                let _ = classify_upsert_application("s", &r);
                let _ = classify_upsert_service_principal("s", &r, true);
                let _ = classify_add_password("s", &r, true);
                let _ = classify_add_key("s", &r);
                let _ = classify_app_role_assignments("s", &r, false);
                let _ = classify_grants("s", &r, false);
                let _ = classify_create_grant("s", &r, false);
            }
        }
        assert!(matches!(
            classify_add_password("s", &reply(200, json!({"keyId": "k"})), false),
            Verdict::Fail(Error::Bug(_))
        ));
        assert!(matches!(
            classify_upsert_application("s", &reply(201, json!({"id": 5}))),
            Verdict::Fail(Error::Bug(_))
        ));
    }

    #[test]
    fn add_password_keeps_secret_redacted() {
        let r = reply(
            200,
            json!({"keyId": "k-1", "secretText": "S3CRET", "endDateTime": "2028-01-01T00:00:00Z", "hint": "S3C"}),
        );
        let Verdict::Done(p) = classify_add_password("secret", &r, false) else {
            panic!()
        };
        assert_eq!(p.secret.expose(), "S3CRET");
        assert!(!format!("{p:?}").contains("S3CRET"));
    }

    #[test]
    fn datetimes_round_trip() {
        for t in [
            0i64,
            951_782_400,
            1_767_225_600,
            1_800_000_000,
            4_102_444_800,
            -86_400,
        ] {
            assert_eq!(parse_datetime(&format_datetime(t)), Some(t), "{t}");
        }
        assert_eq!(format_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00.1234567Z"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_datetime("2026-01-01T00:00:00"), Some(1_767_225_600));
        assert_eq!(
            parse_datetime("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600)
        );
        for bad in [
            "",
            "next year",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+1",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01T00:00:00Q",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn uuid_shape() {
        let mut n = 0u32;
        let mut r = || {
            n = n.wrapping_add(0x9e37_79b9);
            n
        };
        let u = new_uuid(&mut r);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
