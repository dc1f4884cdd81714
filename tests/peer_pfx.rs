//! Real peers for `engine::crypto`: the PFX files (both kinds), the certificate inside them and
//! our RS256 JWTs, checked by OpenSSL 3 (`openssl` on PATH), Java 17 (`java` on PATH,
//! `KeyStore.getInstance("PKCS12")` as the plugin does) and Python `cryptography`
//! (`pip install 'cryptography>=42'`). A missing peer fails the test with the command to install it;
//! nothing here is skipped.
//!
//! OpenSSL flags: both kinds open with plain `openssl pkcs12 -in f.pfx -passin pass:… -nodes`
//! on OpenSSL 3 (no `-legacy`): the legacy kind uses 3DES for key *and* certificates, which
//! OpenSSL 3's default provider still has; only RC2-40 (OpenSSL's own `-legacy` output) needs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use m365_registrator::engine::crypto::{
    build_jwt_rs256, build_pfx, client_assertion_claims, generate_rsa_key, key_credential_parts,
    pfx_password_from_rng, read_pfx, self_signed_certificate, sign_rs256, verify_jwt_rs256,
    verify_rs256, CertSpec, PfxKind, PfxPlan,
};
use m365_registrator::engine::secret::{AppId, PfxPassword, PrivateKeyDer};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const CN: &str = "bacula-m365-plugin-standalone";
/// 2026-01-01T01:02:03Z
const NOT_BEFORE: i64 = 1_767_225_600 + 3_723;
/// Two years (730 days) later: 2028-01-01T01:02:03Z
const NOT_AFTER: i64 = NOT_BEFORE + 730 * 86_400;
const MESSAGE: &str = "bacula m365 peer check";

struct Fixture {
    dir: PathBuf,
    key: PrivateKeyDer,
    cert: Vec<u8>,
    password: PfxPassword,
    modern: PathBuf,
    legacy: PathBuf,
}

impl Fixture {
    fn file(&self, kind: PfxKind) -> &Path {
        match kind {
            PfxKind::Modern => &self.modern,
            PfxKind::Legacy => &self.legacy,
        }
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = ChaCha20Rng::from_seed([42; 32]);
        let key = generate_rsa_key(&mut rng).expect("keygen");
        let mut serial = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rng, &mut serial);
        let spec = CertSpec {
            common_name: CN.into(),
            not_before_unix: NOT_BEFORE,
            not_after_unix: NOT_AFTER,
            serial,
        };
        let cert = self_signed_certificate(&key, &spec).expect("certificate");
        let password = pfx_password_from_rng(&mut rng);
        let dir = std::env::temp_dir().join(format!("m365-peer-pfx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let write_pfx = |kind: PfxKind, name: &str, rng: &mut ChaCha20Rng| {
            let pfx = build_pfx(&key, &cert, &password, kind, CN, rng).expect("pfx");
            let path = dir.join(name);
            std::fs::write(&path, pfx).expect("write pfx");
            path
        };
        let modern = write_pfx(PfxKind::Modern, "modern.pfx", &mut rng);
        let legacy = write_pfx(PfxKind::Legacy, "legacy.pfx", &mut rng);
        std::fs::write(dir.join("cert.der"), &cert).expect("write cert");
        Fixture {
            dir,
            key,
            cert,
            password,
            modern,
            legacy,
        }
    })
}

/// Runs a peer; a peer that is not installed fails the test with how to install it.
fn run(program: &str, args: &[&str], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!("peer `{program}` could not be started ({e}); it is required: {install}")
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn must_succeed(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}",
        o.status,
        text(&o)
    );
    text(&o)
}

fn kv<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no `{key}=` in peer output:\n{out}"))
}

/// OpenSSL's date display: `Jan  1 01:02:03 2026 GMT`.
fn openssl_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        y
    )
}

const OPENSSL: &str = "install OpenSSL 3 (`apt-get install -y openssl`)";

fn openssl(args: &[&str]) -> Output {
    run("openssl", args, OPENSSL)
}

#[test]
fn openssl_date_format_is_right() {
    assert_eq!(openssl_date(1_767_225_600), "Jan  1 00:00:00 2026 GMT");
    assert_eq!(openssl_date(NOT_AFTER), "Jan  1 01:02:03 2028 GMT");
    assert_eq!(openssl_date(951_782_400), "Feb 29 00:00:00 2000 GMT");
}

