//! Typed configuration: one TOML file plus environment overrides (design.md §5.2).
//!
//! Sources, lowest to highest precedence: built-in defaults, the TOML file (`--config PATH`,
//! else `STAFFBOT_CONFIG`, else `./staffbot.toml` when it exists), then the environment variables
//! listed in the table. Unknown keys are rejected with their full dotted name. Secrets are
//! wrapped in [`SecretString`] so they never reach `Debug` output or logs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// Default database: an SQLite file next to where staffbot runs, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://staffbot.db?mode=rwc";
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown configuration key `{key}` in {path}")]
    UnknownKey { path: PathBuf, key: String },
    #[error("invalid value in environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// The whole configuration, with every default applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub database_url: SecretUrl,
    pub slack: SlackConfig,
    pub staffbot: StaffbotConfig,
    pub loops: LoopsConfig,
    pub sanitybot: SanitybotConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub retention: RetentionConfig,
    pub machine: MachineConfig,
    pub email: EmailConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: SecretUrl::new(DEFAULT_DATABASE_URL),
            slack: SlackConfig::default(),
            staffbot: StaffbotConfig::default(),
            loops: LoopsConfig::default(),
            sanitybot: SanitybotConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            retention: RetentionConfig::default(),
            machine: MachineConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SlackConfig {
    pub bot_token: Option<SecretString>,
    pub app_token: Option<SecretString>,
    pub api_url: String,
    pub verification_token: Option<SecretString>,
    /// Socket Mode connections this process keeps open (Slack allows 10 per app, across
    /// replicas). Each handles one envelope at a time, so this is the process's concurrency.
    #[serde(deserialize_with = "de_connections")]
    pub socket_connections: u32,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            bot_token: None,
            app_token: None,
            api_url: DEFAULT_SLACK_API_URL.to_string(),
            verification_token: None,
            socket_connections: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StaffbotConfig {
    pub worker_batch_size: u32,
    #[serde(deserialize_with = "de_duration")]
    pub batch_frequency: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub staffing_min_time: Duration,
    pub staffing_group_id: Option<String>,
    #[serde(deserialize_with = "de_duration")]
    pub reminder_interval: Duration,
    pub allowed: AllowedConfig,
    pub random_seed: Option<u64>,
    /// Post a task's status changes (picked up, awaiting review, …) to its project's channel.
    pub status_notices: bool,
    /// Where a copy of every status notice goes (Orchestra's internal notification channel).
    pub notifications_channel: Option<String>,
    /// The most a project's data (`project create --data`) may hold, in bytes of compact JSON.
    pub max_project_data_bytes: usize,
    /// Whom each staffing round asks, and how many (README "Staffing policy").
    pub policy: PolicyName,
    /// A worker holding this many unfinished assignments gets no offer until one finishes
    /// (unset: no cap).
    pub max_open_tasks_per_worker: Option<u32>,
    /// How Orchestra's policy orders workers of one priority.
    pub tie_break: TieBreak,
    /// `[staffbot.adaptive]`: the adaptive policy's settings.
    pub adaptive: AdaptiveSettings,
    /// Tasks one worker may win (auto-staffed or accepted) in a day and still be auto-staffed
    /// one more (Orchestra's `ORCHESTRA_MAX_AUTOSTAFF_TASKS_PER_DAY`, 4 in its settings).
    pub max_autostaff_tasks_per_day: u32,
    /// Working hours, local to each worker (a worker's own override them).
    #[serde(deserialize_with = "de_hours")]
    pub working_hours: crate::availability::Hours,
    /// Working days (a worker's own override them).
    #[serde(deserialize_with = "de_days")]
    pub working_days: crate::availability::Days,
    /// Offers, reminders and auto-staffing reach workers only inside their working hours.
    pub working_hours_enforced: bool,
    /// Projects with at least this priority ignore working hours (unset: none).
    pub urgent_priority: Option<i32>,
}

impl StaffbotConfig {
    /// The working-hours rule as the staffing round applies it.
    pub fn working_rule(&self) -> crate::availability::WorkingRule {
        crate::availability::WorkingRule {
            enforced: self.working_hours_enforced,
            hours: self.working_hours,
            days: self.working_days,
            urgent_priority: self.urgent_priority,
        }
    }
}

/// `staffbot.tie_break`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// At random (Orchestra's).
    #[default]
    Random,
    /// Fewest tasks taken on in the last 7 days first, then at random.
    LeastLoaded,
}

/// `staffbot.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    #[default]
    Orchestra,
    Adaptive,
}

impl PolicyName {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Orchestra => "orchestra",
            PolicyName::Adaptive => "adaptive",
        }
    }
}

