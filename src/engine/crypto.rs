//! Credentials made in the page: RSA key (PKCS#8), self-signed X.509 certificate, PKCS#12 (PFX)
//! files, the values a Graph `keyCredential` needs, and RS256 JWTs (the `addKey` proof and client
//! assertions). Pure: time and randomness are parameters. Must not import web-sys, sockets, a clock
//! (`SystemTime::now`, x509-cert's `Validity::from_now`) or a global RNG.
//!
//! Randomness comes in as `&mut R where R: rand_core::CryptoRng` (rand_core 0.10: an infallible
//! cryptographic RNG; in the browser wrap getrandom's `SysRng` in `rand_core::UnwrapErr`) or as
//! explicit bytes ([`pfx_password`]). Nothing here draws randomness on its own:
//!
//! - PFX files are written here, not by `p12-keystore`, because its writer draws salts and IVs
//!   from `rand::random()` (a hidden thread RNG, `p12-keystore` 0.4.1 `codec.rs`). The writer
//!   below takes every salt and IV from the caller's RNG, so the same seed gives the same bytes.
//! - PFX files are read here too ([`read_pfx`]), on the crates the writer uses: `p12-keystore`'s
//!   reader (with `x509-parser` below it) weighed about 100 KB gzip in the page; it stays a
//!   dev-dependency, the independent reader the tests check our files with.
//!
//! Every function returns [`CryptoError`] instead of panicking: a panic in WASM kills the page.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cbc::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
use der::asn1::{
    BmpString, GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec, UtcTime, Utf8StringRef,
};
use der::{Any, DateTime, Decode, Encode};
use hmac::{KeyInit, Mac};
use pkcs12::cms::content_info::{CmsVersion, ContentInfo};
use pkcs12::cms::encrypted_data::EncryptedData;
use pkcs12::cms::enveloped_data::EncryptedContentInfo;
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::pfx::{Pfx, Version};
use pkcs12::{kdf, CertBag, DigestInfo, MacData, SafeBag};
use rand_core::CryptoRng;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::attr::{Attribute, AttributeTypeAndValue, Attributes};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::secret::{AppId, ObjectId, PfxPassword, PrivateKeyDer};

/// Modulus size of the keys we generate, and the smallest we accept from outside (WebCrypto, PFX).
pub const RSA_BITS: usize = 2048;
/// Largest modulus we accept from outside (keeps signing time bounded in the page).
pub const MAX_RSA_BITS: usize = 8192;
/// PBKDF2-HMAC-SHA256 iterations of the key and certificate encryption of a [`PfxKind::Modern`]
/// file: 10,000, Java 17's default (`keystore.pkcs12.keyPbeIterationCount` and
/// `certPbeIterationCount` in `conf/security/java.security`; OpenSSL 3 writes 2,048). A guess at the
/// password is checked against the MAC ([`MODERN_MAC_ITERATIONS`]) far more cheaply than against
/// the encryption, so a higher count here would buy nothing, and the page's passwords are
/// generated (about 255 bits, [`pfx_password`]); it would cost time on the page (issue 6 (a): the
/// two derivations ran concurrently with RSA key generation, 24 ms at 100,000). Java refuses more
/// than 5,000,000; .NET caps the sum of a file's KDF iterations at 600,000. The page has WebCrypto
/// derive them (native code, off the page's thread; see [`PfxPlan`]).
pub const MODERN_ITERATIONS: u32 = 10_000;
/// PKCS#12 MAC iterations (RFC 7292 appendix B KDF, SHA-256) of a [`PfxKind::Modern`] file:
/// 2048, OpenSSL 3's default (`PKCS12_DEFAULT_ITER` = `PKCS5_DEFAULT_ITER` = 2048 in
/// `openssl/pkcs12.h` and `openssl/evp.h`: what `openssl pkcs12 -export` writes). Java 17 writes
/// 10,000 (`keystore.pkcs12.macIterationCount` in `conf/security/java.security`); both read any
/// count. Why not more: iterations slow down guessing a *weak* password,
/// and the page writes PFX files only with passwords it generates ([`pfx_password`]: 40 symbols
/// drawn uniformly from 84, about 255 bits, far beyond any search at any iteration count). The
/// count buys nothing and costs time: WebCrypto has no PKCS#12 KDF, so it runs in WebAssembly on
/// the page's thread, where 100,000 iterations were the longest single task of issue 6 (a).
/// A caller writing a file with a human-chosen password should know that the MAC, not the
/// encryption, sets the cost of each guess.
pub const MODERN_MAC_ITERATIONS: u32 = 2048;
/// PKCS#12 KDF iterations (encryption and MAC) of a [`PfxKind::Legacy`] file (OpenSSL's default).
pub const LEGACY_ITERATIONS: u32 = 2048;
/// Length of the passwords [`pfx_password`] makes.
pub const PFX_PASSWORD_LEN: usize = 40;
/// Random bytes to hand [`pfx_password`]: enough that running out has a probability below 1e-12.
pub const PFX_PASSWORD_RANDOM_BYTES: usize = 256;
/// The characters of a generated PFX password: 84 symbols, all printable ASCII that Java accepts.
/// The `.conf` writer escapes `: = # !` as `java.util.Properties.store` does.
pub const PFX_PASSWORD_ALPHABET: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@#%^*_+-=~[]{}<>.,:;!?";
/// Lifetime of the JWTs made by [`addkey_proof_claims`] and [`client_assertion_claims`].
/// Graph requires the `addKey` proof to live at most 10 minutes.
pub const JWT_LIFETIME_SECS: i64 = 600;
/// `aud` of an `addKey`/`removeKey` proof: the AAD Graph resource id
/// (<https://learn.microsoft.com/graph/application-rollkey-prooftoken>).
pub const ADDKEY_PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// RFC 5280 `ub-common-name`.
pub const MAX_COMMON_NAME_CHARS: usize = 64;

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_KU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_BC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const OID_PBE_SHA1_RC2_40: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const OID_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const OID_SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const OID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const OID_X509_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const OID_FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const OID_LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// What went wrong. Never carries key material or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("rsa key generation failed")]
    KeyGeneration,
    #[error("not a valid pkcs#8 rsa private key")]
    InvalidKey,
    #[error("rsa key size {bits} bits is outside {min}..={max}")]
    KeySize { bits: usize, min: usize, max: usize },
    #[error("not a valid x.509 certificate")]
    InvalidCertificate,
    #[error("not a valid rsa public key or certificate")]
    InvalidPublicKey,
    #[error("the private key does not match the certificate")]
    KeyCertificateMismatch,
    #[error("certificate common name must have 1 to 64 characters")]
    InvalidCommonName,
    #[error("certificate validity is invalid (not after must follow not before, both from 1970 to 9999)")]
    InvalidValidity,
    #[error("pfx password must be non-empty printable ascii")]
    InvalidPassword,
    #[error(
        "pfx friendly name cannot be stored (characters outside the basic multilingual plane)"
    )]
    InvalidFriendlyName,
    #[error("wrong pfx password")]
    WrongPassword,
    #[error("not a readable pkcs#12 (pfx) file")]
    InvalidPfx,
    #[error("the pfx file uses an unsupported algorithm or iteration count")]
    UnsupportedPfx,
    #[error("the pfx file holds no rsa private key")]
    PfxWithoutKey,
    #[error("the pfx file holds no certificate for its private key")]
    PfxWithoutCertificate,
    #[error("not enough random bytes")]
    NotEnoughRandomness,
    #[error("the derived keys do not match the pfx plan's requests")]
    DerivedKeys,
    #[error("signing failed")]
    Signing,
    #[error("signature does not verify")]
    BadSignature,
    #[error("malformed jwt")]
    MalformedJwt,
    #[error("jwt algorithm is not rs256")]
    UnsupportedJwtAlgorithm,
    #[error("jwt was signed for another certificate (x5t mismatch)")]
    JwtCertificateMismatch,
    #[error("jwt claims must be a json object")]
    InvalidClaims,
    #[error("encoding failed")]
    Encoding,
}

impl From<der::Error> for CryptoError {
    fn from(_: der::Error) -> Self {
        CryptoError::Encoding
    }
}

// ---------------------------------------------------------------------------------------------
// RSA keys

/// A parsed, validated RSA private key (from [`parse_private_key`]). Redacted `Debug`.
#[derive(Clone)]
pub struct RsaKey {
    key: rsa::PrivateKey,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaKey(<redacted {} bits>)", self.bits())
    }
}

impl RsaKey {
    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bit_width_vartime() as usize
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let doc = self
            .key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| CryptoError::Encoding)?;
        Ok(doc.as_bytes().to_vec())
    }

    /// The key as canonical PKCS#8 DER.
    pub fn to_pkcs8(&self) -> Result<PrivateKeyDer, CryptoError> {
        let doc = self.key.to_pkcs8_der().map_err(|_| CryptoError::Encoding)?;
        Ok(PrivateKeyDer::new(doc.as_bytes().to_vec()))
    }

    fn public_key(&self) -> rsa::PublicKey {
        self.key.to_public_key()
    }
}

/// A fresh RSA-2048 key (e = 65537) as PKCS#8 DER. Same RNG state, same key.
pub fn generate_rsa_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<PrivateKeyDer, CryptoError> {
    let key = rsa::PrivateKey::new(rng, RSA_BITS).map_err(|_| CryptoError::KeyGeneration)?;
    RsaKey { key }.to_pkcs8()
}

/// Parses any PKCS#8 RSA private key (ours, or WebCrypto's `exportKey("pkcs8")`, or one from a PFX)
/// and checks it: consistent components, modulus of [`RSA_BITS`]..=[`MAX_RSA_BITS`] bits.
pub fn parse_private_key(der: &PrivateKeyDer) -> Result<RsaKey, CryptoError> {
    let key = rsa::PrivateKey::from_pkcs8_der(der.expose()).map_err(|_| CryptoError::InvalidKey)?;
    let key = RsaKey { key };
    let bits = key.bits();
    if !(RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(CryptoError::KeySize {
            bits,
            min: RSA_BITS,
            max: MAX_RSA_BITS,
        });
    }
    key.key.validate().map_err(|_| CryptoError::InvalidKey)?;
    Ok(key)
}

