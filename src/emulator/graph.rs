//! Microsoft Graph v1.0 endpoints of the emulator (the directory objects the registrator
//! touches), with Graph's status codes (entra-endpoints.md §11), ODataError bodies, `$filter`,
//! `$select`, `$top`, authorization by token scopes/roles and the signed-in user's directory
//! role, replication lag, and JSON `$batch` (§9).

use super::directory::{App, Assignment, Grant, KeyCred, PasswordCred, Role, User};
use super::odata::{self, Query};
use super::util;
use super::{jwt, schema, set_header, Ctx, Emulator, GRAPH_APP_ID};
use crate::engine::http::{HttpRequest, HttpResponse, Method};
use serde_json::{json, Map, Value};

/// Who is calling, from the bearer token.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    User { user: User, scopes: Vec<String> },
    App { roles: Vec<String> },
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Me,
    Org,
    ReadUsers,
    ReadApps,
    WriteApps,
    ReadGrants,
    WriteGrants,
    /// Creating/deleting an app role assignment; `true` when the resource is Microsoft Graph.
    WriteAssignment(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Id(String),
    AppId(String),
    UniqueName(String),
}

const APP_READONLY: [&str; 8] = [
    "id",
    "appId",
    "publisherDomain",
    "createdDateTime",
    "deletedDateTime",
    "createdByAppId",
    "disabledByMicrosoftStatus",
    "passwordCredentials",
];
const SP_READONLY: [&str; 6] = [
    "id",
    "appOwnerOrganizationId",
    "deletedDateTime",
    "createdByAppId",
    "appDisplayName",
    "passwordCredentials",
];
const SIGN_IN_AUDIENCES: [&str; 4] = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];
const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// Parses `name`, `name(appId='x')`, `name(uniqueName='x')`, `name('id')`; returns the key.
fn keyed(seg: &str, coll: &str) -> Option<Option<Key>> {
    let rest = util::strip_prefix_ci(seg, coll)?;
    if rest.is_empty() {
        return Some(None);
    }
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    let (name, val) = match inner.split_once('=') {
        Some((n, v)) => (n.trim(), v.trim()),
        None => ("id", inner.trim()),
    };
    let val = val
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(val)
        .replace("''", "'");
    match name {
        n if n.eq_ignore_ascii_case("appId") => Some(Some(Key::AppId(val))),
        n if n.eq_ignore_ascii_case("uniqueName") => Some(Some(Key::UniqueName(val))),
        n if n.eq_ignore_ascii_case("id") => Some(Some(Key::Id(val))),
        _ => Some(Some(Key::Id(String::new()))),
    }
}

fn seg_is(seg: &str, name: &str) -> bool {
    seg.eq_ignore_ascii_case(name)
}

