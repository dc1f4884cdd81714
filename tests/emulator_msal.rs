//! Interop with Microsoft's own client library: Python `msal` (PyPI) gets a client-credentials
//! token from the emulator over HTTPS (locally generated CA), with a secret and with a
//! certificate, and calls Graph with it. Needs `python3` with `msal` and `requests`
//! (`pip install -r tests/requirements.txt`); without them the test FAILS.

mod emulator_support;
use emulator_support::{body, cert, key_credential, TENANT};
use m365_registrator::emulator::server::{self, wall_ms, Running, TlsConfig};
use m365_registrator::emulator::{Emulator, Outcome};
use m365_registrator::engine::http::{HttpRequest, HttpResponse, Method};
use serde_json::{json, Value};
use std::process::Command;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/msal_client_credentials.py"
);

fn require_python_msal() {
    let out = Command::new("python3")
        .args(["-c", "import msal, requests; print(msal.__version__)"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import msal/requests ({}): install them with `pip install -r tests/requirements.txt`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("python3 is required for the msal interop test: {e}"),
    }
}

/// In-process request against the running emulator (same state), at wall-clock time.
fn call(run: &Running, req: HttpRequest) -> HttpResponse {
    let mut emu = run.emulator();
    match emu.handle(&req, wall_ms()) {
        Outcome::Respond(r) => r,
        Outcome::Drop => panic!("dropped"),
    }
}

/// Creates an app with a secret and a certificate, its SP and one Graph app role (as the
/// Global Administrator, through the emulator's own endpoints). Returns (appId, secret).
fn setup(run: &Running, cert_b64: Value) -> (String, String) {
    let base = &run.base_url;
    let tok = {
        let mut emu = run.emulator();
        emu.consent_registrator(wall_ms());
        drop(emu);
        let verifier = emulator_support::VERIFIER;
        let page = "http://127.0.0.1:8401/";
        run.emulator().add_registrator_spa_redirect(page);
        let q = m365_registrator::engine::http::form_encode(&[
            ("client_id", emulator_support::REGISTRATOR),
            ("response_type", "code"),
            ("redirect_uri", page),
            ("scope", emulator_support::SCOPES),
            ("code_challenge", &emulator_support::challenge(verifier)),
            ("code_challenge_method", "S256"),
            ("emulator_user", "admin"),
        ]);
        let r = call(
            run,
            HttpRequest::new(
                Method::Get,
                format!("{base}/{TENANT}/oauth2/v2.0/authorize?{q}"),
            ),
        );
        let code = emulator_support::location_param(&r, "code").unwrap();
        let t = call(
            run,
            HttpRequest::new(Method::Post, format!("{base}/{TENANT}/oauth2/v2.0/token"))
                .header("Origin", "http://127.0.0.1:8401")
                .form(&[
                    ("client_id", emulator_support::REGISTRATOR),
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", page),
                    ("code_verifier", verifier),
                ]),
        );
        body(&t)["access_token"].as_str().unwrap().to_string()
    };
    let auth = format!("Bearer {tok}");
    let g = |m: Method, p: &str, b: Option<Value>| {
        let mut r =
            HttpRequest::new(m, format!("{base}/v1.0{p}")).header("Authorization", auth.clone());
        if let Some(b) = b {
            r = r.json(&b);
        }
        call(run, r)
    };
    let app = body(&g(
        Method::Post,
        "/applications",
        Some(json!({"displayName": "msal-peer", "keyCredentials": [cert_b64]})),
    ));
    let id = app["id"].as_str().unwrap().to_string();
    let app_id = app["appId"].as_str().unwrap().to_string();
    let secret = body(&g(
        Method::Post,
        &format!("/applications/{id}/addPassword"),
        Some(json!({})),
    ))["secretText"]
        .as_str()
        .unwrap()
        .to_string();
    let sp = body(&g(
        Method::Post,
        "/servicePrincipals",
        Some(json!({"appId": app_id})),
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let graph = body(&g(
        Method::Get,
        "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?$select=id",
        None,
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let role = m365_registrator::emulator::directory::reference_permission_id(
        emulator_support::GRAPH,
        "Application.Read.All",
        true,
    )
    .unwrap();
    let r = g(
        Method::Post,
        &format!("/servicePrincipals/{graph}/appRoleAssignedTo"),
        Some(json!({"principalId": sp, "resourceId": graph, "appRoleId": role})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    (app_id, secret)
}

fn run_python(envs: &[(&str, String)]) -> Value {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .envs(envs.iter().map(|(k, v)| (*k, v.clone())))
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "msal script failed: status {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_gets_tokens_with_secret_and_certificate_over_https() {
    require_python_msal();
    let dir = std::env::temp_dir().join(format!("emu-msal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let tls = TlsConfig::generate(Some(&ca), &[]).unwrap();
    let run = server::serve(
        Emulator::new(Default::default()),
        "127.0.0.1:0".parse().unwrap(),
        Some(tls),
    )
    .await
    .unwrap();
    assert!(
        run.base_url.starts_with("https://localhost:"),
        "{}",
        run.base_url
    );
    let c = cert(11);
    let (app_id, secret) = setup(&run, key_credential(&c));
    let key_pem = dir.join("key.pem");
    std::fs::write(&key_pem, c.key_pem()).unwrap();
    let authority = format!("{}/{TENANT}", run.base_url);
    let check = format!(
        "{}/v1.0/applications?$filter=appId eq '{app_id}'&$select=id,appId",
        run.base_url
    );
    let common = vec![
        ("EMU_AUTHORITY", authority.clone()),
        ("EMU_CA", ca.display().to_string()),
        ("REQUESTS_CA_BUNDLE", ca.display().to_string()),
        ("EMU_CLIENT_ID", app_id.clone()),
        ("EMU_GRAPH_CHECK", check),
    ];

    let mut env = common.clone();
    env.push(("EMU_SECRET", secret.clone()));
    let res = tokio::task::spawn_blocking(move || run_python(&env))
        .await
        .unwrap();
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["token_type"], "Bearer");
    assert_eq!(res["graph_status"], 200, "{res}");
    assert_eq!(res["graph_body"]["value"][0]["appId"], app_id.as_str());

    let mut env = common.clone();
    env.push(("EMU_KEY_PEM", key_pem.display().to_string()));
    env.push(("EMU_THUMBPRINT", c.thumbprint_hex()));
    let res = tokio::task::spawn_blocking(move || run_python(&env))
        .await
        .unwrap();
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["graph_status"], 200, "{res}");

    // A wrong secret: msal reports Entra's error.
    let mut env = common.clone();
    env.push(("EMU_SECRET", "wrong".to_string()));
    let res = tokio::task::spawn_blocking(move || run_python(&env))
        .await
        .unwrap();
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"], "invalid_client");
    assert_eq!(res["error_codes"], json!([7000215]));

    // msal really talked to the server over TLS.
    let log = run.emulator().log().to_vec();
    assert!(
        log.iter()
            .any(|e| e.path.ends_with("/v2.0/.well-known/openid-configuration")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|e| e.path.ends_with("/oauth2/v2.0/token") && e.status == 200)
            .count()
            >= 3
    );
    let _ = std::fs::remove_dir_all(dir);
}