/// `[staffbot.adaptive]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveSettings {
    /// P(at least one acceptance within `horizon_minutes`) each round aims for.
    #[serde(deserialize_with = "de_target")]
    pub target: f64,
    /// Offers one request sends in one round at most.
    pub max_batch: usize,
    /// Offers one worker receives in a day at most.
    pub max_offers_per_worker_per_day: u32,
    /// Half-life of the evidence, in days: recent answers weigh more.
    pub half_life_days: f64,
    /// The window, in minutes, in which the policy aims for an acceptance: each round sends the
    /// fewest offers that make one acceptance within it `target` likely, counting the offers
    /// still out.
    #[serde(deserialize_with = "de_horizon")]
    pub horizon_minutes: f64,
    /// Each acceptance of the last 7 days multiplies a worker's place in the order by this:
    /// 1 orders by the chance of an acceptance alone, lower spreads the work more.
    #[serde(deserialize_with = "de_spread")]
    pub spread: f64,
}

impl AdaptiveSettings {
    /// `horizon_minutes` as a duration (at least a second).
    pub fn horizon(&self) -> chrono::Duration {
        chrono::Duration::seconds((self.horizon_minutes * 60.0).round().max(1.0) as i64)
    }
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        AdaptiveSettings {
            target: 0.95,
            max_batch: 8,
            max_offers_per_worker_per_day: 24,
            half_life_days: 14.0,
            horizon_minutes: 10.0,
            spread: 1.0,
        }
    }
}

impl Default for StaffbotConfig {
    fn default() -> Self {
        StaffbotConfig {
            worker_batch_size: 5,
            batch_frequency: Duration::from_secs(2 * 60),
            staffing_min_time: Duration::from_secs(30 * 60),
            staffing_group_id: None,
            reminder_interval: Duration::from_secs(24 * 3600),
            allowed: AllowedConfig::default(),
            random_seed: None,
            status_notices: true,
            notifications_channel: None,
            max_project_data_bytes: 64 * 1024,
            policy: PolicyName::Orchestra,
            max_open_tasks_per_worker: None,
            tie_break: TieBreak::Random,
            adaptive: AdaptiveSettings::default(),
            max_autostaff_tasks_per_day: 4,
            working_hours: crate::availability::Hours::NINE_TO_SIX,
            working_days: crate::availability::Days::MON_FRI,
            working_hours_enforced: true,
            urgent_priority: None,
        }
    }
}

/// What the task lifecycle needs to know to post status notices: whether to, and where a copy
/// of each goes besides the project's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeSettings {
    /// `staffbot.status_notices`.
    pub enabled: bool,
    /// `staffbot.notifications_channel`.
    pub channel: Option<String>,
    /// Email is configured: a worker who prefers email gets the notices of their task by email.
    pub email: bool,
}

impl Default for NoticeSettings {
    /// Notices on, no notifications channel (the configuration's defaults).
    fn default() -> Self {
        NoticeSettings {
            enabled: true,
            channel: None,
            email: false,
        }
    }
}

impl NoticeSettings {
    /// No notices at all.
    pub fn off() -> Self {
        NoticeSettings {
            enabled: false,
            channel: None,
            email: false,
        }
    }
}

impl Config {
    /// The status notices' settings.
    pub fn notices(&self) -> NoticeSettings {
        NoticeSettings {
            enabled: self.staffbot.status_notices,
            channel: self.staffbot.notifications_channel.clone(),
            email: self.email.sending(),
        }
    }
}

/// Slash-command whitelists; `None` allows everything, an empty list rejects everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AllowedConfig {
    pub team_ids: Option<Vec<String>>,
    pub team_domains: Option<Vec<String>>,
    pub channel_ids: Option<Vec<String>>,
    pub channel_names: Option<Vec<String>>,
    pub user_ids: Option<Vec<String>>,
    pub user_names: Option<Vec<String>>,
    pub commands: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LoopsConfig {
    #[serde(deserialize_with = "de_duration")]
    pub tick_interval: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub lease_ttl: Duration,
}

impl Default for LoopsConfig {
    fn default() -> Self {
        LoopsConfig {
            tick_interval: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SanitybotConfig {
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
}

impl Default for SanitybotConfig {
    fn default() -> Self {
        SanitybotConfig {
            interval: Duration::from_secs(5 * 60),
        }
    }
}

/// How long finished bookkeeping rows are kept before the retention loop deletes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// `handled_envelopes` rows (redelivery protection) older than this.
    #[serde(deserialize_with = "de_retention")]
    pub envelopes: Duration,
    /// `outbox` rows sent or failed longer ago than this (pending rows are never deleted).
    #[serde(deserialize_with = "de_retention")]
    pub outbox: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            envelopes: Duration::from_secs(7 * 86_400),
            outbox: Duration::from_secs(30 * 86_400),
        }
    }
}

