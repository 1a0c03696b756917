//! Bad input never panics: property tests over the `/staffbot` grammar and over Socket Mode
//! frames and payloads (arbitrary JSON, huge strings, unicode, missing fields).

use proptest::prelude::*;
use serde_json::{Value, json};
use staffbot::handlers::command::{self, Command};
use staffbot::slack::envelope::{BlockActions, Frame, SlashCommand, parse_frame};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("envelope_id".to_string()),
                    Just("payload".to_string()),
                    Just("user_id".to_string()),
                    Just("text".to_string()),
                    Just("actions".to_string()),
                    Just("user".to_string()),
                    ".{0,12}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_grammar_never_panics(text in "\\PC{0,200}") {
        let _ = command::parse(&text);
    }

    #[test]
    fn staff_with_any_digits_is_understood(digits in "[0-9]{1,40}", tail in "( \\PC{0,20})?") {
        prop_assert_eq!(
            command::parse(&format!("staff {digits}{tail}")),
            Some(Command::Staff { task: digits.clone() })
        );
    }

    #[test]
    fn restaff_usernames_round_trip(task in "[0-9]{1,8}", name in "[\\p{L}\\p{Nd}_.@+-]{1,40}") {
        match command::parse(&format!("restaff {task} {name}")) {
            Some(Command::Restaff { task: t, worker }) => {
                prop_assert_eq!(t, task);
                prop_assert_eq!(worker.display(), name.as_str());
            }
            other => prop_assert!(false, "not understood: {:?}", other),
        }
    }

    #[test]
    fn frames_never_panic(text in "\\PC{0,300}") {
        let _ = parse_frame(&text);
    }

    #[test]
    fn arbitrary_json_frames_and_payloads_never_panic(v in arb_json()) {
        if let Ok(Frame::Envelope(e)) = parse_frame(&v.to_string()) {
            let _ = SlashCommand::parse(&e.payload);
            let _ = BlockActions::parse(&e.payload);
        }
        let _ = SlashCommand::parse(&v);
        let _ = BlockActions::parse(&v);
    }

    #[test]
    fn slash_payloads_with_odd_strings_parse(user in "\\PC{0,64}", text in "\\PC{0,2000}") {
        let parsed = SlashCommand::parse(&json!({"user_id": user, "text": text}));
        prop_assert!(parsed.is_ok());
    }
}

#[test]
fn huge_strings_are_handled() {
    let huge = "9".repeat(1_000_000);
    assert_eq!(
        command::parse(&format!("staff {huge}")),
        Some(Command::Staff { task: huge.clone() })
    );
    let frame = json!({"type": "slash_commands", "envelope_id": "e", "payload": {"text": huge}})
        .to_string();
    assert!(matches!(parse_frame(&frame), Ok(Frame::Envelope(_))));
}
