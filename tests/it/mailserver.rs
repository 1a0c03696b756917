//! Real mail servers on loopback for the email tests (reference/mail-servers.md): Dovecot serving
//! IMAP and delivering over LMTP into Maildirs, and a small SMTP server of the tests' own that
//! hands every message to Dovecot's LMTP (staffbot speaks real SMTP out, real IMAP in). Every
//! mailbox is `<name>@example.com` with password `secret`; plus-addresses (`staffbot+x@…`) are
//! delivered to the base mailbox.
//!
//! Without Dovecot (`dovecot-imapd`, `dovecot-lmtpd`) the tests are skipped with a message,
//! unless `STAFFBOT_REQUIRE_MAIL=1` (as in `.ci/run`), which makes them fail instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Every mailbox's password (distinctive, so a test can look for it in logs).
pub const PASSWORD: &str = "Pw7kQ2xLeakCanary";
const WAIT: Duration = Duration::from_secs(15);

/// The address of mailbox `name`.
pub fn address(name: &str) -> String {
    format!("{name}@example.com")
}

/// One message the SMTP server handed to Dovecot.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

pub struct MailServer {
    _dir: tempfile::TempDir,
    pid_file: PathBuf,
    pub imap_port: u16,
    lmtp: SocketAddr,
    pub smtp_port: u16,
    smtp: Option<tokio::task::JoinHandle<()>>,
    events_tx: mpsc::UnboundedSender<Delivered>,
    events: mpsc::UnboundedReceiver<Delivered>,
    /// Delivered messages not read yet, by mailbox (base address).
    pending: Vec<Delivered>,
    policy: SmtpPolicy,
}

/// What the SMTP server accepts: recipients whose mailbox exists (others get `550 5.1.1`), and,
/// when a password is set, only clients logged in with it (`AUTH PLAIN`/`LOGIN`, any user).
#[derive(Clone, Default)]
struct SmtpPolicy {
    mailboxes: Arc<Vec<String>>,
    password: Arc<std::sync::Mutex<Option<String>>>,
}