/// What runs machine steps: Orchestra function paths (a step's `execution_function.path`)
/// mapped to what staffbot does. A path not listed waits for `staffbot task complete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MachineConfig {
    pub functions: std::collections::BTreeMap<String, MachineFunction>,
    /// Commands (and scripts) one run of the `machine` loop runs at once.
    #[serde(deserialize_with = "de_concurrency")]
    pub concurrency: usize,
}

/// The default of `machine.concurrency`.
pub const DEFAULT_MACHINE_CONCURRENCY: usize = 4;

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            functions: Default::default(),
            concurrency: DEFAULT_MACHINE_CONCURRENCY,
        }
    }
}

fn de_concurrency<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let n = i64::deserialize(deserializer)?;
    match usize::try_from(n) {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(serde::de::Error::custom(format!(
            "`concurrency` must be between 1 and 256 (not {n})"
        ))),
    }
}

/// The default time a machine step's command may run.
pub const DEFAULT_MACHINE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Variables of staffbot's own environment a command gets (besides its function's `env`).
pub const MACHINE_INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// One `[machine.functions."<path>"]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawMachineFunction")]
pub enum MachineFunction {
    /// Run `argv` with the task's details as JSON on stdin; its stdout (JSON) is the output.
    Command(MachineCommand),
    /// Complete at once with an empty output.
    Complete,
}

/// A command that runs machine steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineCommand {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its process group is killed after this.
    pub timeout: Duration,
    /// Variables set in its environment, besides [`MACHINE_INHERITED_ENV`] (which these
    /// override). Nothing else of staffbot's environment is passed on.
    pub env: std::collections::BTreeMap<String, String>,
    /// Its working directory; staffbot's own when unset.
    pub cwd: Option<PathBuf>,
}

impl MachineCommand {
    /// `argv` with the default timeout, no extra variables, staffbot's working directory.
    pub fn new(argv: Vec<String>) -> Self {
        MachineCommand {
            argv,
            timeout: DEFAULT_MACHINE_TIMEOUT,
            env: Default::default(),
            cwd: None,
        }
    }
}

#[derive(Deserialize)]
struct RawMachineFunction {
    command: Option<Vec<String>>,
    timeout: Option<String>,
    complete: Option<bool>,
    env: Option<std::collections::BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
}

impl TryFrom<RawMachineFunction> for MachineFunction {
    type Error = String;

    fn try_from(raw: RawMachineFunction) -> Result<Self, String> {
        match (raw.command, raw.complete) {
            (Some(_), Some(true)) => {
                Err("a machine function has either `command` or `complete = true`, not both".into())
            }
            (Some(argv), _) => {
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err("`command` needs at least the program to run".into());
                }
                let timeout = match raw.timeout {
                    Some(t) => parse_duration(&t)?,
                    None => DEFAULT_MACHINE_TIMEOUT,
                };
                if timeout.is_zero() {
                    return Err("`timeout` must be longer than 0s".into());
                }
                let env = raw.env.unwrap_or_default();
                if let Some(bad) = env
                    .keys()
                    .find(|k| k.is_empty() || k.contains(['=', '\0']))
                {
                    return Err(format!(
                        "`env` names a variable {bad:?}: a name is not empty and has no `=`"
                    ));
                }
                if env.values().any(|v| v.contains('\0')) {
                    return Err("`env` values cannot contain NUL".into());
                }
                if raw.cwd.as_ref().is_some_and(|c| c.as_os_str().is_empty()) {
                    return Err("`cwd` is empty".into());
                }
                Ok(MachineFunction::Command(MachineCommand {
                    argv,
                    timeout,
                    env,
                    cwd: raw.cwd,
                }))
            }
            (None, Some(true)) if raw.timeout.is_none() && raw.env.is_none() && raw.cwd.is_none() => {
                Ok(MachineFunction::Complete)
            }
            (None, Some(true)) => Err("`timeout`, `env` and `cwd` only go with `command`".into()),
            (None, _) => Err(
                "a machine function needs `command = [\"program\", \"arg\", …]` or `complete = true`"
                    .into(),
            ),
        }
    }
}

