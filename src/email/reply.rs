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

/// The worker's own words in a reply, line by line: without the email replied to, wherever it
/// is (above the answer, when bottom-posting, or below it): quoted lines (`>`), attribution
/// lines (`On Monday, staffbot wrote:`, also wrapped over two lines, and their French, German,
/// Spanish and Italian forms), and everything from an Outlook-style original (`-----Original
/// Message-----`, a `From:` header block) or a signature (`-- `) on.
pub fn own_lines(body: &str) -> Vec<String> {
    let lines: Vec<&str> = body.lines().map(str::trim).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with('>') {
            i += 1;
            continue;
        }
        if starts_original(line, lines.get(i + 1).copied()) {
            break;
        }
        if is_attribution(line) {
            i += 1;
            continue;
        }
        if let Some(next) = lines.get(i + 1)
            && !line.is_empty()
            && is_attribution(&format!("{line} {next}"))
            && !word_signals(line).any()
        {
            i += 2;
            continue;
        }
        if !line.is_empty() {
            out.push(line.to_string());
        }
        i += 1;
    }
    out
}

/// A line that introduces the quoted email: `On …, X wrote:` and its translations.
fn is_attribution(line: &str) -> bool {
    let lower = line.to_lowercase();
    let lower = lower.trim_end();
    [
        "wrote:",
        "wrote :",
        "écrit :",
        "écrit:",
        "schrieb:",
        "escribió:",
        "scritto:",
    ]
    .iter()
    .any(|end| lower.ends_with(end))
        && lower.len() < 300
}

/// Where the rest is the original email (Outlook's rule or header block) or a signature.
fn starts_original(line: &str, next: Option<&str>) -> bool {
    let lower = line.to_ascii_lowercase();
    if line == "--" || lower.starts_with("-----original message") || line.starts_with("_____") {
        return true;
    }
    lower.starts_with("from:")
        && next.is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            n.starts_with("sent:") || n.starts_with("date:") || n.starts_with("to:")
        })
}

/// What one line of a reply says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Signals {
    /// A word or phrase of acceptance (`accept`, `yes`, `I'll take it`, …).
    accept: bool,
    /// An explicit refusal (`reject`, `decline`, a leading `no`, `no thanks`, `I'll pass`, …).
    reject: bool,
    /// A negation that makes an acceptance doubtful (`not`, `can't`, `won't`, `no`, …).
    negation: bool,
    question: bool,
}

impl Signals {
    fn any(&self) -> bool {
        self.accept || self.reject || self.negation
    }
}

/// Idioms that contain a negation and mean nothing of the kind.
const IDIOMS: &[&str] = &[
    "no problem",
    "no problems",
    "no prob",
    "no worries",
    "not a problem",
    "no doubt",
    "why not",
];
const ACCEPT_WORDS: &[&str] = &[
    "accept",
    "accepted",
    "accepting",
    "yes",
    "yep",
    "yeah",
    "yup",
    "sure",
    "ok",
    "okay",
    "gladly",
    "absolutely",
];
const ACCEPT_PHRASES: &[&str] = &[
    "i'll take it",
    "i will take it",
    "i can take it",
    "i'll take this",
    "i'll do it",
    "i will do it",
    "i can do it",
    "count me in",
    "i'm in",
    "sign me up",
];
const REJECT_WORDS: &[&str] = &[
    "reject",
    "rejected",
    "rejecting",
    "decline",
    "declined",
    "declining",
];
const REJECT_PHRASES: &[&str] = &[
    "no thanks",
    "no thank you",
    "not interested",
    "i'll pass",
    "i will pass",
    "i pass",
];
const LEADING_NO: &[&str] = &["no", "nope", "nah"];
const NEGATIONS: &[&str] = &[
    "no", "nope", "nah", "not", "can't", "cannot", "won't", "don't", "unable", "never",
];

/// What `line` says, as words (in any case, curly apostrophes as straight ones).
fn word_signals(line: &str) -> Signals {
    let mut text = format!(" {} ", line.to_lowercase().replace(['\u{2019}', '`'], "'"));
    let question = text.contains('?');
    // Words only: punctuation (but the apostrophe) separates them.
    text = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text = format!(" {text} ");
    for idiom in IDIOMS {
        text = text.replace(&format!(" {idiom} "), " ");
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let has_phrase = |p: &&str| text.contains(&format!(" {p} "));
    let whole = text.trim();
    Signals {
        accept: words.iter().any(|w| ACCEPT_WORDS.contains(w))
            || ACCEPT_PHRASES.iter().any(has_phrase),
        reject: words.iter().any(|w| REJECT_WORDS.contains(w))
            || REJECT_PHRASES.iter().any(has_phrase)
            || words.first().is_some_and(|w| LEADING_NO.contains(w))
            || whole == "pass",
        negation: words.iter().any(|w| NEGATIONS.contains(w))
            || has_phrase(&"will not")
            || has_phrase(&"can not"),
        question,
    }
}

/// How sure a reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Nothing in it answers (a greeting, a signature): look further.
    Silent,
    Clear(Answer),
    /// It says something, but not clearly yes or no: ask.
    Unclear,
}