impl SmtpPolicy {
    fn password(&self) -> Option<String> {
        self.password.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Two distinct free ports: both listeners are held until both ports are known, so the kernel
/// cannot hand the same port out twice (Dovecot refuses a "duplicate listener").
fn two_free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("a bound address").port();
    (port(&a), port(&b))
}

fn dovecot_binary() -> Option<PathBuf> {
    ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl MailServer {
    /// Dovecot with mailboxes `names`, and the SMTP server in front of it. None (the test is
    /// skipped) when Dovecot is not installed and not required.
    pub async fn start(names: &[&str]) -> Option<MailServer> {
        let Some(dovecot) = dovecot_binary() else {
            assert!(
                std::env::var("STAFFBOT_REQUIRE_MAIL").as_deref() != Ok("1"),
                "STAFFBOT_REQUIRE_MAIL=1 but Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
            );
            eprintln!(
                "skipped: Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("staffbot-mail")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["mail", "run", "state"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        std::os::unix::fs::chown(d.join("mail"), Some(65534), Some(65534)).expect("chown");
        let users: String = names
            .iter()
            .map(|n| format!("{}:{{PLAIN}}{PASSWORD}\n", address(n)))
            .collect();
        std::fs::write(d.join("users"), users).expect("users");
        // Another test may take a port between our probe and Dovecot's bind: try fresh ports then.
        let mut attempts = 0;
        let (imap_port, lmtp_port) = loop {
            attempts += 1;
            let (imap_port, lmtp_port) = two_free_ports();
            let conf_path = Self::configure(d, imap_port, lmtp_port);
            // Dovecot's daemon keeps its stderr open: a file, not a pipe waited on.
            let errors = d.join("start.err");
            let status = std::process::Command::new(&dovecot)
                .arg("-c")
                .arg(&conf_path)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&errors).expect("start.err"))
                .status()
                .expect("dovecot runs");
            if status.success() {
                break (imap_port, lmtp_port);
            }
            let said = std::fs::read_to_string(&errors).unwrap_or_default();
            assert!(attempts < 5, "dovecot started: {status}: {said}");
        };
        // Dovecot forks into the background; wait until both listeners answer.
        for port in [imap_port, lmtp_port] {
            let deadline = tokio::time::Instant::now() + WAIT;
            while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "dovecot listens on {port}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut server = MailServer {
            pid_file: d.join("run").join("master.pid"),
            _dir: dir,
            imap_port,
            lmtp: SocketAddr::from(([127, 0, 0, 1], lmtp_port)),
            smtp_port: 0,
            smtp: None,
            events_tx,
            events,
            pending: Vec::new(),
            policy: SmtpPolicy {
                mailboxes: Arc::new(names.iter().map(|n| address(n)).collect()),
                password: Default::default(),
            },
        };
        server.start_smtp().await;
        Some(server)
    }

    /// Writes `dovecot.conf` into `d` for these ports; returns its path.
    fn configure(d: &std::path::Path, imap_port: u16, lmtp_port: u16) -> PathBuf {
        let conf = format!(
            r#"protocols = imap lmtp
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
recipient_delimiter = +
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/mail/%u allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"#,
            d = d.display()
        );
        let conf_path = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).expect("dovecot.conf");
        conf_path
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// `imap://<name>%40example.com:<PASSWORD>@127.0.0.1:<port>`.
    pub fn imap_url(&self, name: &str) -> String {
        format!(
            "imap://{}:{PASSWORD}@127.0.0.1:{}",
            address(name).replace('@', "%40"),
            self.imap_port
        )
    }

    /// Starts (again) the SMTP server, on the same port as before if it ran already.
    pub async fn start_smtp(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.smtp_port))
            .await
            .expect("SMTP port");
        self.smtp_port = listener.local_addr().expect("addr").port();
        let (lmtp, events, policy) = (self.lmtp, self.events_tx.clone(), self.policy.clone());
        self.smtp = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, lmtp, events.clone(), policy.clone()));
            }
        }));
    }

    /// From now on the SMTP server takes mail only from clients logged in with `password`
    /// (None: from anyone).
    pub fn require_smtp_login(&self, password: Option<&str>) {
        if let Ok(mut p) = self.policy.password.lock() {
            *p = password.map(str::to_string);
        }
    }

    /// Stops the SMTP server (connections are refused until [`MailServer::start_smtp`]).
    pub async fn stop_smtp(&mut self) {
        if let Some(task) = self.smtp.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The next message delivered to mailbox `name` (waits for the SMTP server to hand it to
    /// Dovecot), parsed.
    pub async fn next_email(&mut self, name: &str) -> Email {
        let to = address(name);
        let mine = |d: &Delivered| d.rcpts.iter().any(|r| base(r) == to);
        if let Some(i) = self.pending.iter().position(mine) {
            return Email::parse(&self.pending.remove(i).data);
        }
        loop {
            let d = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("an email for {to} within {WAIT:?}"))
                .expect("the SMTP server runs");
            if mine(&d) {
                return Email::parse(&d.data);
            }
            self.pending.push(d);
        }
    }

    /// The next `n` messages delivered to mailbox `name`, by subject (in whatever order they
    /// were sent).
    pub async fn next_emails(&mut self, name: &str, n: usize) -> Vec<Email> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_email(name).await);
        }
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }

    /// Checks that no message was delivered that the test did not read.
    pub fn assert_all_read(&mut self) {
        while let Ok(d) = self.events.try_recv() {
            self.pending.push(d);
        }
        assert!(
            self.pending.is_empty(),
            "unread emails: {:?}",
            self.pending
                .iter()
                .map(|d| (d.rcpts.clone(), Email::parse(&d.data).subject))
                .collect::<Vec<_>>()
        );
    }

    /// Sends `raw` (a whole message) from `from` to `to` through the SMTP server, as a mail
    /// client would, and waits until it is delivered (then takes it off the delivery list).
    pub async fn send(&mut self, from: &str, to: &str, raw: &str) {
        use lettre::AsyncTransport;
        let mut builder =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(self.smtp_port);
        if let Some(password) = self.policy.password() {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    from.to_string(),
                    password,
                ));
        }
        let transport = builder.build();
        let envelope = lettre::address::Envelope::new(
            Some(from.parse().expect("from")),
            vec![to.parse().expect("to")],
        )
        .expect("envelope");
        transport
            .send_raw(&envelope, raw.replace('\n', "\r\n").as_bytes())
            .await
            .expect("the SMTP server takes the message");
        let d = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("delivered")
            .expect("the SMTP server runs");
        assert_eq!(d.rcpts, vec![to.to_string()], "the message sent");
    }

    /// Waits until Dovecot has logged `n` IMAP logins in all (its log says `Login: user=<…>`);
    /// Dovecot's log when that does not happen within a while.
    pub async fn imap_logins(&self, n: usize) -> Result<(), String> {
        let log = self._dir.path().join("dovecot.log");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches(": Login: user=<").count() >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{n} IMAP login(s) within {WAIT:?}: {text}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many messages mailbox `name` holds in `folder`, over IMAP.
    pub async fn count(&self, name: &str, folder: &str) -> usize {
        let target = staffbot::email::inbox::ImapTarget {
            host: "127.0.0.1".into(),
            port: self.imap_port,
            tls: false,
            user: address(name),
            password: PASSWORD.to_string().into(),
            mailbox: folder.into(),
            handled_mailbox: String::new(),
        };
        let mut s = staffbot::email::inbox::connect(&target, WAIT)
            .await
            .expect("IMAP login");
        let n = match s.select(folder).await {
            Ok(m) => m.exists as usize,
            Err(_) => 0,
        };
        let _ = s.logout().await;
        n
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        if let Some(task) = self.smtp.take() {
            task.abort();
        }
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: kill(2) with a pid read from Dovecot's own pid file.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// `a+b@c` → `a@c`.
fn base(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            format!("{}@{domain}", local.split('+').next().unwrap_or(local))
        }
        None => address.to_string(),
    }
}

