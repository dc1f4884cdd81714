//! Error enums of the engine and `Error::kind()`, the only thing the UI branches on; no I/O, no
//! web or emulator imports. Errors keep what a user pastes into a support ticket (step, status,
//! Graph code, request ids, date) and never a raw response body, a token or a secret.

use crate::engine::auth::{EntraError, EntraErrorKind};
use crate::engine::http::HttpResponse;

/// A Microsoft Graph error answer, parsed from its ODataError body
/// (`{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`,
/// https://learn.microsoft.com/graph/errors) and the response headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: graph answered {status} {code}")]
pub struct GraphError {
    /// The plan step that made the call (`data-testid="step-<step>"`).
    pub step: String,
    pub status: u16,
    /// Graph's `error.code` (`Request_ResourceNotFound`, `Authorization_RequestDenied`, …);
    /// `unknown` when the body had none.
    pub code: String,
    /// Graph's `error.message`, cut to 500 characters.
    pub message: String,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
}

impl GraphError {
    /// From a status, headers and a body already parsed as JSON (a `$batch` sub-response body is
    /// JSON, a plain response body is parsed by [`GraphError::from_response`]). Never panics.
    pub fn from_parts(
        step: &str,
        status: u16,
        headers: &[(String, String)],
        body: &serde_json::Value,
    ) -> GraphError {
        let err = body.get("error");
        let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
        let inner = err.and_then(|e| e.get("innerError").or_else(|| e.get("innererror")));
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let code = s(err.and_then(|e| e.get("code")))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let message: String = s(err.and_then(|e| e.get("message")))
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        GraphError {
            step: step.to_string(),
            status,
            code,
            message,
            request_id: s(inner.and_then(|i| i.get("request-id"))).or_else(|| header("request-id")),
            client_request_id: s(inner.and_then(|i| i.get("client-request-id")))
                .or_else(|| header("client-request-id")),
            date: s(inner.and_then(|i| i.get("date"))).or_else(|| header("date")),
        }
    }

    pub fn from_response(step: &str, resp: &HttpResponse) -> GraphError {
        let body = serde_json::from_str(&resp.body).unwrap_or(serde_json::Value::Null);
        GraphError::from_parts(step, resp.status, &resp.headers, &body)
    }
}

/// Which Entra role the signed-in user lacks, as far as the failing step tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdminRole {
    /// Creating apps, service principals, credentials, owners: Application Administrator or
    /// Cloud Application Administrator (or Global Administrator).
    ApplicationAdministrator,
    /// Granting Microsoft Graph application permissions (app role assignments) and tenant-wide
    /// delegated grants: Privileged Role Administrator or Global Administrator
    /// (https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto).
    PrivilegedRoleAdministrator,
}

impl AdminRole {
    /// The role names to show, in Microsoft's words.
    pub fn names(self) -> &'static str {
        match self {
            AdminRole::ApplicationAdministrator => {
                "Application Administrator, Cloud Application Administrator or Global Administrator"
            }
            AdminRole::PrivilegedRoleAdministrator => {
                "Privileged Role Administrator or Global Administrator"
            }
        }
    }
}

/// What the UI should advise; chosen from the error's data, never from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// Try again later (throttling, outage, network).
    Transient,
    /// The token expired or was refused: sign in again.
    SignInAgain,
    /// The signed-in user lacks a role.
    NeedsAdmin { missing_role: AdminRole },
    /// Something the admin typed or chose cannot work (tenant, services, lifetime …).
    InvalidInput,
    /// The registrator app is not (or no longer) authorized in the tenant: run step B-1 again.
    RegistratorMissing,
    /// A tenant policy refused the request (credential lifetime …): choose a shorter value.
    PolicyLimit,
    /// A defect of this tool or an answer it does not understand: report it.
    Bug,
}

/// Every failure of the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(Box<GraphError>),
    #[error(transparent)]
    Entra(Box<EntraError>),
    #[error("{step}: network error: {detail}")]
    Transport { step: String, detail: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the tenant does not offer these permissions: {}", .0.join(", "))]
    MissingPermissionsInTenant(Vec<String>),
    #[error("the registrator app is not authorized in this tenant")]
    RegistratorMissing,
    #[error("not signed in")]
    NotSignedIn,
    /// A tenant policy refused the call (e.g. `CredentialInvalidLifetimeAsPerAppPolicy`).
    #[error("{}: refused by a tenant policy ({})", .0.step, .0.code)]
    Policy(Box<GraphError>),
    #[error("internal error: {0}")]
    Bug(String),
}

