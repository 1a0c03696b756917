//! The daemon's real wiring against the fake Slack and a real database. Every message the bot
//! posts or updates must be read by the test (`next_post`, `next_update`); `finish` fails the
//! test otherwise, and a harness dropped without `finish` fails too.

use std::sync::Arc;
use std::time::Duration;

use fake_slack::{Ack, ApiCall, FakeSlack, FakeSlackConfig};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use serde_json::Value;
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
    pub fn sender(&self, name: &str, claim_ttl: Duration) -> staffbot::slack::sender::Sender {
        let client = staffbot::slack::web::build_client(&self.fake.api_url()).expect("client");
        staffbot::slack::sender::Sender::new(
            self.db().clone(),
            Arc::new(staffbot::slack::web::MorphismWeb {
                client,
                bot_token: slack_morphism::prelude::SlackApiToken::new(
                    "xoxb-test".to_string().into(),
                ),
                timeout: Duration::from_secs(5),
            }),
            Arc::new(SystemClock),
            claim_ttl,
            name.into(),
        )
        .with_call_timeout(Duration::from_secs(5))
    }

    /// Keeps the daemons' own loops out of the way (all their leases): the test drives rounds
    /// with [`Harness::tick`] and the loops' `run_once`.
    pub async fn hold_loop_leases(&self) {
        for which in staffbot::loops::Loop::ALL {
            staffbot::loops::try_lease(self.db(), which.name(), "test", Duration::from_secs(3600))
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
            staffbot::loops::try_lease(self.db(), "staffing", "test", Duration::from_secs(3600))
                .await
                .expect("lease")
                .expect("held by the test");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        staffbot::staffing::batch::run_once(
            self.db(),
            &lease,
            staffbot::staffing::batch::BatchSettings {
                batch_size: self.config.staffbot.worker_batch_size,
                frequency: self.config.staffbot.batch_frequency,
            },
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
