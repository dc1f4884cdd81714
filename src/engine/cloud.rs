//! National clouds: login authority, Graph host and Graph resource URI per cloud; must not import
//! web, emulator or any I/O crate.
//!
//! Hosts from Microsoft's national-cloud pages (learn.microsoft.com/entra/identity-platform/
//! authentication-national-cloud and learn.microsoft.com/graph/deployments). Tokens are not
//! interchangeable between clouds, and scopes (`.default` included) name the cloud's Graph
//! resource, not the host the page happens to call (which differs when the emulator is used).

use std::fmt;

/// A Microsoft cloud instance an Entra tenant lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// Worldwide (also Microsoft 365 GCC).
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// All clouds, in the order the UI lists them.
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China];

    /// Reads a deployment-config value: `global`, `usgov`, `usgovdod`, `china` (trimmed,
    /// case-insensitive).
    pub fn parse(s: &str) -> Option<Cloud> {
        let s = s.trim();
        Cloud::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// The config-file spelling (`global`, `usgov`, `usgovdod`, `china`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
        }
    }

    /// A human name for the page.
    pub fn label(self) -> &'static str {
        match self {
            Cloud::Global => "Global (worldwide)",
            Cloud::UsGov => "US Government (GCC High)",
            Cloud::UsGovDod => "US Government (DoD)",
            Cloud::China => "China (21Vianet)",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// OIDC scopes that are never prefixed with a resource (Entra v2 "OpenID Connect scopes").
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Where to send requests for one cloud, and which resource URI to put in scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub cloud: Cloud,
    /// Authority base, no trailing slash: `https://login.microsoftonline.com`.
    pub login: String,
    /// Graph base URL to call, no trailing slash: `https://graph.microsoft.com`.
    pub graph: String,
    /// Canonical Graph resource URI used in scopes, even when `graph` is overridden.
    pub graph_resource: String,
}

impl Endpoints {
    /// The real endpoints of a cloud.
    pub fn for_cloud(cloud: Cloud) -> Endpoints {
        let (login, graph) = match cloud {
            Cloud::Global => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            Cloud::UsGov => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            Cloud::UsGovDod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            // The Entra national-cloud page names login.partner.microsoftonline.cn; the Graph
            // deployments page names login.chinacloudapi.cn. Both serve the same authority.
            Cloud::China => (
                "https://login.partner.microsoftonline.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        };
        Endpoints {
            cloud,
            login: login.to_string(),
            graph: graph.to_string(),
            graph_resource: graph.to_string(),
        }
    }

    /// Replaces the hosts to call (the emulator: `http://127.0.0.1:8400`). `graph_resource`
    /// stays canonical. Trailing slashes are trimmed; an empty or blank override is ignored (a
    /// deployment config may carry `"login_host": ""`).
    pub fn with_overrides(mut self, login: Option<&str>, graph: Option<&str>) -> Self {
        if let Some(l) = login.map(trim_base).filter(|l| !l.is_empty()) {
            self.login = l.to_string();
        }
        if let Some(g) = graph.map(trim_base).filter(|g| !g.is_empty()) {
            self.graph = g.to_string();
        }
        self
    }

    /// `{graph}/v1.0`.
    pub fn graph_v1(&self) -> String {
        format!("{}/v1.0", self.graph)
    }

    /// A scope string: `{graph_resource}/{name}` for a Graph permission name; the OIDC scopes
    /// (`openid profile email offline_access`) bare; a name that is already a URI unchanged.
    pub fn scope(&self, name: &str) -> String {
        if OIDC_SCOPES.contains(&name) || name.contains("://") {
            name.to_string()
        } else {
            format!("{}/{}", self.graph_resource, name)
        }
    }

    /// `{graph_resource}/.default`: every permission configured on the app (admin consent v2).
    pub fn default_scope(&self) -> String {
        self.scope(".default")
    }
}

fn trim_base(s: &str) -> &str {
    s.trim().trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips() {
        for c in Cloud::ALL {
            assert_eq!(Cloud::parse(c.as_str()), Some(c));
        }
        assert_eq!(Cloud::parse(" USGov "), Some(Cloud::UsGov));
        assert_eq!(Cloud::parse("public"), None);
        assert_eq!(Cloud::parse(""), None);
    }

    #[test]
    fn hosts_per_cloud() {
        let e = Endpoints::for_cloud(Cloud::Global);
        assert_eq!(e.login, "https://login.microsoftonline.com");
        assert_eq!(e.graph_v1(), "https://graph.microsoft.com/v1.0");
        let e = Endpoints::for_cloud(Cloud::UsGov);
        assert_eq!(e.login, "https://login.microsoftonline.us");
        assert_eq!(e.graph_resource, "https://graph.microsoft.us");
        let e = Endpoints::for_cloud(Cloud::UsGovDod);
        assert_eq!(e.login, "https://login.microsoftonline.us");
        assert_eq!(e.graph_resource, "https://dod-graph.microsoft.us");
        let e = Endpoints::for_cloud(Cloud::China);
        assert_eq!(e.login, "https://login.partner.microsoftonline.cn");
        assert_eq!(e.graph_resource, "https://microsoftgraph.chinacloudapi.cn");
        assert_eq!(
            e.default_scope(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn overrides_keep_resource() {
        let e = Endpoints::for_cloud(Cloud::UsGov).with_overrides(
            Some("http://127.0.0.1:8400/"),
            Some("http://127.0.0.1:8400//"),
        );
        assert_eq!(e.login, "http://127.0.0.1:8400");
        assert_eq!(e.graph_v1(), "http://127.0.0.1:8400/v1.0");
        assert_eq!(e.scope("User.Read"), "https://graph.microsoft.us/User.Read");
        let same = Endpoints::for_cloud(Cloud::Global).with_overrides(Some("  "), None);
        assert_eq!(same, Endpoints::for_cloud(Cloud::Global));
    }

    #[test]
    fn scopes() {
        let e = Endpoints::for_cloud(Cloud::Global);
        assert_eq!(e.scope("openid"), "openid");
        assert_eq!(e.scope("offline_access"), "offline_access");
        assert_eq!(
            e.scope("Application.ReadWrite.All"),
            "https://graph.microsoft.com/Application.ReadWrite.All"
        );
        assert_eq!(
            e.scope("https://graph.microsoft.com/User.Read"),
            "https://graph.microsoft.com/User.Read"
        );
        assert_eq!(e.default_scope(), "https://graph.microsoft.com/.default");
    }
}
