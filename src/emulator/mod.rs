//! The emulated tenant: a stateful Entra ID (login) + Microsoft Graph v1.0 emulator.
//!
//! [`Emulator`] is pure state (the directory, its config, fault rules, a request log, a seeded
//! RNG): [`Emulator::handle`] takes one [`HttpRequest`] (absolute URL) and the current time in
//! Unix milliseconds and returns an [`Outcome`]. No I/O, no clock. [`server`] is the thin HTTP
//! layer (hyper, optional TLS, CORS preflight, latency, dropped connections) used by the
//! `emulator` binary and by tests through [`server::start_on_random_port`].
//!
//! Facts about the real endpoints: `shared/reference/entra-endpoints.md`; every guess about
//! Microsoft's behaviour is marked `GUESS:` beside the code that makes it.
//! Native only (feature `emulator`); the engine must never import this module.

pub mod directory;
mod graph;
pub mod jwt;
mod login;
mod odata;
pub mod schema;
pub mod server;
pub mod util;

pub use directory::{Role, TenantInfo, UserSeed};
pub use server::{serve, start_on_random_port, Running, TlsConfig};

use crate::engine::http::{HttpRequest, HttpResponse, Method};
use directory::Directory;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Microsoft Graph's application id.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 SharePoint Online's application id.
pub const SHAREPOINT_APP_ID: &str = "00000003-0000-0ff1-ce00-000000000000";
/// Bacula's multi-tenant registrator app (client id).
pub const REGISTRATOR_APP_ID: &str = "8ed4fad3-3f63-44fb-b7e0-e324895d7df9";
/// Bacula's fixed consent landing page (a `web` redirect URI of the registrator).
pub const BACULA_REDIRECT: &str = "https://www.baculasystems.com/m365-plugin-auth/standalone";

/// What the emulator answers: a response, or a connection closed without one.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Respond(HttpResponse),
    /// The connection is closed without an answer (a fault rule of kind `drop`/`drop_after`).
    Drop,
}

impl Outcome {
    /// The response, if any.
    pub fn response(&self) -> Option<&HttpResponse> {
        match self {
            Outcome::Respond(r) => Some(r),
            Outcome::Drop => None,
        }
    }
}

/// Replication lag per object kind, in milliseconds: a new object is invisible to reads,
/// `$filter` lists and dependent writes (even by its own id) for that long after creation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lag {
    pub app_ms: u64,
    pub sp_ms: u64,
}

/// Which requests a fault rule applies to (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultMatch {
    /// `GET`, `POST`, `PATCH`, `DELETE` (case-insensitive).
    pub method: Option<String>,
    /// A substring of the decoded path (query excluded), e.g. `/applications` or `$batch`.
    pub path_contains: Option<String>,
}

/// What a firing fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 Too Many Requests with `Retry-After` (Graph's throttling body).
    #[serde(rename = "429")]
    Throttle,
    /// 500 (Graph `generalException`).
    #[serde(rename = "500")]
    ServerError,
    /// 503 Service Unavailable with `Retry-After`.
    #[serde(rename = "503")]
    Unavailable,
    /// 504 Gateway Timeout.
    #[serde(rename = "504")]
    GatewayTimeout,
    /// Close the connection without processing the request.
    #[serde(rename = "drop")]
    Drop,
    /// Process the request (state changes!) and then close the connection without the answer.
    #[serde(rename = "drop_after")]
    DropAfter,
    /// Process the request twice and answer the second: what a browser does when a reused
    /// keep-alive connection closes before any answer (it resends the request, a POST too),
    /// so a non-idempotent call acts twice while the page sees one answer.
    #[serde(rename = "resend")]
    Resend,
    /// 404 `Request_ResourceNotFound`, as replication lag gives.
    #[serde(rename = "lag404")]
    Lag404,
    /// Only adds `latency_ms` before the answer; the request is processed normally.
    #[serde(rename = "latency")]
    Latency,
}

impl FaultKind {
    /// Faults of the HTTP connection rather than of Graph's answer.
    pub fn is_connection_level(self) -> bool {
        matches!(
            self,
            FaultKind::Drop | FaultKind::DropAfter | FaultKind::Resend | FaultKind::Latency
        )
    }
}

