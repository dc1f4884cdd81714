//! Newtypes for ids and for everything secret (tokens, client secret, PFX password, private key):
//! secrets redact their `Debug`, never implement `Display`, and are not `Serialize`.

use std::fmt;

macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);
        impl $name {
            pub fn new(v: impl Into<String>) -> Self { Self(v.into()) }
            /// The secret value. Call only where it must leave memory (a request body, a download).
            pub fn expose(&self) -> &str { &self.0 }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_type!(
    /// An OAuth access token (bearer).
    AccessToken
);
secret_type!(
    /// An OpenID Connect id token (a JWT).
    IdToken
);
secret_type!(
    /// A one-time authorization code from the redirect.
    AuthCode
);
secret_type!(
    /// The PKCE code verifier (RFC 7636).
    CodeVerifier
);
secret_type!(
    /// The application's client secret (`secretText` from addPassword).
    ClientSecret
);
secret_type!(
    /// The PKCS#12 password (ASCII).
    PfxPassword
);

/// DER bytes of a private key (PKCS#8). Redacted `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyDer(Vec<u8>);
impl PrivateKeyDer {
    pub fn new(der: Vec<u8>) -> Self {
        Self(der)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}
impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKeyDer(<redacted {} bytes>)", self.0.len())
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl $name {
            pub fn new(v: impl Into<String>) -> Self { Self(v.into()) }
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
    };
}

id_type!(
    /// A tenant id (GUID) as Entra reports it (`tid`).
    TenantId
);
id_type!(
    /// An application (client) id: `application.appId`.
    AppId
);
id_type!(
    /// A directory object id: `application.id`, `servicePrincipal.id`, `user.id`.
    ObjectId
);
id_type!(
    /// A credential's `keyId`.
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redact_debug() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        let k = PrivateKeyDer::new(vec![1, 2, 3]);
        assert!(!format!("{k:?}").contains('1'));
    }
}
