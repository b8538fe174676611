//! The single-pass reader against the old way (the text into a
//! `serde_json::Value`, then the schema walk): the same answer, byte for
//! byte, for hand-picked edges and for generated events, well formed or not.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test stops at its first failure"
)]

use std::sync::OnceLock;

use policy_core::{
    Engine, MAX_DIAGNOSTICS, MAX_ITEMS, evaluate_request, evaluate_request_via_value,
};
use proptest::prelude::*;

const POLICY: &str = r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],"actions":{"Lock Down":"blocking"},"compliance_policies":[{"id":"jailbreak","actions":["Send Alert","Block"]}],"exempt_users":["breakglass@example.com"],"grace_seconds":60}"#;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::from_json(POLICY.as_bytes()).unwrap())
}

/// `event` the new way and the old, alone under a kept policy and in a
/// request envelope; and the text as a whole envelope.
fn same(event: &[u8]) {
    let show = || {
        String::from_utf8_lossy(event)
            .chars()
            .take(2000)
            .collect::<String>()
    };
    let answer = engine().evaluate_json(event);
    let new = answer.to_json();
    assert_eq!(new, serde_json::to_string(&answer).unwrap(), "to_json");
    let old = engine().evaluate_json_via_value(event).to_json();
    if new != old {
        panic!(
            "evaluate_json differs\ninput: {}\nnew: {new}\nold: {old}",
            show()
        );
    }
    let written = engine().answer_json(event);
    if written != new {
        panic!(
            "answer_json differs\ninput: {}\nanswer_json: {written}\nto_json: {new}",
            show()
        );
    }
    let mut request = br#"{"policy":"#.to_vec();
    request.extend_from_slice(POLICY.as_bytes());
    request.extend_from_slice(br#","event":"#);
    request.extend_from_slice(event);
    request.push(b'}');
    for request in [&request[..], event] {
        let answer = evaluate_request(request);
        let new = answer.to_json();
        assert_eq!(new, serde_json::to_string(&answer).unwrap(), "to_json");
        let old = evaluate_request_via_value(request).to_json();
        if new != old {
            panic!(
                "evaluate_request differs\ninput: {}\nnew: {new}\nold: {old}",
                String::from_utf8_lossy(request)
                    .chars()
                    .take(2000)
                    .collect::<String>()
            );
        }
    }
}

const VALID: &str = r#"{"id":"evt-1","time":"2026-11-27T10:00:00Z","device":{"id":"dev-9","state":"active","platform":"iOS"},"user":{"upn":"alice@example.com","email":"alice@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"jailbreak"},{"policy":"p2","actions":["Lock Down",{"alert":true,"block":null}]}]}}"#;

#[test]
fn hand_picked_edges() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let nested_obj = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let many_keys = |n: usize| {
        let keys: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
        format!("{{{}}}", keys.join(","))
    };
    let many_items = |n: usize, item: &str| format!("[{}]", vec![item; n].join(","));
    let mut cases: Vec<String> = vec![
        VALID.into(),
        VALID.replace(r#""id":"evt-1""#, r#""i\u0064":"evt-1""#),
        VALID.replace(r#""evt-1""#, r#""evt-\n1\u00e9""#),
        VALID.replace(r#""evt-1""#, r#""\ud800""#),
        VALID.replace(r#""evt-1""#, r#""\ud83d\ude00""#),
        VALID.replace(r#""evt-1""#, r#""\x""#),
        VALID.replace(r#""evt-1""#, "\"a\u{1}b\""),
        VALID.replace(r#""evt-1""#, "\"a\u{7f}b\""),
        VALID.replace(r#""evt-1""#, &format!("\"{}\"", "x".repeat(257))),
        VALID.replace(r#""evt-1""#, &format!("\"{}\"", "é".repeat(128))),
        VALID.replace(r#""evt-1""#, &format!("\"{}\\n\"", "x".repeat(256))),
        VALID.replace(r#""evt-1""#, r#""""#),
        VALID.replace(r#""evt-1""#, r#"" ""#),
        VALID.replace(r#""alice@example.com","email""#, r#"null,"email""#),
        VALID.replace(r#""time":"2026-11-27T10:00:00Z","#, ""),
        VALID.replace("2026-11-27T10:00:00Z", "2026-11-27"),
        VALID.replace(r#""time":"2026-11-27T10:00:00Z""#, r#""time":null"#),
        VALID.replace("{", " \t\n\r{ "),
        VALID.replace(",", " , "),
        VALID.replace(":", " : "),
        format!("{VALID} "),
        format!("\n{VALID}\n\n"),
        format!("{VALID}x"),
        format!("{VALID}{{}}"),
        format!("\u{feff}{VALID}"),
        VALID.replace(r#""id":"evt-1","#, r#""id":"evt-1","id":"evt-2","#),
        VALID.replace(
            r#""platform":"iOS""#,
            r#""platform":"iOS","x":{"a":1,"a":2}"#,
        ),
        VALID.replace(r#""platform":"iOS""#, r#""platform":"iOS","x":1,"x":2"#),
        VALID.replace(
            r#""platform":"iOS""#,
            r#""platform":"iOS","x":1,"\u0078":2"#,
        ),
        VALID.replace(
            r#""platform":"iOS""#,
            r#""platform":"iOS","zz":1,"aa":[],"Mm":{},"é":null,"\u00e9x":true"#,
        ),
        VALID.replace(
            r#""platform":"iOS""#,
            &format!(r#""platform":"iOS","{}":1"#, "k".repeat(300)),
        ),
        VALID.replace("[", "[ ").replace("]", " ]"),
        VALID.replace("}]", "},]"),
        VALID.replace(r#""iOS"}"#, r#""iOS",}"#),
        VALID.replace("true", "tru"),
        VALID.replace("true", "True"),
        VALID.replace("null", "nul"),
        VALID.replace("false", "0"),
        VALID.replace("false", "-0"),
        VALID.replace("false", "1.5"),
        VALID.replace("false", "1e400"),
        VALID.replace("false", "-1e400"),
        VALID.replace("false", "1E+2"),
        VALID.replace("false", "1e-400"),
        VALID.replace("false", "01"),
        VALID.replace("false", "1."),
        VALID.replace("false", ".5"),
        VALID.replace("false", "-"),
        VALID.replace("false", "+1"),
        VALID.replace("false", "1e"),
        VALID.replace("false", "123456789012345678901234567890"),
        VALID.replace("false", &"9".repeat(400)),
        VALID.replace("false", "18446744073709551615"),
        VALID.replace("false", "[]"),
        VALID.replace("false", "{}"),
        VALID.replace("false", r#""false""#),
        VALID.replace(r#""active""#, r#""Active""#),
        VALID.replace(r#""active""#, "7"),
        VALID.replace(r#""Lock Down""#, "7"),
        VALID.replace(r#""Lock Down""#, r#"{"alert":1,"bogus":true,"wipe":"no"}"#),
        VALID.replace(r#""Lock Down""#, r#""Lock Down","Lock Down","nope""#),
        VALID.replace(r#""violations":["#, r#""violations":[3,"x",null,[],"#),
        VALID.replace(r#""device":{"#, r#""device":{"device":{},"#),
        VALID.replace(r#""compliant":false"#, r#""compliant":true"#),
        VALID.replace(r#""jailbreak""#, r#""p2""#),
        VALID.replace(r#""jailbreak""#, r#""unknown-policy""#),
        VALID.replace(
            r#""user":{"upn":"alice@example.com","email":"alice@example.com"}"#,
            r#""user":{}"#,
        ),
        VALID.replace(
            r#""user":{"upn":"alice@example.com","email":"alice@example.com"}"#,
            r#""user":{"upn":" "}"#,
        ),
        VALID.replace(
            r#""user":{"upn":"alice@example.com","email":"alice@example.com"}"#,
            r#""user":{"upn":"BreakGlass@example.com"}"#,
        ),
        VALID.replace(r#""violations":"#, r#""violations":null,"v":"#),
        VALID.replace(
            r#"{"policy":"jailbreak"}"#,
            &many_items(MAX_ITEMS, r#"{"policy":"x"}"#),
        ),
        VALID.replace(
            r#"{"policy":"jailbreak"}"#,
            &many_items(MAX_ITEMS + 1, r#"{"policy":"x"}"#),
        ),
        VALID.replace(
            r#"{"policy":"jailbreak"}"#,
            &many_items(MAX_DIAGNOSTICS + 5, "7"),
        ),
        VALID.replace(
            r#"{"policy":"jailbreak"}"#,
            &many_items(MAX_DIAGNOSTICS * 3, r#"{"z":1,"a":2}"#),
        ),
        VALID.replace(
            r#"{"policy":"jailbreak"}"#,
            &many_items(MAX_DIAGNOSTICS * 3, r#"{"policy":"x","actions":[]}"#),
        ),
        VALID.replace(r#""Lock Down""#, &many_items(MAX_ITEMS + 1, r#""Block""#)),
        VALID.replace(r#""Lock Down""#, &many_items(MAX_ITEMS, r#""Block""#)),
        VALID.replace(r#""iOS""#, &many_keys(MAX_ITEMS + 1)),
        VALID.replace(r#"{"policy":"jailbreak"}"#, &many_keys(MAX_ITEMS + 1)),
        VALID.replace(r#"{"policy":"jailbreak"}"#, &many_keys(MAX_ITEMS)),
        VALID.replace(
            r#"{"id":"dev-9","state":"active","platform":"iOS"}"#,
            &many_keys(MAX_ITEMS + 1),
        ),
        VALID.replace(r#"{"policy":"jailbreak"}"#, &many_keys(MAX_DIAGNOSTICS * 2)),
        many_keys(MAX_ITEMS + 1),
        many_keys(MAX_ITEMS),
        many_items(3, "1"),
        String::new(),
        " ".into(),
        "null".into(),
        "1".into(),
        r#""event""#.into(),
        "{}".into(),
        "{".into(),
        "}".into(),
        r#"{"id"}"#.into(),
        r#"{"id":}"#.into(),
        r#"{"id":1,}"#.into(),
        r#"{,}"#.into(),
        r#"{1:2}"#.into(),
        r#"{"policy":{},"event":{}}"#.into(),
        r#"{"policy":{"uem":"epmm"},"event":[],"z":1}"#.into(),
        r#"{"policy":1,"policy":2}"#.into(),
        r#"{"event":{"id":"x"}}"#.into(),
        format!(r#"{{"policy":{POLICY},"event":{VALID},"event":{{}}}}"#),
        format!(r#"{{"policy":{POLICY},"x":{VALID}}}"#),
        format!(r#"{{"policy":null,"event":{VALID}}}"#),
        format!(r#"{{ "policy" : {POLICY} , "event" : {VALID} }}"#),
    ];
    for depth in [1, 2, 100, 125, 126, 127, 128, 129, 200, 10_000] {
        let deep = nested(depth);
        cases.push(VALID.replace(r#""iOS""#, &deep));
        cases.push(VALID.replace(r#""iOS"}"#, &format!(r#""iOS","x":{deep}}}"#)));
        cases.push(VALID.replace(
            r#""iOS"}"#,
            &format!(r#""iOS","x":{}}}"#, nested_obj(depth)),
        ));
        cases.push(deep);
        cases.push(nested_obj(depth));
    }
    let mut bytes: Vec<Vec<u8>> = cases.into_iter().map(String::into_bytes).collect();
    bytes.push(b"{\"id\":\"\xff\"}".to_vec());
    bytes.push(VALID.as_bytes()[..VALID.len() - 1].to_vec());
    let mut big = VALID.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(
        b' ',
        policy_core::MAX_INPUT_BYTES - VALID.len(),
    ));
    bytes.push(big.clone());
    big.push(b' ');
    bytes.push(big);
    for case in &bytes {
        same(case);
    }
    // Every prefix of a valid event, and every one-byte deletion.
    for end in 0..VALID.len() {
        same(&VALID.as_bytes()[..end]);
        let mut cut = VALID.as_bytes().to_vec();
        cut.remove(end);
        same(&cut);
    }
}

/// A JSON value, rendered as text by [`render`] (so keys may repeat).
#[derive(Debug, Clone)]
enum J {
    Raw(&'static str),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn render(j: &J, pretty: bool, out: &mut String) {
    let sep = if pretty { ", " } else { "," };
    match j {
        J::Raw(s) => out.push_str(s),
        J::Str(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                render(item, pretty, out);
            }
            out.push(']');
        }
        J::Obj(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                out.push('"');
                out.push_str(key);
                out.push_str(if pretty { "\": " } else { "\":" });
                render(value, pretty, out);
            }
            out.push('}');
        }
    }
}

/// Strings as they appear between the quotes: escapes and all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("evt-1".to_owned()),
        Just(String::new()),
        Just(" ".to_owned()),
        Just("active".to_owned()),
        Just("quarantined".to_owned()),
        Just("Block".to_owned()),
        Just("Lock Down".to_owned()),
        Just("Send Alert".to_owned()),
        Just("jailbreak".to_owned()),
        Just("alice@example.com".to_owned()),
        Just("BreakGlass@example.com".to_owned()),
        Just("2026-11-27T10:00:00Z".to_owned()),
        Just("2026-11-27T23:59:60+01:00".to_owned()),
        Just("\\u0041ctive".to_owned()),
        Just("a\\\"b".to_owned()),
        Just("\\ud800".to_owned()),
        Just("é".to_owned()),
        Just("x".repeat(257)),
        "[a-z]{0,4}",
    ]
}

/// Keys: the schema's, escaped spellings of them, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "time", "device", "user", "compliance", "state", "platform", "upn", "email",
            "compliant", "violations", "policy", "actions", "alert", "block", "quarantine", "wipe",
            "event",
        ])
        .prop_map(str::to_owned),
        1 => prop::sample::select(vec!["i\\u0064", "x", "", "Z", "é", "\\u00e9"]).prop_map(str::to_owned),
        1 => "[a-z]{1,3}",
    ]
}

fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        prop::sample::select(vec![
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "1.5",
            "1e400",
            "-12",
            "2592000",
            "99999999999999999999",
            "[]",
            "{}",
        ])
        .prop_map(J::Raw),
        text().prop_map(J::Str),
    ]
}

fn any_json() -> impl Strategy<Value = J> {
    scalar().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..4).prop_map(J::Obj),
        ]
    })
}

/// A field: usually a value of the right shape, now and then anything.
fn field(name: &'static str, good: BoxedStrategy<J>) -> BoxedStrategy<Vec<(String, J)>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => good.prop_map(move |v| vec![(name.to_owned(), v)]),
        1 => any_json().prop_map(move |v| vec![(name.to_owned(), v)]),
        1 => (key(), any_json()).prop_map(|(k, v)| vec![(k, v)]),
    ]
    .boxed()
}

fn obj(fields: Vec<BoxedStrategy<Vec<(String, J)>>>) -> BoxedStrategy<J> {
    (fields, any::<bool>())
        .prop_map(|(fields, reverse)| {
            let mut all: Vec<(String, J)> = fields.into_iter().flatten().collect();
            if reverse {
                all.reverse();
            }
            J::Obj(all)
        })
        .boxed()
}

fn s(choices: &[&'static str]) -> BoxedStrategy<J> {
    prop::sample::select(choices.to_vec())
        .prop_map(|s| J::Str(s.to_owned()))
        .boxed()
}

fn action() -> BoxedStrategy<J> {
    prop_oneof![
        3 => s(&["Block", "Send Alert", "Lock Down", "quarantine", "wait", ""]),
        1 => obj(vec![
            field("alert", s(&["x"]).prop_map(|_| J::Raw("true")).boxed()),
            field("block", prop::sample::select(vec![J::Raw("true"), J::Raw("false"), J::Raw("null")]).boxed()),
            field("wipe", Just(J::Raw("false")).boxed()),
        ]),
        1 => any_json(),
    ]
    .boxed()
}

fn event() -> BoxedStrategy<J> {
    let violation = obj(vec![
        field("policy", s(&["jailbreak", "p2", "p2", " "])),
        field(
            "actions",
            prop::collection::vec(action(), 0..4)
                .prop_map(J::Arr)
                .boxed(),
        ),
    ]);
    obj(vec![
        field("id", text().prop_map(J::Str).boxed()),
        field("time", text().prop_map(J::Str).boxed()),
        field(
            "device",
            obj(vec![
                field("id", s(&["dev-9", ""])),
                field("state", s(&["active", "quarantined", "wiped", "nope"])),
                field("platform", text().prop_map(J::Str).boxed()),
            ]),
        ),
        field(
            "user",
            obj(vec![
                field(
                    "upn",
                    s(&["alice@example.com", "BreakGlass@example.com", " "]),
                ),
                field("email", s(&["alice@example.com", ""])),
            ]),
        ),
        field(
            "compliance",
            obj(vec![
                field(
                    "compliant",
                    prop::sample::select(vec![J::Raw("true"), J::Raw("false")]).boxed(),
                ),
                field(
                    "violations",
                    prop::collection::vec(violation, 0..4)
                        .prop_map(J::Arr)
                        .boxed(),
                ),
            ]),
        ),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Generated events, rendered compact or spaced, and now and then with
    /// one byte replaced, inserted or removed.
    #[test]
    fn generated_events(
        event in event(),
        pretty in any::<bool>(),
        edit in prop::option::of((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b"{}[],:\"\\ 0a-.e".to_vec()))),
    ) {
        let mut text = String::new();
        render(&event, pretty, &mut text);
        let mut bytes = text.into_bytes();
        if let Some((at, how, byte)) = edit {
            let at = at.index(bytes.len() + 1);
            match how {
                0 if at < bytes.len() => { bytes.remove(at); }
                1 if at < bytes.len() => { bytes[at] = byte; }
                _ => bytes.insert(at, byte),
            }
        }
        same(&bytes);
    }
}

/// Every conformance vector's event, under its own policy when that is kept
/// (else under the fixed one), compact and pretty, alone and in an envelope.
#[test]
fn every_conformance_vector() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let policy = doc["policy"].to_string();
        let kept = Engine::from_json(policy.as_bytes()).ok();
        for case in doc["cases"].as_array().unwrap() {
            let event = &case["event"];
            for text in [
                event.to_string(),
                serde_json::to_string_pretty(event).unwrap(),
            ] {
                same(text.as_bytes());
                if let Some(engine) = &kept {
                    let new = engine.evaluate_json(text.as_bytes()).to_json();
                    let old = engine.evaluate_json_via_value(text.as_bytes()).to_json();
                    assert_eq!(new, old, "{}", path.display());
                    let written = engine.answer_json(text.as_bytes());
                    assert_eq!(written, new, "{}", path.display());
                }
                let request = format!(r#"{{"policy":{policy},"event":{text}}}"#);
                let answer = evaluate_request(request.as_bytes());
                assert_eq!(answer.to_json(), serde_json::to_string(&answer).unwrap());
                assert_eq!(
                    answer.to_json(),
                    evaluate_request_via_value(request.as_bytes()).to_json(),
                    "{}",
                    path.display()
                );
                cases += 1;
            }
        }
    }
    assert!(cases >= 120, "only {cases} cases");
}
