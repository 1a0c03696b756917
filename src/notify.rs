//! How a worker is reached (issue 16): by Slack, by email or both, as they prefer
//! (`workers.notify`) and as they can be; and the emails queued for them
//! ([`Outgoing::Email`], rendered and sent by [`crate::email`]), with their unguessable ids.

use crate::db::Notify;
use crate::messages::{Message, Outgoing};

/// How one worker is reached, given their preference and what they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach<'a> {
    pub slack: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl Reach<'_> {
    pub fn is_reachable(&self) -> bool {
        self.slack.is_some() || self.email.is_some()
    }
}

/// How a worker with preference `notify`, Slack id `slack_user_id` and address `email` is
/// reached when email is on (`email_on`) or off. Slack when they want it and have an id; email
/// when they want it, have an address and email is on; a worker who wants email only while email
/// is off is reached on Slack if they can be (better than not at all).
pub fn reach<'a>(
    notify: Notify,
    slack_user_id: Option<&'a str>,
    email: &'a str,
    email_on: bool,
) -> Reach<'a> {
    let email = (email_on && notify.email() && !email.trim().is_empty()).then_some(email);
    let slack = slack_user_id.filter(|_| notify.slack() || email.is_none());
    Reach { slack, email }
}

/// Characters of a reply token (and of a `Message-ID`'s local part).
pub const TOKEN_LEN: usize = 20;

/// A new unguessable token: [`TOKEN_LEN`] characters of `[a-z0-9]` (about 103 bits) from the
/// operating system's randomness.
pub fn new_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..TOKEN_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// An email to `to` carrying a message.
pub struct EmailTo<'a> {
    pub to: &'a str,
    /// The offer's reply token, when the email is about an offer.
    pub token: Option<String>,
    /// The `Message-ID` of the worker's email this one answers.
    pub in_reply_to: Option<String>,
    /// The worker's Slack id, when they use Slack too (the email links their App Home).
    pub slack_user: Option<&'a str>,
    /// Email is the only way this offer reaches the worker.
    pub only_channel: bool,
}

impl EmailTo<'_> {
    /// The outbox message, with a new `Message-ID` fixed now.
    pub fn outgoing(self, message: Message) -> Outgoing {
        Outgoing::Email {
            to: self.to.to_string(),
            message_id: new_token(),
            token: self.token,
            in_reply_to: self.in_reply_to,
            slack_user: self.slack_user.map(str::to_string),
            only_channel: self.only_channel,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_reached_as_they_prefer_and_can_be() {
        let r = reach(Notify::Slack, Some("U1"), "a@x.org", true);
        assert_eq!((r.slack, r.email), (Some("U1"), None));
        let r = reach(Notify::Both, Some("U1"), "a@x.org", true);
        assert_eq!((r.slack, r.email), (Some("U1"), Some("a@x.org")));
        let r = reach(Notify::Email, Some("U1"), "a@x.org", true);
        assert_eq!((r.slack, r.email), (None, Some("a@x.org")));
        // Email-only without Slack: still reachable.
        assert!(reach(Notify::Email, None, "a@x.org", true).is_reachable());
        // Email off: Slack when possible, else nobody.
        let r = reach(Notify::Email, Some("U1"), "a@x.org", false);
        assert_eq!((r.slack, r.email), (Some("U1"), None));
        assert!(!reach(Notify::Email, None, "a@x.org", false).is_reachable());
        assert!(!reach(Notify::Slack, None, "a@x.org", true).is_reachable());
        assert!(!reach(Notify::Email, None, " ", true).is_reachable());
    }

    #[test]
    fn new_tokens_are_distinct_and_well_formed() {
        let a = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{a}"
        );
        assert_ne!(a, new_token());
    }
}
