//! Action names and classes (SPEC §3, §4).

use crate::case::push_lower;
use crate::model::{ActionClass, Tier};

/// A name as it is matched: lowercase, with spaces, `_` and `-` removed, so
/// `Send Alert`, `SendAlert` and `SEND_ALERT` are the same action.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    normalize_into(name, &mut out);
    out
}

/// [`normalize`] into `out`, replacing what it held: a caller classifying
/// several names reuses one buffer.
pub fn normalize_into(name: &str, out: &mut String) {
    out.clear();
    for c in name.chars().filter(|c| !matches!(c, ' ' | '_' | '-')) {
        push_lower(out, c);
    }
}

/// The class of a built-in action name, already normalized.
pub fn builtin_class(normalized: &str) -> Option<ActionClass> {
    match normalized {
        // EPMM's default action is "Block Email, AppConnect Apps And Send Alert".
        "block" | "quarantine" | "wipe" | "retire" | "blockemail,appconnectappsandsendalert" => {
            Some(ActionClass::Blocking)
        }
        "sendalert" | "email" | "notify" | "monitor" | "pushnotification" | "wait" => {
            Some(ActionClass::NonBlocking)
        }
        _ => None,
    }
}

/// The class of a tier object: blocking when block, quarantine or wipe is set.
pub fn tier_class(tier: &Tier) -> ActionClass {
    if tier.block || tier.quarantine || tier.wipe {
        ActionClass::Blocking
    } else {
        ActionClass::NonBlocking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_normalize_alike() {
        for name in [
            "Send Alert",
            "SendAlert",
            "SEND_ALERT",
            "send-alert",
            " send alert ",
        ] {
            assert_eq!(normalize(name), "sendalert", "{name}");
        }
    }

    #[test]
    fn epmm_default_action_is_blocking() {
        let n = normalize("Block Email, AppConnect Apps And Send Alert");
        assert_eq!(builtin_class(&n), Some(ActionClass::Blocking));
    }

    #[test]
    fn tier_with_only_alert_is_non_blocking() {
        let alert = Tier {
            alert: true,
            ..Tier::default()
        };
        assert_eq!(tier_class(&alert), ActionClass::NonBlocking);
        assert_eq!(tier_class(&Tier::default()), ActionClass::NonBlocking);
        let quarantine = Tier {
            quarantine: true,
            ..Tier::default()
        };
        assert_eq!(tier_class(&quarantine), ActionClass::Blocking);
    }
}