fn parse_public_key(spki: SubjectPublicKeyInfoRef<'_>) -> Result<rsa::PublicKey, CryptoError> {
    rsa::PublicKey::try_from(spki).map_err(|_| CryptoError::InvalidPublicKey)
}

/// The RSA public key of a DER certificate or a DER `SubjectPublicKeyInfo`.
fn public_key_of(spki_or_cert_der: &[u8]) -> Result<rsa::PublicKey, CryptoError> {
    if let Ok(cert) = Certificate::from_der(spki_or_cert_der) {
        return cert_public_key(&cert);
    }
    let spki = SubjectPublicKeyInfoRef::from_der(spki_or_cert_der)
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    parse_public_key(spki)
}

fn cert_public_key(cert: &Certificate) -> Result<rsa::PublicKey, CryptoError> {
    let spki_der = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| CryptoError::InvalidCertificate)?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_der)
        .map_err(|_| CryptoError::InvalidCertificate)?;
    parse_public_key(spki)
}

fn parse_certificate(cert_der: &[u8]) -> Result<Certificate, CryptoError> {
    Certificate::from_der(cert_der).map_err(|_| CryptoError::InvalidCertificate)
}

fn check_pair(key: &RsaKey, cert: &Certificate) -> Result<(), CryptoError> {
    match cert_public_key(cert) {
        Ok(public) if public == key.public_key() => Ok(()),
        Ok(_) | Err(CryptoError::InvalidPublicKey) => Err(CryptoError::KeyCertificateMismatch),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Self-signed certificate

/// What [`self_signed_certificate`] puts in the certificate. Times are Unix seconds (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject and issuer `CN` (the app name), 1 to 64 characters.
    pub common_name: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Random bytes for the serial; made positive and non-zero (top bit cleared, low bit set).
    pub serial: [u8; 16],
}

/// The serial number [`self_signed_certificate`] writes for `random`: top bit cleared (positive),
/// lowest bit set (non-zero), RFC 5280 section 4.1.2.2.
pub fn serial_from_random(random: [u8; 16]) -> [u8; 16] {
    let mut serial = random;
    serial[0] &= 0x7f;
    serial[15] |= 0x01;
    serial
}

/// RFC 5280 section 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn x509_time(unix: i64) -> Result<Time, CryptoError> {
    let secs = u64::try_from(unix).map_err(|_| CryptoError::InvalidValidity)?;
    let dt = DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|_| CryptoError::InvalidValidity)?;
    if dt.year() <= UtcTime::MAX_YEAR {
        let t = UtcTime::from_date_time(dt).map_err(|_| CryptoError::InvalidValidity)?;
        Ok(Time::UtcTime(t))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

fn common_name(cn: &str) -> Result<Name, CryptoError> {
    let chars = cn.chars().count();
    if chars == 0 || chars > MAX_COMMON_NAME_CHARS || cn.chars().any(char::is_control) {
        return Err(CryptoError::InvalidCommonName);
    }
    let value = Utf8StringRef::new(cn).map_err(|_| CryptoError::InvalidCommonName)?;
    let atv = AttributeTypeAndValue {
        oid: OID_CN,
        value: Any::encode_from(&value)?,
    };
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(atv)?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    Ok(Name::from_der(&seq.to_der()?)?)
}

/// Profile for our certificate: self-issued end entity, CA:false (critical), key usage
/// digitalSignature + keyEncipherment (critical), subject key identifier (RFC 5280 4.2.1.2 (1)).
struct SelfSignedEndEntity {
    subject: Name,
}

impl BuilderProfile for SelfSignedEndEntity {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let bc = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        let ku = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment);
        let ski = Sha1::digest(spk.subject_public_key.raw_bytes());
        Ok(vec![
            Extension {
                extn_id: OID_BC,
                critical: true,
                extn_value: OctetString::new(bc.to_der()?)?,
            },
            Extension {
                extn_id: OID_KU,
                critical: true,
                extn_value: OctetString::new(ku.to_der()?)?,
            },
            Extension {
                extn_id: OID_SKI,
                critical: false,
                extn_value: OctetString::new(OctetString::new(ski.to_vec())?.to_der()?)?,
            },
        ])
    }
}

/// A self-signed X.509 v3 certificate (DER) for `key`: sha256WithRSAEncryption,
/// subject = issuer = `CN=<common_name>`, validity exactly as given.
pub fn self_signed_certificate(
    key: &PrivateKeyDer,
    spec: &CertSpec,
) -> Result<Vec<u8>, CryptoError> {
    let key = parse_private_key(key)?;
    if spec.not_after_unix <= spec.not_before_unix {
        return Err(CryptoError::InvalidValidity);
    }
    let validity = Validity::new(
        x509_time(spec.not_before_unix)?,
        x509_time(spec.not_after_unix)?,
    );
    let subject = common_name(&spec.common_name)?;
    let serial = SerialNumber::new(&serial_from_random(spec.serial))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)?;
    let builder = CertificateBuilder::new(SelfSignedEndEntity { subject }, serial, validity, spki)
        .map_err(|_| CryptoError::Encoding)?;
    let signer = SigningKey::<Sha256>::new(key.key);
    let cert = builder
        .build::<_, Signature>(&signer)
        .map_err(|_| CryptoError::Signing)?;
    Ok(cert.to_der()?)
}

// ---------------------------------------------------------------------------------------------
// Graph keyCredential

/// What a Graph `keyCredential` (and a JWT header) needs from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCredentialParts {
    /// Standard base64 of the certificate DER: `keyCredential.key`.
    pub key_base64: String,
    /// SHA-1 of the certificate DER.
    pub thumbprint_sha1: [u8; 20],
    /// Upper-case hex SHA-1 thumbprint, as the Entra portal and Windows show it.
    pub thumbprint_hex: String,
    /// Standard base64 of the SHA-1 thumbprint: `keyCredential.customKeyIdentifier` (Edm.Binary),
    /// what the Entra portal sets when a certificate is uploaded.
    pub custom_key_identifier: String,
    /// base64url (no padding) SHA-1 thumbprint: JWT header `x5t` (RFC 7515 4.1.7).
    pub x5t: String,
    /// base64url (no padding) SHA-256 thumbprint: JWT header `x5t#S256` (RFC 7515 4.1.8).
    pub x5t_s256: String,
    /// From the certificate (`keyCredential.startDateTime`), Unix seconds.
    pub not_before_unix: i64,
    /// From the certificate (`keyCredential.endDateTime`), Unix seconds.
    pub not_after_unix: i64,
}

fn unix_of(t: Time) -> Result<i64, CryptoError> {
    i64::try_from(t.to_unix_duration().as_secs()).map_err(|_| CryptoError::InvalidCertificate)
}

/// Reads a DER certificate and returns what Graph and JWT headers need.
pub fn key_credential_parts(cert_der: &[u8]) -> Result<KeyCredentialParts, CryptoError> {
    let cert = parse_certificate(cert_der)?;
    let validity = cert.tbs_certificate().validity();
    let thumbprint_sha1: [u8; 20] = Sha1::digest(cert_der).into();
    let sha256 = Sha256::digest(cert_der);
    Ok(KeyCredentialParts {
        key_base64: STANDARD.encode(cert_der),
        thumbprint_sha1,
        thumbprint_hex: thumbprint_sha1.iter().map(|b| format!("{b:02X}")).collect(),
        custom_key_identifier: STANDARD.encode(thumbprint_sha1),
        x5t: URL_SAFE_NO_PAD.encode(thumbprint_sha1),
        x5t_s256: URL_SAFE_NO_PAD.encode(sha256),
        not_before_unix: unix_of(validity.not_before)?,
        not_after_unix: unix_of(validity.not_after)?,
    })
}

// ---------------------------------------------------------------------------------------------
// PFX password

/// Maps random bytes to a 40-character password over [`PFX_PASSWORD_ALPHABET`] without bias
/// (rejection sampling: a byte is used only if below 252 = 3 x 84), with at least one upper-case
/// letter, lower-case letter, digit and punctuation character (a candidate missing a class is
/// dropped whole, so the result is uniform over all passwords that have every class).
/// Give it [`PFX_PASSWORD_RANDOM_BYTES`] bytes; fewer may end in [`CryptoError::NotEnoughRandomness`].
pub fn pfx_password(random: &[u8]) -> Result<PfxPassword, CryptoError> {
    let mut bytes = random.iter().copied();
    password_from(|| bytes.next()).ok_or(CryptoError::NotEnoughRandomness)
}

/// [`pfx_password`] drawing as many bytes as it needs from `rng`.
pub fn pfx_password_from_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> PfxPassword {
    let mut next = || {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        Some(b[0])
    };
    // The source never ends, so `None` cannot happen; fall back to a fresh attempt regardless.
    loop {
        if let Some(p) = password_from(&mut next) {
            return p;
        }
    }
}

fn password_from(mut next: impl FnMut() -> Option<u8>) -> Option<PfxPassword> {
    let alphabet = PFX_PASSWORD_ALPHABET.as_bytes();
    let n = alphabet.len(); // 84
    let limit = 256 - 256 % n; // 252
    loop {
        let mut candidate = String::with_capacity(PFX_PASSWORD_LEN);
        while candidate.len() < PFX_PASSWORD_LEN {
            let b = usize::from(next()?);
            if b < limit {
                candidate.push(char::from(alphabet[b % n]));
            }
        }
        if has_every_class(&candidate) {
            return Some(PfxPassword::new(candidate));
        }
    }
}

