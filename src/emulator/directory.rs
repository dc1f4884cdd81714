//! The directory model of the emulated tenant: users, applications (with credentials and
//! owners), service principals, app role assignments, delegated permission grants; the seeding
//! of the demo tenant; Graph JSON representations; admin consent. Pure data, no I/O.

use super::util::{self, iso_ms_z, iso_z};
use super::{EmulatorConfig, GRAPH_APP_ID, SHAREPOINT_APP_ID};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A directory role that matters for what the emulator lets a user do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Everything, including granting Microsoft Graph application permissions.
    GlobalAdministrator,
    /// Apps, service principals, owners and delegated grants — but not Microsoft Graph app roles.
    ApplicationAdministrator,
    /// No directory role.
    None,
}

impl Role {
    /// The role template id Entra puts in the `wids` claim.
    pub fn template_id(self) -> Option<&'static str> {
        match self {
            Role::GlobalAdministrator => Some("62e90394-69f5-4237-9190-012177145e10"),
            Role::ApplicationAdministrator => Some("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"),
            Role::None => None,
        }
    }
    pub fn is_admin(self) -> bool {
        self != Role::None
    }
}

/// A user of the seeded tenant (the part of the UPN before `@` is joined to the domain when the
/// UPN has no `@`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub upn: String,
    pub display_name: String,
    pub role: Role,
    /// Fixed object id; random (seeded) when absent.
    #[serde(default)]
    pub id: Option<String>,
}

impl UserSeed {
    pub fn defaults() -> Vec<UserSeed> {
        vec![
            UserSeed {
                upn: "admin".into(),
                display_name: "Ada Admin".into(),
                role: Role::GlobalAdministrator,
                id: Some("a11ce000-0000-4000-8000-000000000001".into()),
            },
            UserSeed {
                upn: "appadmin".into(),
                display_name: "Abel AppAdmin".into(),
                role: Role::ApplicationAdministrator,
                id: Some("a11ce000-0000-4000-8000-000000000002".into()),
            },
            UserSeed {
                upn: "user".into(),
                display_name: "Uma User".into(),
                role: Role::None,
                id: Some("a11ce000-0000-4000-8000-000000000003".into()),
            },
        ]
    }
}

/// The tenant itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantInfo {
    pub id: String,
    pub display_name: String,
    pub domain: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub role: Role,
}

impl User {
    pub fn json(&self) -> Value {
        let (given, surname) = match self.display_name.split_once(' ') {
            Some((g, s)) => (json!(g), json!(s)),
            None => (Value::Null, Value::Null),
        };
        json!({
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": given,
            "jobTitle": null,
            "mail": self.upn,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": surname,
            "userPrincipalName": self.upn,
            "id": self.id,
        })
    }
}

/// A password credential; `secret` is never serialised.
#[derive(Debug, Clone)]
pub struct PasswordCred {
    pub key_id: String,
    pub display_name: Option<String>,
    pub secret: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub custom_key_identifier: Option<String>,
}

impl PasswordCred {
    pub fn json(&self, with_secret: bool) -> Value {
        json!({
            "customKeyIdentifier": self.custom_key_identifier,
            "displayName": self.display_name,
            "endDateTime": iso_z_i(self.end_ms),
            "hint": self.secret.chars().take(3).collect::<String>(),
            "keyId": self.key_id,
            "secretText": if with_secret { json!(self.secret) } else { Value::Null },
            "startDateTime": iso_z_i(self.start_ms),
        })
    }
}

/// A certificate credential (the DER is kept to verify assertions and proofs; `key` is never
/// returned by GET, as on Graph).
#[derive(Debug, Clone)]
pub struct KeyCred {
    pub key_id: String,
    pub display_name: Option<String>,
    pub cert_der: Vec<u8>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub usage: String,
    pub kind: String,
    pub custom_key_identifier: Option<String>,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
}

impl KeyCred {
    pub fn json(&self) -> Value {
        json!({
            "customKeyIdentifier": self.custom_key_identifier,
            "displayName": self.display_name,
            "endDateTime": iso_z_i(self.end_ms),
            "key": null,
            "keyId": self.key_id,
            "startDateTime": iso_z_i(self.start_ms),
            "type": self.kind,
            "usage": self.usage,
        })
    }
}

