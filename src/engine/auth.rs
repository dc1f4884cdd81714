//! Sign-in and consent with Entra ID: PKCE, state and nonce, tenant input, the authorize and
//! admin-consent URLs, parsing of every redirect back, the token request and response, and the
//! id token's claims; must not import web, emulator or any I/O crate (random bytes come in as
//! parameters, time as `now_unix`).
//!
//! Protocol: Microsoft identity platform v2.0 authorization code flow
//! (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow), admin consent
//! (…/v2-admin-consent), PKCE (RFC 7636), OpenID Connect Core 1.0.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;

use crate::engine::cloud::Endpoints;
use crate::engine::http::{decode_component, encode_component, HttpRequest, HttpResponse, Method};
use crate::engine::secret::{AccessToken, AuthCode, CodeVerifier, IdToken};

/// Longest value kept from a redirect or an error body; longer text is cut (with `…`).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest authorization code accepted (real ones are 1-2 KB); a longer one is malformed, not cut.
const MAX_CODE_BYTES: usize = 16 * 1024;
/// Clock skew allowed when checking `exp` (a browser clock can be minutes off).
pub const CLOCK_SKEW_SECS: i64 = 300;
/// The tenant of personal Microsoft accounts (id token `tid`).
pub const MSA_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

// ---------------------------------------------------------------------------------------------
// PKCE, state, nonce

/// RFC 7636 §4.2 S256: `BASE64URL(SHA256(ASCII(code_verifier)))`, no padding.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A verifier from 32 CSPRNG bytes (43 unreserved characters, RFC 7636 §4.1) and its S256
/// challenge.
pub fn new_pkce(random: &[u8; 32]) -> (CodeVerifier, String) {
    let verifier = URL_SAFE_NO_PAD.encode(random);
    let challenge = pkce_challenge(&verifier);
    (CodeVerifier::new(verifier), challenge)
}

/// Base64url (no padding) of random bytes: `state` and `nonce` values (16+ bytes recommended).
pub fn random_token(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Result of comparing the returned `state` with the one this page stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateCheck {
    /// The redirect answers a request this page started.
    Match,
    /// No `state` came back.
    Missing,
    /// A `state` came back that this page did not store (another tab, an old link, a forgery).
    Unknown,
}

/// Compares the stored `state` (if any) with the returned one.
pub fn check_state(expected: Option<&str>, got: Option<&str>) -> StateCheck {
    match (expected, got) {
        (_, None) => StateCheck::Missing,
        (Some(e), Some(g)) if !e.is_empty() && e == g => StateCheck::Match,
        _ => StateCheck::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant input

/// A tenant to sign in to: a GUID (lower-case) or a verified domain (lower-case). Never
/// `common`, `organizations` or `consumers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// Wraps a value without checking it (tests, and values that already passed
    /// [`parse_tenant`]).
    pub fn new_unchecked(s: impl Into<String>) -> Tenant {
        Tenant(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The tenant was given as its id (a GUID), not a domain.
    pub fn is_guid(&self) -> bool {
        is_guid(&self.0)
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a tenant input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("enter your tenant id or domain")]
    Empty,
    /// `common`, `organizations` or `consumers`.
    #[error("use your tenant id or domain, not common")]
    MultiTenant(String),
    /// A URL was pasted; `suggestion` is a tenant found in it, if any.
    #[error("paste only the domain or id, not a URL")]
    Url { suggestion: Option<String> },
    /// An e-mail address was pasted; `suggestion` is the part after `@` if it is a domain.
    #[error("this is an e-mail address, not a tenant")]
    Email { suggestion: Option<String> },
    /// Shaped like a tenant id but not a valid GUID.
    #[error("this is not a valid tenant id")]
    BadGuid,
    /// Domain-shaped, but longer than DNS allows (253 characters, 63 per label).
    #[error("this domain is too long")]
    TooLong,
    /// A domain with a final dot (`contoso.com.`); `suggestion` is it without.
    #[error("remove the final dot")]
    TrailingDot { suggestion: String },
    /// A domain with non-ASCII letters (an IDN): Entra uses its punycode (`xn--`) form.
    #[error("use the domain's xn-- form")]
    Unicode,
    /// Invisible characters (zero-width, direction marks, BOM) inside what looks like a tenant.
    #[error("the tenant contains an invisible character")]
    Invisible,
    /// Markup, quotes or spaces inside: never part of a tenant id or domain.
    #[error("a tenant id or domain has no such characters")]
    BadCharacters,
    #[error("this is neither a tenant id nor a domain")]
    Invalid,
}

impl TenantError {
    /// What the admin should do, in a sentence for the page.
    pub fn advice(&self) -> String {
        match self {
            TenantError::Empty => "Enter your tenant id (a GUID such as \
                 72f988bf-86f1-41af-91ab-2d7cd011db47) or one of its verified domains (such as \
                 contoso.onmicrosoft.com). The Entra admin center shows both on its Overview page."
                .to_string(),
            TenantError::MultiTenant(s) => format!(
                "\"{s}\" is not a tenant. Use your tenant id or a verified domain, so that the \
                 sign-in and the consent apply to your own tenant."
            ),
            TenantError::Url {
                suggestion: Some(t),
            } => {
                format!("Paste only the domain or id, not a URL. Did you mean {t}?")
            }
            TenantError::Url { suggestion: None } => {
                "Paste only the domain (such as contoso.onmicrosoft.com) or the tenant id, not a \
                 URL."
                    .to_string()
            }
            TenantError::Email {
                suggestion: Some(d),
            } => format!("This is an e-mail address. Enter the tenant's domain instead: {d}"),
            TenantError::Email { suggestion: None } => {
                "This is an e-mail address. Enter the tenant's domain (the part after @) or \
                 the tenant id."
                    .to_string()
            }
            TenantError::BadGuid => "A tenant id is a GUID of 32 hexadecimal digits in the form \
                 8-4-4-4-12 (0-9, a-f). Copy it again from the Entra admin center, or enter a \
                 verified domain instead."
                .to_string(),
            TenantError::TooLong => "A domain name has at most 253 characters, and 63 between \
                 two dots. Check what you pasted, or enter the tenant id (a GUID) instead."
                .to_string(),
            TenantError::TrailingDot { suggestion } => {
                format!("Remove the final dot. Did you mean {suggestion}?")
            }
            TenantError::Unicode => "Enter the domain in its ASCII form (it starts with xn--, \
                 as the Entra admin center lists it under Domain names), or enter the tenant id \
                 (a GUID) instead."
                .to_string(),
            TenantError::Invisible => "What you pasted contains an invisible character \
                 (zero-width space, direction mark or byte-order mark). Type the tenant id or \
                 domain by hand, or paste it from the Entra admin center again."
                .to_string(),
            TenantError::BadCharacters => "A tenant id or domain has only letters, digits, dots \
                 and hyphens. Enter the tenant id (a GUID) or a verified domain such as \
                 contoso.onmicrosoft.com."
                .to_string(),
            TenantError::Invalid => "Enter the tenant id (a GUID) or a verified domain such as \
                 contoso.onmicrosoft.com."
                .to_string(),
        }
    }
}

/// The tenant of personal Microsoft accounts: never an organization's.
const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_domain(s: &str) -> bool {
    if s.len() > 253 || !s.contains('.') {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    let Some(tld) = labels.last() else {
        return false;
    };
    // A TLD is letters, or an IDN in punycode (`xn--…`).
    let tld_ok = (tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()))
        || (tld.starts_with("xn--") && label_ok(tld));
    labels.iter().all(|l| label_ok(l)) && tld_ok
}

/// Reads what the admin typed as the tenant: a GUID or a verified domain (trimmed,
/// lower-cased).
pub fn parse_tenant(input: &str) -> Result<Tenant, TenantError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(TenantError::Empty);
    }
    if s.chars().any(|c| {
        matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}')
    }) {
        return Err(TenantError::Invisible);
    }
    let lower = s.to_ascii_lowercase();
    if ["common", "organizations", "consumers"].contains(&lower.as_str()) {
        return Err(TenantError::MultiTenant(lower));
    }
    // The personal-accounts (consumers) tenant, by its id.
    if lower == CONSUMERS_TENANT_ID {
        return Err(TenantError::MultiTenant("consumers".into()));
    }
    if is_guid(&lower) {
        return Ok(Tenant(lower));
    }
    if is_domain(&lower) {
        return Ok(Tenant(lower));
    }
    // Markup, quotes and inner spaces are in no URL, address or domain an admin copies.
    if lower
        .chars()
        .any(|c| matches!(c, '<' | '>' | '"' | '\'' | '`' | '{' | '}') || c.is_whitespace())
    {
        return Err(TenantError::BadCharacters);
    }
    if let Some(d) = lower.strip_suffix('.') {
        if is_domain(d) {
            return Err(TenantError::TrailingDot {
                suggestion: d.to_string(),
            });
        }
    }
    let dns_chars = |t: &str| {
        t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
    };
    if lower.contains('.')
        && dns_chars(&lower)
        && (lower.len() > 253 || lower.split('.').any(|l| l.len() > 63))
    {
        return Err(TenantError::TooLong);
    }
    if lower.contains('.')
        && !lower.is_ascii()
        && !lower.contains(['/', '@', ':'])
        && lower
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
    {
        return Err(TenantError::Unicode);
    }
    if lower.contains("://") || (lower.starts_with("www.") && lower.contains('/')) {
        return Err(TenantError::Url {
            suggestion: tenant_in_url(&lower),
        });
    }
    if let Some((_, domain)) = lower.rsplit_once('@') {
        let d = domain.trim();
        return Err(TenantError::Email {
            suggestion: is_domain(d).then(|| d.to_string()),
        });
    }
    if lower.contains('/') {
        return Err(TenantError::Url {
            suggestion: tenant_in_url(&lower),
        });
    }
    // Shaped like a GUID (length and dashes) but with wrong characters: the spec's own example.
    let dashes: Vec<usize> = lower.match_indices('-').map(|(i, _)| i).collect();
    if lower.len() >= 30 && lower.len() <= 40 && dashes.len() == 4 && !lower.contains('.') {
        return Err(TenantError::BadGuid);
    }
    Err(TenantError::Invalid)
}

/// Microsoft's own hosts, which are never the tenant in a pasted URL.
const MICROSOFT_HOST_SUFFIXES: [&str; 9] = [
    ".microsoft.com",
    ".microsoftonline.com",
    ".azure.com",
    ".microsoft.us",
    ".microsoftonline.us",
    ".azure.us",
    ".microsoftonline.cn",
    ".chinacloudapi.cn",
    ".azure.cn",
];

/// A tenant id or domain inside a pasted URL (`…/contoso.onmicrosoft.com/oauth2/…`); the host of
/// a URL with a scheme is skipped, and Microsoft's own hosts never count.
fn tenant_in_url(url: &str) -> Option<String> {
    let (skip, rest) = match url.split_once("://") {
        Some((_, r)) => (1, r),
        None => (0, url),
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .skip(skip)
        .find(|seg| {
            is_guid(seg)
                || (is_domain(seg)
                    && !MICROSOFT_HOST_SUFFIXES
                        .iter()
                        .any(|h| seg.ends_with(h) || seg == &&h[1..]))
        })
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Authorize and admin-consent URLs

/// Where Entra returns the authorization response parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
}

impl ResponseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
        }
    }
}