impl Error {
    /// The advice class. Never derived from message text.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Graph(g) => graph_kind(g),
            Error::Entra(e) => entra_kind(e),
            Error::Transport { .. } => ErrorKind::Transient,
            Error::InvalidInput(_) | Error::MissingPermissionsInTenant(_) => {
                ErrorKind::InvalidInput
            }
            Error::RegistratorMissing => ErrorKind::RegistratorMissing,
            Error::NotSignedIn => ErrorKind::SignInAgain,
            Error::Policy(_) => ErrorKind::PolicyLimit,
            Error::Bug(_) => ErrorKind::Bug,
        }
    }

    /// The step the error happened in, when it happened in one.
    pub fn step(&self) -> Option<&str> {
        match self {
            Error::Graph(g) | Error::Policy(g) => Some(&g.step),
            Error::Transport { step, .. } => Some(step),
            _ => None,
        }
    }

    /// Lines for a support ticket: step, status, Graph code, message, request ids, date.
    /// Never a token, a secret or a raw body.
    pub fn diagnostics(&self) -> String {
        let mut lines = vec![format!("error: {self}")];
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                lines.push(format!("{k}: {v}"));
            }
        };
        match self {
            Error::Graph(g) | Error::Policy(g) => {
                push("step", &Some(g.step.clone()));
                push("status", &Some(g.status.to_string()));
                push("code", &Some(g.code.clone()));
                push(
                    "message",
                    &Some(g.message.clone()).filter(|m| !m.is_empty()),
                );
                push("request-id", &g.request_id);
                push("client-request-id", &g.client_request_id);
                push("date", &g.date);
            }
            Error::Entra(e) => {
                push("status", &Some(e.status.to_string()));
                push("error", &Some(e.error.clone()));
                push("aadsts", &e.aadsts.map(|n| format!("AADSTS{n}")));
                push(
                    "description",
                    &Some(e.description.clone()).filter(|d| !d.is_empty()),
                );
                push("trace-id", &e.trace_id);
                push("correlation-id", &e.correlation_id);
                push("timestamp", &e.timestamp);
            }
            Error::Transport { step, detail } => {
                push("step", &Some(step.clone()));
                push("detail", &Some(detail.clone()));
            }
            _ => {}
        }
        lines.join("\n")
    }
}

fn entra_kind(e: &EntraError) -> ErrorKind {
    match e.kind() {
        EntraErrorKind::Transient => ErrorKind::Transient,
        EntraErrorKind::AppNotFound => ErrorKind::RegistratorMissing,
        EntraErrorKind::NotAdmin => ErrorKind::NeedsAdmin {
            missing_role: AdminRole::PrivilegedRoleAdministrator,
        },
        EntraErrorKind::TenantNotFound
        | EntraErrorKind::WrongCloud
        | EntraErrorKind::RedirectNotRegistered
        | EntraErrorKind::SpaRedirectRequired => ErrorKind::InvalidInput,
        EntraErrorKind::Cancelled
        | EntraErrorKind::OtherTenant
        | EntraErrorKind::InvalidGrant
        | EntraErrorKind::PkceMismatch
        | EntraErrorKind::MfaRequired
        | EntraErrorKind::ConditionalAccess
        | EntraErrorKind::Other => ErrorKind::SignInAgain,
    }
}

fn graph_kind(g: &GraphError) -> ErrorKind {
    match g.status {
        401 => ErrorKind::SignInAgain,
        403 => ErrorKind::NeedsAdmin {
            missing_role: role_for_step(&g.step),
        },
        408 | 429 | 500 | 502 | 503 | 504 => ErrorKind::Transient,
        _ if g.code == CODE_LIFETIME_POLICY => ErrorKind::PolicyLimit,
        _ => ErrorKind::Bug,
    }
}

/// Graph code for a credential lifetime beyond the tenant's app management policy
/// (https://learn.microsoft.com/graph/api/resources/applicationauthenticationmethodpolicy).
pub const CODE_LIFETIME_POLICY: &str = "CredentialInvalidLifetimeAsPerAppPolicy";

