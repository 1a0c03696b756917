//! The secret values staffbot knows (tokens, passwords), and masking them out of any text it
//! logs, stores or posts, wherever that text came from: a command's stderr, a driver's error, a
//! script's message. The values are registered once the configuration is loaded (by the binary
//! before logging starts, and by [`crate::daemon::Daemon::start`]: [`register_config`]);
//! [`mask`] replaces each with [`MARKER`]. Every log line goes through
//! [`MaskingWriter`], so this is the backstop behind the more specific redactions
//! ([`crate::config::redact_text`], payload redaction).
//!
//! Also here: [`clean`], which strips terminal escapes and control characters from text a
//! program printed, before it reaches the log, the database or Slack.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret;

/// What a secret is replaced with.
pub const MARKER: &str = "[secret]";

/// Values shorter than this are not registered: masking `pw` would mangle ordinary text, and a
/// value that short is no real secret.
pub const MIN_LEN: usize = 6;

/// The registered values, longest first (so a value containing another is masked whole).
static KNOWN: RwLock<Option<Arc<Vec<String>>>> = RwLock::new(None);

/// Registers one secret value (ignored when empty or shorter than [`MIN_LEN`]). Its
/// JSON-escaped form is registered too, so it is masked in JSON log lines as well.
pub fn register(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_LEN {
        return;
    }
    let mut forms = vec![value.to_string()];
    if let Ok(json) = serde_json::to_string(value) {
        let escaped = &json[1..json.len() - 1];
        if escaped != value {
            forms.push(escaped.to_string());
        }
    }
    let mut guard = match KNOWN.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut list: Vec<String> = guard.as_deref().cloned().unwrap_or_default();
    for form in forms {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    *guard = Some(Arc::new(list));
}

/// The password of a URL's user info (as written and percent-decoded) and the values of its
/// secret-like query parameters (see [`crate::config::is_secret_param`]).
fn url_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(url) = url::Url::parse(text) else {
        // A URL that does not parse: guess the password between `user:` and `@`.
        if let Some((_, rest)) = text.split_once("://")
            && let Some((userinfo, _)) = rest.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_string());
        }
        return out;
    };
    if let Some(password) = url.password() {
        out.push(password.to_string());
        if let Ok(decoded) = percent_decode(password)
            && decoded != password
        {
            out.push(decoded);
        }
    }
    for (key, value) in url.query_pairs() {
        if crate::config::is_secret_param(&key) {
            out.push(value.into_owned());
        }
    }
    out
}

/// `%XX` sequences decoded (a URL's password as the server sees it).
fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Registers every secret in the configuration: both Slack tokens, the verification token, the
/// SMTP and IMAP passwords (set alone or inside their URLs) and the database URL's password.
pub fn register_config(config: &crate::config::Config) {
    let slack = &config.slack;
    for token in [
        &slack.bot_token,
        &slack.app_token,
        &slack.verification_token,
        &config.email.smtp_password,
        &config.email.imap_password,
    ]
    .into_iter()
    .flatten()
    {
        register(token.expose_secret());
    }
    let urls = [Some(&config.database_url), config.email.smtp_url.as_ref()]
        .into_iter()
        .chain([config.email.imap_url.as_ref()])
        .flatten();
    for url in urls {
        for secret in url_secrets(url.expose()) {
            register(&secret);
        }
    }
}

/// `text` with every registered secret replaced by [`MARKER`] (borrowed when there is none).
pub fn mask(text: &str) -> Cow<'_, str> {
    let known = match KNOWN.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let Some(known) = known else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MARKER));
        }
    }
    out
}

/// Text a program printed, made safe to show: terminal escape sequences (colours, cursor
/// movement, window titles) removed, and every other control character but newline and tab.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: a string up to BEL or ESC \.
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // Any other escape: ESC and the one character after it.
                _ => {}
            },
            // C1 CSI.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text from outside (a command's stderr, an error message) made fit to log, store or post:
/// [`clean`]ed, then [`mask`]ed.
pub fn sanitize(text: &str) -> String {
    let cleaned = clean(text);
    mask(&cleaned).into_owned()
}

/// A log writer that masks every secret in each formatted line before it is written.
/// `tracing-subscriber` formats an event into one buffer and writes it at once; this writer
/// keeps what it is given until it is flushed or dropped, so a line is masked whole.
pub struct MaskingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> MaskingWriter<W> {
    pub fn new(inner: W) -> Self {
        MaskingWriter {
            inner,
            buf: Vec::new(),
        }
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let masked = mask(&text);
        let result = self.inner.write_all(masked.as_bytes());
        self.buf.clear();
        result
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        let _ = self.write_out();
        let _ = self.inner.flush();
    }
}

/// Makes a [`MaskingWriter`] around stderr for each log line (a `tracing-subscriber`
/// `MakeWriter`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MaskedStderr {
    type Writer = MaskingWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter::new(io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_and_short_ones_ignored() {
        register("xoxb-unit-secret-1");
        register("abc");
        register("");
        register("quo\"te-secret");
        assert_eq!(
            mask("token xoxb-unit-secret-1 and xoxb-unit-secret-1."),
            "token [secret] and [secret]."
        );
        assert_eq!(mask("abc stays"), "abc stays");
        assert!(matches!(mask("nothing here"), Cow::Borrowed(_)));
        // JSON logs escape the quote: masked there too.
        assert_eq!(mask(r#"{"m":"quo\"te-secret"}"#), r#"{"m":"[secret]"}"#);
    }

    #[test]
    fn url_passwords_are_found_as_written_and_decoded() {
        let s = url_secrets("smtps://me%40x.com:p%40ss-word@smtp.example.com:465");
        assert!(s.contains(&"p%40ss-word".to_string()), "{s:?}");
        assert!(s.contains(&"p@ss-word".to_string()), "{s:?}");
        let s = url_secrets("postgres://u@h/db?sslpassword=client-key-pw&x=1");
        assert_eq!(s, vec!["client-key-pw".to_string()]);
        assert!(url_secrets("postgres://u@h/db").is_empty());
    }

    #[test]
    fn clean_strips_escapes_and_control_characters() {
        assert_eq!(
            clean("\u{1b}[31mred\u{1b}[0m\r\nnext\tcol\u{7}\u{1b}]0;title\u{7}end\u{0}"),
            "red\nnext\tcolend"
        );
        assert_eq!(clean("a\u{1b}cb"), "ab");
    }

    #[test]
    fn the_writer_masks_a_line_split_over_writes() {
        register("split-secret-value");
        let mut out = Vec::new();
        {
            let mut w = MaskingWriter::new(&mut out);
            w.write_all(b"a split-sec").expect("write");
            w.write_all(b"ret-value line\n").expect("write");
        }
        assert_eq!(String::from_utf8_lossy(&out), "a [secret] line\n");
    }
}
