//! The daemon's real wiring against the fake Slack and a real database. Every message the bot
//! posts or updates must be read by the test (`next_post`, `next_update`); `finish` fails the
//! test otherwise, and a harness dropped without `finish` fails too.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use serde_json::Value;
use slack_sim::{Ack, ApiCall, FakeSlack, FakeSlackConfig};
use staffbot::clock::SystemClock;
use staffbot::config::Config;
use staffbot::daemon::Daemon;

use crate::common::TestDb;

pub const WAIT: Duration = Duration::from_secs(10);

/// Methods whose successful calls are messages a test must read.
const MESSAGE_METHODS: &[&str] = &["chat.postMessage", "chat.update", "chat.postEphemeral"];

pub struct Harness {
    pub fake: FakeSlack,
    pub t: TestDb,
    pub config: Config,
    daemon: Option<Daemon>,
    replicas: Vec<Daemon>,
    read: usize,
    finished: bool,
}

pub fn config_for(fake: &FakeSlack, db_url: &str) -> Config {
    let mut config = Config::default();
    config.database_url = staffbot::config::SecretUrl::new(db_url);
    config.slack.api_url = fake.api_url();
    config.slack.bot_token = Some(SecretString::from("xoxb-test"));
    config.slack.app_token = Some(SecretString::from("xapp-test"));
    config.loops.lease_ttl = Duration::from_secs(5);
    // Tests run at any hour of the real clock, or at fixed times, against a fake Slack whose
    // users are all in one time zone: working hours are off unless a test turns them on.
    config.staffbot.working_hours_enforced = false;
    config
}

fn is_message(call: &ApiCall) -> bool {
    MESSAGE_METHODS.contains(&call.method.as_str())
        && call.status == 200
        && call.response.get("ok") == Some(&Value::Bool(true))
}

impl Harness {
    /// A fake Slack and a database, no daemon yet (set up data first, then [`Harness::start`]).
    pub async fn new() -> Harness {
        let fake = FakeSlack::start(FakeSlackConfig::default()).await;
        let t = TestDb::new().await;
        let config = config_for(&fake, &t.url);
        Harness {
            fake,
            t,
            config,
            daemon: None,
            replicas: Vec::new(),
            read: 0,
            finished: false,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.t.db
    }

    /// Where the daemon serves `/metrics` and `/healthz` (with `metrics.listen` set).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.daemon.as_ref().and_then(|d| d.metrics_addr)
    }

    /// The daemon's name in leases and claims.
    pub fn daemon_name(&self) -> Option<&str> {
        self.daemon.as_ref().map(|d| d.name.as_str())
    }

    /// Starts the daemon and waits until it holds a Socket Mode connection.
    pub async fn start(&mut self) {
        let daemon = self.spawn_daemon().await;
        self.daemon = Some(daemon);
    }

    /// A daemon on this database and fake Slack, once connected.
    async fn spawn_daemon(&self) -> Daemon {
        let hellos = self.fake.hellos_sent();
        let daemon = Daemon::start(
            &self.config,
            self.t.db.clone(),
            Arc::new(SystemClock),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("daemon starts");
        assert!(
            self.fake.wait_for_hellos(hellos + 1, WAIT).await,
            "the daemon connected over Socket Mode"
        );
        daemon
    }

    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        for d in self.replicas.drain(..) {
            d.stop().await;
        }
    }

    /// Sends `/staffbot <text>` as `user` and returns the ack (checked to be fast).
    pub async fn slash(&self, user: &str, text: &str) -> Ack {
        let id = self.fake.send_slash(user, user, text).await;
        self.ack(&id).await
    }

    pub async fn ack(&self, envelope_id: &str) -> Ack {
        let ack = self
            .fake
            .wait_ack(envelope_id, WAIT)
            .await
            .unwrap_or_else(|| panic!("no ack for envelope {envelope_id}"));
        assert!(
            ack.latency < Duration::from_secs(2),
            "ack took {:?}",
            ack.latency
        );
        ack
    }

    /// The reply text of a slash command (the ack payload's `text`).
    pub async fn reply(&self, user: &str, text: &str) -> Value {
        let ack = self.slash(user, text).await;
        let payload = ack.payload.expect("slash commands are acked with a reply");
        assert_eq!(payload["response_type"], "ephemeral", "{payload}");
        payload
    }

