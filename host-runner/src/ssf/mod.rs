//! Shared Signals (SPEC §11; SSF 1.0, CAEP 1.0, RFC 8417 and RFC 8935): the
//! SETs `srs serve` pushes and the ones it accepts.
//!
//! - `keys`: our signing key (PKCS#8 PEM, RSA ≥ 2048 bits) and its JWKS.
//! - `set`: the `session-revoked` and `verification` SETs we sign.
//! - `receive`: checking a SET a transmitter pushed, and what it says.
//! - `courier`: pushing the journaled deliveries, with the retry rules of
//!   provider calls.
//!
//! JOSE is `jsonwebtoken` (already used for Google's JWT grant); `ring`,
//! which it signs with, reads the public half of our key for `/jwks.json`.

mod courier;
mod keys;
mod receive;
mod set;

pub use courier::{Courier, Receiver, Receivers, Status};
pub use keys::Signer;
pub use receive::{ComplianceChange, Incoming, Refusal, Transmitters};
pub use set::{SESSION_REVOKED, VERIFICATION, session_revoked, verification};

/// The RFC 8935 push delivery method, as SSF names it.
pub const PUSH_METHOD: &str = "urn:ietf:rfc:8935";