/// An authorization-code request with PKCE (`response_type=code`).
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    pub endpoints: &'a Endpoints,
    pub tenant: &'a Tenant,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
    pub response_mode: ResponseMode,
    pub login_hint: Option<&'a str>,
    pub prompt: Option<&'a str>,
}

impl AuthorizeRequest<'_> {
    /// `{login}/{tenant}/oauth2/v2.0/authorize?…`, every value percent-encoded.
    pub fn url(&self) -> String {
        let scope = self.scopes.join(" ");
        let mut pairs: Vec<(&str, &str)> = vec![
            ("client_id", self.client_id),
            ("response_type", "code"),
            ("redirect_uri", self.redirect_uri),
            ("response_mode", self.response_mode.as_str()),
            ("scope", &scope),
            ("state", self.state),
            ("nonce", self.nonce),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(h) = self.login_hint {
            pairs.push(("login_hint", h));
        }
        if let Some(p) = self.prompt {
            pairs.push(("prompt", p));
        }
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "{}/{}/oauth2/v2.0/authorize?{query}",
            self.endpoints.login,
            encode_component(self.tenant.as_str())
        )
    }
}

/// The delegated scopes the page signs in with: `openid profile` and the Graph permissions the
/// add-app flow needs. No `offline_access`: the page wants no refresh token.
pub fn signin_scopes(endpoints: &Endpoints) -> Vec<String> {
    [
        "openid",
        "profile",
        "User.Read",
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "DelegatedPermissionGrant.ReadWrite.All",
    ]
    .iter()
    .map(|s| endpoints.scope(s))
    .collect()
}

/// Which admin-consent endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentForm {
    /// `/{tenant}/adminconsent`: the form in Bacula's documentation (all configured permissions).
    V1,
    /// `/{tenant}/v2.0/adminconsent` with `scope={graph_resource}/.default`.
    V2,
}

/// Query-value encoding for the consent URLs: RFC 3986 unreserved plus `:`, `/` and `@`, which a
/// query may hold literally (RFC 3986 §3.4). This reproduces Bacula's documented URL byte for
/// byte; `&`, `=`, `+`, `#`, `%`, `?` and spaces are still encoded.
const CONSENT_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'/')
    .remove(b'@');

fn consent_enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, CONSENT_VALUE).to_string()
}

