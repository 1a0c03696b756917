//! Reading the answers: a loop (under the `mail` lease, like the other loops) reads new messages
//! from the mailbox over IMAP, answers each offer through the same handler as the Slack buttons
//! ([`crate::handlers::offer::answer`]), replies to the worker with the outcome, and moves the
//! message to `email.handled_mailbox`.
//!
//! **Each message is handled once**, across crashes and replicas: its `Message-ID` is stored in
//! the transaction that acts on it (`email_replies`), before it is moved. A message read again
//! (the process died after the commit and before the move, or another replica read it at the
//! same time) finds its id stored and is only moved.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};

use super::EmailSettings;
use super::reply::{self, Answer, Origin};
use crate::clock::Clock;
use crate::config::{EmailConfig, NoticeSettings};
use crate::db;
use crate::handlers::offer::{self, Via};
use crate::lease::LeaseProof;
use crate::messages::{MAX_REMINDER_ITEMS, Message, ReminderItem};
use crate::notify::EmailTo;
use crate::staffing::respond::{ClickOutcome, Responder};

/// One email read from the mailbox, as far as answering an offer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The `Message-ID` (without angle brackets); a hash of the message when it has none
    /// ([`hash_id`]).
    pub message_id: String,
    /// For a message without a `Message-ID`, the id releases before the fixed hash stored for
    /// it ([`legacy_hash_id`]): a message they handled is not handled again.
    pub legacy_id: Option<String>,
    pub from: Option<String>,
    /// Every address it was sent to (`To`, `Cc`, `Delivered-To`, `X-Original-To`).
    pub recipients: Vec<String>,
    pub subject: String,
    /// The plain-text body (the HTML part as text when there is no plain one).
    pub body: String,
    /// Why it is not a person's answer (an auto-reply, a bounce), if it is not.
    pub automatic: Option<&'static str>,
}

fn raw_header<'a>(message: &'a mail_parser::Message<'a>, name: &'a str) -> Option<&'a str> {
    message.header_raw(name).map(str::trim)
}

/// Parses a raw message.
pub fn parse(raw: &[u8]) -> Incoming {
    let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
        return Incoming {
            message_id: hash_id(raw),
            legacy_id: Some(legacy_hash_id(raw)),
            from: None,
            recipients: Vec::new(),
            subject: String::new(),
            body: String::new(),
            automatic: Some("unreadable"),
        };
    };
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|addr| addr.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut recipients = addresses(message.to());
    recipients.extend(addresses(message.cc()));
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        if let Some(v) = raw_header(&message, name) {
            recipients.push(v.trim_matches(['<', '>']).to_string());
        }
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let origin = Origin {
        auto_submitted: raw_header(&message, "Auto-Submitted"),
        precedence: raw_header(&message, "Precedence"),
        autoreply_header: ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"]
            .iter()
            .any(|h| raw_header(&message, h).is_some()),
        content_type: raw_header(&message, "Content-Type").map(str::to_string),
        from: from.as_deref(),
        return_path: raw_header(&message, "Return-Path"),
    };
    let automatic = reply::automatic(&origin);
    let message_id = message.message_id().map(str::to_string);
    Incoming {
        legacy_id: message_id.is_none().then(|| legacy_hash_id(raw)),
        message_id: message_id.unwrap_or_else(|| hash_id(raw)),
        from,
        recipients,
        subject: message.subject().unwrap_or_default().to_string(),
        body: body_of(&message),
        automatic,
    }
}

/// The plain-text body; for an HTML-only message, its HTML as text without the `<blockquote>`s
/// that quote the email replied to.
fn body_of(message: &mail_parser::Message<'_>) -> String {
    let html_only = message.text_part(0).is_some_and(|part| part.is_text_html());
    if html_only && let Some(html) = message.body_html(0) {
        return mail_parser::decoders::html::html_to_text(&reply::html_without_quotes(&html));
    }
    message
        .body_text(0)
        .map(|b| b.into_owned())
        .unwrap_or_default()
}

