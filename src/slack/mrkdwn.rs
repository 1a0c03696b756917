//! Text for Slack, escaped in one place.
//!
//! Slack reads `&`, `<` and `>` in message text as control characters: `<…>` is a link, a
//! mention or a channel reference, `&amp;`/`&lt;`/`&gt;` are the escapes. Every text staffbot
//! sends (a message's `text`, `mrkdwn` and `plain_text` fields, attachments, ephemeral replies)
//! is a [`Mrkdwn`], and a [`Mrkdwn`] can only be built through this module: what users and
//! workflow files wrote, and staffbot's own wording, is escaped; the only markup that passes
//! through is what staffbot builds on purpose ([`Mention`], [`ChannelLink`], an already-built
//! [`Mrkdwn`]).
//!
//! Slack's published limits are kept here too: [`Mrkdwn::truncated`] shortens a text with `…`
//! without cutting an escape or a mention in half.

use std::fmt;

/// Text in Slack's markup, safe to send as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mrkdwn(String);

/// A part of a [`mrkdwn!`](crate::mrkdwn) text.
pub trait Piece: Sync {
    fn push_to(&self, out: &mut String);
}

/// Escapes Slack's three control characters.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// Slack's escaping of `text` (for callers that build JSON by hand, e.g. tests).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

impl Piece for str {
    fn push_to(&self, out: &mut String) {
        escape_into(self, out);
    }
}

impl Piece for String {
    fn push_to(&self, out: &mut String) {
        escape_into(self, out);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

macro_rules! number_pieces {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn push_to(&self, out: &mut String) {
                out.push_str(&self.to_string());
            }
        }
    )*};
}
number_pieces!(i32, i64, u32, u64, usize);

/// Already safe: passes through unchanged.
impl Piece for Mrkdwn {
    fn push_to(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

/// A detailed description: its text escaped, the markup its template asked for as it is.
impl Piece for crate::messages::Details {
    fn push_to(&self, out: &mut String) {
        for part in self.parts() {
            match part {
                crate::messages::DetailPart::Text(t) => escape_into(t, out),
                crate::messages::DetailPart::Markup(m) => out.push_str(m),
            }
        }
    }
}

/// True for the ids Slack gives users, channels and teams (`U0ABC…`, `C…`, `G…`, `W…`): letters,
/// digits and `_`, nothing Slack reads as markup.
fn is_slack_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `<@U…>`: a mention of a Slack user (escaped as text if `id` is not an id).
#[derive(Debug, Clone, Copy)]
pub struct Mention<'a>(pub &'a str);

impl Piece for Mention<'_> {
    fn push_to(&self, out: &mut String) {
        if is_slack_id(self.0) {
            out.push_str("<@");
            out.push_str(self.0);
            out.push('>');
        } else {
            escape_into(self.0, out);
        }
    }
}

/// `<#C…>`: a link to a channel (escaped as text if `id` is not an id).
#[derive(Debug, Clone, Copy)]
pub struct ChannelLink<'a>(pub &'a str);

impl Piece for ChannelLink<'_> {
    fn push_to(&self, out: &mut String) {
        if is_slack_id(self.0) {
            out.push_str("<#");
            out.push_str(self.0);
            out.push('>');
        } else {
            escape_into(self.0, out);
        }
    }
}

/// `>>>`: the rest of the message is a block quote.
#[derive(Debug, Clone, Copy)]
pub struct QuoteRest;

impl Piece for QuoteRest {
    fn push_to(&self, out: &mut String) {
        out.push_str(">>>");
    }
}

/// `<slack://app?team=T…&id=A…&tab=home|label>`: a link that opens an app's Home tab (nothing
/// but the escaped label if the team or app id is not an id).
#[derive(Debug, Clone, Copy)]
pub struct AppHomeLink<'a> {
    pub team_id: &'a str,
    pub app_id: &'a str,
    pub label: &'a str,
}

impl Piece for AppHomeLink<'_> {
    fn push_to(&self, out: &mut String) {
        if !is_slack_id(self.team_id) || !is_slack_id(self.app_id) {
            escape_into(self.label, out);
            return;
        }
        out.push_str("<slack://app?team=");
        out.push_str(self.team_id);
        out.push_str("&id=");
        out.push_str(self.app_id);
        out.push_str("&tab=home|");
        escape_into(self.label, out);
        out.push('>');
    }
}

impl Mrkdwn {
    /// Plain text (escaped).
    pub fn text(text: &str) -> Mrkdwn {
        let mut out = String::with_capacity(text.len());
        escape_into(text, &mut out);
        Mrkdwn(out)
    }