/// A scripted fault. Counting is per rule over the requests it matches (1-based): with `nth`
/// it fires on that match only, with `every` on every k-th match, with neither on every match;
/// `times` caps how often it fires in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default, rename = "match")]
    pub matches: FaultMatch,
    #[serde(default)]
    pub nth: Option<u32>,
    #[serde(default)]
    pub every: Option<u32>,
    #[serde(default)]
    pub times: Option<u32>,
    pub kind: FaultKind,
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Matches seen so far (state; may be given as 0).
    #[serde(default)]
    pub seen: u32,
    /// Times fired so far (state).
    #[serde(default)]
    pub fired: u32,
}

impl FaultRule {
    pub fn new(kind: FaultKind) -> Self {
        FaultRule {
            matches: FaultMatch::default(),
            nth: None,
            every: None,
            times: None,
            kind,
            retry_after_s: None,
            latency_ms: None,
            seen: 0,
            fired: 0,
        }
    }
    pub fn method(mut self, m: &str) -> Self {
        self.matches.method = Some(m.to_string());
        self
    }
    pub fn path_contains(mut self, p: &str) -> Self {
        self.matches.path_contains = Some(p.to_string());
        self
    }
    pub fn nth(mut self, n: u32) -> Self {
        self.nth = Some(n);
        self
    }
    pub fn every(mut self, n: u32) -> Self {
        self.every = Some(n);
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn retry_after(mut self, s: u64) -> Self {
        self.retry_after_s = Some(s);
        self
    }
    pub fn latency(mut self, ms: u64) -> Self {
        self.latency_ms = Some(ms);
        self
    }
}

/// Everything that shapes the seeded tenant and its behaviour. `Default` is the demo tenant
/// "Contoso Backup Lab". Also the shape of a scenario file (JSON; every key optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Seeds ids, secrets, codes and the token-signing key.
    pub seed: u64,
    pub tenant_id: String,
    pub tenant_display_name: String,
    pub domain: String,
    pub users: Vec<UserSeed>,
    /// The registrator's client id (a multi-tenant app living in a foreign tenant).
    pub registrator_app_id: String,
    pub registrator_display_name: String,
    /// `spa` redirect URIs of the registrator (the page URLs).
    pub registrator_spa_redirect_uris: Vec<String>,
    /// `web` redirect URIs of the registrator.
    pub registrator_web_redirect_uris: Vec<String>,
    /// Start with B-1 done: the registrator's service principal, its app role assignments and
    /// its AllPrincipals delegated grant exist.
    pub registrator_consented: bool,
    pub lag: Lag,
    /// Added before every answer (the HTTP layer sleeps).
    pub latency_ms: u64,
    pub faults: Vec<FaultRule>,
    /// Tenant app-management policy: the longest password credential lifetime allowed.
    pub password_max_lifetime_days: Option<u32>,
    /// App role values (application permissions) removed from the tenant's Microsoft Graph SP.
    pub graph_missing_app_roles: Vec<String>,
    /// Delegated scope values removed from the tenant's Microsoft Graph SP.
    pub graph_missing_scopes: Vec<String>,
    /// Whether a delegated `POST /applications` makes the signed-in user an owner.
    pub creator_becomes_owner: bool,
    /// How an app role assignment naming a principal that is not visible yet fails:
    /// `false` (default) 404 `Request_ResourceNotFound`; `true` 400 `Request_BadRequest`
    /// "Not a valid reference update." (observed with replication delays:
    /// microsoftgraph/msgraph-bicep-types#193).
    pub assignment_lag_400: bool,
    /// Size of the token-signing RSA key.
    pub token_key_bits: usize,
    /// Access-token lifetime in seconds.
    pub token_lifetime_s: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            seed: 1,
            tenant_id: "6f1c3b1e-2d4a-4c8e-9f10-0a1b2c3d4e5f".into(),
            tenant_display_name: "Contoso Backup Lab".into(),
            domain: "contoso.onmicrosoft.com".into(),
            users: UserSeed::defaults(),
            registrator_app_id: REGISTRATOR_APP_ID.into(),
            registrator_display_name: "bacula-m365-registrator".into(),
            registrator_spa_redirect_uris: vec![],
            registrator_web_redirect_uris: vec![BACULA_REDIRECT.into()],
            registrator_consented: false,
            lag: Lag::default(),
            latency_ms: 0,
            faults: vec![],
            password_max_lifetime_days: None,
            graph_missing_app_roles: vec![],
            graph_missing_scopes: vec![],
            creator_becomes_owner: false,
            assignment_lag_400: false,
            token_key_bits: 2048,
            token_lifetime_s: 3599,
        }
    }
}

