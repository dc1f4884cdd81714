//! The standalone plugin app's permission manifest per plugin service (names only), and the
//! name -> id resolution against a tenant's resource service principals; must not import web,
//! emulator or any I/O crate.
//!
//! Derived list and reasons: `shared/design/permissions-manifest.md`. Ids are not hard-coded:
//! the same name has different ids on different resources, so they are read at run time from the
//! resource service principal (`appRoles` for application permissions,
//! `oauth2PermissionScopes` for delegated ones), as Graph's `requiredResourceAccess` docs say.

use std::fmt;

/// Microsoft Graph's application id.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 SharePoint Online's application id.
pub const SHAREPOINT_APP_ID: &str = "00000003-0000-0ff1-ce00-000000000000";

/// A resource (API) whose permissions the plugin app needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Graph,
    SharePoint,
}

impl Resource {
    pub fn app_id(self) -> &'static str {
        match self {
            Resource::Graph => GRAPH_APP_ID,
            Resource::SharePoint => SHAREPOINT_APP_ID,
        }
    }
    pub fn display_name(self) -> &'static str {
        match self {
            Resource::Graph => "Microsoft Graph",
            Resource::SharePoint => "Office 365 SharePoint Online",
        }
    }
    /// The resource whose application id this is.
    pub fn from_app_id(app_id: &str) -> Option<Resource> {
        [Resource::Graph, Resource::SharePoint]
            .into_iter()
            .find(|r| r.app_id().eq_ignore_ascii_case(app_id.trim()))
    }
}

/// Application permission (app role, app-only) or delegated permission (OAuth2 scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PermKind {
    Application,
    Delegated,
}

impl PermKind {
    /// `requiredResourceAccess[].resourceAccess[].type`: `Role` or `Scope`.
    pub fn access_type(self) -> &'static str {
        match self {
            PermKind::Application => "Role",
            PermKind::Delegated => "Scope",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            PermKind::Application => "Application",
            PermKind::Delegated => "Delegated",
        }
    }
}

/// A plugin service the admin may select (the plugin's `service=` values, grouped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    UsersGroups,
    Mail,
    Calendar,
    Contacts,
    Drive,
    SharePoint,
    Tasks,
    OneNote,
    Teams,
    Chats,
}

impl Service {
    /// Every service, in the order the page lists them.
    pub fn all() -> &'static [Service] {
        &[
            Service::UsersGroups,
            Service::Mail,
            Service::Calendar,
            Service::Contacts,
            Service::Drive,
            Service::SharePoint,
            Service::Tasks,
            Service::OneNote,
            Service::Teams,
            Service::Chats,
        ]
    }
    /// Short stable id (config files, URLs, `data-testid`s).
    pub fn id(self) -> &'static str {
        match self {
            Service::UsersGroups => "users",
            Service::Mail => "mail",
            Service::Calendar => "calendar",
            Service::Contacts => "contacts",
            Service::Drive => "drive",
            Service::SharePoint => "sharepoint",
            Service::Tasks => "tasks",
            Service::OneNote => "onenote",
            Service::Teams => "teams",
            Service::Chats => "chats",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Service::UsersGroups => "Users and groups",
            Service::Mail => "Mail",
            Service::Calendar => "Calendar",
            Service::Contacts => "Contacts",
            Service::Drive => "OneDrive",
            Service::SharePoint => "SharePoint",
            Service::Tasks => "Tasks and Planner",
            Service::OneNote => "OneNote",
            Service::Teams => "Teams",
            Service::Chats => "Chats",
        }
    }
    pub fn from_id(id: &str) -> Option<Service> {
        let id = id.trim();
        Service::all()
            .iter()
            .copied()
            .find(|s| s.id().eq_ignore_ascii_case(id))
    }
    /// Users and groups cannot be deselected: every other service needs them.
    pub fn always_on(self) -> bool {
        self == Service::UsersGroups
    }
    /// The permissions this service needs.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Service::UsersGroups => USERS_GROUPS,
            Service::Mail => MAIL,
            Service::Calendar => CALENDAR,
            Service::Contacts => CONTACTS,
            Service::Drive => DRIVE,
            Service::SharePoint => SHAREPOINT,
            Service::Tasks => TASKS,
            Service::OneNote => ONENOTE,
            Service::Teams => TEAMS,
            Service::Chats => CHATS,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One permission by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    pub resource: Resource,
    pub kind: PermKind,
    pub name: &'static str,
    /// A Teams "protected API": Microsoft must approve it per application id
    /// (aka.ms/teamsgraph/requestaccess).
    pub protected: bool,
}