pub fn iso_z_i(ms: i64) -> String {
    iso_z(ms.max(0) as u64)
}

/// An application object. `props` holds every other Graph property as set.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub app_id: String,
    pub created_ms: u64,
    /// False for a multi-tenant app registered in another tenant (the registrator).
    pub local: bool,
    pub props: Map<String, Value>,
    pub passwords: Vec<PasswordCred>,
    pub keys: Vec<KeyCred>,
    pub owners: Vec<String>,
}

impl App {
    pub fn display_name(&self) -> String {
        self.props
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
    pub fn unique_name(&self) -> Option<&str> {
        self.props.get("uniqueName").and_then(Value::as_str)
    }
    fn uris(&self, kind: &str) -> Vec<String> {
        self.props
            .get(kind)
            .and_then(|v| v.get("redirectUris"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn spa_uris(&self) -> Vec<String> {
        self.uris("spa")
    }
    pub fn web_uris(&self) -> Vec<String> {
        self.uris("web")
    }
    pub fn public_uris(&self) -> Vec<String> {
        self.uris("publicClient")
    }
    /// `(resourceAppId, id, type)` of every entry of requiredResourceAccess.
    pub fn required_access(&self) -> Vec<(String, String, String)> {
        let mut out = vec![];
        for rra in self
            .props
            .get("requiredResourceAccess")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let res = rra
                .get("resourceAppId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            for ra in rra
                .get("resourceAccess")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = ra
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let ty = ra
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                out.push((res.clone(), id, ty));
            }
        }
        out
    }

    /// The Graph representation (`key` and `secretText` always null).
    pub fn json(&self, tenant_domain: &str) -> Value {
        let mut m = app_defaults();
        for (k, v) in &self.props {
            m.insert(k.clone(), v.clone());
        }
        m.insert("id".into(), json!(self.id));
        m.insert("appId".into(), json!(self.app_id));
        m.insert("createdDateTime".into(), json!(iso_z(self.created_ms)));
        if self.local {
            m.insert("publisherDomain".into(), json!(tenant_domain));
        }
        m.insert(
            "passwordCredentials".into(),
            Value::Array(self.passwords.iter().map(|p| p.json(false)).collect()),
        );
        m.insert(
            "keyCredentials".into(),
            Value::Array(self.keys.iter().map(KeyCred::json).collect()),
        );
        Value::Object(m)
    }
}

fn app_defaults() -> Map<String, Value> {
    let v: Value = serde_json::from_str(r#"{
        "id": null, "deletedDateTime": null, "appId": null, "applicationTemplateId": null,
        "disabledByMicrosoftStatus": null, "createdDateTime": null, "displayName": null,
        "description": null, "groupMembershipClaims": null, "identifierUris": [],
        "isDeviceOnlyAuthSupported": null, "isFallbackPublicClient": null,
        "nativeAuthenticationApisEnabled": null, "notes": null, "publisherDomain": null,
        "serviceManagementReference": null, "signInAudience": "AzureADMyOrg", "tags": [],
        "tokenEncryptionKeyId": null, "uniqueName": null, "samlMetadataUrl": null,
        "defaultRedirectUri": null, "certification": null, "optionalClaims": null,
        "servicePrincipalLockConfiguration": null, "requestSignatureVerification": null,
        "addIns": [], "appRoles": [],
        "api": {"acceptMappedClaims": null, "knownClientApplications": [], "requestedAccessTokenVersion": null,
                "oauth2PermissionScopes": [], "preAuthorizedApplications": []},
        "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null},
        "keyCredentials": [], "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "passwordCredentials": [], "publicClient": {"redirectUris": []}, "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
        "web": {"homePageUrl": null, "logoutUrl": null, "redirectUris": [], "redirectUriSettings": [],
                "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false}},
        "spa": {"redirectUris": []}
    }"#).unwrap_or(Value::Null);
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A service principal. `props` holds its Graph properties (appRoles, oauth2PermissionScopes …).
#[derive(Debug, Clone)]
pub struct Sp {
    pub id: String,
    pub app_id: String,
    pub created_ms: u64,
    pub props: Map<String, Value>,
}

impl Sp {
    pub fn display_name(&self) -> String {
        self.props
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
    pub fn app_roles(&self) -> Vec<&Value> {
        self.props
            .get("appRoles")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }
    pub fn scopes(&self) -> Vec<&Value> {
        self.props
            .get("oauth2PermissionScopes")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }
    /// The value (`Application.ReadWrite.All`) of the enabled app role `id`.
    pub fn app_role_value(&self, id: &str) -> Option<String> {
        self.app_roles()
            .into_iter()
            .find(|r| {
                r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|x| x.eq_ignore_ascii_case(id))
            })
            .and_then(|r| r.get("value").and_then(Value::as_str).map(String::from))
    }
    pub fn app_role_id(&self, value: &str) -> Option<String> {
        self.app_roles()
            .into_iter()
            .find(|r| r.get("value").and_then(Value::as_str) == Some(value))
            .and_then(|r| r.get("id").and_then(Value::as_str).map(String::from))
    }
    pub fn scope_value(&self, id: &str) -> Option<String> {
        self.scopes()
            .into_iter()
            .find(|r| {
                r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|x| x.eq_ignore_ascii_case(id))
            })
            .and_then(|r| r.get("value").and_then(Value::as_str).map(String::from))
    }
    pub fn has_scope(&self, value: &str) -> bool {
        self.scopes().into_iter().any(|r| {
            r.get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
    }
    pub fn scope_admin_only(&self, value: &str) -> bool {
        self.scopes()
            .into_iter()
            .find(|r| {
                r.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .and_then(|r| r.get("type").and_then(Value::as_str))
            != Some("User")
    }
    pub fn json(&self) -> Value {
        let mut m = sp_defaults();
        for (k, v) in &self.props {
            m.insert(k.clone(), v.clone());
        }
        m.insert("id".into(), json!(self.id));
        m.insert("appId".into(), json!(self.app_id));
        Value::Object(m)
    }
}

fn sp_defaults() -> Map<String, Value> {
    let v: Value = serde_json::from_str(r#"{
        "id": null, "deletedDateTime": null, "accountEnabled": true, "alternativeNames": [],
        "appDisplayName": null, "appDescription": null, "appId": null, "applicationTemplateId": null,
        "appOwnerOrganizationId": null, "appRoleAssignmentRequired": false, "createdByAppId": null,
        "description": null, "disabledByMicrosoftStatus": null, "displayName": null, "homepage": null,
        "loginUrl": null, "logoutUrl": null, "notes": null, "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null, "preferredTokenSigningKeyThumbprint": null,
        "replyUrls": [], "servicePrincipalNames": [], "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg", "tags": [], "tokenEncryptionKeyId": null,
        "samlSingleSignOnSettings": null, "addIns": [], "appRoles": [],
        "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null},
        "keyCredentials": [], "oauth2PermissionScopes": [], "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null}
    }"#).unwrap_or(Value::Null);
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub principal_display_name: String,
    pub resource_id: String,
    pub resource_display_name: String,
    pub app_role_id: String,
    pub created_ms: u64,
}

impl Assignment {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "deletedDateTime": null,
            "appRoleId": self.app_role_id,
            "createdDateTime": iso_ms_z(self.created_ms),
            "principalDisplayName": self.principal_display_name,
            "principalId": self.principal_id,
            "principalType": self.principal_type,
            "resourceDisplayName": self.resource_display_name,
            "resourceId": self.resource_id,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub consent_type: String,
    pub principal_id: Option<String>,
    pub resource_id: String,
    pub scope: String,
}

impl Grant {
    pub fn json(&self) -> Value {
        json!({
            "clientId": self.client_id,
            "consentType": self.consent_type,
            "id": self.id,
            "principalId": self.principal_id,
            "resourceId": self.resource_id,
            "scope": self.scope,
        })
    }
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(String::from).collect()
    }
}

/// The whole directory.
#[derive(Debug, Clone)]
pub struct Directory {
    pub tenant: TenantInfo,
    pub users: Vec<User>,
    /// Applications registered in this tenant, and (with `local == false`) multi-tenant apps of
    /// other tenants that the login endpoints know (the registrator).
    pub apps: Vec<App>,
    pub sps: Vec<Sp>,
    pub assignments: Vec<Assignment>,
    pub grants: Vec<Grant>,
    pub registrator_app_id: String,
}

static PERMISSIONS_JSON: &str = include_str!("data/permissions.json");

fn permissions() -> &'static Value {
    static P: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    P.get_or_init(|| serde_json::from_str(PERMISSIONS_JSON).unwrap_or(Value::Null))
}

/// Name → id of a permission of a first-party resource, from the reference data.
pub fn reference_permission_id(
    resource_app_id: &str,
    value: &str,
    application: bool,
) -> Option<String> {
    let list = if application {
        "applicationPermissions"
    } else {
        "delegatedPermissions"
    };
    permissions()["resources"][resource_app_id][list]
        .as_array()?
        .iter()
        .find(|p| p["value"].as_str() == Some(value))
        .and_then(|p| p["id"].as_str().map(String::from))
}

/// The registrator's required permissions (the spec's list).
pub const REGISTRATOR_DELEGATED: [&str; 7] = [
    "User.Read",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Application.ReadWrite.All",
    "Organization.Read.All",
    "AppRoleAssignment.ReadWrite.All",
];
pub const REGISTRATOR_APPLICATION: [&str; 5] = [
    "Application.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "Organization.Read.All",
];

/// The Bacula tenant that owns the registrator (GUESS: any fixed foreign GUID will do).
pub const REGISTRATOR_OWNER_TENANT: &str = "b2c1a5e0-4d3c-4b8a-9e7f-5a6b7c8d9e0f";

fn resource_sp(app_id: &str, id: &str, missing_roles: &[String], missing_scopes: &[String]) -> Sp {
    let r = &permissions()["resources"][app_id];
    let name = r["displayName"].as_str().unwrap_or("resource").to_string();
    let roles: Vec<Value> = r["applicationPermissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !missing_roles.iter().any(|m| Some(m.as_str()) == p["value"].as_str()))
        .map(|p| {
            json!({
                "allowedMemberTypes": p.get("allowedMemberTypes").cloned().unwrap_or(json!(["Application"])),
                "description": p["displayName"],
                "displayName": p["displayName"],
                "id": p["id"],
                "isEnabled": p.get("isEnabled").cloned().unwrap_or(json!(true)),
                "origin": "Application",
                "value": p["value"],
            })
        })
        .collect();
    let scopes: Vec<Value> = r["delegatedPermissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !missing_scopes.iter().any(|m| Some(m.as_str()) == p["value"].as_str()))
        .map(|p| {
            let admin = p["adminConsentDisplayName"].clone();
            json!({
                "adminConsentDescription": admin,
                "adminConsentDisplayName": admin,
                "id": p["id"],
                "isEnabled": p.get("isEnabled").cloned().unwrap_or(json!(true)),
                "type": p.get("type").cloned().unwrap_or(json!("Admin")),
                "userConsentDescription": p.get("userConsentDisplayName").cloned().unwrap_or(admin.clone()),
                "userConsentDisplayName": p.get("userConsentDisplayName").cloned().unwrap_or(admin.clone()),
                "value": p["value"],
            })
        })
        .collect();
    let mut props = Map::new();
    props.insert("displayName".into(), json!(name));
    props.insert("appDisplayName".into(), json!(name));
    props.insert(
        "appOwnerOrganizationId".into(),
        json!("f8cdef31-a31e-4b4a-93e4-5f571e91255a"),
    );
    props.insert("servicePrincipalNames".into(), json!([app_id]));
    props.insert("signInAudience".into(), json!("AzureADMultipleOrgs"));
    props.insert("appRoles".into(), Value::Array(roles));
    props.insert("oauth2PermissionScopes".into(), Value::Array(scopes));
    Sp {
        id: id.to_string(),
        app_id: app_id.to_string(),
        created_ms: 0,
        props,
    }
}

impl Directory {
    pub fn seed(cfg: &EmulatorConfig, rng: &mut ChaCha20Rng) -> Directory {
        let tenant = TenantInfo {
            id: cfg.tenant_id.clone(),
            display_name: cfg.tenant_display_name.clone(),
            domain: cfg.domain.clone(),
        };
        let users = cfg
            .users
            .iter()
            .map(|u| User {
                id: u.id.clone().unwrap_or_else(|| util::uuid(rng)),
                upn: if u.upn.contains('@') {
                    u.upn.clone()
                } else {
                    format!("{}@{}", u.upn, cfg.domain)
                },
                display_name: u.display_name.clone(),
                role: u.role,
            })
            .collect();
        let mut sps = vec![
            resource_sp(
                GRAPH_APP_ID,
                &util::uuid(rng),
                &cfg.graph_missing_app_roles,
                &cfg.graph_missing_scopes,
            ),
            resource_sp(SHAREPOINT_APP_ID, &util::uuid(rng), &[], &[]),
        ];
        sps[1].props.insert(
            "servicePrincipalNames".into(),
            json!([SHAREPOINT_APP_ID, "Microsoft.SharePoint"]),
        );
        sps[0].props.insert(
            "servicePrincipalNames".into(),
            json!([
                GRAPH_APP_ID,
                "https://graph.microsoft.com",
                "https://graph.microsoft.com/"
            ]),
        );

        // The registrator: Bacula's multi-tenant app, registered in Bacula's tenant.
        let mut rra_graph = vec![];
        for v in REGISTRATOR_DELEGATED {
            if let Some(id) = reference_permission_id(GRAPH_APP_ID, v, false) {
                rra_graph.push(json!({"id": id, "type": "Scope"}));
            }
        }
        for v in REGISTRATOR_APPLICATION {
            if let Some(id) = reference_permission_id(GRAPH_APP_ID, v, true) {
                rra_graph.push(json!({"id": id, "type": "Role"}));
            }
        }
        let mut props = Map::new();
        props.insert("displayName".into(), json!(cfg.registrator_display_name));
        props.insert("signInAudience".into(), json!("AzureADMultipleOrgs"));
        props.insert("publisherDomain".into(), json!("baculasystems.com"));
        props.insert(
            "spa".into(),
            json!({"redirectUris": cfg.registrator_spa_redirect_uris}),
        );
        props.insert(
            "web".into(),
            json!({"homePageUrl": null, "logoutUrl": null, "redirectUris": cfg.registrator_web_redirect_uris,
                   "redirectUriSettings": [],
                   "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false}}),
        );
        props.insert(
            "requiredResourceAccess".into(),
            json!([{"resourceAppId": GRAPH_APP_ID, "resourceAccess": rra_graph}]),
        );
        let registrator = App {
            id: util::uuid(rng),
            app_id: cfg.registrator_app_id.clone(),
            created_ms: 0,
            local: false,
            props,
            passwords: vec![],
            keys: vec![],
            owners: vec![],
        };
        let mut dir = Directory {
            tenant,
            users,
            apps: vec![registrator],
            sps,
            assignments: vec![],
            grants: vec![],
            registrator_app_id: cfg.registrator_app_id.clone(),
        };
        if cfg.registrator_consented {
            let id = cfg.registrator_app_id.clone();
            dir.admin_consent(&id, 0, rng);
        }
        dir
    }

    /// A user by object id, UPN, or the UPN's local part (`admin`).
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        let full = if id_or_upn.contains('@') {
            id_or_upn.to_string()
        } else {
            format!("{id_or_upn}@{}", self.tenant.domain)
        };
        self.users
            .iter()
            .find(|u| u.id.eq_ignore_ascii_case(id_or_upn) || u.upn.eq_ignore_ascii_case(&full))
    }

    pub fn app_by_app_id(&self, app_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
    }

    pub fn sp_by_app_id(&self, app_id: &str) -> Option<&Sp> {
        self.sps
            .iter()
            .find(|s| s.app_id.eq_ignore_ascii_case(app_id))
    }

    pub fn sp(&self, id: &str) -> Option<&Sp> {
        self.sps.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub fn graph_sp(&self) -> Option<&Sp> {
        self.sp_by_app_id(GRAPH_APP_ID)
    }

    /// A display name for any directory object id (user, SP, app).
    pub fn object_kind(&self, id: &str) -> Option<(&'static str, String)> {
        if let Some(u) = self.user(id).filter(|u| u.id.eq_ignore_ascii_case(id)) {
            return Some(("User", u.display_name.clone()));
        }
        if let Some(s) = self.sp(id) {
            return Some(("ServicePrincipal", s.display_name()));
        }
        None
    }

    pub fn add_registrator_redirect(&mut self, uri: &str, spa: bool) {
        let id = self.registrator_app_id.clone();
        if let Some(app) = self.apps.iter_mut().find(|a| a.app_id == id) {
            let key = if spa { "spa" } else { "web" };
            let entry = app
                .props
                .entry(key.to_string())
                .or_insert(json!({"redirectUris": []}));
            if let Some(list) = entry.get_mut("redirectUris").and_then(Value::as_array_mut) {
                if !list.iter().any(|u| u.as_str() == Some(uri)) {
                    list.push(json!(uri));
                }
            }
        }
    }

    pub fn remove_permission(
        &mut self,
        resource_app_id: &str,
        value: &str,
        application: bool,
    ) -> bool {
        let key = if application {
            "appRoles"
        } else {
            "oauth2PermissionScopes"
        };
        let Some(sp) = self
            .sps
            .iter_mut()
            .find(|s| s.app_id.eq_ignore_ascii_case(resource_app_id))
        else {
            return false;
        };
        let Some(list) = sp.props.get_mut(key).and_then(Value::as_array_mut) else {
            return false;
        };
        let before = list.len();
        list.retain(|p| p.get("value").and_then(Value::as_str) != Some(value));
        before != list.len()
    }

    /// Creates the service principal of app `app_id` (local or the registrator) if missing.
    /// Returns its id.
    pub fn ensure_sp(
        &mut self,
        app_id: &str,
        now_ms: u64,
        rng: &mut ChaCha20Rng,
        extra: Option<&Map<String, Value>>,
    ) -> String {
        if let Some(sp) = self.sp_by_app_id(app_id) {
            return sp.id.clone();
        }
        let tenant_id = self.tenant.id.clone();
        let app = self.app_by_app_id(app_id).cloned();
        let mut props = Map::new();
        if let Some(app) = &app {
            let name = app.display_name();
            props.insert("displayName".into(), json!(name));
            props.insert("appDisplayName".into(), json!(name));
            props.insert(
                "appOwnerOrganizationId".into(),
                json!(if app.local {
                    tenant_id
                } else {
                    REGISTRATOR_OWNER_TENANT.to_string()
                }),
            );
            let mut names = vec![json!(app.app_id)];
            for u in app
                .props
                .get("identifierUris")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                names.push(u.clone());
            }
            props.insert("servicePrincipalNames".into(), Value::Array(names));
            let mut reply: Vec<Value> = app.web_uris().into_iter().map(Value::from).collect();
            reply.extend(app.spa_uris().into_iter().map(Value::from));
            reply.extend(app.public_uris().into_iter().map(Value::from));
            props.insert("replyUrls".into(), Value::Array(reply));
            for k in [
                "signInAudience",
                "appRoles",
                "tags",
                "description",
                "notes",
                "info",
            ] {
                if let Some(v) = app.props.get(k) {
                    props.insert(k.into(), v.clone());
                }
            }
            if let Some(scopes) = app
                .props
                .get("api")
                .and_then(|a| a.get("oauth2PermissionScopes"))
            {
                props.insert("oauth2PermissionScopes".into(), scopes.clone());
            }
            if let Some(v) = app.props.get("publisherDomain") {
                props.insert("publisherName".into(), v.clone());
            }
        }
        if let Some(extra) = extra {
            for (k, v) in extra {
                if k != "appId" && !k.starts_with('@') {
                    props.insert(k.clone(), v.clone());
                }
            }
        }
        props.remove("publisherName");
        let id = util::uuid(rng);
        self.sps.push(Sp {
            id: id.clone(),
            app_id: app_id.to_string(),
            created_ms: now_ms,
            props,
        });
        id
    }

    /// Records a tenant-wide admin consent for `client_app_id`: its service principal, an app
    /// role assignment per application permission, and one AllPrincipals grant per resource
    /// (scopes merged into an existing grant). Permissions the resource SP lacks are skipped.
    pub fn admin_consent(&mut self, client_app_id: &str, now_ms: u64, rng: &mut ChaCha20Rng) {
        let Some(app) = self.app_by_app_id(client_app_id).cloned() else {
            return;
        };
        let sp_id = self.ensure_sp(client_app_id, now_ms, rng, None);
        let sp_name = app.display_name();
        for (res_app, id, ty) in app.required_access() {
            let Some(res) = self.sp_by_app_id(&res_app).cloned() else {
                continue;
            };
            if ty == "Role" {
                if res.app_role_value(&id).is_none() {
                    continue;
                }
                let exists = self.assignments.iter().any(|a| {
                    a.principal_id == sp_id
                        && a.resource_id == res.id
                        && a.app_role_id.eq_ignore_ascii_case(&id)
                });
                if !exists {
                    self.assignments.push(Assignment {
                        id: util::random_b64url(rng, 32),
                        principal_id: sp_id.clone(),
                        principal_type: "ServicePrincipal".into(),
                        principal_display_name: sp_name.clone(),
                        resource_id: res.id.clone(),
                        resource_display_name: res.display_name(),
                        app_role_id: id.to_lowercase(),
                        created_ms: now_ms,
                    });
                }
            } else if let Some(value) = res.scope_value(&id) {
                self.merge_grant(&sp_id, &res.id, &[value], rng);
            }
        }
    }

    /// Adds scopes to the AllPrincipals grant (client, resource), creating it if needed.
    pub fn merge_grant(
        &mut self,
        client_sp: &str,
        resource_sp: &str,
        scopes: &[String],
        rng: &mut ChaCha20Rng,
    ) {
        if let Some(g) = self.grants.iter_mut().find(|g| {
            g.client_id == client_sp
                && g.resource_id == resource_sp
                && g.consent_type == "AllPrincipals"
        }) {
            let mut have = g.scopes();
            for s in scopes {
                if !have.iter().any(|h| h.eq_ignore_ascii_case(s)) {
                    have.push(s.clone());
                }
            }
            g.scope = have.join(" ");
            return;
        }
        self.grants.push(Grant {
            id: util::random_b64url(rng, 32),
            client_id: client_sp.to_string(),
            consent_type: "AllPrincipals".into(),
            principal_id: None,
            resource_id: resource_sp.to_string(),
            scope: scopes.join(" "),
        });
    }

    /// Delegated scopes consented for (client SP, resource SP) for this user.
    pub fn consented_scopes(
        &self,
        client_sp: &str,
        resource_sp: &str,
        user_id: &str,
    ) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for g in &self.grants {
            if g.client_id == client_sp
                && g.resource_id == resource_sp
                && (g.consent_type == "AllPrincipals" || g.principal_id.as_deref() == Some(user_id))
            {
                for s in g.scopes() {
                    if !out.iter().any(|o| o.eq_ignore_ascii_case(&s)) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// Deletes a service principal and what hangs on it (assignments, grants).
    pub fn delete_sp(&mut self, id: &str) {
        self.sps.retain(|s| s.id != id);
        self.assignments
            .retain(|a| a.principal_id != id && a.resource_id != id);
        self.grants
            .retain(|g| g.client_id != id && g.resource_id != id);
    }

    pub fn state_json(&self) -> Value {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .filter(|a| a.local)
            .map(|a| {
                let mut v = a.json(&self.tenant.domain);
                v["owners"] = json!(a.owners);
                v["_createdMs"] = json!(a.created_ms);
                v
            })
            .collect();
        let sps: Vec<Value> = self
            .sps
            .iter()
            .map(|s| {
                let mut v = s.json();
                // Keep the state small: resource SPs carry hundreds of permissions.
                if s.app_id == GRAPH_APP_ID || s.app_id == SHAREPOINT_APP_ID {
                    v["appRoles"] = json!(format!("<{} app roles>", s.app_roles().len()));
                    v["oauth2PermissionScopes"] = json!(format!("<{} scopes>", s.scopes().len()));
                }
                v["_createdMs"] = json!(s.created_ms);
                v
            })
            .collect();
        json!({
            "tenant": self.tenant,
            "users": self.users.iter().map(|u| json!({"id": u.id, "userPrincipalName": u.upn, "displayName": u.display_name, "role": u.role})).collect::<Vec<_>>(),
            "registrator": self.app_by_app_id(&self.registrator_app_id).map(|a| {
                json!({"appId": a.app_id, "displayName": a.display_name(), "spa": a.spa_uris(), "web": a.web_uris(),
                       "servicePrincipalId": self.sp_by_app_id(&a.app_id).map(|s| s.id.clone())})
            }),
            "applications": apps,
            "servicePrincipals": sps,
            "appRoleAssignments": self.assignments.iter().map(Assignment::json).collect::<Vec<_>>(),
            "oauth2PermissionGrants": self.grants.iter().map(Grant::json).collect::<Vec<_>>(),
        })
    }
}