fn parse_body(ctx: &Ctx, req: &HttpRequest) -> Result<Map<String, Value>, HttpResponse> {
    let raw = req.body.as_deref().unwrap_or("");
    if raw.trim().is_empty() {
        return Err(odata::error(
            ctx,
            400,
            "BadRequest",
            "Empty Payload. JSON content expected.",
        ));
    }
    if raw.len() > MAX_OBJECT_BYTES {
        return Err(odata::error(
            ctx,
            413,
            "Request_EntityTooLarge",
            "The request is too large.",
        ));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(odata::error(
            ctx,
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

fn validate(ctx: &Ctx, def: &str, body: &Map<String, Value>) -> Result<(), HttpResponse> {
    schema::validate(def, &Value::Object(body.clone()))
        .map_err(|e| odata::bad_request(ctx, &e.message))
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn created(ctx: &Ctx, coll: &str, id: &str, kind: &str, mut v: Value) -> HttpResponse {
    if let Value::Object(m) = &mut v {
        let mut o = Map::new();
        o.insert(
            "@odata.context".into(),
            json!(format!("{}/v1.0/$metadata#{coll}/$entity", ctx.base)),
        );
        for (k, val) in std::mem::take(m) {
            o.insert(k, val);
        }
        *m = o;
    }
    let mut r = odata::json_response(201, &v);
    set_header(
        &mut r,
        "Location",
        &format!(
            "{}/v2/{}/directoryObjects/{id}/{kind}",
            ctx.base, ctx.tenant_id
        ),
    );
    set_header(&mut r, "OData-Version", "4.0");
    r
}

fn entity(ctx: &Ctx, coll: &str, v: Value, q: &Query) -> HttpResponse {
    let def = match coll {
        "applications" => Some("microsoft.graph.application"),
        "servicePrincipals" => Some("microsoft.graph.servicePrincipal"),
        "users" => Some("microsoft.graph.user"),
        "oauth2PermissionGrants" => Some("microsoft.graph.oAuth2PermissionGrant"),
        _ => None,
    };
    if let Some(def) = def {
        let declared = schema::declared_props(def);
        if let Some(s) = q
            .select
            .iter()
            .find(|s| !declared.iter().any(|d| d.eq_ignore_ascii_case(s)))
        {
            return odata::error(
                ctx,
                400,
                "BadRequest",
                &format!("Could not find a property named '{s}' on type '{def}'."),
            );
        }
    }
    let mut o = Map::new();
    let c = if q.select.is_empty() {
        format!("{}/v1.0/$metadata#{coll}/$entity", ctx.base)
    } else {
        format!(
            "{}/v1.0/$metadata#{coll}({})/$entity",
            ctx.base,
            q.select.join(",")
        )
    };
    o.insert("@odata.context".into(), json!(c));
    if let Value::Object(m) = odata::apply_select(&v, &q.select) {
        o.extend(m);
    }
    let mut r = odata::json_response(200, &Value::Object(o));
    set_header(&mut r, "OData-Version", "4.0");
    r
}

/// Object id from an `@odata.id` like `https://graph.microsoft.com/v1.0/directoryObjects/{id}`.
fn ref_id(url: &str) -> Option<String> {
    let (_, path, _) = util::split_url(url);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [.., coll, id]
            if ["directoryObjects", "users", "servicePrincipals", "groups"]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(coll))
                && !id.is_empty() =>
        {
            Some(util::pct_decode(id))
        }
        _ => None,
    }
}

impl Emulator {
    fn app_visible(&self, a: &App, now: u64) -> bool {
        a.local && a.created_ms.saturating_add(self.cfg.lag.app_ms) <= now
    }

    fn sp_visible_idx(&self, i: usize, now: u64) -> bool {
        self.dir.sps[i]
            .created_ms
            .saturating_add(self.cfg.lag.sp_ms)
            <= now
            || self.dir.sps[i].created_ms == 0
    }

    /// Index of a local app by key; `visible_only` applies replication lag.
    fn find_app(&self, key: &Key, now: u64, visible_only: bool) -> Option<usize> {
        self.dir.apps.iter().position(|a| {
            a.local
                && (!visible_only || self.app_visible(a, now))
                && match key {
                    Key::Id(id) => a.id.eq_ignore_ascii_case(id),
                    Key::AppId(x) => a.app_id.eq_ignore_ascii_case(x),
                    Key::UniqueName(u) => {
                        a.unique_name().is_some_and(|n| n.eq_ignore_ascii_case(u))
                    }
                }
        })
    }

    fn find_sp(&self, key: &Key, now: u64, visible_only: bool) -> Option<usize> {
        (0..self.dir.sps.len()).find(|&i| {
            let s = &self.dir.sps[i];
            (!visible_only || self.sp_visible_idx(i, now))
                && match key {
                    Key::Id(id) => s.id.eq_ignore_ascii_case(id),
                    Key::AppId(x) => s.app_id.eq_ignore_ascii_case(x),
                    Key::UniqueName(_) => false,
                }
        })
    }

    fn key_text(key: &Key) -> String {
        match key {
            Key::Id(s) | Key::AppId(s) | Key::UniqueName(s) => s.clone(),
        }
    }

    /// Entry from `handle`: `/v1.0/...`.
    pub(crate) fn graph_entry(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        path: &str,
        query: &str,
    ) -> HttpResponse {
        let rest = path.strip_prefix("/v1.0").unwrap_or(path);
        if rest.trim_matches('/').eq_ignore_ascii_case("$batch") {
            if req.method != Method::Post {
                return odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                );
            }
            return self.batch(ctx, req);
        }
        self.graph_route(ctx, req, rest, query)
    }

    fn authenticate(&mut self, ctx: &Ctx, req: &HttpRequest) -> Result<Principal, HttpResponse> {
        let unauth = |m: &str| odata::error(ctx, 401, "InvalidAuthenticationToken", m);
        let Some(auth) = req.get_header("Authorization") else {
            return Err(unauth("Access token is empty."));
        };
        let token = match auth.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("Bearer") => t.trim(),
            _ => return Err(unauth("Access token is empty.")),
        };
        if token.is_empty() {
            return Err(unauth("Access token is empty."));
        }
        if jwt::parse_jwt(token).is_none() {
            return Err(unauth("IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'."));
        }
        let key = self.signing_key();
        let Some(claims) = key.verify(token) else {
            return Err(unauth(
                "Access token validation failure. Invalid signature.",
            ));
        };
        let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
        if !(aud == "https://graph.microsoft.com"
            || aud == "https://graph.microsoft.com/"
            || aud == GRAPH_APP_ID)
        {
            return Err(unauth("Access token validation failure. Invalid audience."));
        }
        let now = (ctx.now_ms / 1000) as i64;
        if jwt::num_claim(&claims, "exp").unwrap_or(0) <= now {
            return Err(unauth("Lifetime validation failed, the token is expired."));
        }
        if claims.get("tid").and_then(Value::as_str) != Some(self.dir.tenant.id.as_str()) {
            return Err(unauth("Access token validation failure. Invalid audience."));
        }
        match claims.get("idtyp").and_then(Value::as_str) {
            Some("app") => Ok(Principal::App {
                roles: claims
                    .get("roles")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            _ => {
                let oid = claims.get("oid").and_then(Value::as_str).unwrap_or("");
                let Some(user) = self.dir.users.iter().find(|u| u.id == oid).cloned() else {
                    return Err(unauth(
                        "Access token validation failure. The user does not exist.",
                    ));
                };
                let scopes = claims
                    .get("scp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                Ok(Principal::User { user, scopes })
            }
        }
    }

    /// Token permissions AND (for delegated calls) the user's directory role.
    fn allow(&self, ctx: &Ctx, p: &Principal, need: Need) -> Result<(), HttpResponse> {
        let (delegated, app): (&[&str], &[&str]) = match need {
            Need::Me => (
                &[
                    "User.Read",
                    "User.ReadWrite",
                    "User.ReadBasic.All",
                    "User.Read.All",
                    "User.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
                &[],
            ),
            Need::Org => (
                &[
                    "User.Read",
                    "Organization.Read.All",
                    "Organization.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
                &[
                    "Organization.Read.All",
                    "Organization.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
            ),
            Need::ReadUsers => (
                &[
                    "User.ReadBasic.All",
                    "User.Read.All",
                    "User.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
                &[
                    "User.Read.All",
                    "User.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
            ),
            Need::ReadApps => (
                &[
                    "Application.Read.All",
                    "Application.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                    "AppRoleAssignment.ReadWrite.All",
                ],
                &[
                    "Application.Read.All",
                    "Application.ReadWrite.All",
                    "Application.ReadWrite.OwnedBy",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
            ),
            Need::WriteApps => (
                &["Application.ReadWrite.All"],
                &["Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"],
            ),
            Need::ReadGrants => (
                &[
                    "DelegatedPermissionGrant.Read.All",
                    "DelegatedPermissionGrant.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
                &[
                    "DelegatedPermissionGrant.Read.All",
                    "DelegatedPermissionGrant.ReadWrite.All",
                    "Directory.Read.All",
                    "Directory.ReadWrite.All",
                ],
            ),
            Need::WriteGrants => (
                &["DelegatedPermissionGrant.ReadWrite.All"],
                &["DelegatedPermissionGrant.ReadWrite.All"],
            ),
            Need::WriteAssignment(_) => (
                &["AppRoleAssignment.ReadWrite.All"],
                &["AppRoleAssignment.ReadWrite.All"],
            ),
        };
        match p {
            Principal::User { user, scopes } => {
                if !scopes
                    .iter()
                    .any(|s| delegated.iter().any(|d| d.eq_ignore_ascii_case(s)))
                {
                    return Err(odata::forbidden(ctx));
                }
                let writes = matches!(
                    need,
                    Need::WriteApps | Need::WriteGrants | Need::WriteAssignment(_)
                );
                match (user.role, need) {
                    (Role::GlobalAdministrator, _) => Ok(()),
                    (_, _) if !writes => Ok(()),
                    (Role::ApplicationAdministrator, Need::WriteAssignment(true)) => {
                        Err(odata::forbidden(ctx))
                    }
                    (Role::ApplicationAdministrator, _) => Ok(()),
                    (Role::None, _) => Err(odata::forbidden(ctx)),
                }
            }
            Principal::App { roles } => {
                if matches!(need, Need::Me) {
                    return Err(odata::error(
                        ctx,
                        400,
                        "BadRequest",
                        "/me request is only valid with delegated authentication flow.",
                    ));
                }
                if roles
                    .iter()
                    .any(|r| app.iter().any(|a| a.eq_ignore_ascii_case(r)))
                {
                    Ok(())
                } else {
                    Err(odata::forbidden(ctx))
                }
            }
        }
    }

    fn graph_route(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        rest: &str,
        query: &str,
    ) -> HttpResponse {
        let p = match self.authenticate(ctx, req) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let q = odata::parse_query(query);
        if let Some(o) = q
            .other
            .iter()
            .find(|o| ["$expand", "$search", "$orderby", "$skip"].contains(&o.as_str()))
        {
            // The emulator does not implement these; say so instead of ignoring them.
            return odata::unsupported_query(
                ctx,
                &format!("The emulator does not support the query option '{o}'."),
            );
        }
        let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let m = req.method;
        let first = segs.first().copied().unwrap_or("");
        if seg_is(first, "me") && segs.len() == 1 {
            if let Err(r) = self.allow(ctx, &p, Need::Me) {
                return r;
            }
            let Principal::User { user, .. } = &p else {
                return odata::forbidden(ctx);
            };
            return match m {
                Method::Get => entity(ctx, "users", user.json(), &q),
                _ => odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                ),
            };
        }
        if seg_is(first, "organization") && segs.len() == 1 {
            if let Err(r) = self.allow(ctx, &p, Need::Org) {
                return r;
            }
            if m != Method::Get {
                return odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                );
            }
            let t = &self.dir.tenant;
            let org = json!({
                "id": t.id, "deletedDateTime": null, "businessPhones": [], "city": null, "country": null,
                "countryLetterCode": "FR", "createdDateTime": "2020-01-01T00:00:00Z", "defaultUsageLocation": null,
                "displayName": t.display_name, "isMultipleDataLocationsForServicesEnabled": null,
                "marketingNotificationEmails": [], "onPremisesLastSyncDateTime": null, "onPremisesSyncEnabled": null,
                "postalCode": null, "preferredLanguage": "en", "securityComplianceNotificationMails": [],
                "securityComplianceNotificationPhones": [], "state": null, "street": null,
                "technicalNotificationMails": [format!("admin@{}", t.domain)], "tenantType": "AAD",
                "directorySizeQuota": {"used": 100, "total": 50000},
                "assignedPlans": [], "privacyProfile": null, "provisionedPlans": [],
                "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true, "isInitial": true, "name": t.domain, "type": "Managed"}],
            });
            return self.list(
                ctx,
                req,
                "organization",
                "microsoft.graph.organization",
                vec![org],
                &q,
                "organization",
            );
        }
        if seg_is(first, "users") && segs.len() == 2 && m == Method::Get {
            if let Err(r) = self.allow(ctx, &p, Need::ReadUsers) {
                return r;
            }
            return match self.dir.user(&util::pct_decode(segs[1])) {
                Some(u) => entity(ctx, "users", u.json(), &q),
                None => odata::not_found(ctx, segs[1]),
            };
        }
        if seg_is(first, "directoryObjects") && segs.len() == 2 && m == Method::Get {
            if let Err(r) = self.allow(ctx, &p, Need::ReadApps) {
                return r;
            }
            let id = segs[1];
            if let Some(u) = self
                .dir
                .users
                .iter()
                .find(|u| u.id.eq_ignore_ascii_case(id))
            {
                let mut v = u.json();
                v["@odata.type"] = json!("#microsoft.graph.user");
                return entity(ctx, "directoryObjects", v, &q);
            }
            if let Some(i) = self.find_sp(&Key::Id(id.into()), ctx.now_ms, true) {
                let mut v = self.dir.sps[i].json();
                v["@odata.type"] = json!("#microsoft.graph.servicePrincipal");
                return entity(ctx, "directoryObjects", v, &q);
            }
            if let Some(i) = self.find_app(&Key::Id(id.into()), ctx.now_ms, true) {
                let mut v = self.dir.apps[i].json(&self.dir.tenant.domain);
                v["@odata.type"] = json!("#microsoft.graph.application");
                return entity(ctx, "directoryObjects", v, &q);
            }
            return odata::not_found(ctx, id);
        }
        if let Some(key) = keyed(first, "applications") {
            return self.applications(ctx, req, &p, key, &segs[1..], &q);
        }
        if let Some(key) = keyed(first, "servicePrincipals") {
            return self.service_principals(ctx, req, &p, key, &segs[1..], &q);
        }
        if seg_is(first, "oauth2PermissionGrants") {
            return self.grants(ctx, req, &p, &segs[1..], &q);
        }
        odata::error(
            ctx,
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{first}'."),
        )
    }

    /// A collection answer with `$filter`, `$select`, `$top`/`$skiptoken`, `$count`.
    #[allow(clippy::too_many_arguments)]
    fn list(
        &self,
        ctx: &Ctx,
        req: &HttpRequest,
        coll_path: &str,
        def: &str,
        items: Vec<Value>,
        q: &Query,
        ctx_name: &str,
    ) -> HttpResponse {
        let declared = schema::declared_props(def);
        for s in &q.select {
            if !declared.iter().any(|d| d.eq_ignore_ascii_case(s)) {
                return odata::error(
                    ctx,
                    400,
                    "BadRequest",
                    &format!("Could not find a property named '{s}' on type '{def}'."),
                );
            }
        }
        let mut items = items;
        if let Some(f) = &q.filter {
            let filter = match odata::parse_filter(f) {
                Ok(x) => x,
                Err(e) => {
                    return odata::unsupported_query(ctx, &format!("Invalid filter clause: {e}"))
                }
            };
            let mut props = vec![];
            filter.props(&mut props);
            for pr in &props {
                let top = pr.split('/').next().unwrap_or("");
                if !declared.iter().any(|d| d == top) {
                    return odata::error(
                        ctx,
                        400,
                        "BadRequest",
                        &format!("Could not find a property named '{top}' on type '{def}'."),
                    );
                }
            }
            if filter.is_advanced() {
                let eventual = req
                    .get_header("ConsistencyLevel")
                    .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
                if !eventual || !q.count {
                    let op = match &filter {
                        odata::Filter::Not(_) => "not",
                        odata::Filter::EndsWith(..) => "endsWith",
                        _ => "ne",
                    };
                    return odata::unsupported_query(
                        ctx,
                        &format!("Operator '{op}' is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information"),
                    );
                }
            }
            items.retain(|v| filter.eval(v));
        }
        let total = items.len();
        let top = q.top.unwrap_or(100).clamp(1, 999);
        let skip = q.skiptoken.unwrap_or(0);
        let page: Vec<Value> = items
            .iter()
            .skip(skip)
            .take(top)
            .map(|v| odata::apply_select(v, &q.select))
            .collect();
        let context = if q.select.is_empty() {
            format!("{}/v1.0/$metadata#{ctx_name}", ctx.base)
        } else {
            format!(
                "{}/v1.0/$metadata#{ctx_name}({})",
                ctx.base,
                q.select.join(",")
            )
        };
        let mut body = Map::new();
        body.insert("@odata.context".into(), json!(context));
        if q.count {
            body.insert("@odata.count".into(), json!(total));
        }
        if skip + top < total {
            let (_, _, raw_q) = util::split_url(&req.url);
            let kept: Vec<&str> = raw_q
                .split('&')
                .filter(|p| {
                    !p.starts_with("$skiptoken=")
                        && !p.starts_with("%24skiptoken=")
                        && !p.is_empty()
                })
                .collect();
            let mut qs = kept.join("&");
            if !qs.is_empty() {
                qs.push('&');
            }
            body.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{}/v1.0/{coll_path}?{qs}$skiptoken={}",
                    ctx.base,
                    skip + top
                )),
            );
        }
        body.insert("value".into(), Value::Array(page));
        let mut r = odata::json_response(200, &Value::Object(body));
        set_header(&mut r, "OData-Version", "4.0");
        r
    }

    // ---------------------------------------------------------------- applications

    fn applications(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        p: &Principal,
        key: Option<Key>,
        rest: &[&str],
        q: &Query,
    ) -> HttpResponse {
        let m = req.method;
        let now = ctx.now_ms;
        // `/applications/{id}` → key Id
        let (key, rest): (Option<Key>, &[&str]) = match (key, rest) {
            (None, [id, tail @ ..]) if !id.is_empty() => (Some(Key::Id(id.to_string())), tail),
            (k, r) => (k, r),
        };
        let read = matches!(m, Method::Get);
        if let Err(r) = self.allow(
            ctx,
            p,
            if read {
                Need::ReadApps
            } else {
                Need::WriteApps
            },
        ) {
            return r;
        }
        let Some(key) = key else {
            return match m {
                Method::Get => {
                    let items: Vec<Value> = self
                        .dir
                        .apps
                        .iter()
                        .filter(|a| self.app_visible(a, now))
                        .map(|a| a.json(&self.dir.tenant.domain))
                        .collect();
                    self.list(
                        ctx,
                        req,
                        "applications",
                        "microsoft.graph.application",
                        items,
                        q,
                        "applications",
                    )
                }
                Method::Post => self.create_app(ctx, req, p, None),
                _ => odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                ),
            };
        };
        if let Key::Id(id) = &key {
            if id.is_empty() {
                return odata::error(ctx, 400, "BadRequest", "Invalid key segment.");
            }
        }
        match rest {
            [] => match m {
                Method::Get => match self.find_app(&key, now, true) {
                    Some(i) => entity(
                        ctx,
                        "applications",
                        self.dir.apps[i].json(&self.dir.tenant.domain),
                        q,
                    ),
                    None => odata::not_found(ctx, &Self::key_text(&key)),
                },
                Method::Patch => {
                    let upsert = matches!(key, Key::UniqueName(_));
                    let create_if_missing = req.get_header("Prefer").is_some_and(|v| {
                        v.split(',')
                            .any(|x| x.trim().eq_ignore_ascii_case("create-if-missing"))
                    });
                    // An upsert finds the app even while it replicates (the key is unique at write).
                    let idx = if upsert {
                        self.find_app(&key, now, false)
                    } else {
                        self.find_app(&key, now, true)
                    };
                    match idx {
                        Some(i) => self.update_app(ctx, req, i),
                        None if upsert && create_if_missing => {
                            let Key::UniqueName(u) = &key else {
                                return odata::not_found(ctx, &Self::key_text(&key));
                            };
                            self.create_app(ctx, req, p, Some(u.clone()))
                        }
                        None => odata::not_found(ctx, &Self::key_text(&key)),
                    }
                }
                Method::Delete => match self.find_app(&key, now, true) {
                    Some(i) => {
                        let app = self.dir.apps.remove(i);
                        if let Some(sp) = self.dir.sp_by_app_id(&app.app_id).map(|s| s.id.clone()) {
                            self.dir.delete_sp(&sp);
                        }
                        odata::no_content()
                    }
                    None => odata::not_found(ctx, &Self::key_text(&key)),
                },
                _ => odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                ),
            },
            [action] => {
                let Some(i) = self.find_app(&key, now, true) else {
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                let a = action.to_ascii_lowercase();
                let a = a.strip_prefix("microsoft.graph.").unwrap_or(&a).to_string();
                match (m, a.as_str()) {
                    (Method::Post, "addpassword") => self.add_password(ctx, req, i),
                    (Method::Post, "removepassword") => self.remove_password(ctx, req, i),
                    (Method::Post, "addkey") => self.add_key(ctx, req, i),
                    (Method::Post, "removekey") => self.remove_key(ctx, req, i),
                    (Method::Get, "owners") => {
                        let items: Vec<Value> = self.dir.apps[i]
                            .owners
                            .iter()
                            .filter_map(|o| self.dir.user(o).map(|u| (o, u)))
                            .map(|(_, u)| {
                                let mut v = u.json();
                                if let Value::Object(m) = &mut v {
                                    let mut o = Map::new();
                                    o.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                                    o.extend(std::mem::take(m));
                                    *m = o;
                                }
                                v
                            })
                            .collect();
                        self.list(
                            ctx,
                            req,
                            "owners",
                            "microsoft.graph.directoryObject",
                            items,
                            q,
                            "directoryObjects",
                        )
                    }
                    _ => odata::error(
                        ctx,
                        400,
                        "BadRequest",
                        &format!("Resource not found for the segment '{action}'."),
                    ),
                }
            }
            [owners, r] if seg_is(owners, "owners") && *r == "$ref" => {
                let Some(i) = self.find_app(&key, now, true) else {
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                match m {
                    Method::Get => {
                        let v: Vec<Value> = self.dir.apps[i]
                            .owners
                            .iter()
                            .map(|o| json!({"@odata.id": format!("{}/v2/{}/directoryObjects/{o}/Microsoft.DirectoryServices.User", ctx.base, self.dir.tenant.id)}))
                            .collect();
                        odata::json_response(
                            200,
                            &json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", ctx.base), "value": v}),
                        )
                    }
                    Method::Post => self.add_owner(ctx, req, i),
                    _ => odata::error(
                        ctx,
                        405,
                        "BadRequest",
                        "Specified HTTP method is not allowed for the request uri.",
                    ),
                }
            }
            [owners, id, r] if seg_is(owners, "owners") && *r == "$ref" && m == Method::Delete => {
                let Some(i) = self.find_app(&key, now, true) else {
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                let before = self.dir.apps[i].owners.len();
                self.dir.apps[i]
                    .owners
                    .retain(|o| !o.eq_ignore_ascii_case(id));
                if before == self.dir.apps[i].owners.len() {
                    return odata::not_found(ctx, id);
                }
                odata::no_content()
            }
            _ => odata::error(
                ctx,
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.first().unwrap_or(&"")
                ),
            ),
        }
    }

    /// Validates and applies an application body (create or update) onto `app`.
    fn apply_app_body(
        &mut self,
        ctx: &Ctx,
        body: &Map<String, Value>,
        app: &mut App,
        creating: bool,
    ) -> Result<(), HttpResponse> {
        for k in body.keys() {
            if APP_READONLY.contains(&k.as_str()) {
                // GUESS: wording of the read-only refusal.
                let msg = if k == "passwordCredentials" {
                    "Property 'passwordCredentials' is read-only and cannot be set. Use the addPassword action.".to_string()
                } else {
                    format!("Property '{k}' is read-only and cannot be set.")
                };
                return Err(odata::bad_request(ctx, &msg));
            }
        }
        if let Some(v) = body.get("signInAudience") {
            if !v.as_str().is_some_and(|s| SIGN_IN_AUDIENCES.contains(&s)) {
                return Err(odata::bad_request(ctx, "Invalid value specified for property 'signInAudience' of resource 'Application'."));
            }
        }
        if let Some(d) = body.get("displayName") {
            if !d
                .as_str()
                .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= 256)
            {
                return Err(odata::bad_request(
                    ctx,
                    "Invalid value specified for property 'displayName' of resource 'Application'.",
                ));
            }
        }
        if creating
            && str_of(body, "displayName").is_none()
            && app
                .props
                .get("displayName")
                .and_then(Value::as_str)
                .is_none()
        {
            // GUESS: wording for a missing displayName.
            return Err(odata::bad_request(
                ctx,
                "A value is required for property 'displayName' of resource 'Application'.",
            ));
        }
        if let Some(u) = body.get("uniqueName") {
            let new = u.as_str().unwrap_or("");
            match app.unique_name() {
                Some(old) if !old.eq_ignore_ascii_case(new) => {
                    // GUESS: uniqueName is immutable once set.
                    return Err(odata::bad_request(
                        ctx,
                        "Property 'uniqueName' is read-only and cannot be set.",
                    ));
                }
                _ => {}
            }
            if new.is_empty() || new.len() > 120 {
                return Err(odata::bad_request(
                    ctx,
                    "Invalid value specified for property 'uniqueName' of resource 'Application'.",
                ));
            }
            if self.dir.apps.iter().any(|a| {
                a.local
                    && a.id != app.id
                    && a.unique_name().is_some_and(|n| n.eq_ignore_ascii_case(new))
            }) {
                // GUESS: status and code for a uniqueName clash.
                return Err(odata::error(
                    ctx,
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Another object with the same value for property uniqueName already exists.",
                ));
            }
        }
        for rra in body
            .get("requiredResourceAccess")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for ra in rra
                .get("resourceAccess")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !matches!(
                    ra.get("type").and_then(Value::as_str),
                    Some("Scope") | Some("Role")
                ) {
                    return Err(odata::bad_request(
                        ctx,
                        "Invalid value specified for property 'type' of resource 'ResourceAccess'.",
                    ));
                }
            }
        }
        if let Some(kc) = body.get("keyCredentials") {
            let list = kc.as_array().cloned().unwrap_or_default();
            let mut new_keys = vec![];
            for k in &list {
                new_keys.push(self.key_from_json(ctx, k, &app.keys)?);
            }
            let mut seen = std::collections::HashSet::new();
            for k in &new_keys {
                if !seen.insert(k.key_id.to_lowercase()) {
                    return Err(odata::bad_request(
                        ctx,
                        "Invalid value specified for property 'keyId' of resource 'KeyCredential'.",
                    ));
                }
            }
            app.keys = new_keys;
        }
        for (k, v) in body {
            if k == "keyCredentials" || k.starts_with('@') {
                continue;
            }
            if k.ends_with("@odata.bind") {
                if k == "owners@odata.bind" {
                    for url in v.as_array().into_iter().flatten() {
                        let Some(id) = url.as_str().and_then(ref_id) else {
                            return Err(odata::bad_request(
                                ctx,
                                "Invalid object identifier in 'owners@odata.bind'.",
                            ));
                        };
                        if self.dir.object_kind(&id).is_none() {
                            return Err(odata::not_found(ctx, &id));
                        }
                        if !app.owners.iter().any(|o| o.eq_ignore_ascii_case(&id)) {
                            app.owners.push(id);
                        }
                    }
                }
                continue;
            }
            match (app.props.get_mut(k), v) {
                (Some(Value::Object(old)), Value::Object(new)) if !creating => {
                    for (nk, nv) in new {
                        old.insert(nk.clone(), nv.clone());
                    }
                }
                _ => {
                    app.props.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(())
    }

    /// A keyCredential from a request body (certificate parsed, dates checked against it).
    fn key_from_json(
        &mut self,
        ctx: &Ctx,
        k: &Value,
        existing: &[KeyCred],
    ) -> Result<KeyCred, HttpResponse> {
        let bad = |m: &str| odata::bad_request(ctx, m);
        let key_id = k.get("keyId").and_then(Value::as_str).map(String::from);
        let key_b64 = k.get("key").and_then(Value::as_str);
        let Some(key_b64) = key_b64 else {
            // An existing key re-sent without its `key` (as GET returns it) is kept.
            if let Some(e) = key_id
                .as_ref()
                .and_then(|id| existing.iter().find(|e| e.key_id.eq_ignore_ascii_case(id)))
            {
                return Ok(e.clone());
            }
            return Err(bad(
                "Invalid value specified for property 'key' of resource 'KeyCredential'.",
            ));
        };
        let Some(der) = util::b64_any_decode(key_b64) else {
            return Err(bad(
                "Invalid value specified for property 'key' of resource 'KeyCredential'.",
            ));
        };
        let info = jwt::parse_cert(&der).map_err(|_| {
            bad("Invalid value specified for property 'key' of resource 'KeyCredential'.")
        })?;
        let kind = k.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "AsymmetricX509Cert" && kind != "X509CertAndPassword" {
            return Err(bad(
                "Invalid value specified for property 'type' of resource 'KeyCredential'.",
            ));
        }
        let usage = k.get("usage").and_then(Value::as_str).unwrap_or("");
        if usage != "Verify" && usage != "Sign" {
            return Err(bad(
                "Invalid value specified for property 'usage' of resource 'KeyCredential'.",
            ));
        }
        // GUESS: given dates must equal the certificate's validity (to the second).
        let near = |a: i64, b: i64| (a / 1000 - b / 1000).abs() <= 1;
        let start = match k.get("startDateTime").and_then(Value::as_str) {
            Some(s) => match util::parse_iso(s) {
                Some(t) if near(t, info.not_before_ms) => t,
                _ => return Err(bad("Key credential start date is invalid.")),
            },
            None => info.not_before_ms,
        };
        let end = match k.get("endDateTime").and_then(Value::as_str) {
            Some(s) => match util::parse_iso(s) {
                Some(t) if near(t, info.not_after_ms) => t,
                _ => return Err(bad("Key credential end date is invalid.")),
            },
            None => info.not_after_ms,
        };
        let key_id = match key_id {
            Some(id) if util::is_guid(&id) => id.to_lowercase(),
            Some(_) => {
                return Err(bad(
                    "Invalid value specified for property 'keyId' of resource 'KeyCredential'.",
                ))
            }
            None => util::uuid(&mut self.rng),
        };
        Ok(KeyCred {
            key_id,
            display_name: k
                .get("displayName")
                .and_then(Value::as_str)
                .map(String::from),
            cert_der: der,
            start_ms: start,
            end_ms: end,
            usage: usage.to_string(),
            kind: kind.to_string(),
            // GUESS: Graph shows the SHA-1 thumbprint (base64) as customKeyIdentifier.
            custom_key_identifier: Some(
                k.get("customKeyIdentifier")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| util::b64_std(&info.sha1)),
            ),
            sha1: info.sha1,
            sha256: info.sha256,
        })
    }

    fn create_app(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        p: &Principal,
        unique: Option<String>,
    ) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let def = if unique.is_some() {
            "request:applications.application.UpdateApplicationByUniqueName"
        } else {
            "request:applications.application.CreateApplication"
        };
        if let Err(r) = validate(ctx, def, &body) {
            return r;
        }
        let mut app = App {
            id: util::uuid(&mut self.rng),
            app_id: util::uuid(&mut self.rng),
            created_ms: ctx.now_ms,
            local: true,
            props: Map::new(),
            passwords: vec![],
            keys: vec![],
            owners: vec![],
        };
        if let Some(u) = &unique {
            if let Some(b) = str_of(&body, "uniqueName") {
                if !b.eq_ignore_ascii_case(u) {
                    return odata::bad_request(ctx, "The value of 'uniqueName' in the request body does not match the key in the URL.");
                }
            }
            app.props.insert("uniqueName".into(), json!(u));
        }
        if let Err(r) = self.apply_app_body(ctx, &body, &mut app, true) {
            return r;
        }
        if let Principal::User { user, .. } = p {
            if self.cfg.creator_becomes_owner && !app.owners.contains(&user.id) {
                app.owners.push(user.id.clone());
            }
        }
        let v = app.json(&self.dir.tenant.domain);
        let id = app.id.clone();
        self.dir.apps.push(app);
        created(
            ctx,
            "applications",
            &id,
            "Microsoft.DirectoryServices.Application",
            v,
        )
    }

    fn update_app(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(
            ctx,
            "request:applications.application.UpdateApplication",
            &body,
        ) {
            return r;
        }
        let mut app = self.dir.apps[i].clone();
        if let Err(r) = self.apply_app_body(ctx, &body, &mut app, false) {
            return r;
        }
        self.dir.apps[i] = app;
        odata::no_content()
    }

    fn add_password(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = if req.body.as_deref().unwrap_or("").trim().is_empty() {
            Map::new()
        } else {
            match parse_body(ctx, req) {
                Ok(b) => b,
                Err(r) => return r,
            }
        };
        if let Err(r) = validate(ctx, "request:applications.application.addPassword", &body) {
            return r;
        }
        let pc = body
            .get("passwordCredential")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for k in ["secretText", "hint", "keyId"] {
            if pc.get(k).is_some_and(|v| !v.is_null()) {
                return odata::bad_request(
                    ctx,
                    &format!("Property '{k}' is read-only and cannot be set."),
                );
            }
        }
        let now = ctx.now_ms as i64;
        let start = match pc.get("startDateTime").and_then(Value::as_str) {
            Some(s) => match util::parse_iso(s) {
                Some(t) => t,
                None => return odata::bad_request(ctx, "Invalid value specified for property 'startDateTime' of resource 'PasswordCredential'."),
            },
            None => now,
        };
        // Default lifetime: 2 years (GUESS: 730 days).
        let end = match pc.get("endDateTime").and_then(Value::as_str) {
            Some(s) => match util::parse_iso(s) {
                Some(t) => t,
                None => return odata::bad_request(ctx, "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'."),
            },
            None => start + 730 * 86_400_000,
        };
        if end <= start {
            return odata::bad_request(ctx, "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.");
        }
        if let Some(days) = self.cfg.password_max_lifetime_days {
            if end - start > days as i64 * 86_400_000 {
                // Observed wording (KelvinTegelaar/CIPP-API#1970): "Credential lifetime exceeds the max
                // value allowed as per assigned policy <policy id>". GUESS: status 400.
                return odata::error(
                    ctx,
                    400,
                    "CredentialInvalidLifetimeAsPerAppPolicy",
                    &format!(
                        "Credential lifetime exceeds the max value allowed as per assigned policy {}.",
                        "00000000-0000-0000-0000-000000000000"
                    ),
                );
            }
        }
        if self.dir.apps[i].passwords.len() >= 100 {
            return odata::bad_request(
                ctx,
                "The maximum number of password credentials has been reached.",
            );
        }
        let cred = PasswordCred {
            key_id: util::uuid(&mut self.rng),
            display_name: pc
                .get("displayName")
                .and_then(Value::as_str)
                .map(String::from),
            secret: util::secret_text(&mut self.rng),
            start_ms: start,
            end_ms: end,
            custom_key_identifier: None,
        };
        let mut v = cred.json(true);
        v["@odata.context"] = json!(format!(
            "{}/v1.0/$metadata#microsoft.graph.passwordCredential",
            ctx.base
        ));
        self.dir.apps[i].passwords.push(cred);
        odata::json_response(200, &v)
    }

    fn remove_password(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(
            ctx,
            "request:applications.application.removePassword",
            &body,
        ) {
            return r;
        }
        let Some(key_id) = str_of(&body, "keyId") else {
            return odata::bad_request(ctx, "A value is required for parameter 'keyId'.");
        };
        let before = self.dir.apps[i].passwords.len();
        self.dir.apps[i]
            .passwords
            .retain(|p| !p.key_id.eq_ignore_ascii_case(key_id));
        if before == self.dir.apps[i].passwords.len() {
            // GUESS: what Graph answers for an unknown keyId.
            return odata::bad_request(
                ctx,
                &format!("No password credential found with keyId '{key_id}'."),
            );
        }
        odata::no_content()
    }

    /// Verifies an addKey/removeKey `proof`: a JWT signed by a current key of the app, with
    /// `aud` = 00000002-0000-0000-c000-000000000000 and `iss` = the app's object id.
    fn check_proof(&self, ctx: &Ctx, proof: Option<&str>, app: &App) -> Result<(), HttpResponse> {
        // GUESS: status/code/wording of a refused proof.
        let bad = || {
            odata::error(ctx, 400, "Request_BadRequest", "Key credential proof is invalid. The proof must be a JWT signed by an existing valid key of the application.")
        };
        let p = proof.and_then(jwt::parse_jwt).ok_or_else(bad)?;
        let now_ms = ctx.now_ms as i64;
        let signed_by_valid_key = app
            .keys
            .iter()
            .filter(|k| k.start_ms <= now_ms && now_ms < k.end_ms)
            .any(|k| {
                jwt::parse_cert(&k.cert_der)
                    .is_ok_and(|info| jwt::verify_with(&info.public_key, &p))
            });
        if !signed_by_valid_key {
            return Err(bad());
        }
        let c = &p.claims;
        let now = (ctx.now_ms / 1000) as i64;
        let aud_ok =
            c.get("aud").and_then(Value::as_str) == Some("00000002-0000-0000-c000-000000000000");
        let iss_ok = c
            .get("iss")
            .and_then(Value::as_str)
            .is_some_and(|i| i.eq_ignore_ascii_case(&app.id));
        let exp = jwt::num_claim(c, "exp").unwrap_or(0);
        let nbf = jwt::num_claim(c, "nbf").unwrap_or(i64::MAX);
        if !aud_ok || !iss_ok || exp <= now - 300 || nbf > now + 300 || exp - nbf > 10 * 60 + 300 {
            return Err(bad());
        }
        Ok(())
    }

    fn add_key(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(ctx, "request:applications.application.addKey", &body) {
            return r;
        }
        let app = self.dir.apps[i].clone();
        if let Err(r) = self.check_proof(ctx, str_of(&body, "proof"), &app) {
            return r;
        }
        let Some(kc) = body.get("keyCredential").filter(|v| v.is_object()) else {
            return odata::bad_request(ctx, "A value is required for parameter 'keyCredential'.");
        };
        let key = match self.key_from_json(ctx, kc, &[]) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if app
            .keys
            .iter()
            .any(|k| k.key_id == key.key_id || k.sha1 == key.sha1)
        {
            return odata::bad_request(
                ctx,
                "Invalid value specified for property 'keyId' of resource 'KeyCredential'.",
            );
        }
        let mut v = key.json();
        v["@odata.context"] = json!(format!(
            "{}/v1.0/$metadata#microsoft.graph.keyCredential",
            ctx.base
        ));
        self.dir.apps[i].keys.push(key);
        odata::json_response(200, &v)
    }

    fn remove_key(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(ctx, "request:applications.application.removeKey", &body) {
            return r;
        }
        let app = self.dir.apps[i].clone();
        if let Err(r) = self.check_proof(ctx, str_of(&body, "proof"), &app) {
            return r;
        }
        let key_id = str_of(&body, "keyId").unwrap_or("");
        let before = app.keys.len();
        self.dir.apps[i]
            .keys
            .retain(|k| !k.key_id.eq_ignore_ascii_case(key_id));
        if before == self.dir.apps[i].keys.len() {
            return odata::bad_request(
                ctx,
                &format!("No key credential found with keyId '{key_id}'."),
            );
        }
        odata::no_content()
    }

    fn add_owner(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(ctx, "request:applications.CreateRefOwners", &body) {
            return r;
        }
        let Some(url) = str_of(&body, "@odata.id") else {
            return odata::bad_request(ctx, "A value is required for property '@odata.id'.");
        };
        let Some(id) = ref_id(url) else {
            return odata::bad_request(ctx, &format!("Invalid object identifier '{url}'."));
        };
        let visible_sp = self
            .find_sp(&Key::Id(id.clone()), ctx.now_ms, true)
            .is_some();
        let is_user = self
            .dir
            .users
            .iter()
            .any(|u| u.id.eq_ignore_ascii_case(&id));
        if !is_user && !visible_sp {
            return odata::not_found(ctx, &id);
        }
        if self.dir.apps[i]
            .owners
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&id))
        {
            return odata::bad_request(ctx, "One or more added object references already exist for the following modified properties: 'owners'.");
        }
        self.dir.apps[i].owners.push(id.to_lowercase());
        odata::no_content()
    }

    // ---------------------------------------------------------------- service principals

    fn service_principals(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        p: &Principal,
        key: Option<Key>,
        rest: &[&str],
        q: &Query,
    ) -> HttpResponse {
        let m = req.method;
        let now = ctx.now_ms;
        let (key, rest): (Option<Key>, &[&str]) = match (key, rest) {
            (None, [id, tail @ ..]) if !id.is_empty() => (Some(Key::Id(id.to_string())), tail),
            (k, r) => (k, r),
        };
        let Some(key) = key else {
            if let Err(r) = self.allow(
                ctx,
                p,
                if m == Method::Get {
                    Need::ReadApps
                } else {
                    Need::WriteApps
                },
            ) {
                return r;
            }
            return match m {
                Method::Get => {
                    let items: Vec<Value> = (0..self.dir.sps.len())
                        .filter(|&i| self.sp_visible_idx(i, now))
                        .map(|i| self.dir.sps[i].json())
                        .collect();
                    self.list(
                        ctx,
                        req,
                        "servicePrincipals",
                        "microsoft.graph.servicePrincipal",
                        items,
                        q,
                        "servicePrincipals",
                    )
                }
                Method::Post => self.create_sp(ctx, req, None),
                _ => odata::error(
                    ctx,
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request uri.",
                ),
            };
        };
        match rest {
            [] => {
                if let Err(r) = self.allow(
                    ctx,
                    p,
                    if m == Method::Get {
                        Need::ReadApps
                    } else {
                        Need::WriteApps
                    },
                ) {
                    return r;
                }
                match m {
                    Method::Get => match self.find_sp(&key, now, true) {
                        Some(i) => entity(ctx, "servicePrincipals", self.dir.sps[i].json(), q),
                        None => odata::not_found(ctx, &Self::key_text(&key)),
                    },
                    Method::Patch => {
                        let upsert = matches!(key, Key::AppId(_));
                        let cim = req.get_header("Prefer").is_some_and(|v| {
                            v.split(',')
                                .any(|x| x.trim().eq_ignore_ascii_case("create-if-missing"))
                        });
                        let idx = if upsert {
                            self.find_sp(&key, now, false)
                        } else {
                            self.find_sp(&key, now, true)
                        };
                        match idx {
                            Some(i) => self.update_sp(ctx, req, i),
                            None if upsert && cim => {
                                let Key::AppId(a) = &key else {
                                    return odata::not_found(ctx, "");
                                };
                                self.create_sp(ctx, req, Some(a.clone()))
                            }
                            None => odata::not_found(ctx, &Self::key_text(&key)),
                        }
                    }
                    Method::Delete => match self.find_sp(&key, now, true) {
                        Some(i) => {
                            let s = &self.dir.sps[i];
                            if s.app_id == GRAPH_APP_ID || s.app_id == super::SHAREPOINT_APP_ID {
                                return odata::forbidden(ctx);
                            }
                            let id = s.id.clone();
                            self.dir.delete_sp(&id);
                            odata::no_content()
                        }
                        None => odata::not_found(ctx, &Self::key_text(&key)),
                    },
                    _ => odata::error(
                        ctx,
                        405,
                        "BadRequest",
                        "Specified HTTP method is not allowed for the request uri.",
                    ),
                }
            }
            [nav] if seg_is(nav, "appRoleAssignedTo") || seg_is(nav, "appRoleAssignments") => {
                let assigned_to = seg_is(nav, "appRoleAssignedTo");
                let Some(i) = self.find_sp(&key, now, true) else {
                    if let Err(r) = self.allow(ctx, p, Need::ReadApps) {
                        return r;
                    }
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                let sp_id = self.dir.sps[i].id.clone();
                match m {
                    Method::Get => {
                        if let Err(r) = self.allow(ctx, p, Need::ReadApps) {
                            return r;
                        }
                        let items: Vec<Value> = self
                            .dir
                            .assignments
                            .iter()
                            .filter(|a| {
                                if assigned_to {
                                    a.resource_id == sp_id
                                } else {
                                    a.principal_id == sp_id
                                }
                            })
                            .map(Assignment::json)
                            .collect();
                        let ctxn = format!("servicePrincipals('{sp_id}')/{nav}");
                        self.list(
                            ctx,
                            req,
                            &format!("servicePrincipals/{sp_id}/{nav}"),
                            "microsoft.graph.appRoleAssignment",
                            items,
                            q,
                            &ctxn,
                        )
                    }
                    Method::Post => self.create_assignment(ctx, req, p, &sp_id, assigned_to),
                    _ => odata::error(
                        ctx,
                        405,
                        "BadRequest",
                        "Specified HTTP method is not allowed for the request uri.",
                    ),
                }
            }
            [nav, aid]
                if (seg_is(nav, "appRoleAssignedTo") || seg_is(nav, "appRoleAssignments"))
                    && m == Method::Delete =>
            {
                let Some(i) = self.find_sp(&key, now, true) else {
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                let sp_id = self.dir.sps[i].id.clone();
                let Some(ai) = self.dir.assignments.iter().position(|a| {
                    a.id == *aid && (a.resource_id == sp_id || a.principal_id == sp_id)
                }) else {
                    return odata::not_found(ctx, aid);
                };
                let graph = self
                    .dir
                    .sp(&self.dir.assignments[ai].resource_id)
                    .is_some_and(|s| s.app_id == GRAPH_APP_ID);
                if let Err(r) = self.allow(ctx, p, Need::WriteAssignment(graph)) {
                    return r;
                }
                self.dir.assignments.remove(ai);
                odata::no_content()
            }
            [nav] if seg_is(nav, "oauth2PermissionGrants") && m == Method::Get => {
                if let Err(r) = self.allow(ctx, p, Need::ReadGrants) {
                    return r;
                }
                let Some(i) = self.find_sp(&key, now, true) else {
                    return odata::not_found(ctx, &Self::key_text(&key));
                };
                let sp_id = self.dir.sps[i].id.clone();
                let items: Vec<Value> = self
                    .dir
                    .grants
                    .iter()
                    .filter(|g| g.client_id == sp_id)
                    .map(Grant::json)
                    .collect();
                self.list(
                    ctx,
                    req,
                    &format!("servicePrincipals/{sp_id}/oauth2PermissionGrants"),
                    "microsoft.graph.oAuth2PermissionGrant",
                    items,
                    q,
                    "oauth2PermissionGrants",
                )
            }
            _ => odata::error(
                ctx,
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.first().unwrap_or(&"")
                ),
            ),
        }
    }

    fn check_sp_body(
        &self,
        ctx: &Ctx,
        body: &Map<String, Value>,
        creating: bool,
    ) -> Result<(), HttpResponse> {
        for k in body.keys() {
            if SP_READONLY.contains(&k.as_str()) || (!creating && k == "appId") {
                return Err(odata::bad_request(
                    ctx,
                    &format!("Property '{k}' is read-only and cannot be set."),
                ));
            }
        }
        Ok(())
    }

    fn create_sp(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        app_id_key: Option<String>,
    ) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let def = if app_id_key.is_some() {
            "request:servicePrincipals.servicePrincipal.UpdateServicePrincipalByAppId"
        } else {
            "request:servicePrincipals.servicePrincipal.CreateServicePrincipal"
        };
        if let Err(r) = validate(ctx, def, &body) {
            return r;
        }
        if let Err(r) = self.check_sp_body(ctx, &body, true) {
            return r;
        }
        let app_id = match (&app_id_key, str_of(&body, "appId")) {
            (Some(k), Some(b)) if !k.eq_ignore_ascii_case(b) => {
                return odata::bad_request(
                    ctx,
                    "The value of 'appId' in the request body does not match the key in the URL.",
                );
            }
            (Some(k), _) => k.clone(),
            (None, Some(b)) => b.to_string(),
            (None, None) => {
                return odata::bad_request(
                    ctx,
                    "A value is required for property 'appId' of resource 'ServicePrincipal'.",
                )
            }
        };
        // The backing application: a visible local app or a known multi-tenant app.
        let backed = self.dir.apps.iter().any(|a| {
            a.app_id.eq_ignore_ascii_case(&app_id) && (!a.local || self.app_visible(a, ctx.now_ms))
        });
        if !backed {
            return odata::bad_request(ctx, &format!("The appId '{app_id}' of the service principal does not reference a valid application object."));
        }
        if self.dir.sp_by_app_id(&app_id).is_some() {
            // Observed (Azure/reliable-web-app-pattern-java#185): 409 with this code and text.
            return odata::error(
                ctx,
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                &format!("The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."),
            );
        }
        let canonical = self
            .dir
            .app_by_app_id(&app_id)
            .map(|a| a.app_id.clone())
            .unwrap_or(app_id);
        let id = self
            .dir
            .ensure_sp(&canonical, ctx.now_ms, &mut self.rng, Some(&body));
        let v = self.dir.sp(&id).map(|s| s.json()).unwrap_or(Value::Null);
        created(
            ctx,
            "servicePrincipals",
            &id,
            "Microsoft.DirectoryServices.ServicePrincipal",
            v,
        )
    }

    fn update_sp(&mut self, ctx: &Ctx, req: &HttpRequest, i: usize) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(
            ctx,
            "request:servicePrincipals.servicePrincipal.UpdateServicePrincipal",
            &body,
        ) {
            return r;
        }
        let mut body = body;
        if let Some(a) = str_of(&body, "appId") {
            if a.eq_ignore_ascii_case(&self.dir.sps[i].app_id) {
                body.remove("appId");
            }
        }
        if let Err(r) = self.check_sp_body(ctx, &body, false) {
            return r;
        }
        for (k, v) in body {
            if !k.starts_with('@') && !k.contains("@odata.") {
                self.dir.sps[i].props.insert(k, v);
            }
        }
        odata::no_content()
    }

    fn create_assignment(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        p: &Principal,
        url_sp: &str,
        assigned_to: bool,
    ) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let def = if assigned_to {
            "request:servicePrincipals.CreateAppRoleAssignedTo"
        } else {
            "request:servicePrincipals.CreateAppRoleAssignments"
        };
        if let Err(r) = validate(ctx, def, &body) {
            return r;
        }
        for k in [
            "id",
            "createdDateTime",
            "deletedDateTime",
            "principalDisplayName",
            "resourceDisplayName",
            "principalType",
        ] {
            if body.get(k).is_some_and(|v| !v.is_null()) && k != "principalType" {
                return odata::bad_request(
                    ctx,
                    &format!("Property '{k}' is read-only and cannot be set."),
                );
            }
        }
        let required = |k: &str| -> Result<String, HttpResponse> {
            str_of(&body, k).map(String::from).ok_or_else(|| {
                odata::bad_request(
                    ctx,
                    &format!(
                        "A value is required for property '{k}' of resource 'AppRoleAssignment'."
                    ),
                )
            })
        };
        let (principal_id, resource_id, role_id) = match (
            required("principalId"),
            required("resourceId"),
            required("appRoleId"),
        ) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
        };
        let url_field = if assigned_to {
            &resource_id
        } else {
            &principal_id
        };
        if !url_field.eq_ignore_ascii_case(url_sp) {
            // GUESS: a body that contradicts the URL.
            let prop = if assigned_to {
                "resourceId"
            } else {
                "principalId"
            };
            return odata::bad_request(ctx, &format!("Invalid value specified for property '{prop}' of resource 'AppRoleAssignment'."));
        }
        let now = ctx.now_ms;
        let Some(ri) = self.find_sp(&Key::Id(resource_id.clone()), now, true) else {
            return odata::not_found(ctx, &resource_id);
        };
        let resource = self.dir.sps[ri].clone();
        if let Err(r) = self.allow(
            ctx,
            p,
            Need::WriteAssignment(resource.app_id == GRAPH_APP_ID),
        ) {
            return r;
        }
        // The principal: a visible SP or a user.
        let (ptype, pname) = match self.find_sp(&Key::Id(principal_id.clone()), now, true) {
            Some(pi) => (
                "ServicePrincipal".to_string(),
                self.dir.sps[pi].display_name(),
            ),
            None => match self
                .dir
                .users
                .iter()
                .find(|u| u.id.eq_ignore_ascii_case(&principal_id))
            {
                Some(u) => ("User".to_string(), u.display_name.clone()),
                None if self.cfg.assignment_lag_400 => {
                    return odata::bad_request(ctx, "Not a valid reference update.")
                }
                None => return odata::not_found(ctx, &principal_id),
            },
        };
        let role_ok = role_id == "00000000-0000-0000-0000-000000000000" && ptype == "User"
            || resource.app_role_value(&role_id).is_some();
        if !role_ok {
            return odata::bad_request(
                ctx,
                &format!(
                    "Permission being assigned was not found on application '{}'.",
                    resource.app_id
                ),
            );
        }
        if self.dir.assignments.iter().any(|a| {
            a.principal_id.eq_ignore_ascii_case(&principal_id)
                && a.resource_id.eq_ignore_ascii_case(&resource.id)
                && a.app_role_id.eq_ignore_ascii_case(&role_id)
        }) {
            return odata::bad_request(
                ctx,
                "Permission being assigned already exists on the object.",
            );
        }
        let a = Assignment {
            id: util::random_b64url(&mut self.rng, 32),
            principal_id: principal_id.to_lowercase(),
            principal_type: ptype,
            principal_display_name: pname,
            resource_id: resource.id.clone(),
            resource_display_name: resource.display_name(),
            app_role_id: role_id.to_lowercase(),
            created_ms: now,
        };
        let v = a.json();
        let id = a.id.clone();
        self.dir.assignments.push(a);
        let nav = if assigned_to {
            "appRoleAssignedTo"
        } else {
            "appRoleAssignments"
        };
        let mut r = created(
            ctx,
            &format!("servicePrincipals('{url_sp}')/{nav}"),
            &id,
            "Microsoft.DirectoryServices.AppRoleAssignment",
            v,
        );
        set_header(
            &mut r,
            "Location",
            &format!("{}/v1.0/servicePrincipals/{url_sp}/{nav}/{id}", ctx.base),
        );
        r
    }

    // ---------------------------------------------------------------- delegated grants

    fn grants(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        p: &Principal,
        rest: &[&str],
        q: &Query,
    ) -> HttpResponse {
        let m = req.method;
        let read = m == Method::Get;
        if let Err(r) = self.allow(
            ctx,
            p,
            if read {
                Need::ReadGrants
            } else {
                Need::WriteGrants
            },
        ) {
            return r;
        }
        match (m, rest) {
            (Method::Get, []) => {
                let items: Vec<Value> = self.dir.grants.iter().map(Grant::json).collect();
                self.list(
                    ctx,
                    req,
                    "oauth2PermissionGrants",
                    "microsoft.graph.oAuth2PermissionGrant",
                    items,
                    q,
                    "oauth2PermissionGrants",
                )
            }
            (Method::Post, []) => self.create_grant(ctx, req),
            (Method::Get, [id]) => match self.dir.grants.iter().find(|g| g.id == *id) {
                Some(g) => entity(ctx, "oauth2PermissionGrants", g.json(), q),
                None => odata::not_found(ctx, id),
            },
            (Method::Patch, [id]) => {
                let Some(gi) = self.dir.grants.iter().position(|g| g.id == *id) else {
                    return odata::not_found(ctx, id);
                };
                let body = match parse_body(ctx, req) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                if let Err(r) = validate(ctx, "request:oauth2PermissionGrants.oAuth2PermissionGrant.UpdateOAuth2PermissionGrant", &body) {
                    return r;
                }
                let g = self.dir.grants[gi].clone();
                for (k, v) in &body {
                    let same = match k.as_str() {
                        "scope" => true,
                        "clientId" => v.as_str() == Some(g.client_id.as_str()),
                        "resourceId" => v.as_str() == Some(g.resource_id.as_str()),
                        "consentType" => v.as_str() == Some(g.consent_type.as_str()),
                        "principalId" => v.as_str() == g.principal_id.as_deref(),
                        "id" => v.as_str() == Some(g.id.as_str()),
                        _ => k.starts_with('@'),
                    };
                    if !same {
                        // Only `scope` can change (observed: "Property cannot be updated:
                        // principalId", MicrosoftDocs/azure-docs#105249).
                        return odata::bad_request(
                            ctx,
                            &format!("Property cannot be updated: {k}"),
                        );
                    }
                }
                if let Some(s) = body.get("scope") {
                    self.dir.grants[gi].scope = s.as_str().unwrap_or("").to_string();
                }
                odata::no_content()
            }
            (Method::Delete, [id]) => {
                let before = self.dir.grants.len();
                self.dir.grants.retain(|g| g.id != *id);
                if before == self.dir.grants.len() {
                    return odata::not_found(ctx, id);
                }
                odata::no_content()
            }
            _ => odata::error(
                ctx,
                405,
                "BadRequest",
                "Specified HTTP method is not allowed for the request uri.",
            ),
        }
    }

    fn create_grant(&mut self, ctx: &Ctx, req: &HttpRequest) -> HttpResponse {
        let body = match parse_body(ctx, req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = validate(
            ctx,
            "request:oauth2PermissionGrants.oAuth2PermissionGrant.CreateOAuth2PermissionGrant",
            &body,
        ) {
            return r;
        }
        if body.get("id").is_some_and(|v| !v.is_null()) {
            return odata::bad_request(ctx, "Property 'id' is read-only and cannot be set.");
        }
        let req_prop = |k: &str| -> Result<String, HttpResponse> {
            str_of(&body, k).map(String::from).ok_or_else(|| odata::bad_request(ctx, &format!("A value is required for property '{k}' of resource 'OAuth2PermissionGrant'.")))
        };
        let (client, consent, resource) = match (
            req_prop("clientId"),
            req_prop("consentType"),
            req_prop("resourceId"),
        ) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
        };
        let principal = str_of(&body, "principalId").map(String::from);
        match (consent.as_str(), &principal) {
            ("AllPrincipals", None) => {}
            ("Principal", Some(pid)) if self.dir.users.iter().any(|u| u.id.eq_ignore_ascii_case(pid)) => {}
            ("Principal", Some(pid)) => return odata::not_found(ctx, pid),
            _ => return odata::bad_request(ctx, "Invalid value specified for property 'consentType' of resource 'OAuth2PermissionGrant'."),
        }
        let now = ctx.now_ms;
        // GUESS: an invisible client or resource SP gives the directory's 404 for that id.
        if self.find_sp(&Key::Id(client.clone()), now, true).is_none() {
            return odata::not_found(ctx, &client);
        }
        if self
            .find_sp(&Key::Id(resource.clone()), now, true)
            .is_none()
        {
            return odata::not_found(ctx, &resource);
        }
        let dup = self.dir.grants.iter().any(|g| {
            g.client_id.eq_ignore_ascii_case(&client)
                && g.resource_id.eq_ignore_ascii_case(&resource)
                && g.consent_type == consent
                && g.principal_id.as_deref().map(str::to_lowercase)
                    == principal.as_deref().map(str::to_lowercase)
        });
        if dup {
            // Observed (hashicorp/terraform-provider-azuread#690): 409
            // Request_MultipleObjectsWithSameKeyValue "Permission entry already exists."
            return odata::error(
                ctx,
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "Permission entry already exists.",
            );
        }
        let g = Grant {
            id: util::random_b64url(&mut self.rng, 32),
            client_id: client.to_lowercase(),
            consent_type: consent,
            principal_id: principal.map(|p| p.to_lowercase()),
            resource_id: resource.to_lowercase(),
            scope: str_of(&body, "scope").unwrap_or("").to_string(),
        };
        let v = g.json();
        let id = g.id.clone();
        self.dir.grants.push(g);
        created(
            ctx,
            "oauth2PermissionGrants",
            &id,
            "Microsoft.DirectoryServices.OAuth2PermissionGrant",
            v,
        )
    }

    // ---------------------------------------------------------------- $batch

    fn batch(&mut self, ctx: &Ctx, req: &HttpRequest) -> HttpResponse {
        let bad = |m: &str| odata::error(ctx, 400, "BadRequest", m);
        let body: Value = match req.body.as_deref().map(serde_json::from_str) {
            Some(Ok(v)) => v,
            _ => return bad("Invalid batch payload format."),
        };
        let Some(requests) = body.get("requests").and_then(Value::as_array) else {
            return bad("Invalid batch payload format.");
        };
        if requests.is_empty() {
            return bad("Invalid batch payload format.");
        }
        if requests.len() > 20 {
            return bad("Number of batch request steps exceeds the maximum of 20.");
        }
        let mut ids: Vec<String> = vec![];
        for r in requests {
            let id = match r.get("id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return bad("Invalid batch payload format: every request needs an id."),
            };
            if ids.contains(&id) {
                // GUESS: wording for duplicate ids.
                return bad(&format!("Batch request id '{id}' is not unique."));
            }
            let method = r.get("method").and_then(Value::as_str).unwrap_or("");
            if !["GET", "POST", "PATCH", "DELETE", "PUT"]
                .contains(&method.to_ascii_uppercase().as_str())
            {
                return bad(&format!("Invalid method '{method}' for request id {id}."));
            }
            if r.get("url")
                .and_then(Value::as_str)
                .is_none_or(|u| u.is_empty())
            {
                return bad(&format!("Invalid url for request id {id}."));
            }
            let has_body = r.get("body").is_some_and(|b| !b.is_null());
            let has_ct = r
                .get("headers")
                .and_then(Value::as_object)
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
            if has_body && !has_ct {
                return bad(&format!(
                    "Write request id : {id} does not contain Content-Type header or body."
                ));
            }
            for d in r
                .get("dependsOn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let d = d
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| d.to_string());
                if !ids.contains(&d) {
                    return bad(&format!("Request id {id} depends on request id {d}, which is not an earlier request of the batch."));
                }
            }
            ids.push(id);
        }
        let mut responses: Vec<Value> = vec![];
        let mut statuses: Vec<(String, u16)> = vec![];
        for (r, id) in requests.iter().zip(ids.iter()) {
            let deps: Vec<String> = r
                .get("dependsOn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|d| {
                    d.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| d.to_string())
                })
                .collect();
            if deps
                .iter()
                .any(|d| statuses.iter().any(|(sid, st)| sid == d && *st >= 400))
            {
                // GUESS: the body of a sub-request skipped because a dependency failed.
                statuses.push((id.clone(), 424));
                responses.push(json!({"id": id, "status": 424, "body": odata::error_body(ctx, "BadRequest", "Failed dependency")}));
                continue;
            }
            let (status, v) = self.batch_one(ctx, req, r, id);
            statuses.push((id.clone(), status));
            responses.push(v);
        }
        let mut resp = odata::json_response(200, &json!({"responses": responses}));
        set_header(&mut resp, "OData-Version", "4.0");
        resp
    }

    fn batch_one(&mut self, ctx: &Ctx, outer: &HttpRequest, r: &Value, id: &str) -> (u16, Value) {
        let method = match r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase()
            .as_str()
        {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => {
                return (
                    405,
                    json!({"id": id, "status": 405, "body": odata::error_body(ctx, "BadRequest", "Specified HTTP method is not allowed for the request uri.")}),
                );
            }
        };
        let url = r.get("url").and_then(Value::as_str).unwrap_or("");
        let rel = if url.starts_with("http://") || url.starts_with("https://") {
            let (_, p, q) = util::split_url(url);
            if q.is_empty() {
                p
            } else {
                format!("{p}?{q}")
            }
        } else {
            url.to_string()
        };
        let rel = if rel.starts_with('/') {
            rel
        } else {
            format!("/{rel}")
        };
        let rel = match rel.strip_prefix("/v1.0") {
            Some(r) if r.starts_with('/') => r.to_string(),
            _ => rel,
        };
        let mut headers: Vec<(String, String)> = r
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            if let Some(a) = outer.get_header("Authorization") {
                headers.push(("Authorization".into(), a.to_string()));
            }
        }
        let body = match r.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        };
        let sub = HttpRequest {
            method,
            url: format!("{}/v1.0{rel}", ctx.base),
            headers,
            body,
        };
        let (_, raw_path, query) = util::split_url(&sub.url);
        let path = util::pct_decode(&raw_path);
        let sub_ctx = Ctx {
            now_ms: ctx.now_ms,
            base: ctx.base.clone(),
            request_id: util::uuid(&mut self.rng),
            client_request_id: ctx.client_request_id.clone(),
            tenant_id: ctx.tenant_id.clone(),
        };
        let mut fault = None;
        let resp = match self.fire_fault(method, &path, true) {
            Some(rule) => {
                fault = Some(format!("{:?}", rule.kind));
                self.batch_fault(&sub_ctx, &path, &rule)
            }
            _ => {
                let rest = path.strip_prefix("/v1.0").unwrap_or(&path).to_string();
                if rest.trim_matches('/').eq_ignore_ascii_case("$batch") {
                    odata::error(
                        &sub_ctx,
                        400,
                        "BadRequest",
                        "Nested batch requests are not supported.",
                    )
                } else {
                    self.graph_route(&sub_ctx, &sub, &rest, &query)
                }
            }
        };
        self.push_log_raw(
            &sub_ctx,
            method.as_str(),
            &path,
            &query,
            resp.status,
            fault,
            Some(ctx.request_id.clone()),
        );
        let mut h = Map::new();
        for (k, v) in &resp.headers {
            h.insert(k.clone(), json!(v));
        }
        let mut out = json!({"id": id, "status": resp.status, "headers": Value::Object(h)});
        if !resp.body.is_empty() {
            out["body"] =
                serde_json::from_str(&resp.body).unwrap_or(Value::String(resp.body.clone()));
        }
        (resp.status, out)
    }

    fn batch_fault(&mut self, ctx: &Ctx, path: &str, rule: &super::FaultRule) -> HttpResponse {
        let dummy = HttpRequest::new(Method::Get, format!("{}{path}", ctx.base));
        self.fault_response_pub(ctx, path, rule, &dummy)
    }
}