#[test]
fn openssl_opens_both_kinds_and_reads_the_certificate() {
    let f = fixture();
    let version = must_succeed("openssl version", openssl(&["version"]));
    assert!(
        version.starts_with("OpenSSL 3."),
        "need OpenSSL 3, got {version}"
    );
    let pass = format!("pass:{}", f.password.expose());
    let wrong = format!("pass:{}x", f.password.expose());
    let parts = key_credential_parts(&f.cert).unwrap();
    let thumb_spaced = parts
        .thumbprint_sha1
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ");

    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let pfx = f.file(kind).to_str().unwrap();
        let tag = format!("{kind:?}").to_lowercase();

        // Opens without -legacy (both kinds), as OpenSSL 3 and Python do by default.
        let pem_path = f.dir.join(format!("{tag}.pem"));
        let pem_file = pem_path.to_str().unwrap();
        let args = [
            "pkcs12", "-in", pfx, "-passin", &pass, "-nodes", "-out", pem_file,
        ];
        must_succeed(
            &format!("openssl pkcs12 {tag} (no -legacy)"),
            openssl(&args),
        );
        println!("openssl pkcs12 opens the {tag} PFX without -legacy");
        // And with -legacy too (an old script might pass it).
        let mut with_legacy = args.to_vec();
        with_legacy.push("-legacy");
        with_legacy[7] = "/dev/null";
        must_succeed(
            &format!("openssl pkcs12 -legacy {tag}"),
            openssl(&with_legacy),
        );

        // The algorithms are the ones we promise.
        let info = must_succeed(
            "openssl pkcs12 -info",
            openssl(&["pkcs12", "-in", pfx, "-passin", &pass, "-info", "-noout"]),
        );
        let expect: &[&str] = match kind {
            PfxKind::Modern => &[
                "MAC: sha256, Iteration 2048",
                "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256",
            ],
            PfxKind::Legacy => &[
                "MAC: sha1, Iteration 2048",
                "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
                "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
            ],
        };
        for line in expect {
            assert!(info.contains(line), "{tag}: no `{line}` in:\n{info}");
        }

        // Both bags carry the same localKeyID (SHA-1 of the certificate) and our friendly name.
        let pem = std::fs::read_to_string(&pem_path).unwrap();
        let ids: Vec<&str> = pem
            .lines()
            .filter_map(|l| l.trim().strip_prefix("localKeyID: "))
            .collect();
        assert_eq!(ids, [thumb_spaced.as_str(), thumb_spaced.as_str()], "{pem}");
        let names: Vec<&str> = pem
            .lines()
            .filter_map(|l| l.trim().strip_prefix("friendlyName: "))
            .collect();
        assert_eq!(names, [CN, CN], "{pem}");

        // Certificate and key as PEM files.
        let cert_pem = pem_block(&pem, "CERTIFICATE");
        let key_pem = pem_block(&pem, "PRIVATE KEY");
        let cert_path = f.dir.join(format!("{tag}-cert.pem"));
        let key_path = f.dir.join(format!("{tag}-key.pem"));
        std::fs::write(&cert_path, cert_pem).unwrap();
        std::fs::write(&key_path, key_pem).unwrap();
        let cert_file = cert_path.to_str().unwrap();
        let key_file = key_path.to_str().unwrap();

        let x509 = must_succeed(
            "openssl x509",
            openssl(&[
                "x509", "-in", cert_file, "-noout", "-subject", "-dates", "-text",
            ]),
        );
        for line in [
            format!("subject=CN = {CN}"),
            format!("notBefore={}", openssl_date(NOT_BEFORE)),
            format!("notAfter={}", openssl_date(NOT_AFTER)),
            "Version: 3 (0x2)".into(),
            "Signature Algorithm: sha256WithRSAEncryption".into(),
            format!("Issuer: CN = {CN}"),
            "Public-Key: (2048 bit)".into(),
            "Exponent: 65537 (0x10001)".into(),
            "X509v3 Basic Constraints: critical".into(),
            "CA:FALSE".into(),
            "X509v3 Key Usage: critical".into(),
            "Digital Signature, Key Encipherment".into(),
            "X509v3 Subject Key Identifier".into(),
        ] {
            assert!(x509.contains(&line), "{tag}: no `{line}` in:\n{x509}");
        }
        let fp = must_succeed(
            "openssl x509 -fingerprint",
            openssl(&["x509", "-in", cert_file, "-noout", "-fingerprint", "-sha1"]),
        );
        assert!(
            fp.contains(&thumb_spaced.replace(' ', ":")),
            "fingerprint {fp} vs {}",
            parts.thumbprint_hex
        );

        // The key matches the certificate.
        let from_key = must_succeed(
            "openssl pkey -pubout",
            openssl(&["pkey", "-in", key_file, "-pubout"]),
        );
        let from_cert = must_succeed(
            "openssl x509 -pubkey",
            openssl(&["x509", "-in", cert_file, "-noout", "-pubkey"]),
        );
        assert_eq!(from_key, from_cert, "{tag}: key and certificate differ");
        // OpenSSL signs with the key it read; we verify with our certificate.
        let sig_path = f.dir.join(format!("{tag}.sig"));
        let msg_path = f.dir.join("message.txt");
        std::fs::write(&msg_path, MESSAGE).unwrap();
        must_succeed(
            "openssl dgst -sign",
            openssl(&[
                "dgst",
                "-sha256",
                "-sign",
                key_file,
                "-out",
                sig_path.to_str().unwrap(),
                msg_path.to_str().unwrap(),
            ]),
        );
        let sig = std::fs::read(&sig_path).unwrap();
        verify_rs256(&f.cert, MESSAGE.as_bytes(), &sig).expect("openssl signature verifies");
        assert_eq!(sig, sign_rs256(&f.key, MESSAGE.as_bytes()).unwrap());

        // A wrong password is rejected, with and without -legacy.
        for extra in [None, Some("-legacy")] {
            let mut args = vec!["pkcs12", "-in", pfx, "-passin", &wrong, "-nodes", "-noout"];
            args.extend(extra);
            let o = openssl(&args);
            assert!(!o.status.success(), "{tag}: wrong password accepted");
            assert!(text(&o).contains("Mac verify error"), "{}", text(&o));
        }
    }
}