/// A stable id for a message without a `Message-ID`.
/// SHA-256, whose definition never changes: the id is stored (`email_replies`), and a message
/// read again by a later release must get the same one.
fn hash_id(raw: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(raw);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{}@sha256.no-message-id.staffbot", raw.len())
}

/// The id releases before [`hash_id`] gave a message without a `Message-ID`: Rust's
/// `DefaultHasher`, which Rust does not promise to keep across its releases, so this matches
/// what they stored only as long as the toolchain's hasher is unchanged. Read, never written.
fn legacy_hash_id(raw: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut h);
    format!("{:016x}.{}@no-message-id.staffbot", h.finish(), raw.len())
}

/// Claims `incoming` for handling: false when it was handled already, under its id or (a
/// message without a `Message-ID`) the id an older release stored for it.
async fn claim<C: sea_orm::ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    if let Some(legacy) = &incoming.legacy_id
        && db::email::verdict_of(conn, legacy).await?.is_some()
    {
        return Ok(false);
    }
    db::email::claim_reply(conn, &incoming.message_id, now).await
}

/// What handling one email decided (stored as `email_replies.verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled before (by this process or another replica): only moved.
    AlreadyHandled,
    /// Not a person's answer (an auto-reply, a bounce): ignored.
    Automatic(&'static str),
    /// No offer token, or a token of no offer: ignored.
    NoOffer,
    /// Sent from an address that is not the offer's worker's: ignored.
    Stranger,
    /// Neither ACCEPT nor REJECT: the worker is asked again.
    NotUnderstood,
    /// A worker's email that names no offer (a reply to a reminder, say): answered with their
    /// open offers and how to answer each.
    OffersListed,
    /// The answer was applied.
    Answered(ClickOutcome),
    /// The answer could not be honoured (the task changed): the worker is told why.
    Refused,
}

impl Verdict {
    pub fn as_str(&self) -> String {
        match self {
            Verdict::AlreadyHandled => "already handled".into(),
            Verdict::Automatic(why) => format!("ignored: {why}"),
            Verdict::NoOffer => "ignored: no offer".into(),
            Verdict::Stranger => "ignored: not the worker's address".into(),
            Verdict::NotUnderstood => "not understood".into(),
            Verdict::OffersListed => "no offer named: open offers listed".into(),
            Verdict::Answered(outcome) => format!("answered: {outcome:?}").to_lowercase(),
            Verdict::Refused => "refused".into(),
        }
    }
}

/// What one read of the mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InboxReport {
    /// Messages read.
    pub read: usize,
    /// Answers applied (accepts and rejects).
    pub answered: usize,
    /// Messages ignored (auto-replies, strangers, no offer) or handled before.
    pub ignored: usize,
    /// Messages moved to the handled mailbox.
    pub moved: usize,
    /// Messages that could not be handled now (the database failed): left for the next round.
    pub failed: usize,
}

