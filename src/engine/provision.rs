//! Operations as plans of idempotent steps (add app, check, repair, renew, delete registrator),
//! the facts learned while running them, the events shown as progress, and the ONE async driver
//! loop. Pure except for the driver, which does I/O only through the `HttpClient` and `Sleep`
//! traits; no clock, no global RNG; must not import `web` or `emulator`.
//!
//! Step names (`Step::as_str`, the UI's `data-testid="step-<name>"`):
//! - `discover`: one `$batch`: the signed-in admin (`/me`), the tenant (`/organization`), the
//!   resource service principals (Microsoft Graph, SharePoint) whose ids resolve the
//!   permission names, and the app by `uniqueName` and by display name (older console runs).
//! - `app`: upsert `PATCH /applications(uniqueName=…)` + `Prefer: create-if-missing` with the
//!   certificate in the body; an existing app is only patched where it lacks something.
//! - `service-principal`: upsert `PATCH /servicePrincipals(appId=…)`; waits out the app's
//!   replication.
//! - `secret`: `addPassword` (after removing undelivered or orphaned secrets of this tool).
//! - `owner`: `POST /applications/{id}/owners/$ref` (already an owner = done).
//! - `grants`: app role assignments and one `AllPrincipals` delegated grant per resource, in
//!   `$batch`es of 20; waits out the service principal's replication.
//! - `check`: reads assignments, grants and credentials and builds a [`CheckReport`].
//! - `certificate` (renew): `addKey` with a proof, or `keyCredentials` replaced.
//! - `remove-old` (renew): removes the replaced credentials made by this tool.
//! - `delete-registrator`: `DELETE /servicePrincipals(appId='8ed4fad3-…')` (gone = done).
//!
//! Rules and their sources:
//! - Upserts: https://learn.microsoft.com/graph/api/application-upsert,
//!   https://learn.microsoft.com/graph/api/serviceprincipal-upsert (201 created / 204 existed).
//! - A 429/503 was not executed (https://learn.microsoft.com/graph/throttling): plain retry.
//! - addPassword is not idempotent (each call adds a credential; `secretText` is returned only
//!   once, https://learn.microsoft.com/graph/api/application-addpassword): after a lost answer we
//!   list the app's passwordCredentials, remove the ones carrying this run's marker (their secret
//!   text is lost) and add again.
//! - App role assignments: https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto;
//!   delegated grants: https://learn.microsoft.com/graph/api/oauth2permissiongrant-post
//!   (one per client and resource; scopes merged with PATCH,
//!   https://learn.microsoft.com/graph/api/oauth2permissiongrant-update).

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::error::Error;
use crate::engine::graph::{
    self, Added, Application, Call, GraphCtx, NewKeyCredential, Reply, Upserted, Verdict,
};
use crate::engine::http::{HttpClient, Sleep, TransportError};
pub use crate::engine::permissions::PermKind;
use crate::engine::permissions::{self, Service};
use crate::engine::retry::{next_delay, RetryPolicy, RetryReason};
use crate::engine::secret::{AppId, ClientSecret, KeyId, ObjectId, PrivateKeyDer};

/// Default name of the plugin's app (product.md).
pub const DEFAULT_APP_NAME: &str = "bacula-m365-plugin-standalone";
/// Why `name` cannot be the app's name, in a sentence that says what to do; `None` when it can.
/// The name is the app's `uniqueName` and display name in Entra, the certificate's common name
/// (at most 64 characters) and the stem of the `.pfx` file whose path the .conf holds, so it is
/// kept to characters every file system, zip tool and OData key accepts as they are.
pub fn app_name_problem(name: &str) -> Option<&'static str> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let starts_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !starts_ok || !name.chars().all(ok_char) {
        Some(
            "Use 1 to 64 characters: letters, digits, '-', '_' and '.', starting with a letter or \
             digit (the name is used in Entra, in the certificate and as the .pfx file name).",
        )
    } else {
        None
    }
}

/// The registrator's application id (the spec, B-1).
pub const REGISTRATOR_APP_ID: &str = "8ed4fad3-3f63-44fb-b7e0-e324895d7df9";
/// Credentials made by this tool carry this prefix in their `displayName`.
pub const CREDENTIAL_MARKER: &str = "bacula-m365-registrator";
/// Microsoft Graph's application id (the resource of most permissions).
pub const GRAPH_RESOURCE_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 SharePoint Online's application id.
pub const SHAREPOINT_RESOURCE_APP_ID: &str = "00000003-0000-0ff1-ce00-000000000000";
/// Default secret lifetime: 24 months (product.md).
pub const DEFAULT_SECRET_DAYS: u32 = 730;
/// Renew what expires within this many days (the spec, B-4: "less than 3 months").
pub const RENEW_WINDOW_DAYS: u32 = 90;

/// The `displayName` of a credential made by run `run_id`.
pub fn credential_marker(run_id: &str) -> String {
    format!("{CREDENTIAL_MARKER} run {run_id}")
}

/// Whether a credential's display name says this tool made it.
pub fn made_by_tool(display_name: Option<&str>) -> bool {
    display_name.is_some_and(|d| d.starts_with(CREDENTIAL_MARKER))
}

// ---------------------------------------------------------------------------------------------
// Specs, plans, steps, permissions.

/// One permission the plugin's app needs, by name (ids are resolved in the tenant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PermissionReq {
    /// The resource's application id (`00000003-0000-0000-c000-000000000000` for Graph).
    pub resource_app_id: String,
    /// Display name of the resource (`Microsoft Graph`, `SharePoint`).
    pub resource_name: String,
    pub kind: PermKind,
    pub name: String,
    /// A Microsoft "protected API" (needs Microsoft's approval for the app id).
    pub protected: bool,
}

impl PermissionReq {
    pub fn new(
        resource_app_id: &str,
        resource_name: &str,
        kind: PermKind,
        name: &str,
        protected: bool,
    ) -> Self {
        PermissionReq {
            resource_app_id: resource_app_id.to_string(),
            resource_name: resource_name.to_string(),
            kind,
            name: name.to_string(),
            protected,
        }
    }
    /// The manifest's permissions (`permissions::manifest(&services)`) as requirements.
    pub fn from_manifest(perms: &[permissions::Permission]) -> Vec<PermissionReq> {
        perms
            .iter()
            .map(|p| {
                PermissionReq::new(
                    p.resource.app_id(),
                    p.resource.display_name(),
                    p.kind,
                    p.name,
                    p.protected,
                )
            })
            .collect()
    }
    /// `Application permission Mail.ReadWrite (Microsoft Graph)`.
    pub fn describe(&self) -> String {
        format!(
            "{} permission {} ({})",
            self.kind.label(),
            self.name,
            self.resource_name
        )
    }
}

/// What a reload left behind: the run that was interrupted and what it had delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumeInfo {
    /// The interrupted run's id (its credentials carry `credential_marker(run_id)`).
    pub run_id: String,
    /// Secrets it created that the admin never downloaded: removed.
    pub undelivered_secret_key_ids: Vec<KeyId>,
    /// Secrets it created that the admin did download: kept. Any other credential with the
    /// interrupted run's marker is an orphan (its answer was lost) and is removed.
    #[serde(default)]
    pub delivered_secret_key_ids: Vec<KeyId>,
}

/// Input of add-app (B-2). All time is passed in (`now_unix`).
#[derive(Debug, Clone, PartialEq)]
pub struct AddAppSpec {
    pub app_name: String,
    /// From the manifest of the chosen services.
    pub permissions: Vec<PermissionReq>,
    /// This run's id (random, made by the caller, kept across a reload for [`ResumeInfo`]).
    pub run_id: String,
    pub now_unix: i64,
    pub secret_lifetime_days: u32,
    /// The new certificate (public part), put in the app's `keyCredentials`.
    pub certificate: Option<NewKeyCredential>,
    pub resume: Option<ResumeInfo>,
}

impl AddAppSpec {
    /// Add-app for the chosen plugin services (users and groups always included).
    pub fn for_services(services: &[Service], run_id: &str, now_unix: i64) -> Self {
        AddAppSpec::new(
            PermissionReq::from_manifest(&permissions::manifest(services)),
            run_id,
            now_unix,
        )
    }
    pub fn new(permissions: Vec<PermissionReq>, run_id: &str, now_unix: i64) -> Self {
        AddAppSpec {
            app_name: DEFAULT_APP_NAME.to_string(),
            permissions,
            run_id: run_id.to_string(),
            now_unix,
            secret_lifetime_days: DEFAULT_SECRET_DAYS,
            certificate: None,
            resume: None,
        }
    }
}

/// Which service principal a check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// The object id from the config (`objectid=`).
    ServicePrincipal(ObjectId),
    /// Found by the app's name (uniqueName or display name).
    AppName(String),
}

/// Input of the permissions check (and of its repair).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub target: CheckTarget,
    pub permissions: Vec<PermissionReq>,
    pub now_unix: i64,
}

/// Input of delete-registrator (B-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSpec {
    pub registrator_app_id: AppId,
    /// An add-app was started and not finished: refuse (product.md).
    pub add_app_incomplete: bool,
}

impl Default for DeleteSpec {
    fn default() -> Self {
        DeleteSpec {
            registrator_app_id: AppId::new(REGISTRATOR_APP_ID),
            add_app_incomplete: false,
        }
    }
}

/// Input of renew (B-4).
#[derive(Debug, Clone, PartialEq)]
pub struct RenewSpec {
    pub app_name: String,
    pub permissions: Vec<PermissionReq>,
    pub run_id: String,
    pub now_unix: i64,
    /// Renew everything whatever its expiry (`q_addapp_renew=true`).
    pub force: bool,
    pub secret_lifetime_days: u32,
    /// The new certificate; without it the certificate is left alone.
    pub new_certificate: Option<NewKeyCredential>,
    /// The current certificate and its key (read from the admin's current PFX in the page),
    /// to sign the addKey/removeKey proof; without it the certificates are replaced by PATCH.
    pub current_key: Option<CurrentKey>,
}

/// A certificate of the app and its private key: signs proofs of possession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentKey {
    pub key: PrivateKeyDer,
    pub cert_der: Vec<u8>,
}

/// The operation a plan performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    AddApp(AddAppSpec),
    Check(CheckSpec),
    Repair(CheckSpec),
    Renew(RenewSpec),
    DeleteRegistrator(DeleteSpec),
}

/// A step of a plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Step {
    Discover,
    App,
    ServicePrincipal,
    Secret,
    Certificate,
    Owner,
    Grants,
    Check,
    RemoveOld,
    DeleteRegistrator,
}

impl Step {
    /// Stable name (`data-testid="step-<name>"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discover => "discover",
            Step::App => "app",
            Step::ServicePrincipal => "service-principal",
            Step::Secret => "secret",
            Step::Certificate => "certificate",
            Step::Owner => "owner",
            Step::Grants => "grants",
            Step::Check => "check",
            Step::RemoveOld => "remove-old",
            Step::DeleteRegistrator => "delete-registrator",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step as shown before running: what it does and which calls it may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    pub step: Step,
    pub title: String,
    pub calls: Vec<String>,
}

/// Everything an operation will do, as data (shown before running; asserted on by tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub operation: Operation,
    pub steps: Vec<PlannedStep>,
    /// Every permission the app gets (empty for delete).
    pub permissions: Vec<PermissionReq>,
    pub retry: RetryPolicy,
}

impl Plan {
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.step.as_str()).collect()
    }
}

fn planned(step: Step, title: &str, calls: &[&str]) -> PlannedStep {
    PlannedStep {
        step,
        title: title.to_string(),
        calls: calls.iter().map(|c| c.to_string()).collect(),
    }
}

fn resources_of(perms: &[PermissionReq]) -> Vec<String> {
    let mut r: Vec<String> = perms.iter().map(|p| p.resource_app_id.clone()).collect();
    r.sort();
    r.dedup();
    r
}