fn has_every_class(p: &str) -> bool {
    p.bytes().any(|c| c.is_ascii_uppercase())
        && p.bytes().any(|c| c.is_ascii_lowercase())
        && p.bytes().any(|c| c.is_ascii_digit())
        && p.bytes().any(|c| c.is_ascii_punctuation())
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 writer (RFC 7292)

/// Which PKCS#12 protection [`build_pfx`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PfxKind {
    /// PBES2 (PBKDF2-HMAC-SHA256, [`MODERN_ITERATIONS`]) with AES-256-CBC for key and
    /// certificate, HMAC-SHA256 MAC ([`MODERN_MAC_ITERATIONS`]). Java 8u301+/11.0.12+/17,
    /// OpenSSL 1.1.1+/3, Windows Server 2019+.
    #[default]
    Modern,
    /// pbeWithSHAAnd3-KeyTripleDES-CBC ([`LEGACY_ITERATIONS`]) for key and certificate, HMAC-SHA1
    /// MAC: older Java 8 and Windows Server 2016.
    Legacy,
}

struct Salts {
    mac_salt: Vec<u8>,
    cert: (Vec<u8>, [u8; 16]),
    key: (Vec<u8>, [u8; 16]),
}

impl Salts {
    fn draw<R: CryptoRng + ?Sized>(kind: PfxKind, rng: &mut R) -> Self {
        // 16-byte salts for PBKDF2 and the SHA-256 MAC; 8 bytes for the SHA-1 PKCS#12 KDF, as
        // OpenSSL writes it (legacy ignores the IVs: its KDF derives the 3DES IV).
        let salt_len = match kind {
            PfxKind::Modern => 16,
            PfxKind::Legacy => 8,
        };
        let mac_salt = random_vec(rng, salt_len);
        let cert = (random_vec(rng, salt_len), random_iv(rng));
        let key = (random_vec(rng, salt_len), random_iv(rng));
        Salts {
            mac_salt,
            cert,
            key,
        }
    }
}

fn random_vec<R: CryptoRng + ?Sized>(rng: &mut R, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn random_iv<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    iv
}

fn check_password(password: &PfxPassword) -> Result<&str, CryptoError> {
    let p = password.expose();
    if p.is_empty() || !p.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(CryptoError::InvalidPassword);
    }
    Ok(p)
}

/// The pseudo-random function of a [`Pbkdf2Request`]: HMAC with this hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pbkdf2Hash {
    Sha256,
}

impl Pbkdf2Hash {
    /// The hash's WebCrypto name (`deriveBits({name: "PBKDF2", hash: …})`).
    pub fn webcrypto_name(self) -> &'static str {
        match self {
            Pbkdf2Hash::Sha256 => "SHA-256",
        }
    }
}

/// One PBKDF2 derivation (RFC 8018 section 5.2) that a [`PfxPlan`] needs: `key_len` bytes from the
/// password's bytes and `salt` with `iterations` of HMAC-`hash`. The caller runs it where it is
/// cheap (the page: WebCrypto `deriveBits`, native code off the page's thread) or in Rust
/// ([`Pbkdf2Request::derive`]). Redacted `Debug`.
#[derive(Clone)]
pub struct Pbkdf2Request {
    password: PfxPassword,
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// Output length in bytes.
    pub key_len: usize,
    pub hash: Pbkdf2Hash,
}

impl std::fmt::Debug for Pbkdf2Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbkdf2Request")
            .field("password", &"<redacted>")
            .field("salt", &self.salt)
            .field("iterations", &self.iterations)
            .field("key_len", &self.key_len)
            .field("hash", &self.hash)
            .finish()
    }
}

impl Pbkdf2Request {
    /// The password as PBKDF2 takes it: its bytes (printable ASCII, so UTF-8 and ASCII agree;
    /// PBES2 has no BMPString conversion, unlike the PKCS#12 KDF).
    pub fn password(&self) -> &[u8] {
        self.password.expose().as_bytes()
    }

    /// This derivation in Rust (what [`build_pfx`] uses). In WebAssembly it runs on the page's
    /// thread and is several times slower than WebCrypto's.
    pub fn derive(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.key_len];
        match self.hash {
            Pbkdf2Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                self.password(),
                &self.salt,
                self.iterations,
                &mut out,
            ),
        }
        out
    }
}

/// [`build_pfx`] in two steps, so that its expensive key derivations can be done by the caller
/// (the page hands the PBKDF2 ones to WebCrypto, which runs them natively off the page's thread):
///
/// 1. [`PfxPlan::new`] checks the password and draws every salt and IV from the RNG (in the order
///    [`build_pfx`] draws them); [`PfxPlan::pbkdf2_requests`] lists the derivations it needs.
///    Neither needs the key or the certificate, so the derivations can run while the key is made.
/// 2. [`PfxPlan::finish`] takes the key, the certificate, the friendly name and the derived keys
///    (in the order of the requests) and writes the file; AES-256-CBC, the 3DES of the legacy
///    kind and the MAC (PKCS#12 KDF, which WebCrypto lacks) stay here.
///
/// Same RNG state and correctly derived keys: the same bytes as [`build_pfx`].
pub struct PfxPlan {
    kind: PfxKind,
    password: PfxPassword,
    salts: Salts,
}

impl std::fmt::Debug for PfxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PfxPlan({:?}, <redacted>)", self.kind)
    }
}

impl PfxPlan {
    /// Checks `password` (non-empty printable ASCII) and draws the salts and IVs from `rng`.
    pub fn new<R: CryptoRng + ?Sized>(
        password: &PfxPassword,
        kind: PfxKind,
        rng: &mut R,
    ) -> Result<Self, CryptoError> {
        check_password(password)?;
        Ok(PfxPlan {
            kind,
            password: password.clone(),
            salts: Salts::draw(kind, rng),
        })
    }

    pub fn kind(&self) -> PfxKind {
        self.kind
    }

    /// The PBKDF2 derivations [`PfxPlan::finish`] needs, in the order it takes them: for
    /// [`PfxKind::Modern`], the certificate bag's AES-256 key, then the key bag's; for
    /// [`PfxKind::Legacy`], none (its PKCS#12 KDF runs in [`PfxPlan::finish`]).
    pub fn pbkdf2_requests(&self) -> Vec<Pbkdf2Request> {
        match self.kind {
            PfxKind::Modern => [&self.salts.cert, &self.salts.key]
                .into_iter()
                .map(|(salt, _iv)| Pbkdf2Request {
                    password: self.password.clone(),
                    salt: salt.clone(),
                    iterations: MODERN_ITERATIONS,
                    key_len: 32,
                    hash: Pbkdf2Hash::Sha256,
                })
                .collect(),
            PfxKind::Legacy => Vec::new(),
        }
    }

    /// Writes the PFX: `key` and its certificate `cert_der`, laid out as [`build_pfx`] documents,
    /// encrypted with `derived` (one key per [`PfxPlan::pbkdf2_requests`] entry, same order and
    /// lengths, else [`CryptoError::DerivedKeys`]). A key derived wrongly makes a file whose
    /// bags no peer can decrypt: derive exactly what was asked.
    pub fn finish(
        self,
        key: &PrivateKeyDer,
        cert_der: &[u8],
        friendly_name: &str,
        derived: &[Vec<u8>],
    ) -> Result<Vec<u8>, CryptoError> {
        let requests = self.pbkdf2_requests();
        if derived.len() != requests.len()
            || derived
                .iter()
                .zip(&requests)
                .any(|(d, r)| d.len() != r.key_len)
        {
            return Err(CryptoError::DerivedKeys);
        }
        let rsa_key = parse_private_key(key)?;
        let cert = parse_certificate(cert_der)?;
        check_pair(&rsa_key, &cert)?;
        let password = check_password(&self.password)?;
        let friendly_name = if friendly_name.is_empty() {
            None
        } else {
            Some(
                BmpString::from_utf8(friendly_name)
                    .map_err(|_| CryptoError::InvalidFriendlyName)?,
            )
        };
        let local_key_id: [u8; 20] = Sha1::digest(cert_der).into();
        let (cert_key, key_key) = match derived {
            [c, k] => (Some(c.as_slice()), Some(k.as_slice())),
            _ => (None, None),
        };
        let kind = self.kind;
        let salts = &self.salts;

        // Certificate: CertBag in an encrypted SafeContents (RFC 7292 4.2.3).
        let cert_bag = SafeBag {
            bag_id: OID_CERT_BAG,
            bag_value: CertBag {
                cert_id: OID_X509_CERT,
                cert_value: OctetString::new(cert_der)?,
            }
            .to_der()?,
            bag_attributes: Some(bag_attributes(friendly_name.as_ref(), &local_key_id)?),
        };
        let cert_safe = vec![cert_bag].to_der()?;
        let (cert_alg, cert_ct) = pbe_encrypt(kind, password, cert_key, &salts.cert, &cert_safe)?;
        let cert_ci = ContentInfo {
            content_type: OID_ENCRYPTED_DATA,
            content: Any::encode_from(&EncryptedData {
                version: CmsVersion::V0,
                enc_content_info: EncryptedContentInfo {
                    content_type: OID_DATA,
                    content_enc_alg: cert_alg,
                    encrypted_content: Some(OctetString::new(cert_ct)?),
                },
                unprotected_attrs: None,
            })?,
        };

        // Key: PKCS8ShroudedKeyBag in a plain SafeContents (RFC 7292 4.2.2).
        let pkcs8 = rsa_key.to_pkcs8()?;
        let (key_alg, key_ct) = pbe_encrypt(kind, password, key_key, &salts.key, pkcs8.expose())?;
        let key_bag = SafeBag {
            bag_id: OID_SHROUDED_KEY_BAG,
            bag_value: EncryptedPrivateKeyInfo {
                encryption_algorithm: key_alg,
                encrypted_data: OctetString::new(key_ct)?,
            }
            .to_der()?,
            bag_attributes: Some(bag_attributes(friendly_name.as_ref(), &local_key_id)?),
        };
        let key_ci = data_content_info(&vec![key_bag].to_der()?)?;

        let auth_safe = vec![cert_ci, key_ci].to_der()?;
        let mac_data = pkcs12_mac(kind, password, &salts.mac_salt, &auth_safe)?;
        let pfx = Pfx {
            version: Version::V3,
            auth_safe: data_content_info(&auth_safe)?,
            mac_data: Some(mac_data),
        };
        Ok(pfx.to_der()?)
    }
}

