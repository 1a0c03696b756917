//! The mailbox over IMAP: where it is (`email.imap_url`), connecting and logging in, one round
//! over the new messages, and the loop that runs rounds (IDLE where the server has it) under
//! the `mail` lease.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};

use super::answer::{InboxReport, Verdict, handle};
use super::read::parse;
use crate::clock::Clock;
use crate::config::{EmailConfig, NoticeSettings};
use crate::email::EmailSettings;
use crate::lease::LeaseProof;
use crate::staffing::respond::ClickOutcome;

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

/// Waits for new mail on `session`: IMAP IDLE for up to `wait` where the server has it, else
/// `wait`. None when the connection broke (the next round reconnects).
pub async fn wait_for_mail(
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
