//! JWTs and certificates for the emulator: the token-signing key (RS256, generated from the
//! seeded RNG and cached per seed), signing and parsing compact JWTs, RS256 verification with a
//! certificate's key, and X.509 parsing for keyCredentials. Also test helpers that make
//! self-signed RSA certificates (rcgen signing with an `rsa` key).

use super::util::{b64url, b64url_decode};
use der::{Decode, Encode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The emulator's token-signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub key: rsa::PrivateKey,
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid={})", self.kid)
    }
}

impl SigningKey {
    /// Deterministic per (seed, bits); generated once per process and cached (keygen is slow).
    pub fn for_seed(seed: u64, bits: usize) -> SigningKey {
        static CACHE: OnceLock<Mutex<HashMap<(u64, usize), SigningKey>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(k) = cache
            .lock()
            .ok()
            .and_then(|c| c.get(&(seed, bits)).cloned())
        {
            return k;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x005e_ed0f_706b_656e);
        let key = match rsa::PrivateKey::new(&mut rng, bits.clamp(1024, 4096)) {
            Ok(k) => k,
            Err(_) => match rsa::PrivateKey::new(&mut rng, 2048) {
                Ok(k) => k,
                Err(e) => panic!("RSA key generation failed: {e}"),
            },
        };
        let n = key.n_bytes();
        let kid = b64url(&Sha1::digest(&n)[..]);
        let sk = SigningKey { key, kid };
        if let Ok(mut c) = cache.lock() {
            c.insert((seed, bits), sk.clone());
        }
        sk
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid});
        sign_jwt(&self.key, &header, claims)
    }

    /// JWKS with this key (`/discovery/v2.0/keys`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": b64url(&self.key.n_bytes()), "e": b64url(&self.key.e_bytes()),
        }]})
    }

    pub fn verify(&self, jwt: &str) -> Option<Value> {
        let p = parse_jwt(jwt)?;
        if p.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return None;
        }
        let public = self.key.to_public_key();
        public
            .pkcs1v15_verify::<Sha256>(p.signing_input.as_bytes(), &p.signature)
            .ok()?;
        Some(p.claims)
    }
}

/// Signs `header.claims` with RS256.
pub fn sign_jwt(key: &rsa::PrivateKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key
        .pkcs1v15_sign::<Sha256>(input.as_bytes())
        .unwrap_or_default();
    format!("{input}.{}", b64url(&sig))
}

/// A compact JWT taken apart (signature not checked).
#[derive(Debug, Clone)]
pub struct ParsedJwt {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

pub fn parse_jwt(jwt: &str) -> Option<ParsedJwt> {
    if jwt.len() > 64 * 1024 {
        return None;
    }
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64url_decode(h)?).ok()?;
    let claims: Value = serde_json::from_slice(&b64url_decode(c)?).ok()?;
    if !header.is_object() || !claims.is_object() {
        return None;
    }
    Some(ParsedJwt {
        header,
        claims,
        signing_input: format!("{h}.{c}"),
        signature: b64url_decode(s)?,
    })
}

/// What the emulator needs from an X.509 certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
    pub public_key: rsa::PublicKey,
}

/// Parses a DER certificate with an RSA key.
pub fn parse_cert(der_bytes: &[u8]) -> Result<CertInfo, String> {
    let cert = x509_cert::Certificate::from_der(der_bytes)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = cert.tbs_certificate();
    let v = tbs.validity();
    let nb = v.not_before.to_unix_duration().as_millis() as i64;
    let na = v.not_after.to_unix_duration().as_millis() as i64;
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| e.to_string())?;
    let public_key =
        rsa::PublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA key: {e}"))?;
    let mut sha1 = [0u8; 20];
    sha1.copy_from_slice(&Sha1::digest(der_bytes)[..]);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&Sha256::digest(der_bytes)[..]);
    Ok(CertInfo {
        not_before_ms: nb,
        not_after_ms: na,
        sha1,
        sha256,
        public_key,
    })
}

/// Verifies an RS256 JWT with a certificate's public key.
pub fn verify_with(public: &rsa::PublicKey, p: &ParsedJwt) -> bool {
    p.header.get("alg").and_then(Value::as_str) == Some("RS256")
        && public
            .pkcs1v15_verify::<Sha256>(p.signing_input.as_bytes(), &p.signature)
            .is_ok()
}

/// A self-signed RSA certificate for tests (and for the demo's scenario tooling).
#[derive(Clone)]
pub struct TestCert {
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
    pub key: rsa::PrivateKey,
}

impl std::fmt::Debug for TestCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCert({} bytes)", self.cert_der.len())
    }
}

impl TestCert {
    /// RSA-2048 key from `seed` (cached per seed), certificate CN=`cn` valid between the two
    /// dates (day precision, UTC midnight): `(year, month, day)`.
    pub fn new(
        seed: u64,
        cn: &str,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Result<TestCert, String> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = SigningKey::for_seed(seed.wrapping_add(0x7e57), 2048).key;
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|e| e.to_string())?
            .as_bytes()
            .to_vec();
        let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.clone()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.self_signed(&kp).map_err(|e| e.to_string())?;
        Ok(TestCert {
            cert_der: cert.der().to_vec(),
            key_pkcs8_der: pkcs8,
            key,
        })
    }

    /// Hex SHA-1 thumbprint (what MSAL wants as `thumbprint`).
    pub fn thumbprint_hex(&self) -> String {
        Sha1::digest(&self.cert_der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    pub fn x5t(&self) -> String {
        b64url(&Sha1::digest(&self.cert_der)[..])
    }

    pub fn x5t_s256(&self) -> String {
        b64url(&Sha256::digest(&self.cert_der)[..])
    }

    /// Base64 DER, the `key` of a keyCredential.
    pub fn key_b64(&self) -> String {
        super::util::b64_std(&self.cert_der)
    }

    /// PEM of the PKCS#8 private key.
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key_pkcs8_der)
    }

    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// A JWT signed by this certificate's key with `x5t` (SHA-1) in the header.
    pub fn sign(&self, claims: &Value) -> String {
        sign_jwt(
            &self.key,
            &json!({"typ": "JWT", "alg": "RS256", "x5t": self.x5t()}),
            claims,
        )
    }

    /// A JWT with `x5t#S256` instead of `x5t`.
    pub fn sign_s256(&self, claims: &Value) -> String {
        sign_jwt(
            &self.key,
            &json!({"typ": "JWT", "alg": "RS256", "x5t#S256": self.x5t_s256()}),
            claims,
        )
    }
}

pub fn pem(label: &str, der_bytes: &[u8]) -> String {
    let b = super::util::b64_std(der_bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A NumericDate claim; integers and floats (Python clients send `time.time() + 600`) both count.
pub fn num_claim(claims: &Value, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}
