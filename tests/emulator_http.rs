//! The emulator over real HTTP (in-process server on a random port): the same flows through
//! sockets, CORS preflight, dropped connections, latency, the control API.

mod emulator_support;
use emulator_support::{
    challenge, location_param, PAGE, PAGE_ORIGIN, REGISTRATOR, SCOPES, VERIFIER,
};
use m365_registrator::emulator::server::{self, send, Running};
use m365_registrator::emulator::{FaultKind, FaultRule};
use m365_registrator::engine::http::{
    encode_component, form_encode, HttpRequest, HttpResponse, Method,
};
use serde_json::{json, Value};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> Running {
    server::start_on_random_port(emulator_support::cfg(true)).await
}

fn body(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

async fn sign_in(run: &Running) -> String {
    let q = form_encode(&[
        ("client_id", REGISTRATOR),
        ("response_type", "code"),
        ("redirect_uri", PAGE),
        ("scope", SCOPES),
        ("state", "s"),
        ("code_challenge", &challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
        ("emulator_user", "admin@contoso.onmicrosoft.com"),
    ]);
    let r = send(&HttpRequest::new(
        Method::Get,
        format!("{}/oauth2/v2.0/authorize?{q}", run.authority()),
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 302, "{}", r.body);
    let code = location_param(&r, "code").unwrap();
    let t = send(
        &HttpRequest::new(
            Method::Post,
            format!("{}/oauth2/v2.0/token", run.authority()),
        )
        .header("Origin", PAGE_ORIGIN)
        .form(&[
            ("client_id", REGISTRATOR),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", PAGE),
            ("code_verifier", VERIFIER),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(
        t.get_header("access-control-allow-origin"),
        Some(PAGE_ORIGIN)
    );
    body(&t)["access_token"].as_str().unwrap().to_string()
}

/// Sends raw bytes and returns the raw answer.
async fn raw(run: &Running, text: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    s.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn sign_in_and_graph_over_http() {
    let run = start().await;
    let tok = sign_in(&run).await;
    let r = send(
        &HttpRequest::new(Method::Post, format!("{}/v1.0/applications", run.base_url))
            .header("Authorization", format!("Bearer {tok}"))
            .header("client-request-id", "abc")
            .json(&json!({"displayName": "over-http"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.get_header("request-id").is_some());
    assert_eq!(r.get_header("client-request-id"), Some("abc"));
    let id = body(&r)["id"].as_str().unwrap().to_string();
    let r = send(
        &HttpRequest::new(
            Method::Delete,
            format!("{}/v1.0/applications/{id}", run.base_url),
        )
        .header("Authorization", format!("Bearer {tok}")),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204);
    assert!(run.emulator().state_json()["applications"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn cors_preflight_like_graph_and_entra() {
    let run = start().await;
    let ans = raw(
        &run,
        &format!(
            "OPTIONS /v1.0/applications HTTP/1.1\r\nHost: {}\r\nOrigin: {PAGE_ORIGIN}\r\nAccess-Control-Request-Method: PATCH\r\nAccess-Control-Request-Headers: authorization,content-type,prefer\r\nConnection: close\r\n\r\n",
            run.addr
        ),
    )
    .await;
    let lower = ans.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{ans}");
    assert!(
        lower.contains(&format!(
            "access-control-allow-origin: {}",
            PAGE_ORIGIN.to_ascii_lowercase()
        )),
        "{ans}"
    );
    assert!(
        lower.contains("access-control-allow-headers:")
            && lower.contains("prefer")
            && lower.contains("consistencylevel"),
        "{ans}"
    );
    assert!(lower.contains("patch"), "{ans}");
    let ans = raw(&run, &format!("OPTIONS /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: {}\r\nOrigin: {PAGE_ORIGIN}\r\nConnection: close\r\n\r\n", emulator_support::TENANT, run.addr)).await;
    assert!(
        ans.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{ans}"
    );
    // The sign-in page is not for XHR: no CORS headers.
    let ans = raw(&run, &format!("OPTIONS /{}/oauth2/v2.0/authorize HTTP/1.1\r\nHost: {}\r\nOrigin: {PAGE_ORIGIN}\r\nConnection: close\r\n\r\n", emulator_support::TENANT, run.addr)).await;
    assert!(
        !ans.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{ans}"
    );
}

#[tokio::test]
async fn dropped_connection_and_latency() {
    let run = start().await;
    let tok = sign_in(&run).await;
    run.emulator().add_fault(
        FaultRule::new(FaultKind::Drop)
            .path_contains("/me")
            .times(1),
    );
    let me = HttpRequest::new(Method::Get, format!("{}/v1.0/me", run.base_url))
        .header("Authorization", format!("Bearer {tok}"));
    let err = send(&me).await.unwrap_err();
    assert!(
        err.0.contains("without a response") || !err.0.is_empty(),
        "{err:?}"
    );
    assert_eq!(send(&me).await.unwrap().status, 200);
    run.emulator()
        .set_faults(vec![FaultRule::new(FaultKind::Latency)
            .latency(300)
            .times(1)]);
    let t0 = Instant::now();
    assert_eq!(send(&me).await.unwrap().status, 200);
    assert!(t0.elapsed().as_millis() >= 290);
}

#[tokio::test]
async fn control_api() {
    let run = start().await;
    let tok = sign_in(&run).await;
    let rules = json!([{"match": {"path_contains": "/organization"}, "nth": 1, "kind": "429", "retry_after_s": 4}]);
    let r = send(
        &HttpRequest::new(Method::Post, format!("{}/_emulator/faults", run.base_url)).json(&rules),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let org = HttpRequest::new(Method::Get, format!("{}/v1.0/organization", run.base_url))
        .header("Authorization", format!("Bearer {tok}"));
    let r = send(&org).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.get_header("retry-after"), Some("4"));
    assert_eq!(send(&org).await.unwrap().status, 200);
    let bad = send(
        &HttpRequest::new(Method::Post, format!("{}/_emulator/faults", run.base_url))
            .json(&json!([{"kind": "nope"}])),
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    let log = body(
        &send(&HttpRequest::new(
            Method::Get,
            format!("{}/_emulator/log", run.base_url),
        ))
        .await
        .unwrap(),
    );
    assert!(log["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["status"] == 429));
    let st = body(
        &send(&HttpRequest::new(
            Method::Get,
            format!("{}/_emulator/state", run.base_url),
        ))
        .await
        .unwrap(),
    );
    assert_eq!(st["tenant"]["domain"], "contoso.onmicrosoft.com");
    send(
        &HttpRequest::new(Method::Post, format!("{}/_emulator/lag", run.base_url))
            .json(&json!({"app_ms": 60000})),
    )
    .await
    .unwrap();
    assert_eq!(run.emulator().config().lag.app_ms, 60000);
    send(
        &HttpRequest::new(Method::Post, format!("{}/_emulator/role", run.base_url))
            .json(&json!({"upn": "admin@contoso.onmicrosoft.com", "role": "None"})),
    )
    .await
    .unwrap();
    let r = send(
        &HttpRequest::new(Method::Post, format!("{}/v1.0/applications", run.base_url))
            .header("Authorization", format!("Bearer {tok}"))
            .json(&json!({"displayName": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
    let r = send(&HttpRequest::new(
        Method::Post,
        format!("{}/_emulator/reset", run.base_url),
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(run.emulator().faults().is_empty());
}

#[tokio::test]
async fn sign_in_page_links_work_over_http() {
    let run = start().await;
    let q = format!(
        "client_id={REGISTRATOR}&response_type=code&redirect_uri={}&scope=User.Read&code_challenge={}&code_challenge_method=S256",
        encode_component(PAGE),
        challenge(VERIFIER)
    );
    let page = send(&HttpRequest::new(
        Method::Get,
        format!("{}/oauth2/v2.0/authorize?{q}", run.authority()),
    ))
    .await
    .unwrap();
    assert_eq!(page.status, 200);
    let i = page.body.find("data-upn=\"appadmin@").unwrap();
    let h = page.body[i..].find("href=\"").unwrap() + i + 6;
    let e = page.body[h..].find('"').unwrap() + h;
    let href = page.body[h..e].replace("&amp;", "&");
    assert!(href.starts_with(&run.base_url), "{href}");
    let r = send(&HttpRequest::new(Method::Get, href)).await.unwrap();
    assert_eq!(r.status, 302);
    assert!(location_param(&r, "code").is_some());
}

#[tokio::test]
async fn static_page_server_with_config_and_csp() {
    let dir = std::env::temp_dir().join(format!("emu-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>page</title>").unwrap();
    let cfg = server::PageConfig {
        dir: dir.clone(),
        emulator_origin: "http://127.0.0.1:8400".into(),
        page_url: "http://127.0.0.1:9/".into(),
        tenant: None,
    };
    let (addr, _guard) = server::serve_page(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let r = send(&HttpRequest::new(Method::Get, format!("http://{addr}/")))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("page"));
    let csp = r.get_header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:8400")
            && csp.contains("'wasm-unsafe-eval'")
            && csp.contains("form-action http://127.0.0.1:8400"),
        "{csp}"
    );
    let c = body(
        &send(&HttpRequest::new(
            Method::Get,
            format!("http://{addr}/config.json"),
        ))
        .await
        .unwrap(),
    );
    assert_eq!(c["login_host"], "http://127.0.0.1:8400");
    assert_eq!(c["graph_host"], "http://127.0.0.1:8400");
    assert_eq!(c["redirect_uri"], "http://127.0.0.1:9/");
    assert_eq!(
        send(&HttpRequest::new(
            Method::Get,
            format!("http://{addr}/../etc/passwd")
        ))
        .await
        .unwrap()
        .status,
        404
    );
    let _ = std::fs::remove_dir_all(dir);
}
