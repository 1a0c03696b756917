//! Status and role enums, stored as snake_case text (the same names `--json` prints).

use std::fmt;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $(
                #[sea_orm(string_value = $text)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// `("Name::Variant", "stored text")` for every variant (see [`sql`]).
            const SQL_NAMES: &'static [(&'static str, &'static str)] =
                &[$((concat!(stringify!($name), "::", stringify!($variant)), $text)),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Task status (behaviour §4.1).
    TaskStatus {
        AwaitingProcessing = "awaiting_processing",
        Processing = "processing",
        PendingReview = "pending_review",
        Reviewing = "reviewing",
        PostReviewProcessing = "post_review_processing",
        Complete = "complete",
        Aborted = "aborted",
    }
);

impl TaskStatus {
    /// Orchestra's display string, e.g. "Pending Review".
    pub fn display_name(self) -> &'static str {
        match self {
            TaskStatus::AwaitingProcessing => "Awaiting Processing",
            TaskStatus::Processing => "Processing",
            TaskStatus::PendingReview => "Pending Review",
            TaskStatus::Reviewing => "Reviewing",
            TaskStatus::PostReviewProcessing => "Post-review Processing",
            TaskStatus::Complete => "Complete",
            TaskStatus::Aborted => "Aborted",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Complete | TaskStatus::Aborted)
    }
}

text_enum!(
    ProjectStatus {
        Active = "active",
        Paused = "paused",
        Completed = "completed",
        Aborted = "aborted",
    }
);

impl ProjectStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, ProjectStatus::Completed | ProjectStatus::Aborted)
    }
}

text_enum!(
    AssignmentStatus {
        Processing = "processing",
        Submitted = "submitted",
        Failed = "failed",
    }
);

text_enum!(
    /// The role a certification is held at; counter 0 needs `entry_level`, counters ≥ 1 `reviewer`.
    Role {
        EntryLevel = "entry_level",
        Reviewer = "reviewer",
    }
);

impl Role {
    pub fn for_counter(counter: i32) -> Role {
        if counter == 0 {
            Role::EntryLevel
        } else {
            Role::Reviewer
        }
    }
}

text_enum!(
    RequestStatus {
        Sending = "sending",
        DoneSending = "done_sending",
        Closed = "closed",
    }
);

text_enum!(
    RequestCause {
        User = "user",
        TaskPolicy = "task_policy",
        Restaff = "restaff",
    }
);

impl RequestCause {
    /// Orchestra's wording ("user", "task policy", "restaff").
    pub fn description(self) -> &'static str {
        match self {
            RequestCause::User => "user",
            RequestCause::TaskPolicy => "task policy",
            RequestCause::Restaff => "restaff",
        }
    }
}

text_enum!(
    InquiryMethod {
        Slack = "slack",
        PreviouslyOptedIn = "previously_opted_in",
    }
);

text_enum!(
    OutboxStatus {
        Pending = "pending",
        Sent = "sent",
        Failed = "failed",
    }
);

text_enum!(
    /// The kind of a step's dependency on another step (`step_dependencies.kind`):
    /// `creation_depends_on` or `submission_depends_on` in `version.json`.
    DependencyKind {
        Creation = "creation",
        Submission = "submission",
    }
);

text_enum!(
    /// How a worker hears about offers, reminders and their tasks' status (issue 16).
    Notify {
        Slack = "slack",
        Email = "email",
        Both = "both",
    }
);

// `text_enum!` cannot mark a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for Notify {
    fn default() -> Self {
        Notify::Slack
    }
}

impl Notify {
    /// Whether this preference includes Slack.
    pub fn slack(self) -> bool {
        matches!(self, Notify::Slack | Notify::Both)
    }

    /// Whether this preference includes email.
    pub fn email(self) -> bool {
        matches!(self, Notify::Email | Notify::Both)
    }
}

/// The enums whose stored text queries name, by type name.
const SQL_ENUMS: &[(&str, &[(&str, &str)])] = &[
    ("TaskStatus", TaskStatus::SQL_NAMES),
    ("ProjectStatus", ProjectStatus::SQL_NAMES),
    ("AssignmentStatus", AssignmentStatus::SQL_NAMES),
    ("Role", Role::SQL_NAMES),
    ("RequestStatus", RequestStatus::SQL_NAMES),
    ("RequestCause", RequestCause::SQL_NAMES),
    ("InquiryMethod", InquiryMethod::SQL_NAMES),
    ("OutboxStatus", OutboxStatus::SQL_NAMES),
    ("DependencyKind", DependencyKind::SQL_NAMES),
    ("Notify", Notify::SQL_NAMES),
];

/// SQL text with every `{Enum::Variant}` (e.g. `{RequestStatus::Closed}`) replaced by that
/// variant's stored text as an SQL literal (`'closed'`): queries name statuses and roles through
/// the enums, so the stored strings are written in one place. Built once per query (callers keep
/// the result in a `LazyLock`). Panics on a name that is not a variant: a typo in a query, which
/// a unit test finds first (it reads every name in `src/db`).
pub fn sql(template: &str) -> String {
    let names: Vec<(&str, &str)> = SQL_ENUMS
        .iter()
        .flat_map(|(_, n)| n.iter().copied())
        .collect();
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        match names.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                out.push('\'');
                out.push_str(text);
                out.push('\'');
            }
            None => panic!("not a stored enum variant in SQL: {{{name}}}"),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod sql_tests {
    #[test]
    fn enum_names_become_their_stored_text() {
        assert_eq!(
            super::sql("status <> {RequestStatus::Closed} AND role = {Role::EntryLevel}"),
            "status <> 'closed' AND role = 'entry_level'"
        );
        assert_eq!(super::sql("no names"), "no names");
    }

    /// Every `{Enum::Variant}` the store modules write names a stored variant: a typo fails
    /// here, not when its query first runs.
    #[test]
    fn every_enum_name_in_the_queries_is_a_variant() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("src/db") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for (at, _) in text.match_indices('{') {
                let rest = &text[at + 1..];
                let Some(end) = rest.find('}') else { continue };
                let name = &rest[..end];
                let Some((kind, variant)) = name.split_once("::") else {
                    continue;
                };
                let known = kind.chars().next().is_some_and(char::is_uppercase)
                    && variant.chars().all(char::is_alphanumeric)
                    && super::SQL_ENUMS.iter().any(|(k, _)| *k == kind);
                if !known {
                    continue;
                }
                // Panics (and so fails) on a name that is not a variant.
                let _ = super::sql(&format!("{{{name}}}"));
                checked += 1;
            }
        }
        assert!(
            checked > 40,
            "only {checked} names found: the scan reads nothing"
        );
    }
}