/// The admin-consent URL the tenant admin opens.
pub fn admin_consent_url(
    endpoints: &Endpoints,
    tenant: &Tenant,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    form: ConsentForm,
) -> String {
    let login = &endpoints.login;
    let t = consent_enc(tenant.as_str());
    let cid = consent_enc(client_id);
    let st = consent_enc(state);
    let ru = consent_enc(redirect_uri);
    match form {
        ConsentForm::V1 => {
            format!("{login}/{t}/adminconsent?client_id={cid}&state={st}&redirect_uri={ru}")
        }
        ConsentForm::V2 => format!(
            "{login}/{t}/v2.0/adminconsent?client_id={cid}&scope={}&redirect_uri={ru}&state={st}",
            consent_enc(&endpoints.default_scope())
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors from Entra (redirect or token endpoint)

/// What went wrong, for choosing advice. Derived from the AADSTS number first, then from the
/// OAuth `error` (Microsoft says the numbers may change: unknown ones are `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectErrorKind {
    /// The admin cancelled or declined (AADSTS65004, or `error_subcode=cancel`).
    Cancelled,
    /// The signed-in user may not grant this (AADSTS90094, 900941, 65001).
    NotAdmin,
    /// The account is not a member of this tenant (AADSTS50020, 90072), e.g. a guest admin.
    OtherTenant,
    /// The redirect URI is not registered on the app (AADSTS50011, 500113).
    RedirectNotRegistered,
    /// The client id is unknown here (AADSTS700016): wrong id, or the app is in another cloud.
    AppNotFound,
    /// No such tenant (AADSTS90002, 50128): a typo, or a tenant in another cloud.
    TenantNotFound,
    /// A client or tenant of one national cloud used against another (AADSTS900439, 900432,
    /// 90051).
    WrongCloud,
    /// The redirect URI is not registered as type `spa` (AADSTS9002326).
    SpaRedirectRequired,
    /// The code is expired, used or otherwise invalid (`invalid_grant`, AADSTS54005, 70008).
    InvalidGrant,
    /// The PKCE verifier does not match the challenge (AADSTS501481, 50148).
    PkceMismatch,
    /// Entra wants a step the sign-in did not complete: multi-factor authentication or its
    /// registration (AADSTS50076, 50079, 50074), or `interaction_required`.
    MfaRequired,
    /// A Conditional Access policy blocked the sign-in (AADSTS53000, 53001, 53002, 53003).
    ConditionalAccess,
    /// Entra is temporarily unable to answer (`temporarily_unavailable`, `server_error`, 5xx,
    /// 429).
    Transient,
    Other,
}

/// The token endpoint's error kinds are the redirect's plus grant/PKCE/transient ones.
pub type EntraErrorKind = RedirectErrorKind;

impl RedirectErrorKind {
    /// What to do, in a sentence or two for the page.
    pub fn advice(&self) -> &'static str {
        match self {
            RedirectErrorKind::Cancelled => {
                "The request was cancelled or declined. Start again and choose Accept when \
                 Microsoft asks for the permissions."
            }
            RedirectErrorKind::NotAdmin => {
                "This account cannot grant these permissions. Sign in with a Global \
                 Administrator or Privileged Role Administrator of the tenant."
            }
            RedirectErrorKind::OtherTenant => {
                "This account does not belong to the tenant (it may be a guest there). Sign in \
                 with an administrator account of this tenant, or check the tenant you entered."
            }
            RedirectErrorKind::RedirectNotRegistered => {
                "This page's address is not registered as a redirect URI on the application. \
                 Register it (type Single-page application) on the app, or open the page from \
                 its registered address."
            }
            RedirectErrorKind::AppNotFound => {
                "Microsoft does not know this application id in this cloud. Check the client id \
                 in the page's configuration and the cloud (global, US Government, China)."
            }
            RedirectErrorKind::TenantNotFound => {
                "Microsoft does not know this tenant. Check the tenant id or domain, and whether \
                 the tenant is in a national cloud (US Government, China)."
            }
            RedirectErrorKind::WrongCloud => {
                "The tenant or the application belongs to another Microsoft cloud. Choose the \
                 tenant's cloud (global, US Government, China) in the page's configuration."
            }
            RedirectErrorKind::SpaRedirectRequired => {
                "The redirect URI is registered, but not as a Single-page application. Add this \
                 page's address under Authentication > Single-page application on the app."
            }
            RedirectErrorKind::InvalidGrant => {
                "The sign-in expired or was already used. Sign in again."
            }
            RedirectErrorKind::PkceMismatch => {
                "The sign-in could not be completed (the proof key did not match), often because \
                 it was started in another tab. Sign in again from this tab."
            }
            RedirectErrorKind::MfaRequired => {
                "Microsoft asks for a step this sign-in did not complete, usually multi-factor \
                 authentication or registering for it. Sign in again and complete every prompt \
                 Microsoft shows."
            }
            RedirectErrorKind::ConditionalAccess => {
                "A Conditional Access policy of your tenant blocked this sign-in (device, \
                 location or application rules). Sign in from a device and network your policies \
                 allow, or ask the policy's owner to allow this registrator."
            }
            RedirectErrorKind::Transient => {
                "Microsoft's sign-in service is temporarily unavailable. Wait a minute and try \
                 again."
            }
            RedirectErrorKind::Other => {
                "Microsoft refused the request. Check the details below, then start again from \
                 this page; if it happens again, give them (error, AADSTS code, trace and \
                 correlation ids) to Microsoft support."
            }
        }
    }

    /// [`Self::advice`] with the exact redirect URI and app named where that is the fix.
    pub fn advice_for(&self, client_id: &str, redirect_uri: &str) -> String {
        match self {
            RedirectErrorKind::RedirectNotRegistered | RedirectErrorKind::SpaRedirectRequired => {
                format!(
                    "{} The redirect URI to register, as type Single-page application, is \
                     {redirect_uri} on the application {client_id}.",
                    self.advice()
                )
            }
            RedirectErrorKind::AppNotFound => {
                format!("{} The client id in use is {client_id}.", self.advice())
            }
            _ => self.advice().to_string(),
        }
    }
}

fn classify(
    error: &str,
    aadsts: Option<u32>,
    subcode: Option<&str>,
    description: &str,
    status: Option<u16>,
) -> RedirectErrorKind {
    use RedirectErrorKind as K;
    match aadsts {
        Some(65004) => return K::Cancelled,
        Some(90094 | 900941 | 65001) => return K::NotAdmin,
        Some(50020 | 90072) => return K::OtherTenant,
        Some(50011 | 500113) => return K::RedirectNotRegistered,
        Some(700016) => return K::AppNotFound,
        Some(90002 | 50128) => return K::TenantNotFound,
        Some(900439 | 900432 | 90051) => return K::WrongCloud,
        Some(9002326) => return K::SpaRedirectRequired,
        // Older builds answered cross-origin redemption with the generic 90023.
        Some(90023) if description.to_ascii_lowercase().contains("cross-origin") => {
            return K::SpaRedirectRequired
        }
        Some(501481 | 50148) => return K::PkceMismatch,
        Some(54005 | 70008) => return K::InvalidGrant,
        Some(50076 | 50079 | 50074) => return K::MfaRequired,
        Some(53000..=53003) => return K::ConditionalAccess,
        _ => {}
    }
    if subcode.is_some_and(|s| s.eq_ignore_ascii_case("cancel")) {
        return K::Cancelled;
    }
    match error {
        "temporarily_unavailable" | "server_error" => return K::Transient,
        "invalid_grant" => return K::InvalidGrant,
        "interaction_required" | "mfa_required" => return K::MfaRequired,
        _ => {}
    }
    match status {
        Some(s) if s >= 500 || s == 429 => K::Transient,
        _ => K::Other,
    }
}

/// Cuts text to [`MAX_VALUE_BYTES`] on a character boundary, marking the cut with `…`.
fn clip(s: String) -> String {
    if s.len() <= MAX_VALUE_BYTES {
        return s;
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].to_string();
    out.push('…');
    out
}

/// The first `AADSTS<number>` in a text.
pub fn aadsts_code(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once("AADSTS")?;
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(9)
        .collect();
    digits.parse().ok()
}

/// The `code=NNN` of an `error_uri` such as `https://login.microsoftonline.com/error?code=65004`.
fn code_in_error_uri(uri: &str) -> Option<u32> {
    let (_, q) = uri.split_once('?')?;
    q.split('&')
        .find_map(|p| p.strip_prefix("code="))
        .and_then(|c| {
            let d: String = c
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .take(9)
                .collect();
            d.parse().ok()
        })
}

/// An `error_description` split into its message and the `Trace ID:`, `Correlation ID:` and
/// `Timestamp:` lines Entra appends.
#[derive(Debug, Default)]
struct Described {
    message: String,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    timestamp: Option<String>,
}

fn split_description(d: &str) -> Described {
    let mut out = Described::default();
    let mut kept: Vec<&str> = Vec::new();
    for line in d.split(['\r', '\n']) {
        let t = line.trim();
        // A trailer line is never part of the message, even with an empty value (found by
        // `prop_redirect_error_round_trip`: an empty `Trace ID:` line was shown as the message).
        let field = |prefix: &str| {
            t.strip_prefix(prefix)
                .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
        };
        if let Some(v) = field("Trace ID:") {
            out.trace_id = out.trace_id.take().or(v);
        } else if let Some(v) = field("Correlation ID:") {
            out.correlation_id = out.correlation_id.take().or(v);
        } else if let Some(v) = field("Timestamp:") {
            out.timestamp = out.timestamp.take().or(v);
        } else if !t.is_empty() {
            kept.push(t);
        }
    }
    out.message = kept.join("\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Redirect parsing

/// An error redirect from `/authorize` or `/adminconsent`. All values are plain text for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub error: String,
    /// The description without its trace/correlation/timestamp lines.
    pub description: Option<String>,
    pub error_uri: Option<String>,
    pub error_subcode: Option<String>,
    pub aadsts: Option<u32>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The `Timestamp:` line of the description (or a `timestamp` parameter).
    pub timestamp: Option<String>,
    /// Entra sends `admin_consent=True` with errors too: it does not mean success.
    pub admin_consent: bool,
    pub state: Option<String>,
}

impl RedirectError {
    pub fn kind(&self) -> RedirectErrorKind {
        classify(
            &self.error,
            self.aadsts,
            self.error_subcode.as_deref(),
            self.description.as_deref().unwrap_or(""),
            None,
        )
    }
}

/// What came back to the redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// No OAuth parameters: a plain page load.
    None,
    /// Sign-in succeeded: exchange the code.
    Code {
        code: AuthCode,
        state: Option<String>,
    },
    /// Admin consent finished. `tenant` is for display only: it can be forged.
    Consent {
        admin_consent: bool,
        tenant: Option<String>,
        scope: Option<String>,
        state: Option<String>,
    },
    Error(RedirectError),
    /// OAuth parameters that make no sense together (duplicates, both channels, no result).
    Malformed {
        reason: String,
    },
}

/// Parameters that make a query or fragment an OAuth response.
const RESULT_KEYS: [&str; 4] = ["code", "error", "admin_consent", "state"];
/// Parameters read from a response; any of these twice is malformed.
const OAUTH_KEYS: [&str; 14] = [
    "code",
    "state",
    "error",
    "error_description",
    "error_uri",
    "error_subcode",
    "suberror",
    "admin_consent",
    "tenant",
    "scope",
    "trace_id",
    "correlation_id",
    "timestamp",
    "session_state",
];

struct Params(Vec<(&'static str, String)>);

impl Params {
    /// Decodes the known OAuth parameters of one query/fragment (lossily for broken
    /// percent-encoding), or names the first one that appears twice.
    fn parse(raw: &str) -> Result<Params, String> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            // Keys of interest are short; skip decoding anything long.
            if k.len() > 64 {
                continue;
            }
            let k = decode_component(k);
            let Some(key) = OAUTH_KEYS.iter().copied().find(|n| *n == k) else {
                continue;
            };
            if out.iter().any(|(n, _)| *n == key) {
                return Err(key.to_string());
            }
            out.push((key, decode_component(v)));
        }
        Ok(Params(out))
    }

    fn has_result(&self) -> bool {
        self.0.iter().any(|(k, _)| RESULT_KEYS.contains(k))
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A value, clipped; an empty value counts as absent.
    fn get(&self, key: &str) -> Option<String> {
        self.raw(key)
            .filter(|v| !v.is_empty())
            .map(|v| clip(v.to_string()))
    }
}

fn strip_prefix_char(s: &str, c: char) -> &str {
    s.strip_prefix(c).unwrap_or(s)
}

/// Reads the redirect back from Entra. `query` is the raw query without `?`, `fragment` the raw
/// fragment without `#`. Whichever carries OAuth parameters is used; both at once is malformed.
/// `error` is read first (Entra adds `admin_consent=True` to errors), then `code`, then
/// `admin_consent`.
pub fn parse_redirect(query: &str, fragment: &str) -> Redirect {
    let q = match Params::parse(strip_prefix_char(query, '?')) {
        Ok(p) => p,
        Err(k) => {
            return Redirect::Malformed {
                reason: format!("parameter {k} appears twice"),
            }
        }
    };
    let f = match Params::parse(strip_prefix_char(fragment, '#')) {
        Ok(p) => p,
        Err(k) => {
            return Redirect::Malformed {
                reason: format!("parameter {k} appears twice"),
            }
        }
    };
    let p = match (q.has_result(), f.has_result()) {
        (false, false) => return Redirect::None,
        (true, true) => {
            return Redirect::Malformed {
                reason: "OAuth parameters in both the query and the fragment".to_string(),
            }
        }
        (true, false) => q,
        (false, true) => f,
    };
    let state = p.get("state");
    let admin_consent = p
        .raw("admin_consent")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));

    if let Some(error) = p.raw("error") {
        let raw_desc = p.raw("error_description").unwrap_or("");
        let d = split_description(raw_desc);
        let error_uri = p.get("error_uri");
        let aadsts =
            aadsts_code(raw_desc).or_else(|| error_uri.as_deref().and_then(code_in_error_uri));
        let error = if error.trim().is_empty() {
            "unknown_error"
        } else {
            error.trim()
        };
        return Redirect::Error(RedirectError {
            error: clip(error.to_string()),
            description: Some(clip(d.message)).filter(|m| !m.is_empty()),
            error_uri,
            error_subcode: p.get("error_subcode").or_else(|| p.get("suberror")),
            aadsts,
            trace_id: p.get("trace_id").or(d.trace_id.map(clip)),
            correlation_id: p.get("correlation_id").or(d.correlation_id.map(clip)),
            timestamp: p.get("timestamp").or(d.timestamp.map(clip)),
            admin_consent,
            state,
        });
    }
    if let Some(code) = p.raw("code") {
        if code.is_empty() {
            return Redirect::Malformed {
                reason: "empty code".to_string(),
            };
        }
        if code.len() > MAX_CODE_BYTES {
            return Redirect::Malformed {
                reason: "code too long".to_string(),
            };
        }
        return Redirect::Code {
            code: AuthCode::new(code),
            state,
        };
    }
    if p.raw("admin_consent").is_some() {
        return Redirect::Consent {
            admin_consent,
            tenant: p.get("tenant"),
            scope: p.get("scope"),
            state,
        };
    }
    Redirect::Malformed {
        reason: "state without code, error or admin_consent".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

/// The authorization-code redemption (`POST {login}/{tenant}/oauth2/v2.0/token`, form body).
pub fn token_request(
    endpoints: &Endpoints,
    tenant: &Tenant,
    client_id: &str,
    code: &AuthCode,
    redirect_uri: &str,
    verifier: &CodeVerifier,
    scopes: &[String],
) -> HttpRequest {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        endpoints.login,
        encode_component(tenant.as_str())
    );
    let scope = scopes.join(" ");
    HttpRequest::new(Method::Post, url)
        .header("Accept", "application/json")
        .form(&[
            ("client_id", client_id),
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose()),
            ("scope", &scope),
        ])
}