/// Plans add-app (B-2).
pub fn plan_add_app(spec: &AddAppSpec) -> Plan {
    let name = &spec.app_name;
    let n_app = spec
        .permissions
        .iter()
        .filter(|p| p.kind == PermKind::Application)
        .count();
    let n_res = spec
        .permissions
        .iter()
        .filter(|p| p.kind == PermKind::Delegated)
        .map(|p| &p.resource_app_id)
        .collect::<BTreeSet<_>>()
        .len();
    let mut discover = vec![
        "GET /me".to_string(),
        "GET /organization".to_string(),
        format!("GET /applications(uniqueName='{name}')"),
        format!("GET /applications?$filter=displayName eq '{name}'"),
    ];
    for r in resources_of(&spec.permissions) {
        discover.push(format!("GET /servicePrincipals(appId='{r}')"));
    }
    let steps = vec![
        PlannedStep {
            step: Step::Discover,
            title: "Find the tenant, the signed-in admin, the permission ids and an existing app (one batch)".into(),
            calls: discover.into_iter().map(|c| format!("$batch: {c}")).collect(),
        },
        PlannedStep {
            step: Step::App,
            title: format!("Create the application {name} with its certificate, or find it"),
            calls: vec![format!("PATCH /applications(uniqueName='{name}') (Prefer: create-if-missing)")],
        },
        planned(
            Step::ServicePrincipal,
            "Create its service principal (waits until Azure shows the new app)",
            &["PATCH /servicePrincipals(appId='<appId>') (Prefer: create-if-missing)"],
        ),
        planned(Step::Secret, "Add a client secret", &["POST /applications/<id>/addPassword"]),
        planned(Step::Owner, "Make you an owner of the app", &["POST /applications/<id>/owners/$ref"]),
        PlannedStep {
            step: Step::Grants,
            title: format!(
                "Grant admin consent: {n_app} application permission{} and {n_res} delegated grant{} (waits until Azure shows the new service principal)",
                if n_app == 1 { "" } else { "s" },
                if n_res == 1 { "" } else { "s" }
            ),
            calls: vec![
                format!("$batch: {n_app} x POST /servicePrincipals/<resource>/appRoleAssignedTo"),
                format!("$batch: {n_res} x POST /oauth2PermissionGrants (consentType AllPrincipals)"),
            ],
        },
    ];
    Plan {
        operation: Operation::AddApp(spec.clone()),
        steps,
        permissions: spec.permissions.clone(),
        retry: RetryPolicy::default(),
    }
}

fn check_steps(spec: &CheckSpec) -> Vec<PlannedStep> {
    let mut discover: Vec<String> = resources_of(&spec.permissions)
        .iter()
        .map(|r| format!("$batch: GET /servicePrincipals(appId='{r}')"))
        .collect();
    match &spec.target {
        CheckTarget::ServicePrincipal(id) => {
            discover.push(format!("$batch: GET /servicePrincipals/{id}"))
        }
        CheckTarget::AppName(n) => {
            discover.push(format!("$batch: GET /applications(uniqueName='{n}')"));
            discover.push(format!(
                "$batch: GET /applications?$filter=displayName eq '{n}'"
            ));
        }
    }
    vec![
        PlannedStep {
            step: Step::Discover,
            title: "Find the permission ids and the app".into(),
            calls: discover,
        },
        planned(
            Step::ServicePrincipal,
            "Find the app's service principal",
            &["GET /servicePrincipals(appId='<appId>')"],
        ),
        planned(
            Step::Check,
            "Compare its grants with the manifest",
            &[
                "$batch: GET /servicePrincipals/<id>/appRoleAssignments",
                "$batch: GET /servicePrincipals/<id>/oauth2PermissionGrants",
                "$batch: GET /applications(appId='<appId>')",
            ],
        ),
    ]
}

/// Plans the permissions check: the outcome carries a [`CheckReport`].
pub fn plan_check(spec: &CheckSpec) -> Plan {
    Plan {
        operation: Operation::Check(spec.clone()),
        steps: check_steps(spec),
        permissions: spec.permissions.clone(),
        retry: RetryPolicy::default(),
    }
}

/// Plans the repair offered by a check: grants whatever is missing (and reports again).
pub fn plan_repair(spec: &CheckSpec) -> Plan {
    let mut steps = check_steps(spec);
    steps.insert(
        2,
        planned(
            Step::Grants,
            "Grant the missing permissions",
            &[
                "$batch: POST /servicePrincipals/<resource>/appRoleAssignedTo",
                "$batch: POST|PATCH /oauth2PermissionGrants",
            ],
        ),
    );
    Plan {
        operation: Operation::Repair(spec.clone()),
        steps,
        permissions: spec.permissions.clone(),
        retry: RetryPolicy::default(),
    }
}

/// Plans delete-registrator (B-5): one idempotent DELETE.
pub fn plan_delete_registrator(spec: &DeleteSpec) -> Plan {
    Plan {
        operation: Operation::DeleteRegistrator(spec.clone()),
        steps: vec![PlannedStep {
            step: Step::DeleteRegistrator,
            title: "Delete the registrator's service principal from the tenant".into(),
            calls: vec![format!(
                "DELETE /servicePrincipals(appId='{}')",
                spec.registrator_app_id
            )],
        }],
        permissions: Vec::new(),
        retry: RetryPolicy::default(),
    }
}

/// Plans renew (B-4).
pub fn plan_renew(spec: &RenewSpec) -> Plan {
    let name = &spec.app_name;
    let mut discover: Vec<String> = vec![
        format!("$batch: GET /applications(uniqueName='{name}')"),
        format!("$batch: GET /applications?$filter=displayName eq '{name}'"),
    ];
    for r in resources_of(&spec.permissions) {
        discover.push(format!("$batch: GET /servicePrincipals(appId='{r}')"));
    }
    let cert_call = if spec.current_key.is_some() {
        "POST /applications/<id>/addKey (proof signed by the current certificate)"
    } else {
        "PATCH /applications/<id> keyCredentials (replaces the certificate: the old one stops working)"
    };
    let mut steps = vec![
        PlannedStep {
            step: Step::Discover,
            title: "Find the app, its credentials and the permission ids".into(),
            calls: discover,
        },
        planned(
            Step::App,
            "Bring the app's permission list up to date",
            &["PATCH /applications/<id>"],
        ),
        planned(
            Step::ServicePrincipal,
            "Find its service principal",
            &["GET /servicePrincipals(appId='<appId>')"],
        ),
        planned(
            Step::Secret,
            "Add a new secret if the current one expires within 90 days (or forced)",
            &["POST /applications/<id>/addPassword"],
        ),
    ];
    if spec.new_certificate.is_some() {
        steps.push(planned(
            Step::Certificate,
            "Add the new certificate if the current one expires within 90 days (or forced)",
            &[cert_call],
        ));
    }
    steps.push(planned(
        Step::RemoveOld,
        "Remove the replaced credentials made by this tool",
        &[
            "POST /applications/<id>/removePassword",
            "POST /applications/<id>/removeKey",
        ],
    ));
    steps.push(planned(
        Step::Grants,
        "Grant what is missing",
        &[
            "$batch: POST /servicePrincipals/<resource>/appRoleAssignedTo",
            "$batch: POST|PATCH /oauth2PermissionGrants",
        ],
    ));
    Plan {
        operation: Operation::Renew(spec.clone()),
        steps,
        permissions: spec.permissions.clone(),
        retry: RetryPolicy::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Events and outcome.

/// The credentials the config file needs, emitted the moment the secret exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub app_object_id: ObjectId,
    pub app_id: AppId,
    /// The service principal's object id (`objectid=` in the config).
    pub sp_object_id: Option<ObjectId>,
    /// The tenant id, from `/organization` when it was read.
    pub tenant_id: Option<String>,
    pub secret: ClientSecret,
    pub secret_key_id: KeyId,
    pub secret_end: Option<String>,
}

/// Something the admin should know that is not an error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Notice {
    /// The app already has valid credentials made by this tool: none were added.
    AlreadySetUp,
    /// The app found was made by the older console command (found by display name).
    AdoptedConsoleApp { app_id: AppId },
    /// Several apps carry the name; the first was used.
    SeveralAppsNamed { count: usize },
    /// Existing certificates were replaced (no proof key): they stop working.
    CertificatesReplaced { count: usize },
    /// Protected Teams APIs need Microsoft's approval for this app id.
    ProtectedApis { names: Vec<String> },
    /// Orphaned or undelivered secrets of this tool were removed.
    SecretsRemoved { count: usize },
}

impl Notice {
    pub fn text(&self) -> String {
        match self {
            Notice::AlreadySetUp => {
                "already set up; use Renew to issue new credentials and a new config".into()
            }
            Notice::AdoptedConsoleApp { app_id } => {
                format!("found the app made by the console command ({app_id}); it is used as it is")
            }
            Notice::SeveralAppsNamed { count } => {
                format!("{count} applications have this name; the first one was used")
            }
            Notice::CertificatesReplaced { count } => {
                format!("{count} existing certificate(s) were replaced and stop working")
            }
            Notice::ProtectedApis { names } => format!(
                "{} are Microsoft protected APIs: request access for this app id at aka.ms/teamsgraph/requestaccess",
                names.join(", ")
            ),
            Notice::SecretsRemoved { count } => {
                format!("{count} secret(s) made by an interrupted run were removed")
            }
        }
    }
}

/// Progress, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StepStarted {
        step: Step,
    },
    Retrying {
        step: Step,
        reason: RetryReason,
        wait_ms: u64,
        attempt: u32,
    },
    StepDone {
        step: Step,
        summary: String,
    },
    StepSkipped {
        step: Step,
        summary: String,
    },
    /// A secret exists: the config can be downloaded whatever fails later.
    SecretCreated(Credentials),
    Notice {
        step: Step,
        notice: Notice,
    },
    StepFailed {
        step: Step,
        error: Error,
    },
}

/// A permission reference in a check report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRef {
    pub resource_name: String,
    pub kind: PermKind,
    pub name: String,
}

/// A credential and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub kind: CredentialKind,
    pub key_id: Option<KeyId>,
    pub display_name: Option<String>,
    pub end: Option<String>,
    pub made_by_tool: bool,
    /// Ends within [`RENEW_WINDOW_DAYS`] (or has ended).
    pub expiring: bool,
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Secret,
    Certificate,
}

/// The result of a permissions check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub sp_object_id: ObjectId,
    pub missing: Vec<PermissionRef>,
    pub extra: Vec<PermissionRef>,
    pub credentials: Vec<CredentialInfo>,
    /// Protected permissions present: their activation by Microsoft cannot be checked.
    pub protected_unverifiable: Vec<String>,
}

impl CheckReport {
    pub fn all_set(&self) -> bool {
        self.missing.is_empty()
    }
    /// The report in the spec's words, one line each.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .missing
            .iter()
            .map(|m| {
                format!(
                    "{} permission {} was not found in your Azure service principal {}",
                    m.kind.label(),
                    m.name,
                    self.sp_object_id
                )
            })
            .collect();
        if out.is_empty() {
            out.push("All permissions are correctly set".into());
        } else {
            out.push("Please review your app permissions".into());
        }
        for e in &self.extra {
            out.push(format!(
                "{} permission {} ({}) is granted but not needed",
                e.kind.label(),
                e.name,
                e.resource_name
            ));
        }
        for c in &self.credentials {
            let what = match c.kind {
                CredentialKind::Secret => "Secret",
                CredentialKind::Certificate => "Certificate",
            };
            let name = c.display_name.as_deref().unwrap_or("(no name)");
            let end = c.end.as_deref().unwrap_or("?");
            if c.expired {
                out.push(format!("{what} {name} expired on {end}"));
            } else if c.expiring {
                out.push(format!("{what} {name} expires on {end}: renew it"));
            }
        }
        if !self.protected_unverifiable.is_empty() {
            out.push(format!(
                "Whether Microsoft enabled the protected APIs ({}) cannot be checked",
                self.protected_unverifiable.join(", ")
            ));
        }
        out
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// HTTP round trips (a `$batch` is one).
    pub round_trips: u32,
    /// Time spent waiting between retries (the driver reads no clock).
    pub slept_ms: u64,
    pub summaries: Vec<(Step, String)>,
    /// The new secret, when one was made.
    pub credentials: Option<Credentials>,
    /// The app had valid credentials made by this tool already; nothing new was issued.
    pub already_set_up: bool,
    pub notices: Vec<Notice>,
    pub report: Option<CheckReport>,
}

// ---------------------------------------------------------------------------------------------
// Facts learned while running.