/// Handles one email in one transaction, fenced by the `mail` lease: claims its `Message-ID`,
/// applies the answer it carries and queues the reply to the worker. Returns what it decided.
pub async fn handle(
    db: &DatabaseConnection,
    lease: &LeaseProof,
    incoming: &Incoming,
    settings: &EmailSettings,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Verdict, crate::error::Error> {
    crate::handlers::refusable(
        db,
        async |tx| {
            lease.fence(tx).await?;
            if !claim(tx, incoming, now).await? {
                return Ok(Verdict::AlreadyHandled);
            }
            let (verdict, inquiry) = decide(tx, incoming, settings, notices, now).await?;
            db::email::set_verdict(tx, &incoming.message_id, inquiry, &verdict.as_str()).await?;
            Ok(verdict)
        },
        async |tx, refusal| {
            // The answer could not be honoured: nothing of it is kept; the worker is told why,
            // and the message is recorded as handled.
            refuse(tx, lease, incoming, settings, &refusal.to_string(), now).await?;
            Ok(Verdict::Refused)
        },
    )
    .await
}

/// The reply to the worker of offer `click`, answering their email `incoming`.
fn reply_to_worker(
    incoming: &Incoming,
    click: &db::offers::Click,
    token: &str,
    message: Message,
) -> (String, crate::messages::Outgoing) {
    let to = EmailTo {
        to: &click.clicker_email,
        token: Some(token.to_string()),
        in_reply_to: Some(incoming.message_id.clone()),
        slack_user: click.clicker_slack_id.as_deref(),
        only_channel: false,
    };
    (
        format!("email-answer:{}", incoming.message_id),
        to.outgoing(message),
    )
}

/// Decides and applies what `incoming` says (inside the caller's transaction).
async fn decide<C: ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    settings: &EmailSettings,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<(Verdict, Option<i64>), crate::error::Error> {
    if let Some(why) = incoming.automatic {
        return Ok((Verdict::Automatic(why), None));
    }
    let Some(token) = reply::token(&incoming.recipients, &incoming.subject, &settings.reply_to)
    else {
        return list_open_offers(conn, incoming, now).await;
    };
    let Some(inquiry_id) = db::email::inquiry_of(conn, &token).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(click) = db::offers::click(conn, inquiry_id).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(from) = incoming.from.as_deref() else {
        return Ok((Verdict::Stranger, Some(inquiry_id)));
    };
    if !click.clicker_email.trim().eq_ignore_ascii_case(from.trim()) {
        tracing::warn!(
            inquiry_id,
            "an email reply to an offer came from another address than its worker's; ignored"
        );
        return Ok((Verdict::Stranger, Some(inquiry_id)));
    }
    let (verdict, message) = match reply::answer(&incoming.body, &incoming.subject) {
        None => (Verdict::NotUnderstood, Some(Message::ReplyNotUnderstood)),
        Some(answer) => {
            let accept = answer == Answer::Accept;
            let who = Responder::Email(from);
            let via = Via::Email { before: &click };
            let answered =
                offer::answer(conn, Some(inquiry_id), who, accept, via, notices, now).await?;
            (Verdict::Answered(answered.outcome), answered.reply)
        }
    };
    if let Some(message) = message {
        let (key, outgoing) = reply_to_worker(incoming, &click, &token, message);
        crate::outbox::enqueue(conn, &key, outgoing, now).await?;
    }
    Ok((verdict, Some(inquiry_id)))
}

/// An email that names no offer (a reply to a reminder, a new email): a worker (by the `From`
/// address) gets the list of their open offers, each with its answer links; anyone else is
/// ignored (no answer to strangers).
async fn list_open_offers<C: ConnectionTrait>(
    conn: &C,
    incoming: &Incoming,
    now: DateTime<Utc>,
) -> Result<(Verdict, Option<i64>), crate::error::Error> {
    let Some(from) = incoming.from.as_deref() else {
        return Ok((Verdict::NoOffer, None));
    };
    let Some(worker) = db::workers::by_email(conn, from).await? else {
        return Ok((Verdict::NoOffer, None));
    };
    let open = db::offers::due_reminders(conn, now, worker.id..worker.id + 1).await?;
    let items: Vec<ReminderItem> = open
        .iter()
        .take(MAX_REMINDER_ITEMS)
        .map(ReminderItem::from)
        .collect();
    let message = Message::OpenOffers {
        more: open.len().saturating_sub(items.len()),
        items,
    };
    let to = EmailTo {
        to: &worker.email,
        token: None,
        in_reply_to: Some(incoming.message_id.clone()),
        slack_user: worker.slack_user_id.as_deref(),
        only_channel: false,
    };
    let key = format!("email-answer:{}", incoming.message_id);
    crate::outbox::enqueue(conn, &key, to.outgoing(message), now).await?;
    Ok((Verdict::OffersListed, None))
}

/// Records `incoming` as handled with an answer that could not be honoured, and tells the
/// worker `reason`.
async fn refuse<C: ConnectionTrait>(
    conn: &C,
    lease: &LeaseProof,
    incoming: &Incoming,
    settings: &EmailSettings,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    lease.fence(conn).await?;
    if !claim(conn, incoming, now).await? {
        return Ok(());
    }
    let token = reply::token(&incoming.recipients, &incoming.subject, &settings.reply_to);
    let inquiry = match &token {
        Some(t) => db::email::inquiry_of(conn, t).await?,
        None => None,
    };
    db::email::set_verdict(conn, &incoming.message_id, inquiry, "refused").await?;
    if let (Some(token), Some(inquiry_id)) = (token, inquiry)
        && let Some(click) = db::offers::click(conn, inquiry_id).await?
    {
        let message = Message::ClickRefused {
            reason: reason.to_string(),
        };
        let (key, outgoing) = reply_to_worker(incoming, &click, &token, message);
        crate::outbox::enqueue(conn, &key, outgoing, now).await?;
    }
    Ok(())
}

/// Where and how to read the mailbox (`email.imap_url` and friends).
#[derive(Clone)]
pub struct ImapTarget {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub user: String,
    pub password: secrecy::SecretString,
    pub mailbox: String,
    pub handled_mailbox: String,
}

impl std::fmt::Debug for ImapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}@{}:{}/{}",
            if self.tls { "imaps" } else { "imap" },
            self.user,
            self.host,
            self.port,
            self.mailbox
        )
    }
}