/// Steps whose 403 means the user cannot grant permissions (as opposed to creating objects).
fn role_for_step(step: &str) -> AdminRole {
    match step {
        "grants" | "repair" => AdminRole::PrivilegedRoleAdministrator,
        _ => AdminRole::ApplicationAdministrator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> serde_json::Value {
        json!({"error": {"code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {"date": "2021-07-02T01:40:19", "request-id": "r-1",
                "client-request-id": "c-1"}}})
    }

    #[test]
    fn parses_odata_error() {
        let g = GraphError::from_parts("grants", 403, &[], &body());
        assert_eq!(g.code, "Authorization_RequestDenied");
        assert_eq!(g.request_id.as_deref(), Some("r-1"));
        assert_eq!(g.client_request_id.as_deref(), Some("c-1"));
        assert_eq!(g.date.as_deref(), Some("2021-07-02T01:40:19"));
        let e = Error::Graph(Box::new(g));
        assert_eq!(
            e.kind(),
            ErrorKind::NeedsAdmin {
                missing_role: AdminRole::PrivilegedRoleAdministrator
            }
        );
        let d = e.diagnostics();
        assert!(
            d.contains("step: grants") && d.contains("request-id: r-1"),
            "{d}"
        );
        assert!(d.contains("code: Authorization_RequestDenied"));
        assert_eq!(
            e.to_string(),
            "grants: graph answered 403 Authorization_RequestDenied"
        );
    }

    #[test]
    fn garbage_body_falls_back_to_headers() {
        let resp = HttpResponse {
            status: 502,
            headers: vec![
                ("request-id".into(), "h-1".into()),
                ("Date".into(), "d".into()),
            ],
            body: "<html>bad gateway</html>".into(),
        };
        let g = GraphError::from_response("app", &resp);
        assert_eq!(g.code, "unknown");
        assert_eq!(g.message, "");
        assert_eq!(g.request_id.as_deref(), Some("h-1"));
        assert_eq!(g.date.as_deref(), Some("d"));
        assert_eq!(Error::Graph(Box::new(g)).kind(), ErrorKind::Transient);
        let odd = GraphError::from_parts("app", 400, &[], &json!({"error": 5}));
        assert_eq!(odd.code, "unknown");
        assert_eq!(Error::Graph(Box::new(odd)).kind(), ErrorKind::Bug);
    }

    #[test]
    fn kinds() {
        let g = |status, code: &str, step: &str| {
            Error::Graph(Box::new(GraphError::from_parts(
                step,
                status,
                &[],
                &json!({"error": {"code": code}}),
            )))
        };
        assert_eq!(
            g(401, "InvalidAuthenticationToken", "app").kind(),
            ErrorKind::SignInAgain
        );
        assert_eq!(
            g(403, "Authorization_RequestDenied", "app").kind(),
            ErrorKind::NeedsAdmin {
                missing_role: AdminRole::ApplicationAdministrator
            }
        );
        assert_eq!(
            g(400, CODE_LIFETIME_POLICY, "secret").kind(),
            ErrorKind::PolicyLimit
        );
        assert_eq!(
            g(429, "TooManyRequests", "app").kind(),
            ErrorKind::Transient
        );
        let p = GraphError::from_parts("secret", 400, &[], &json!({"error": {"code": "x"}}));
        assert_eq!(Error::Policy(Box::new(p)).kind(), ErrorKind::PolicyLimit);
        assert_eq!(
            Error::RegistratorMissing.kind(),
            ErrorKind::RegistratorMissing
        );
        assert_eq!(Error::NotSignedIn.kind(), ErrorKind::SignInAgain);
        assert_eq!(
            Error::Transport {
                step: "app".into(),
                detail: "reset".into()
            }
            .kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            Error::MissingPermissionsInTenant(vec!["X".into()]).kind(),
            ErrorKind::InvalidInput
        );
        let entra = |error: &str, aadsts: Option<u32>| {
            let mut body = json!({"error": error, "error_description": ""});
            if let Some(n) = aadsts {
                body["error_codes"] = json!([n]);
                body["error_description"] = json!(format!("AADSTS{n}: x"));
            }
            Error::Entra(Box::new(EntraError::from_json(400, &body).unwrap()))
        };
        assert_eq!(
            entra("invalid_grant", Some(70008)).kind(),
            ErrorKind::SignInAgain
        );
        assert_eq!(
            entra("unauthorized_client", Some(700016)).kind(),
            ErrorKind::RegistratorMissing
        );
        assert_eq!(
            entra("temporarily_unavailable", None).kind(),
            ErrorKind::Transient
        );
    }

    #[test]
    fn display_is_short_and_lowercase() {
        assert_eq!(Error::NotSignedIn.to_string(), "not signed in");
        assert_eq!(
            Error::MissingPermissionsInTenant(vec!["A".into(), "B".into()]).to_string(),
            "the tenant does not offer these permissions: A, B"
        );
    }
}