fn pem_block(pem: &str, label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .unwrap_or_else(|| panic!("no {begin} in:\n{pem}"));
    let stop = pem[start..].find(&end).unwrap() + start + end.len();
    format!("{}\n", &pem[start..stop])
}

#[test]
fn we_read_pfx_files_that_openssl_makes() {
    let f = fixture();
    let cert_pem = f.dir.join("openssl-in-cert.pem");
    let key_der = f.dir.join("openssl-in-key.der");
    let key_pem = f.dir.join("openssl-in-key.pem");
    std::fs::write(&key_der, f.key.expose()).unwrap();
    must_succeed(
        "openssl pkey -inform DER",
        openssl(&[
            "pkey",
            "-inform",
            "DER",
            "-in",
            key_der.to_str().unwrap(),
            "-out",
            key_pem.to_str().unwrap(),
        ]),
    );
    must_succeed(
        "openssl x509 -inform DER",
        openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            f.dir.join("cert.der").to_str().unwrap(),
            "-out",
            cert_pem.to_str().unwrap(),
        ]),
    );
    let pass = "pass:Renew-me:=#!1";
    // Default (PBES2 AES-256, SHA-256 MAC), -legacy (RC2-40 certificate, 3DES key, SHA-1 MAC),
    // no MAC (a wrong password is then found by decryption), and unencrypted bags (a plain key bag).
    let variants: [&[&str]; 4] = [
        &[],
        &["-legacy"],
        &["-nomac"],
        &["-keypbe", "NONE", "-certpbe", "NONE"],
    ];
    for extra in variants {
        let out = f.dir.join(format!("openssl-made{}.pfx", extra.concat()));
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            key_pem.to_str().unwrap(),
            "-in",
            cert_pem.to_str().unwrap(),
            "-name",
            "made-by-openssl",
            "-passout",
            pass,
            "-out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        must_succeed("openssl pkcs12 -export", openssl(&args));
        println!("reading an OpenSSL PFX made with {extra:?}");
        let bytes = std::fs::read(&out).unwrap();
        let pw = PfxPassword::new("Renew-me:=#!1");
        let (k, c) = read_pfx(&bytes, &pw).expect("read openssl pfx");
        assert_eq!(k, f.key);
        assert_eq!(c, f.cert);
        let wrong = read_pfx(&bytes, &PfxPassword::new("Renew-me")).unwrap_err();
        assert_eq!(wrong.to_string(), "wrong pfx password");
    }
}