    fn messages(&self) -> Vec<ApiCall> {
        self.fake.calls().into_iter().filter(is_message).collect()
    }

    /// Waits for the next message the bot posted or updated, and marks it read.
    pub async fn next_message(&mut self) -> ApiCall {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let messages = self.messages();
            if let Some(call) = messages.get(self.read) {
                self.read += 1;
                return call.clone();
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !remaining.is_zero(),
                "no new message from the bot within {WAIT:?}"
            );
            // Wake on the next call of any message method.
            let counts: Vec<usize> = MESSAGE_METHODS
                .iter()
                .map(|m| self.fake.calls_to(m).len())
                .collect();
            let waits = MESSAGE_METHODS
                .iter()
                .zip(&counts)
                .map(|(m, n)| Box::pin(self.fake.wait_for_calls(m, n + 1, remaining)));
            futures_util::future::select_all(waits).await;
        }
    }

    /// The next message must be a `chat.postMessage` to `channel`; returns its text.
    pub async fn next_post(&mut self, channel: &str) -> String {
        let call = self.next_message().await;
        assert_eq!(call.method, "chat.postMessage", "{call:?}");
        assert_eq!(call.body["channel"], channel, "{call:?}");
        call.body["text"].as_str().unwrap_or_default().to_string()
    }

    /// An outbox sender against the fake, without a daemon (the test runs its rounds), whose
    /// claims last `claim_ttl`.
    pub fn sender(&self, name: &str, claim_ttl: Duration) -> staffbot::delivery::Sender {
        let client = staffbot::slack::web::build_client(&self.fake.api_url()).expect("client");
        let web = Arc::new(staffbot::slack::web::MorphismWeb {
            client,
            bot_token: slack_morphism::prelude::SlackApiToken::new("xoxb-test".to_string().into()),
            timeout: Duration::from_secs(5),
        });
        let to_slack = staffbot::slack::transport::SlackTransport::new(
            self.db().clone(),
            web,
            Arc::new(SystemClock),
        );
        staffbot::delivery::Sender::new(
            self.db().clone(),
            Arc::new(SystemClock),
            claim_ttl,
            name.into(),
        )
        .with_transport(Arc::new(to_slack))
        .with_call_timeout(Duration::from_secs(5))
    }

    /// Keeps the daemons' own loops out of the way (all their leases): the test drives rounds
    /// with [`Harness::tick`] and the loops' `run_once`.
    pub async fn hold_loop_leases(&self) {
        let names = staffbot::loops::Loop::ALL.map(|l| l.name());
        for name in names.iter().chain([&staffbot::email::inbox::LEASE]) {
            staffbot::lease::try_lease(self.db(), name, "test", Duration::from_secs(3600))
                .await
                .expect("lease")
                .expect("the test holds the loop's lease");
        }
    }

    /// One batching round at `now` with a fixed seed.
    pub async fn tick(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        seed: u64,
    ) -> staffbot::staffing::batch::BatchReport {
        use rand::SeedableRng;
        let lease =
            staffbot::lease::try_lease(self.db(), "staffing", "test", Duration::from_secs(3600))
                .await
                .expect("lease")
                .expect("held by the test");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Time zones are asked for first, as the daemon's staffing loop does.
        if self.config.staffbot.working_hours_enforced {
            staffbot::loops::ask_time_zones(self.db(), &lease, now)
                .await
                .expect("time zones asked");
        }
        // The configured policy, as the daemon's staffing loop runs it.
        staffbot::staffing::batch::run_once_with(
            self.db(),
            &lease,
            staffbot::staffing::batch::BatchSettings::of(&self.config),
            staffbot::staffing::policy::Policy::of(&self.config.staffbot),
            now,
            &mut rng,
        )
        .await
        .expect("batch round")
    }

    /// Reads the next `n` messages (any order is accepted by the caller).
    pub async fn next_messages(&mut self, n: usize) -> Vec<ApiCall> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_message().await);
        }
        out
    }

    /// Starts a second daemon on the same database and fake Slack (a replica).
    pub async fn start_replica(&mut self) {
        let daemon = self.spawn_daemon().await;
        self.replicas.push(daemon);
    }

    /// Stops the daemon and checks that every message was read.
    pub async fn finish(mut self) {
        self.stop().await;
        self.finished = true;
        let unread: Vec<ApiCall> = self.messages().into_iter().skip(self.read).collect();
        assert!(
            unread.is_empty(),
            "the test did not read these bot messages: {unread:#?}"
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!(
                "a Harness must end with `finish().await` (it checks that every message was read)"
            );
        }
    }
}

