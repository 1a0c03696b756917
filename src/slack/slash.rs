//! `/staffbot` (behaviour §7, design.md §5.3) on Slack: authorisation (the verification token,
//! the whitelists, the caller's worker) and the replies, which are the ephemeral ack payload; what
//! a command does is [`crate::handlers::slash`]'s. One short transaction; messages to channels go
//! to the outbox.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::envelope::SlashCommand;
use super::mrkdwn::Mrkdwn;
use crate::config::AllowedConfig;
use crate::db::entities::worker;
use crate::db::workers;
use crate::error::Error;
use crate::handlers::{self, slash::SlashAnswer};

/// The usage line after Orchestra's "couldn't process" answer: the command's own when its
/// first word names one, else every admin command.
pub fn usage_for(text: &str) -> &'static str {
    match text.split_whitespace().next() {
        Some("staff") => {
            "Usage: `/staffbot staff <task-id>` (the task's number). `/staffbot help` lists every command."
        }
        Some("restaff") => {
            "Usage: `/staffbot restaff <task-id> <username>` (a username or an @mention). `/staffbot help` lists every command."
        }
        _ => {
            "Commands: `/staffbot staff <task-id>`, `/staffbot restaff <task-id> <username>`, `/staffbot tasks`, `/staffbot availability`, `/staffbot help`."
        }
    }
}

pub use crate::messages::wording::NOT_AUTHORIZED;
pub const HELP_TEXT: &str = "Use `/staffbot` to staff or restaff a Task.";
/// The help of a worker who is not an admin (staffing and restaffing are for admins).
pub const WORKER_HELP_TEXT: &str = "Use `/staffbot tasks` to see your tasks and open offers, `/staffbot availability` to see and set when you can work. Staffing admins staff and restaff tasks.";

/// What the handler needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct SlashSettings {
    pub verification_token: Option<SecretString>,
    pub allowed: AllowedConfig,
    /// `staffbot.random_seed`, for the review sampling of tasks submitted from the App Home.
    pub random_seed: Option<u64>,
    /// `staffbot.policy` (the admin's lists show the adaptive policy's expected minutes).
    pub policy: crate::staffing::policy::Policy,
    /// Working hours as configured (`/staffbot availability` shows a worker's).
    pub working: crate::availability::WorkingRule,
}

/// An ephemeral reply with optional attachments.
pub fn reply(text: &Mrkdwn, attachments: Option<Value>) -> Value {
    let mut v = json!({"response_type": "ephemeral", "text": text.as_str()});
    if let Some(a) = attachments {
        v["attachments"] = a;
    }
    v
}

/// An ephemeral reply of text and blocks.
fn with_blocks((text, blocks): (Mrkdwn, Value)) -> Value {
    let mut answer = reply(&text, None);
    answer["blocks"] = blocks;
    answer
}

/// The reply to `staff`/`restaff`: the command as a header, then an attachment with the
/// outcome. Every text is Slack-escaped (the user's own words are echoed).
fn outcome(header: &str, result: Result<String, String>) -> Value {
    let attachment = match result {
        Ok(text) => {
            json!({"color": "good", "title": "Success", "text": Mrkdwn::text(&text).as_str()})
        }
        Err(text) => {
            json!({"color": "danger", "title": "Error", "text": Mrkdwn::text(&text).as_str()})
        }
    };
    reply(&Mrkdwn::text(header), Some(json!([attachment])))
}

/// One command of a help reply: the command as code, then what it does.
fn help_attachment(pretext: &str, text: &str) -> Value {
    json!({
        "pretext": Mrkdwn::text(pretext).as_str(),
        "text": Mrkdwn::text(text).as_str(),
        "mrkdwn_in": ["text", "pretext"]
    })
}

/// `tasks`, the command every worker may use.
fn tasks_help() -> Value {
    help_attachment(
        "`/staffbot tasks`",
        "List your tasks and open offers (only you see the answer; any worker may ask)",
    )
}

/// `availability`, which every worker may use too.
fn availability_help() -> Value {
    help_attachment(
        "`/staffbot availability`",
        "See and edit the hours you can work this week and next, and your working hours (only you see the answer)",
    )
}

/// `help` for a staffing admin: every command.
pub fn help_reply() -> Value {
    reply(
        &Mrkdwn::text(HELP_TEXT),
        Some(json!([
            help_attachment(
                "`/staffbot staff <task-id>`",
                "Ask qualified experts to work on the given `<task-id>`."
            ),
            help_attachment(
                "`/staffbot restaff <task-id> <username>`",
                "Remove the given `<username>` from the task and find another qualified expert"
            ),
            tasks_help(),
            availability_help(),
        ])),
    )
}