/// Encrypts `data` with the PBE of `kind`; returns the algorithm identifier and the ciphertext.
/// Modern: AES-256-CBC with `derived` (the PBKDF2 key of `salt`); legacy: derives its 3DES key
/// and IV here (PKCS#12 KDF).
fn pbe_encrypt(
    kind: PfxKind,
    password: &str,
    derived: Option<&[u8]>,
    (salt, iv): &(Vec<u8>, [u8; 16]),
    data: &[u8],
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), CryptoError> {
    match kind {
        PfxKind::Modern => {
            let key = derived.ok_or(CryptoError::DerivedKeys)?;
            let params = pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
                MODERN_ITERATIONS,
                salt,
                *iv,
            )
            .map_err(|_| CryptoError::Encoding)?;
            let cipher = cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::DerivedKeys)?;
            let ct = cipher.encrypt_padded_vec::<Pkcs7>(data);
            let alg = AlgorithmIdentifierOwned {
                oid: OID_PBES2,
                parameters: Some(Any::encode_from(&params)?),
            };
            Ok((alg, ct))
        }
        PfxKind::Legacy => {
            let rounds = LEGACY_ITERATIONS as i32;
            let key = kdf::derive_key_utf8::<Sha1>(
                password,
                salt,
                kdf::Pkcs12KeyType::EncryptionKey,
                rounds,
                24,
            )?;
            let iv =
                kdf::derive_key_utf8::<Sha1>(password, salt, kdf::Pkcs12KeyType::Iv, rounds, 8)?;
            let cipher = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(|_| CryptoError::Encoding)?;
            let ct = cipher.encrypt_padded_vec::<Pkcs7>(data);
            let params = Pkcs12PbeParams {
                salt: OctetString::new(salt.as_slice())?,
                iterations: rounds,
            };
            let alg = AlgorithmIdentifierOwned {
                oid: OID_PBE_SHA1_3DES,
                parameters: Some(Any::encode_from(&params)?),
            };
            Ok((alg, ct))
        }
    }
}

fn pkcs12_mac(
    kind: PfxKind,
    password: &str,
    salt: &[u8],
    data: &[u8],
) -> Result<MacData, CryptoError> {
    let (oid, iterations, digest) = match kind {
        PfxKind::Modern => {
            let rounds = MODERN_MAC_ITERATIONS as i32;
            let key = kdf::derive_key_utf8::<Sha256>(
                password,
                salt,
                kdf::Pkcs12KeyType::Mac,
                rounds,
                32,
            )?;
            let mut mac =
                hmac::Hmac::<Sha256>::new_from_slice(&key).map_err(|_| CryptoError::Encoding)?;
            mac.update(data);
            (OID_SHA256, rounds, mac.finalize().into_bytes().to_vec())
        }
        PfxKind::Legacy => {
            let rounds = LEGACY_ITERATIONS as i32;
            let key =
                kdf::derive_key_utf8::<Sha1>(password, salt, kdf::Pkcs12KeyType::Mac, rounds, 20)?;
            let mut mac =
                hmac::Hmac::<Sha1>::new_from_slice(&key).map_err(|_| CryptoError::Encoding)?;
            mac.update(data);
            (OID_SHA1, rounds, mac.finalize().into_bytes().to_vec())
        }
    };
    Ok(MacData {
        mac: DigestInfo {
            algorithm: AlgorithmIdentifierOwned {
                oid,
                parameters: Some(Any::null()),
            },
            digest: OctetString::new(digest)?,
        },
        mac_salt: OctetString::new(salt)?,
        iterations,
    })
}

fn bag_attributes(
    friendly_name: Option<&BmpString>,
    local_key_id: &[u8],
) -> Result<Attributes, CryptoError> {
    let mut attrs = Attributes::new();
    if let Some(name) = friendly_name {
        attrs.insert(Attribute {
            oid: OID_FRIENDLY_NAME,
            values: SetOfVec::try_from(vec![Any::encode_from(name)?])?,
        })?;
    }
    attrs.insert(Attribute {
        oid: OID_LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![Any::encode_from(&OctetString::new(local_key_id)?)?])?,
    })?;
    Ok(attrs)
}

fn data_content_info(content: &[u8]) -> Result<ContentInfo, CryptoError> {
    Ok(ContentInfo {
        content_type: OID_DATA,
        content: Any::encode_from(&OctetString::new(content)?)?,
    })
}

/// A password-protected PKCS#12 file holding `key` and its certificate `cert_der`, laid out as
/// OpenSSL does it: an encrypted safe with the certificate bag, a plain safe with the shrouded key
/// bag, both bags tagged with `friendlyName` (Java's alias; omitted when empty) and `localKeyId`
/// (SHA-1 of the certificate) so keytool, OpenSSL and Windows pair key and certificate; then a MAC.
/// All salts and IVs come from `rng`: same RNG state, same bytes. Every key derivation runs here,
/// in Rust; [`PfxPlan`] is the same writer with the PBKDF2 derivations left to the caller.
pub fn build_pfx<R: CryptoRng + ?Sized>(
    key: &PrivateKeyDer,
    cert_der: &[u8],
    password: &PfxPassword,
    kind: PfxKind,
    friendly_name: &str,
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let plan = PfxPlan::new(password, kind, rng)?;
    let derived: Vec<Vec<u8>> = plan
        .pbkdf2_requests()
        .iter()
        .map(Pbkdf2Request::derive)
        .collect();
    plan.finish(key, cert_der, friendly_name, &derived)
}

// ---------------------------------------------------------------------------------------------
// PKCS#12 reader

/// The most PBKDF2 / PKCS#12 KDF iterations a PFX may ask for when read here (a file is never
/// allowed to hang the page: 100 times OpenSSL's and Java's defaults, 20 times ours).
pub const MAX_READ_ITERATIONS: u32 = 2_000_000;

/// Opens a PFX (ours, OpenSSL's with or without `-legacy`, keytool's, Windows') and returns its
/// RSA key (canonical PKCS#8) and the certificate that matches it (by public key; `localKeyId` is
/// not trusted alone). Reads RFC 7292 password integrity mode: a MAC of HMAC-SHA-1 or HMAC-SHA-256
/// (PKCS#12 KDF), safes in plain `data` or `encryptedData`, shrouded key bags, key bags and X.509
/// certificate bags; encryption PBES2 (PBKDF2 + AES-CBC), pbeWithSHAAnd3-KeyTripleDES-CBC or
/// pbeWithSHAAnd40BitRC2-CBC. A MAC mismatch, or a decryption failure in a file without MAC, is
/// [`CryptoError::WrongPassword`]; other algorithms, or more than [`MAX_READ_ITERATIONS`], are
/// [`CryptoError::UnsupportedPfx`].
pub fn read_pfx(
    pfx: &[u8],
    password: &PfxPassword,
) -> Result<(PrivateKeyDer, Vec<u8>), CryptoError> {
    let password = password.expose();
    let outer = Pfx::from_der(pfx).map_err(|_| CryptoError::InvalidPfx)?;
    if outer.auth_safe.content_type != OID_DATA {
        // Public-key integrity mode (signedData): not a password-protected file.
        return Err(CryptoError::UnsupportedPfx);
    }
    let auth_safe = outer
        .auth_safe
        .content
        .decode_as::<OctetString>()
        .map_err(|_| CryptoError::InvalidPfx)?;
    let auth_safe = auth_safe.as_bytes();
    let has_mac = outer.mac_data.is_some();
    if let Some(mac) = &outer.mac_data {
        verify_pkcs12_mac(mac, password, auth_safe)?;
    }
    let contents = Vec::<ContentInfo>::from_der(auth_safe).map_err(|_| CryptoError::InvalidPfx)?;
    let mut keys: Vec<PrivateKeyDer> = Vec::new();
    let mut certs: Vec<Vec<u8>> = Vec::new();
    for ci in contents {
        let safe = if ci.content_type == OID_DATA {
            ci.content
                .decode_as::<OctetString>()
                .map_err(|_| CryptoError::InvalidPfx)?
                .into_bytes()
                .to_vec()
        } else if ci.content_type == OID_ENCRYPTED_DATA {
            let ed = ci
                .content
                .decode_as::<EncryptedData>()
                .map_err(|_| CryptoError::InvalidPfx)?;
            let ct = ed
                .enc_content_info
                .encrypted_content
                .ok_or(CryptoError::InvalidPfx)?;
            pbe_decrypt(
                &ed.enc_content_info.content_enc_alg,
                password,
                ct.as_bytes(),
                has_mac,
            )?
        } else {
            // envelopedData (certificate-based privacy mode) and anything else: skipped.
            continue;
        };
        let bags = Vec::<SafeBag>::from_der(&safe).map_err(|_| {
            // Without a MAC, a wrong password can decrypt to garbage that still unpads.
            if has_mac {
                CryptoError::InvalidPfx
            } else {
                CryptoError::WrongPassword
            }
        })?;
        for bag in bags {
            let value = explicit0_inner(&bag.bag_value)?;
            if bag.bag_id == OID_SHROUDED_KEY_BAG {
                let epki = EncryptedPrivateKeyInfo::from_der(value)
                    .map_err(|_| CryptoError::InvalidPfx)?;
                let der = pbe_decrypt(
                    &epki.encryption_algorithm,
                    password,
                    epki.encrypted_data.as_bytes(),
                    has_mac,
                )?;
                keys.push(PrivateKeyDer::new(der));
            } else if bag.bag_id == OID_KEY_BAG {
                keys.push(PrivateKeyDer::new(value.to_vec()));
            } else if bag.bag_id == OID_CERT_BAG {
                let cb = CertBag::from_der(value).map_err(|_| CryptoError::InvalidPfx)?;
                if cb.cert_id == OID_X509_CERT {
                    certs.push(cb.cert_value.as_bytes().to_vec());
                }
            }
        }
    }
    let key = keys.iter().find_map(|k| parse_private_key(k).ok()).ok_or(
        if keys.is_empty() || has_mac {
            CryptoError::PfxWithoutKey
        } else {
            // No MAC: a wrong password can decrypt to garbage that happens to unpad.
            CryptoError::WrongPassword
        },
    )?;
    let public = key.public_key();
    let cert = certs
        .into_iter()
        .find(|der| {
            Certificate::from_der(der)
                .ok()
                .and_then(|c| cert_public_key(&c).ok())
                .is_some_and(|p| p == public)
        })
        .ok_or(CryptoError::PfxWithoutCertificate)?;
    Ok((key.to_pkcs8()?, cert))
}