/// Tokens from a successful redemption. Kept in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: AccessToken,
    pub id_token: Option<IdToken>,
    pub expires_in: u64,
    pub scope: String,
}

/// An error answer of the token endpoint: what a user pastes into a support ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sign-in failed: {error}")]
pub struct EntraError {
    pub status: u16,
    pub error: String,
    /// The description without its trace/correlation/timestamp lines.
    pub description: String,
    pub aadsts: Option<u32>,
    pub error_codes: Vec<u32>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
    pub error_uri: Option<String>,
}

impl EntraError {
    pub fn kind(&self) -> EntraErrorKind {
        classify(
            &self.error,
            self.aadsts,
            None,
            &self.description,
            Some(self.status),
        )
    }

    fn invalid_response(status: u16, what: &str) -> EntraError {
        EntraError {
            status,
            error: "invalid_response".to_string(),
            description: format!("the token endpoint answered HTTP {status} with {what}"),
            aadsts: None,
            error_codes: Vec::new(),
            trace_id: None,
            correlation_id: None,
            timestamp: None,
            error_uri: None,
        }
    }

    /// Reads an Entra error body (`error`, `error_description`, `error_codes`, `trace_id`, …).
    /// `None` when the value is not one.
    pub fn from_json(status: u16, v: &serde_json::Value) -> Option<EntraError> {
        let error = v.get("error")?.as_str()?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty())
                .map(|x| clip(x.to_string()))
        };
        let raw_desc = v
            .get("error_description")
            .and_then(|x| x.as_str())
            .unwrap_or("");
        let d = split_description(raw_desc);
        let error_codes: Vec<u32> = v
            .get("error_codes")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .take(32)
                    .collect()
            })
            .unwrap_or_default();
        Some(EntraError {
            status,
            error: clip(
                if error.is_empty() {
                    "unknown_error"
                } else {
                    error
                }
                .to_string(),
            ),
            description: clip(d.message),
            aadsts: aadsts_code(raw_desc).or(error_codes.first().copied()),
            error_codes,
            trace_id: s("trace_id").or(d.trace_id.map(clip)),
            correlation_id: s("correlation_id").or(d.correlation_id.map(clip)),
            timestamp: s("timestamp").or(d.timestamp.map(clip)),
            error_uri: s("error_uri"),
        })
    }
}