/// What is wrong with `email.imap_url`.
#[derive(Debug, thiserror::Error)]
#[error("email.imap_url is not usable: {0}")]
pub struct ImapUrlError(String);

impl ImapTarget {
    /// The mailbox `config` names, or None when replies are not read (`imap_url` unset).
    pub fn from_config(config: &EmailConfig) -> Result<Option<ImapTarget>, ImapUrlError> {
        let Some(url) = &config.imap_url else {
            return Ok(None);
        };
        let parsed = url::Url::parse(url.expose())
            .map_err(|e| ImapUrlError(format!("{e} ({})", url.redacted())))?;
        let tls = match parsed.scheme() {
            "imaps" => true,
            "imap" => false,
            other => {
                return Err(ImapUrlError(format!(
                    "the scheme must be imaps:// or imap://, not {other}://"
                )));
            }
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| ImapUrlError("no host".into()))?
            .to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(parsed.username());
        if user.is_empty() {
            return Err(ImapUrlError("no user name (imaps://user@host)".into()));
        }
        let password = match (&config.imap_password, parsed.password()) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => secrecy::SecretString::from(decode(p)),
            (None, None) => {
                return Err(ImapUrlError(
                    "no password (in the URL or STAFFBOT_IMAP_PASSWORD)".into(),
                ));
            }
        };
        Ok(Some(ImapTarget {
            port: parsed.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            tls,
            user,
            password,
            mailbox: config.mailbox.clone(),
            handled_mailbox: config.handled_mailbox.clone(),
        }))
    }
}

/// A connection to the IMAP server, plain or TLS.
pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ImapIo for T {}

/// A logged-in IMAP session.
pub type Session = async_imap::Session<Box<dyn ImapIo>>;

/// Connects and logs in, with `timeout` for each step.
pub async fn connect(target: &ImapTarget, timeout: Duration) -> Result<Session, String> {
    let step = |what: &'static str| move |_| format!("{what}: timed out after {timeout:?}");
    let tcp = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(step("connecting"))?
    .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn ImapIo> = if target.tls {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("bad host name {}: {e}", target.host))?;
        let tls = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(step("TLS handshake"))?
        .map_err(|e| format!("TLS handshake with {}: {e}", target.host))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let mut client = async_imap::Client::new(stream);
    tokio::time::timeout(timeout, client.read_response())
        .await
        .map_err(step("reading the greeting"))?
        .map_err(|e| format!("reading the greeting: {e}"))?
        .ok_or_else(|| "the server closed the connection".to_string())?;
    let session = tokio::time::timeout(
        timeout,
        client.login(&target.user, target.password.expose_secret()),
    )
    .await
    .map_err(step("logging in"))?
    .map_err(|(e, _)| format!("login as {} refused: {e}", target.user))?;
    Ok(session)
}

/// Reads the mailbox with IMAP and answers what is in it.
pub struct Inbox {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub target: ImapTarget,
    pub settings: EmailSettings,
    pub notices: NoticeSettings,
    /// Bounds each IMAP step.
    pub timeout: Duration,
}

/// An IMAP failure, as text (never with the password).
fn imap_err(what: &str, e: impl std::fmt::Display) -> InboxError {
    InboxError::Imap(format!("{what}: {e}"))
}

