//! Entra ID login endpoints of the emulator: `/{tenant}/oauth2/v2.0/authorize` (HTML sign-in
//! and consent pages that work without JavaScript), `/{tenant}/oauth2/v2.0/token` (auth code +
//! PKCE, client credentials with a secret or a certificate assertion), `/{tenant}/adminconsent`
//! and `/{tenant}/v2.0/adminconsent`, OpenID metadata and keys. Facts: entra-endpoints.md §1–5.

use super::directory::{KeyCred, Role};
use super::util::{self, get, html_escape};
use super::{jwt, odata, set_header, Ctx, Emulator, GRAPH_APP_ID};
use crate::engine::http::{encode_component, form_decode, HttpRequest, HttpResponse, Method};
use serde_json::{json, Value};

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
const GRAPH_PREFIXES: [&str; 3] = [
    "https://graph.microsoft.com/",
    "https://graph.microsoft.com//",
    "00000003-0000-0000-c000-000000000000/",
];
/// Codes live about 10 minutes (AUTHCODE).
const CODE_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// A pending authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub code: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub oidc: Vec<String>,
    pub nonce: Option<String>,
    pub challenge: Option<String>,
    pub method: String,
    pub created_ms: u64,
    pub redeemed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RedirectKind {
    Spa,
    Web,
    Public,
}

enum TenantMatch {
    Ours,
    Organizations,
    Common,
    Unknown,
}

/// How the requested scopes split up.
struct Scopes {
    oidc: Vec<String>,
    graph: Vec<String>,
    graph_default: bool,
}

/// `text` form-encoded the way Entra writes redirect parameters (`+` for spaces).
fn enc(s: &str) -> String {
    encode_component(s).replace("%20", "+")
}

pub(crate) fn oauth_error_response(
    ctx: &Ctx,
    status: u16,
    error: &str,
    code: u32,
    text: &str,
    trace: Option<&str>,
) -> HttpResponse {
    let trace = trace
        .map(String::from)
        .unwrap_or_else(|| ctx.request_id.clone());
    let corr = ctx
        .client_request_id
        .clone()
        .unwrap_or_else(|| ctx.request_id.clone());
    let body = json!({
        "error": error,
        "error_description": description(ctx, code, text, &trace, &corr),
        "error_codes": [code],
        "timestamp": util::aadsts_timestamp(ctx.now_ms),
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("{}/error?code={code}", ctx.base),
    });
    HttpResponse {
        status,
        headers: vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("Cache-Control".into(), "no-store, no-cache".into()),
            ("Pragma".into(), "no-cache".into()),
        ],
        body: body.to_string(),
    }
}

fn description(ctx: &Ctx, code: u32, text: &str, trace: &str, corr: &str) -> String {
    format!(
        "AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {}",
        util::aadsts_timestamp(ctx.now_ms)
    )
}

