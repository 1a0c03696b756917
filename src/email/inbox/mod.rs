//! Reading the answers: a loop (under the `mail` lease, like the other loops) reads new messages
//! from the mailbox over IMAP, answers each offer through the same handler as the Slack buttons
//! ([`crate::handlers::offer::answer`]), replies to the worker with the outcome, and moves the
//! message to `email.handled_mailbox`.
//!
//! **Each message is handled once**, across crashes and replicas: its `Message-ID` is stored in
//! the transaction that acts on it (`email_replies`), before it is moved. A message read again
//! (the process died after the commit and before the move, or another replica read it at the
//! same time) finds its id stored and is only moved.

mod answer;
mod imap;
mod read;

pub use answer::{InboxReport, Verdict, handle};
pub use imap::{
    ImapIo, ImapTarget, ImapUrlError, Inbox, InboxError, LEASE, Session, connect, wait_for_mail,
};
pub use read::{Incoming, parse};