#[test]
fn java_keystore_loads_both_kinds_signs_and_verifies() {
    let f = fixture();
    let install = "install a JDK 17 (`apt-get install -y openjdk-17-jdk-headless`)";
    let version = text(&run("java", &["-version"], install));
    println!("{}", version.lines().next().unwrap_or(""));
    let parts = key_credential_parts(&f.cert).unwrap();
    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let out = must_succeed(
            &format!("java PfxPeer {kind:?}"),
            run(
                "java",
                &[
                    "tests/peers/PfxPeer.java",
                    f.file(kind).to_str().unwrap(),
                    f.password.expose(),
                    MESSAGE,
                ],
                install,
            ),
        );
        println!("java {kind:?}:\n{out}");
        assert_eq!(kv(&out, "alias"), CN);
        assert_eq!(kv(&out, "entries"), "1");
        assert_eq!(kv(&out, "key_algorithm"), "RSA");
        assert_eq!(kv(&out, "key_bits"), "2048");
        assert_eq!(kv(&out, "subject"), format!("CN={CN}"));
        assert_eq!(kv(&out, "sig_alg"), "SHA256withRSA");
        assert_eq!(kv(&out, "not_before"), NOT_BEFORE.to_string());
        assert_eq!(kv(&out, "not_after"), parts.not_after_unix.to_string());
        assert_eq!(kv(&out, "not_after"), NOT_AFTER.to_string());
        assert_eq!(kv(&out, "signature_verified"), "true");
        assert!(kv(&out, "wrong_password").starts_with("rejected"), "{out}");
        // Java's signature with the key from our PFX is the one we make (PKCS#1 v1.5 is
        // deterministic), and it verifies with our certificate.
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(kv(&out, "signature_b64"))
            .unwrap();
        verify_rs256(&f.cert, MESSAGE.as_bytes(), &sig).expect("java signature verifies");
        assert_eq!(sig, sign_rs256(&f.key, MESSAGE.as_bytes()).unwrap());
    }
}

const PYTHON: &str = "install Python 3 and `pip install 'cryptography>=42'`";

fn python(args: &[&str]) -> String {
    let mut all = vec!["tests/peers/pfx_peer.py"];
    all.extend(args);
    let o = run("python3", &all, PYTHON);
    assert_ne!(o.status.code(), Some(90), "{}\n{PYTHON}", text(&o));
    must_succeed("python3 tests/peers/pfx_peer.py", o)
}

#[test]
fn python_cryptography_loads_both_kinds() {
    let f = fixture();
    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let out = python(&["pfx", f.file(kind).to_str().unwrap(), f.password.expose()]);
        println!("python {kind:?}:\n{out}");
        assert_eq!(kv(&out, "subject_cn"), CN);
        assert_eq!(kv(&out, "issuer_is_subject"), "True");
        assert_eq!(kv(&out, "key_bits"), "2048");
        assert_eq!(kv(&out, "sig_hash"), "sha256");
        assert_eq!(kv(&out, "not_before"), NOT_BEFORE.to_string());
        assert_eq!(kv(&out, "not_after"), NOT_AFTER.to_string());
        assert_eq!(kv(&out, "friendly_name"), CN);
        assert_eq!(kv(&out, "extra_certs"), "0");
        assert_eq!(kv(&out, "signature_verified"), "true");
        assert_eq!(kv(&out, "self_signature"), "valid");
        assert_eq!(kv(&out, "wrong_password"), "rejected");
    }
}