/// Why a round over the mailbox stopped.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("IMAP {0}")]
    Imap(String),
    #[error(transparent)]
    Staffbot(#[from] crate::error::Error),
}

impl Inbox {
    /// One round: every message in the mailbox is handled (or found handled) and moved. Only
    /// the holder of the `mail` lease may run it.
    pub async fn run_once(
        &self,
        session: &mut Session,
        lease: &LeaseProof,
    ) -> Result<InboxReport, InboxError> {
        let mut report = InboxReport::default();
        session
            .select(&self.target.mailbox)
            .await
            .map_err(|e| imap_err("SELECT", e))?;
        let mut uids: Vec<u32> = session
            .uid_search("ALL")
            .await
            .map_err(|e| imap_err("SEARCH", e))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        for uid in uids {
            let raw = {
                let fetches: Vec<_> = session
                    .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                    .await
                    .map_err(|e| imap_err("FETCH", e))?
                    .try_collect()
                    .await
                    .map_err(|e| imap_err("FETCH", e))?;
                fetches.iter().find_map(|f| f.body().map(<[u8]>::to_vec))
            };
            let Some(raw) = raw else { continue };
            report.read += 1;
            let incoming = parse(&raw);
            let now = self.clock.now();
            let handled = handle(
                &self.db,
                lease,
                &incoming,
                &self.settings,
                &self.notices,
                now,
            )
            .await;
            let verdict = match handled {
                Ok(verdict) => verdict,
                Err(e) if crate::lease::is_lease_lost(&e) => return Err(e.into()),
                Err(e) => {
                    // Left in the mailbox for the next round; the others go on.
                    tracing::error!(uid, message_id = %incoming.message_id, "email reply not handled: {e}");
                    report.failed += 1;
                    continue;
                }
            };
            tracing::info!(uid, message_id = %incoming.message_id, verdict = %verdict.as_str(), "email read");
            match verdict {
                Verdict::Answered(
                    ClickOutcome::Won | ClickOutcome::Rejected | ClickOutcome::Late,
                ) => report.answered += 1,
                _ => report.ignored += 1,
            }
            self.move_handled(session, uid).await?;
            report.moved += 1;
        }
        Ok(report)
    }

    /// Moves message `uid` to the handled mailbox (created when missing); COPY and delete where
    /// the server has no MOVE.
    async fn move_handled(&self, session: &mut Session, uid: u32) -> Result<(), InboxError> {
        let to = &self.target.handled_mailbox;
        let set = uid.to_string();
        if session.uid_mv(&set, to).await.is_ok() {
            return Ok(());
        }
        // The folder may not exist yet (or MOVE is not supported): create it and copy.
        let _ = session.create(to).await;
        session
            .select(&self.target.mailbox)
            .await
            .map_err(|e| imap_err("SELECT", e))?;
        if session.uid_mv(&set, to).await.is_ok() {
            return Ok(());
        }
        session
            .uid_copy(&set, to)
            .await
            .map_err(|e| imap_err("COPY", e))?;
        let _: Vec<_> = session
            .uid_store(&set, "+FLAGS (\\Seen \\Deleted)")
            .await
            .map_err(|e| imap_err("STORE", e))?
            .try_collect()
            .await
            .map_err(|e| imap_err("STORE", e))?;
        let _: Vec<_> = session
            .uid_expunge(&set)
            .await
            .map_err(|e| imap_err("EXPUNGE", e))?
            .try_collect()
            .await
            .map_err(|e| imap_err("EXPUNGE", e))?;
        Ok(())
    }
}

/// The lease the mailbox loop runs under.
pub const LEASE: &str = "mail";

/// How the mailbox loop runs.
pub struct InboxLoop {
    pub inbox: Inbox,
    /// This process's name in leases.
    pub holder: String,
    pub lease_ttl: Duration,
    /// `email.poll_interval`: the wait between rounds without IDLE, and the longest IDLE.
    pub poll: Duration,
    /// Woken when a round queued replies.
    pub wake: Arc<tokio::sync::Notify>,
}