    /// `template` with each `{}` replaced by the next piece; `{{` and `}}` are literal braces.
    /// The template's own text is escaped too (staffbot's wording may contain `<task-id>`).
    /// Use [`mrkdwn!`](crate::mrkdwn).
    pub fn format(template: &str, pieces: &[&dyn Piece]) -> Mrkdwn {
        let mut out = String::with_capacity(template.len() + 16 * pieces.len());
        let mut pieces = pieces.iter();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    out.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    out.push('}');
                }
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    if let Some(piece) = pieces.next() {
                        piece.push_to(&mut out);
                    }
                }
                c => escape_into(c.encode_utf8(&mut [0; 4]), &mut out),
            }
        }
        Mrkdwn(out)
    }

    /// Appends a piece.
    pub fn push(&mut self, piece: &dyn Piece) {
        piece.push_to(&mut self.0);
    }

    /// Appends a line break and a piece (no break before the first).
    pub fn push_line(&mut self, piece: &dyn Piece) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        piece.push_to(&mut self.0);
    }

    /// Lines joined with `\n`.
    pub fn lines(lines: impl IntoIterator<Item = Mrkdwn>) -> Mrkdwn {
        let mut out = Mrkdwn::default();
        for line in lines {
            out.push_line(&line);
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in characters, as Slack counts them (of the escaped text: an `&amp;` is five).
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    /// At most `max` characters: a longer text is cut and ends with `…`, never inside an
    /// escape (`&amp;`) or a mention (`<@U1>`).
    pub fn truncated(self, max: usize) -> Mrkdwn {
        if max == 0 {
            return Mrkdwn::default();
        }
        if self.0.chars().count() <= max {
            return self;
        }
        let mut cut = self
            .0
            .char_indices()
            .nth(max - 1)
            .map(|(i, _)| i)
            .unwrap_or(self.0.len());
        let head = &self.0[..cut];
        // Back off to before an escape or markup that the cut would split.
        let open_amp = head.rfind('&').filter(|&i| !head[i..].contains(';'));
        let open_angle = head.rfind('<').filter(|&i| !head[i..].contains('>'));
        if let Some(i) = open_amp.into_iter().chain(open_angle).min() {
            cut = i;
        }
        let mut out = self.0[..cut].trim_end().to_string();
        out.push('…');
        Mrkdwn(out)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Mrkdwn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Mrkdwn> for String {
    fn from(m: Mrkdwn) -> String {
        m.0
    }
}

/// `mrkdwn!("Task {} ({}) is yours", id, display)`: a [`Mrkdwn`] from a template whose text
/// and pieces are escaped, except [`Mention`], [`ChannelLink`] and [`Mrkdwn`] pieces.
#[macro_export]
macro_rules! mrkdwn {
    ($template:literal $(, $piece:expr)* $(,)?) => {
        $crate::slack::mrkdwn::Mrkdwn::format(
            $template,
            &[$(&$piece as &dyn $crate::slack::mrkdwn::Piece),*],
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_and_wording_are_escaped_markup_is_not() {
        let m = crate::mrkdwn!(
            "{} <task-id> {} in {}: {}",
            Mention("U1"),
            "Q&A <draft>",
            ChannelLink("C9"),
            7i64
        );
        assert_eq!(
            m.as_str(),
            "<@U1> &lt;task-id&gt; Q&amp;A &lt;draft&gt; in <#C9>: 7"
        );
        assert_eq!(crate::mrkdwn!("{{}} {}", "a").as_str(), "{} a");
        // Not an id: shown as text, never as markup.
        assert_eq!(
            crate::mrkdwn!("{}", Mention("x> <!channel")).as_str(),
            "x&gt; &lt;!channel"
        );
    }

    #[test]
    fn quotes_and_home_links_are_the_only_markup_they_add() {
        let m = crate::mrkdwn!("*{}*\n{}a > b", "Done", QuoteRest);
        assert_eq!(m.as_str(), "*Done*\n>>>a &gt; b");
        let home = AppHomeLink {
            team_id: "T1",
            app_id: "A2",
            label: "Open <it>",
        };
        assert_eq!(
            crate::mrkdwn!("{}", home).as_str(),
            "<slack://app?team=T1&id=A2&tab=home|Open &lt;it&gt;>"
        );
        let forged = AppHomeLink {
            team_id: "T1&id=X",
            ..home
        };
        assert_eq!(crate::mrkdwn!("{}", forged).as_str(), "Open &lt;it&gt;");
    }

    #[test]
    fn truncation_never_splits_an_escape_or_a_mention() {
        let m = Mrkdwn::text("ab&cd");
        assert_eq!(m.as_str(), "ab&amp;cd");
        assert_eq!(m.clone().truncated(4).as_str(), "ab…");
        assert_eq!(m.clone().truncated(7).as_str(), "ab…");
        assert_eq!(m.clone().truncated(8).as_str(), "ab&amp;…");
        assert_eq!(m.clone().truncated(100).as_str(), "ab&amp;cd");
        let m = crate::mrkdwn!("hi {} there", Mention("U123"));
        assert_eq!(m.clone().truncated(6).as_str(), "hi…");
        let long = Mrkdwn::text(&"x".repeat(5000)).truncated(3000);
        assert_eq!(long.chars(), 3000);
        assert!(long.as_str().ends_with('…'));
    }
}
