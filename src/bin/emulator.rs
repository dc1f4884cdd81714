//! The emulated tenant as a program: Entra ID login + Microsoft Graph on one port, optionally
//! HTTPS with a locally generated CA, optionally the built page (Trunk's `dist/`) on a second
//! port with a `config.json` pointing at the emulator. Run with `--help`.

use m365_registrator::emulator::server::{self, PageConfig, TlsConfig};
use m365_registrator::emulator::{Emulator, EmulatorConfig, Lag};
use std::net::SocketAddr;
use std::path::PathBuf;

const HELP: &str = "\
emulator — a stateful Entra ID + Microsoft Graph emulator (the 'Contoso Backup Lab' tenant)

  --host ADDR            listen address (default 127.0.0.1)
  --port N               port of the login + Graph server (default 8400; 0 = any)
  --seed N               RNG seed for ids, secrets and the token key (default: random)
  --scenario FILE        JSON scenario: any EmulatorConfig keys (faults, lag, users, policy …)
  --lag-app-ms N         replication lag of new applications
  --lag-sp-ms N          replication lag of new service principals
  --latency-ms N         latency added to every answer
  --password-max-days N  tenant policy: longest password credential lifetime
  --consented            start with the registrator already admin-consented (B-1 done)
  --spa-redirect URL     also register URL as a spa redirect URI of the registrator (repeatable)
  --https                serve HTTPS with a freshly generated CA
  --ca-out FILE          where to write that CA's PEM (default ./emulator-ca.pem)
  --page-dir DIR         also serve the built page from DIR (Trunk's dist/)
  --page-port N          port of the page server (default 8401)
  --page-redirect URL    the page URL to register as redirect URI (default http://HOST:PAGE_PORT/)

Control API (tests): GET /_emulator/state, GET /_emulator/log, POST /_emulator/faults,
POST /_emulator/reset, POST /_emulator/lag, POST /_emulator/latency, POST /_emulator/policy,
POST /_emulator/role, POST /_emulator/remove-permission, POST /_emulator/consent-registrator.
";

struct Args {
    host: String,
    port: u16,
    seed: Option<u64>,
    scenario: Option<PathBuf>,
    lag_app: Option<u64>,
    lag_sp: Option<u64>,
    latency: Option<u64>,
    password_max_days: Option<u32>,
    consented: bool,
    spa: Vec<String>,
    https: bool,
    ca_out: PathBuf,
    page_dir: Option<PathBuf>,
    page_port: u16,
    page_redirect: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 8400,
        seed: None,
        scenario: None,
        lag_app: None,
        lag_sp: None,
        latency: None,
        password_max_days: None,
        consented: false,
        spa: vec![],
        https: false,
        ca_out: PathBuf::from("emulator-ca.pem"),
        page_dir: None,
        page_port: 8401,
        page_redirect: None,
    };
    let mut it = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|_| format!("{flag}: not a number"))
    }
    while let Some(f) = it.next() {
        match f.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--host" => a.host = it.next().ok_or("--host needs a value")?,
            "--port" => a.port = num(&f, it.next())?,
            "--seed" => a.seed = Some(num(&f, it.next())?),
            "--scenario" => {
                a.scenario = Some(PathBuf::from(it.next().ok_or("--scenario needs a file")?))
            }
            "--lag-app-ms" => a.lag_app = Some(num(&f, it.next())?),
            "--lag-sp-ms" => a.lag_sp = Some(num(&f, it.next())?),
            "--latency-ms" => a.latency = Some(num(&f, it.next())?),
            "--password-max-days" => a.password_max_days = Some(num(&f, it.next())?),
            "--consented" => a.consented = true,
            "--spa-redirect" => a.spa.push(it.next().ok_or("--spa-redirect needs a URL")?),
            "--https" => a.https = true,
            "--ca-out" => a.ca_out = PathBuf::from(it.next().ok_or("--ca-out needs a file")?),
            "--page-dir" => {
                a.page_dir = Some(PathBuf::from(
                    it.next().ok_or("--page-dir needs a directory")?,
                ))
            }
            "--page-port" => a.page_port = num(&f, it.next())?,
            "--page-redirect" => {
                a.page_redirect = Some(it.next().ok_or("--page-redirect needs a URL")?)
            }
            other => return Err(format!("unknown flag {other} (see --help)")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("emulator: {e}");
            std::process::exit(2);
        }
    };
    let mut cfg = match &args.scenario {
        Some(p) => {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| {
                eprintln!("emulator: cannot read {}: {e}", p.display());
                std::process::exit(2)
            });
            serde_json::from_str::<EmulatorConfig>(&text).unwrap_or_else(|e| {
                eprintln!("emulator: bad scenario {}: {e}", p.display());
                std::process::exit(2)
            })
        }
        None => EmulatorConfig::default(),
    };
    cfg.seed = match args.seed {
        Some(s) => s,
        None if args.scenario.is_some() && cfg.seed != EmulatorConfig::default().seed => cfg.seed,
        None => getrandom::u64().unwrap_or(1),
    };
    let lag = Lag {
        app_ms: args.lag_app.unwrap_or(cfg.lag.app_ms),
        sp_ms: args.lag_sp.unwrap_or(cfg.lag.sp_ms),
    };
    cfg.lag = lag;
    if let Some(l) = args.latency {
        cfg.latency_ms = l;
    }
    if args.password_max_days.is_some() {
        cfg.password_max_lifetime_days = args.password_max_days;
    }
    cfg.registrator_consented |= args.consented;
    cfg.registrator_spa_redirect_uris
        .extend(args.spa.iter().cloned());

    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("emulator: bad --host/--port");
            std::process::exit(2);
        }
    };
    let tls = if args.https {
        match TlsConfig::generate(Some(&args.ca_out), std::slice::from_ref(&args.host)) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("emulator: TLS setup failed: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    // The page's listener first, so its URL (port 0 included) is registered before start.
    let mut page_listener = None;
    let mut page_url = None;
    if args.page_dir.is_some() {
        let page_addr: SocketAddr = match format!("{}:{}", args.host, args.page_port).parse() {
            Ok(a) => a,
            Err(_) => {
                eprintln!("emulator: bad --page-port");
                std::process::exit(2);
            }
        };
        let l = match tokio::net::TcpListener::bind(page_addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("emulator: cannot serve the page on {page_addr}: {e}");
                std::process::exit(1);
            }
        };
        let port = l.local_addr().map(|a| a.port()).unwrap_or(args.page_port);
        let url = args
            .page_redirect
            .clone()
            .unwrap_or_else(|| format!("http://{}:{port}/", args.host));
        cfg.registrator_spa_redirect_uris.push(url.clone());
        page_url = Some(url);
        page_listener = Some(l);
    }
    let emu = Emulator::new(cfg);
    let tenant = emu.tenant().clone();
    let running = match server::serve(emu, addr, tls).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("emulator: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    // Tokens are signed lazily; make the key now so the first sign-in is not slow.
    running.emulator().prepare_signing_key();
    let origin = running.base_url.clone();
    println!("Emulator: {origin}");
    println!(
        "Tenant: {} ({}, {})",
        tenant.id, tenant.domain, tenant.display_name
    );
    if args.https {
        println!("CA: {}", args.ca_out.display());
    }
    let mut page_guard = None;
    if let (Some(dir), Some(url), Some(l)) = (&args.page_dir, &page_url, page_listener) {
        let pc = PageConfig {
            dir: dir.clone(),
            emulator_origin: origin.clone(),
            page_url: url.clone(),
            tenant: Some(tenant.domain.clone()),
        };
        match server::serve_page_on(pc, l) {
            Ok((_, guard)) => page_guard = Some(guard),
            Err(e) => {
                eprintln!("emulator: cannot serve the page: {e}");
                std::process::exit(1);
            }
        }
        println!("Page: {url}");
        println!("{url}");
    } else {
        println!("{origin}");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    drop(page_guard);
    drop(running);
}