/// A permission resolved in the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPermission {
    pub req: PermissionReq,
    /// The app role id or scope id on the resource.
    pub id: String,
    /// The resource's service principal in this tenant.
    pub resource_sp: ObjectId,
}

/// Everything a run has learned; kept by the caller between runs of the same plan (a failed
/// run can be run again from where it stopped).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub me: Option<graph::User>,
    pub org: Option<graph::Organization>,
    resource_sps: BTreeMap<String, Option<graph::ServicePrincipal>>,
    pub resolved: Vec<ResolvedPermission>,
    by_unique_name: Option<Option<Application>>,
    by_display_name: Option<Vec<Application>>,
    target_sp_lookup: Option<Option<graph::ServicePrincipal>>,
    discovered: bool,
    /// The plugin app.
    pub app: Option<Application>,
    /// Created (or first seen) by this run: a not-found on it means replication lag.
    app_fresh: bool,
    app_upsert_existed: bool,
    app_patch_done: bool,
    app_summary: Option<String>,
    /// Whether this run issues new credentials (decided when the app is known).
    need_new_credentials: Option<bool>,
    pub sp_id: Option<ObjectId>,
    sp_fresh: bool,
    sp_looked_up: bool,
    sp_upsert_existed: bool,
    sp_summary: Option<String>,
    secret_outcome_unknown: bool,
    secrets_to_remove: Option<Vec<KeyId>>,
    secrets_removed: BTreeSet<KeyId>,
    /// After the add: this run's other secrets (a browser may resend a POST whose connection
    /// closed unanswered, so the add can have happened twice); `None` until re-read.
    extra_secrets: Option<Vec<KeyId>>,
    pub credentials: Option<Credentials>,
    owner: Option<Added>,
    existing_assignments: Option<Vec<graph::AppRoleAssignment>>,
    existing_grants: Option<Vec<graph::OAuth2PermissionGrant>>,
    granted_now: usize,
    /// A grant met replication lag: poll with one sub-request until one succeeds.
    grants_waiting: bool,
    grants_done: bool,
    grants_summary: Option<String>,
    check_app: Option<Option<Application>>,
    pub report: Option<CheckReport>,
    cert_done: bool,
    cert_summary: Option<String>,
    new_key_id: Option<KeyId>,
    old_removed: BTreeSet<KeyId>,
    deleted: Option<Added>,
    check_target_app_id: Option<AppId>,
    check_read: BTreeSet<String>,
    pub notices: Vec<Notice>,
}

/// Counters and facts of one plan's run(s).
#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub facts: Facts,
    pub round_trips: u32,
    pub slept_ms: u64,
    pub finished: BTreeMap<Step, String>,
}

