//! The claims of the SETs we sign (SPEC §11; SSF 1.0's SET profile: a
//! top-level `sub_id`, one event per SET, no `sub`, no `exp`).

use serde_json::{Value, json};

use crate::journal::Delivery;

/// CAEP's `session-revoked` event type.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// SSF's stream `verification` event type.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The claims announcing a delivery's revocation: issued by `issuer` to
/// `audience` at `iat` (unix seconds).
pub fn session_revoked(issuer: &str, audience: &str, iat: i64, d: &Delivery) -> Value {
    json!({
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "jti": d.jti,
        "txn": d.event_id,
        "sub_id": {
            "format": "complex",
            "user": {"format": "email", "email": d.user},
            "device": {"format": "opaque", "id": d.device_id},
        },
        "events": {
            SESSION_REVOKED: {
                "event_timestamp": d.event_ms.div_euclid(1000),
                "initiating_entity": "policy",
                "reason_admin": {"en": d.reason},
            }
        }
    })
}

/// The claims of a stream's verification event (SSF 1.0 §8.1.4.2): the
/// stream as an opaque subject, and the receiver's `state` if it sent one.
pub fn verification(
    issuer: &str,
    audience: &str,
    iat: i64,
    jti: &str,
    stream_id: &str,
    state: Option<&str>,
) -> Value {
    let mut event = json!({});
    if let (Some(state), Some(fields)) = (state, event.as_object_mut()) {
        fields.insert("state".into(), json!(state));
    }
    json!({
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "jti": jti,
        "sub_id": {"format": "opaque", "id": stream_id},
        "events": { VERIFICATION: event },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_revoked_set_has_every_claim_the_spec_lists() {
        let d = Delivery {
            id: 1,
            receiver: "https://rp.example/push".into(),
            event_id: "evt-1".into(),
            jti: "j-1".into(),
            user: "alice@example.com".into(),
            device_id: "dev-9".into(),
            event_ms: 1_795_774_500_999,
            reason: "why".into(),
            attempts: 0,
        };
        let claims = session_revoked("https://srs.example", "https://rp.example", 7, &d);
        assert_eq!(claims["txn"], "evt-1");
        assert_eq!(claims["sub_id"]["device"]["id"], "dev-9");
        let event = &claims["events"][SESSION_REVOKED];
        assert_eq!(event["event_timestamp"], 1_795_774_500);
        assert_eq!(event["initiating_entity"], "policy");
        assert_eq!(event["reason_admin"]["en"], "why");
        assert!(claims.get("sub").is_none() && claims.get("exp").is_none());
        let v = verification("i", "a", 7, "j", "s-1", Some("abc"));
        assert_eq!(v["events"][VERIFICATION]["state"], "abc");
        let v = verification("i", "a", 7, "j", "s-1", None);
        assert_eq!(v["events"][VERIFICATION], json!({}));
    }
}