/// One request as the log keeps it: never bodies, never secrets (query values of `code`,
/// `code_verifier`, `client_secret`, `client_assertion` are redacted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub time_ms: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// 0 when the connection was dropped.
    pub status: u16,
    pub request_id: String,
    pub client_request_id: Option<String>,
    /// The fault that fired, if any (`"429"`, `"drop"` …).
    pub fault: Option<String>,
    /// Set for the sub-requests of a `$batch` (the batch's request id).
    pub batch_of: Option<String>,
}

/// The emulated tenant. See the module doc.
pub struct Emulator {
    pub(crate) cfg: EmulatorConfig,
    pub(crate) dir: Directory,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) seq: u64,
    pub(crate) signing: Option<jwt::SigningKey>,
    pub(crate) codes: Vec<login::AuthCode>,
}

/// Per-request context passed through the handlers.
pub(crate) struct Ctx {
    pub now_ms: u64,
    /// `scheme://host:port` of the request URL.
    pub base: String,
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub tenant_id: String,
}

impl Emulator {
    pub fn new(cfg: EmulatorConfig) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        let dir = Directory::seed(&cfg, &mut rng);
        let faults = cfg.faults.clone();
        Emulator {
            cfg,
            dir,
            rng,
            faults,
            log: Vec::new(),
            seq: 0,
            signing: None,
            codes: Vec::new(),
        }
    }

    /// Back to the state `new` made (same config, same seed), keeping the signing key.
    pub fn reset(&mut self) {
        let signing = self.signing.take();
        *self = Emulator::new(self.cfg.clone());
        self.signing = signing;
    }

    /// Generates the token-signing key now (otherwise done at the first token; RSA keygen
    /// takes a moment).
    pub fn prepare_signing_key(&mut self) {
        let _ = self.signing_key();
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.cfg
    }

    /// The live config (lag, latency, policy and the other knobs take effect at once; seed,
    /// tenant and users only at [`Emulator::reset`]).
    pub fn config_mut(&mut self) -> &mut EmulatorConfig {
        &mut self.cfg
    }

    pub fn tenant(&self) -> &TenantInfo {
        &self.dir.tenant
    }

    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    /// Replaces all fault rules.
    pub fn set_faults(&mut self, rules: Vec<FaultRule>) {
        self.faults = rules;
    }

    pub fn add_fault(&mut self, rule: FaultRule) {
        self.faults.push(rule);
    }

    pub fn faults(&self) -> &[FaultRule] {
        &self.faults
    }

    pub fn set_lag(&mut self, lag: Lag) {
        self.cfg.lag = lag;
    }

    pub fn set_latency_ms(&mut self, ms: u64) {
        self.cfg.latency_ms = ms;
    }

    pub fn set_password_max_lifetime_days(&mut self, days: Option<u32>) {
        self.cfg.password_max_lifetime_days = days;
    }

    /// Changes a user's directory role (e.g. take Global Administrator away).
    pub fn set_user_role(&mut self, upn: &str, role: Role) -> bool {
        let Some(id) = self.dir.user(upn).map(|u| u.id.clone()) else {
            return false;
        };
        match self.dir.users.iter_mut().find(|u| u.id == id) {
            Some(u) => {
                u.role = role;
                true
            }
            None => false,
        }
    }

    /// Removes an application permission (app role) from the tenant's resource SP
    /// (`resource_app_id`, e.g. [`GRAPH_APP_ID`]).
    pub fn remove_app_role(&mut self, resource_app_id: &str, value: &str) -> bool {
        self.dir.remove_permission(resource_app_id, value, true)
    }

    /// Removes a delegated permission (scope) from the tenant's resource SP.
    pub fn remove_scope(&mut self, resource_app_id: &str, value: &str) -> bool {
        self.dir.remove_permission(resource_app_id, value, false)
    }

    /// Registers another `spa` redirect URI on the registrator (e.g. a test page's URL).
    pub fn add_registrator_spa_redirect(&mut self, uri: &str) {
        self.dir.add_registrator_redirect(uri, true);
        if !self
            .cfg
            .registrator_spa_redirect_uris
            .iter()
            .any(|u| u == uri)
        {
            self.cfg.registrator_spa_redirect_uris.push(uri.to_string());
        }
    }

    /// Does B-1 (admin consent of the registrator) directly, as if a Global Administrator had
    /// accepted at `now_ms`.
    pub fn consent_registrator(&mut self, now_ms: u64) {
        let app_id = self.cfg.registrator_app_id.clone();
        self.dir.admin_consent(&app_id, now_ms, &mut self.rng);
    }

    /// The whole directory as JSON (no secret texts, no private material).
    pub fn state_json(&self) -> Value {
        let mut v = self.dir.state_json();
        v["config"] = json!({
            "lag": self.cfg.lag,
            "latency_ms": self.cfg.latency_ms,
            "password_max_lifetime_days": self.cfg.password_max_lifetime_days,
            "faults": self.faults,
        });
        v
    }

    /// Handles one request; `now_ms` is Unix time in milliseconds.
    pub fn handle(&mut self, req: &HttpRequest, now_ms: u64) -> Outcome {
        self.handle_timed(req, now_ms).0
    }

    /// Like [`Emulator::handle`], also returning how long the HTTP layer should wait before
    /// answering (configured latency plus latency faults), in milliseconds.
    pub fn handle_timed(&mut self, req: &HttpRequest, now_ms: u64) -> (Outcome, u64) {
        let (base, raw_path, query) = util::split_url(&req.url);
        let path = util::pct_decode(&raw_path);
        let request_id = util::uuid(&mut self.rng);
        let client_request_id = req
            .get_header("client-request-id")
            .map(|s| s.chars().take(200).collect::<String>());
        let ctx = Ctx {
            now_ms,
            base,
            request_id,
            client_request_id,
            tenant_id: self.dir.tenant.id.clone(),
        };
        let mut delay = self.cfg.latency_ms;
        let mut fault_name = None;

        let control = path.starts_with("/_emulator/") || path == "/_emulator";
        let mut drop_after = false;
        let mut resend = false;
        if !control {
            if let Some(rule) = self.fire_fault(req.method, &path, false) {
                fault_name = Some(fault_label(rule.kind).to_string());
                match rule.kind {
                    FaultKind::Latency => delay += rule.latency_ms.unwrap_or(0),
                    FaultKind::Drop => {
                        self.push_log(&ctx, req, &path, &query, 0, fault_name, None);
                        return (Outcome::Drop, delay);
                    }
                    FaultKind::DropAfter => drop_after = true,
                    FaultKind::Resend => {
                        // The first attempt acts; its answer is lost with the connection.
                        resend = true;
                        let first = self.route(&ctx, req, &path, &query);
                        let first = self.finish(&ctx, req, &path, first);
                        self.push_log(&ctx, req, &path, &query, 0, fault_name.clone(), None);
                        drop(first);
                    }
                    kind => {
                        let resp = self.fault_response(&ctx, &path, kind, &rule, req);
                        let resp = self.finish(&ctx, req, &path, resp);
                        self.push_log(&ctx, req, &path, &query, resp.status, fault_name, None);
                        return (Outcome::Respond(resp), delay);
                    }
                }
            }
        }

        let resp = if control {
            self.control(&ctx, req, &path)
        } else {
            self.route(&ctx, req, &path, &query)
        };
        let resp = self.finish(&ctx, req, &path, resp);
        let fault_name = if resend {
            Some("resent".to_string())
        } else {
            fault_name
        };
        if drop_after {
            self.push_log(&ctx, req, &path, &query, 0, fault_name, None);
            return (Outcome::Drop, delay);
        }
        if !control {
            self.push_log(&ctx, req, &path, &query, resp.status, fault_name, None);
        }
        (Outcome::Respond(resp), delay)
    }

    /// Adds the headers every answer carries: request ids and CORS for Graph.
    fn finish(
        &self,
        ctx: &Ctx,
        req: &HttpRequest,
        path: &str,
        mut resp: HttpResponse,
    ) -> HttpResponse {
        let is_graph = path == "/v1.0" || path.starts_with("/v1.0/");
        if is_graph {
            set_header(&mut resp, "request-id", &ctx.request_id);
            if let Some(c) = &ctx.client_request_id {
                set_header(&mut resp, "client-request-id", c);
            }
            if let Some(origin) = req.get_header("Origin") {
                set_header(&mut resp, "Access-Control-Allow-Origin", origin);
                set_header(&mut resp, "Access-Control-Expose-Headers", CORS_EXPOSE);
            }
        } else {
            set_header(&mut resp, "x-ms-request-id", &ctx.request_id);
            if let Some(c) = &ctx.client_request_id {
                set_header(&mut resp, "client-request-id", c);
            }
            // A transient failure of the token endpoint stays readable by the page; the
            // control API is open to test drivers in a browser.
            let token_fault = path.ends_with("/oauth2/v2.0/token") && resp.status >= 429;
            let control = path.starts_with("/_emulator/");
            if let (Some(origin), true) = (req.get_header("Origin"), token_fault || control) {
                if resp.get_header("Access-Control-Allow-Origin").is_none() {
                    set_header(&mut resp, "Access-Control-Allow-Origin", origin);
                    set_header(&mut resp, "Access-Control-Expose-Headers", CORS_EXPOSE);
                }
            }
        }
        resp
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_log(
        &mut self,
        ctx: &Ctx,
        req: &HttpRequest,
        path: &str,
        query: &str,
        status: u16,
        fault: Option<String>,
        batch_of: Option<String>,
    ) {
        self.push_log_raw(
            ctx,
            req.method.as_str(),
            path,
            query,
            status,
            fault,
            batch_of,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_log_raw(
        &mut self,
        ctx: &Ctx,
        method: &str,
        path: &str,
        query: &str,
        status: u16,
        fault: Option<String>,
        batch_of: Option<String>,
    ) {
        self.seq += 1;
        if self.log.len() >= 100_000 {
            self.log.drain(..10_000);
        }
        self.log.push(LogEntry {
            seq: self.seq,
            time_ms: ctx.now_ms,
            method: method.to_string(),
            path: path.to_string(),
            query: redact_query(query),
            status,
            request_id: ctx.request_id.clone(),
            client_request_id: ctx.client_request_id.clone(),
            fault,
            batch_of,
        });
    }

    /// The first rule that fires for this request (all matching rules count the request). A
    /// request inside a `$batch` (`in_batch`) has no connection of its own: rules about the
    /// connection (drop, drop_after, resend, latency) neither match nor count it; they apply to
    /// the `$batch` request that carries it.
    pub(crate) fn fire_fault(
        &mut self,
        method: Method,
        path: &str,
        in_batch: bool,
    ) -> Option<FaultRule> {
        let mut fired = None;
        for rule in self.faults.iter_mut() {
            if in_batch && rule.kind.is_connection_level() {
                continue;
            }
            if let Some(m) = &rule.matches.method {
                if !m.eq_ignore_ascii_case(method.as_str()) {
                    continue;
                }
            }
            if let Some(p) = &rule.matches.path_contains {
                if !path.contains(p.as_str()) {
                    continue;
                }
            }
            rule.seen = rule.seen.saturating_add(1);
            if fired.is_some() {
                continue;
            }
            if let Some(t) = rule.times {
                if rule.fired >= t {
                    continue;
                }
            }
            let fires = match (rule.nth, rule.every) {
                (Some(n), _) => rule.seen == n,
                (None, Some(k)) => k > 0 && rule.seen % k == 0,
                (None, None) => true,
            };
            if fires {
                rule.fired += 1;
                fired = Some(rule.clone());
            }
        }
        fired
    }

    pub(crate) fn fault_response_pub(
        &mut self,
        ctx: &Ctx,
        path: &str,
        rule: &FaultRule,
        req: &HttpRequest,
    ) -> HttpResponse {
        let mut r = self.fault_response(ctx, path, rule.kind, rule, req);
        if path.starts_with("/v1.0") {
            set_header(&mut r, "request-id", &ctx.request_id);
        }
        r
    }

    fn fault_response(
        &mut self,
        ctx: &Ctx,
        path: &str,
        kind: FaultKind,
        rule: &FaultRule,
        req: &HttpRequest,
    ) -> HttpResponse {
        let graph = path.starts_with("/v1.0");
        let retry = rule.retry_after_s;
        let mut resp = if graph {
            match kind {
                FaultKind::Throttle => {
                    // Graph's documented throttling body (learn.microsoft.com/graph/throttling).
                    let mut b =
                        odata::error_body(ctx, "TooManyRequests", "Please retry again later.");
                    b["error"]["innerError"]["code"] = json!("429");
                    b["error"]["innerError"]["status"] = json!("429");
                    b["error"]["innerError"]["message"] = json!("Please retry after");
                    odata::json_response(429, &b)
                }
                // GUESS: the codes/messages of injected 5xx bodies.
                FaultKind::ServerError => odata::error(
                    ctx,
                    500,
                    "generalException",
                    "General exception while processing",
                ),
                FaultKind::Unavailable => odata::error(
                    ctx,
                    503,
                    "serviceNotAvailable",
                    "Service is temporarily unavailable. Please retry later.",
                ),
                FaultKind::GatewayTimeout => {
                    odata::error(ctx, 504, "UnknownError", "Gateway Timeout")
                }
                _ => {
                    let id = path.rsplit('/').next().unwrap_or("").to_string();
                    odata::not_found(ctx, &id)
                }
            }
        } else {
            let (status, code) = match kind {
                FaultKind::Throttle => (429, "temporarily_unavailable"),
                FaultKind::ServerError => (500, "server_error"),
                FaultKind::GatewayTimeout => (504, "temporarily_unavailable"),
                FaultKind::Lag404 => (404, "invalid_request"),
                _ => (503, "temporarily_unavailable"),
            };
            let _ = req;
            login::oauth_error_response(
                ctx,
                status,
                code,
                90033,
                "A transient error has occurred. Please try again.",
                None,
            )
        };
        let default_retry = match kind {
            FaultKind::Throttle | FaultKind::Unavailable => Some(retry.unwrap_or(1)),
            _ => retry,
        };
        if let Some(s) = default_retry {
            set_header(&mut resp, "Retry-After", &s.to_string());
        }
        resp
    }

    /// `/_emulator/...`: GET state, GET log, POST faults (a JSON array of rules, or
    /// `{"rules":[…], "append":bool}`), POST reset, POST lag, POST latency, POST policy,
    /// POST role (`{"upn","role"}`), POST remove-permission, POST consent-registrator,
    /// POST spa-redirect (`{"uri"}`).
    /// Graph or the login endpoints, by path.
    fn route(&mut self, ctx: &Ctx, req: &HttpRequest, path: &str, query: &str) -> HttpResponse {
        if path == "/v1.0" || path.starts_with("/v1.0/") {
            self.graph_entry(ctx, req, path, query)
        } else {
            self.login_entry(ctx, req, path, query)
        }
    }

    fn control(&mut self, ctx: &Ctx, req: &HttpRequest, path: &str) -> HttpResponse {
        let body: Value = req
            .body
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .map(|b| serde_json::from_str(b).unwrap_or(Value::Null))
            .unwrap_or(json!({}));
        let ok = || odata::json_response(200, &json!({"ok": true}));
        let bad = |m: &str| odata::json_response(400, &json!({"error": m}));
        match (req.method, path) {
            (Method::Get, "/_emulator/state") => odata::json_response(200, &self.state_json()),
            (Method::Get, "/_emulator/log") => {
                odata::json_response(200, &json!({"value": self.log}))
            }
            (Method::Post, "/_emulator/faults") => {
                let (rules, append) = if body.is_array() {
                    (body.clone(), false)
                } else {
                    (
                        body.get("rules").cloned().unwrap_or(json!([])),
                        body.get("append").and_then(Value::as_bool).unwrap_or(false),
                    )
                };
                match serde_json::from_value::<Vec<FaultRule>>(rules) {
                    Ok(r) => {
                        if append {
                            self.faults.extend(r);
                        } else {
                            self.faults = r;
                        }
                        ok()
                    }
                    Err(e) => bad(&format!("bad fault rules: {e}")),
                }
            }
            (Method::Post, "/_emulator/reset") => {
                self.reset();
                ok()
            }
            (Method::Post, "/_emulator/lag") => match serde_json::from_value::<Lag>(body) {
                Ok(l) => {
                    self.cfg.lag = l;
                    ok()
                }
                Err(e) => bad(&format!("bad lag: {e}")),
            },
            (Method::Post, "/_emulator/latency") => match body.get("ms").and_then(Value::as_u64) {
                Some(ms) => {
                    self.cfg.latency_ms = ms;
                    ok()
                }
                None => bad("expected {\"ms\": N}"),
            },
            (Method::Post, "/_emulator/policy") => {
                self.cfg.password_max_lifetime_days = body
                    .get("password_max_lifetime_days")
                    .and_then(Value::as_u64)
                    .map(|d| d.min(u32::MAX as u64) as u32);
                ok()
            }
            (Method::Post, "/_emulator/role") => {
                let upn = body.get("upn").and_then(Value::as_str).unwrap_or("");
                match body.get("role").cloned().map(serde_json::from_value::<Role>) {
                    Some(Ok(role)) if self.set_user_role(upn, role) => ok(),
                    _ => bad("expected {\"upn\": \"…\", \"role\": \"GlobalAdministrator|ApplicationAdministrator|None\"}"),
                }
            }
            (Method::Post, "/_emulator/remove-permission") => {
                let res = body
                    .get("resource")
                    .and_then(Value::as_str)
                    .unwrap_or(GRAPH_APP_ID)
                    .to_string();
                let value = body.get("value").and_then(Value::as_str).unwrap_or("");
                let app = body.get("type").and_then(Value::as_str).unwrap_or("Role") != "Scope";
                if self.dir.remove_permission(&res, value, app) {
                    ok()
                } else {
                    bad("no such permission")
                }
            }
            (Method::Post, "/_emulator/consent-registrator") => {
                self.consent_registrator(ctx.now_ms);
                ok()
            }
            (Method::Post, "/_emulator/spa-redirect") => {
                match body.get("uri").and_then(Value::as_str) {
                    Some(u) => {
                        let u = u.to_string();
                        self.add_registrator_spa_redirect(&u);
                        ok()
                    }
                    None => bad("expected {\"uri\": \"…\"}"),
                }
            }
            _ => odata::json_response(404, &json!({"error": "unknown control endpoint"})),
        }
    }
}

/// Headers a browser may read from Graph answers.
pub const CORS_EXPOSE: &str =
    "request-id, client-request-id, Retry-After, Location, Content-Type, OData-Version";
/// Request headers Graph allows in a preflight.
pub const CORS_ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Prefer, ConsistencyLevel, client-request-id, return-client-request-id, If-Match, Accept";

/// The answer to a CORS preflight (`OPTIONS`) for `path`, as Graph and Entra answer browsers:
/// Graph paths allow any origin (echoed), the token endpoint allows POST from any origin (whether
/// the redemption itself is allowed is decided on the POST), everything else gets no CORS headers.
pub fn cors_preflight(path: &str, origin: Option<&str>) -> HttpResponse {
    let path = util::pct_decode(path);
    let mut resp = HttpResponse {
        status: 200,
        headers: vec![],
        body: String::new(),
    };
    let graph = path == "/v1.0" || path.starts_with("/v1.0/");
    let token = path.ends_with("/oauth2/v2.0/token")
        || path.ends_with("/discovery/v2.0/keys")
        || path.ends_with("/.well-known/openid-configuration");
    let control = path.starts_with("/_emulator/");
    if let Some(o) = origin {
        if graph || token || control {
            let methods = if graph || control {
                "GET, POST, PATCH, PUT, DELETE, OPTIONS"
            } else {
                "GET, POST, OPTIONS"
            };
            resp.headers
                .push(("Access-Control-Allow-Origin".into(), o.to_string()));
            resp.headers
                .push(("Access-Control-Allow-Methods".into(), methods.into()));
            resp.headers.push((
                "Access-Control-Allow-Headers".into(),
                CORS_ALLOW_HEADERS.into(),
            ));
            resp.headers
                .push(("Access-Control-Max-Age".into(), "3600".into()));
            resp.headers.push(("Vary".into(), "Origin".into()));
        }
    }
    resp
}

pub(crate) fn set_header(resp: &mut HttpResponse, name: &str, value: &str) {
    resp.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    resp.headers.push((name.to_string(), value.to_string()));
}

fn fault_label(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Throttle => "429",
        FaultKind::ServerError => "500",
        FaultKind::Unavailable => "503",
        FaultKind::GatewayTimeout => "504",
        FaultKind::Drop => "drop",
        FaultKind::DropAfter => "drop_after",
        FaultKind::Resend => "resend",
        FaultKind::Lag404 => "lag404",
        FaultKind::Latency => "latency",
    }
}

fn redact_query(q: &str) -> String {
    const SECRET: [&str; 6] = [
        "code",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "id_token",
        "access_token",
    ];
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, _)) if SECRET.contains(&k) => format!("{k}=<redacted>"),
            _ => p.chars().take(500).collect(),
        })
        .collect::<Vec<_>>()
        .join("&")
}
