//! Reading a worker's answer out of an email reply (pure functions of the message's parts): which
//! offer it answers (the token in the `Reply-To` plus-address it was sent to, or in the subject),
//! what it says (the first non-quoted word of the body, else of the subject), and whether it was
//! written by a person at all (auto-replies and bounces are ignored).

/// What a reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject,
}

/// The words that answer an offer (case-insensitive).
fn word_answer(word: &str) -> Option<Answer> {
    let word = word
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    match word.as_str() {
        "accept" | "accepted" | "yes" => Some(Answer::Accept),
        "reject" | "rejected" | "decline" | "no" => Some(Answer::Reject),
        _ => None,
    }
}

/// The first word of the body that is not quoted (`>` lines are the message replied to), or
/// None when every line is blank or quoted.
fn first_body_word(body: &str) -> Option<&str> {
    body.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('>'))
        .find_map(|line| line.split_whitespace().next())
}

/// The subject without its `Re:`/`Fwd:` prefixes (in any case, repeated).
fn bare_subject(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(prefix) = ["re:", "aw:", "fwd:", "fw:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(**p))
        else {
            return s;
        };
        s = s[prefix.len()..].trim_start();
    }
}

/// The answer a reply gives: the first non-quoted word of the body, else the first word of the
/// subject (a `mailto:` link's subject, say). None when neither is an answer.
pub fn answer(body: &str, subject: &str) -> Option<Answer> {
    first_body_word(body).and_then(word_answer).or_else(|| {
        bare_subject(subject)
            .split_whitespace()
            .next()
            .and_then(word_answer)
    })
}

/// Characters of a reply token.
pub use crate::notify::TOKEN_LEN;

fn is_token(s: &str) -> bool {
    s.len() == TOKEN_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// How a token is shown in a subject: `[#token]`.
pub fn subject_tag(token: &str) -> String {
    format!("[#{token}]")
}

/// `local+token@domain` for the reply address `local@domain`.
pub fn plus_address(reply_to: &str, token: &str) -> String {
    match reply_to.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => format!("{reply_to}+{token}"),
    }
}

/// The offer token a reply carries: in a recipient address `local+token@…` whose `local` is the
/// reply address's (any case), else in the subject's `[#token]`.
pub fn token(recipients: &[String], subject: &str, reply_to: &str) -> Option<String> {
    let local = reply_to
        .rsplit_once('@')
        .map_or(reply_to, |(l, _)| l)
        .to_ascii_lowercase();
    let from_address = recipients.iter().find_map(|address| {
        let address = address.to_ascii_lowercase();
        let (user, _) = address.rsplit_once('@')?;
        let (base, token) = user.split_once('+')?;
        (base == local && is_token(token)).then(|| token.to_string())
    });
    from_address.or_else(|| {
        let start = subject.find("[#")? + 2;
        let end = start + subject[start..].find(']')?;
        let token = subject[start..end].trim().to_ascii_lowercase();
        is_token(&token).then_some(token)
    })
}

/// What the headers of a message say about who wrote it.
#[derive(Debug, Clone, Default)]
pub struct Origin<'a> {
    /// `Auto-Submitted` (RFC 3834), if present.
    pub auto_submitted: Option<&'a str>,
    /// `Precedence`, if present.
    pub precedence: Option<&'a str>,
    /// Whether an `X-Autoreply`, `X-Autorespond` or `X-Auto-Response-Suppress` header is present.
    pub autoreply_header: bool,
    /// The `Content-Type` (`multipart/report` is a delivery report).
    pub content_type: Option<String>,
    /// The `From` address.
    pub from: Option<&'a str>,
    /// `Return-Path`, if present (`<>` for a bounce).
    pub return_path: Option<&'a str>,
}

/// Why a message is not a person's answer, if it is not: an auto-reply (RFC 3834's
/// `Auto-Submitted`, `Precedence: bulk`, vacation headers) or a bounce (a delivery report, the
/// mailer daemon, an empty return path).
pub fn automatic(origin: &Origin<'_>) -> Option<&'static str> {
    if origin
        .auto_submitted
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
    {
        return Some("auto-submitted");
    }
    if origin.precedence.is_some_and(|p| {
        matches!(
            p.trim().to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list" | "auto_reply"
        )
    }) || origin.autoreply_header
    {
        return Some("auto-reply");
    }
    let report = origin
        .content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/report"));
    let daemon = origin.from.is_some_and(|f| {
        let local = f.split('@').next().unwrap_or("").to_ascii_lowercase();
        local == "mailer-daemon" || local == "postmaster"
    });
    let null_path = origin
        .return_path
        .is_some_and(|p| p.trim().trim_matches(['<', '>']).is_empty());
    (report || daemon || null_path).then_some("bounce")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_unquoted_word_answers() {
        assert_eq!(answer("Accept\n\n> offer", "Re: x"), Some(Answer::Accept));
        assert_eq!(answer("  yes please", ""), Some(Answer::Accept));
        assert_eq!(answer("REJECT.", ""), Some(Answer::Reject));
        assert_eq!(answer("No, sorry", ""), Some(Answer::Reject));
        assert_eq!(answer("> accept\nmaybe later", ""), None);
        // Nothing but the quote: the subject (a mailto link's) answers.
        assert_eq!(
            answer("> quoted\n>> more", "Re: ACCEPT [#x]"),
            Some(Answer::Accept)
        );
        assert_eq!(answer("", "reject"), Some(Answer::Reject));
        assert_eq!(answer("Hello there", "Re: A new task"), None);
    }

    #[test]
    fn tokens_come_from_the_plus_address_then_the_subject() {
        let t = "abcdefghij0123456789";
        let reply_to = "staffbot@example.com";
        assert_eq!(
            plus_address(reply_to, t),
            format!("staffbot+{t}@example.com")
        );
        let to = vec![format!("Staffbot+{}@Example.com", t.to_uppercase())];
        assert_eq!(token(&to, "", reply_to).as_deref(), Some(t));
        // Another mailbox's plus-address, or a short token, does not count.
        let other = vec![
            format!("someone+{t}@example.com"),
            "staffbot+abc@example.com".into(),
        ];
        assert_eq!(token(&other, "", reply_to), None);
        let subject = format!("Re: A new task is available for you {}", subject_tag(t));
        assert_eq!(token(&other, &subject, reply_to).as_deref(), Some(t));
        assert_eq!(token(&[], "Re: [#nope]", reply_to), None);
    }

    #[test]
    fn auto_replies_and_bounces_are_recognised() {
        let person = Origin {
            from: Some("rob@example.com"),
            auto_submitted: Some("no"),
            ..Default::default()
        };
        assert_eq!(automatic(&person), None);
        let vacation = Origin {
            auto_submitted: Some("auto-replied"),
            ..Default::default()
        };
        assert_eq!(automatic(&vacation), Some("auto-submitted"));
        let bulk = Origin {
            precedence: Some("Bulk"),
            ..Default::default()
        };
        assert_eq!(automatic(&bulk), Some("auto-reply"));
        let bounce = Origin {
            from: Some("MAILER-DAEMON@example.com"),
            ..Default::default()
        };
        assert_eq!(automatic(&bounce), Some("bounce"));
        let report = Origin {
            content_type: Some("multipart/report; report-type=delivery-status".into()),
            ..Default::default()
        };
        assert_eq!(automatic(&report), Some("bounce"));
        let null = Origin {
            return_path: Some("<>"),
            ..Default::default()
        };
        assert_eq!(automatic(&null), Some("bounce"));
    }
}