#[test]
fn python_verifies_our_jwt() {
    let f = fixture();
    let claims = client_assertion_claims(
        &AppId::new("11111111-2222-3333-4444-555555555555"),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        NOT_BEFORE,
        "6f1c1c2e-8d1a-4c53-9e0b-2f3b8f7f0a11",
    );
    let jwt = build_jwt_rs256(&f.key, &f.cert, &claims).unwrap();
    assert_eq!(verify_jwt_rs256(&jwt, &f.cert).unwrap(), claims);
    let out = python(&["jwt", &jwt, f.dir.join("cert.der").to_str().unwrap()]);
    assert_eq!(kv(&out, "jwt_signature"), "valid");
    let got: serde_json::Value = serde_json::from_str(kv(&out, "claims")).unwrap();
    assert_eq!(got, claims);
    // A token whose claims were swapped is refused by the peer too.
    let mut pieces: Vec<&str> = jwt.split('.').collect();
    use base64::Engine as _;
    let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#);
    pieces[1] = &other;
    let forged = pieces.join(".");
    let o = run(
        "python3",
        &[
            "tests/peers/pfx_peer.py",
            "jwt",
            &forged,
            f.dir.join("cert.der").to_str().unwrap(),
        ],
        PYTHON,
    );
    assert!(!o.status.success(), "python accepted a forged JWT");
    assert!(text(&o).contains("InvalidSignature"), "{}", text(&o));
}

/// The split writer (`PfxPlan`) with its PBKDF2 derivations done by another implementation,
/// OpenSSL's (`openssl kdf … PBKDF2`), as the page has WebCrypto do them: the bytes of `build_pfx`.
#[test]
fn pfx_plan_with_keys_derived_by_openssl_is_build_pfx() {
    let f = fixture();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let seed = [7u8; 32];
    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let expected = build_pfx(&f.key, &f.cert, &f.password, kind, CN, &mut rng).unwrap();
        let plan = PfxPlan::new(&f.password, kind, &mut ChaCha20Rng::from_seed(seed)).unwrap();
        let derived: Vec<Vec<u8>> = plan
            .pbkdf2_requests()
            .iter()
            .map(|r| {
                assert_eq!(r.hash.webcrypto_name(), "SHA-256");
                let out = must_succeed(
                    "openssl kdf PBKDF2",
                    openssl(&[
                        "kdf",
                        "-keylen",
                        &r.key_len.to_string(),
                        "-kdfopt",
                        "digest:SHA256",
                        "-kdfopt",
                        &format!("hexpass:{}", hex(r.password())),
                        "-kdfopt",
                        &format!("hexsalt:{}", hex(&r.salt)),
                        "-kdfopt",
                        &format!("iter:{}", r.iterations),
                        "PBKDF2",
                    ]),
                );
                out.trim()
                    .split(':')
                    .map(|b| u8::from_str_radix(b, 16).expect("hex byte from openssl kdf"))
                    .collect()
            })
            .collect();
        assert_eq!(derived.len(), if kind == PfxKind::Modern { 2 } else { 0 });
        let pfx = plan.finish(&f.key, &f.cert, CN, &derived).unwrap();
        assert_eq!(pfx, expected, "{kind:?}");
    }
}

/// Not a check: prints how long the expensive steps take in this build (keygen over 5 seeds).
#[test]
fn timings() {
    let mut keygen_ms: Vec<u128> = (0..5u8)
        .map(|seed| {
            let mut rng = ChaCha20Rng::from_seed([seed; 32]);
            let t = Instant::now();
            generate_rsa_key(&mut rng).unwrap();
            t.elapsed().as_millis()
        })
        .collect();
    keygen_ms.sort_unstable();
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let key = generate_rsa_key(&mut rng).unwrap();
    let cert = self_signed_certificate(
        &key,
        &CertSpec {
            common_name: CN.into(),
            not_before_unix: NOT_BEFORE,
            not_after_unix: NOT_AFTER,
            serial: [9; 16],
        },
    )
    .unwrap();
    let pw = pfx_password_from_rng(&mut rng);
    for kind in [PfxKind::Modern, PfxKind::Legacy] {
        let t = Instant::now();
        let pfx = build_pfx(&key, &cert, &pw, kind, CN, &mut rng).unwrap();
        let build = t.elapsed();
        let t = Instant::now();
        read_pfx(&pfx, &pw).unwrap();
        println!(
            "timing: build_pfx {kind:?} {} ms, read_pfx {} ms",
            build.as_millis(),
            t.elapsed().as_millis()
        );
    }
    println!("timing: generate_rsa_key ms (5 seeds, sorted) {keygen_ms:?}");
}