/// `help` for a worker who is not an admin: the commands they may use.
pub fn worker_help_reply() -> Value {
    reply(
        &Mrkdwn::text(WORKER_HELP_TEXT),
        Some(json!([tasks_help(), availability_help()])),
    )
}

/// Equality that takes the same time whatever the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The verification-token check every payload goes through: true when no token is configured,
/// or when the payload's `token` equals it (compared in constant time; a missing token fails).
pub fn token_ok(expected: Option<&SecretString>, given: Option<&str>) -> bool {
    match expected {
        None => true,
        Some(expected) => constant_time_eq(
            given.unwrap_or("").as_bytes(),
            expected.expose_secret().as_bytes(),
        ),
    }
}

/// The whitelists in Orchestra's order, with the payload field each one checks.
fn whitelists(allowed: &AllowedConfig) -> [(&'static str, &Option<Vec<String>>); 7] {
    [
        ("team_id", &allowed.team_ids),
        ("team_domain", &allowed.team_domains),
        ("channel_id", &allowed.channel_ids),
        ("channel_name", &allowed.channel_names),
        ("user_id", &allowed.user_ids),
        ("user_name", &allowed.user_names),
        ("command", &allowed.commands),
    ]
}

/// Token, whitelists, then the caller's admin flag; `Err` is the refusal text.
async fn authorize<C: ConnectionTrait>(
    conn: &C,
    settings: &SlashSettings,
    cmd: &SlashCommand,
) -> Result<Result<worker::Model, String>, DbErr> {
    if !token_ok(settings.verification_token.as_ref(), cmd.token.as_deref()) {
        return Ok(Err(NOT_AUTHORIZED.to_string()));
    }
    for (field, list) in whitelists(&settings.allowed) {
        let Some(list) = list else { continue };
        match cmd.field(field) {
            None => return Ok(Err(format!("{field} is missing"))),
            Some(value) if !list.iter().any(|v| v == value) => {
                return Ok(Err(format!("Field {field} did not validate: {value}")));
            }
            Some(_) => {}
        }
    }
    let Some(user_id) = cmd.user_id.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(Err(NOT_AUTHORIZED.to_string()));
    };
    Ok(workers::by_slack_id(conn, user_id)
        .await?
        .ok_or_else(|| NOT_AUTHORIZED.to_string()))
}

/// Runs one slash command inside `conn` (the caller's transaction) and returns the ack payload:
/// the caller authorised here, the command run by [`crate::handlers::slash`], its answer
/// rendered. Only failures that must roll the transaction back are errors (the database's,
/// stored data that cannot be read); everything a user can cause is a reply.
pub async fn handle<C: ConnectionTrait>(
    conn: &C,
    settings: &SlashSettings,
    cmd: &SlashCommand,
    now: DateTime<Utc>,
) -> Result<Value, Error> {
    let caller = match authorize(conn, settings, cmd).await? {
        Ok(caller) => caller,
        Err(refusal) => return Ok(reply(&Mrkdwn::text(&refusal), None)),
    };
    let text = cmd.text.as_deref().unwrap_or("");
    let answer =
        handlers::slash::run(conn, &caller, text, settings.policy, settings.working, now).await?;
    Ok(match answer {
        SlashAnswer::NotAuthorized => reply(&Mrkdwn::text(NOT_AUTHORIZED), None),
        SlashAnswer::WorkerHelp => worker_help_reply(),
        SlashAnswer::Help => help_reply(),
        SlashAnswer::Tasks(home) => with_blocks(super::render::tasks_message(&home)),
        SlashAnswer::Availability(home) => with_blocks(super::render::availability_message(&home)),
        SlashAnswer::NotUnderstood { text } => {
            let mut answer = crate::mrkdwn!("Sorry! We couldn't process your command: {}", text);
            answer.push(&Mrkdwn::text(&format!("\n{}", usage_for(&text))));
            reply(&answer, None)
        }
        SlashAnswer::Outcome { header, result } => outcome(&header, result),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(
            outcome(
                "staff 4",
                Ok("Got it! I will start staffing task 4!".into())
            ),
            json!({"response_type": "ephemeral", "text": "staff 4", "attachments": [
                {"color": "good", "title": "Success", "text": "Got it! I will start staffing task 4!"}]})
        );
        assert_eq!(
            help_reply()["attachments"][1]["pretext"],
            "`/staffbot restaff &lt;task-id&gt; &lt;username&gt;`"
        );
    }
}
