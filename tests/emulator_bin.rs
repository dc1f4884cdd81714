//! The `emulator` program: flags, scenario file, the printed URLs, the page server with its
//! `config.json`, and the page URL registered as a `spa` redirect URI of the registrator.

mod emulator_support;
use emulator_support::{challenge, location_param, REGISTRATOR, TENANT, VERIFIER};
use m365_registrator::emulator::server::send;
use m365_registrator::engine::http::{form_encode, HttpRequest, Method};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn program_serves_emulator_and_page() {
    let dir = std::env::temp_dir().join(format!("emu-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>registrator page</title>",
    )
    .unwrap();
    let scenario = dir.join("scenario.json");
    std::fs::write(
        &scenario,
        r#"{"lag": {"app_ms": 1234, "sp_ms": 0}, "faults": [{"match": {"path_contains": "/organization"}, "nth": 1, "kind": "503"}], "password_max_lifetime_days": 365}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args([
            "--port",
            "0",
            "--page-port",
            "0",
            "--seed",
            "9",
            "--consented",
            "--latency-ms",
            "0",
        ])
        .arg("--page-dir")
        .arg(&dir)
        .arg("--scenario")
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the emulator binary starts");
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = vec![];
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done =
                l.starts_with("http") && out.iter().any(|p: &String| p.starts_with("Page: "));
            out.push(l);
            if done {
                break;
            }
        }
        out
    })
    .await
    .unwrap();
    let emu = lines
        .iter()
        .find_map(|l| l.strip_prefix("Emulator: "))
        .expect("Emulator: line")
        .to_string();
    let page = lines.last().unwrap().clone();
    assert!(emu.starts_with("http://127.0.0.1:"), "{lines:?}");
    assert!(
        page.starts_with("http://127.0.0.1:") && page.ends_with('/'),
        "{lines:?}"
    );

    let r = send(&HttpRequest::new(Method::Get, page.clone()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("registrator page"));
    assert!(r
        .get_header("content-security-policy")
        .unwrap()
        .contains(&format!("connect-src 'self' {emu}")));
    let c: Value = serde_json::from_str(
        &send(&HttpRequest::new(Method::Get, format!("{page}config.json")))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(c["login_host"], emu.as_str());
    assert_eq!(c["graph_host"], emu.as_str());
    assert_eq!(c["redirect_uri"], page.as_str());
    assert_eq!(c["tenant_hint"], "contoso.onmicrosoft.com");
    // The page's own parser accepts what the demo serves (unknown keys would be refused).
    let d = m365_registrator::engine::deploy::parse_deploy_config(&c.to_string()).unwrap();
    assert_eq!(d.endpoints().graph, emu.trim_end_matches('/'));

    // The page URL is a registered spa redirect URI: sign-in comes back with a code.
    let q = form_encode(&[
        ("client_id", REGISTRATOR),
        ("response_type", "code"),
        ("redirect_uri", &page),
        ("scope", "openid User.Read"),
        ("code_challenge", &challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
        ("emulator_user", "admin"),
    ]);
    let r = send(&HttpRequest::new(
        Method::Get,
        format!("{emu}/{TENANT}/oauth2/v2.0/authorize?{q}"),
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(location_param(&r, "code").is_some());

    // The scenario file was applied.
    let st: Value = serde_json::from_str(
        &send(&HttpRequest::new(
            Method::Get,
            format!("{emu}/_emulator/state"),
        ))
        .await
        .unwrap()
        .body,
    )
    .unwrap();
    assert_eq!(st["config"]["lag"]["app_ms"], 1234);
    assert_eq!(st["config"]["password_max_lifetime_days"], 365);
    assert_eq!(st["config"]["faults"][0]["kind"], "503");
    let _ = std::fs::remove_dir_all(dir);
}