impl Harness {
    /// The next `n` messages' texts, sorted (for messages whose order depends on pacing).
    pub async fn texts(&mut self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = self
            .next_messages(n)
            .await
            .iter()
            .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
            .collect();
        out.sort();
        out
    }

    /// Waits until Slack has received `n` ephemeral replies through `response_url`; their texts.
    pub async fn response_texts(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let posts = self.fake.response_posts();
            if posts.len() >= n {
                return posts
                    .iter()
                    .map(|b| b["text"].as_str().unwrap_or_default().to_string())
                    .collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} response_url replies within {WAIT:?}",
                posts.len()
            );
            // Wakes on any call to the fake (or after a short while).
            self.fake
                .wait_for_calls("never.called", 1, Duration::from_millis(20))
                .await;
        }
    }

    /// Waits until envelope `id` has been acked `n` times.
    pub async fn acked_times(&self, id: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .fake
            .acks()
            .iter()
            .filter(|a| a.envelope_id == id)
            .count()
            < n
        {
            assert!(tokio::time::Instant::now() < deadline, "ack {n} of {id}");
            self.fake
                .wait_for_calls("never.called", 1, Duration::from_millis(20))
                .await;
        }
    }
}

/// The channel of a `chat.update` and the outcome it shows under the offer.
pub fn update_text(call: &ApiCall) -> (String, String) {
    assert_eq!(call.method, "chat.update", "{call:?}");
    let outcome = call.body["blocks"][1]["elements"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let channel = call.body["channel"].as_str().unwrap_or_default();
    (channel.to_string(), outcome)
}

/// Messages keyed by the channel they went to (their order across channels depends on pacing).
pub fn by_channel(calls: Vec<ApiCall>) -> std::collections::HashMap<String, ApiCall> {
    let n = calls.len();
    let map: std::collections::HashMap<String, ApiCall> = calls
        .into_iter()
        .map(|c| {
            (
                c.body["channel"].as_str().unwrap_or_default().to_string(),
                c,
            )
        })
        .collect();
    assert_eq!(map.len(), n, "one message per channel expected");
    map
}

/// Messages by the channel they went to, each channel's in the order they were posted (the order
/// across channels depends on pacing).
pub fn per_channel(calls: Vec<ApiCall>) -> std::collections::HashMap<String, Vec<ApiCall>> {
    let mut map: std::collections::HashMap<String, Vec<ApiCall>> = Default::default();
    for c in calls {
        let channel = c.body["channel"].as_str().unwrap_or_default().to_string();
        map.entry(channel).or_default().push(c);
    }
    map
}

/// The texts of messages.
pub fn texts_of(calls: &[ApiCall]) -> Vec<&str> {
    calls.iter().map(text).collect()
}

/// The text of a message.
pub fn text(call: &ApiCall) -> &str {
    call.body["text"].as_str().unwrap_or_default()
}

/// The project channel of a [`Team`].
pub const CHANNEL: &str = "G0PROJ";

/// A running daemon, a project in [`CHANNEL`] whose one step `write` needs certification
/// `writer` (reviewed once; its details say `About 800 words for project <id>`), certified
/// workers, and the project's one task. The test holds every loop's lease: it drives the
/// batching rounds itself ([`Team::offers`]).
pub struct Team {
    pub h: Harness,
    pub project: i64,
    pub task: i64,
    /// The project's description.
    pub description: String,
}

/// A change to the daemon's configuration before it starts.
type Configure = Box<dyn FnOnce(&mut Config)>;

/// How to build a [`Team`]: `TeamSpec::new().workers(&["a", "b"]).start().await`.
#[must_use]
pub struct TeamSpec {
    description: String,
    batch_size: u32,
    workers: Vec<(String, i32, bool)>,
    /// Workers at `<name>@example.com`: preference, and whether they have a Slack id.
    email_workers: Vec<(String, staffbot::db::Notify, bool)>,
    reviewers: Vec<String>,
    admins: Vec<String>,
    auto_review: bool,
    replica: bool,
    /// The daemon's own mailbox loop runs (the test does not hold the `mail` lease).
    mail_loop: bool,
    staffing_channel: Option<String>,
    notifications_channel: Option<String>,
    /// The step's detailed description is this Rhai script (else a template).
    description_script: Option<String>,
    hours: Option<f64>,
    hours_script: Option<String>,
    configure: Vec<Configure>,
}

/// A [`Team`] with `workers` (priority 1 each) on a project described `Mayor race`.
pub async fn team(workers: &[&str]) -> Team {
    TeamSpec::new().workers(workers).start().await
}

impl TeamSpec {
    /// Batches of 5, project `Mayor race`, no workers yet, one daemon.
    pub fn new() -> TeamSpec {
        TeamSpec {
            description: "Mayor race".into(),
            batch_size: 5,
            workers: Vec::new(),
            email_workers: Vec::new(),
            reviewers: Vec::new(),
            admins: Vec::new(),
            auto_review: false,
            replica: false,
            mail_loop: false,
            staffing_channel: None,
            notifications_channel: None,
            description_script: None,
            hours: None,
            hours_script: None,
            configure: Vec::new(),
        }
    }
    /// The step's detailed description is the Rhai script `source` (`describe.rhai`).
    pub fn description_script(mut self, source: &str) -> Self {
        self.description_script = Some(source.into());
        self
    }
    pub fn described(mut self, description: &str) -> Self {
        self.description = description.into();
        self
    }
    pub fn batch(mut self, size: u32) -> Self {
        self.batch_size = size;
        self
    }
    /// The step's tasks take `hours` (`assignable_hours_function` `staffbot.hours`).
    pub fn hours(mut self, hours: f64) -> Self {
        self.hours = Some(hours);
        self
    }
    /// The step's tasks take what script `hours.rhai` (`source`) returns, with kwargs `base: 1.5`.
    pub fn hours_script(mut self, source: &str) -> Self {
        self.hours_script = Some(source.into());
        self
    }
    /// Workers of priority 1, staffbot enabled.
    pub fn workers(mut self, names: &[&str]) -> Self {
        for name in names {
            self = self.worker(name, 1);
        }
        self
    }
    pub fn worker(mut self, name: &str, priority: i32) -> Self {
        self.workers.push((name.into(), priority, true));
        self
    }
    /// A certified worker (priority 1) at `<name>@example.com` who prefers `notify`, with a
    /// Slack id or not.
    pub fn email_worker(mut self, name: &str, notify: staffbot::db::Notify, slack: bool) -> Self {
        self.email_workers.push((name.into(), notify, slack));
        self
    }
    /// A certified worker with staffbot turned off.
    pub fn disabled(mut self, name: &str, priority: i32) -> Self {
        self.workers.push((name.into(), priority, false));
        self
    }
    /// A worker certified to review `write` (priority 1; a reviewer must hold the entry-level
    /// certification too, with staffbot off for it here, so they are offered reviews only).
    pub fn reviewer(mut self, name: &str) -> Self {
        self.reviewers.push(name.into());
        self
    }
    /// A staffing admin (`--admin`, no certification).
    pub fn admin(mut self, name: &str) -> Self {
        self.admins.push(name.into());
        self
    }
    /// Reviewers are staffed automatically (`staffbot_autoassign` for the reviewer role).
    pub fn auto_review(mut self) -> Self {
        self.auto_review = true;
        self
    }
    /// The daemon reads the mailbox itself (its `mail` loop runs; other loops stay the test's).
    pub fn daemon_reads_mail(mut self) -> Self {
        self.mail_loop = true;
        self
    }
    /// A second daemon on the same database.
    pub fn replica(mut self) -> Self {
        self.replica = true;
        self
    }
    /// Staffing notices go to channel `id` (`staffbot.staffing_group_id`).
    pub fn staffing_channel(mut self, id: &str) -> Self {
        self.staffing_channel = Some(id.into());
        self
    }
    /// A copy of every status notice goes to channel `id` (`staffbot.notifications_channel`).
    pub fn notifications_channel(mut self, id: &str) -> Self {
        self.notifications_channel = Some(id.into());
        self
    }
    pub fn config(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    pub async fn start(self) -> Team {
        use crate::common::{flow, step, worker};
        let mut h = Harness::new().await;
        h.config.staffbot.worker_batch_size = self.batch_size;
        if let Some(id) = &self.staffing_channel {
            h.config.staffbot.staffing_group_id = Some(id.clone());
            h.fake.add_channel(id, "staffing", &[]);
        }
        if let Some(id) = &self.notifications_channel {
            h.config.staffbot.notifications_channel = Some(id.clone());
            h.fake.add_channel(id, "notifications", &[]);
        }
        for f in self.configure {
            f(&mut h.config);
        }
        let reviewer = if self.auto_review {
            "staffbot_autoassign"
        } else {
            "anyone_certified"
        };
        let details = match &self.description_script {
            Some(_) => serde_json::json!({"path": "script:describe.rhai"}),
            None => serde_json::json!({"path": "staffbot.template", "kwargs": {
                "template": "About {{ words }} words for project {{ project.id }}", "words": 800}}),
        };
        let write = step("write", "writer")
            .described("Write the story")
            .reviewed(1)
            .policy("reviewer", reviewer, Value::Null)
            .with("detailed_description_function", details);
        let write = match self.hours {
            Some(h) => write.with(
                "assignable_hours_function",
                serde_json::json!({"path": "staffbot.hours", "kwargs": {"hours": h}}),
            ),
            None => write,
        };
        let write = match self.hours_script {
            Some(_) => write.with(
                "assignable_hours_function",
                serde_json::json!({"path": "script:hours.rhai", "kwargs": {"base": 1.5}}),
            ),
            None => write,
        };
        let mut newsroom = flow(&["writer", "other"], vec![write]).named("news", "Newsroom");
        if let Some(source) = &self.description_script {
            newsroom = newsroom.file("describe.rhai", source);
        }
        if let Some(source) = &self.hours_script {
            newsroom = newsroom.file("hours.rhai", source);
        }
        let project = newsroom
            .project(h.db(), &self.description, Some(CHANNEL))
            .await;
        for (name, priority, enabled) in &self.workers {
            let w = worker(name).certified(
                "writer",
                staffbot::db::Role::EntryLevel,
                *priority,
                *enabled,
            );
            w.add(h.db()).await;
            h.fake.add_user(&crate::common::slack_id(name), name);
        }
        for (name, notify, slack) in &self.email_workers {
            let mut w = worker(name)
                .certified("writer", staffbot::db::Role::EntryLevel, 1, true)
                .email(&format!("{name}@example.com"), *notify);
            if *slack {
                h.fake.add_user(&crate::common::slack_id(name), name);
            } else {
                w = w.no_slack();
            }
            w.add(h.db()).await;
        }
        for name in &self.reviewers {
            let w = worker(name)
                .certified("writer", staffbot::db::Role::EntryLevel, 0, false)
                .certified("writer", staffbot::db::Role::Reviewer, 1, true);
            w.add(h.db()).await;
            h.fake.add_user(&crate::common::slack_id(name), name);
        }
        for name in &self.admins {
            worker(name).admin().add(h.db()).await;
            h.fake.add_user(&crate::common::slack_id(name), name);
        }
        h.fake.add_channel(CHANNEL, "mayor-race", &[]);
        h.hold_loop_leases().await;
        if self.mail_loop {
            staffbot::lease::release(h.db(), staffbot::email::inbox::LEASE, "test")
                .await
                .expect("release");
        }
        h.start().await;
        if self.replica {
            h.start_replica().await;
        }
        let task = crate::common::first_task(h.db()).await;
        Team {
            h,
            project,
            task,
            description: self.description,
        }
    }
}

impl Team {
    /// Opens a staffing request (as `/staffbot staff` does) and reads the channel's "Got it!".
    pub async fn staff(&mut self) -> staffbot::db::entities::staffing_request::Model {
        let r = crate::common::staff(self.h.db(), self.task).await;
        assert_eq!(
            self.h.next_post(CHANNEL).await,
            format!("Got it! I will start staffing task {}!", self.task)
        );
        r
    }

    /// One batching round now; returns the next `n` messages (offers, and the pool's end).
    pub async fn offers(&mut self, n: usize) -> Vec<ApiCall> {
        self.h.tick(chrono::Utc::now(), 1).await;
        self.h.next_messages(n).await
    }

    /// [`Team::staff`], then one round whose `n` messages are read.
    pub async fn staffed(&mut self, n: usize) -> Vec<ApiCall> {
        self.staff().await;
        self.offers(n).await
    }

    pub async fn worker(&self, name: &str) -> staffbot::db::entities::worker::Model {
        crate::common::find_worker(self.h.db(), name).await
    }

    /// `task assign` to `name`; reads the channel's welcome and status notice.
    pub async fn assign(&mut self, name: &str) -> staffbot::db::entities::worker::Model {
        crate::common::assign(self.h.db(), self.task, name).await;
        assert_eq!(
            self.h.next_post(CHANNEL).await,
            crate::common::welcome(&crate::common::slack_id(name))
        );
        let picked_up = self.notice(crate::common::PICKED_UP, name);
        assert_eq!(self.h.next_post(CHANNEL).await, picked_up);
        self.worker(name).await
    }

    /// The channel's status notice of the team's task: status line `line`, naming `name`.
    pub fn notice(&self, line: &str, name: &str) -> String {
        crate::common::notice(line, name, &self.description, "write", self.task)
    }

    /// The latest offer made to `name`.
    pub async fn inquiry_of(&self, name: &str) -> staffbot::db::entities::staffing_inquiry::Model {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        use staffbot::db::entities::staffing_inquiry;
        let w = self.worker(name).await;
        staffing_inquiry::Entity::find()
            .filter(staffing_inquiry::Column::WorkerId.eq(w.id))
            .order_by_desc(staffing_inquiry::Column::Id)
            .one(self.h.db())
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("{name} was asked"))
    }

    /// `name` clicks `action` (`offer_accept` or `offer_reject`) on the offer sent to `owner`;
    /// waits for the ack (a bare one); returns the envelope id.
    pub async fn click(&self, name: &str, action: &str, owner: &str) -> String {
        self.click_with(name, action, owner, serde_json::json!({}))
            .await
    }

    /// `name` accepts their own offer.
    pub async fn accept(&self, name: &str) -> String {
        self.click(name, "offer_accept", name).await
    }

    /// `name` rejects their own offer.
    pub async fn reject(&self, name: &str) -> String {
        self.click(name, "offer_reject", name).await
    }

    /// [`Team::click`] with `overrides` merged over the payload (e.g. its `token`).
    pub async fn click_with(
        &self,
        name: &str,
        action: &str,
        owner: &str,
        overrides: Value,
    ) -> String {
        let inquiry = self.inquiry_of(owner).await;
        let id = self
            .h
            .fake
            .send_block_action_with(
                &crate::common::slack_id(name),
                action,
                &inquiry.id.to_string(),
                inquiry.dm_channel.as_deref().unwrap_or("D0"),
                inquiry.dm_ts.as_deref().unwrap_or("1.1"),
                overrides,
            )
            .await;
        let ack = self.h.ack(&id).await;
        assert!(ack.payload.is_none(), "button clicks get a bare ack");
        id
    }
}

impl Harness {
    /// The lease of loop `name`, held by the test (the daemons' own loops then skip it).
    pub async fn lease(&self, name: &str) -> staffbot::lease::LeaseProof {
        staffbot::lease::try_lease(self.db(), name, "test", Duration::from_secs(3600))
            .await
            .expect("lease")
            .expect("held by the test")
    }
}

impl Harness {
    /// The worker named `name` clicks `action` (`offer_accept` or `offer_reject`) on the DM of
    /// offer `inquiry`; waits for the ack; returns the envelope id.
    pub async fn click(
        &self,
        name: &str,
        action: &str,
        inquiry: &staffbot::db::entities::staffing_inquiry::Model,
    ) -> String {
        let id = self
            .fake
            .send_block_action(
                &crate::common::slack_id(name),
                action,
                &inquiry.id.to_string(),
                inquiry.dm_channel.as_deref().unwrap_or("D0"),
                inquiry.dm_ts.as_deref().unwrap_or("1.1"),
            )
            .await;
        self.ack(&id).await;
        id
    }
}

impl Harness {
    /// Sends a `/staffbot` slash command with this payload (fields the fake does not default);
    /// returns the reply the ack carried.
    pub async fn slash_with(&self, payload: Value) -> Value {
        let id = self.fake.send_slash_with(payload).await;
        self.ack(&id).await.payload.expect("a reply")
    }
}