impl Permission {
    fn sort_key(&self) -> (Resource, PermKind, &'static str) {
        (self.resource, self.kind, self.name)
    }

    /// The plugin's own report line (Bacula doc, "Check permissions"):
    /// `Delegated permission Chat.ReadWrite was not found in your Azure service principal <id>`.
    pub fn missing_message(&self, service_principal_id: &str) -> String {
        format!(
            "{} permission {} was not found in your Azure service principal {}",
            self.kind.label(),
            self.name,
            service_principal_id
        )
    }
}

const fn ga(name: &'static str) -> Permission {
    Permission {
        resource: Resource::Graph,
        kind: PermKind::Application,
        name,
        protected: false,
    }
}
const fn gp(name: &'static str) -> Permission {
    Permission {
        resource: Resource::Graph,
        kind: PermKind::Application,
        name,
        protected: true,
    }
}
const fn gd(name: &'static str) -> Permission {
    Permission {
        resource: Resource::Graph,
        kind: PermKind::Delegated,
        name,
        protected: false,
    }
}
const fn sa(name: &'static str) -> Permission {
    Permission {
        resource: Resource::SharePoint,
        kind: PermKind::Application,
        name,
        protected: false,
    }
}

static USERS_GROUPS: &[Permission] = &[
    ga("User.Read.All"),
    ga("Group.ReadWrite.All"),
    ga("Directory.Read.All"),
    ga("Organization.Read.All"),
    gd("User.Read"),
    gd("openid"),
    gd("profile"),
    gd("offline_access"),
];
static MAIL: &[Permission] = &[ga("Mail.ReadWrite"), ga("MailboxSettings.ReadWrite")];
static CALENDAR: &[Permission] = &[
    ga("Calendars.ReadWrite"),
    gd("Calendars.ReadWrite"),
    gd("Calendars.ReadWrite.Shared"),
    gd("Group.ReadWrite.All"),
];
static CONTACTS: &[Permission] = &[ga("Contacts.ReadWrite")];
static DRIVE: &[Permission] = &[ga("Files.ReadWrite.All")];
static SHAREPOINT: &[Permission] = &[ga("Sites.FullControl.All"), sa("Sites.FullControl.All")];
static TASKS: &[Permission] = &[
    ga("Tasks.ReadWrite.All"),
    gd("Tasks.ReadWrite"),
    gd("Tasks.ReadWrite.Shared"),
    gd("Group.ReadWrite.All"),
];
static ONENOTE: &[Permission] = &[
    gd("Notes.ReadWrite.All"),
    gd("Files.ReadWrite.All"),
    gd("Sites.ReadWrite.All"),
];
static TEAMS: &[Permission] = &[
    ga("Team.ReadBasic.All"),
    ga("TeamSettings.ReadWrite.All"),
    ga("Channel.ReadBasic.All"),
    ga("Channel.Create"),
    ga("ChannelSettings.ReadWrite.All"),
    ga("ChannelMember.ReadWrite.All"),
    ga("TeamMember.ReadWrite.All"),
    ga("TeamsTab.ReadWrite.All"),
    ga("TeamsAppInstallation.ReadWriteForTeam.All"),
    ga("Teamwork.Migrate.All"),
    gp("ChannelMessage.Read.All"),
    gd("ChannelMessage.Send"),
    gd("ChannelMember.ReadWrite.All"),
    gd("TeamMember.ReadWrite.All"),
];
static CHATS: &[Permission] = &[
    gp("Chat.Read.All"),
    ga("ChatMember.Read.All"),
    ga("TeamsAppInstallation.ReadForChat.All"),
    ga("TeamsTab.Read.All"),
    gd("Chat.ReadWrite"),
    gd("ChatMessage.Send"),
    gd("Chat.Create"),
];