/// Reads the token endpoint's answer. Never puts the raw body into an error.
// A large `Err` is fine here: one call per sign-in, and the web layer and driver are written
// against `Result<TokenSet, EntraError>`.
#[allow(clippy::result_large_err)]
pub fn parse_token_response(resp: &HttpResponse) -> Result<TokenSet, EntraError> {
    let v: serde_json::Value = match serde_json::from_str(&resp.body) {
        Ok(v) => v,
        Err(_) => {
            return Err(EntraError::invalid_response(
                resp.status,
                "a body that is not JSON",
            ))
        }
    };
    if let Some(e) = EntraError::from_json(resp.status, &v) {
        return Err(e);
    }
    let access = v
        .get("access_token")
        .and_then(|x| x.as_str())
        .filter(|t| !t.is_empty() && (200..300).contains(&resp.status));
    let Some(access) = access else {
        return Err(EntraError::invalid_response(resp.status, "no access token"));
    };
    // v2.0 sends a number; v1.0 sent a string.
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    Ok(TokenSet {
        access_token: AccessToken::new(access),
        id_token: v
            .get("id_token")
            .and_then(|x| x.as_str())
            .filter(|t| !t.is_empty())
            .map(IdToken::new),
        expires_in,
        scope: v
            .get("scope")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// ID token

/// The id token claims the page uses (id-token-claims-reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    pub tid: String,
    pub oid: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub nonce: Option<String>,
    pub aud: String,
    pub iss: String,
    pub exp: i64,
}

/// Why an id token (or any JWT's claims) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("id token lacks claim {0}")]
    MissingClaim(&'static str),
    #[error("id token nonce does not match")]
    NonceMismatch,
    #[error("id token is for another application")]
    AudienceMismatch,
    #[error("id token expired")]
    Expired,
    #[error("id token tenant is not a tenant id")]
    TenantNotGuid,
    #[error("signed in to another tenant")]
    TenantMismatch,
}

/// Longest JWT accepted (Entra tokens are a few KB; group overage keeps them small).
const MAX_JWT_BYTES: usize = 64 * 1024;

/// The payload (claims) of a compact JWS, as JSON. Does not verify the signature.
pub fn decode_jwt_claims(token: &str) -> Result<serde_json::Value, IdTokenError> {
    let token = token.trim();
    if token.len() > MAX_JWT_BYTES {
        return Err(IdTokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("not a jwt"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| IdTokenError::Malformed("bad base64"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed("not json"))?;
    if !v.is_object() {
        return Err(IdTokenError::Malformed("not a claims object"));
    }
    Ok(v)
}

/// Reads the claims of an id token.
///
/// The signature is not verified: the token came straight from the token endpoint over TLS in
/// answer to this page's own request, which OpenID Connect Core 1.0 §3.1.3.7 (item 6) allows in
/// place of signature validation; fetching Entra's signing keys (JWKS) from the browser would
/// add a request and trust nothing more.
pub fn decode_id_token(tok: &IdToken) -> Result<IdClaims, IdTokenError> {
    let v = decode_jwt_claims(tok.expose())?;
    let s = |k: &'static str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let req = |k: &'static str| {
        s(k).filter(|x| !x.is_empty())
            .ok_or(IdTokenError::MissingClaim(k))
    };
    let aud = match v.get("aud") {
        Some(serde_json::Value::String(a)) => a.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .find_map(|x| x.as_str())
            .map(str::to_string)
            .ok_or(IdTokenError::MissingClaim("aud"))?,
        _ => return Err(IdTokenError::MissingClaim("aud")),
    };
    let exp = v
        .get("exp")
        .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
        .ok_or(IdTokenError::MissingClaim("exp"))?;
    Ok(IdClaims {
        tid: req("tid")?,
        oid: req("oid")?,
        preferred_username: s("preferred_username"),
        name: s("name"),
        nonce: s("nonce"),
        aud,
        iss: req("iss")?,
        exp,
    })
}

/// Checks the claims against this sign-in: the nonce sent on /authorize, our client id, expiry
/// (with [`CLOCK_SKEW_SECS`] of slack), and a tenant id that is a GUID.
pub fn check_id_claims(
    c: &IdClaims,
    expected_nonce: &str,
    client_id: &str,
    now_unix: i64,
) -> Result<(), IdTokenError> {
    if expected_nonce.is_empty() || c.nonce.as_deref() != Some(expected_nonce) {
        return Err(IdTokenError::NonceMismatch);
    }
    if !c.aud.eq_ignore_ascii_case(client_id) {
        return Err(IdTokenError::AudienceMismatch);
    }
    if now_unix > c.exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(IdTokenError::Expired);
    }
    if !is_guid(&c.tid) {
        return Err(IdTokenError::TenantNotGuid);
    }
    Ok(())
}

/// When the admin typed a tenant id, the token's `tid` must be that tenant. (A domain cannot be
/// checked here; the organization lookup confirms it.)
pub fn check_tenant(c: &IdClaims, tenant: &Tenant) -> Result<(), IdTokenError> {
    if tenant.is_guid() && !c.tid.eq_ignore_ascii_case(tenant.as_str()) {
        return Err(IdTokenError::TenantMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cloud::Cloud;

    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CID: &str = "8ed4fad3-3f63-44fb-b7e0-e324895d7df9";

    /// Found by `prop_redirect_error_round_trip`: trailer lines with no value were kept as the
    /// message ("Trace ID:" shown as what went wrong).
    #[test]
    fn empty_trailer_lines_are_not_the_message() {
        let d = split_description(
            "\r\nTrace ID: \r\nCorrelation ID:\r\nTimestamp: 2026-06-01 10:00:00Z",
        );
        assert_eq!(d.message, "");
        assert_eq!(d.trace_id, None);
        assert_eq!(d.correlation_id, None);
        assert_eq!(d.timestamp.as_deref(), Some("2026-06-01 10:00:00Z"));
        let d = split_description("AADSTS65004: declined.\nTrace ID: abc\nTrace ID: def");
        assert_eq!(d.message, "AADSTS65004: declined.");
        assert_eq!(d.trace_id.as_deref(), Some("abc"));
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // Appendix B's octets give that verifier.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let (v, c) = new_pkce(&octets);
        assert_eq!(v.expose(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn pkce_verifier_shape() {
        for seed in 0..=255u8 {
            let (v, c) = new_pkce(&[seed; 32]);
            let v = v.expose();
            assert_eq!(v.len(), 43);
            assert!(v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
            assert_eq!(c.len(), 43);
        }
        assert_eq!(random_token(&[0xff; 16]), "_____________________w");
    }

    #[test]
    fn state_check() {
        assert_eq!(check_state(Some("a"), Some("a")), StateCheck::Match);
        assert_eq!(check_state(Some("a"), None), StateCheck::Missing);
        assert_eq!(check_state(None, None), StateCheck::Missing);
        assert_eq!(check_state(Some("a"), Some("b")), StateCheck::Unknown);
        assert_eq!(check_state(None, Some("b")), StateCheck::Unknown);
        assert_eq!(check_state(Some(""), Some("")), StateCheck::Unknown);
    }

    #[test]
    fn tenants() {
        let ok = |s: &str| parse_tenant(s).map(|t| t.as_str().to_string());
        assert_eq!(
            ok("  72F988BF-86F1-41AF-91AB-2D7CD011DB47 "),
            Ok(TID.to_string())
        );
        assert_eq!(
            ok("Contoso.OnMicrosoft.com"),
            Ok("contoso.onmicrosoft.com".into())
        );
        assert_eq!(
            ok("a-b.example.xn--p1ai"),
            Ok("a-b.example.xn--p1ai".into())
        );
        assert!(parse_tenant(TID).is_ok_and(|t| t.is_guid()));
        assert_eq!(parse_tenant(""), Err(TenantError::Empty));
        assert_eq!(parse_tenant("  "), Err(TenantError::Empty));
        let e = parse_tenant("Common");
        assert_eq!(e, Err(TenantError::MultiTenant("common".into())));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("use your tenant id or domain, not common".to_string())
        );
        assert!(matches!(
            parse_tenant("organizations"),
            Err(TenantError::MultiTenant(_))
        ));
        assert!(matches!(
            parse_tenant("consumers"),
            Err(TenantError::MultiTenant(_))
        ));
        assert_eq!(
            parse_tenant("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2"),
            Err(TenantError::Url {
                suggestion: Some("contoso.onmicrosoft.com".into())
            })
        );
        assert_eq!(
            parse_tenant("https://portal.azure.com/"),
            Err(TenantError::Url { suggestion: None })
        );
        assert_eq!(
            parse_tenant("portal.azure.com/#view"),
            Err(TenantError::Url { suggestion: None })
        );
        assert_eq!(
            parse_tenant("contoso.onmicrosoft.com/"),
            Err(TenantError::Url {
                suggestion: Some("contoso.onmicrosoft.com".into())
            })
        );
        assert_eq!(
            parse_tenant(&format!("https://login.microsoftonline.us/{TID}/v2.0")),
            Err(TenantError::Url {
                suggestion: Some(TID.into())
            })
        );
        assert_eq!(
            parse_tenant("admin@contoso.onmicrosoft.com"),
            Err(TenantError::Email {
                suggestion: Some("contoso.onmicrosoft.com".into())
            })
        );
        assert_eq!(
            parse_tenant("a@b"),
            Err(TenantError::Email { suggestion: None })
        );
        assert_eq!(
            parse_tenant("57uia43-d107-17a2-a2g2-aa53c10tdahc"),
            Err(TenantError::BadGuid)
        );
        for bad in [
            "contoso", "-a.com", "a-.com", "a..com", "a.c", "a.c0m", ".com", "a.com..",
        ] {
            assert_eq!(parse_tenant(bad), Err(TenantError::Invalid), "{bad}");
        }
        // Said specifically (hostile-input table, issue 7).
        for bad in ["con toso.com", "<b>x</b>.com", "a.com\"><svg onload=x>"] {
            assert_eq!(parse_tenant(bad), Err(TenantError::BadCharacters), "{bad}");
        }
        assert_eq!(parse_tenant("bücher.example"), Err(TenantError::Unicode));
        for hidden in [
            "con\u{200B}toso.onmicrosoft.com",
            "\u{FEFF}contoso.com",
            "a.com\u{202E}",
        ] {
            assert_eq!(
                parse_tenant(hidden),
                Err(TenantError::Invisible),
                "{hidden:?}"
            );
        }
        assert_eq!(
            parse_tenant("9188040D-6C67-4C5B-B112-36A304B66DAD"),
            Err(TenantError::MultiTenant("consumers".into()))
        );
        assert_eq!(parse_tenant("é.com"), Err(TenantError::Unicode));
        assert_eq!(
            parse_tenant("Contoso.OnMicrosoft.com."),
            Err(TenantError::TrailingDot {
                suggestion: "contoso.onmicrosoft.com".into()
            })
        );
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert_eq!(parse_tenant(&long), Err(TenantError::TooLong));
        assert_eq!(
            parse_tenant(&format!("{}.com", "a".repeat(64))),
            Err(TenantError::TooLong)
        );
        assert!(TenantError::TooLong.advice().contains("253"));
        assert!(TenantError::Unicode.advice().contains("xn--"));
        for e in [
            TenantError::Empty,
            TenantError::MultiTenant("common".into()),
            TenantError::Url { suggestion: None },
            TenantError::Email {
                suggestion: Some("x.com".into()),
            },
            TenantError::BadGuid,
            TenantError::TooLong,
            TenantError::TrailingDot {
                suggestion: "x.com".into(),
            },
            TenantError::Unicode,
            TenantError::BadCharacters,
            TenantError::Invisible,
            TenantError::Invalid,
        ] {
            assert!(e.advice().len() > 20);
        }
    }

    #[test]
    fn mfa_and_conditional_access_are_said_as_such() {
        let kind = |q: &str| match parse_redirect(q, "") {
            Redirect::Error(e) => e.kind(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            kind("error=interaction_required&error_description=AADSTS50076%3A+MFA&state=s"),
            RedirectErrorKind::MfaRequired
        );
        assert_eq!(
            kind("error=interaction_required&state=s"),
            RedirectErrorKind::MfaRequired
        );
        assert_eq!(
            kind("error=access_denied&error_description=AADSTS53003%3A+blocked&state=s"),
            RedirectErrorKind::ConditionalAccess
        );
        assert!(RedirectErrorKind::MfaRequired
            .advice()
            .contains("Sign in again"));
        assert!(RedirectErrorKind::ConditionalAccess
            .advice()
            .contains("Conditional Access"));
    }

    #[test]
    fn authorize_url() {
        let ep = Endpoints::for_cloud(Cloud::Global);
        let t = Tenant::new_unchecked("contoso.onmicrosoft.com");
        let scopes = signin_scopes(&ep);
        assert_eq!(scopes.len(), 6);
        assert!(!scopes.iter().any(|s| s.contains("offline_access")));
        let req = AuthorizeRequest {
            endpoints: &ep,
            tenant: &t,
            client_id: CID,
            redirect_uri: "http://localhost:8080/m365/",
            scopes: &scopes,
            state: "st",
            nonce: "n&1",
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            response_mode: ResponseMode::Fragment,
            login_hint: Some("admin@contoso.com"),
            prompt: Some("select_account"),
        };
        assert_eq!(
            req.url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?\
             client_id=8ed4fad3-3f63-44fb-b7e0-e324895d7df9&response_type=code\
             &redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fm365%2F&response_mode=fragment\
             &scope=openid%20profile%20https%3A%2F%2Fgraph.microsoft.com%2FUser.Read\
             %20https%3A%2F%2Fgraph.microsoft.com%2FApplication.ReadWrite.All\
             %20https%3A%2F%2Fgraph.microsoft.com%2FAppRoleAssignment.ReadWrite.All\
             %20https%3A%2F%2Fgraph.microsoft.com%2FDelegatedPermissionGrant.ReadWrite.All\
             &state=st&nonce=n%261&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&login_hint=admin%40contoso.com&prompt=select_account"
        );
    }

    #[test]
    fn consent_urls() {
        let ep = Endpoints::for_cloud(Cloud::Global);
        let t = Tenant::new_unchecked("57uia43-d107-17a2-a2g2-aa53c10tdahc");
        let redirect = "https://www.baculasystems.com/m365-plugin-auth/standalone";
        assert_eq!(
            admin_consent_url(&ep, &t, CID, redirect, "12345", ConsentForm::V1),
            "https://login.microsoftonline.com/57uia43-d107-17a2-a2g2-aa53c10tdahc/adminconsent?\
             client_id=8ed4fad3-3f63-44fb-b7e0-e324895d7df9&state=12345\
             &redirect_uri=https://www.baculasystems.com/m365-plugin-auth/standalone"
        );
        let t = Tenant::new_unchecked(TID);
        for (cloud, login, res) in [
            (
                Cloud::Global,
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            (
                Cloud::UsGov,
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                Cloud::UsGovDod,
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            (
                Cloud::China,
                "https://login.partner.microsoftonline.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ] {
            let ep = Endpoints::for_cloud(cloud);
            assert_eq!(
                admin_consent_url(
                    &ep,
                    &t,
                    CID,
                    "http://localhost/?a=b&c",
                    "s t",
                    ConsentForm::V2
                ),
                format!(
                    "{login}/{TID}/v2.0/adminconsent?client_id={CID}&scope={res}/.default\
                     &redirect_uri=http://localhost/%3Fa%3Db%26c&state=s%20t"
                )
            );
            assert!(admin_consent_url(&ep, &t, CID, "r", "s", ConsentForm::V1)
                .starts_with(&format!("{login}/{TID}/adminconsent?")));
        }
    }

    #[test]
    fn redirect_success_and_consent() {
        assert_eq!(parse_redirect("", ""), Redirect::None);
        assert_eq!(parse_redirect("foo=bar", ""), Redirect::None);
        assert_eq!(
            parse_redirect("?code=abc%2B1&state=xyz", ""),
            Redirect::Code {
                code: AuthCode::new("abc+1"),
                state: Some("xyz".into())
            }
        );
        assert_eq!(
            parse_redirect("", "#code=abc&state=xyz&session_state=q"),
            Redirect::Code {
                code: AuthCode::new("abc"),
                state: Some("xyz".into())
            }
        );
        assert_eq!(
            parse_redirect(
                &format!("admin_consent=True&tenant={TID}&state=12345&scope=https%3a%2f%2fgraph.microsoft.com%2f.default"),
                ""
            ),
            Redirect::Consent {
                admin_consent: true,
                tenant: Some(TID.into()),
                scope: Some("https://graph.microsoft.com/.default".into()),
                state: Some("12345".into())
            }
        );
        assert!(matches!(
            parse_redirect("admin_consent=False", ""),
            Redirect::Consent {
                admin_consent: false,
                ..
            }
        ));
    }

    #[test]
    fn redirect_malformed() {
        assert_eq!(
            parse_redirect("code=a&code=b", ""),
            Redirect::Malformed {
                reason: "parameter code appears twice".into()
            }
        );
        assert!(matches!(
            parse_redirect("code=a", "code=b"),
            Redirect::Malformed { .. }
        ));
        assert!(matches!(
            parse_redirect("state=a", ""),
            Redirect::Malformed { .. }
        ));
        assert!(matches!(
            parse_redirect("code=&state=a", ""),
            Redirect::Malformed { .. }
        ));
        assert!(matches!(
            parse_redirect("error=x&error_description=a&error_description=b", ""),
            Redirect::Malformed { .. }
        ));
        // Unrelated parameters may repeat.
        assert!(matches!(
            parse_redirect("x=1&x=2&code=c", ""),
            Redirect::Code { .. }
        ));
    }

    /// I114009: a real cancel of admin consent.
    #[test]
    fn redirect_cancel_real() {
        let q = "error=access_denied&error_description=AADSTS65004%3a+User+declined+to+consent+to+access+the+app.%0d%0aTrace+ID%3a+0b1c4b4e-1d1a-4b6e-8f8b-2c9d5b0d1a00%0d%0aCorrelation+ID%3a+5a7f1c2e-9c3b-4d8e-a1f2-3b4c5d6e7f80%0d%0aTimestamp%3a+2023-05-30+08%3a15%3a03Z&error_uri=https%3a%2f%2flogin.microsoftonline.com%2ferror%3fcode%3d65004&admin_consent=True&state=12345";
        let Redirect::Error(e) = parse_redirect(q, "") else {
            panic!("not an error")
        };
        assert_eq!(e.error, "access_denied");
        assert_eq!(e.aadsts, Some(65004));
        assert_eq!(
            e.description.as_deref(),
            Some("AADSTS65004: User declined to consent to access the app.")
        );
        assert_eq!(
            e.trace_id.as_deref(),
            Some("0b1c4b4e-1d1a-4b6e-8f8b-2c9d5b0d1a00")
        );
        assert_eq!(
            e.correlation_id.as_deref(),
            Some("5a7f1c2e-9c3b-4d8e-a1f2-3b4c5d6e7f80")
        );
        assert_eq!(e.timestamp.as_deref(), Some("2023-05-30 08:15:03Z"));
        assert_eq!(
            e.error_uri.as_deref(),
            Some("https://login.microsoftonline.com/error?code=65004")
        );
        assert!(e.admin_consent);
        assert_eq!(e.state.as_deref(), Some("12345"));
        assert_eq!(e.kind(), RedirectErrorKind::Cancelled);
    }

    #[test]
    fn redirect_error_kinds() {
        let kind = |q: &str| match parse_redirect(q, "") {
            Redirect::Error(e) => e.kind(),
            other => panic!("{other:?}"),
        };
        use RedirectErrorKind as K;
        assert_eq!(
            kind("error=access_denied&error_subcode=cancel"),
            K::Cancelled
        );
        assert_eq!(
            kind("error=access_denied&error_description=AADSTS50020:+x"),
            K::OtherTenant
        );
        assert_eq!(
            kind("error=invalid_request&error_description=AADSTS50011:+x"),
            K::RedirectNotRegistered
        );
        assert_eq!(
            kind("error=unauthorized_client&error_description=AADSTS700016:+x"),
            K::AppNotFound
        );
        assert_eq!(
            kind("error=invalid_request&error_description=AADSTS90002:+x"),
            K::TenantNotFound
        );
        assert_eq!(
            kind("error=access_denied&error_description=AADSTS90094:+x"),
            K::NotAdmin
        );
        assert_eq!(
            kind("error=invalid_request&error_description=AADSTS900439:+x"),
            K::WrongCloud
        );
        assert_eq!(kind("error=temporarily_unavailable"), K::Transient);
        assert_eq!(kind("error=access_denied"), K::Other);
        // Code from error_uri when the description has none.
        assert_eq!(
            kind("error=access_denied&error_uri=https%3a%2f%2flogin.microsoftonline.com%2ferror%3fcode%3d65004"),
            K::Cancelled
        );
        assert_eq!(kind("error=&x=1"), K::Other);
        for k in [
            K::Cancelled,
            K::NotAdmin,
            K::OtherTenant,
            K::RedirectNotRegistered,
            K::AppNotFound,
            K::TenantNotFound,
            K::WrongCloud,
            K::SpaRedirectRequired,
            K::InvalidGrant,
            K::PkceMismatch,
            K::Transient,
            K::Other,
        ] {
            assert!(!k.advice().is_empty());
        }
        assert!(K::SpaRedirectRequired
            .advice_for(CID, "http://localhost/")
            .contains("http://localhost/"));
    }

    #[test]
    fn redirect_hostile_input() {
        let long = "A".repeat(20_000);
        let q = format!("error=x&error_description={long}&state={long}");
        let Redirect::Error(e) = parse_redirect(&q, "") else {
            panic!()
        };
        assert!(e
            .description
            .as_ref()
            .is_some_and(|d| d.len() <= MAX_VALUE_BYTES + 3));
        assert!(e
            .state
            .as_ref()
            .is_some_and(|d| d.len() <= MAX_VALUE_BYTES + 3));
        // Broken percent-encoding and invalid UTF-8 are decoded lossily.
        let Redirect::Error(e) = parse_redirect("error=a%&error_description=%ff%fe%e6%97", "")
        else {
            panic!()
        };
        assert_eq!(e.error, "a%");
        assert!(e.description.is_some_and(|d| d.contains('\u{FFFD}')));
        // Multi-byte text cut on a character boundary.
        let q = format!("error=x&error_description={}", "%C3%A9".repeat(5000));
        let Redirect::Error(e) = parse_redirect(&q, "") else {
            panic!()
        };
        assert!(e.description.is_some_and(|d| d.ends_with('…')));
        let huge_code = format!("code={}", "c".repeat(MAX_CODE_BYTES + 1));
        assert!(matches!(
            parse_redirect(&huge_code, ""),
            Redirect::Malformed { .. }
        ));
        // Odd shapes never panic.
        for q in [
            "&&&",
            "=",
            "==&=",
            "code",
            "error",
            "%",
            "admin_consent",
            "state=%zz",
        ] {
            let _ = parse_redirect(q, q);
            let _ = parse_redirect(q, "");
        }
        assert_eq!(aadsts_code("AADSTS99999999999999"), Some(999_999_999));
        assert_eq!(aadsts_code("AADSTS"), None);
    }

    #[test]
    fn token_request_shape() {
        let ep =
            Endpoints::for_cloud(Cloud::Global).with_overrides(Some("http://127.0.0.1:8400"), None);
        let t = Tenant::new_unchecked(TID);
        let scopes = signin_scopes(&ep);
        let r = token_request(
            &ep,
            &t,
            CID,
            &AuthCode::new("c&1"),
            "http://localhost/",
            &CodeVerifier::new("v"),
            &scopes,
        );
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            r.url,
            format!("http://127.0.0.1:8400/{TID}/oauth2/v2.0/token")
        );
        assert_eq!(
            r.get_header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let body = crate::engine::http::form_decode(r.body.as_deref().unwrap_or(""));
        let get = |k: &str| body.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("authorization_code"));
        assert_eq!(get("code"), Some("c&1"));
        assert_eq!(get("code_verifier"), Some("v"));
        assert_eq!(get("redirect_uri"), Some("http://localhost/"));
        assert_eq!(get("client_id"), Some(CID));
        assert_eq!(get("scope"), Some(scopes.join(" ").as_str()));
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }

    #[test]
    fn token_response_ok() {
        let r = resp(
            200,
            r#"{"token_type":"Bearer","scope":"User.Read","expires_in":3599,"ext_expires_in":3599,"access_token":"AT","id_token":"a.b.c"}"#,
        );
        let t = parse_token_response(&r);
        assert_eq!(
            t,
            Ok(TokenSet {
                access_token: AccessToken::new("AT"),
                id_token: Some(IdToken::new("a.b.c")),
                expires_in: 3599,
                scope: "User.Read".into()
            })
        );
        let r = resp(200, r#"{"access_token":"AT","expires_in":"3600"}"#);
        assert!(
            parse_token_response(&r).is_ok_and(|t| t.expires_in == 3600 && t.id_token.is_none())
        );
    }

    /// I299: the real SPA error.
    #[test]
    fn token_response_errors() {
        let body = r#"{"error":"invalid_request","error_description":"AADSTS9002326: Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type.\r\nTrace ID: 8d0b3e0b-9a4e-4b1f-8f0e-1c2d3e4f5a00\r\nCorrelation ID: 1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809\r\nTimestamp: 2022-03-01 10:00:00Z","error_codes":[9002326],"timestamp":"2022-03-01 10:00:00Z","trace_id":"8d0b3e0b-9a4e-4b1f-8f0e-1c2d3e4f5a00","correlation_id":"1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809","error_uri":"https://login.windows.net/error?code=9002326"}"#;
        let Err(e) = parse_token_response(&resp(400, body)) else {
            panic!()
        };
        assert_eq!(e.status, 400);
        assert_eq!(e.error, "invalid_request");
        assert_eq!(e.aadsts, Some(9002326));
        assert_eq!(e.error_codes, vec![9002326]);
        assert!(e.description.starts_with("AADSTS9002326: Cross-origin"));
        assert!(!e.description.contains("Trace ID"));
        assert_eq!(
            e.trace_id.as_deref(),
            Some("8d0b3e0b-9a4e-4b1f-8f0e-1c2d3e4f5a00")
        );
        assert_eq!(e.timestamp.as_deref(), Some("2022-03-01 10:00:00Z"));
        assert_eq!(e.kind(), RedirectErrorKind::SpaRedirectRequired);
        assert_eq!(e.to_string(), "sign-in failed: invalid_request");

        let err = |status: u16, body: &str| parse_token_response(&resp(status, body)).err();
        let k = |status: u16, body: &str| err(status, body).map(|e| e.kind());
        use RedirectErrorKind as K;
        assert_eq!(
            k(
                400,
                r#"{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed"}"#
            ),
            Some(K::InvalidGrant)
        );
        assert_eq!(
            k(
                400,
                r#"{"error":"invalid_grant","error_description":"AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request."}"#
            ),
            Some(K::PkceMismatch)
        );
        assert_eq!(
            k(400, r#"{"error":"invalid_grant","error_codes":[70008]}"#),
            Some(K::InvalidGrant)
        );
        assert_eq!(
            k(503, r#"{"error":"temporarily_unavailable"}"#),
            Some(K::Transient)
        );
        assert_eq!(k(500, r#"{"error":"unknown"}"#), Some(K::Transient));
        // Not JSON: never the raw body.
        let e = err(502, "<html>SECRET proxy page</html>");
        assert!(e.as_ref().is_some_and(|e| e.error == "invalid_response"
            && !e.description.contains("SECRET")
            && e.kind() == K::Transient));
        let e = err(200, "{}");
        assert!(e.is_some_and(|e| e.error == "invalid_response"));
        let e = err(400, r#"{"foo":"bar"}"#);
        assert!(e.is_some_and(|e| e.error == "invalid_response" && e.kind() == K::Other));
        let e = err(400, r#"{"access_token":"x"}"#);
        assert!(e.is_some_and(|e| e.error == "invalid_response"));
    }

    fn jwt(claims: &serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn id_token() {
        let claims = serde_json::json!({
            "aud": CID, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
            "iat": 1_700_000_000, "exp": 1_700_003_600, "tid": TID,
            "oid": "00000000-0000-0000-0000-0000000000aa", "nonce": "N",
            "preferred_username": "admin@contoso.onmicrosoft.com", "name": "Admin"
        });
        let tok = IdToken::new(jwt(&claims));
        let c = decode_id_token(&tok);
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.tid, TID);
        assert_eq!(
            c.preferred_username.as_deref(),
            Some("admin@contoso.onmicrosoft.com")
        );
        assert_eq!(check_id_claims(&c, "N", CID, 1_700_000_100), Ok(()));
        assert_eq!(
            check_id_claims(&c, "M", CID, 1_700_000_100),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            check_id_claims(&c, "", CID, 1_700_000_100),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            check_id_claims(&c, "N", "other", 1_700_000_100),
            Err(IdTokenError::AudienceMismatch)
        );
        assert_eq!(
            check_id_claims(&c, "N", CID, 1_700_003_600 + CLOCK_SKEW_SECS),
            Ok(())
        );
        assert_eq!(
            check_id_claims(&c, "N", CID, 1_700_003_601 + CLOCK_SKEW_SECS),
            Err(IdTokenError::Expired)
        );
        let mut bad = c.clone();
        bad.tid = "contoso".into();
        assert_eq!(
            check_id_claims(&bad, "N", CID, 0),
            Err(IdTokenError::TenantNotGuid)
        );
        assert_eq!(check_tenant(&c, &Tenant::new_unchecked(TID)), Ok(()));
        assert_eq!(
            check_tenant(&c, &Tenant::new_unchecked("contoso.com")),
            Ok(())
        );
        assert_eq!(
            check_tenant(
                &c,
                &Tenant::new_unchecked("00000000-0000-0000-0000-000000000001")
            ),
            Err(IdTokenError::TenantMismatch)
        );
        let mut no_tid = claims.clone();
        no_tid["tid"] = serde_json::Value::Null;
        assert_eq!(
            decode_id_token(&IdToken::new(jwt(&no_tid))),
            Err(IdTokenError::MissingClaim("tid"))
        );
        let v = decode_jwt_claims(&jwt(
            &serde_json::json!({"scp": "User.Read Application.ReadWrite.All"}),
        ));
        assert!(v.is_ok_and(|v| v["scp"] == "User.Read Application.ReadWrite.All"));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            "a.bm90IGpzb24.c",
            "a.WzFd.c",
        ] {
            assert!(decode_jwt_claims(bad).is_err(), "{bad}");
        }
    }
}
