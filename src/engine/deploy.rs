//! The deployment config (`config.json` beside `index.html`): parsing and defaults, pure.
//! Must not import web or emulator code.

use crate::engine::cloud::{Cloud, Endpoints};
use crate::engine::provision::{DEFAULT_APP_NAME, REGISTRATOR_APP_ID};

/// Default folder on the Bacula client for the config and the certificate (product.md).
pub const DEFAULT_CONFIG_DIR: &str = "/opt/bacula/etc/m365/{tenant}";

/// What BWeb (or the vendor page, or the demo) serves as `config.json`. All keys optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    pub client_id: String,
    /// `None`: the page's own URL without query and fragment.
    pub redirect_uri: Option<String>,
    pub cloud: Cloud,
    pub login_host: Option<String>,
    pub graph_host: Option<String>,
    pub app_name: String,
    pub config_dir: String,
    /// Pre-fills the tenant field (the demo sets the emulated tenant's domain).
    pub tenant_hint: Option<String>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            client_id: REGISTRATOR_APP_ID.to_string(),
            redirect_uri: None,
            cloud: Cloud::Global,
            login_host: None,
            graph_host: None,
            app_name: DEFAULT_APP_NAME.to_string(),
            config_dir: DEFAULT_CONFIG_DIR.to_string(),
            tenant_hint: None,
        }
    }
}

/// A `config.json` that cannot be used; the page shows the message and stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error("config.json is not valid json")]
    NotJson,
    #[error("config.json: {key} {problem}")]
    BadValue { key: &'static str, problem: String },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    cloud: Option<String>,
    login_host: Option<String>,
    graph_host: Option<String>,
    app_name: Option<String>,
    config_dir: Option<String>,
    tenant_hint: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn check_origin(key: &'static str, v: &str) -> Result<String, DeployError> {
    let ok = (v.starts_with("https://")
        || v.starts_with("http://127.0.0.1")
        || v.starts_with("http://localhost"))
        && !v.contains(['?', '#', ' ', '"', '\'', '<', '>']);
    if ok {
        Ok(v.trim_end_matches('/').to_string())
    } else {
        Err(DeployError::BadValue {
            key,
            problem: "must be an https:// origin (or http://localhost for tests)".into(),
        })
    }
}

/// Parses `config.json`. Unknown keys are refused so a typo does not silently fall back to a default.
pub fn parse_deploy_config(text: &str) -> Result<DeployConfig, DeployError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            DeployError::BadValue {
                key: "config",
                problem: e.to_string(),
            }
        } else {
            DeployError::NotJson
        }
    })?;
    let mut c = DeployConfig::default();
    if let Some(id) = non_empty(raw.client_id) {
        if !crate::engine::auth::is_guid(&id) {
            return Err(DeployError::BadValue {
                key: "client_id",
                problem: "must be an application (client) id GUID".into(),
            });
        }
        c.client_id = id.to_ascii_lowercase();
    }
    if let Some(r) = non_empty(raw.redirect_uri) {
        if !(r.starts_with("https://")
            || r.starts_with("http://localhost")
            || r.starts_with("http://127.0.0.1"))
            || r.contains('#')
        {
            return Err(DeployError::BadValue {
                key: "redirect_uri",
                problem: "must be https:// (or http://localhost) without a fragment".into(),
            });
        }
        c.redirect_uri = Some(r);
    }
    if let Some(cl) = non_empty(raw.cloud) {
        c.cloud = Cloud::parse(&cl).ok_or(DeployError::BadValue {
            key: "cloud",
            problem: "must be one of global, usgov, usgovdod, china".into(),
        })?;
    }
    if let Some(h) = non_empty(raw.login_host) {
        c.login_host = Some(check_origin("login_host", &h)?);
    }
    if let Some(h) = non_empty(raw.graph_host) {
        c.graph_host = Some(check_origin("graph_host", &h)?);
    }
    if let Some(n) = non_empty(raw.app_name) {
        if let Some(problem) = crate::engine::provision::app_name_problem(&n) {
            return Err(DeployError::BadValue {
                key: "app_name",
                problem: problem.into(),
            });
        }
        c.app_name = n;
    }
    if let Some(d) = non_empty(raw.config_dir) {
        c.config_dir = d;
    }
    c.tenant_hint = non_empty(raw.tenant_hint);
    Ok(c)
}

impl DeployConfig {
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::for_cloud(self.cloud)
            .with_overrides(self.login_host.as_deref(), self.graph_host.as_deref())
    }
    /// The redirect URI: configured, or the page's own URL (`page_url` without query/fragment).
    pub fn redirect_uri_for(&self, page_url: &str) -> String {
        self.redirect_uri
            .clone()
            .unwrap_or_else(|| page_url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse_deploy_config("{}").unwrap();
        assert_eq!(c, DeployConfig::default());
        assert_eq!(c.client_id, "8ed4fad3-3f63-44fb-b7e0-e324895d7df9");
        assert_eq!(c.endpoints().login, "https://login.microsoftonline.com");
        assert_eq!(
            c.redirect_uri_for("https://bweb.example/bweb/m365/"),
            "https://bweb.example/bweb/m365/"
        );
    }

    #[test]
    fn overrides_and_cloud() {
        let c = parse_deploy_config(
            r#"{"cloud":"usgov","login_host":"http://127.0.0.1:8400/","graph_host":"http://127.0.0.1:8400","tenant_hint":"contoso.onmicrosoft.com"}"#,
        )
        .unwrap();
        let e = c.endpoints();
        assert_eq!(e.login, "http://127.0.0.1:8400");
        assert_eq!(e.graph_resource, "https://graph.microsoft.us");
        assert_eq!(c.tenant_hint.as_deref(), Some("contoso.onmicrosoft.com"));
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (text, key) in [
            (r#"{"client_id":"nope"}"#, "client_id"),
            (r#"{"cloud":"mars"}"#, "cloud"),
            (r#"{"login_host":"javascript:alert(1)"}"#, "login_host"),
            (r#"{"redirect_uri":"ftp://x"}"#, "redirect_uri"),
        ] {
            match parse_deploy_config(text) {
                Err(DeployError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(parse_deploy_config("{not json"), Err(DeployError::NotJson));
        assert!(matches!(
            parse_deploy_config(r#"{"clientid":"x"}"#),
            Err(DeployError::BadValue { .. })
        ));
    }
}