/// The value inside a SafeBag's `[0] EXPLICIT` wrapper (the `pkcs12` crate's decoder keeps the
/// wrapper in `bag_value`; its encoder adds it).
fn explicit0_inner(tlv: &[u8]) -> Result<&[u8], CryptoError> {
    use der::Tagged as _;
    match der::asn1::AnyRef::from_der(tlv) {
        Ok(any)
            if any.tag()
                == der::Tag::ContextSpecific {
                    constructed: true,
                    number: der::TagNumber(0),
                } =>
        {
            Ok(any.value())
        }
        Ok(_) => Ok(tlv),
        Err(_) => Err(CryptoError::InvalidPfx),
    }
}

fn checked_iterations(n: i64) -> Result<u32, CryptoError> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_READ_ITERATIONS).contains(&n) => Ok(n),
        _ => Err(CryptoError::UnsupportedPfx),
    }
}

/// Checks the PFX's MAC over the authenticated safe (RFC 7292 Appendix B key, HMAC).
fn verify_pkcs12_mac(mac: &MacData, password: &str, data: &[u8]) -> Result<(), CryptoError> {
    let rounds = checked_iterations(i64::from(mac.iterations))? as i32;
    let salt = mac.mac_salt.as_bytes();
    let want = mac.mac.digest.as_bytes();
    let alg = mac.mac.algorithm.oid;
    let ok = if alg == OID_SHA1 {
        let key = kdf::derive_key_utf8::<Sha1>(password, salt, kdf::Pkcs12KeyType::Mac, rounds, 20)
            .map_err(|_| CryptoError::InvalidPfx)?;
        let mut m =
            hmac::Hmac::<Sha1>::new_from_slice(&key).map_err(|_| CryptoError::InvalidPfx)?;
        m.update(data);
        m.verify_slice(want).is_ok()
    } else if alg == OID_SHA256 {
        let key =
            kdf::derive_key_utf8::<Sha256>(password, salt, kdf::Pkcs12KeyType::Mac, rounds, 32)
                .map_err(|_| CryptoError::InvalidPfx)?;
        let mut m =
            hmac::Hmac::<Sha256>::new_from_slice(&key).map_err(|_| CryptoError::InvalidPfx)?;
        m.update(data);
        m.verify_slice(want).is_ok()
    } else {
        return Err(CryptoError::UnsupportedPfx);
    };
    if ok {
        Ok(())
    } else {
        Err(CryptoError::WrongPassword)
    }
}

/// Decrypts with the PBE `alg` names. A padding failure is the wrong password when the file has no
/// MAC to say so first; with a MAC that passed, it is a damaged file.
fn pbe_decrypt(
    alg: &AlgorithmIdentifierOwned,
    password: &str,
    ct: &[u8],
    has_mac: bool,
) -> Result<Vec<u8>, CryptoError> {
    use cbc::cipher::{BlockModeDecrypt, InnerIvInit};
    let failed = || {
        if has_mac {
            CryptoError::InvalidPfx
        } else {
            CryptoError::WrongPassword
        }
    };
    if alg.oid == OID_PBES2 {
        let scheme = pkcs5::EncryptionScheme::try_from(alg.to_der()?.as_slice())
            .map_err(|_| CryptoError::UnsupportedPfx)?;
        match &scheme {
            pkcs5::EncryptionScheme::Pbes2(p) => match &p.kdf {
                pkcs5::pbes2::Kdf::Pbkdf2(k) => {
                    checked_iterations(i64::from(k.iteration_count))?;
                }
                _ => return Err(CryptoError::UnsupportedPfx),
            },
            _ => return Err(CryptoError::UnsupportedPfx),
        }
        return scheme
            .decrypt(password.as_bytes(), ct)
            .map_err(|e| match e {
                pkcs5::Error::DecryptFailed => failed(),
                _ => CryptoError::UnsupportedPfx,
            });
    }
    let legacy_3des = alg.oid == OID_PBE_SHA1_3DES;
    if !legacy_3des && alg.oid != OID_PBE_SHA1_RC2_40 {
        return Err(CryptoError::UnsupportedPfx);
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or(CryptoError::InvalidPfx)?
        .decode_as::<Pkcs12PbeParams>()
        .map_err(|_| CryptoError::InvalidPfx)?;
    let rounds = checked_iterations(i64::from(params.iterations))? as i32;
    let salt = params.salt.as_bytes();
    let derive = |kind, len| {
        kdf::derive_key_utf8::<Sha1>(password, salt, kind, rounds, len)
            .map_err(|_| CryptoError::InvalidPfx)
    };
    let iv = derive(kdf::Pkcs12KeyType::Iv, 8)?;
    if legacy_3des {
        let key = derive(kdf::Pkcs12KeyType::EncryptionKey, 24)?;
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| CryptoError::InvalidPfx)?
            .decrypt_padded_vec::<Pkcs7>(ct)
            .map_err(|_| failed())
    } else {
        let key = derive(kdf::Pkcs12KeyType::EncryptionKey, 5)?;
        let rc2 = rc2::Rc2::new_with_eff_key_len(&key, 40);
        cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
            .map_err(|_| CryptoError::InvalidPfx)?
            .decrypt_padded_vec::<Pkcs7>(ct)
            .map_err(|_| failed())
    }
}

// ---------------------------------------------------------------------------------------------
// RS256 signatures and JWTs

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWS `RS256`, RFC 7518 3.3).
pub fn sign_rs256(key: &PrivateKeyDer, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let key = parse_private_key(key)?;
    sign_with(&key, data)
}

fn sign_with(key: &RsaKey, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let signer = SigningKey::<Sha256>::new(key.key.clone());
    let sig: Signature = signer.try_sign(data).map_err(|_| CryptoError::Signing)?;
    Ok(sig.to_vec())
}

/// Verifies an RS256 signature with the key of a DER certificate or DER `SubjectPublicKeyInfo`.
pub fn verify_rs256(spki_or_cert_der: &[u8], data: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let public = public_key_of(spki_or_cert_der)?;
    verify_with(public, data, sig)
}

fn verify_with(public: rsa::PublicKey, data: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let sig = Signature::try_from(sig).map_err(|_| CryptoError::BadSignature)?;
    VerifyingKey::<Sha256>::new(public)
        .verify(data, &sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// A compact JWS: header `{"alg":"RS256","typ":"JWT","x5t":…,"x5t#S256":…}` (thumbprints of
/// `cert_der`), the `claims` object, signed with `key` (which must match the certificate).
pub fn build_jwt_rs256(
    key: &PrivateKeyDer,
    cert_der: &[u8],
    claims: &Value,
) -> Result<String, CryptoError> {
    if !claims.is_object() {
        return Err(CryptoError::InvalidClaims);
    }
    let rsa_key = parse_private_key(key)?;
    let cert = parse_certificate(cert_der)?;
    check_pair(&rsa_key, &cert)?;
    let parts = key_credential_parts(cert_der)?;
    let header = json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": parts.x5t,
        "x5t#S256": parts.x5t_s256,
    });
    let header = serde_json::to_vec(&header).map_err(|_| CryptoError::Encoding)?;
    let claims = serde_json::to_vec(claims).map_err(|_| CryptoError::Encoding)?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = sign_with(&rsa_key, signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

fn jwt_parts(jwt: &str) -> Result<(&str, &str, &str), CryptoError> {
    let mut it = jwt.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(c), Some(s), None) => Ok((h, c, s)),
        _ => Err(CryptoError::MalformedJwt),
    }
}

fn jwt_json(part: &str) -> Result<Value, CryptoError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| CryptoError::MalformedJwt)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| CryptoError::MalformedJwt)?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(CryptoError::MalformedJwt)
    }
}

/// The header of a compact JWS, unverified (to pick a certificate by `x5t` before verifying).
pub fn jwt_header(jwt: &str) -> Result<Value, CryptoError> {
    let (h, _, _) = jwt_parts(jwt)?;
    jwt_json(h)
}

/// Verifies an RS256 compact JWS against `cert_der` and returns its claims. Checks `alg` is
/// `RS256` and, when the header has `x5t`, that it names this certificate. Does not check
/// `nbf`/`exp`/`aud`: the caller owns the clock and the expectations.
pub fn verify_jwt_rs256(jwt: &str, cert_der: &[u8]) -> Result<Value, CryptoError> {
    let (h, c, s) = jwt_parts(jwt)?;
    let header = jwt_json(h)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(CryptoError::UnsupportedJwtAlgorithm);
    }
    let cert = parse_certificate(cert_der)?;
    if let Some(x5t) = header.get("x5t") {
        let thumb: [u8; 20] = Sha1::digest(cert_der).into();
        if x5t.as_str() != Some(URL_SAFE_NO_PAD.encode(thumb).as_str()) {
            return Err(CryptoError::JwtCertificateMismatch);
        }
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CryptoError::MalformedJwt)?;
    let public = cert_public_key(&cert)?;
    verify_with(public, format!("{h}.{c}").as_bytes(), &sig)?;
    jwt_json(c)
}