impl RunState {
    pub fn new() -> Self {
        RunState::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

/// What to send next for a step.
#[derive(Debug, Clone, PartialEq)]
struct Outgoing {
    /// (tag, call): one call is sent plainly, several as one `$batch` (tags are the batch ids).
    calls: Vec<(String, Call)>,
}

enum Next {
    Send(Outgoing),
    Done(String),
    Skip(String),
}

/// Most round trips one step may make without finishing (a guard against a step that
/// never progresses; replication polls count).
const MAX_ROUND_TRIPS_PER_STEP: u32 = 400;

/// Runs a plan: for each step, build the request from the facts learned so far, send it,
/// classify the answer, then done / retry after a wait / fail. Emits events as it goes.
/// Steps already finished in `state` (a previous run of the same plan) are not run again.
pub async fn run<C: HttpClient, S: Sleep>(
    plan: &Plan,
    state: &mut RunState,
    ctx: &GraphCtx,
    client: &C,
    sleep: &S,
    rand: &mut impl FnMut() -> u32,
    on_event: &mut impl FnMut(Event),
) -> Result<Outcome, Error> {
    if let Operation::DeleteRegistrator(d) = &plan.operation {
        if d.add_app_incomplete {
            return Err(Error::InvalidInput(
                "an add-app run is not finished: finish it before deleting the registrator".into(),
            ));
        }
    }
    for ps in &plan.steps {
        let step = ps.step;
        if state.finished.contains_key(&step) {
            continue;
        }
        on_event(Event::StepStarted { step });
        match run_step(plan, step, state, ctx, client, sleep, rand, on_event).await {
            Ok(summary) => {
                state.finished.insert(step, summary);
            }
            Err(e) => {
                on_event(Event::StepFailed {
                    step,
                    error: e.clone(),
                });
                return Err(e);
            }
        }
    }
    let f = &state.facts;
    Ok(Outcome {
        round_trips: state.round_trips,
        slept_ms: state.slept_ms,
        summaries: plan
            .steps
            .iter()
            .filter_map(|s| state.finished.get(&s.step).map(|m| (s.step, m.clone())))
            .collect(),
        credentials: f.credentials.clone(),
        already_set_up: f.need_new_credentials == Some(false),
        notices: f.notices.clone(),
        report: f.report.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_step<C: HttpClient, S: Sleep>(
    plan: &Plan,
    step: Step,
    state: &mut RunState,
    ctx: &GraphCtx,
    client: &C,
    sleep: &S,
    rand: &mut impl FnMut() -> u32,
    on_event: &mut impl FnMut(Event),
) -> Result<String, Error> {
    let mut failures = 0u32;
    let mut polls = 0u32;
    let mut replication_waited = 0u64;
    let mut trips = 0u32;
    loop {
        let out = match next(plan, step, &state.facts, &ctx.base)? {
            Next::Done(s) => {
                on_event(Event::StepDone {
                    step,
                    summary: s.clone(),
                });
                return Ok(s);
            }
            Next::Skip(s) => {
                on_event(Event::StepSkipped {
                    step,
                    summary: s.clone(),
                });
                return Ok(s);
            }
            Next::Send(out) => out,
        };
        trips += 1;
        if trips > MAX_ROUND_TRIPS_PER_STEP {
            return Err(Error::Bug(format!(
                "{step}: no progress after {MAX_ROUND_TRIPS_PER_STEP} requests"
            )));
        }
        state.round_trips += 1;
        let replies = send(ctx, client, &out, rand).await;
        let mut events = Vec::new();
        let mut retry: Option<RetryReason> = None;
        let mut last_error: Option<Error> = None;
        let mut fail: Option<Error> = None;
        for (tag, reply) in &replies {
            if let Ok(r) = reply {
                if !(200..300).contains(&r.status) {
                    last_error = Some(Error::Graph(Box::new(
                        crate::engine::error::GraphError::from_parts(
                            step.as_str(),
                            r.status,
                            &r.headers,
                            &r.body,
                        ),
                    )));
                }
            } else if let Err(t) = reply {
                last_error = Some(Error::Transport {
                    step: step.as_str().into(),
                    detail: t.0.clone(),
                });
            }
            match absorb(
                plan,
                step,
                &mut state.facts,
                tag,
                reply.as_ref(),
                &mut events,
            ) {
                Verdict::Done(()) => {}
                Verdict::Retry(r) => retry = Some(retry.map_or(r, |x| x.stronger(r))),
                Verdict::Fail(e) => {
                    if fail.is_none() {
                        fail = Some(e);
                    }
                }
            }
        }
        for ev in events {
            if let Event::Notice { notice, .. } = &ev {
                state.facts.notices.push(notice.clone());
            }
            on_event(ev);
        }
        if let Some(e) = fail {
            return Err(e);
        }
        if retry.is_none() {
            // Progress: a later throttle starts a fresh count (max_attempts is per obstacle).
            failures = 0;
        }
        if let Some(reason) = retry {
            let delay = if reason == RetryReason::Replication {
                polls += 1;
                next_delay(&plan.retry, polls, reason, replication_waited, rand())
            } else {
                failures += 1;
                next_delay(&plan.retry, failures, reason, 0, rand())
            };
            let Some(wait_ms) = delay else {
                return Err(
                    last_error.unwrap_or_else(|| Error::Bug(format!("{step}: gave up retrying")))
                );
            };
            let attempt = if reason == RetryReason::Replication {
                polls
            } else {
                failures
            };
            on_event(Event::Retrying {
                step,
                reason,
                wait_ms,
                attempt,
            });
            sleep.sleep(wait_ms).await;
            state.slept_ms += wait_ms;
            if reason == RetryReason::Replication {
                replication_waited += wait_ms;
            }
        }
    }
}

type TaggedReply = (String, Result<Reply, TransportError>);

async fn send<C: HttpClient>(
    ctx: &GraphCtx,
    client: &C,
    out: &Outgoing,
    rand: &mut impl FnMut() -> u32,
) -> Vec<TaggedReply> {
    let crid = graph::new_uuid(rand);
    if let [(tag, call)] = out.calls.as_slice() {
        let r = client
            .send(ctx.request(call, &crid))
            .await
            .map(|resp| Reply::from_response(&resp));
        return vec![(tag.clone(), r)];
    }
    let req = match ctx.batch(&out.calls, &crid) {
        Ok(r) => r,
        Err(e) => {
            // Cannot happen (ids are unique, at most BATCH_MAX): report as a broken reply.
            let t = TransportError(e.to_string());
            return out
                .calls
                .iter()
                .map(|(tag, _)| (tag.clone(), Err(t.clone())))
                .collect();
        }
    };
    match client.send(req).await {
        Err(t) => out
            .calls
            .iter()
            .map(|(tag, _)| (tag.clone(), Err(t.clone())))
            .collect(),
        Ok(resp) => match graph::split_batch(&resp) {
            // The batch as a whole was throttled or refused: every sub-request gets that answer.
            Err(whole) => out
                .calls
                .iter()
                .map(|(tag, _)| (tag.clone(), Ok(whole.clone())))
                .collect(),
            Ok(mut parts) => out
                .calls
                .iter()
                .map(|(tag, _)| {
                    let r = match parts.iter().position(|(id, _)| id == tag) {
                        Some(i) => parts.swap_remove(i).1,
                        None => Reply {
                            status: 0,
                            headers: Vec::new(),
                            body: serde_json::Value::Null,
                        },
                    };
                    (tag.clone(), Ok(r))
                })
                .collect(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Per step: what to send next (pure) and what an answer teaches (pure).

fn spec_permissions(plan: &Plan) -> &[PermissionReq] {
    &plan.permissions
}

fn app_name(plan: &Plan) -> Option<&str> {
    match &plan.operation {
        Operation::AddApp(s) => Some(&s.app_name),
        Operation::Renew(s) => Some(&s.app_name),
        Operation::Check(c) | Operation::Repair(c) => match &c.target {
            CheckTarget::AppName(n) => Some(n),
            CheckTarget::ServicePrincipal(_) => None,
        },
        Operation::DeleteRegistrator(_) => None,
    }
}

fn now_unix(plan: &Plan) -> i64 {
    match &plan.operation {
        Operation::AddApp(s) => s.now_unix,
        Operation::Renew(s) => s.now_unix,
        Operation::Check(c) | Operation::Repair(c) => c.now_unix,
        Operation::DeleteRegistrator(_) => 0,
    }
}

fn bug(step: Step, what: &str) -> Error {
    Error::Bug(format!("{step}: {what}"))
}

fn send1(tag: &str, call: Call) -> Next {
    Next::Send(Outgoing {
        calls: vec![(tag.to_string(), call)],
    })
}

fn next(plan: &Plan, step: Step, f: &Facts, graph_base: &str) -> Result<Next, Error> {
    match step {
        Step::Discover => next_discover(plan, f),
        Step::App => next_app(plan, f),
        Step::ServicePrincipal => next_sp(plan, f),
        Step::Secret => next_secret(plan, f),
        Step::Owner => next_owner(graph_base, f),
        Step::Grants => next_grants(plan, f),
        Step::Check => next_check(plan, f),
        Step::Certificate => next_certificate(plan, f),
        Step::RemoveOld => next_remove_old(plan, f),
        Step::DeleteRegistrator => next_delete(plan, f),
    }
}

fn absorb(
    plan: &Plan,
    step: Step,
    f: &mut Facts,
    tag: &str,
    reply: Result<&Reply, &TransportError>,
    events: &mut Vec<Event>,
) -> Verdict<()> {
    let reply = match reply {
        Ok(r) => r,
        Err(_) => {
            // No answer: whether the server acted is unknown. Only addPassword is unsafe to
            // repeat blindly; mark it for a check of the app's credentials first.
            if step == Step::Secret && tag == "add" {
                f.secret_outcome_unknown = true;
                f.secrets_to_remove = None;
            }
            if step == Step::Certificate && tag == "add-key" {
                f.secret_outcome_unknown = true;
            }
            return Verdict::Retry(RetryReason::Network);
        }
    };
    let s = step.as_str();
    match step {
        Step::Discover => absorb_discover(plan, f, tag, reply, events),
        Step::App => absorb_app(plan, f, tag, reply, events),
        Step::ServicePrincipal => absorb_sp(f, tag, reply),
        Step::Secret => absorb_secret(plan, f, tag, reply, events),
        Step::Owner => graph::classify_add_owner(s, reply, f.app_fresh).map(|a| f.owner = Some(a)),
        Step::Grants => absorb_grants(f, tag, reply),
        Step::Check => absorb_check(plan, f, tag, reply),
        Step::Certificate => absorb_certificate(plan, f, tag, reply, events),
        Step::RemoveOld => absorb_remove_old(f, tag, reply),
        Step::DeleteRegistrator => graph::classify_delete(s, reply).map(|a| f.deleted = Some(a)),
    }
}

// --- discover ---------------------------------------------------------------------------------

fn next_discover(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    if f.discovered {
        return Ok(Next::Done(discover_summary(f)));
    }
    let mut calls: Vec<(String, Call)> = Vec::new();
    let add_app = matches!(plan.operation, Operation::AddApp(_));
    if add_app && f.me.is_none() {
        calls.push(("me".into(), graph::get_me()));
    }
    if add_app && f.org.is_none() {
        calls.push(("org".into(), graph::get_organization()));
    }
    for r in resources_of(spec_permissions(plan)) {
        if !f.resource_sps.contains_key(&r) {
            calls.push((format!("res:{r}"), graph::get_service_principal(&r)));
        }
    }
    if let Some(name) = app_name(plan) {
        if f.by_unique_name.is_none() {
            calls.push((
                "app-unique".into(),
                graph::get_application_by_unique_name(name),
            ));
        }
        if f.by_display_name.is_none() {
            calls.push((
                "app-name".into(),
                graph::list_applications_by_display_name(name),
            ));
        }
    }
    if let Operation::Check(c) | Operation::Repair(c) = &plan.operation {
        if let CheckTarget::ServicePrincipal(id) = &c.target {
            if f.target_sp_lookup.is_none() {
                calls.push(("target-sp".into(), graph::get_service_principal_by_id(id)));
            }
        }
    }
    if calls.is_empty() {
        // Everything read: the absorb of the last answer sets `discovered`; reaching here
        // means it could not (should not happen).
        return Err(bug(Step::Discover, "nothing left to read but not resolved"));
    }
    Ok(Next::Send(Outgoing { calls }))
}

fn discover_summary(f: &Facts) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &f.org {
        parts.push(format!(
            "tenant {}",
            o.display_name.as_deref().unwrap_or(&o.id)
        ));
    }
    if let Some(me) = &f.me {
        parts.push(format!(
            "signed in as {}",
            me.user_principal_name.as_deref().unwrap_or(me.id.as_str())
        ));
    }
    parts.push(format!("{} permissions resolved", f.resolved.len()));
    match &f.app {
        Some(a) => parts.push(format!("app found ({})", a.app_id)),
        None => {
            if f.by_unique_name.is_some() {
                parts.push("no app yet".into())
            }
        }
    }
    parts.join("; ")
}

fn absorb_discover(
    plan: &Plan,
    f: &mut Facts,
    tag: &str,
    reply: &Reply,
    events: &mut Vec<Event>,
) -> Verdict<()> {
    let mut notice = |n: Notice| {
        events.push(Event::Notice {
            step: Step::Discover,
            notice: n,
        })
    };
    let s = Step::Discover.as_str();
    let v = match tag {
        "me" => graph::classify_me(s, reply).map(|u| f.me = Some(u)),
        "org" => graph::classify_organization(s, reply).map(|o| f.org = o),
        "app-unique" => {
            graph::classify_application(s, reply, false).map(|a| f.by_unique_name = Some(a))
        }
        "app-name" => {
            graph::classify_application_list(s, reply).map(|l| f.by_display_name = Some(l))
        }
        "target-sp" => graph::classify_service_principal(s, reply, false)
            .map(|sp| f.target_sp_lookup = Some(sp)),
        t => match t.strip_prefix("res:") {
            Some(r) => graph::classify_service_principal(s, reply, false).map(|sp| {
                f.resource_sps.insert(r.to_string(), sp);
            }),
            None => Verdict::Fail(bug(Step::Discover, "unknown answer")),
        },
    };
    if v != Verdict::Done(()) {
        return v;
    }
    // All read? Then resolve and choose the app.
    let perms = spec_permissions(plan);
    let add_app = matches!(plan.operation, Operation::AddApp(_));
    let have_all = resources_of(perms)
        .iter()
        .all(|r| f.resource_sps.contains_key(r))
        && (!add_app || (f.me.is_some() && f.org.is_some()))
        && (app_name(plan).is_none()
            || (f.by_unique_name.is_some() && f.by_display_name.is_some()))
        && match &plan.operation {
            Operation::Check(CheckSpec {
                target: CheckTarget::ServicePrincipal(_),
                ..
            })
            | Operation::Repair(CheckSpec {
                target: CheckTarget::ServicePrincipal(_),
                ..
            }) => f.target_sp_lookup.is_some(),
            _ => true,
        };
    if !have_all || f.discovered {
        return Verdict::Done(());
    }
    match resolve(perms, &f.resource_sps) {
        Ok(r) => f.resolved = r,
        Err(e) => return Verdict::Fail(e),
    }
    // The app: by uniqueName first, else one of the same display name (console-made).
    let by_unique = f.by_unique_name.clone().flatten();
    let mut by_name = f.by_display_name.clone().unwrap_or_default();
    if let Some(a) = by_unique {
        f.app = Some(a);
    } else if !by_name.is_empty() {
        if by_name.len() > 1 {
            notice(Notice::SeveralAppsNamed {
                count: by_name.len(),
            });
        }
        let a = by_name.remove(0);
        notice(Notice::AdoptedConsoleApp {
            app_id: a.app_id.clone(),
        });
        f.app = Some(a);
    }
    if let Some(sp) = f.target_sp_lookup.clone() {
        match sp {
            Some(sp) => {
                f.sp_id = Some(sp.id.clone());
                f.sp_looked_up = true;
                f.sp_summary = Some(format!("found {}", sp.id));
                // The app behind it is read by the check step, for credential expiry.
                f.check_target_app_id = Some(sp.app_id);
            }
            None => {
                return Verdict::Fail(Error::InvalidInput(
                    "no service principal with this object id in the tenant".into(),
                ))
            }
        }
    }
    if let Operation::AddApp(spec) = &plan.operation {
        let protected: Vec<String> = perms
            .iter()
            .filter(|p| p.protected)
            .map(|p| p.name.clone())
            .collect();
        if !protected.is_empty() {
            notice(Notice::ProtectedApis { names: protected });
        }
        if let Some(app) = &f.app {
            f.need_new_credentials = Some(needs_new_credentials(spec, app));
        }
    }
    f.discovered = true;
    Verdict::Done(())
}

/// Name → id per resource. Disabled roles/scopes count as absent.
fn resolve(
    perms: &[PermissionReq],
    sps: &BTreeMap<String, Option<graph::ServicePrincipal>>,
) -> Result<Vec<ResolvedPermission>, Error> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for p in perms {
        let Some(Some(sp)) = sps.get(&p.resource_app_id) else {
            missing.push(p.describe());
            continue;
        };
        let id = match p.kind {
            PermKind::Application => sp
                .app_roles
                .iter()
                .find(|r| {
                    r.value.as_deref() == Some(p.name.as_str()) && r.is_enabled != Some(false)
                })
                .map(|r| r.id.clone()),
            PermKind::Delegated => sp
                .oauth2_permission_scopes
                .iter()
                .find(|r| {
                    r.value.as_deref() == Some(p.name.as_str()) && r.is_enabled != Some(false)
                })
                .map(|r| r.id.clone()),
        };
        match id {
            Some(id) => out.push(ResolvedPermission {
                req: p.clone(),
                id,
                resource_sp: sp.id.clone(),
            }),
            None => missing.push(p.describe()),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Error::MissingPermissionsInTenant(missing))
    }
}

/// An existing app gets new credentials unless it has a valid secret made by this tool
/// (then the run reports "already set up"); a resumed run always issues new ones.
fn needs_new_credentials(spec: &AddAppSpec, app: &Application) -> bool {
    if spec.resume.is_some() {
        return true;
    }
    !app.password_credentials.iter().any(|p| {
        made_by_tool(p.display_name.as_deref())
            && p.end_date_time
                .as_deref()
                .and_then(graph::parse_datetime)
                .is_some_and(|e| e > spec.now_unix)
    })
}

// --- app --------------------------------------------------------------------------------------

fn required_resource_access(resolved: &[ResolvedPermission]) -> Vec<graph::RequiredResourceAccess> {
    let mut by_res: BTreeMap<&str, Vec<graph::ResourceAccess>> = BTreeMap::new();
    for r in resolved {
        let list = by_res.entry(r.req.resource_app_id.as_str()).or_default();
        let ra = graph::ResourceAccess {
            id: r.id.clone(),
            kind: r.req.kind.access_type().into(),
        };
        if !list.contains(&ra) {
            list.push(ra);
        }
    }
    by_res
        .into_iter()
        .map(|(res, list)| graph::RequiredResourceAccess {
            resource_app_id: res.to_string(),
            resource_access: list,
        })
        .collect()
}

/// `existing` plus whatever `wanted` adds; `None` when nothing is missing.
fn merge_rra(
    existing: &[graph::RequiredResourceAccess],
    wanted: &[graph::RequiredResourceAccess],
) -> Option<Vec<graph::RequiredResourceAccess>> {
    let mut merged = existing.to_vec();
    let mut changed = false;
    for w in wanted {
        match merged
            .iter_mut()
            .find(|e| e.resource_app_id.eq_ignore_ascii_case(&w.resource_app_id))
        {
            Some(e) => {
                for ra in &w.resource_access {
                    if !e
                        .resource_access
                        .iter()
                        .any(|x| x.id.eq_ignore_ascii_case(&ra.id) && x.kind == ra.kind)
                    {
                        e.resource_access.push(ra.clone());
                        changed = true;
                    }
                }
            }
            None => {
                merged.push(w.clone());
                changed = true;
            }
        }
    }
    changed.then_some(merged)
}

fn next_app(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let (name, cert) = match &plan.operation {
        Operation::AddApp(spec) => (spec.app_name.as_str(), spec.certificate.as_ref()),
        Operation::Renew(spec) => (spec.app_name.as_str(), None),
        _ => return Err(bug(Step::App, "not planned for this operation")),
    };
    let wanted = required_resource_access(&f.resolved);
    match &f.app {
        None if matches!(plan.operation, Operation::Renew(_)) => Err(Error::InvalidInput(format!(
            "no application named {name} in this tenant: run Add app first"
        ))),
        None if f.app_upsert_existed => {
            Ok(send1("get", graph::get_application_by_unique_name(name)))
        }
        None => {
            let body = graph::AppWrite {
                display_name: Some(name.to_string()),
                sign_in_audience: Some("AzureADMyOrg".into()),
                is_fallback_public_client: Some(true),
                required_resource_access: Some(wanted),
                key_credentials: cert.map(|c| vec![c.clone()]),
                notes: Some(format!(
                    "Made by {CREDENTIAL_MARKER} for the Bacula Enterprise M365 plugin"
                )),
            };
            Ok(send1("upsert", graph::upsert_application(name, &body)))
        }
        Some(app) => {
            if f.app_patch_done {
                return Ok(Next::Done(
                    f.app_summary.clone().unwrap_or_else(|| "done".into()),
                ));
            }
            let rra = merge_rra(&app.required_resource_access, &wanted);
            let keys = match (cert, f.need_new_credentials) {
                (Some(c), Some(true)) if !f.app_fresh => Some(vec![c.clone()]),
                _ => None,
            };
            if rra.is_none() && keys.is_none() {
                return Ok(Next::Done(
                    f.app_summary
                        .clone()
                        .unwrap_or_else(|| "already existed, nothing to change".into()),
                ));
            }
            let body = graph::AppWrite {
                display_name: None,
                sign_in_audience: None,
                is_fallback_public_client: None,
                required_resource_access: rra,
                key_credentials: keys,
                notes: None,
            };
            Ok(send1("patch", graph::update_application(&app.id, &body)))
        }
    }
}

fn absorb_app(
    plan: &Plan,
    f: &mut Facts,
    tag: &str,
    reply: &Reply,
    events: &mut Vec<Event>,
) -> Verdict<()> {
    let s = Step::App.as_str();
    match tag {
        "upsert" => graph::classify_upsert_application(s, reply).map(|u| match u {
            Upserted::Created(app) => {
                f.app = Some(app);
                f.app_fresh = true;
                f.app_patch_done = true;
                f.need_new_credentials = Some(true);
                f.app_summary = Some("created".into());
            }
            Upserted::Existed => {
                // Discovery missed it (replication): our PATCH updated it, certificate included.
                f.app_upsert_existed = true;
                f.app_fresh = true;
                f.app_patch_done = true;
                f.need_new_credentials = Some(true);
                f.app_summary = Some("already existed; updated".into());
            }
        }),
        "get" => graph::classify_application(s, reply, true).map(|a| f.app = a),
        "patch" => graph::classify_no_content(s, reply, f.app_fresh).map(|()| {
            let replaced = match (&plan.operation, &f.app) {
                (Operation::AddApp(spec), Some(app))
                    if spec.certificate.is_some() && f.need_new_credentials == Some(true) =>
                {
                    // Resuming a run whose files were never downloaded (a reload): the
                    // certificate it put on the app never reached the admin, so replacing it
                    // stops nothing; only certificates made elsewhere are worth the warning.
                    let undelivered_resume = spec
                        .resume
                        .as_ref()
                        .is_some_and(|r| r.delivered_secret_key_ids.is_empty());
                    app.key_credentials
                        .iter()
                        .filter(|k| {
                            !(undelivered_resume && made_by_tool(k.display_name.as_deref()))
                        })
                        .count()
                }
                _ => 0,
            };
            if replaced > 0 {
                events.push(Event::Notice {
                    step: Step::App,
                    notice: Notice::CertificatesReplaced { count: replaced },
                });
            }
            f.app_patch_done = true;
            f.app_summary = Some("already existed; updated".into());
        }),
        _ => Verdict::Fail(bug(Step::App, "unknown answer")),
    }
}

// --- service principal ------------------------------------------------------------------------

fn next_sp(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    if f.sp_id.is_some() {
        return Ok(Next::Done(
            f.sp_summary.clone().unwrap_or_else(|| "found".into()),
        ));
    }
    let Some(app) = f.app.as_ref() else {
        // A check by app name on a tenant without the app: tell the admin, it is no defect.
        if let Operation::Check(CheckSpec {
            target: CheckTarget::AppName(name),
            ..
        })
        | Operation::Repair(CheckSpec {
            target: CheckTarget::AppName(name),
            ..
        }) = &plan.operation
        {
            return Err(Error::InvalidInput(format!(
                "no application named {name} in this tenant: run Add app first"
            )));
        }
        return Err(bug(Step::ServicePrincipal, "no app"));
    };
    let create = matches!(plan.operation, Operation::AddApp(_) | Operation::Renew(_));
    if f.sp_upsert_existed || (!f.app_fresh && !f.sp_looked_up) {
        return Ok(send1(
            "get",
            graph::get_service_principal(app.app_id.as_str()),
        ));
    }
    if !create {
        return Err(Error::InvalidInput(format!(
            "the application {} has no service principal in this tenant",
            app.app_id
        )));
    }
    let name = app
        .display_name
        .clone()
        .unwrap_or_else(|| DEFAULT_APP_NAME.into());
    Ok(send1(
        "upsert",
        graph::upsert_service_principal(&app.app_id, &name),
    ))
}

fn absorb_sp(f: &mut Facts, tag: &str, reply: &Reply) -> Verdict<()> {
    let s = Step::ServicePrincipal.as_str();
    match tag {
        "get" => graph::classify_service_principal(s, reply, f.sp_upsert_existed).map(|sp| {
            f.sp_looked_up = true;
            if let Some(sp) = sp {
                f.sp_id = Some(sp.id);
                f.sp_summary.get_or_insert_with(|| "already existed".into());
            }
        }),
        "upsert" => {
            graph::classify_upsert_service_principal(s, reply, f.app_fresh).map(|u| match u {
                Upserted::Created(sp) => {
                    f.sp_id = Some(sp.id);
                    f.sp_fresh = true;
                    f.existing_assignments = Some(Vec::new());
                    f.existing_grants = Some(Vec::new());
                    f.sp_summary = Some("created".into());
                }
                Upserted::Existed => {
                    f.sp_upsert_existed = true;
                    f.sp_summary = Some("already existed".into());
                }
            })
        }
        _ => Verdict::Fail(bug(Step::ServicePrincipal, "unknown answer")),
    }
}

// --- secret -----------------------------------------------------------------------------------

fn secret_spec(plan: &Plan) -> Option<(&str, u32, Option<&ResumeInfo>, i64)> {
    match &plan.operation {
        Operation::AddApp(s) => Some((
            &s.run_id,
            s.secret_lifetime_days,
            s.resume.as_ref(),
            s.now_unix,
        )),
        Operation::Renew(s) => Some((&s.run_id, s.secret_lifetime_days, None, s.now_unix)),
        _ => None,
    }
}

/// Secrets to remove before adding: an interrupted run's undelivered ones and orphans (its
/// marker, not delivered), and this run's own orphans after a lost addPassword answer.
fn secrets_to_remove(plan: &Plan, app: &Application) -> Vec<KeyId> {
    let Some((run_id, _, resume, _)) = secret_spec(plan) else {
        return Vec::new();
    };
    let mine = credential_marker(run_id);
    let mut out = Vec::new();
    for p in &app.password_credentials {
        let Some(k) = &p.key_id else { continue };
        let name = p.display_name.as_deref().unwrap_or("");
        let orphan_of_resume = resume.is_some_and(|r| {
            r.undelivered_secret_key_ids.contains(k)
                || (name == credential_marker(&r.run_id) && !r.delivered_secret_key_ids.contains(k))
        });
        if name == mine || orphan_of_resume {
            out.push(k.clone());
        }
    }
    out
}

fn renew_secret_needed(plan: &Plan, app: &Application) -> bool {
    let Operation::Renew(spec) = &plan.operation else {
        return false;
    };
    if spec.force {
        return true;
    }
    let limit = spec.now_unix + i64::from(RENEW_WINDOW_DAYS) * 86_400;
    // A valid secret beyond the window (made by anyone) means nothing to do.
    !app.password_credentials.iter().any(|p| {
        p.end_date_time
            .as_deref()
            .and_then(graph::parse_datetime)
            .is_some_and(|e| e > limit)
    })
}

/// `removePassword` calls (tagged `rm:<keyId>`, one batch at most) for the secrets of `keys` not
/// removed yet.
fn remove_secret_calls(
    app_id: &ObjectId,
    keys: &[KeyId],
    removed: &BTreeSet<KeyId>,
) -> Vec<(String, Call)> {
    keys.iter()
        .filter(|k| !removed.contains(*k))
        .take(graph::BATCH_MAX)
        .map(|k| (format!("rm:{k}"), graph::remove_password(app_id, k)))
        .collect()
}

fn next_secret(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let app = f.app.as_ref().ok_or_else(|| bug(Step::Secret, "no app"))?;
    let (run_id, days, _, now) =
        secret_spec(plan).ok_or_else(|| bug(Step::Secret, "not planned"))?;
    if let Some(c) = &f.credentials {
        // The secret is delivered; re-read the app once and remove any other secret of this
        // run (made by a resent addPassword whose first answer was lost): nothing undelivered
        // stays behind.
        let Some(extra) = &f.extra_secrets else {
            return Ok(send1("verify", graph::get_application(&app.id)));
        };
        let pending = remove_secret_calls(&app.id, extra, &f.secrets_removed);
        if !pending.is_empty() {
            return Ok(Next::Send(Outgoing { calls: pending }));
        }
        return Ok(Next::Done(format!(
            "created, valid until {}",
            c.secret_end.as_deref().unwrap_or("?")
        )));
    }
    match &plan.operation {
        Operation::AddApp(_) if f.need_new_credentials == Some(false) => {
            return Ok(Next::Skip(Notice::AlreadySetUp.text()));
        }
        Operation::Renew(_) if !renew_secret_needed(plan, app) => {
            return Ok(Next::Skip(
                "the current secret is valid for more than 90 days".into(),
            ));
        }
        _ => {}
    }
    if f.secret_outcome_unknown {
        // Re-read the app's credentials to find what the lost call may have added.
        return Ok(send1("relist", graph::get_application(&app.id)));
    }
    let to_remove = match &f.secrets_to_remove {
        Some(l) => l.clone(),
        None => secrets_to_remove(plan, app),
    };
    let pending = remove_secret_calls(&app.id, &to_remove, &f.secrets_removed);
    if !pending.is_empty() {
        return Ok(Next::Send(Outgoing { calls: pending }));
    }
    let end = now + i64::from(days.max(1)) * 86_400;
    Ok(send1(
        "add",
        graph::add_password(&app.id, &credential_marker(run_id), end),
    ))
}

fn absorb_secret(
    plan: &Plan,
    f: &mut Facts,
    tag: &str,
    reply: &Reply,
    events: &mut Vec<Event>,
) -> Verdict<()> {
    let s = Step::Secret.as_str();
    if tag == "relist" {
        return graph::classify_application(s, reply, f.app_fresh).map(|a| {
            if let Some(a) = a {
                f.secrets_to_remove = Some(secrets_to_remove(plan, &a));
                f.app = Some(a);
            }
            f.secret_outcome_unknown = false;
        });
    }
    if tag == "verify" {
        let mine = credential_marker(secret_spec(plan).map_or("", |s| s.0));
        let delivered = f.credentials.as_ref().map(|c| c.secret_key_id.clone());
        return graph::classify_application(s, reply, f.app_fresh).map(|a| {
            let extra = a
                .map(|a| {
                    a.password_credentials
                        .iter()
                        .filter(|p| p.display_name.as_deref() == Some(mine.as_str()))
                        .filter_map(|p| p.key_id.clone())
                        .filter(|k| Some(k) != delivered.as_ref())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if !extra.is_empty() {
                events.push(Event::Notice {
                    step: Step::Secret,
                    notice: Notice::SecretsRemoved { count: extra.len() },
                });
            }
            f.extra_secrets = Some(extra);
        });
    }
    if let Some(k) = tag.strip_prefix("rm:") {
        return graph::classify_remove_credential(s, reply).map(|()| {
            f.secrets_removed.insert(KeyId::new(k));
        });
    }
    if tag != "add" {
        return Verdict::Fail(bug(Step::Secret, "unknown answer"));
    }
    let Some(app) = f.app.clone() else {
        return Verdict::Fail(bug(Step::Secret, "no app"));
    };
    graph::classify_add_password(s, reply, f.app_fresh).map(|p| {
        let c = Credentials {
            app_object_id: app.id.clone(),
            app_id: app.app_id.clone(),
            sp_object_id: f.sp_id.clone(),
            tenant_id: f.org.as_ref().map(|o| o.id.clone()),
            secret: p.secret,
            secret_key_id: p.key_id,
            secret_end: p.end_date_time,
        };
        if !f.secrets_removed.is_empty() {
            let count = f.secrets_removed.len();
            events.push(Event::Notice {
                step: Step::Secret,
                notice: Notice::SecretsRemoved { count },
            });
        }
        events.push(Event::SecretCreated(c.clone()));
        f.credentials = Some(c);
    })
}

// --- owner ------------------------------------------------------------------------------------

fn next_owner(graph_base: &str, f: &Facts) -> Result<Next, Error> {
    match f.owner {
        Some(Added::Created) => return Ok(Next::Done("added you as an owner".into())),
        Some(Added::AlreadyPresent) => return Ok(Next::Done("you are already an owner".into())),
        None => {}
    }
    let app = f.app.as_ref().ok_or_else(|| bug(Step::Owner, "no app"))?;
    let me =
        f.me.as_ref()
            .ok_or_else(|| bug(Step::Owner, "signed-in user unknown"))?;
    Ok(Next::Send(Outgoing {
        calls: vec![(
            "owner".into(),
            graph::add_owner(graph_base, &app.id, &me.id),
        )],
    }))
}

// --- grants -----------------------------------------------------------------------------------

/// Delegated scopes wanted per resource service principal.
fn wanted_scopes(resolved: &[ResolvedPermission]) -> BTreeMap<ObjectId, Vec<String>> {
    let mut m: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
    for r in resolved
        .iter()
        .filter(|r| r.req.kind == PermKind::Delegated)
    {
        let v = m.entry(r.resource_sp.clone()).or_default();
        if !v.contains(&r.req.name) {
            v.push(r.req.name.clone());
        }
    }
    m
}

/// What is still to grant: (tag, call) pairs, and how many are already in place.
fn grants_todo(f: &Facts, sp: &ObjectId) -> Option<(Vec<(String, Call)>, usize)> {
    let assignments = f.existing_assignments.as_ref()?;
    let grants = f.existing_grants.as_ref()?;
    let mut todo = Vec::new();
    let mut present = 0;
    for r in f
        .resolved
        .iter()
        .filter(|r| r.req.kind == PermKind::Application)
    {
        let has = assignments.iter().any(|a| {
            a.app_role_id.eq_ignore_ascii_case(&r.id)
                && a.resource_id
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(r.resource_sp.as_str()))
        });
        if has {
            present += 1;
        } else {
            todo.push((
                format!("ra:{}:{}", r.resource_sp, r.id),
                graph::assign_app_role(&r.resource_sp, sp, &r.id),
            ));
        }
    }
    for (res, scopes) in wanted_scopes(&f.resolved) {
        let existing = grants.iter().find(|g| {
            g.client_id.eq_ignore_ascii_case(sp.as_str())
                && g.resource_id.eq_ignore_ascii_case(res.as_str())
                && g.consent_type.as_deref() == Some("AllPrincipals")
        });
        match existing {
            Some(g) => {
                let have = g.scopes();
                let missing: Vec<&String> = scopes
                    .iter()
                    .filter(|s| !have.iter().any(|h| h.eq_ignore_ascii_case(s)))
                    .collect();
                present += scopes.len() - missing.len();
                if !missing.is_empty() {
                    let mut merged = have.clone();
                    merged.extend(missing.into_iter().cloned());
                    todo.push((
                        format!("gp:{}:{}", g.id, res),
                        graph::update_grant(&g.id, &merged),
                    ));
                }
            }
            None => todo.push((format!("gc:{res}"), graph::create_grant(sp, &res, &scopes))),
        }
    }
    Some((todo, present))
}

fn next_grants(_plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let sp = f
        .sp_id
        .as_ref()
        .ok_or_else(|| bug(Step::Grants, "no service principal"))?;
    if f.grants_done {
        return Ok(Next::Done(f.grants_summary.clone().unwrap_or_default()));
    }
    let mut reads = Vec::new();
    if f.existing_assignments.is_none() {
        reads.push(("ra-list".to_string(), graph::list_app_role_assignments(sp)));
    }
    if f.existing_grants.is_none() {
        reads.push(("grant-list".to_string(), graph::list_grants(sp)));
    }
    if !reads.is_empty() {
        return Ok(Next::Send(Outgoing { calls: reads }));
    }
    let (todo, present) = grants_todo(f, sp).ok_or_else(|| bug(Step::Grants, "grants unknown"))?;
    if todo.is_empty() {
        let n = f.granted_now;
        let summary = if n == 0 {
            format!("all {present} permissions already granted")
        } else {
            format!(
                "{n} permissions granted, {} already present",
                present.saturating_sub(n)
            )
        };
        return Ok(Next::Done(summary));
    }
    Ok(Next::Send(Outgoing {
        // While the new service principal is not visible yet, poll with one sub-request, not
        // twenty: every sub-request of a $batch counts against Graph's throttling limits
        // (https://learn.microsoft.com/graph/throttling#throttling-and-batching).
        calls: todo
            .into_iter()
            .take(if f.grants_waiting {
                1
            } else {
                graph::BATCH_MAX
            })
            .collect(),
    }))
}

fn absorb_grants(f: &mut Facts, tag: &str, reply: &Reply) -> Verdict<()> {
    let v = absorb_grant_answer(f, tag, reply);
    match &v {
        Verdict::Retry(RetryReason::Replication) => f.grants_waiting = true,
        Verdict::Done(()) => f.grants_waiting = false,
        _ => {}
    }
    v
}

fn absorb_grant_answer(f: &mut Facts, tag: &str, reply: &Reply) -> Verdict<()> {
    let s = Step::Grants.as_str();
    let fresh = f.sp_fresh;
    if tag == "ra-list" {
        return graph::classify_app_role_assignments(s, reply, fresh)
            .map(|l| f.existing_assignments = Some(l));
    }
    if tag == "grant-list" {
        return graph::classify_grants(s, reply, fresh).map(|l| f.existing_grants = Some(l));
    }
    let Some(sp) = f.sp_id.clone() else {
        return Verdict::Fail(bug(Step::Grants, "no service principal"));
    };
    if let Some(rest) = tag.strip_prefix("ra:") {
        let Some((res, role)) = rest.split_once(':') else {
            return Verdict::Fail(bug(Step::Grants, "bad tag"));
        };
        return graph::classify_assign_app_role(s, reply, fresh).map(|a| {
            if a == Added::Created {
                f.granted_now += 1;
            }
            if let Some(list) = f.existing_assignments.as_mut() {
                list.push(graph::AppRoleAssignment {
                    id: None,
                    app_role_id: role.to_string(),
                    principal_id: Some(sp.to_string()),
                    resource_id: Some(res.to_string()),
                });
            }
        });
    }
    if let Some(res) = tag.strip_prefix("gc:") {
        let wanted = wanted_scopes(&f.resolved)
            .get(&ObjectId::new(res))
            .cloned()
            .unwrap_or_default();
        return graph::classify_create_grant(s, reply, fresh).map(|g| match g {
            Some(mut g) => {
                f.granted_now += wanted.len();
                // Trust what we asked for if the answer is sparse.
                if g.scope.is_none() {
                    g.scope = Some(wanted.join(" "));
                }
                if let Some(list) = f.existing_grants.as_mut() {
                    list.push(g);
                }
            }
            // One already exists for this client and resource: read the grants again, then merge.
            None => f.existing_grants = None,
        });
    }
    if let Some(rest) = tag.strip_prefix("gp:") {
        let Some((gid, res)) = rest.split_once(':') else {
            return Verdict::Fail(bug(Step::Grants, "bad tag"));
        };
        let wanted = wanted_scopes(&f.resolved)
            .get(&ObjectId::new(res))
            .cloned()
            .unwrap_or_default();
        return graph::classify_no_content(s, reply, fresh).map(|()| {
            if let Some(g) = f
                .existing_grants
                .as_mut()
                .and_then(|l| l.iter_mut().find(|g| g.id == gid))
            {
                let mut have = g.scopes();
                for w in &wanted {
                    if !have.iter().any(|h| h.eq_ignore_ascii_case(w)) {
                        have.push(w.clone());
                        f.granted_now += 1;
                    }
                }
                g.scope = Some(have.join(" "));
            }
        });
    }
    Verdict::Fail(bug(Step::Grants, "unknown answer"))
}

// --- check ------------------------------------------------------------------------------------

fn next_check(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let sp = f
        .sp_id
        .as_ref()
        .ok_or_else(|| bug(Step::Check, "no service principal"))?;
    if let Some(r) = &f.report {
        return Ok(Next::Done(if r.all_set() {
            "All permissions are correctly set".to_string()
        } else {
            format!("{} permission(s) missing", r.missing.len())
        }));
    }
    // Read what the tenant holds now (after a repair too): assignments and grants, plus the
    // app for credential expiry, in one batch.
    let mut reads = Vec::new();
    if !f.check_read.contains("ra-list") {
        reads.push(("ra-list".to_string(), graph::list_app_role_assignments(sp)));
    }
    if !f.check_read.contains("grant-list") {
        reads.push(("grant-list".to_string(), graph::list_grants(sp)));
    }
    let app_id = f
        .app
        .as_ref()
        .map(|a| a.app_id.clone())
        .or_else(|| f.check_target_app_id.clone());
    if f.app.is_none() && f.check_app.is_none() {
        if let Some(app_id) = &app_id {
            reads.push(("app".to_string(), graph::get_application_by_app_id(app_id)));
        }
    }
    if reads.is_empty() {
        // Everything read: absorb_check built the report; reaching here means it did not.
        let _ = plan;
        return Err(bug(Step::Check, "read everything but built no report"));
    }
    Ok(Next::Send(Outgoing { calls: reads }))
}

fn absorb_check(plan: &Plan, f: &mut Facts, tag: &str, reply: &Reply) -> Verdict<()> {
    let s = Step::Check.as_str();
    let v = match tag {
        "ra-list" => graph::classify_app_role_assignments(s, reply, false)
            .map(|l| f.existing_assignments = Some(l)),
        "grant-list" => {
            graph::classify_grants(s, reply, false).map(|l| f.existing_grants = Some(l))
        }
        // Reading the app needs Application.Read; a check without it still reports permissions.
        "app" => match graph::classify_application(s, reply, false) {
            Verdict::Fail(_) => {
                f.check_app = Some(None);
                Verdict::Done(())
            }
            v => v.map(|a| f.check_app = Some(a)),
        },
        _ => Verdict::Fail(bug(Step::Check, "unknown answer")),
    };
    if v != Verdict::Done(()) {
        return v;
    }
    f.check_read.insert(tag.to_string());
    let app_known = f.app.is_some() || f.check_app.is_some() || f.check_target_app_id.is_none();
    if f.check_read.contains("ra-list") && f.check_read.contains("grant-list") && app_known {
        f.report = build_report(plan, f);
    }
    Verdict::Done(())
}

fn credential_infos(app: &Application, now: i64) -> Vec<CredentialInfo> {
    let limit = now + i64::from(RENEW_WINDOW_DAYS) * 86_400;
    let info = |kind, key_id: &Option<KeyId>, name: &Option<String>, end: &Option<String>| {
        let e = end.as_deref().and_then(graph::parse_datetime);
        CredentialInfo {
            kind,
            key_id: key_id.clone(),
            display_name: name.clone(),
            end: end.clone(),
            made_by_tool: made_by_tool(name.as_deref()),
            expiring: e.is_some_and(|e| e <= limit),
            expired: e.is_some_and(|e| e <= now),
        }
    };
    let mut out: Vec<CredentialInfo> = app
        .password_credentials
        .iter()
        .map(|p| {
            info(
                CredentialKind::Secret,
                &p.key_id,
                &p.display_name,
                &p.end_date_time,
            )
        })
        .collect();
    out.extend(app.key_credentials.iter().map(|k| {
        info(
            CredentialKind::Certificate,
            &k.key_id,
            &k.display_name,
            &k.end_date_time,
        )
    }));
    out
}

/// Compares what the service principal was granted with the manifest.
fn build_report(plan: &Plan, f: &Facts) -> Option<CheckReport> {
    let sp = f.sp_id.clone()?;
    let assignments = f.existing_assignments.as_ref()?;
    let grants = f.existing_grants.as_ref()?;
    let mut missing = Vec::new();
    let mut protected_unverifiable = Vec::new();
    for r in &f.resolved {
        let present = match r.req.kind {
            PermKind::Application => assignments.iter().any(|a| {
                a.app_role_id.eq_ignore_ascii_case(&r.id)
                    && a.resource_id
                        .as_deref()
                        .is_none_or(|x| x.eq_ignore_ascii_case(r.resource_sp.as_str()))
            }),
            PermKind::Delegated => grants.iter().any(|g| {
                g.resource_id.eq_ignore_ascii_case(r.resource_sp.as_str())
                    && g.consent_type.as_deref() == Some("AllPrincipals")
                    && g.scopes()
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&r.req.name))
            }),
        };
        if !present {
            missing.push(PermissionRef {
                resource_name: r.req.resource_name.clone(),
                kind: r.req.kind,
                name: r.req.name.clone(),
            });
        } else if r.req.protected {
            protected_unverifiable.push(r.req.name.clone());
        }
    }
    // Extra: granted but not in the manifest (named when the resource is one we read).
    let mut extra = Vec::new();
    let res_name = |res_id: &str| -> Option<(String, &graph::ServicePrincipal)> {
        f.resource_sps
            .values()
            .flatten()
            .find(|sp| sp.id.as_str().eq_ignore_ascii_case(res_id))
            .map(|sp| {
                let name = f
                    .resolved
                    .iter()
                    .find(|r| r.resource_sp == sp.id)
                    .map(|r| r.req.resource_name.clone())
                    .or_else(|| sp.display_name.clone())
                    .unwrap_or_else(|| sp.app_id.to_string());
                (name, sp)
            })
    };
    for a in assignments {
        let wanted = f.resolved.iter().any(|r| {
            r.req.kind == PermKind::Application
                && r.id.eq_ignore_ascii_case(&a.app_role_id)
                && a.resource_id
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(r.resource_sp.as_str()))
        });
        if wanted {
            continue;
        }
        let (resource_name, name) = match a.resource_id.as_deref().and_then(res_name) {
            Some((n, sp)) => (
                n,
                sp.app_roles
                    .iter()
                    .find(|r| r.id.eq_ignore_ascii_case(&a.app_role_id))
                    .and_then(|r| r.value.clone())
                    .unwrap_or_else(|| a.app_role_id.clone()),
            ),
            None => (
                a.resource_id.clone().unwrap_or_default(),
                a.app_role_id.clone(),
            ),
        };
        extra.push(PermissionRef {
            resource_name,
            kind: PermKind::Application,
            name,
        });
    }
    for g in grants {
        for scope in g.scopes() {
            let wanted = f.resolved.iter().any(|r| {
                r.req.kind == PermKind::Delegated
                    && r.resource_sp.as_str().eq_ignore_ascii_case(&g.resource_id)
                    && r.req.name.eq_ignore_ascii_case(&scope)
            });
            if !wanted {
                let resource_name = res_name(&g.resource_id)
                    .map(|(n, _)| n)
                    .unwrap_or_else(|| g.resource_id.clone());
                extra.push(PermissionRef {
                    resource_name,
                    kind: PermKind::Delegated,
                    name: scope,
                });
            }
        }
    }
    let app = f
        .app
        .as_ref()
        .or(f.check_app.as_ref().and_then(|a| a.as_ref()));
    let credentials = app
        .map(|a| credential_infos(a, now_unix(plan)))
        .unwrap_or_default();
    Some(CheckReport {
        sp_object_id: sp,
        missing,
        extra,
        credentials,
        protected_unverifiable,
    })
}

// --- renew: certificate and removal -------------------------------------------------------------

/// Renew: a certificate is due when none is valid beyond the window (or forced).
fn renew_cert_needed(spec: &RenewSpec, app: &Application) -> bool {
    if spec.force {
        return true;
    }
    let limit = spec.now_unix + i64::from(RENEW_WINDOW_DAYS) * 86_400;
    !app.key_credentials.iter().any(|k| {
        k.end_date_time
            .as_deref()
            .and_then(graph::parse_datetime)
            .is_some_and(|e| e > limit)
    })
}

/// The proof of possession for addKey/removeKey, signed by the current key
/// (https://learn.microsoft.com/graph/application-rollkey-prooftoken).
fn proof(spec: &RenewSpec, app: &Application, what: &str) -> Result<Option<String>, Error> {
    let Some(k) = &spec.current_key else {
        return Ok(None);
    };
    let claims = crate::engine::crypto::addkey_proof_claims(
        &app.id,
        spec.now_unix,
        &format!("{}-{what}", spec.run_id),
    );
    crate::engine::crypto::build_jwt_rs256(&k.key, &k.cert_der, &claims)
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("the current certificate cannot sign: {e}")))
}

fn next_certificate(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let Operation::Renew(spec) = &plan.operation else {
        return Err(bug(Step::Certificate, "not planned"));
    };
    let app = f
        .app
        .as_ref()
        .ok_or_else(|| bug(Step::Certificate, "no app"))?;
    if f.cert_done {
        return Ok(Next::Done(
            f.cert_summary.clone().unwrap_or_else(|| "added".into()),
        ));
    }
    let Some(new) = &spec.new_certificate else {
        return Ok(Next::Skip("no new certificate given".into()));
    };
    if !renew_cert_needed(spec, app) {
        return Ok(Next::Skip(
            "the current certificate is valid for more than 90 days".into(),
        ));
    }
    if f.secret_outcome_unknown {
        return Ok(send1("relist", graph::get_application(&app.id)));
    }
    match proof(spec, app, "add-key")? {
        Some(p) => Ok(send1("add-key", graph::add_key(&app.id, new, &p))),
        None => {
            let body = graph::AppWrite {
                display_name: None,
                sign_in_audience: None,
                is_fallback_public_client: None,
                required_resource_access: None,
                key_credentials: Some(vec![new.clone()]),
                notes: None,
            };
            Ok(send1(
                "replace-keys",
                graph::update_application(&app.id, &body),
            ))
        }
    }
}

fn absorb_certificate(
    plan: &Plan,
    f: &mut Facts,
    tag: &str,
    reply: &Reply,
    events: &mut Vec<Event>,
) -> Verdict<()> {
    let s = Step::Certificate.as_str();
    let Operation::Renew(spec) = &plan.operation else {
        return Verdict::Fail(bug(Step::Certificate, "not planned"));
    };
    let new_name = spec
        .new_certificate
        .as_ref()
        .map(|c| c.display_name.clone());
    match tag {
        // After a lost addKey answer: is the new key there already?
        "relist" => graph::classify_application(s, reply, false).map(|a| {
            f.secret_outcome_unknown = false;
            if let Some(a) = a {
                if let Some(k) = a
                    .key_credentials
                    .iter()
                    .find(|k| k.display_name.is_some() && k.display_name == new_name)
                {
                    f.cert_done = true;
                    f.new_key_id = k.key_id.clone();
                    f.cert_summary = Some("new certificate added".into());
                }
                f.app = Some(a);
            }
        }),
        "add-key" => graph::classify_add_key(s, reply).map(|k| {
            f.cert_done = true;
            f.cert_summary = Some("new certificate added".into());
            f.new_key_id = k.key_id;
        }),
        "replace-keys" => graph::classify_no_content(s, reply, false).map(|()| {
            let count = f.app.as_ref().map_or(0, |a| a.key_credentials.len());
            if count > 0 {
                events.push(Event::Notice {
                    step: Step::Certificate,
                    notice: Notice::CertificatesReplaced { count },
                });
            }
            if let Some(a) = f.app.as_mut() {
                a.key_credentials.clear();
            }
            f.cert_done = true;
            f.cert_summary = Some("certificate replaced".into());
        }),
        _ => Verdict::Fail(bug(Step::Certificate, "unknown answer")),
    }
}

/// Renew: old credentials made by this tool that a new one replaced.
fn old_credentials(plan: &Plan, f: &Facts) -> (Vec<KeyId>, Vec<KeyId>) {
    let (Operation::Renew(spec), Some(app)) = (&plan.operation, &f.app) else {
        return (Vec::new(), Vec::new());
    };
    let secrets = match &f.credentials {
        Some(c) => app
            .password_credentials
            .iter()
            .filter(|p| made_by_tool(p.display_name.as_deref()))
            .filter_map(|p| p.key_id.clone())
            .filter(|k| *k != c.secret_key_id)
            .collect(),
        None => Vec::new(),
    };
    // Old certificates are removed only on the addKey path (PATCH already replaced them).
    let new_name = spec
        .new_certificate
        .as_ref()
        .map(|c| c.display_name.as_str());
    let keys = match (&f.new_key_id, f.cert_done) {
        (Some(new_id), true) => app
            .key_credentials
            .iter()
            .filter(|k| {
                made_by_tool(k.display_name.as_deref()) && k.display_name.as_deref() != new_name
            })
            .filter_map(|k| k.key_id.clone())
            .filter(|k| k != new_id)
            .collect(),
        _ => Vec::new(),
    };
    (secrets, keys)
}

fn next_remove_old(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let Operation::Renew(spec) = &plan.operation else {
        return Err(bug(Step::RemoveOld, "not planned"));
    };
    let app = f
        .app
        .as_ref()
        .ok_or_else(|| bug(Step::RemoveOld, "no app"))?;
    let (secrets, keys) = old_credentials(plan, f);
    let mut calls: Vec<(String, Call)> = secrets
        .iter()
        .filter(|k| !f.old_removed.contains(*k))
        .map(|k| (format!("rm-secret:{k}"), graph::remove_password(&app.id, k)))
        .collect();
    let pending_keys: Vec<&KeyId> = keys
        .iter()
        .filter(|k| !f.old_removed.contains(*k))
        .collect();
    if !pending_keys.is_empty() {
        if let Some(p) = proof(spec, app, "remove-key")? {
            for k in pending_keys {
                calls.push((format!("rm-key:{k}"), graph::remove_key(&app.id, k, &p)));
            }
        }
    }
    if calls.is_empty() {
        let n = f.old_removed.len();
        return Ok(if n == 0 {
            Next::Skip("nothing to remove".into())
        } else {
            Next::Done(format!("{n} replaced credential(s) removed"))
        });
    }
    calls.truncate(graph::BATCH_MAX);
    Ok(Next::Send(Outgoing { calls }))
}

fn absorb_remove_old(f: &mut Facts, tag: &str, reply: &Reply) -> Verdict<()> {
    let s = Step::RemoveOld.as_str();
    let Some(k) = tag
        .strip_prefix("rm-secret:")
        .or_else(|| tag.strip_prefix("rm-key:"))
    else {
        return Verdict::Fail(bug(Step::RemoveOld, "unknown answer"));
    };
    graph::classify_remove_credential(s, reply).map(|()| {
        f.old_removed.insert(KeyId::new(k));
    })
}

// --- delete registrator -----------------------------------------------------------------------

fn next_delete(plan: &Plan, f: &Facts) -> Result<Next, Error> {
    let Operation::DeleteRegistrator(spec) = &plan.operation else {
        return Err(bug(Step::DeleteRegistrator, "not planned"));
    };
    match f.deleted {
        Some(Added::Created) => Ok(Next::Done("deleted".into())),
        Some(Added::AlreadyPresent) => Ok(Next::Done("already gone".into())),
        None => Ok(send1(
            "delete",
            graph::delete_service_principal_by_app_id(&spec.registrator_app_id),
        )),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn app_names() {
        for ok in [DEFAULT_APP_NAME, "a", "Bacula.M365_2", &"a".repeat(64)] {
            assert_eq!(super::app_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            " ",
            "../x",
            "a/b",
            "a\\b",
            "a:b*c?\"<>|",
            "-x",
            ".x",
            "a b",
            "x'y",
            "é",
            &"a".repeat(65),
        ] {
            assert!(super::app_name_problem(bad).is_some(), "{bad}");
        }
    }
    use super::*;
    use crate::engine::http::{HttpRequest, HttpResponse};
    use crate::engine::secret::AccessToken;
    use std::cell::{Cell, RefCell};
    use std::future::Future;

    fn perms() -> Vec<PermissionReq> {
        vec![
            PermissionReq::new(
                GRAPH_RESOURCE_APP_ID,
                "Microsoft Graph",
                PermKind::Application,
                "User.Read.All",
                false,
            ),
            PermissionReq::new(
                GRAPH_RESOURCE_APP_ID,
                "Microsoft Graph",
                PermKind::Application,
                "Chat.Read.All",
                true,
            ),
            PermissionReq::new(
                GRAPH_RESOURCE_APP_ID,
                "Microsoft Graph",
                PermKind::Delegated,
                "User.Read",
                false,
            ),
            PermissionReq::new(
                GRAPH_RESOURCE_APP_ID,
                "Microsoft Graph",
                PermKind::Delegated,
                "Chat.ReadWrite",
                false,
            ),
            PermissionReq::new(
                SHAREPOINT_RESOURCE_APP_ID,
                "SharePoint",
                PermKind::Application,
                "Sites.FullControl.All",
                false,
            ),
        ]
    }

    #[test]
    fn add_app_plan_as_data() {
        let spec = AddAppSpec::new(perms(), "r1", 1_780_000_000);
        let plan = plan_add_app(&spec);
        assert_eq!(
            plan.step_names(),
            [
                "discover",
                "app",
                "service-principal",
                "secret",
                "owner",
                "grants"
            ]
        );
        assert_eq!(plan.permissions.len(), 5);
        assert!(plan.steps[0]
            .calls
            .iter()
            .any(|c| c.contains("uniqueName='bacula-m365-plugin-standalone'")));
        assert!(plan.steps[0]
            .calls
            .iter()
            .any(|c| c.contains(SHAREPOINT_RESOURCE_APP_ID)));
        assert!(
            plan.steps[5]
                .title
                .contains("3 application permissions and 1 delegated grant "),
            "{}",
            plan.steps[5].title
        );
        assert_eq!(spec.secret_lifetime_days, 730);
        let full = AddAppSpec::for_services(&[], "r", 0);
        assert!(full
            .permissions
            .iter()
            .any(|p| p.name == "User.Read.All" && p.kind == PermKind::Application));
    }

    #[test]
    fn other_plans_as_data() {
        let c = CheckSpec {
            target: CheckTarget::AppName(DEFAULT_APP_NAME.into()),
            permissions: perms(),
            now_unix: 0,
        };
        assert_eq!(
            plan_check(&c).step_names(),
            ["discover", "service-principal", "check"]
        );
        assert_eq!(
            plan_repair(&c).step_names(),
            ["discover", "service-principal", "grants", "check"]
        );
        let d = plan_delete_registrator(&DeleteSpec::default());
        assert_eq!(
            d.steps[0].calls,
            vec![format!(
                "DELETE /servicePrincipals(appId='{REGISTRATOR_APP_ID}')"
            )]
        );
        let r = RenewSpec {
            app_name: DEFAULT_APP_NAME.into(),
            permissions: perms(),
            run_id: "r".into(),
            now_unix: 0,
            force: false,
            secret_lifetime_days: 730,
            new_certificate: None,
            current_key: None,
        };
        assert_eq!(
            plan_renew(&r).step_names(),
            [
                "discover",
                "app",
                "service-principal",
                "secret",
                "remove-old",
                "grants"
            ]
        );
    }

    fn app_with(passwords: Vec<(&str, &str, &str)>) -> Application {
        Application {
            id: ObjectId::new("app-obj"),
            app_id: AppId::new("app-id"),
            display_name: Some(DEFAULT_APP_NAME.into()),
            unique_name: None,
            required_resource_access: vec![],
            key_credentials: vec![],
            password_credentials: passwords
                .into_iter()
                .map(|(k, n, end)| graph::PasswordCredential {
                    key_id: Some(KeyId::new(k)),
                    display_name: Some(n.into()),
                    end_date_time: Some(end.into()),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn new_credentials_only_when_needed() {
        let now = graph::parse_datetime("2026-06-01T00:00:00Z").unwrap();
        let mut spec = AddAppSpec::new(perms(), "r2", now);
        let valid = app_with(vec![(
            "k1",
            &credential_marker("r1"),
            "2027-01-01T00:00:00Z",
        )]);
        assert!(!needs_new_credentials(&spec, &valid));
        let expired = app_with(vec![(
            "k1",
            &credential_marker("r1"),
            "2026-01-01T00:00:00Z",
        )]);
        assert!(needs_new_credentials(&spec, &expired));
        let foreign = app_with(vec![("k1", "made by hand", "2030-01-01T00:00:00Z")]);
        assert!(needs_new_credentials(&spec, &foreign));
        spec.resume = Some(ResumeInfo {
            run_id: "r1".into(),
            undelivered_secret_key_ids: vec![],
            delivered_secret_key_ids: vec![],
        });
        assert!(needs_new_credentials(&spec, &valid));
    }

    #[test]
    fn resume_removes_undelivered_and_orphans_only() {
        let mut spec = AddAppSpec::new(perms(), "r2", 0);
        spec.resume = Some(ResumeInfo {
            run_id: "r1".into(),
            undelivered_secret_key_ids: vec![KeyId::new("k-undelivered")],
            delivered_secret_key_ids: vec![KeyId::new("k-delivered")],
        });
        let app = app_with(vec![
            (
                "k-undelivered",
                &credential_marker("r1"),
                "2030-01-01T00:00:00Z",
            ),
            (
                "k-delivered",
                &credential_marker("r1"),
                "2030-01-01T00:00:00Z",
            ),
            ("k-orphan", &credential_marker("r1"), "2030-01-01T00:00:00Z"),
            ("k-mine", &credential_marker("r2"), "2030-01-01T00:00:00Z"),
            ("k-other", "by hand", "2030-01-01T00:00:00Z"),
        ]);
        let plan = plan_add_app(&spec);
        let got: Vec<String> = secrets_to_remove(&plan, &app)
            .into_iter()
            .map(|k| k.0)
            .collect();
        assert_eq!(got, ["k-undelivered", "k-orphan", "k-mine"]);
    }

    #[test]
    fn report_lines_in_the_spec_words() {
        let r = CheckReport {
            sp_object_id: ObjectId::new("8cee7605-0d5e-42b6-b269-c39f3411b5b9"),
            missing: vec![PermissionRef {
                resource_name: "Microsoft Graph".into(),
                kind: PermKind::Delegated,
                name: "Chat.ReadWrite".into(),
            }],
            extra: vec![PermissionRef {
                resource_name: "Microsoft Graph".into(),
                kind: PermKind::Application,
                name: "Mail.Send".into(),
            }],
            credentials: vec![],
            protected_unverifiable: vec!["Chat.Read.All".into()],
        };
        let l = r.lines();
        assert_eq!(l[0], "Delegated permission Chat.ReadWrite was not found in your Azure service principal 8cee7605-0d5e-42b6-b269-c39f3411b5b9");
        assert_eq!(l[1], "Please review your app permissions");
        assert!(l[2].contains("Mail.Send") && l[2].contains("not needed"));
        assert!(l[3].contains("protected APIs (Chat.Read.All)"));
        let ok = CheckReport {
            missing: vec![],
            extra: vec![],
            protected_unverifiable: vec![],
            ..r
        };
        assert_eq!(ok.lines(), ["All permissions are correctly set"]);
    }

    #[test]
    fn resolve_names_missing_permissions() {
        let sp = graph::ServicePrincipal {
            id: ObjectId::new("graph-sp"),
            app_id: AppId::new(GRAPH_RESOURCE_APP_ID),
            display_name: None,
            app_roles: vec![graph::AppRole {
                id: "r1".into(),
                value: Some("User.Read.All".into()),
                ..Default::default()
            }],
            oauth2_permission_scopes: vec![graph::PermissionScope {
                id: "s1".into(),
                value: Some("User.Read".into()),
                ..Default::default()
            }],
        };
        let mut sps = BTreeMap::new();
        sps.insert(GRAPH_RESOURCE_APP_ID.to_string(), Some(sp));
        sps.insert(SHAREPOINT_RESOURCE_APP_ID.to_string(), None);
        match resolve(&perms(), &sps) {
            Err(Error::MissingPermissionsInTenant(m)) => assert_eq!(
                m,
                [
                    "Application permission Chat.Read.All (Microsoft Graph)",
                    "Delegated permission Chat.ReadWrite (Microsoft Graph)",
                    "Application permission Sites.FullControl.All (SharePoint)"
                ]
            ),
            other => panic!("{other:?}"),
        }
        let ok = resolve(&perms()[..1], &sps).unwrap();
        assert_eq!(ok[0].id, "r1");
        assert_eq!(ok[0].resource_sp.as_str(), "graph-sp");
    }

    /// A scripted client: answers in order, counts, never waits.
    struct Script {
        answers: RefCell<Vec<Result<HttpResponse, TransportError>>>,
        sent: RefCell<Vec<HttpRequest>>,
        slept: Cell<u64>,
    }
    impl HttpClient for Script {
        fn send(
            &self,
            req: HttpRequest,
        ) -> impl Future<Output = Result<HttpResponse, TransportError>> {
            self.sent.borrow_mut().push(req);
            let a = self.answers.borrow_mut().remove(0);
            std::future::ready(a)
        }
    }
    impl Sleep for Script {
        fn sleep(&self, ms: u64) -> impl Future<Output = ()> {
            self.slept.set(self.slept.get() + ms);
            std::future::ready(())
        }
    }
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
    fn resp(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: body.into(),
        })
    }

    #[test]
    fn driver_honours_retry_after_and_counts_round_trips() {
        let script = Script {
            answers: RefCell::new(vec![
                resp(
                    429,
                    &[("Retry-After", "7")],
                    r#"{"error":{"code":"TooManyRequests","message":"x"}}"#,
                ),
                Err(TransportError("reset".into())),
                resp(
                    404,
                    &[],
                    r#"{"error":{"code":"Request_ResourceNotFound","message":"gone"}}"#,
                ),
            ]),
            sent: RefCell::new(vec![]),
            slept: Cell::new(0),
        };
        let ctx = GraphCtx {
            base: "https://graph.microsoft.com/v1.0".into(),
            token: AccessToken::new("t"),
        };
        let plan = plan_delete_registrator(&DeleteSpec::default());
        let mut state = RunState::new();
        let mut events = vec![];
        let mut n = 0u32;
        let mut rand = || {
            n += 1;
            n
        };
        let out = block_on(run(
            &plan,
            &mut state,
            &ctx,
            &script,
            &script,
            &mut rand,
            &mut |e| events.push(e),
        ))
        .unwrap();
        assert_eq!(out.round_trips, 3);
        assert_eq!(
            out.summaries,
            vec![(Step::DeleteRegistrator, "already gone".to_string())]
        );
        let waits: Vec<(RetryReason, u64)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Retrying {
                    reason, wait_ms, ..
                } => Some((*reason, *wait_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(
            waits[0],
            (
                RetryReason::Throttled {
                    retry_after_ms: Some(7000)
                },
                7000
            )
        );
        assert_eq!(waits[1].0, RetryReason::Network);
        assert_eq!(out.slept_ms, script.slept.get());
        // Every request had its own client-request-id and the bearer token.
        let sent = script.sent.borrow();
        assert!(sent
            .iter()
            .all(|r| r.get_header("Authorization") == Some("Bearer t")));
        let ids: BTreeSet<&str> = sent
            .iter()
            .filter_map(|r| r.get_header("client-request-id"))
            .collect();
        assert_eq!(ids.len(), 3);
        // Running the finished plan again does nothing.
        let again = block_on(run(
            &plan,
            &mut state,
            &ctx,
            &script,
            &script,
            &mut rand,
            &mut |_| {},
        ))
        .unwrap();
        assert_eq!(again.round_trips, 3);
    }

    #[test]
    fn driver_fails_with_diagnostics_on_403_and_never_panics_on_garbage() {
        let ctx = GraphCtx {
            base: "https://g/v1.0".into(),
            token: AccessToken::new("t"),
        };
        let plan = plan_delete_registrator(&DeleteSpec::default());
        for (status, body) in [
            (
                403,
                r#"{"error":{"code":"Authorization_RequestDenied","message":"no","innerError":{"request-id":"rq-9"}}}"#,
            ),
            (400, "garbage"),
            (302, ""),
        ] {
            let script = Script {
                answers: RefCell::new(vec![resp(status, &[], body)]),
                sent: RefCell::new(vec![]),
                slept: Cell::new(0),
            };
            let mut events = vec![];
            let err = block_on(run(
                &plan,
                &mut RunState::new(),
                &ctx,
                &script,
                &script,
                &mut || 4,
                &mut |e| events.push(e),
            ))
            .unwrap_err();
            assert_eq!(err.step(), Some("delete-registrator"));
            assert!(matches!(events.last(), Some(Event::StepFailed { .. })));
            if status == 403 {
                assert!(err.diagnostics().contains("request-id: rq-9"));
                assert!(matches!(
                    err.kind(),
                    crate::engine::error::ErrorKind::NeedsAdmin { .. }
                ));
            }
        }
    }
}