/// An email as a test reads it.
#[derive(Debug, Clone)]
pub struct Email {
    pub message_id: String,
    pub subject: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub in_reply_to: Option<String>,
    pub text: String,
    pub html: String,
    pub auto_submitted: Option<String>,
}

impl Email {
    pub fn parse(raw: &[u8]) -> Email {
        let m = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("a parseable email");
        let first = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string)
        };
        Email {
            message_id: m.message_id().unwrap_or_default().to_string(),
            subject: m.subject().unwrap_or_default().to_string(),
            from: first(m.from()).unwrap_or_default(),
            reply_to: first(m.reply_to()),
            in_reply_to: m.header_raw("In-Reply-To").map(|v| v.trim().to_string()),
            text: m
                .body_text(0)
                .map(|t| t.replace("\r\n", "\n"))
                .unwrap_or_default(),
            html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            auto_submitted: m.header_raw("Auto-Submitted").map(|v| v.trim().to_string()),
        }
    }

    /// A reply to this email from `from`, saying `body` (the original quoted below it).
    pub fn reply(&self, from: &str, body: &str) -> String {
        let quoted: String = self.text.lines().map(|l| format!("> {l}\n")).collect();
        format!(
            "From: {from}\nTo: {to}\nSubject: Re: {subject}\nMessage-ID: <{id}@mail.example.com>\nIn-Reply-To: <{orig}>\nDate: Sun, 06 Dec 2026 20:00:00 +0000\n\n{body}\n\nOn Sunday, staffbot wrote:\n{quoted}",
            to = self.reply_to.as_deref().unwrap_or(&self.from),
            subject = self.subject,
            id = staffbot::notify::new_token(),
            orig = self.message_id,
        )
    }
}