/// Waits for new mail on `session`: IMAP IDLE for up to `wait` where the server has it, else
/// `wait`. None when the connection broke (the next round reconnects).
async fn wait_for_mail(
    session: Session,
    idle: bool,
    wait: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<Session> {
    while session.unsolicited_responses.try_recv().is_ok() {}
    if !idle {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        return Some(session);
    }
    let mut handle = session.idle();
    if let Err(e) = handle.init().await {
        tracing::warn!("IMAP IDLE failed ({e}); reconnecting");
        return None;
    }
    {
        let (new_mail, stop) = handle.wait_with_timeout(wait);
        tokio::select! {
            _ = cancel.cancelled() => drop(stop),
            result = new_mail => if let Err(e) = result {
                tracing::warn!("IMAP IDLE broke ({e}); reconnecting");
            },
        }
    }
    match handle.done().await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!("ending IMAP IDLE failed ({e}); reconnecting");
            None
        }
    }
}

impl InboxLoop {
    /// Runs until `cancel`: while this process holds the `mail` lease, a round whenever new mail
    /// arrives (IMAP IDLE) or every `poll` (and at least every third of the lease's time to live,
    /// which renews it). IMAP failures are logged and retried with backoff.
    pub async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        let db = self.inbox.db.clone();
        let renew = self
            .poll
            .min(self.lease_ttl / 3)
            .max(Duration::from_millis(100));
        let mut session: Option<(Session, bool)> = None;
        let mut backoff = Duration::from_secs(1);
        while !cancel.is_cancelled() {
            let lease =
                match crate::lease::try_lease(&db, LEASE, &self.holder, self.lease_ttl).await {
                    Ok(Some(lease)) => lease,
                    other => {
                        if let Err(e) = other {
                            tracing::error!("mailbox loop: cannot take the lease: {e}");
                        }
                        if let Some((mut s, _)) = session.take() {
                            let _ = s.logout().await;
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(renew) => continue,
                        }
                    }
                };
            let (mut s, idle) = match session.take() {
                Some(open) => open,
                None => match connect(&self.inbox.target, self.inbox.timeout).await {
                    Ok(mut s) => {
                        let idle = s.capabilities().await.is_ok_and(|c| c.has_str("IDLE"));
                        (s, idle)
                    }
                    Err(e) => {
                        tracing::warn!("mailbox loop: {e}; retrying in {backoff:?}");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(300));
                        continue;
                    }
                },
            };
            match self.inbox.run_once(&mut s, &lease).await {
                Ok(report) => {
                    backoff = Duration::from_secs(1);
                    if report.read > 0 {
                        tracing::info!(
                            read = report.read,
                            answered = report.answered,
                            ignored = report.ignored,
                            failed = report.failed,
                            "mailbox read"
                        );
                        self.wake.notify_one();
                    }
                    session = wait_for_mail(s, idle, renew, &cancel)
                        .await
                        .map(|s| (s, idle));
                }
                Err(e) => {
                    tracing::warn!("mailbox loop: {e}; reconnecting in {backoff:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
        if let Some((mut s, _)) = session {
            let _ = s.logout().await;
        }
        if let Err(e) = crate::lease::release(&db, LEASE, &self.holder).await {
            tracing::warn!("mailbox loop: could not release the lease: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_a_message_id_gets_a_fixed_id_and_its_older_one() {
        let raw = b"From: erin@example.com\r\nSubject: Re: offer\r\n\r\naccept\r\n";
        let incoming = parse(raw);
        // SHA-256 of the raw bytes (as `sha256sum` prints it): the same in every release.
        assert_eq!(
            incoming.message_id,
            "3308fef0e0d320b92c19da97bbc847b1619a28ca793ba005785fd15743d1c0ed.54@sha256.no-message-id.staffbot"
        );
        assert_eq!(incoming.legacy_id, Some(legacy_hash_id(raw)));
        let with_id =
            parse(b"Message-ID: <m1@example.com>\r\nFrom: erin@example.com\r\n\r\nno\r\n");
        assert_eq!(
            (with_id.message_id.as_str(), with_id.legacy_id),
            ("m1@example.com", None)
        );
    }
}
