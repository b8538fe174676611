//! Our SET signing key: read once from a PKCS#8 PEM file, never logged,
//! never journaled; its public half published as a JWKS.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rsa::PublicKeyComponents;
use ring::signature::RsaKeyPair;
use serde_json::{Value, json};

/// The smallest RSA key we sign with (CAEP interoperability profile).
const MIN_BITS: usize = 2048;

/// Signs SETs with RS256 under one `kid`.
pub struct Signer {
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the key at `path`. Errors name the file, never its content.
    pub fn load(path: &Path, kid: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SSF signing key {}", path.display()))?;
        Self::from_pem(&text, kid)
            .with_context(|| format!("the SSF signing key {} is unusable", path.display()))
    }

    /// A signer from PKCS#8 PEM text.
    pub fn from_pem(pem_text: &str, kid: &str) -> Result<Self> {
        let block = pem::parse(pem_text).map_err(|_| anyhow::anyhow!("it is not PEM"))?;
        if block.tag() != "PRIVATE KEY" {
            bail!(
                "it is a PEM `{}`; expected an unencrypted PKCS#8 `PRIVATE KEY`",
                block.tag()
            );
        }
        let pair = RsaKeyPair::from_pkcs8(block.contents()).map_err(|e| {
            anyhow::anyhow!("it is not an RSA key of {MIN_BITS} bits or more ({e})")
        })?;
        let bits = pair.public().modulus_len() * 8;
        if bits < MIN_BITS {
            bail!("it is an RSA key of {bits} bits; SETs need {MIN_BITS} or more");
        }
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        });
        let key = EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|_| anyhow::anyhow!("jsonwebtoken cannot sign with it"))?;
        Ok(Self {
            kid: kid.to_owned(),
            key,
            jwk,
        })
    }

    /// The public key set for `/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A compact SET: header `{"alg": "RS256", "typ": "secevent+jwt", "kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("secevent+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).context("cannot sign a SET")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_pkcs8_rsa_is_refused_without_showing_it() {
        let err = Signer::from_pem("not a key", "k").unwrap_err();
        assert_eq!(err.to_string(), "it is not PEM");
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = Signer::from_pem(sec1, "k").unwrap_err().to_string();
        assert!(err.contains("`EC PRIVATE KEY`"), "{err}");
        assert!(!err.contains("AAAA"), "{err}");
        let short = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = Signer::from_pem(short, "k").unwrap_err().to_string();
        assert!(err.contains("2048 bits or more"), "{err}");
    }

    #[test]
    fn the_jwks_is_the_public_half_and_signs_verifiably() {
        let pem = fake_providers::TEST_PRIVATE_KEY_PEM;
        let signer = Signer::from_pem(pem, "srs-1").unwrap();
        let jwks = signer.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["kid"].as_str()),
            (Some("RSA"), Some("srs-1"))
        );
        assert!(key.get("d").is_none(), "no private part: {key}");
        let set = signer
            .sign(&json!({"iss": "https://srs.example", "jti": "j"}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&set).unwrap();
        assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
        assert_eq!(header.kid.as_deref(), Some("srs-1"));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(&set, &decoding, &validation).unwrap();
        assert_eq!(claims.claims["jti"], "j");
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }
}
