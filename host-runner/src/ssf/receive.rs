//! SETs pushed to `POST /v1/ssf/push` (SPEC §11, RFC 8935): checked against
//! the configured transmitters, then read as a CAEP
//! `device-compliance-change` or ignored by type.
//!
//! The checks, in order, each with its RFC 8935 `err`: the token is three
//! base64url parts with JSON header and claims (`invalid_request`); `alg` is
//! RS256 (`invalid_key`: `none`, HMAC and the rest are refused before any key
//! is touched); `typ` is `secevent+jwt` (`invalid_request`); `iss` is a
//! configured transmitter (`invalid_issuer`); `kid` names one of its keys and
//! the signature verifies (`invalid_key`); `aud` is our issuer
//! (`invalid_audience`); `iat` is a number not more than the clock skew in
//! the future, `jti` a string, `events` one event, no `exp` (`invalid_request`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::SsfTransmitter;

/// CAEP's `device-compliance-change` event type.
pub const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

/// Why a SET was refused: an RFC 8935 `err` code and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub err: &'static str,
    pub description: String,
}

fn refuse(err: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        err,
        description: description.into(),
    }
}

/// A SET that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub issuer: String,
    pub jti: String,
    /// The event's type URI.
    pub event_type: String,
    /// What a `device-compliance-change` says; `None` for other types.
    pub change: Option<ComplianceChange>,
}

/// A CAEP `device-compliance-change` about one user's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceChange {
    pub user: String,
    pub device_id: String,
    pub compliant: bool,
    /// `event_timestamp`, else `iat` (unix seconds).
    pub timestamp: i64,
    /// The action a `not-compliant` change carries (the transmitter's setting).
    pub action: String,
}

impl ComplianceChange {
    /// The change as a SPEC §3 event, as SPEC §11 maps it: id `caep:<jti>`,
    /// device state `active`, the user's email as upn and email, and a
    /// `not-compliant` status a violation of policy `caep:<issuer>`.
    pub fn event(&self, incoming: &Incoming) -> Result<Vec<u8>> {
        let time = policy_core::format_utc(self.timestamp)
            .with_context(|| format!("event_timestamp {} is out of range", self.timestamp))?;
        let compliance = if self.compliant {
            serde_json::json!({"compliant": true})
        } else {
            serde_json::json!({"compliant": false, "violations": [
                {"policy": format!("caep:{}", incoming.issuer), "actions": [self.action]}
            ]})
        };
        let event = serde_json::json!({
            "id": format!("caep:{}", incoming.jti),
            "time": time,
            "device": {"id": self.device_id, "state": "active"},
            "user": {"upn": self.user, "email": self.user},
            "compliance": compliance,
        });
        Ok(serde_json::to_vec(&event)?)
    }
}

/// One configured transmitter: its keys by `kid`, and its action.
struct Transmitter {
    keys: HashMap<String, DecodingKey>,
    action: String,
}

/// The transmitters whose SETs are accepted, by issuer.
#[derive(Default)]
pub struct Transmitters {
    by_issuer: HashMap<String, Transmitter>,
}

impl std::fmt::Debug for Transmitters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_issuer.keys()).finish()
    }
}