/// Offers by email (issue 16): SMTP out, replies read from a mailbox over IMAP. Off unless
/// `smtp_url` and `from` are set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// `smtp://host:port` (STARTTLS when offered), `smtp://host:port?tls=required`, or
    /// `smtps://host:port`; credentials in the URL or in `STAFFBOT_SMTP_PASSWORD`.
    pub smtp_url: Option<SecretUrl>,
    /// The sender, e.g. `staffbot <staffbot@example.com>`.
    pub from: Option<String>,
    /// The address replies go to, plus-addressed per offer (`staffbot+<token>@example.com`);
    /// the `from` address when unset.
    pub reply_to: Option<String>,
    /// `imaps://user@host:993` or `imap://user@host:143` (plain, for a loopback server);
    /// credentials in the URL or in `STAFFBOT_IMAP_PASSWORD`. Replies are not read when unset.
    pub imap_url: Option<SecretUrl>,
    /// The mailbox replies arrive in.
    pub mailbox: String,
    /// Where handled replies are moved (created when missing).
    pub handled_mailbox: String,
    /// How often the mailbox is read when the server has no IMAP IDLE (and the longest IDLE).
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Emails sent per minute at most (bursts of a tenth of that).
    pub per_minute: u32,
    /// `STAFFBOT_SMTP_PASSWORD` (environment only).
    #[serde(skip)]
    pub smtp_password: Option<SecretString>,
    /// `STAFFBOT_IMAP_PASSWORD` (environment only).
    #[serde(skip)]
    pub imap_password: Option<SecretString>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_url: None,
            from: None,
            reply_to: None,
            imap_url: None,
            mailbox: "INBOX".to_string(),
            handled_mailbox: "staffbot-handled".to_string(),
            poll_interval: Duration::from_secs(60),
            per_minute: 120,
            smtp_password: None,
            imap_password: None,
        }
    }
}

impl EmailConfig {
    /// Whether offers can be emailed (`smtp_url` and `from` are set).
    pub fn sending(&self) -> bool {
        self.smtp_url.is_some() && self.from.is_some()
    }
}

/// The shortest retention accepted: a row must outlive every redelivery and retry it guards
/// against (Slack redelivers an envelope within minutes; a dedupe key protects a retried write).
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// A database URL that may carry a password: shown with the password masked.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: &str) -> Self {
        SecretUrl(SecretString::from(url.to_string()))
    }
    /// The full URL, for connecting. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    /// The URL with any password replaced by `***`, safe to print.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// A TOML error as `line L, column C: message`, without the quoted source line toml's own
/// `Display` adds (that line may be a token or a database URL with its password).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = redact_text(e.message().trim_end());
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map(|l| l.chars().count() + 1)
                .unwrap_or(1);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// True for a URL query parameter (or `key=value` setting) whose value is a secret: names
/// containing `pass`, `pwd`, `secret`, `token`, `key` or `auth`, in any case (`password`,
/// `sslpassword`, `passwd`, `PWD`, `access_token`, `api_key`, …).
pub fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth"]
        .iter()
        .any(|part| name.contains(part))
}

/// Masks the values of secret query parameters in a raw query string, keeping everything else
/// exactly as written.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) => {
                let decoded: String = url::form_urlencoded::parse(key.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                if is_secret_param(&decoded) {
                    format!("{key}=***")
                } else {
                    pair.to_string()
                }
            }
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL made safe to print: the password of its user info and the values of password-like
/// query parameters become `***` (`postgres://u:pw@host/db?sslpassword=x` →
/// `postgres://u:***@host/db?sslpassword=***`). Text that does not parse as a URL is not
/// shown at all, only its scheme, since where a password sits in it cannot be known.
pub fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return match text.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://*** (malformed URL, not shown)")
            }
            _ => "*** (malformed URL, not shown)".to_string(),
        };
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have user info, which then have no password.
        let _ = url.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let redacted = redact_query(query);
        url.set_query(Some(&redacted));
    }
    if url.fragment().is_some() {
        url.set_fragment(None);
    }
    url.to_string()
}

/// Makes a message from a database driver (or a parser) safe to print: every URL in it goes
/// through [`redact_url`], and `key=value` settings with a secret-like key (a libpq
/// `password=…`) lose their value. Driver errors can quote the connection string they failed on.
pub fn redact_text(text: &str) -> String {
    const STOP: &[char] = &['\'', '"', '`', '<', '>', '(', ')', '{', '}'];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: letters, digits, `+-.` right before `://`.
        let head = &rest[..at];
        let scheme_len = head
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        let start = at - scheme_len;
        out.push_str(&redact_settings(&rest[..start]));
        // The URL runs to whitespace, a quote or a closing bracket.
        let after = &rest[at + 3..];
        let end = after
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || STOP.contains(c))
            .map(|(i, _)| i)
            .unwrap_or(after.len());
        out.push_str(&redact_url(&rest[start..at + 3 + end]));
        rest = &after[end..];
    }
    out.push_str(&redact_settings(rest));
    out
}

