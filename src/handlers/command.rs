//! The `/staffbot` command grammar (behaviour §7.3): case-insensitive, matched at the start of
//! the text, trailing text ignored; the first matching form wins.

/// A parsed `/staffbot` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `tasks`: the caller's tasks and open offers.
    Tasks,
    /// `availability`: the caller's availability and working hours, with an Edit button.
    Availability,
    /// `staff <task-id>`; the id is kept as the literal digits typed (used in replies).
    Staff {
        task: String,
    },
    /// `restaff <task-id> <username>`; `worker` is a username or a Slack mention.
    Restaff {
        task: String,
        worker: WorkerRef,
    },
}

/// How `restaff` names the worker to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerRef {
    /// A staffbot username or Slack username, as typed.
    Name(String),
    /// A mention, `<@U123>` or `<@U123|alice>` (what Slack sends with escaping on).
    Mention {
        user_id: String,
        label: Option<String>,
    },
}

impl WorkerRef {
    /// The text to show in replies: the name as typed, or the mention's label or id.
    pub fn display(&self) -> &str {
        match self {
            WorkerRef::Name(n) => n,
            WorkerRef::Mention { label: Some(l), .. } => l,
            WorkerRef::Mention { user_id, .. } => user_id,
        }
    }
}

fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    head.eq_ignore_ascii_case(word).then(|| &text[word.len()..])
}

/// One or more whitespace characters, then the rest.
fn after_whitespace(text: &str) -> Option<&str> {
    let trimmed = text.trim_start();
    (trimmed.len() < text.len()).then_some(trimmed)
}

fn digits(text: &str) -> Option<(&str, &str)> {
    let n = text.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| text.split_at(n))
}

fn is_username_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-')
}

fn worker_ref(text: &str) -> Option<WorkerRef> {
    if let Some(rest) = text.strip_prefix("<@") {
        let end = rest.find('>')?;
        let inner = &rest[..end];
        let (id, label) = match inner.split_once('|') {
            Some((id, label)) => (id, Some(label.to_string()).filter(|l| !l.is_empty())),
            None => (inner, None),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        return Some(WorkerRef::Mention {
            user_id: id.to_string(),
            label,
        });
    }
    let n: usize = text
        .chars()
        .take_while(|c| is_username_char(*c))
        .map(char::len_utf8)
        .sum();
    (n > 0).then(|| WorkerRef::Name(text[..n].to_string()))
}

/// Parses the `text` of a `/staffbot` invocation. `None` means "Sorry! We couldn't process your
/// command".
pub fn parse(text: &str) -> Option<Command> {
    if let Some(rest) = strip_word(text, "staff").and_then(after_whitespace)
        && let Some((task, _)) = digits(rest)
    {
        return Some(Command::Staff {
            task: task.to_string(),
        });
    }
    if let Some(rest) = strip_word(text, "restaff").and_then(after_whitespace)
        && let Some((task, rest)) = digits(rest)
        && let Some(rest) = after_whitespace(rest)
        && let Some(worker) = worker_ref(rest)
    {
        return Some(Command::Restaff {
            task: task.to_string(),
            worker,
        });
    }
    if strip_word(text, "help").is_some() {
        return Some(Command::Help);
    }
    if strip_word(text, "tasks").is_some() {
        return Some(Command::Tasks);
    }
    if strip_word(text, "availability").is_some() {
        return Some(Command::Availability);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(t: &str) -> Option<Command> {
        Some(Command::Staff { task: t.into() })
    }

    fn restaff(t: &str, name: &str) -> Option<Command> {
        Some(Command::Restaff {
            task: t.into(),
            worker: WorkerRef::Name(name.into()),
        })
    }

    #[test]
    fn orchestras_grammar() {
        let cases: &[(&str, Option<Command>)] = &[
            ("staff 2", staff("2")),
            ("STAFF 12", staff("12")),
            ("staff   7", staff("7")),
            ("staff\t7", staff("7")),
            ("staff 2 extra", staff("2")),
            ("staff 2x", staff("2")),
            ("staff 0042", staff("0042")),
            ("restaff 4 joshblum", restaff("4", "joshblum")),
            (
                "ReStaff 4 josh.blum+x@b12-io",
                restaff("4", "josh.blum+x@b12-io"),
            ),
            ("restaff 4 jöṡh trailing", restaff("4", "jöṡh")),
            ("help", Some(Command::Help)),
            ("HELP me", Some(Command::Help)),
            ("helpful", Some(Command::Help)),
            (" staff 2", None),
            ("staffing 2", None),
            ("staff abc", None),
            ("staff", None),
            ("staff ", None),
            ("", None),
            ("restaff 4", None),
            ("restaff x bob", None),
            ("restaff 4 !bob", None),
            ("unstaff 2", None),
        ];
        for (text, expected) in cases {
            assert_eq!(&parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn restaff_accepts_mentions() {
        assert_eq!(
            parse("restaff 4 <@U0ROB|rob>"),
            Some(Command::Restaff {
                task: "4".into(),
                worker: WorkerRef::Mention {
                    user_id: "U0ROB".into(),
                    label: Some("rob".into())
                }
            })
        );
        assert_eq!(
            parse("restaff 4 <@U0ROB>"),
            Some(Command::Restaff {
                task: "4".into(),
                worker: WorkerRef::Mention {
                    user_id: "U0ROB".into(),
                    label: None
                }
            })
        );
        assert_eq!(parse("restaff 4 <@U0ROB"), None);
        assert_eq!(parse("restaff 4 <@>"), None);
    }
}