/// What one line says: an acceptance with no negation or refusal; an explicit refusal with no
/// acceptance that is not a question; else unclear (never a guessed refusal).
fn read_line(line: &str) -> Reading {
    let s = word_signals(line);
    if !s.any() {
        Reading::Silent
    } else if s.accept && !s.reject && !s.negation {
        Reading::Clear(Answer::Accept)
    } else if s.reject && !s.accept && !s.question {
        Reading::Clear(Answer::Reject)
    } else {
        Reading::Unclear
    }
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

/// The answer a reply gives, read as people write it: the first line of the worker's own words
/// ([`own_lines`]: the quoted email, wherever it is, and signatures left out) that says anything
/// decides; when none does, the first word of the subject (a `mailto:` link's `ACCEPT …`). None
/// (the worker is asked) when that line is not clearly an acceptance or a refusal.
pub fn answer(body: &str, subject: &str) -> Option<Answer> {
    for line in own_lines(body) {
        match read_line(&line) {
            Reading::Silent => continue,
            Reading::Clear(answer) => return Some(answer),
            Reading::Unclear => return None,
        }
    }
    let first = bare_subject(subject).split_whitespace().next()?;
    let word = first
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    match word.as_str() {
        "accept" | "yes" => Some(Answer::Accept),
        "reject" | "decline" | "no" => Some(Answer::Reject),
        _ => None,
    }
}

/// The text of an HTML reply without the email it quotes (`<blockquote>` elements, however
/// nested), for [`answer`].
pub fn html_without_quotes(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut depth = 0usize;
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        let opening = rest.starts_with("<blockquote")
            && rest[11..].starts_with(|c: char| c == '>' || c.is_whitespace());
        let closing = rest.starts_with("</blockquote");
        if opening || closing {
            if opening {
                depth += 1;
            } else {
                depth = depth.saturating_sub(1);
            }
            i += rest.find('>').map_or(rest.len(), |e| e + 1);
            continue;
        }
        let Some(c) = html[i..].chars().next() else {
            break;
        };
        if depth == 0 {
            out.push(c);
        }
        i += c.len_utf8();
    }
    out
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
    fn replies_are_read_as_people_write_them() {
        // Idioms with a "no" in them are not a refusal.
        assert_eq!(
            answer("No problem, I'll take it!", ""),
            Some(Answer::Accept)
        );
        assert_eq!(answer("Sure, no worries", ""), Some(Answer::Accept));
        // Bottom-posted: the attribution and the quote come first.
        let bottom = "On Monday, staffbot wrote:\n> Hello erin!\n> Reply ACCEPT or REJECT to this email.\n\nAccept\n";
        assert_eq!(answer(bottom, "Re: A new task"), Some(Answer::Accept));
        // An attribution wrapped over two lines, top-posted.
        let wrapped = "Hi,\n\nyes please\n\nOn Mon, Dec 7, 2026 at 9:00 AM staffbot <\nstaffbot@example.com> wrote:\n> No\n";
        assert_eq!(answer(wrapped, ""), Some(Answer::Accept));
        // Outlook's original below the answer; a signature.
        let outlook =
            "Decline, sorry.\n\nFrom: staffbot <staffbot@example.com>\nSent: Monday\nAccept";
        assert_eq!(answer(outlook, ""), Some(Answer::Reject));
        assert_eq!(answer("Hi!\n\n-- \nYes Inc.", "Re: x"), None);
        // Unsure: asked, never a guessed refusal.
        assert_eq!(answer("No idea what this is?", ""), None);
        assert_eq!(answer("I cannot accept", ""), None);
        assert_eq!(answer("I'm not sure", ""), None);
        assert_eq!(answer("Maybe tomorrow?", ""), None);
        // Clear refusals.
        assert_eq!(
            answer("No thanks, busy this week", ""),
            Some(Answer::Reject)
        );
        assert_eq!(answer("I'll pass", ""), Some(Answer::Reject));
    }

    #[test]
    fn html_quotes_are_left_out() {
        let html = "<div>Accept</div><div class=\"gmail_quote\">On Monday, staffbot wrote:<blockquote type=\"cite\"><p>Reply ACCEPT or REJECT</p><blockquote>No</blockquote></blockquote></div>";
        let text = html_without_quotes(html);
        assert_eq!(
            text,
            "<div>Accept</div><div class=\"gmail_quote\">On Monday, staffbot wrote:</div>"
        );
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