/// `password=secret` → `password=***` for every whitespace-separated setting with a
/// secret-like key.
fn redact_settings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.split_once('=') {
            Some((key, value))
                if !value.is_empty()
                    && is_secret_param(key.trim_start_matches(|c: char| !c.is_alphanumeric())) =>
            {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Parses `"500ms"`, `"3s"`, `"2m"`, `"1h"`, `"1d"` (and combinations such as `"1h30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number followed by ms, s, m, h or d"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way the config accepts it (`"2m"`, `"1d"`, `"1h30m"`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

fn de_connections<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(deserializer)?;
    if (1..=10).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "socket_connections must be between 1 and 10 (Slack's limit per app), not {n}"
        )))
    }
}

fn de_target<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let t = f64::deserialize(deserializer)?;
    if t > 0.0 && t < 1.0 {
        Ok(t)
    } else {
        Err(serde::de::Error::custom(format!(
            "target is a probability between 0 and 1, such as 0.95 (not {t})"
        )))
    }
}

fn de_spread<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let s = f64::deserialize(deserializer)?;
    if s > 0.0 && s <= 1.0 {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "spread must be above 0 and at most 1, such as 0.8 (not {s})"
        )))
    }
}

fn de_horizon<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let m = f64::deserialize(deserializer)?;
    if (1.0..=24.0 * 60.0).contains(&m) {
        Ok(m)
    } else {
        Err(serde::de::Error::custom(format!(
            "horizon_minutes must be between 1 and 1440 minutes (not {m})"
        )))
    }
}

fn de_hours<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::availability::Hours, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::availability::Hours::parse(&text).map_err(serde::de::Error::custom)
}

fn de_days<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::availability::Days, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::availability::Days::parse(&text).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn de_retention<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let d = de_duration(deserializer)?;
    if d < MIN_RETENTION {
        return Err(serde::de::Error::custom(format!(
            "a retention must be at least {} (not {})",
            format_duration(MIN_RETENTION),
            format_duration(d)
        )));
    }
    Ok(d)
}

impl Config {
    /// Loads the configuration: the file chosen as described in the module docs, then the
    /// process environment.
    pub fn load(explicit_path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(explicit_path, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        explicit_path: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let path = match explicit_path {
            Some(p) => Some(p.to_path_buf()),
            None => match env.get("STAFFBOT_CONFIG").filter(|v| !v.is_empty()) {
                Some(p) => Some(PathBuf::from(p)),
                None => {
                    let default = PathBuf::from("staffbot.toml");
                    default.exists().then_some(default)
                }
            },
        };
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_toml(&text, &path)?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    /// Parses TOML text; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_error(text, &e),
        })?;
        let mut unknown = Vec::new();
        let config: Config = serde_ignored::deserialize(deserializer, |key| {
            unknown.push(key.to_string());
        })
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_error(text, &e),
        })?;
        if let Some(key) = unknown.into_iter().next() {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key,
            });
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        if let Some(v) = get("STAFFBOT_DATABASE_URL") {
            self.database_url = SecretUrl::new(&v);
        }
        if let Some(v) = get("SLACK_BOT_TOKEN") {
            self.slack.bot_token = Some(SecretString::from(v));
        }
        if let Some(v) = get("SLACK_APP_TOKEN") {
            self.slack.app_token = Some(SecretString::from(v));
        }
        if let Some(v) = get("SLACK_API_URL") {
            self.slack.api_url = v;
        }
        if let Some(v) = get("SLACK_VERIFICATION_TOKEN") {
            self.slack.verification_token = Some(SecretString::from(v));
        }
        if let Some(v) = get("STAFFBOT_METRICS_LISTEN") {
            self.metrics.listen = Some(v);
        }
        if let Some(v) = get("STAFFBOT_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Env {
                        var: "STAFFBOT_LOG_FORMAT".to_string(),
                        message: format!("expected \"text\" or \"json\", got {other:?}"),
                    });
                }
            };
        }
        if let Some(v) = get("STAFFBOT_SMTP_URL") {
            self.email.smtp_url = Some(SecretUrl::new(&v));
        }
        if let Some(v) = get("STAFFBOT_IMAP_URL") {
            self.email.imap_url = Some(SecretUrl::new(&v));
        }
        if let Some(v) = get("STAFFBOT_SMTP_PASSWORD") {
            self.email.smtp_password = Some(SecretString::from(v));
        }
        if let Some(v) = get("STAFFBOT_IMAP_PASSWORD") {
            self.email.imap_password = Some(SecretString::from(v));
        }
        if let Some(v) = get("RUST_LOG") {
            self.log.level = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_match_the_design_table() {
        let c = Config::default();
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.slack.api_url, "https://slack.com/api");
        assert_eq!(c.staffbot.worker_batch_size, 5);
        assert_eq!(c.slack.socket_connections, 4);
        assert_eq!(c.staffbot.batch_frequency, Duration::from_secs(120));
        assert_eq!(c.staffbot.staffing_min_time, Duration::from_secs(1800));
        assert_eq!(c.staffbot.reminder_interval, Duration::from_secs(86_400));
        assert_eq!(c.loops.tick_interval, Duration::from_secs(10));
        assert_eq!(c.loops.lease_ttl, Duration::from_secs(30));
        assert_eq!(c.sanitybot.interval, Duration::from_secs(300));
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert!(c.metrics.listen.is_none());
        assert!(c.staffbot.allowed.user_ids.is_none());
        assert_eq!(c.retention.envelopes, Duration::from_secs(7 * 86_400));
        assert_eq!(c.retention.outbox, Duration::from_secs(30 * 86_400));
        assert_eq!(c.notices(), NoticeSettings::default());
        assert!(c.staffbot.status_notices);
        assert!(c.staffbot.notifications_channel.is_none());
    }

    #[test]
    fn every_documented_key_parses() {
        let c = parse(
            r#"
database_url = "postgres://u:pw@localhost/staffbot"
[slack]
bot_token = "xoxb-1"
app_token = "xapp-1"
api_url = "http://127.0.0.1:9/api"
verification_token = "vt"
socket_connections = 6
[staffbot]
worker_batch_size = 3
batch_frequency = "500ms"
staffing_min_time = "1h30m"
staffing_group_id = "C0STAFF"
reminder_interval = "2d"
random_seed = 7
status_notices = false
notifications_channel = "C0NOTES"
[staffbot.allowed]
team_ids = ["T1"]
team_domains = ["acme"]
channel_ids = ["C1"]
channel_names = ["privategroup"]
user_ids = ["U1"]
user_names = ["alice"]
commands = ["/staffbot"]
[loops]
tick_interval = "3s"
lease_ttl = "1m"
[sanitybot]
interval = "10m"
[metrics]
listen = "127.0.0.1:9898"
[log]
format = "json"
level = "debug"
[retention]
envelopes = "2d"
outbox = "90d"
"#,
        )
        .expect("valid config");
        assert_eq!(c.staffbot.worker_batch_size, 3);
        assert_eq!(c.slack.socket_connections, 6);
        assert_eq!(c.staffbot.batch_frequency, Duration::from_millis(500));
        assert_eq!(c.staffbot.staffing_min_time, Duration::from_secs(5400));
        assert_eq!(
            c.staffbot.reminder_interval,
            Duration::from_secs(2 * 86_400)
        );
        assert_eq!(c.staffbot.random_seed, Some(7));
        assert_eq!(
            c.notices(),
            NoticeSettings {
                enabled: false,
                channel: Some("C0NOTES".into()),
                email: false,
            }
        );
        assert_eq!(c.staffbot.allowed.commands, Some(vec!["/staffbot".into()]));
        assert_eq!(c.loops.lease_ttl, Duration::from_secs(60));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9898"));
        assert_eq!(c.retention.envelopes, Duration::from_secs(2 * 86_400));
        assert_eq!(c.retention.outbox, Duration::from_secs(90 * 86_400));
        assert_eq!(
            c.slack.bot_token.as_ref().map(|s| s.expose_secret()),
            Some("xoxb-1")
        );
    }

    #[test]
    fn machine_functions_parse_and_are_checked() {
        let c = parse(
            r#"
[machine.functions."press.v1.setup.create"]
command = ["python3", "setup.py"]
timeout = "30s"
[machine.functions."press.v1.photos.resize"]
complete = true
[machine.functions.plain]
command = ["./run"]
"#,
        )
        .expect("valid");
        let f = &c.machine.functions;
        assert_eq!(
            f["press.v1.setup.create"],
            MachineFunction::Command(MachineCommand {
                timeout: Duration::from_secs(30),
                ..MachineCommand::new(vec!["python3".into(), "setup.py".into()])
            })
        );
        assert_eq!(f["press.v1.photos.resize"], MachineFunction::Complete);
        assert_eq!(
            f["plain"],
            MachineFunction::Command(MachineCommand::new(vec!["./run".into()]))
        );
        let err =
            parse("[machine.functions.x]\ncommand = [\"a\"]\ntimout = \"1s\"\n").expect_err("typo");
        assert!(
            err.to_string().contains("`machine.functions.x.timout`"),
            "{err}"
        );
        for (bad, expected) in [
            ("command = []", "at least the program"),
            ("command = [\"a\"]\ncomplete = true", "not both"),
            ("timeout = \"1s\"", "needs `command"),
            (
                "complete = true\ntimeout = \"1s\"",
                "only go with `command`",
            ),
            ("command = [\"a\"]\ntimeout = \"soon\"", "invalid duration"),
        ] {
            let err = parse(&format!("[machine.functions.x]\n{bad}\n")).expect_err(bad);
            assert!(err.to_string().contains(expected), "{bad}: {err}");
        }
        let err = parse("[machine]\nfunction = 1\n").expect_err("typo");
        assert!(err.to_string().contains("`machine.function`"), "{err}");
    }

    #[test]
    fn machine_env_cwd_and_concurrency_parse_and_are_checked() {
        assert_eq!(
            Config::default().machine.concurrency,
            DEFAULT_MACHINE_CONCURRENCY
        );
        let c = parse(
            r#"
[machine]
concurrency = 2
[machine.functions.x]
command = ["./run"]
env = { PRESS_API = "https://press.internal", LC_ALL = "C.UTF-8" }
cwd = "/srv/press"
"#,
        )
        .expect("valid");
        assert_eq!(c.machine.concurrency, 2);
        let MachineFunction::Command(x) = &c.machine.functions["x"] else {
            panic!("a command");
        };
        assert_eq!(x.env["PRESS_API"], "https://press.internal");
        assert_eq!(x.env["LC_ALL"], "C.UTF-8");
        assert_eq!(x.cwd.as_deref(), Some(Path::new("/srv/press")));
        for (bad, expected) in [
            ("[machine]\nconcurrency = 0", "between 1 and 256"),
            ("[machine]\nconcurrency = -1", "between 1 and 256"),
            (
                "[machine.functions.x]\ncommand = [\"a\"]\nenv = { \"A=B\" = \"c\" }",
                "no `=`",
            ),
            (
                "[machine.functions.x]\ncomplete = true\ncwd = \"/tmp\"",
                "only go with `command`",
            ),
            (
                "[machine.functions.x]\ncommand = [\"a\"]\nenvs = {}",
                "`machine.functions.x.envs`",
            ),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn socket_connections_stay_within_slacks_limit() {
        for bad in ["0", "11"] {
            let err =
                parse(&format!("[slack]\nsocket_connections = {bad}\n")).expect_err("out of range");
            assert!(err.to_string().contains("between 1 and 10"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[staffbot]\nworker_batch_sise = 3\n").expect_err("typo");
        assert_eq!(
            err.to_string(),
            "unknown configuration key `staffbot.worker_batch_sise` in test.toml"
        );
        let err = parse("[staffbot.allowed]\nusers = []\n").expect_err("typo");
        assert!(
            err.to_string().contains("`staffbot.allowed.users`"),
            "{err}"
        );
        let err = parse("[staffbot]\nstatus_notice = false\n").expect_err("typo");
        assert!(
            err.to_string().contains("`staffbot.status_notice`"),
            "{err}"
        );
        let err = parse("[staffbot]\nstatus_notices = \"yes\"\n").expect_err("not a bool");
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = parse("colour = 1\n").expect_err("top level");
        assert!(err.to_string().contains("`colour`"), "{err}");
    }

    #[test]
    fn retention_keys_are_checked() {
        let err = parse("[retention]\noutbox = \"10m\"\n").expect_err("too short");
        assert!(err.to_string().contains("at least 1h (not 10m)"), "{err}");
        let err = parse("[retention]\nenvelope = \"7d\"\n").expect_err("typo");
        assert!(err.to_string().contains("`retention.envelope`"), "{err}");
        let err = parse("[retention]\nenvelopes = \"7\"\n").expect_err("no unit");
        assert!(err.to_string().contains("missing unit"), "{err}");
    }

    #[test]
    fn bad_durations_are_explained() {
        let err = parse("[loops]\ntick_interval = \"10\"\n").expect_err("no unit");
        assert!(err.to_string().contains("missing unit"), "{err}");
        let err = parse("[loops]\ntick_interval = \"10w\"\n").expect_err("bad unit");
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }

    #[test]
    fn durations_round_trip() {
        for text in ["500ms", "3s", "2m", "1h", "1d", "1h30m"] {
            let d = parse_duration(text).expect("valid");
            assert_eq!(format_duration(d), text);
        }
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_email_section_and_its_environment() {
        let c = parse(
            "[email]\nsmtp_url = \"smtps://bot@mail.example.com\"\nfrom = \"staffbot <bot@example.com>\"\npoll_interval = \"30s\"\nper_minute = 10\n",
        )
        .expect("parses");
        assert!(c.email.sending());
        assert_eq!(c.email.mailbox, "INBOX");
        assert_eq!(c.email.handled_mailbox, "staffbot-handled");
        assert_eq!(c.email.poll_interval, Duration::from_secs(30));
        assert_eq!(c.email.per_minute, 10);
        assert!(!Config::default().email.sending());
        assert!(
            parse("[email]\nsmtp = \"x\"\n").is_err(),
            "unknown keys are refused"
        );
        let env: HashMap<String, String> = [
            ("STAFFBOT_SMTP_URL", "smtp://127.0.0.1:2525"),
            ("STAFFBOT_IMAP_URL", "imap://bot@127.0.0.1:1143"),
            ("STAFFBOT_SMTP_PASSWORD", "s3cret"),
            ("STAFFBOT_IMAP_PASSWORD", "s3cret2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = Config::load_from(Some(Path::new("/dev/null")), &env).expect("loads");
        let smtp = c.email.smtp_url.as_ref().map(SecretUrl::expose);
        assert_eq!(smtp, Some("smtp://127.0.0.1:2525"));
        assert!(c.email.imap_url.is_some());
        let pw = c
            .email
            .smtp_password
            .as_ref()
            .map(|p| p.expose_secret().to_string());
        assert_eq!(pw.as_deref(), Some("s3cret"));
        assert!(
            !format!("{:?}", c.email).contains("s3cret"),
            "never in Debug output"
        );
    }

    #[test]
    fn env_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("staffbot.toml");
        std::fs::write(&path, "database_url = \"sqlite://a.db\"\n").expect("write");
        let env: HashMap<String, String> = [
            ("STAFFBOT_DATABASE_URL", "sqlite://b.db"),
            ("SLACK_BOT_TOKEN", "xoxb-env"),
            ("SLACK_API_URL", "http://127.0.0.1:1/api"),
            ("STAFFBOT_LOG_FORMAT", "json"),
            ("RUST_LOG", "staffbot=trace"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = Config::load_from(Some(&path), &env).expect("loads");
        assert_eq!(c.database_url.expose(), "sqlite://b.db");
        assert_eq!(c.slack.api_url, "http://127.0.0.1:1/api");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "staffbot=trace");

        let bad: HashMap<String, String> =
            [("STAFFBOT_LOG_FORMAT".to_string(), "xml".to_string())].into();
        let err = Config::load_from(Some(&path), &bad).expect_err("bad env");
        assert!(err.to_string().contains("STAFFBOT_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn urls_lose_their_passwords() {
        for (url, shown) in [
            ("postgres://bob:hunter2@db/x", "postgres://bob:***@db/x"),
            (
                "postgres://bob@db:5432/x?sslmode=require&password=hunter2",
                "postgres://bob@db:5432/x?sslmode=require&password=***",
            ),
            (
                "postgres://db/x?SSLPassword=hunter2&pwd=hunter2&Token=hunter2&user=bob",
                "postgres://db/x?SSLPassword=***&pwd=***&Token=***&user=bob",
            ),
            (
                "postgres://db/x?pass%77ord=hunter2",
                "postgres://db/x?pass%77ord=***",
            ),
            (
                "sqlite://staffbot.db?mode=rwc",
                "sqlite://staffbot.db?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            (
                "postgres://bob:hunter2@[bad/x",
                "postgres://*** (malformed URL, not shown)",
            ),
            ("hunter2", "*** (malformed URL, not shown)"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn driver_messages_lose_urls_and_passwords() {
        let message =
            "Connection Error: The connection string 'postgres://u:hunter2@[bad' cannot be parsed.";
        assert_eq!(
            redact_text(message),
            "Connection Error: The connection string 'postgres://*** (malformed URL, not shown)' cannot be parsed."
        );
        assert_eq!(
            redact_text("see (mysql://u:hunter2@h/db?x=1) and host=h password=hunter2 port=1"),
            "see (mysql://u:***@h/db?x=1) and host=h password=*** port=1"
        );
    }

    #[test]
    fn toml_errors_do_not_quote_the_file() {
        let err = parse("database_url = \"postgres://u:hunter2@db/x\nstaffbot = 1\n")
            .expect_err("unterminated string");
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("line 1, column"), "{shown}");
        let err = parse("[slack]\nbot_token = xoxb-hunter2\n").expect_err("unquoted");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let c = parse(
            "database_url = \"postgres://bob:hunter2@db/staffbot\"\n[slack]\nbot_token = \"xoxb-secret\"\nverification_token = \"vt-secret\"\n",
        )
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("xoxb-secret"), "{shown}");
        assert!(!shown.contains("vt-secret"), "{shown}");
        assert!(shown.contains("postgres://bob:***@db/staffbot"), "{shown}");
    }
}