/// The permissions for the chosen services (users and groups always included): a union without
/// repeats, ordered by (resource, kind, name).
pub fn manifest(services: &[Service]) -> Vec<Permission> {
    let mut out: Vec<Permission> = Service::UsersGroups.permissions().to_vec();
    for s in services {
        out.extend_from_slice(s.permissions());
    }
    out.sort_by_key(Permission::sort_key);
    out.dedup_by_key(|p| p.sort_key());
    out
}

/// Names of the Teams protected APIs among the chosen services, for the page's note that
/// Microsoft must approve them for the new app id.
pub fn protected_apis(services: &[Service]) -> Vec<&'static str> {
    manifest(services)
        .into_iter()
        .filter(|p| p.protected)
        .map(|p| p.name)
        .collect()
}

/// A resource service principal's permissions in a tenant: (value, id) pairs of its enabled
/// `appRoles` and `oauth2PermissionScopes`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePermissions {
    pub app_roles: Vec<(String, String)>,
    pub scopes: Vec<(String, String)>,
}

impl ResourcePermissions {
    /// Reads a Graph `servicePrincipal` object (`appRoles`, `oauth2PermissionScopes`); entries
    /// with `isEnabled: false` or without `value`/`id` are skipped.
    pub fn from_service_principal(sp: &serde_json::Value) -> ResourcePermissions {
        let pairs = |key: &str| -> Vec<(String, String)> {
            sp.get(key)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter(|e| e.get("isEnabled").and_then(|b| b.as_bool()) != Some(false))
                        .filter_map(|e| {
                            let v = e.get("value")?.as_str()?;
                            let id = e.get("id")?.as_str()?;
                            Some((v.to_string(), id.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        ResourcePermissions {
            app_roles: pairs("appRoles"),
            scopes: pairs("oauth2PermissionScopes"),
        }
    }

    /// The id of a permission name of the given kind.
    pub fn id_of(&self, kind: PermKind, name: &str) -> Option<&str> {
        let list = match kind {
            PermKind::Application => &self.app_roles,
            PermKind::Delegated => &self.scopes,
        };
        list.iter()
            .find(|(v, _)| v == name)
            .map(|(_, id)| id.as_str())
    }
}

/// A permission with its id in this tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPermission {
    pub perm: Permission,
    pub id: String,
}

/// Resolves names to ids. `Err` lists every permission the tenant's resources lack (all
/// SharePoint ones when its service principal is absent).
pub fn resolve(
    perms: &[Permission],
    graph_sp: &ResourcePermissions,
    sharepoint_sp: Option<&ResourcePermissions>,
) -> Result<Vec<ResolvedPermission>, Vec<Permission>> {
    let mut ok = Vec::with_capacity(perms.len());
    let mut missing = Vec::new();
    for p in perms {
        let sp = match p.resource {
            Resource::Graph => Some(graph_sp),
            Resource::SharePoint => sharepoint_sp,
        };
        match sp.and_then(|sp| sp.id_of(p.kind, p.name)) {
            Some(id) => ok.push(ResolvedPermission {
                perm: *p,
                id: id.to_string(),
            }),
            None => missing.push(*p),
        }
    }
    if missing.is_empty() {
        Ok(ok)
    } else {
        Err(missing)
    }
}

/// The application's `requiredResourceAccess`: one entry per resource, in first-seen order.
pub fn required_resource_access(resolved: &[ResolvedPermission]) -> serde_json::Value {
    let mut groups: Vec<(Resource, Vec<serde_json::Value>)> = Vec::new();
    for r in resolved {
        let access = serde_json::json!({ "id": r.id, "type": r.perm.kind.access_type() });
        match groups.iter_mut().find(|(res, _)| *res == r.perm.resource) {
            Some((_, list)) => list.push(access),
            None => groups.push((r.perm.resource, vec![access])),
        }
    }
    serde_json::Value::Array(
        groups
            .into_iter()
            .map(|(res, list)| {
                serde_json::json!({ "resourceAppId": res.app_id(), "resourceAccess": list })
            })
            .collect(),
    )
}

/// The space-separated delegated scope names for one resource (an `oAuth2PermissionGrant`'s
/// `scope`).
pub fn delegated_scopes(perms: &[Permission], resource: Resource) -> String {
    perms
        .iter()
        .filter(|p| p.resource == resource && p.kind == PermKind::Delegated)
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference dump (a copy of `shared/reference/permissions.json`).
    const REFERENCE: &str = include_str!("../emulator/data/permissions.json");

    fn reference() -> serde_json::Value {
        serde_json::from_str(REFERENCE).unwrap_or_default()
    }

    /// `resources[appId]` of the reference file as [`ResourcePermissions`].
    fn reference_sp(app_id: &str) -> ResourcePermissions {
        let v = reference();
        let r = &v["resources"][app_id];
        let pairs = |key: &str| -> Vec<(String, String)> {
            r[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((
                                e["value"].as_str()?.to_string(),
                                e["id"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        ResourcePermissions {
            app_roles: pairs("applicationPermissions"),
            scopes: pairs("delegatedPermissions"),
        }
    }

    #[test]
    fn services() {
        assert_eq!(Service::all().len(), 10);
        for s in Service::all() {
            assert_eq!(Service::from_id(s.id()), Some(*s));
            assert!(!s.permissions().is_empty());
        }
        assert_eq!(Service::from_id("nope"), None);
        assert!(Service::UsersGroups.always_on() && !Service::Mail.always_on());
    }

    #[test]
    fn manifest_union_sorted_dedup() {
        let base = manifest(&[]);
        assert_eq!(base, manifest(&[Service::UsersGroups]));
        assert_eq!(base.len(), 8);
        let all = manifest(Service::all());
        let mut sorted = all.clone();
        sorted.sort_by_key(Permission::sort_key);
        assert_eq!(all, sorted);
        let keys: std::collections::HashSet<_> = all.iter().map(Permission::sort_key).collect();
        assert_eq!(keys.len(), all.len());
        // Group.ReadWrite.All delegated appears once although calendar and tasks both need it.
        let m = manifest(&[Service::Calendar, Service::Tasks]);
        let n = m
            .iter()
            .filter(|p| p.name == "Group.ReadWrite.All" && p.kind == PermKind::Delegated)
            .count();
        assert_eq!(n, 1);
        // Sites.FullControl.All on both resources.
        let sp = manifest(&[Service::SharePoint]);
        assert!(sp.iter().any(|p| p.resource == Resource::SharePoint));
        assert_eq!(
            sp.iter()
                .filter(|p| p.name == "Sites.FullControl.All")
                .count(),
            2
        );
        assert_eq!(protected_apis(&[Service::Mail]), Vec::<&str>::new());
        assert_eq!(
            protected_apis(&[Service::Teams, Service::Chats]),
            vec!["ChannelMessage.Read.All", "Chat.Read.All"]
        );
        assert_eq!(
            Permission {
                resource: Resource::Graph,
                kind: PermKind::Delegated,
                name: "Chat.ReadWrite",
                protected: false
            }
            .missing_message("8cee7605-0d5e-42b6-b269-c39f3411b5b9"),
            "Delegated permission Chat.ReadWrite was not found in your Azure service principal \
             8cee7605-0d5e-42b6-b269-c39f3411b5b9"
        );
    }

    #[test]
    fn every_name_exists_in_reference() {
        let graph = reference_sp(GRAPH_APP_ID);
        let sharepoint = reference_sp(SHAREPOINT_APP_ID);
        assert!(graph.app_roles.len() > 500 && graph.scopes.len() > 500);
        assert!(!sharepoint.app_roles.is_empty());
        let mut missing = Vec::new();
        for p in manifest(Service::all()) {
            let sp = match p.resource {
                Resource::Graph => &graph,
                Resource::SharePoint => &sharepoint,
            };
            if sp.id_of(p.kind, p.name).is_none() {
                missing.push(p);
            }
        }
        assert!(missing.is_empty(), "not in permissions.json: {missing:?}");
    }

    #[test]
    fn resolve_against_reference() {
        let graph = reference_sp(GRAPH_APP_ID);
        let sharepoint = reference_sp(SHAREPOINT_APP_ID);
        let all = manifest(Service::all());
        let Ok(resolved) = resolve(&all, &graph, Some(&sharepoint)) else {
            panic!("unresolved")
        };
        assert_eq!(resolved.len(), all.len());
        let id = |res: Resource, kind: PermKind, name: &str| {
            resolved
                .iter()
                .find(|r| r.perm.resource == res && r.perm.kind == kind && r.perm.name == name)
                .map(|r| r.id.as_str())
        };
        assert_eq!(
            id(Resource::Graph, PermKind::Delegated, "User.Read"),
            Some("e1fe6dd8-ba31-4d61-89e7-88639da4683d")
        );
        assert_eq!(
            id(
                Resource::Graph,
                PermKind::Application,
                "Sites.FullControl.All"
            ),
            Some("a82116e5-55eb-4c41-a434-62fe8a61c773")
        );
        assert_eq!(
            id(Resource::Graph, PermKind::Application, "Mail.ReadWrite"),
            Some("e2a3a72e-5f79-4c64-b1b1-878b674786c9")
        );
        assert_eq!(
            id(Resource::Graph, PermKind::Delegated, "openid"),
            Some("37f7f235-527c-4136-accd-4a02d197296e")
        );
        assert_eq!(
            id(
                Resource::SharePoint,
                PermKind::Application,
                "Sites.FullControl.All"
            ),
            Some("678536fe-1083-478a-9c59-b99265e6b0d3")
        );
        // Every resolved id is the file's id for that (resource, kind, value).
        for r in &resolved {
            let sp = if r.perm.resource == Resource::Graph {
                &graph
            } else {
                &sharepoint
            };
            assert_eq!(sp.id_of(r.perm.kind, r.perm.name), Some(r.id.as_str()));
        }
        let rra = required_resource_access(&resolved);
        assert_eq!(rra[0]["resourceAppId"], GRAPH_APP_ID);
        assert_eq!(rra[1]["resourceAppId"], SHAREPOINT_APP_ID);
        assert_eq!(rra[1]["resourceAccess"][0]["type"], "Role");
        // SharePoint service principal absent: its permissions are reported missing.
        let missing = resolve(&all, &graph, None).err().unwrap_or_default();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].resource, Resource::SharePoint);
        let missing = resolve(&all, &ResourcePermissions::default(), Some(&sharepoint))
            .err()
            .unwrap_or_default();
        assert_eq!(missing.len(), all.len() - 1);
    }

    #[test]
    fn service_principal_json() {
        let sp = serde_json::json!({
            "appRoles": [
                {"value": "A", "id": "1", "isEnabled": true},
                {"value": "B", "id": "2", "isEnabled": false},
                {"id": "3"}
            ],
            "oauth2PermissionScopes": [{"value": "S", "id": "4"}]
        });
        let r = ResourcePermissions::from_service_principal(&sp);
        assert_eq!(r.app_roles, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(r.id_of(PermKind::Delegated, "S"), Some("4"));
        assert_eq!(
            ResourcePermissions::from_service_principal(&serde_json::json!("x")),
            ResourcePermissions::default()
        );
        let m = manifest(&[Service::Chats]);
        assert_eq!(
            delegated_scopes(&m, Resource::Graph),
            "Chat.Create Chat.ReadWrite ChatMessage.Send User.Read offline_access openid profile"
        );
        assert_eq!(
            Resource::from_app_id(SHAREPOINT_APP_ID),
            Some(Resource::SharePoint)
        );
    }
}