impl Transmitters {
    /// Reads each transmitter's JWKS (paths relative to `dir`): RSA keys with a `kid`.
    pub fn load(config: &[SsfTransmitter], dir: &Path) -> Result<Self> {
        let mut by_issuer = HashMap::new();
        for t in config {
            let path = dir.join(&t.jwks_file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the JWKS {}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JWKS", path.display()))?;
            let mut keys = HashMap::new();
            for jwk in &set.keys {
                let (Some(kid), AlgorithmParameters::RSA(_)) = (&jwk.common.key_id, &jwk.algorithm)
                else {
                    continue;
                };
                let key = DecodingKey::from_jwk(jwk)
                    .with_context(|| format!("{}: key `{kid}` is unusable", path.display()))?;
                keys.insert(kid.clone(), key);
            }
            if keys.is_empty() {
                bail!("{} has no RSA key with a `kid`", path.display());
            }
            by_issuer.insert(
                t.issuer.clone(),
                Transmitter {
                    keys,
                    action: t.noncompliant_action.clone(),
                },
            );
        }
        Ok(Self { by_issuer })
    }

    /// Checks a pushed SET addressed to `audience` at `now` (unix seconds).
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        now: i64,
        skew_s: u64,
    ) -> Result<Incoming, Refusal> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("invalid_request", "the body is not a compact JWT"));
        };
        let header = json_part(header, "header")?;
        let claims = json_part(payload, "claims")?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "RS256" {
            return Err(refuse(
                "invalid_key",
                format!("alg `{}` is not RS256", crate::clip(alg, 32)),
            ));
        }
        if header.get("typ").and_then(Value::as_str) != Some("secevent+jwt") {
            return Err(refuse("invalid_request", "typ is not `secevent+jwt`"));
        }
        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let Some(transmitter) = self.by_issuer.get(issuer) else {
            return Err(refuse(
                "invalid_issuer",
                format!(
                    "`{}` is not a configured transmitter",
                    crate::clip(issuer, 256)
                ),
            ));
        };
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
        let Some(key) = transmitter.keys.get(kid) else {
            return Err(refuse(
                "invalid_key",
                format!(
                    "kid `{}` is not among the transmitter's keys",
                    crate::clip(kid, 64)
                ),
            ));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        if let Err(e) = jsonwebtoken::decode::<Value>(token.trim(), key, &validation) {
            use jsonwebtoken::errors::ErrorKind;
            return Err(match e.kind() {
                ErrorKind::InvalidAudience => {
                    refuse("invalid_audience", format!("aud is not `{audience}`"))
                }
                ErrorKind::InvalidSignature => {
                    refuse("invalid_key", "the signature does not verify")
                }
                _ => refuse("invalid_request", format!("the SET does not verify: {e}")),
            });
        }
        read(&claims, issuer, &transmitter.action, now, skew_s)
    }
}

/// Decodes one base64url JSON part of a JWT.
fn json_part(part: &str, what: &str) -> Result<Value, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        refuse(
            "invalid_request",
            format!("the JWT {what} is not base64url"),
        )
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(refuse(
            "invalid_request",
            format!("the JWT {what} is not a JSON object"),
        )),
    }
}

/// The SET profile's claims, once the signature is known good.
fn read(
    claims: &Value,
    issuer: &str,
    action: &str,
    now: i64,
    skew_s: u64,
) -> Result<Incoming, Refusal> {
    let bad = |why: &str| refuse("invalid_request", why);
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("iat is missing or not a whole number"))?;
    if iat > now.saturating_add(i64::try_from(skew_s).unwrap_or(i64::MAX)) {
        return Err(bad("iat is in the future beyond the allowed clock skew"));
    }
    if claims.get("exp").is_some() || claims.get("sub").is_some() {
        return Err(bad("a SET carries neither `exp` nor `sub` (SSF 1.0)"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad("jti is missing, empty or over 256 bytes"))?;
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("events is missing"))?;
    let mut events = events.iter();
    let (Some((event_type, event)), None) = (events.next(), events.next()) else {
        return Err(bad("a SET carries exactly one event"));
    };
    let mut incoming = Incoming {
        issuer: issuer.to_owned(),
        jti: jti.to_owned(),
        event_type: event_type.clone(),
        change: None,
    };
    if event_type != DEVICE_COMPLIANCE_CHANGE {
        return Ok(incoming);
    }
    let sub = claims.get("sub_id");
    let field = |v: Option<&Value>, path: &[&str]| -> Option<String> {
        path.iter()
            .try_fold(v?, |v, key| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some("complex"), Some("email"), Some(user), Some("opaque"), Some(device_id)) = (
        field(sub, &["format"]).as_deref(),
        field(sub, &["user", "format"]).as_deref(),
        field(sub, &["user", "email"]),
        field(sub, &["device", "format"]).as_deref(),
        field(sub, &["device", "id"]),
    ) else {
        return Err(bad(
            "sub_id must be a complex subject with `user` (format email) and `device` (format opaque)",
        ));
    };
    if user.is_empty() || device_id.is_empty() {
        return Err(bad("the subject's email and device id cannot be empty"));
    }
    let compliant = match event.get("current_status").and_then(Value::as_str) {
        Some("compliant") => true,
        Some("not-compliant") => false,
        _ => return Err(bad("current_status is not `compliant` or `not-compliant`")),
    };
    let timestamp = match event.get("event_timestamp") {
        None => iat,
        Some(t) => t
            .as_i64()
            .ok_or_else(|| bad("event_timestamp is not a whole number"))?,
    };
    incoming.change = Some(ComplianceChange {
        user,
        device_id,
        compliant,
        timestamp,
        action: action.to_owned(),
    });
    Ok(incoming)
}