/// Claims of the proof-of-possession token for Graph `addKey`/`removeKey`
/// (<https://learn.microsoft.com/graph/application-rollkey-prooftoken>): `aud` = AAD Graph,
/// `iss` = the application's object id, `nbf` = now, `exp` = now + 10 minutes, `jti`.
pub fn addkey_proof_claims(app_object_id: &ObjectId, now_unix: i64, jti: &str) -> Value {
    json!({
        "aud": ADDKEY_PROOF_AUDIENCE,
        "iss": app_object_id.as_str(),
        "nbf": now_unix,
        "exp": now_unix.saturating_add(JWT_LIFETIME_SECS),
        "jti": jti,
    })
}

/// Claims of a client assertion (Entra "certificate credentials"): `aud` = the token endpoint,
/// `iss` = `sub` = the application (client) id, `jti`, `nbf` = now, `exp` = now + 10 minutes.
pub fn client_assertion_claims(app_id: &AppId, token_url: &str, now_unix: i64, jti: &str) -> Value {
    json!({
        "aud": token_url,
        "iss": app_id.as_str(),
        "sub": app_id.as_str(),
        "jti": jti,
        "nbf": now_unix,
        "exp": now_unix.saturating_add(JWT_LIFETIME_SECS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};
    use std::sync::OnceLock;

    const CN: &str = "bacula-m365-plugin-standalone";
    // 2026-01-01T00:00:00Z and 2028-01-01T00:00:00Z
    const NB: i64 = 1_767_225_600;
    const NA: i64 = 1_830_297_600;

    fn rng(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    /// One key per test binary: keygen dominates test time.
    fn key() -> &'static PrivateKeyDer {
        static KEY: OnceLock<PrivateKeyDer> = OnceLock::new();
        KEY.get_or_init(|| generate_rsa_key(&mut rng(1)).expect("keygen"))
    }

    fn spec() -> CertSpec {
        CertSpec {
            common_name: CN.into(),
            not_before_unix: NB,
            not_after_unix: NA,
            serial: [0xff; 16],
        }
    }

    fn cert() -> &'static Vec<u8> {
        static CERT: OnceLock<Vec<u8>> = OnceLock::new();
        CERT.get_or_init(|| self_signed_certificate(key(), &spec()).expect("cert"))
    }

    fn password() -> PfxPassword {
        PfxPassword::new("fAG@2O5PoOSSU<j2u65zqEKIN<Dh~ya3AWKqK]vv")
    }

    #[test]
    fn same_seed_same_key_and_key_is_rsa_2048_e65537() {
        let again = generate_rsa_key(&mut rng(1)).unwrap();
        assert_eq!(&again, key());
        let parsed = parse_private_key(key()).unwrap();
        assert_eq!(parsed.bits(), 2048);
        assert_eq!(&*parsed.key.e_bytes(), &[1, 0, 1]);
        // Canonical PKCS#8 round trip.
        assert_eq!(&parsed.to_pkcs8().unwrap(), key());
    }

    #[test]
    fn rejects_keys_that_are_not_rsa_2048_plus() {
        assert_eq!(
            parse_private_key(&PrivateKeyDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x00])).unwrap_err(),
            CryptoError::InvalidKey
        );
        assert_eq!(
            parse_private_key(&PrivateKeyDer::new(Vec::new())).unwrap_err(),
            CryptoError::InvalidKey
        );
        let small = rsa::PrivateKey::new(&mut rng(2), 1024).unwrap();
        let small = PrivateKeyDer::new(small.to_pkcs8_der().unwrap().as_bytes().to_vec());
        assert_eq!(
            parse_private_key(&small).unwrap_err(),
            CryptoError::KeySize {
                bits: 1024,
                min: 2048,
                max: 8192
            }
        );
        // Truncations of a real key never panic and never parse.
        let der = key().expose();
        for cut in (0..der.len()).step_by(37) {
            assert!(parse_private_key(&PrivateKeyDer::new(der[..cut].to_vec())).is_err());
        }
    }

    #[test]
    fn serial_is_positive_and_non_zero() {
        assert_eq!(serial_from_random([0xff; 16])[0], 0x7f);
        assert_eq!(serial_from_random([0; 16])[15], 1);
        let c = Certificate::from_der(cert()).unwrap();
        let serial = c.tbs_certificate().serial_number().as_bytes();
        assert_eq!(serial, &serial_from_random([0xff; 16])[..]);
        // DER INTEGER of the serial is 16 bytes, no leading zero needed: positive.
        let zero = CertSpec {
            serial: [0; 16],
            ..spec()
        };
        let c0 = Certificate::from_der(&self_signed_certificate(key(), &zero).unwrap()).unwrap();
        assert_eq!(c0.tbs_certificate().serial_number().as_bytes(), &[1]);
    }

    #[test]
    fn certificate_fields() {
        let c = Certificate::from_der(cert()).unwrap();
        let tbs = c.tbs_certificate();
        assert_eq!(tbs.version(), x509_cert::certificate::Version::V3);
        assert_eq!(tbs.subject(), tbs.issuer());
        assert_eq!(tbs.subject().to_string(), format!("CN={CN}"));
        // sha256WithRSAEncryption
        assert_eq!(
            c.signature_algorithm().oid.to_string(),
            "1.2.840.113549.1.1.11"
        );
        assert_eq!(tbs.signature().oid.to_string(), "1.2.840.113549.1.1.11");
        assert!(matches!(tbs.validity().not_before, Time::UtcTime(_)));
        assert_eq!(unix_of(tbs.validity().not_before).unwrap(), NB);
        assert_eq!(unix_of(tbs.validity().not_after).unwrap(), NA);
        let exts = tbs.extensions().unwrap();
        let ids: Vec<String> = exts.iter().map(|e| e.extn_id.to_string()).collect();
        assert_eq!(ids, ["2.5.29.19", "2.5.29.15", "2.5.29.14"]);
        let bc = BasicConstraints::from_der(exts[0].extn_value.as_bytes()).unwrap();
        assert!(!bc.ca && exts[0].critical);
        let ku = KeyUsage::from_der(exts[1].extn_value.as_bytes()).unwrap();
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        assert!(exts[1].critical);
        // The certificate verifies under its own key, and matches the private key.
        let tbs_der = tbs.to_der().unwrap();
        verify_rs256(cert(), &tbs_der, c.signature().raw_bytes()).unwrap();
        check_pair(&parse_private_key(key()).unwrap(), &c).unwrap();
    }

    #[test]
    fn time_encoding_follows_rfc5280_by_year() {
        // 2049-12-31T23:59:59Z stays UTCTime, 2050-01-01T00:00:00Z is GeneralizedTime.
        assert!(matches!(
            x509_time(2_524_607_999).unwrap(),
            Time::UtcTime(_)
        ));
        assert!(matches!(
            x509_time(2_524_608_000).unwrap(),
            Time::GeneralTime(_)
        ));
        let long = CertSpec {
            not_after_unix: 2_524_608_000 + 86_400,
            ..spec()
        };
        let c = Certificate::from_der(&self_signed_certificate(key(), &long).unwrap()).unwrap();
        assert!(matches!(
            c.tbs_certificate().validity().not_after,
            Time::GeneralTime(_)
        ));
        assert_eq!(
            key_credential_parts(&c.to_der().unwrap())
                .unwrap()
                .not_after_unix,
            2_524_608_000 + 86_400
        );
    }

    #[test]
    fn bad_cert_specs_are_errors() {
        let cases = [
            (
                CertSpec {
                    not_after_unix: NB,
                    ..spec()
                },
                CryptoError::InvalidValidity,
            ),
            (
                CertSpec {
                    not_before_unix: -1,
                    ..spec()
                },
                CryptoError::InvalidValidity,
            ),
            (
                CertSpec {
                    not_after_unix: i64::MAX,
                    ..spec()
                },
                CryptoError::InvalidValidity,
            ),
            (
                CertSpec {
                    common_name: String::new(),
                    ..spec()
                },
                CryptoError::InvalidCommonName,
            ),
            (
                CertSpec {
                    common_name: "x".repeat(65),
                    ..spec()
                },
                CryptoError::InvalidCommonName,
            ),
            (
                CertSpec {
                    common_name: "a\nb".into(),
                    ..spec()
                },
                CryptoError::InvalidCommonName,
            ),
        ];
        for (s, e) in cases {
            assert_eq!(self_signed_certificate(key(), &s).unwrap_err(), e, "{s:?}");
        }
        // Characters that RFC 4514 would escape are stored verbatim (no string parsing).
        let odd = CertSpec {
            common_name: "Bacula, \"M365\" + Ünïcode=1".into(),
            ..spec()
        };
        let c = Certificate::from_der(&self_signed_certificate(key(), &odd).unwrap()).unwrap();
        let cn = c
            .tbs_certificate()
            .subject()
            .common_name()
            .unwrap()
            .unwrap();
        assert_eq!(cn.value(), "Bacula, \"M365\" + Ünïcode=1");
    }

    #[test]
    fn key_credential_parts_from_certificate() {
        let p = key_credential_parts(cert()).unwrap();
        assert_eq!(STANDARD.decode(&p.key_base64).unwrap(), *cert());
        assert_eq!(p.thumbprint_sha1, <[u8; 20]>::from(Sha1::digest(cert())));
        assert_eq!(p.thumbprint_hex.len(), 40);
        assert_eq!(p.thumbprint_hex, p.thumbprint_hex.to_uppercase());
        assert_eq!(
            STANDARD.decode(&p.custom_key_identifier).unwrap(),
            p.thumbprint_sha1
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&p.x5t).unwrap(), p.thumbprint_sha1);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&p.x5t_s256).unwrap(),
            Sha256::digest(cert()).to_vec()
        );
        assert_eq!((p.not_before_unix, p.not_after_unix), (NB, NA));
        assert_eq!(
            key_credential_parts(b"nope").unwrap_err(),
            CryptoError::InvalidCertificate
        );
    }

    #[test]
    fn password_shape_and_statistics() {
        let mut r = rng(3);
        let alphabet = PFX_PASSWORD_ALPHABET.as_bytes();
        assert_eq!(alphabet.len(), 84);
        let mut counts = [0u32; 84];
        let rounds = 5000;
        for _ in 0..rounds {
            let mut buf = [0u8; PFX_PASSWORD_RANDOM_BYTES];
            r.fill_bytes(&mut buf);
            let p = pfx_password(&buf).unwrap();
            let p = p.expose();
            assert_eq!(p.len(), PFX_PASSWORD_LEN);
            assert!(has_every_class(p), "{p}");
            for b in p.bytes() {
                let i = alphabet.iter().position(|&a| a == b).expect("in alphabet");
                counts[i] += 1;
            }
        }
        // 200,000 draws over 84 symbols: expected ~2381 each. The class guarantee skews the
        // distribution by well under 1%; a biased `% 84` without rejection would push the first
        // four symbols ~33% above the rest. Allow +-10%.
        let expected = (rounds * PFX_PASSWORD_LEN) as f64 / 84.0;
        for (i, &c) in counts.iter().enumerate() {
            let ratio = f64::from(c) / expected;
            assert!(
                (0.9..1.1).contains(&ratio),
                "symbol {} ratio {ratio}",
                alphabet[i] as char
            );
        }
        // Same bytes, same password; not enough bytes is an error, not a panic.
        let buf = [7u8; 64];
        assert_eq!(
            pfx_password(&[1; 10]).unwrap_err(),
            CryptoError::NotEnoughRandomness
        );
        assert_eq!(pfx_password(&buf), pfx_password(&buf));
        assert_eq!(
            pfx_password(&buf).unwrap_err(),
            CryptoError::NotEnoughRandomness
        );
        // Bytes >= 252 are skipped, not folded; the rest map modulo 84.
        let mut skewed = vec![252u8, 253, 254, 255];
        skewed.extend([0u8, 26 + 84, 52 + 168, 62]);
        skewed.extend([1u8; 36]);
        let p = pfx_password(&skewed).unwrap();
        assert_eq!(p.expose(), format!("Aa0@{}", "B".repeat(36)));
        assert_eq!(
            pfx_password_from_rng(&mut rng(4)),
            pfx_password_from_rng(&mut rng(4))
        );
    }

    #[test]
    fn pfx_round_trip_both_kinds_and_deterministic() {
        for kind in [PfxKind::Modern, PfxKind::Legacy] {
            let pfx = build_pfx(key(), cert(), &password(), kind, CN, &mut rng(5)).unwrap();
            let again = build_pfx(key(), cert(), &password(), kind, CN, &mut rng(5)).unwrap();
            assert_eq!(pfx, again, "same seed, same bytes");
            let other = build_pfx(key(), cert(), &password(), kind, CN, &mut rng(6)).unwrap();
            assert_ne!(pfx, other);
            let (k, c) = read_pfx(&pfx, &password()).unwrap();
            assert_eq!(&k, key());
            assert_eq!(&c, cert());
            assert_eq!(
                read_pfx(&pfx, &PfxPassword::new("wrong")).unwrap_err(),
                CryptoError::WrongPassword
            );
            // p12-keystore pairs key and cert by localKeyId and uses our friendly name as alias.
            let ks = p12_keystore::KeyStore::from_pkcs12(
                &pfx,
                password().expose(),
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .unwrap();
            let (alias, chain) = ks.private_key_chain().unwrap();
            assert_eq!(alias, CN);
            assert_eq!(chain.local_key_id().as_ref(), &Sha1::digest(cert())[..]);
            assert_eq!(chain.certs()[0].as_der(), &cert()[..]);
        }
    }

    #[test]
    fn pfx_algorithms_are_what_we_promise() {
        let modern =
            build_pfx(key(), cert(), &password(), PfxKind::Modern, CN, &mut rng(5)).unwrap();
        let legacy =
            build_pfx(key(), cert(), &password(), PfxKind::Legacy, CN, &mut rng(5)).unwrap();
        let m = Pfx::from_der(&modern).unwrap().mac_data.unwrap();
        assert_eq!(m.mac.algorithm.oid, OID_SHA256);
        assert_eq!(m.iterations, 2048);
        // The encryption's PBKDF2 iterations (the INTEGER 10000 in each PBES2's PBKDF2-params).
        assert_eq!(MODERN_ITERATIONS, 10_000);
        let iterations = der::asn1::Int::new(&MODERN_ITERATIONS.to_be_bytes()[2..])
            .unwrap()
            .to_der()
            .unwrap();
        let count = modern
            .windows(iterations.len())
            .filter(|w| *w == iterations.as_slice())
            .count();
        assert_eq!(count, 2, "certificate bag and key bag");
        let l = Pfx::from_der(&legacy).unwrap().mac_data.unwrap();
        assert_eq!(l.mac.algorithm.oid, OID_SHA1);
        assert_eq!(l.iterations, 2048);
        // The algorithm OIDs appear in the DER.
        let contains = |hay: &[u8], oid: ObjectIdentifier| {
            let needle = oid.to_der().unwrap();
            hay.windows(needle.len()).any(|w| w == needle.as_slice())
        };
        let aes256 = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
        let hmac_sha256 = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
        assert!(contains(&modern, OID_PBES2) && contains(&modern, aes256));
        assert!(contains(&modern, hmac_sha256));
        assert!(!contains(&modern, OID_PBE_SHA1_3DES));
        assert!(contains(&legacy, OID_PBE_SHA1_3DES) && !contains(&legacy, OID_PBES2));
    }

    /// An "external" PBKDF2 deriver, as the page's WebCrypto is one: the `pbkdf2` crate called
    /// directly with what the request says, not through [`Pbkdf2Request::derive`].
    fn external_pbkdf2(r: &Pbkdf2Request) -> Vec<u8> {
        assert_eq!(r.hash, Pbkdf2Hash::Sha256);
        assert_eq!(r.hash.webcrypto_name(), "SHA-256");
        let mut out = vec![0u8; r.key_len];
        pbkdf2::pbkdf2_hmac::<Sha256>(r.password(), &r.salt, r.iterations, &mut out);
        out
    }

    #[test]
    fn pfx_plan_with_external_derivations_gives_build_pfx_bytes() {
        for kind in [PfxKind::Modern, PfxKind::Legacy] {
            let expected = build_pfx(key(), cert(), &password(), kind, CN, &mut rng(5)).unwrap();
            let plan = PfxPlan::new(&password(), kind, &mut rng(5)).unwrap();
            assert_eq!(plan.kind(), kind);
            let requests = plan.pbkdf2_requests();
            match kind {
                PfxKind::Modern => {
                    assert_eq!(requests.len(), 2, "certificate bag, then key bag");
                    for r in &requests {
                        assert_eq!(r.password(), password().expose().as_bytes());
                        assert_eq!((r.iterations, r.key_len), (MODERN_ITERATIONS, 32));
                        assert_eq!(r.salt.len(), 16);
                    }
                    assert_ne!(requests[0].salt, requests[1].salt);
                }
                PfxKind::Legacy => assert!(requests.is_empty()),
            }
            let derived: Vec<Vec<u8>> = requests.iter().map(external_pbkdf2).collect();
            let pfx = plan.finish(key(), cert(), CN, &derived).unwrap();
            assert_eq!(pfx, expected, "{kind:?}");
            assert_eq!(read_pfx(&pfx, &password()).unwrap().1, *cert());
        }
        // Debug never shows the password.
        let plan = PfxPlan::new(&password(), PfxKind::Modern, &mut rng(5)).unwrap();
        let shown = format!("{plan:?} {:?}", plan.pbkdf2_requests());
        assert!(!shown.contains(password().expose()), "{shown}");
    }

    #[test]
    fn pfx_plan_refuses_derived_keys_that_do_not_fit() {
        let plan = || PfxPlan::new(&password(), PfxKind::Modern, &mut rng(5)).unwrap();
        let good: Vec<Vec<u8>> = plan()
            .pbkdf2_requests()
            .iter()
            .map(external_pbkdf2)
            .collect();
        let short = vec![good[0].clone(), good[1][..16].to_vec()];
        for bad in [
            Vec::new(),
            good[..1].to_vec(),
            short,
            vec![good[0].clone(); 3],
        ] {
            assert_eq!(
                plan().finish(key(), cert(), CN, &bad).unwrap_err(),
                CryptoError::DerivedKeys
            );
        }
        let legacy = PfxPlan::new(&password(), PfxKind::Legacy, &mut rng(5)).unwrap();
        assert_eq!(
            legacy.finish(key(), cert(), CN, &good).unwrap_err(),
            CryptoError::DerivedKeys
        );
        // A wrongly derived key of the right length: written, but its bags do not decrypt.
        let mut wrong = good.clone();
        wrong[1][0] ^= 1;
        let pfx = plan().finish(key(), cert(), CN, &wrong).unwrap();
        assert!(read_pfx(&pfx, &password()).is_err());
        // The key and certificate are checked in `finish`, the password in `new`.
        let other_key = generate_rsa_key(&mut rng(9)).unwrap();
        assert_eq!(
            plan().finish(&other_key, cert(), CN, &good).unwrap_err(),
            CryptoError::KeyCertificateMismatch
        );
        assert_eq!(
            PfxPlan::new(&PfxPassword::new(""), PfxKind::Modern, &mut rng(5)).unwrap_err(),
            CryptoError::InvalidPassword
        );
    }

    #[test]
    fn pbkdf2_request_derives_rfc_7914_vectors() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256 test vectors.
        let request = |password: &str, salt: &[u8], iterations| Pbkdf2Request {
            password: PfxPassword::new(password),
            salt: salt.to_vec(),
            iterations,
            key_len: 64,
            hash: Pbkdf2Hash::Sha256,
        };
        let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(request("passwd", b"salt", 1).derive()),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        assert_eq!(
            hex(request("Password", b"NaCl", 80_000).derive()),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
    }

    #[test]
    fn build_pfx_rejects_bad_inputs() {
        let other_key = generate_rsa_key(&mut rng(9)).unwrap();
        let mut r = rng(5);
        let cases = [
            (
                build_pfx(&other_key, cert(), &password(), PfxKind::Modern, CN, &mut r),
                CryptoError::KeyCertificateMismatch,
            ),
            (
                build_pfx(key(), b"x", &password(), PfxKind::Modern, CN, &mut r),
                CryptoError::InvalidCertificate,
            ),
            (
                build_pfx(
                    key(),
                    cert(),
                    &PfxPassword::new(""),
                    PfxKind::Modern,
                    CN,
                    &mut r,
                ),
                CryptoError::InvalidPassword,
            ),
            (
                build_pfx(
                    key(),
                    cert(),
                    &PfxPassword::new("pässword"),
                    PfxKind::Modern,
                    CN,
                    &mut r,
                ),
                CryptoError::InvalidPassword,
            ),
            (
                build_pfx(
                    key(),
                    cert(),
                    &PfxPassword::new("a\tb"),
                    PfxKind::Legacy,
                    CN,
                    &mut r,
                ),
                CryptoError::InvalidPassword,
            ),
            (
                build_pfx(
                    key(),
                    cert(),
                    &password(),
                    PfxKind::Modern,
                    "emoji 😀",
                    &mut r,
                ),
                CryptoError::InvalidFriendlyName,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap_err(), want);
        }
        // An empty friendly name is simply omitted.
        let pfx = build_pfx(key(), cert(), &password(), PfxKind::Legacy, "", &mut r).unwrap();
        assert_eq!(read_pfx(&pfx, &password()).unwrap().1, *cert());
    }

    #[test]
    fn read_pfx_never_panics_on_damaged_files() {
        let pfx = build_pfx(key(), cert(), &password(), PfxKind::Legacy, CN, &mut rng(5)).unwrap();
        assert_eq!(
            read_pfx(b"", &password()).unwrap_err(),
            CryptoError::InvalidPfx
        );
        assert_eq!(
            read_pfx(cert(), &password()).unwrap_err(),
            CryptoError::InvalidPfx
        );
        for cut in (0..pfx.len()).step_by(97) {
            assert!(read_pfx(&pfx[..cut], &password()).is_err());
        }
        let mut r = rng(8);
        for _ in 0..300 {
            let mut damaged = pfx.clone();
            let i = (r.next_u32() as usize) % damaged.len();
            damaged[i] ^= 1 << (r.next_u32() % 8);
            // Any outcome but a panic; a flip in the MAC region shows as a wrong password.
            let _ = read_pfx(&damaged, &password());
        }
    }

    // Made with OpenSSL 3.0 from a throwaway test key (not used anywhere else):
    //   openssl pkcs12 -export [-legacy] -inkey k.pem -in c.pem -name openssl-made \
    //     -passout pass:'Test-pass:1=#!' -out pfx_openssl_{aes,legacy}.p12
    // and with Java 17 keytool (PBES2 AES-256, HmacPBESHA256 MAC, "Time …" localKeyId):
    //   keytool -importkeystore -srckeystore pfx_openssl_aes.p12 -destkeystore pfx_keytool.p12 …
    const FIXTURE_PASSWORD: &str = "Test-pass:1=#!";

    #[test]
    fn read_pfx_refuses_iteration_counts_that_would_hang_the_page() {
        let pfx = build_pfx(key(), cert(), &password(), PfxKind::Legacy, CN, &mut rng(9)).unwrap();
        let mut outer = Pfx::from_der(&pfx).unwrap();
        outer.mac_data.as_mut().unwrap().iterations = MAX_READ_ITERATIONS as i32 + 1;
        let hostile = outer.to_der().unwrap();
        assert_eq!(
            read_pfx(&hostile, &password()).unwrap_err(),
            CryptoError::UnsupportedPfx
        );
        outer.mac_data.as_mut().unwrap().iterations = 0;
        assert_eq!(
            read_pfx(&outer.to_der().unwrap(), &password()).unwrap_err(),
            CryptoError::UnsupportedPfx
        );
    }

    #[test]
    fn read_pfx_made_by_openssl_and_keytool() {
        let fixtures: [&[u8]; 3] = [
            include_bytes!("../../tests/peers/pfx_openssl_aes.p12"),
            include_bytes!("../../tests/peers/pfx_openssl_legacy.p12"),
            include_bytes!("../../tests/peers/pfx_keytool.p12"),
        ];
        let pw = PfxPassword::new(FIXTURE_PASSWORD);
        let mut first: Option<(PrivateKeyDer, Vec<u8>)> = None;
        for f in fixtures {
            let (k, c) = read_pfx(f, &pw).unwrap();
            assert_eq!(parse_private_key(&k).unwrap().bits(), 2048);
            let parts = key_credential_parts(&c).unwrap();
            assert!(parts.not_after_unix > parts.not_before_unix);
            // The key signs, the certificate verifies.
            let sig = sign_rs256(&k, b"renew").unwrap();
            verify_rs256(&c, b"renew", &sig).unwrap();
            assert_eq!(
                read_pfx(f, &PfxPassword::new("nope")).unwrap_err(),
                CryptoError::WrongPassword
            );
            match &first {
                None => first = Some((k, c)),
                Some(f0) => assert_eq!(f0, &(k, c)),
            }
        }
    }

    #[test]
    fn rs256_sign_and_verify() {
        let sig = sign_rs256(key(), b"hello").unwrap();
        assert_eq!(sig.len(), 256);
        // PKCS#1 v1.5 is deterministic.
        assert_eq!(sig, sign_rs256(key(), b"hello").unwrap());
        verify_rs256(cert(), b"hello", &sig).unwrap();
        let spki = parse_private_key(key()).unwrap().public_key_der().unwrap();
        verify_rs256(&spki, b"hello", &sig).unwrap();
        assert_eq!(
            verify_rs256(cert(), b"hellO", &sig).unwrap_err(),
            CryptoError::BadSignature
        );
        assert_eq!(
            verify_rs256(cert(), b"hello", &sig[1..]).unwrap_err(),
            CryptoError::BadSignature
        );
        assert_eq!(
            verify_rs256(b"junk", b"hello", &sig).unwrap_err(),
            CryptoError::InvalidPublicKey
        );
    }

    #[test]
    fn jwt_build_and_verify() {
        let oid = ObjectId::new("7d1b3a8e-0000-4000-8000-000000000001");
        let claims = addkey_proof_claims(&oid, NB, "jti-1");
        assert_eq!(claims["aud"], ADDKEY_PROOF_AUDIENCE);
        assert_eq!(claims["iss"], oid.as_str());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap(),
            600
        );
        let jwt = build_jwt_rs256(key(), cert(), &claims).unwrap();
        let header = jwt_header(&jwt).unwrap();
        let parts = key_credential_parts(cert()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "x5t": parts.x5t, "x5t#S256": parts.x5t_s256})
        );
        assert_eq!(verify_jwt_rs256(&jwt, cert()).unwrap(), claims);

        let app = AppId::new("11111111-2222-3333-4444-555555555555");
        let url = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let ca = client_assertion_claims(&app, url, NB, "jti-2");
        assert_eq!(
            (ca["iss"].clone(), ca["sub"].clone()),
            (json!(app.as_str()), json!(app.as_str()))
        );
        assert_eq!(ca["aud"], url);
        let jwt2 = build_jwt_rs256(key(), cert(), &ca).unwrap();
        assert_eq!(verify_jwt_rs256(&jwt2, cert()).unwrap(), ca);

        // Tampering, other certificates, other algorithms, garbage.
        let (h, c, s) = jwt_parts(&jwt).unwrap();
        let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#));
        assert_eq!(
            verify_jwt_rs256(&forged, cert()).unwrap_err(),
            CryptoError::BadSignature
        );
        let none = format!("{}.{c}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#));
        assert_eq!(
            verify_jwt_rs256(&none, cert()).unwrap_err(),
            CryptoError::UnsupportedJwtAlgorithm
        );
        let other_cert = self_signed_certificate(
            key(),
            &CertSpec {
                serial: [3; 16],
                ..spec()
            },
        )
        .unwrap();
        assert_eq!(
            verify_jwt_rs256(&jwt, &other_cert).unwrap_err(),
            CryptoError::JwtCertificateMismatch
        );
        for junk in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(verify_jwt_rs256(junk, cert()).is_err(), "{junk}");
        }
        assert_eq!(
            build_jwt_rs256(key(), cert(), &json!([1])).unwrap_err(),
            CryptoError::InvalidClaims
        );
        let other_key = generate_rsa_key(&mut rng(9)).unwrap();
        assert_eq!(
            build_jwt_rs256(&other_key, cert(), &claims).unwrap_err(),
            CryptoError::KeyCertificateMismatch
        );
    }

    #[test]
    fn errors_are_short_lowercase_and_debug_is_redacted() {
        let e = CryptoError::WrongPassword;
        assert_eq!(e.to_string(), "wrong pfx password");
        let k = parse_private_key(key()).unwrap();
        assert_eq!(format!("{k:?}"), "RsaKey(<redacted 2048 bits>)");
    }
}
