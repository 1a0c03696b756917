//! The in-memory workspace a test sets up: users (and their time zones), private channels
//! and their members.

use crate::FakeSlack;
use crate::state;

impl FakeSlack {
    /// Adds (or renames) a user, known to `users.info` and to the invite/kick checks.
    pub fn add_user(&self, id: &str, name: &str) {
        self.inner.update(|s| {
            s.users.insert(id.to_string(), name.to_string());
        });
    }

    /// Sets user `id`'s time zone as `users.info` tells it: an IANA name (`Europe/Berlin`) and
    /// its offset from UTC in seconds (Slack's `tz_offset`).
    pub fn set_user_tz(&self, id: &str, tz: &str, offset_seconds: i64) {
        self.inner.update(|s| {
            s.user_tz
                .insert(id.to_string(), (tz.to_string(), offset_seconds));
        });
    }

    /// Adds (or replaces) a private channel with these human members. The bot is a member
    /// unless [`FakeSlack::remove_bot_from`] is called.
    pub fn add_channel(&self, id: &str, name: &str, members: &[&str]) {
        self.inner.update(|s| {
            s.channels.insert(
                id.to_string(),
                state::Channel {
                    name: name.to_string(),
                    members: members.iter().map(|m| m.to_string()).collect(),
                    bot_member: true,
                    is_im: false,
                },
            );
        });
    }

    /// Takes the bot out of a channel (no-op for an unknown channel).
    pub fn remove_bot_from(&self, channel: &str) {
        self.inner.update(|s| {
            if let Some(c) = s.channels.get_mut(channel) {
                c.bot_member = false;
            }
        });
    }

    /// The human members of a channel, sorted (the bot is not listed). Empty for an unknown
    /// channel.
    pub fn channel_members(&self, channel: &str) -> Vec<String> {
        self.inner.read(|s| {
            s.channels
                .get(channel)
                .map(|c| c.members.iter().cloned().collect())
                .unwrap_or_default()
        })
    }
}