/// One SMTP session: each message is handed to Dovecot over LMTP before it is accepted.
async fn smtp_session(
    stream: TcpStream,
    lmtp: SocketAddr,
    events: mpsc::UnboundedSender<Delivered>,
    policy: SmtpPolicy,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let password = policy.password();
    let mut logged_in = password.is_none();
    if write.write_all(b"220 relay ESMTP test\r\n").await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if password.is_some() {
                "250-relay\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".into()
            } else {
                "250-relay\r\n250 8BITMIME\r\n".into()
            }
        } else if upper.starts_with("AUTH PLAIN ") {
            // `\0user\0password`, in base64.
            let given = base64_decode(line[11..].trim());
            let pass = given.rsplit(|b| *b == 0).next().unwrap_or_default();
            logged_in = password.as_deref().map(str::as_bytes) == Some(pass);
            if logged_in {
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper.starts_with("AUTH LOGIN") {
            // Username, then password, each in base64 after a 334 prompt.
            let mut answers = Vec::new();
            for prompt in [&b"334 VXNlcm5hbWU6\r\n"[..], b"334 UGFzc3dvcmQ6\r\n"] {
                if write.write_all(prompt).await.is_err() {
                    return;
                }
                let mut l = String::new();
                if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                answers.push(base64_decode(l.trim()));
            }
            logged_in = password.as_deref().map(str::as_bytes) == Some(&answers[1][..]);
            if logged_in {
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") && !logged_in {
            "530 5.7.0 Authentication required\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&line[10..]);
            rcpts.clear();
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = angle(&line[8..]);
            if policy.mailboxes.contains(&base(&rcpt)) {
                rcpts.push(rcpt);
                "250 OK\r\n".into()
            } else {
                format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n")
            }
        } else if upper.starts_with("DATA") {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if lines.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" || l == b".\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            match lmtp_deliver(lmtp, &from, &rcpts, &data).await {
                Ok(()) => {
                    let _ = events.send(Delivered {
                        rcpts: rcpts.clone(),
                        data,
                    });
                    "250 OK delivered\r\n".into()
                }
                Err(e) => format!("451 {e}\r\n"),
            }
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 OK\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Decodes standard base64 (what SMTP AUTH sends); invalid characters are skipped.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn angle(s: &str) -> String {
    let s = s.trim();
    let s = s.split_whitespace().next().unwrap_or(s);
    s.trim_start_matches('<').trim_end_matches('>').to_string()
}

/// Hands a message to Dovecot over LMTP.
async fn lmtp_deliver(
    lmtp: SocketAddr,
    from: &str,
    rcpts: &[String],
    data: &[u8],
) -> Result<(), String> {
    let stream = TcpStream::connect(lmtp).await.map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    async fn expect(
        lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    ) -> Result<String, String> {
        loop {
            let mut l = String::new();
            if lines.read_line(&mut l).await.map_err(|e| e.to_string())? == 0 {
                return Err("LMTP closed".into());
            }
            if l.as_bytes().get(3) != Some(&b'-') {
                return if l.starts_with('2') || l.starts_with('3') {
                    Ok(l)
                } else {
                    Err(l.trim().to_string())
                };
            }
        }
    }
    expect(&mut lines).await?;
    for cmd in [
        "LHLO relay\r\n".to_string(),
        format!("MAIL FROM:<{from}>\r\n"),
    ] {
        write
            .write_all(cmd.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut lines).await?;
    }
    for r in rcpts {
        write
            .write_all(format!("RCPT TO:<{r}>\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut lines).await?;
    }
    write
        .write_all(b"DATA\r\n")
        .await
        .map_err(|e| e.to_string())?;
    expect(&mut lines).await?;
    let mut body = Vec::with_capacity(data.len() + 8);
    for line in data.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            body.push(b'.');
        }
        body.extend_from_slice(line);
    }
    if !body.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    write.write_all(&body).await.map_err(|e| e.to_string())?;
    for _ in rcpts {
        expect(&mut lines).await?;
    }
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(())
}