fn html(status: u16, title: &str, body: &str) -> HttpResponse {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>body{{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em}}\
a.choice{{display:block;border:1px solid #888;padding:.7em;margin:.5em 0;text-decoration:none;color:#000}}\
.err{{color:#a00;white-space:pre-wrap}} .btn{{display:inline-block;border:1px solid #555;padding:.5em 1.5em;margin:.5em .5em 0 0}}</style></head>\
<body><p><b>Microsoft</b> <small>(emulated Entra ID)</small></p>\n{body}\n</body></html>\n",
        t = html_escape(title)
    );
    HttpResponse {
        status,
        headers: vec![
            ("Content-Type".into(), "text/html; charset=utf-8".into()),
            ("Cache-Control".into(), "no-store".into()),
            ("X-Frame-Options".into(), "DENY".into()),
            ("Content-Security-Policy".into(), "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'".into()),
        ],
        body: page,
    }
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse {
        status: 302,
        headers: vec![
            ("Location".into(), location.to_string()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body: String::new(),
    }
}

/// Appends parameters to a redirect URI, in the query or the fragment.
fn with_params(uri: &str, params: &[(String, String)], fragment: bool) -> String {
    let p = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let base = uri.split('#').next().unwrap_or(uri);
    if fragment {
        format!("{base}#{p}")
    } else if base.contains('?') {
        format!("{base}&{p}")
    } else {
        format!("{base}?{p}")
    }
}

/// Whether `requested` matches a registered redirect URI: exact, or `http://localhost` /
/// `http://127.0.0.1` with any port (Entra ignores the port of localhost URIs).
fn uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let strip_port = |u: &str| -> Option<String> {
        for host in ["http://localhost", "http://127.0.0.1"] {
            if let Some(rest) = u.strip_prefix(host) {
                let rest = match rest.strip_prefix(':') {
                    Some(r) => {
                        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
                        &r[n..]
                    }
                    None => rest,
                };
                let rest = if rest.is_empty() { "/" } else { rest };
                return Some(format!("{host}{rest}"));
            }
        }
        None
    };
    match (strip_port(registered), strip_port(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

impl Emulator {
    fn tenant_match(&self, seg: &str) -> TenantMatch {
        let t = &self.dir.tenant;
        if seg.eq_ignore_ascii_case(&t.id) || seg.eq_ignore_ascii_case(&t.domain) {
            TenantMatch::Ours
        } else if seg.eq_ignore_ascii_case("organizations") {
            TenantMatch::Organizations
        } else if seg.eq_ignore_ascii_case("common") {
            TenantMatch::Common
        } else {
            TenantMatch::Unknown
        }
    }

    pub(crate) fn redirect_kind(&self, client_id: &str, uri: &str) -> Option<RedirectKind> {
        let app = self.dir.app_by_app_id(client_id)?;
        if app.spa_uris().iter().any(|r| uri_matches(r, uri)) {
            Some(RedirectKind::Spa)
        } else if app.web_uris().iter().any(|r| uri_matches(r, uri)) {
            Some(RedirectKind::Web)
        } else if app.public_uris().iter().any(|r| uri_matches(r, uri)) {
            Some(RedirectKind::Public)
        } else {
            None
        }
    }

    /// The emulator's own error page (errors Entra does not redirect: unknown app, bad
    /// redirect URI, unknown tenant).
    fn error_page(&mut self, ctx: &Ctx, code: u32, text: &str) -> HttpResponse {
        let corr = ctx
            .client_request_id
            .clone()
            .unwrap_or_else(|| ctx.request_id.clone());
        let body = format!(
            "<h1>Sorry, but we're having trouble signing you in.</h1>\n<p data-testid=\"emulator-error\" data-code=\"AADSTS{code}\" class=\"err\">AADSTS{code}: {}</p>\n\
<p><small>Request Id: {}<br>Correlation Id: {}<br>Timestamp: {}</small></p>",
            html_escape(text),
            html_escape(&ctx.request_id),
            html_escape(&corr),
            util::aadsts_timestamp(ctx.now_ms)
        );
        html(400, "Sign in to your account", &body)
    }

    fn app_not_found_text(&self, client_id: &str) -> String {
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            self.dir.tenant.display_name
        )
    }

    fn redirect_mismatch_text(client_id: &str, uri: &str) -> String {
        format!(
            "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
        )
    }

    pub(crate) fn login_entry(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        path: &str,
        query: &str,
    ) -> HttpResponse {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let q = util::query_pairs(query);
        match (req.method, segs.as_slice()) {
            (Method::Get, ["error"]) => {
                let code = get(&q, "code")
                    .unwrap_or("")
                    .chars()
                    .filter(|c| c.is_ascii_digit())
                    .take(9)
                    .collect::<String>();
                html(200, "Error lookup", &format!("<h1>AADSTS{code}</h1><p data-testid=\"emulator-error-lookup\">Error code AADSTS{code} (emulated Entra ID).</p>"))
            }
            (Method::Get, [tenant, "oauth2", "v2.0", "authorize"]) => {
                let t = tenant.to_string();
                self.authorize(ctx, &q, &t)
            }
            (Method::Post, [tenant, "oauth2", "v2.0", "token"]) => {
                let t = tenant.to_string();
                self.token(ctx, req, &t)
            }
            (_, [_, "oauth2", "v2.0", "token"]) => oauth_error_response(
                ctx,
                400,
                "invalid_request",
                900561,
                "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
                None,
            ),
            (Method::Get, [tenant, "adminconsent"]) => {
                let t = tenant.to_string();
                self.adminconsent(ctx, &q, &t, false)
            }
            (Method::Get, [tenant, "v2.0", "adminconsent"]) => {
                let t = tenant.to_string();
                self.adminconsent(ctx, &q, &t, true)
            }
            (Method::Get, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
                let t = tenant.to_string();
                self.openid_configuration(ctx, &t)
            }
            (Method::Get, [_, "discovery", "v2.0", "keys"])
            | (Method::Get, ["common", "discovery", "keys"]) => {
                let k = self.signing_key();
                let mut r = odata::json_response(200, &k.jwks());
                set_header(&mut r, "Content-Type", "application/json; charset=utf-8");
                set_header(&mut r, "Access-Control-Allow-Origin", "*");
                r
            }
            (Method::Get, [_, "oauth2", "v2.0", "logout"]) => {
                match get(&q, "post_logout_redirect_uri") {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => redirect(u),
                    _ => html(200, "Signed out", "<h1>You signed out of your account</h1>"),
                }
            }
            _ => HttpResponse {
                status: 404,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: "Not found (emulated Entra ID)\n".into(),
            },
        }
    }

    pub(crate) fn signing_key(&mut self) -> jwt::SigningKey {
        if let Some(k) = &self.signing {
            return k.clone();
        }
        let k = jwt::SigningKey::for_seed(self.cfg.seed, self.cfg.token_key_bits);
        self.signing = Some(k.clone());
        k
    }

    fn openid_configuration(&mut self, ctx: &Ctx, tenant: &str) -> HttpResponse {
        let tid = match self.tenant_match(tenant) {
            TenantMatch::Ours => self.dir.tenant.id.clone(),
            TenantMatch::Unknown => {
                return oauth_error_response(ctx, 400, "invalid_tenant", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."), None)
            }
            _ => "{tenantid}".to_string(),
        };
        let b = &ctx.base;
        let body = json!({
            "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{b}/{tid}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{b}/oidc/userinfo"),
            "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid", "ver", "oid", "email"],
            "kerberos_endpoint": format!("{b}/{tenant}/kerberos"),
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        });
        let mut r = odata::json_response(200, &body);
        set_header(&mut r, "Content-Type", "application/json; charset=utf-8");
        set_header(&mut r, "Access-Control-Allow-Origin", "*");
        r
    }

    /// Splits a scope string; `Err((error, code, text))` for scopes of unknown resources or
    /// unknown Graph scopes.
    fn classify_scopes(
        &self,
        scope: &str,
        client_name: &str,
    ) -> Result<Scopes, (&'static str, u32, String)> {
        let mut s = Scopes {
            oidc: vec![],
            graph: vec![],
            graph_default: false,
        };
        let graph_sp = self.dir.graph_sp();
        for raw in scope.split_whitespace().take(200) {
            if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(raw)) {
                s.oidc.push(raw.to_ascii_lowercase());
                continue;
            }
            let bare = GRAPH_PREFIXES
                .iter()
                .find_map(|p| util::strip_prefix_ci(raw, p));
            let name = match bare {
                Some(b) => b,
                None if raw.contains("://") || raw.contains('/') => {
                    let res = match raw.rfind('/') {
                        Some(i) => &raw[..i],
                        None => raw,
                    };
                    return Err((
                        "invalid_resource",
                        500011,
                        format!(
                            "The resource principal named {res} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                            self.dir.tenant.display_name
                        ),
                    ));
                }
                None => raw,
            };
            if name == ".default" {
                s.graph_default = true;
                continue;
            }
            match graph_sp {
                Some(sp) if sp.has_scope(name) => {
                    let canonical = sp
                        .scopes()
                        .into_iter()
                        .find_map(|r| r.get("value").and_then(Value::as_str).filter(|v| v.eq_ignore_ascii_case(name)).map(String::from))
                        .unwrap_or_else(|| name.to_string());
                    if !s.graph.contains(&canonical) {
                        s.graph.push(canonical);
                    }
                }
                _ => {
                    return Err((
                        "invalid_client",
                        650053,
                        format!("The application '{client_name}' asked for scope '{name}' that doesn't exist on the resource '{GRAPH_APP_ID}'. Contact the app vendor."),
                    ))
                }
            }
        }
        Ok(s)
    }

    /// The sign-in page: one link per user, carrying every original parameter.
    fn signin_page(&self, base_link: &str, client_name: &str, note: Option<&str>) -> HttpResponse {
        let mut items = String::new();
        for u in &self.dir.users {
            let role = match u.role {
                Role::GlobalAdministrator => "Global Administrator",
                Role::ApplicationAdministrator => "Application Administrator",
                Role::None => "no admin role",
            };
            items.push_str(&format!(
                "<a class=\"choice\" data-testid=\"emulator-user\" data-upn=\"{upn}\" href=\"{href}\">{name}<br><small>{upn} — {role}</small></a>\n",
                upn = html_escape(&u.upn),
                href = html_escape(&format!("{base_link}&emulator_user={}", encode_component(&u.upn))),
                name = html_escape(&u.display_name),
            ));
        }
        let note = note
            .map(|n| {
                format!(
                    "<p class=\"err\" data-testid=\"emulator-note\">{}</p>",
                    html_escape(n)
                )
            })
            .unwrap_or_default();
        html(
            200,
            "Sign in to your account",
            &format!(
                "<h1>Pick an account</h1>\n<p>to continue to <b data-testid=\"emulator-client\">{}</b> — tenant {}</p>\n{note}{items}",
                html_escape(client_name),
                html_escape(&self.dir.tenant.display_name)
            ),
        )
    }

    /// The consent prompt listing the permissions; accept/cancel are links.
    fn consent_page(
        &self,
        base_link: &str,
        upn: &str,
        client_name: &str,
        perms: &[(String, String)],
        org: bool,
    ) -> HttpResponse {
        let link = format!("{base_link}&emulator_user={}", encode_component(upn));
        let list: String = perms
            .iter()
            .map(|(kind, name)| {
                format!(
                    "<li data-testid=\"emulator-permission\">{} <small>({})</small></li>\n",
                    html_escape(name),
                    html_escape(kind)
                )
            })
            .collect();
        let org_line = if org {
            "<p>Consent on behalf of your organization: every user of the tenant.</p>"
        } else {
            ""
        };
        html(
            200,
            "Permissions requested",
            &format!(
                "<h1>Permissions requested</h1>\n<p><b>{}</b> (unverified) wants to:</p>\n<ul>\n{list}</ul>\n{org_line}\
<p>Signed in as {}</p>\n<a class=\"btn\" data-testid=\"emulator-accept\" href=\"{}\">Accept</a>\
<a class=\"btn\" data-testid=\"emulator-cancel\" href=\"{}\">Cancel</a>",
                html_escape(client_name),
                html_escape(upn),
                html_escape(&format!("{link}&emulator_consent=accept")),
                html_escape(&format!("{link}&emulator_consent=cancel")),
            ),
        )
    }

    fn base_link(ctx: &Ctx, path: &str, q: &[(String, String)]) -> String {
        let kept: Vec<String> = q
            .iter()
            .filter(|(k, _)| !k.starts_with("emulator_"))
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("{}{path}?{}", ctx.base, kept.join("&"))
    }

    fn authorize(&mut self, ctx: &Ctx, q: &[(String, String)], tenant: &str) -> HttpResponse {
        if let TenantMatch::Unknown = self.tenant_match(tenant) {
            return self.error_page(ctx, 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."));
        }
        let Some(client_id) = get(q, "client_id").map(String::from) else {
            return self.error_page(
                ctx,
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        };
        let Some(app) = self.dir.app_by_app_id(&client_id).cloned() else {
            let t = self.app_not_found_text(&client_id);
            return self.error_page(ctx, 700016, &t);
        };
        let Some(redirect_uri) = get(q, "redirect_uri").map(String::from) else {
            return self.error_page(
                ctx,
                900144,
                "The request body must contain the following parameter: 'redirect_uri'.",
            );
        };
        let Some(kind) = self.redirect_kind(&client_id, &redirect_uri) else {
            return self.error_page(
                ctx,
                50011,
                &Self::redirect_mismatch_text(&client_id, &redirect_uri),
            );
        };
        let state = get(q, "state").map(String::from);
        let mode = get(q, "response_mode").unwrap_or("query").to_string();
        let response_type = get(q, "response_type").unwrap_or("").to_string();
        let fragment = mode == "fragment";
        let err = |this: &Emulator, error: &str, code: u32, text: &str| -> HttpResponse {
            let mut p = vec![
                ("error".to_string(), error.to_string()),
                (
                    "error_description".to_string(),
                    description(
                        ctx,
                        code,
                        text,
                        &ctx.request_id,
                        ctx.client_request_id.as_deref().unwrap_or(&ctx.request_id),
                    ),
                ),
                (
                    "error_uri".to_string(),
                    format!("{}/error?code={code}", ctx.base),
                ),
            ];
            if let Some(s) = &state {
                p.push(("state".into(), s.clone()));
            }
            let _ = this;
            redirect(&with_params(&redirect_uri, &p, fragment))
        };
        if !matches!(mode.as_str(), "query" | "fragment" | "form_post") {
            return err(self, "invalid_request", 900144, &format!("The provided value for the input parameter 'response_mode' is not valid. Expected values are: query, fragment, form_post. Actual value: '{mode}'."));
        }
        let rt: Vec<&str> = response_type.split_whitespace().collect();
        if rt.is_empty() {
            return err(
                self,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            );
        }
        if !rt.contains(&"code") || rt.iter().any(|t| *t != "code" && *t != "id_token") {
            return err(
                self,
                "unsupported_response_type",
                700054,
                &format!("response_type '{response_type}' is not enabled for the application."),
            );
        }
        let Some(scope) = get(q, "scope")
            .filter(|s| !s.trim().is_empty())
            .map(String::from)
        else {
            return err(
                self,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        };
        let client_name = app.display_name();
        let scopes = match self.classify_scopes(&scope, &client_name) {
            Ok(s) => s,
            Err((e, c, t)) => return err(self, e, c, &t),
        };
        let challenge = get(q, "code_challenge").map(String::from);
        let method = get(q, "code_challenge_method")
            .unwrap_or(if challenge.is_some() { "plain" } else { "" })
            .to_string();
        if kind == RedirectKind::Spa {
            if challenge.is_none() {
                return err(self, "invalid_request", 9002325, "Proof Key for Code Exchange is required for cross-origin authorization code redemption.");
            }
            if method != "S256" {
                // GUESS: the emulator insists on S256 for SPAs (issue 3); Entra's code/text for
                // a plain challenge here is not documented.
                return err(self, "invalid_request", 9002325, "Proof Key for Code Exchange with code_challenge_method 'S256' is required for cross-origin authorization code redemption.");
            }
        }
        if let Some(c) = &challenge {
            if method != "S256" && method != "plain" {
                return err(
                    self,
                    "invalid_request",
                    501478,
                    &format!("Invalid code_challenge_method: '{method}'."),
                );
            }
            if c.len() < 43
                || c.len() > 128
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                return err(
                    self,
                    "invalid_request",
                    501481,
                    "The code_challenge is not valid.",
                );
            }
        }
        if rt.contains(&"id_token") && get(q, "nonce").is_none() {
            return err(
                self,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'nonce'.",
            );
        }

        let path = format!("/{tenant}/oauth2/v2.0/authorize");
        let base_link = Self::base_link(ctx, &path, q);
        let prompt = get(q, "prompt").unwrap_or("").to_string();
        let Some(upn) = get(q, "emulator_user").map(String::from) else {
            if prompt == "none" {
                return err(
                    self,
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                );
            }
            return self.signin_page(&base_link, &client_name, None);
        };
        let Some(user) = self.dir.user(&upn).cloned() else {
            return self.signin_page(
                &base_link,
                &client_name,
                Some(&format!("No account {upn} in this tenant.")),
            );
        };

        // Consent: the delegated Graph scopes asked for must be granted to the client's SP.
        let graph_sp = self.dir.graph_sp().cloned();
        let client_sp = self.dir.sp_by_app_id(&client_id).cloned();
        let consented = match (&client_sp, &graph_sp) {
            (Some(c), Some(g)) => self.dir.consented_scopes(&c.id, &g.id, &user.id),
            _ => vec![],
        };
        let mut wanted = scopes.graph.clone();
        if scopes.graph_default {
            // `.default` = the statically configured delegated permissions.
            for (res, id, ty) in app.required_access() {
                if res == GRAPH_APP_ID && ty == "Scope" {
                    if let Some(v) = graph_sp.as_ref().and_then(|g| g.scope_value(&id)) {
                        if !wanted.contains(&v) {
                            wanted.push(v);
                        }
                    }
                }
            }
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !consented.iter().any(|c| c.eq_ignore_ascii_case(w)))
            .cloned()
            .collect();
        let need_consent = client_sp.is_none()
            || !missing.is_empty()
            || (prompt == "consent" && user.role.is_admin());
        if need_consent {
            if !user.role.is_admin() {
                // GUESS (issue 3): a user who may not consent gets consent_required/AADSTS65001
                // back on the redirect (real Entra may show a "Need admin approval" page).
                return err(self, "consent_required", 65001, &format!(
                    "The user or administrator has not consented to use the application with ID '{client_id}' named '{client_name}'. Send an interactive authorization request for this user and resource."
                ));
            }
            if prompt == "none" {
                return err(self, "interaction_required", 65001, &format!(
                    "The user or administrator has not consented to use the application with ID '{client_id}' named '{client_name}'. Send an interactive authorization request for this user and resource."
                ));
            }
            match get(q, "emulator_consent") {
                Some("accept") => {
                    // A Global Administrator consents for the organization as in B-1 (every
                    // statically configured permission, app roles included); an Application
                    // Administrator grants the delegated scopes only.
                    if user.role == Role::GlobalAdministrator {
                        self.dir
                            .admin_consent(&client_id, ctx.now_ms, &mut self.rng);
                    }
                    let sp_id = self
                        .dir
                        .ensure_sp(&client_id, ctx.now_ms, &mut self.rng, None);
                    if let Some(g) = &graph_sp {
                        let mut all = missing.clone();
                        if all.is_empty() {
                            all = wanted.clone();
                        }
                        if !all.is_empty() {
                            self.dir.merge_grant(&sp_id, &g.id, &all, &mut self.rng);
                        }
                    }
                }
                Some("cancel") => {
                    return err(
                        self,
                        "access_denied",
                        65004,
                        "User declined to consent to access the app.",
                    );
                }
                _ => {
                    let mut perms: Vec<(String, String)> = missing
                        .iter()
                        .map(|m| ("Microsoft Graph, delegated".to_string(), m.clone()))
                        .collect();
                    if perms.is_empty() {
                        perms = wanted
                            .iter()
                            .map(|m| ("Microsoft Graph, delegated".to_string(), m.clone()))
                            .collect();
                    }
                    return self.consent_page(&base_link, &user.upn, &client_name, &perms, true);
                }
            }
        }

        let code = format!("1.A{}", util::random_b64url(&mut self.rng, 96));
        let granted = match (self.dir.sp_by_app_id(&client_id), &graph_sp) {
            (Some(c), Some(g)) => self.dir.consented_scopes(&c.id, &g.id, &user.id),
            _ => vec![],
        };
        let _ = granted;
        self.codes.retain(|c| {
            ctx.now_ms.saturating_sub(c.created_ms) < 2 * CODE_LIFETIME_MS && !c.redeemed
        });
        if self.codes.len() > 10_000 {
            self.codes.remove(0);
        }
        self.codes.push(AuthCode {
            code: code.clone(),
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            user_id: user.id.clone(),
            oidc: scopes.oidc.clone(),
            nonce: get(q, "nonce").map(String::from),
            challenge,
            method,
            created_ms: ctx.now_ms,
            redeemed: false,
        });
        let mut p = vec![("code".to_string(), code)];
        if let Some(s) = &state {
            p.push(("state".into(), s.clone()));
        }
        p.push(("session_state".into(), util::uuid(&mut self.rng)));
        if mode == "form_post" {
            let inputs: String = p
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                        html_escape(k),
                        html_escape(v)
                    )
                })
                .collect();
            return html(
                200,
                "Working...",
                &format!(
                    "<form method=\"POST\" action=\"{}\">{inputs}<button data-testid=\"emulator-form-post\" type=\"submit\">Continue</button></form>",
                    html_escape(&redirect_uri)
                ),
            );
        }
        redirect(&with_params(&redirect_uri, &p, fragment))
    }

    fn adminconsent(
        &mut self,
        ctx: &Ctx,
        q: &[(String, String)],
        tenant: &str,
        v2: bool,
    ) -> HttpResponse {
        match self.tenant_match(tenant) {
            TenantMatch::Unknown => {
                return self.error_page(ctx, 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
            }
            TenantMatch::Common => {
                // GUESS: the doc says `common` is not accepted for admin consent.
                return self.error_page(ctx, 50194, "Admin consent needs a tenant: use the tenant id, a verified domain or 'organizations', not 'common'.");
            }
            _ => {}
        }
        let Some(client_id) = get(q, "client_id").map(String::from) else {
            return self.error_page(
                ctx,
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        };
        let Some(app) = self.dir.app_by_app_id(&client_id).cloned() else {
            let t = self.app_not_found_text(&client_id);
            return self.error_page(ctx, 700016, &t);
        };
        let Some(redirect_uri) = get(q, "redirect_uri").map(String::from) else {
            return self.error_page(
                ctx,
                900144,
                "The request body must contain the following parameter: 'redirect_uri'.",
            );
        };
        if self.redirect_kind(&client_id, &redirect_uri).is_none() {
            return self.error_page(
                ctx,
                50011,
                &Self::redirect_mismatch_text(&client_id, &redirect_uri),
            );
        }
        let state = get(q, "state").map(String::from);
        let scope_param = get(q, "scope").map(String::from);
        let err = |error: &str, code: u32, text: &str| -> HttpResponse {
            let mut p = vec![
                ("error".to_string(), error.to_string()),
                (
                    "error_description".to_string(),
                    description(
                        ctx,
                        code,
                        text,
                        &ctx.request_id,
                        ctx.client_request_id.as_deref().unwrap_or(&ctx.request_id),
                    ),
                ),
                (
                    "error_uri".to_string(),
                    format!("{}/error?code={code}", ctx.base),
                ),
                ("admin_consent".to_string(), "True".to_string()),
            ];
            if let Some(s) = &state {
                p.push(("state".into(), s.clone()));
            }
            redirect(&with_params(&redirect_uri, &p, false))
        };
        let client_name = app.display_name();
        // Which permissions: `.default` (or v1) = everything in requiredResourceAccess;
        // explicit scopes (v2) = those delegated Graph scopes only.
        let mut explicit: Option<Vec<String>> = None;
        if v2 {
            let Some(scope) = scope_param.clone().filter(|s| !s.trim().is_empty()) else {
                return err(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                );
            };
            match self.classify_scopes(&scope, &client_name) {
                Ok(s) if s.graph_default => {}
                Ok(s) if !s.graph.is_empty() => explicit = Some(s.graph),
                Ok(_) => return err("invalid_scope", 70011, &format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.")),
                Err((e, c, t)) => return err(e, c, &t),
            }
        }
        let path = if v2 {
            format!("/{tenant}/v2.0/adminconsent")
        } else {
            format!("/{tenant}/adminconsent")
        };
        let base_link = Self::base_link(ctx, &path, q);
        let Some(upn) = get(q, "emulator_user").map(String::from) else {
            return self.signin_page(&base_link, &client_name, None);
        };
        let Some(user) = self.dir.user(&upn).cloned() else {
            return self.signin_page(
                &base_link,
                &client_name,
                Some(&format!("No account {upn} in this tenant.")),
            );
        };
        let graph_sp = self.dir.graph_sp().cloned();
        let mut perms: Vec<(String, String)> = vec![];
        let mut wants_graph_roles = false;
        match &explicit {
            Some(list) => perms.extend(
                list.iter()
                    .map(|s| ("Microsoft Graph, delegated".to_string(), s.clone())),
            ),
            None => {
                for (res, id, ty) in app.required_access() {
                    let Some(rsp) = self.dir.sp_by_app_id(&res) else {
                        continue;
                    };
                    let rname = rsp.display_name();
                    if ty == "Role" {
                        if let Some(v) = rsp.app_role_value(&id) {
                            perms.push((format!("{rname}, application"), v));
                            wants_graph_roles |= res == GRAPH_APP_ID;
                        }
                    } else if let Some(v) = rsp.scope_value(&id) {
                        perms.push((format!("{rname}, delegated"), v));
                    }
                }
            }
        }
        match user.role {
            Role::None => {
                // GUESS: Entra's text for a non-admin at the admin-consent endpoint.
                return err(
                    "access_denied",
                    90094,
                    "The grant requires admin permission.",
                );
            }
            Role::ApplicationAdministrator if wants_graph_roles => {
                // GUESS: Application Administrators cannot grant Microsoft Graph app roles.
                return err("access_denied", 90094, "The grant requires admin permission. Granting Microsoft Graph application permissions requires the Global Administrator or Privileged Role Administrator role.");
            }
            _ => {}
        }
        match get(q, "emulator_consent") {
            Some("accept") => {}
            Some("cancel") => {
                return err(
                    "access_denied",
                    65004,
                    "User declined to consent to access the app.",
                )
            }
            _ => return self.consent_page(&base_link, &user.upn, &client_name, &perms, true),
        }
        match explicit {
            None => self
                .dir
                .admin_consent(&client_id, ctx.now_ms, &mut self.rng),
            Some(list) => {
                let sp_id = self
                    .dir
                    .ensure_sp(&client_id, ctx.now_ms, &mut self.rng, None);
                if let Some(g) = graph_sp {
                    self.dir.merge_grant(&sp_id, &g.id, &list, &mut self.rng);
                }
            }
        }
        let mut p = vec![
            ("admin_consent".to_string(), "True".to_string()),
            ("tenant".to_string(), self.dir.tenant.id.clone()),
        ];
        if v2 {
            p.push(("scope".into(), scope_param.unwrap_or_default()));
        }
        if let Some(s) = &state {
            p.push(("state".into(), s.clone()));
        }
        redirect(&with_params(&redirect_uri, &p, false))
    }

    fn token(&mut self, ctx: &Ctx, req: &HttpRequest, tenant: &str) -> HttpResponse {
        let origin = req.get_header("Origin").map(String::from);
        if let TenantMatch::Unknown = self.tenant_match(tenant) {
            return oauth_error_response(ctx, 400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."), None);
        }
        let body = req.body.as_deref().unwrap_or("");
        if body.len() > 256 * 1024 {
            return oauth_error_response(
                ctx,
                400,
                "invalid_request",
                90014,
                "The request body is too large.",
                None,
            );
        }
        let f = form_decode(body);
        let Some(grant) = get(&f, "grant_type").map(String::from) else {
            return oauth_error_response(
                ctx,
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
                None,
            );
        };
        let (mut resp, cors) = match grant.as_str() {
            "authorization_code" => self.token_code(ctx, &f, origin.as_deref()),
            "client_credentials" => (
                self.token_client_credentials(ctx, req, &f, tenant, origin.as_deref()),
                false,
            ),
            other => (
                oauth_error_response(
                    ctx,
                    400,
                    "unsupported_grant_type",
                    70003,
                    &format!("The app requested an unsupported grant type '{other}'."),
                    None,
                ),
                true,
            ),
        };
        if let (Some(o), true) = (origin, cors) {
            set_header(&mut resp, "Access-Control-Allow-Origin", &o);
            set_header(
                &mut resp,
                "Access-Control-Expose-Headers",
                "x-ms-request-id, client-request-id",
            );
        }
        resp
    }

    /// Returns the response and whether a browser may read it (CORS).
    fn token_code(
        &mut self,
        ctx: &Ctx,
        f: &[(String, String)],
        origin: Option<&str>,
    ) -> (HttpResponse, bool) {
        let e = |status: u16, error: &str, code: u32, text: &str| {
            oauth_error_response(ctx, status, error, code, text, None)
        };
        let Some(client_id) = get(f, "client_id").map(String::from) else {
            return (
                e(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                ),
                origin.is_some(),
            );
        };
        let Some(app) = self.dir.app_by_app_id(&client_id).cloned() else {
            let t = self.app_not_found_text(&client_id);
            return (e(400, "unauthorized_client", 700016, &t), origin.is_some());
        };
        let Some(redirect_uri) = get(f, "redirect_uri").map(String::from) else {
            return (
                e(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'redirect_uri'.",
                ),
                origin.is_some(),
            );
        };
        let kind = self.redirect_kind(&client_id, &redirect_uri);
        match (kind, origin) {
            (Some(RedirectKind::Spa), None) => {
                return (e(400, "invalid_request", 9002327, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests."), false);
            }
            (Some(RedirectKind::Spa), Some(_)) => {}
            (_, Some(o)) => {
                // Not readable by the browser: it reports a missing Access-Control-Allow-Origin.
                return (e(400, "invalid_request", 9002326, &format!("Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '{o}'.")), false);
            }
            (None, None) => {
                return (
                    e(
                        400,
                        "invalid_grant",
                        50011,
                        &Self::redirect_mismatch_text(&client_id, &redirect_uri),
                    ),
                    false,
                );
            }
            _ => {}
        }
        let cors = origin.is_some();
        let Some(code) = get(f, "code").map(String::from) else {
            return (
                e(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'code'.",
                ),
                cors,
            );
        };
        let Some(idx) = self.codes.iter().position(|c| c.code == code) else {
            return (
                e(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                ),
                cors,
            );
        };
        let ac = self.codes[idx].clone();
        if ac.redeemed {
            return (e(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."), cors);
        }
        if ctx.now_ms.saturating_sub(ac.created_ms) > CODE_LIFETIME_MS {
            return (e(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."), cors);
        }
        if !ac.client_id.eq_ignore_ascii_case(&client_id) {
            return (e(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code was issued to a different client."), cors);
        }
        if ac.redirect_uri != redirect_uri {
            return (e(400, "invalid_grant", 500112, &format!("The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.", ac.redirect_uri)), cors);
        }
        if let Some(ch) = &ac.challenge {
            let Some(verifier) = get(f, "code_verifier") else {
                return (
                    e(
                        400,
                        "invalid_request",
                        900144,
                        "The request body must contain the following parameter: 'code_verifier'.",
                    ),
                    cors,
                );
            };
            let ok = match ac.method.as_str() {
                "S256" => {
                    use sha2::Digest;
                    util::b64url(&sha2::Sha256::digest(verifier.as_bytes())) == *ch
                }
                _ => verifier == ch,
            };
            if !ok {
                return (e(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."), cors);
            }
        }
        let Some(user) = self.dir.users.iter().find(|u| u.id == ac.user_id).cloned() else {
            return (
                e(
                    400,
                    "invalid_grant",
                    50034,
                    "The user account does not exist in the directory.",
                ),
                cors,
            );
        };
        self.codes[idx].redeemed = true;
        // scp: every consented delegated Graph scope of this client (Entra returns all of them).
        let scp = match (self.dir.sp_by_app_id(&client_id), self.dir.graph_sp()) {
            (Some(c), Some(g)) => self.dir.consented_scopes(&c.id, &g.id, &user.id),
            _ => vec![],
        };
        let now = ctx.now_ms / 1000;
        let exp = now + self.cfg.token_lifetime_s;
        let k = self.signing_key();
        let uti = util::random_b64url(&mut self.rng, 16);
        let mut at = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", self.dir.tenant.id),
            "iat": now, "nbf": now, "exp": exp,
            "acct": 0, "acr": "1", "amr": ["pwd"],
            "app_displayname": app.display_name(),
            "appid": client_id, "appidacr": "0",
            "idtyp": "user",
            "name": user.display_name,
            "oid": user.id,
            "scp": scp.join(" "),
            "sub": util::b64url(&{ use sha2::Digest; sha2::Sha256::digest(format!("{}{}", user.id, client_id).as_bytes()) }),
            "tid": self.dir.tenant.id,
            "unique_name": user.upn, "upn": user.upn,
            "uti": uti, "ver": "1.0",
        });
        if let Some(w) = user.role.template_id() {
            at["wids"] = json!([w, "b79fbf4d-3ef9-4689-8143-76b194e85509"]);
        }
        let access_token = k.sign(&at);
        let mut scope_out: Vec<String> = scp.clone();
        for o in &ac.oidc {
            if o != "offline_access" {
                scope_out.push(o.clone());
            }
        }
        let mut body = json!({
            "token_type": "Bearer",
            "scope": scope_out.join(" "),
            "expires_in": self.cfg.token_lifetime_s,
            "ext_expires_in": self.cfg.token_lifetime_s,
            "access_token": access_token,
        });
        if ac.oidc.iter().any(|o| o == "openid") {
            let mut idt = json!({
                "aud": client_id,
                "iss": format!("{}/{}/v2.0", ctx.base, self.dir.tenant.id),
                "iat": now, "nbf": now, "exp": now + 3600,
                "name": user.display_name,
                "oid": user.id,
                "preferred_username": user.upn,
                "sub": util::b64url(&{ use sha2::Digest; sha2::Sha256::digest(format!("{}/{}", user.id, client_id).as_bytes()) }),
                "tid": self.dir.tenant.id,
                "ver": "2.0",
                "uti": util::random_b64url(&mut self.rng, 16),
            });
            if let Some(n) = &ac.nonce {
                idt["nonce"] = json!(n);
            }
            if ac.oidc.iter().any(|o| o == "email") {
                idt["email"] = json!(user.upn);
            }
            body["id_token"] = json!(k.sign(&idt));
        }
        let mut r = odata::json_response(200, &body);
        set_header(&mut r, "Content-Type", "application/json; charset=utf-8");
        set_header(&mut r, "Cache-Control", "no-store, no-cache");
        (r, cors)
    }

    fn token_client_credentials(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        f: &[(String, String)],
        tenant: &str,
        origin: Option<&str>,
    ) -> HttpResponse {
        let e = |status: u16, error: &str, code: u32, text: &str| {
            oauth_error_response(ctx, status, error, code, text, None)
        };
        if let Some(o) = origin {
            // GUESS: confidential-client grants from a browser get the cross-origin refusal.
            return e(400, "invalid_request", 9002326, &format!("Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '{o}'."));
        }
        // client_secret_basic
        let mut basic: Option<(String, String)> = None;
        if let Some(a) = req.get_header("Authorization") {
            if let Some(b) = a.strip_prefix("Basic ") {
                if let Some(dec) =
                    util::b64_any_decode(b.trim()).and_then(|d| String::from_utf8(d).ok())
                {
                    if let Some((u, p)) = dec.split_once(':') {
                        basic = Some((
                            crate::engine::http::decode_component(u),
                            crate::engine::http::decode_component(p),
                        ));
                    }
                }
            }
        }
        let client_id = get(f, "client_id")
            .map(String::from)
            .or_else(|| basic.as_ref().map(|b| b.0.clone()));
        let Some(client_id) = client_id else {
            return e(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        };
        let Some(scope) = get(f, "scope").map(String::from) else {
            return e(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        };
        let scope_ok = scope.split_whitespace().count() == 1
            && GRAPH_PREFIXES
                .iter()
                .any(|p| util::strip_prefix_ci(&scope, p) == Some(".default"));
        if !scope_ok {
            if scope.ends_with("/.default") {
                let res = scope.trim_end_matches("/.default");
                return e(400, "invalid_resource", 500011, &format!("The resource principal named {res} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", self.dir.tenant.display_name));
            }
            return e(400, "invalid_scope", 1002012, &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
        }
        let now_i = ctx.now_ms as i64;
        let visible_app = self
            .dir
            .apps
            .iter()
            .find(|a| {
                a.app_id.eq_ignore_ascii_case(&client_id)
                    && (!a.local || a.created_ms + self.cfg.lag.app_ms <= ctx.now_ms)
            })
            .cloned();
        let Some(app) = visible_app else {
            let t = self.app_not_found_text(&client_id);
            return e(400, "unauthorized_client", 700016, &t);
        };
        // Authenticate the client.
        let secret = get(f, "client_secret")
            .map(String::from)
            .or_else(|| basic.as_ref().map(|b| b.1.clone()));
        let assertion = get(f, "client_assertion").map(String::from);
        let appidacr;
        if let Some(secret) = secret {
            appidacr = "1";
            let matching: Vec<_> = app
                .passwords
                .iter()
                .filter(|p| p.secret == secret)
                .collect();
            if matching.is_empty() {
                return e(401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."));
            }
            if !matching
                .iter()
                .any(|p| p.start_ms <= now_i + 5 * 60_000 && now_i < p.end_ms)
            {
                return e(401, "invalid_client", 7000222, &format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."));
            }
        } else if let Some(assertion) = assertion {
            appidacr = "2";
            if get(f, "client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return e(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
            }
            if let Err(resp) = self.check_assertion(ctx, &assertion, &client_id, tenant, &app.keys)
            {
                return resp;
            }
        } else {
            return e(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
        }
        let Some(sp) = self
            .dir
            .sp_by_app_id(&client_id)
            .filter(|s| s.created_ms + self.cfg.lag.sp_ms <= ctx.now_ms || app.local.eq(&false))
            .cloned()
        else {
            // GUESS: error value for an app without a service principal in the tenant.
            return e(400, "invalid_client", 7000229, &format!("The client application {client_id} is missing service principal in the tenant {}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119", self.dir.tenant.id));
        };
        let roles: Vec<String> = match self.dir.graph_sp() {
            Some(g) => self
                .dir
                .assignments
                .iter()
                .filter(|a| a.principal_id == sp.id && a.resource_id == g.id)
                .filter_map(|a| g.app_role_value(&a.app_role_id))
                .collect(),
            None => vec![],
        };
        let now = ctx.now_ms / 1000;
        let mut at = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", self.dir.tenant.id),
            "iat": now, "nbf": now, "exp": now + self.cfg.token_lifetime_s,
            "app_displayname": app.display_name(),
            "appid": client_id, "appidacr": appidacr,
            "idtyp": "app",
            "oid": sp.id, "sub": sp.id,
            "tid": self.dir.tenant.id,
            "uti": util::random_b64url(&mut self.rng, 16),
            "ver": "1.0",
        });
        if !roles.is_empty() {
            at["roles"] = json!(roles);
        }
        let k = self.signing_key();
        let body = json!({
            "token_type": "Bearer",
            "expires_in": self.cfg.token_lifetime_s,
            "ext_expires_in": self.cfg.token_lifetime_s,
            "access_token": k.sign(&at),
        });
        let mut r = odata::json_response(200, &body);
        set_header(&mut r, "Content-Type", "application/json; charset=utf-8");
        set_header(&mut r, "Cache-Control", "no-store, no-cache");
        r
    }

    /// Verifies a client assertion (RFC 7523) against the app's keyCredentials.
    fn check_assertion(
        &self,
        ctx: &Ctx,
        assertion: &str,
        client_id: &str,
        tenant: &str,
        keys: &[KeyCred],
    ) -> Result<(), HttpResponse> {
        let e = |status: u16, error: &str, code: u32, text: &str| {
            oauth_error_response(ctx, status, error, code, text, None)
        };
        let Some(p) = jwt::parse_jwt(assertion) else {
            return Err(e(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            ));
        };
        let x5t = p
            .header
            .get("x5t")
            .and_then(Value::as_str)
            .and_then(util::b64url_decode);
        let x5t256 = p
            .header
            .get("x5t#S256")
            .and_then(Value::as_str)
            .and_then(util::b64url_decode);
        let key = keys.iter().find(|k| {
            x5t.as_deref().is_some_and(|t| t == k.sha1.as_slice())
                || x5t256.as_deref().is_some_and(|t| t == k.sha256.as_slice())
        });
        let thumb = x5t
            .as_deref()
            .map(|t| t.iter().map(|b| format!("{b:02X}")).collect::<String>())
            .unwrap_or_default();
        let Some(key) = key else {
            return Err(e(401, "invalid_client", 700027, &format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']")));
        };
        let now_i = ctx.now_ms as i64;
        if now_i >= key.end_ms || now_i < key.start_ms {
            return Err(e(401, "invalid_client", 700027, &format!("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumb}', Found key 'Start=…, End={}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]", util::iso_z(key.end_ms.max(0) as u64))));
        }
        let Ok(info) = jwt::parse_cert(&key.cert_der) else {
            return Err(e(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ));
        };
        if !jwt::verify_with(&info.public_key, &p) {
            return Err(e(401, "invalid_client", 700027, &format!("Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumb}']")));
        }
        let c = &p.claims;
        let sub = c.get("sub").and_then(Value::as_str).unwrap_or("");
        let iss = c.get("iss").and_then(Value::as_str).unwrap_or("");
        if !sub.eq_ignore_ascii_case(client_id) || !iss.eq_ignore_ascii_case(client_id) {
            return Err(e(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials ."));
        }
        let aud = c.get("aud").and_then(Value::as_str).unwrap_or("");
        let tid = &self.dir.tenant.id;
        let aud_ok = [tenant, tid.as_str(), self.dir.tenant.domain.as_str()]
            .iter()
            .any(|t| {
                aud.eq_ignore_ascii_case(&format!("{}/{t}/oauth2/v2.0/token", ctx.base))
                    || aud.eq_ignore_ascii_case(&format!("{}/{t}/v2.0", ctx.base))
            });
        if !aud_ok {
            return Err(e(401, "invalid_client", 700212, &format!("No matching federated identity record found for presented assertion audience '{aud}'.")));
        }
        let now = (ctx.now_ms / 1000) as i64;
        let exp = jwt::num_claim(c, "exp").unwrap_or(0);
        let nbf = jwt::num_claim(c, "nbf").unwrap_or(0);
        if exp <= now - 300 || nbf > now + 300 {
            return Err(e(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_port_ignored() {
        assert!(uri_matches(
            "http://localhost/cb",
            "http://localhost:5173/cb"
        ));
        assert!(uri_matches("http://127.0.0.1:1/", "http://127.0.0.1:8401"));
        assert!(!uri_matches(
            "http://localhost/cb",
            "http://localhost:5173/other"
        ));
        assert!(!uri_matches("https://a/x", "https://a/x/"));
    }

    #[test]
    fn params_encoding() {
        let u = with_params(
            "https://x/cb",
            &[("error_description".into(), "AADSTS1: a b\r\nc".into())],
            false,
        );
        assert_eq!(u, "https://x/cb?error_description=AADSTS1%3A+a+b%0D%0Ac");
    }
}
