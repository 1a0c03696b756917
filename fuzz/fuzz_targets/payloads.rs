//! Socket Mode frames and their payloads, as Slack (or anyone who has the app token) could send
//! them: any bytes must parse to a frame, a clear error, or a payload error — never a panic.
//!
//! Run with `cargo +nightly fuzz run payloads` from the repository root (see README).
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffbot::handlers::command;
use staffbot::slack::envelope::{BlockActions, Frame, SlashCommand, parse_frame, redacted};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The `/staffbot` grammar on the raw text.
    let _ = command::parse(text);
    // A whole frame, then whatever its payload claims to be.
    if let Ok(Frame::Envelope(envelope)) = parse_frame(text) {
        let _ = redacted(&envelope.payload);
        if let Ok(cmd) = SlashCommand::parse(&envelope.payload) {
            if let Some(t) = cmd.field("text") {
                let _ = command::parse(t);
            }
        }
        let _ = BlockActions::parse(&envelope.payload);
    }
    // A bare payload (a fuzzer finds JSON objects faster than whole frames).
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = SlashCommand::parse(&value);
        let _ = BlockActions::parse(&value);
    }
});
