//! The answer as compact JSON, written directly: the same bytes as
//! `serde_json::to_string` on the derived `Serialize` (field order, `type`
//! first, optional fields left out, serde_json's string escapes), without its
//! serializer's generic machinery. Tests compare the two on every answer the
//! conformance vectors and the reader's differential tests make.

use crate::answer::{
    Access, Answer, Decision, Diagnostic, Matched, Outcome, PolicySummary, Reason, Revocation,
};
use crate::model::{Action, Provider, Tier};
use crate::verdict::{Matches, Piece, Verdict};

/// [`Answer::to_json`].
pub fn answer(answer: &Answer) -> String {
    let mut w = Writer(String::with_capacity(512));
    match answer {
        Answer::Success {
            decision,
            policy,
            warnings,
        } => {
            w.raw(r#"{"type":"success""#);
            if let Some(decision) = decision {
                w.raw(r#","decision":"#);
                w.decision(decision);
            }
            if let Some(policy) = policy {
                w.raw(r#","policy":"#);
                w.summary(policy);
            }
            w.raw(r#","warnings":"#);
            w.list(warnings, Writer::diagnostic);
        }
        Answer::Failure { errors } => return failure(errors),
    }
    w.raw("}");
    w.0
}

/// A success answer with a kept policy's summary and warnings.
pub fn accepted(summary: &PolicySummary, warnings: &[Diagnostic]) -> String {
    let mut w = Writer(String::with_capacity(512));
    w.raw(r#"{"type":"success","policy":"#);
    w.summary(summary);
    w.raw(r#","warnings":"#);
    w.list(warnings, Writer::diagnostic);
    w.raw("}");
    w.0
}

/// The failure answer listing `errors`: the bytes of
/// `Answer::Failure { errors }.to_json()`.
pub fn failure(errors: &[Diagnostic]) -> String {
    let mut w = Writer(String::with_capacity(512));
    w.raw(r#"{"type":"failure","errors":"#);
    w.list(errors, Writer::diagnostic);
    w.raw("}");
    w.0
}

/// Where the first `"`, `\\` or control character (below 0x20) is in
/// `bytes`, the bytes a JSON string escapes (and where the reader stops):
/// eight bytes at a time, then one at a time.
pub fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    // High bit set in each byte below `n` (exact up to the first such byte,
    // which is all `trailing_zeros` looks at).
    const fn below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(ONES * n as u64) & !w & HIGH
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let found = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// `n` in decimal, as `write!(out, "{n}")` writes it, without going
/// through `core::fmt` (a `dyn Write` and its padding logic).
pub fn push_u32(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut rest = n;
    let mut len = 0;
    for slot in digits.iter_mut().rev() {
        // A digit: below 10.
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
        len += 1;
        if rest == 0 {
            break;
        }
    }
    let start = digits.len() - len;
    for &d in digits.get(start..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, the
/// control characters as `\b \t \n \f \r` or `\u00xx`, the rest as is.
pub fn quoted(out: &mut String, s: &str) {
    out.push('"');
    escaped(out, s);
    out.push('"');
}

/// [`quoted`] without the quotes.
fn escaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(at) = string_stop(rest.as_bytes()) {
        let (plain, from) = rest.split_at_checked(at).unwrap_or_default();
        out.push_str(plain);
        let b = from.bytes().next().unwrap_or_default();
        let short = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'\n' => 'n',
            b'\r' => 'r',
            b'\t' => 't',
            0x08 => 'b',
            0x0c => 'f',
            _ => 'u',
        };
        out.push('\\');
        out.push(short);
        if short == 'u' {
            out.push_str("00");
            for digit in [b >> 4, b & 0xf] {
                out.push(char::from_digit(u32::from(digit), 16).unwrap_or('0'));
            }
        }
        rest = from.get(1..).unwrap_or_default();
    }
    out.push_str(rest);
}

/// A success answer with `verdict`'s decision and the `warnings` then
/// `more`: the bytes [`answer`] writes for the [`Answer`] holding
/// [`Verdict::decision`], written from the verdict.
#[inline(never)]
pub fn success(verdict: &Verdict<'_>, warnings: &[Diagnostic], more: &[Diagnostic]) -> String {
    let mut w = Writer(String::with_capacity(512));
    w.raw(r#"{"type":"success","decision":"#);
    w.verdict(verdict);
    w.raw(r#","warnings":["#);
    for (i, d) in warnings.iter().chain(more).enumerate() {
        if i > 0 {
            w.0.push(',');
        }
        w.diagnostic(d);
    }
    w.raw("]}");
    w.0
}

struct Writer(String);

impl Writer {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    /// A JSON string as serde_json writes it ([`quoted`]).
    fn str(&mut self, s: &str) {
        quoted(&mut self.0, s);
    }

    /// A wire name: never anything to escape.
    fn name(&mut self, s: &str) {
        self.0.push('"');
        self.0.push_str(s);
        self.0.push('"');
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    fn u32(&mut self, n: u32) {
        push_u32(&mut self.0, n);
    }

    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.0.push('[');
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            item(self, x);
        }
        self.0.push(']');
    }

    fn diagnostic(&mut self, d: &Diagnostic) {
        self.raw(r#"{"code":"#);
        self.name(d.code.as_str());
        self.raw(r#","path":"#);
        self.str(&d.path);
        self.raw(r#","message":"#);
        self.str(&d.message);
        self.raw("}");
    }

    fn summary(&mut self, p: &PolicySummary) {
        self.raw(r#"{"providers":"#);
        self.list(&p.providers, |w, p| w.name(p.as_str()));
        self.raw(r#","mode":"#);
        self.name(p.mode.as_str());
        self.raw(r#","grace_seconds":"#);
        self.u32(p.grace_seconds);
        self.raw("}");
    }

    /// A decision's fields up to its `revocations`, whose list is next.
    fn head(&mut self, event_id: &str, outcome: Outcome, enforced: bool, access: Access) {
        self.raw(r#"{"event_id":"#);
        self.str(event_id);
        self.raw(r#","outcome":"#);
        self.name(outcome.as_str());
        self.raw(r#","enforced":"#);
        self.bool(enforced);
        self.raw(r#","access":"#);
        self.name(access.as_str());
        self.raw(r#","revocations":"#);
    }

    fn decision(&mut self, d: &Decision) {
        self.head(&d.event_id, d.outcome, d.enforced, d.access);
        self.list(&d.revocations, Self::revocation);
        if let Some(scheduled) = &d.scheduled {
            self.raw(r#","scheduled":{"due":"#);
            self.str(&scheduled.due);
            self.raw(r#","revocations":"#);
            self.list(&scheduled.revocations, Self::revocation);
            self.raw("}");
        }
        self.raw(r#","reasons":"#);
        self.list(&d.reasons, Self::reason);
        self.raw("}");
    }

    /// As [`Writer::decision`] writes [`Verdict::decision`].
    fn verdict(&mut self, v: &Verdict<'_>) {
        self.head(v.event.id, v.outcome, v.enforced, v.access);
        self.subjects(v.revocations());
        if let Some((_, due)) = &v.grace {
            self.raw(r#","scheduled":{"due":"#);
            self.str(due);
            self.raw(r#","revocations":"#);
            self.subjects(v.subjects());
            self.raw("}");
        }
        self.raw(r#","reasons":["#);
        for (i, r) in v.reasons().into_iter().flatten().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.raw(r#"{"rule":"#);
            self.name(r.rule.as_str());
            self.raw(r#","message":""#);
            r.message.pieces(|piece| match piece {
                // Fixed texts have nothing to escape (`a_verdict_as_its_decision_answer`).
                Piece::Fixed(text) => self.0.push_str(text),
                Piece::Given(text) => escaped(&mut self.0, text),
                Piece::Count(n) => self.u32(n),
            });
            self.raw(r#"","matched":["#);
            self.matches(r.matched);
            self.raw("]}");
        }
        self.raw("]}");
    }

    fn subjects<'s>(&mut self, subjects: impl Iterator<Item = (Provider, &'s str)>) {
        self.0.push('[');
        for (i, (provider, subject)) in subjects.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.raw(r#"{"provider":"#);
            self.name(provider.as_str());
            self.raw(r#","subject":"#);
            self.str(subject);
            self.raw("}");
        }
        self.0.push(']');
    }

    /// A matched list's items, as [`Writer::matched`] writes each.
    fn matches(&mut self, m: Matches<'_>) {
        match m {
            Matches::Nothing => {}
            Matches::State(state) => self.matched(&Matched::State { state }),
            Matches::Actions(violations, class) => {
                let mut first = true;
                Matches::each_action(violations, class, |policy, action| {
                    if !std::mem::take(&mut first) {
                        self.0.push(',');
                    }
                    self.raw(r#"{"policy":"#);
                    self.str(policy);
                    self.raw(r#","action":"#);
                    self.action(action);
                    self.raw("}");
                });
            }
            Matches::User(user) => {
                self.raw(r#"{"user":"#);
                self.str(user);
                self.raw("}");
            }
            Matches::Deployment(deployment) => self.matched(&Matched::Deployment { deployment }),
            Matches::Grace(grace_seconds, due) => {
                self.raw(r#"{"grace_seconds":"#);
                self.u32(grace_seconds);
                self.raw(r#","due":"#);
                self.str(due);
                self.raw("}");
            }
        }
    }

    fn revocation(&mut self, r: &Revocation) {
        self.raw(r#"{"provider":"#);
        self.name(r.provider.as_str());
        self.raw(r#","subject":"#);
        self.str(&r.subject);
        self.raw("}");
    }

    fn reason(&mut self, r: &Reason) {
        self.raw(r#"{"rule":"#);
        self.name(r.rule.as_str());
        self.raw(r#","message":"#);
        self.str(&r.message);
        self.raw(r#","matched":"#);
        self.list(&r.matched, Self::matched);
        self.raw("}");
    }

    fn matched(&mut self, m: &Matched) {
        match m {
            Matched::Action { policy, action } => {
                self.raw(r#"{"policy":"#);
                self.str(policy);
                self.raw(r#","action":"#);
                self.action(action);
            }
            Matched::State { state } => {
                self.raw(r#"{"state":"#);
                self.name(state.as_str());
            }
            Matched::User { user } => {
                self.raw(r#"{"user":"#);
                self.str(user);
            }
            Matched::Deployment { deployment } => {
                self.raw(r#"{"deployment":"#);
                self.name(deployment.as_str());
            }
            Matched::Grace { grace_seconds, due } => {
                self.raw(r#"{"grace_seconds":"#);
                self.u32(*grace_seconds);
                self.raw(r#","due":"#);
                self.str(due);
            }
        }
        self.raw("}");
    }

    fn action(&mut self, a: &Action) {
        match a {
            Action::Name(name) => self.str(name),
            Action::Tier(Tier {
                alert,
                block,
                quarantine,
                wipe,
            }) => {
                self.raw(r#"{"alert":"#);
                self.bool(*alert);
                self.raw(r#","block":"#);
                self.bool(*block);
                self.raw(r#","quarantine":"#);
                self.bool(*quarantine);
                self.raw(r#","wipe":"#);
                self.bool(*wipe);
                self.raw("}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::answer::{Access, ErrorCode, Outcome, Rule, Scheduled};
    use crate::model::{Deployment, DeviceState, Mode, Provider};

    fn same(answer: &Answer) {
        assert_eq!(
            super::answer(answer),
            serde_json::to_string(answer).unwrap()
        );
    }

    /// A verdict written directly is what the owned decision's answer is,
    /// for every reason and list, with strings that need escapes (the
    /// common-case reader never gives the writer such strings; the writer
    /// does not rely on it).
    #[test]
    fn a_verdict_as_its_decision_answer() {
        use crate::model::{ActionClass, EventRef};
        use crate::verdict::{Then, Verdict};

        let odd = "say \"hi\" \\ to\n\t\u{1f}é😀\u{2028}";
        let event = EventRef {
            id: odd,
            time: Some("2026-11-27T08:00:00Z"),
            device_id: odd,
            state: DeviceState::Retired,
            upn: Some(odd),
            email: Some("b@y"),
            compliant: false,
            violations: crate::model::Violations::Owned(&[]),
        };
        let actions = [
            (Action::Name(odd.to_owned()), ActionClass::Blocking),
            (Action::Name("Send Alert".into()), ActionClass::NonBlocking),
            (
                Action::Tier(Tier {
                    alert: false,
                    block: true,
                    quarantine: false,
                    wipe: true,
                }),
                ActionClass::Blocking,
            ),
        ];
        let borrowed: Vec<_> = actions.iter().map(|(a, c)| (a, *c)).collect();
        let violations = [(odd, borrowed.clone()), ("p2", borrowed)];
        let providers = [Provider::Office365, Provider::GoogleWorkspace];
        let thens = [
            None,
            Some(Then::Exempt(odd)),
            Some(Then::Unsupported),
            Some(Then::Compliant),
            Some(Then::NonBlocking),
        ];
        let warning = Diagnostic {
            code: ErrorCode::UnknownAction,
            path: odd.into(),
            message: odd.into(),
        };
        let mut written = 0;
        for then in thens {
            for (outcome, grace) in [
                (Outcome::Revoke, None),
                (Outcome::Grace, Some((60, odd.to_owned()))),
                (Outcome::NoAction, None),
                (Outcome::Unsupported, None),
            ] {
                for (state, blocking) in [(None, 0), (Some(DeviceState::Wiped), 4)] {
                    let verdict = Verdict {
                        event: &event,
                        providers: &providers,
                        violations: &violations,
                        outcome,
                        enforced: blocking > 0,
                        access: Access::Block,
                        state,
                        blocking,
                        then,
                        grace: grace.clone(),
                    };
                    let warnings = [warning.clone()];
                    let answer = Answer::Success {
                        decision: Some(verdict.decision()),
                        policy: None,
                        warnings: vec![warning.clone(), warning.clone()],
                    };
                    let direct = success(&verdict, &warnings, &warnings);
                    assert_eq!(direct, super::answer(&answer));
                    assert_eq!(direct, serde_json::to_string(&answer).unwrap());
                    written += 1;
                }
            }
        }
        assert_eq!(written, 40);
    }

    #[test]
    fn every_shape_as_serde_json_writes_it() {
        let every_byte: String = (0u8..=0x7f)
            .map(char::from)
            .chain("é€😀\u{2028}".chars())
            .collect();
        let diagnostic = Diagnostic {
            code: ErrorCode::UnknownField,
            path: every_byte.clone(),
            message: "say \"hi\" \\ to\n\t the\u{1f}".into(),
        };
        let revocation = Revocation {
            provider: Provider::GoogleWorkspace,
            subject: every_byte.clone(),
        };
        same(&Answer::Failure { errors: vec![] });
        same(&Answer::Failure {
            errors: vec![diagnostic.clone(), diagnostic.clone()],
        });
        same(&Answer::Success {
            decision: None,
            policy: None,
            warnings: vec![],
        });
        same(&Answer::Success {
            decision: None,
            policy: Some(Box::new(PolicySummary {
                providers: vec![Provider::Office365, Provider::GoogleWorkspace],
                mode: Mode::ReportOnly,
                grace_seconds: u32::MAX,
            })),
            warnings: vec![diagnostic.clone()],
        });
        for scheduled in [
            None,
            Some(Box::new(Scheduled {
                due: "2026-01-01T00:00:00Z".into(),
                revocations: vec![revocation.clone(), revocation.clone()],
            })),
        ] {
            same(&Answer::Success {
                decision: Some(Decision {
                    event_id: every_byte.clone(),
                    outcome: Outcome::Grace,
                    enforced: false,
                    access: Access::Allow,
                    revocations: vec![revocation.clone()],
                    scheduled,
                    reasons: vec![
                        Reason {
                            rule: Rule::BlockingAction,
                            message: every_byte.clone(),
                            matched: vec![
                                Matched::Action {
                                    policy: "p".into(),
                                    action: Action::Name("\u{0}".into()),
                                },
                                Matched::Action {
                                    policy: "p".into(),
                                    action: Action::Tier(Tier {
                                        alert: true,
                                        block: false,
                                        quarantine: true,
                                        wipe: false,
                                    }),
                                },
                                Matched::State {
                                    state: DeviceState::RetirePending,
                                },
                                Matched::User { user: "u".into() },
                                Matched::Deployment {
                                    deployment: Deployment::AccessStandaloneSentry,
                                },
                                Matched::Grace {
                                    grace_seconds: 0,
                                    due: "d".into(),
                                },
                            ],
                        },
                        Reason {
                            rule: Rule::Compliant,
                            message: String::new(),
                            matched: vec![],
                        },
                    ],
                }),
                policy: None,
                warnings: vec![diagnostic.clone()],
            });
        }
    }

    proptest! {
        #[test]
        fn quoted_is_serde_jsons_string(s in any::<String>(), ctrl in prop::collection::vec(0u8..0x20, 0..4)) {
            let s: String = s.chars().chain(ctrl.into_iter().map(char::from)).chain("\"\\\u{7f}".chars()).collect();
            let mut out = String::new();
            quoted(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn push_u32_writes_what_fmt_writes(n in any::<u32>()) {
            let mut out = String::from("x");
            push_u32(&mut out, n);
            prop_assert_eq!(out, format!("x{n}"));
        }

        #[test]
        fn string_stop_finds_the_first_stop(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let naive = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_stop(&bytes), naive);
        }

        #[test]
        fn string_stop_finds_it_among_plain_bytes(
            plain in prop::collection::vec(0x20u8..=0xff, 0..40),
            stop in prop::sample::select(vec![b'"', b'\\', 0, 0x1f, b'\n']),
            at in any::<prop::sample::Index>(),
        ) {
            let mut bytes: Vec<u8> = plain.into_iter().map(|b| if b == b'"' || b == b'\\' { b'a' } else { b }).collect();
            let at = at.index(bytes.len() + 1);
            bytes.insert(at, stop);
            prop_assert_eq!(string_stop(&bytes), Some(at));
        }
    }
}
