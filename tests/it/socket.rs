//! staffbot's own Socket Mode connections against the fake Slack: a refresh opens the
//! replacement before the old connection goes and loses or repeats no envelope; a silent (half-open)
//! connection is replaced; `apps.connections.open` failures are retried with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use slack_sim::{FakeSlack, FakeSlackConfig, Fault};
use staffbot::clock::SystemClock;
use staffbot::daemon::Daemon;
use staffbot::slack::socket::SocketSettings;

use crate::common::TestDb;
use crate::harness::{WAIT, config_for};

/// One connection with timings short enough for a test.
fn quick() -> SocketSettings {
    SocketSettings {
        ping_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(600),
        first_backoff: Duration::from_millis(100),
        stable_after: Duration::from_secs(60),
        refresh_grace: Duration::from_secs(1),
        ..SocketSettings::new(1)
    }
}

/// A daemon with `settings`, connected to a fresh fake Slack.
async fn connected(settings: SocketSettings) -> (FakeSlack, TestDb, Daemon) {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = TestDb::new().await;
    let config = config_for(&fake, &t.url);
    let daemon = Daemon::start_with(
        &config,
        t.db.clone(),
        Arc::new(SystemClock),
        tokio_util::sync::CancellationToken::new(),
        settings,
    )
    .await
    .expect("daemon starts");
    assert!(fake.wait_for_hellos(1, WAIT).await, "connected");
    (fake, t, daemon)
}

/// `/staffbot help` `n` times, one after the other; the envelope ids.
async fn slash_commands(fake: &FakeSlack, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(fake.send_slash("U0ADMIN", "erin", "help").await);
    }
    ids
}

/// Every envelope acked, and each exactly once.
async fn acked_once_each(fake: &FakeSlack, ids: &[String]) {
    for id in ids {
        assert!(fake.wait_ack(id, WAIT).await.is_some(), "no ack for {id}");
    }
    let mut acks: HashMap<String, usize> = HashMap::new();
    for ack in fake.acks() {
        *acks.entry(ack.envelope_id).or_default() += 1;
    }
    for id in ids {
        assert_eq!(acks.get(id), Some(&1), "acks for {id}");
    }
}

#[tokio::test]
async fn a_refresh_opens_the_replacement_first_and_loses_no_envelope() {
    let (fake, _t, daemon) = connected(quick()).await;
    let opens = fake.connection_opens();
    let before = slash_commands(&fake, 5).await;

    // Slack's warning: the old connection stays open (and may still get envelopes) while the
    // daemon opens its replacement, so for a while both are up.
    fake.send_disconnect_frame("warning").await;
    let during = slash_commands(&fake, 5).await;
    assert!(
        fake.wait_for_connections(2, WAIT).await,
        "the replacement opened while the old connection was still up"
    );
    assert_eq!(fake.connection_opens(), opens + 1, "one new connection");
    // The daemon retires the old one itself once its grace is over.
    assert!(
        fake.wait_for_connections_at_most(1, WAIT).await,
        "the old connection was closed"
    );

    // Slack's own refresh, with envelopes on the way: the connection is closed by Slack.
    let sending = tokio::spawn({
        let fake = fake.clone();
        async move { slash_commands(&fake, 20).await }
    });
    fake.disconnect("refresh_requested").await;
    let around = sending.await.expect("sent");
    let after = slash_commands(&fake, 5).await;
    assert_eq!(fake.connection_opens(), opens + 2, "one more connection");

    let all: Vec<String> = [before, during, around, after].concat();
    acked_once_each(&fake, &all).await;
    assert_eq!(daemon.socket.envelopes.load(Ordering::SeqCst), all.len());
    daemon.stop().await;
}

#[tokio::test]
async fn a_connection_that_goes_silent_is_replaced() {
    let (fake, _t, daemon) = connected(quick()).await;
    let (opens, hellos) = (fake.connection_opens(), fake.hellos_sent());

    // The peer vanishes without a FIN: no pongs, no frames, the TCP connection stays up.
    fake.stall_sockets();
    assert!(
        fake.wait_for_hellos(hellos + 1, WAIT).await,
        "a new connection after the pings went unanswered"
    );
    assert_eq!(fake.connection_opens(), opens + 1);
    let ids = slash_commands(&fake, 3).await;
    acked_once_each(&fake, &ids).await;
    // The silent connection no longer counts as open (/healthz, staffbot_socket_connections).
    assert_eq!(daemon.socket.open_connections(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn failing_connection_opens_are_retried_with_backoff() {
    let (fake, _t, daemon) = connected(quick()).await;
    let (hellos, calls) = (
        fake.hellos_sent(),
        fake.calls_to("apps.connections.open").len(),
    );

    // Two HTTP 500s, then two `ok:false` answers, then Slack answers again.
    fake.fail_next("apps.connections.open", Fault::ServerError, 2);
    fake.fail_next(
        "apps.connections.open",
        Fault::ApiError("internal_error".into()),
        2,
    );
    let dropped = Instant::now();
    fake.drop_sockets().await;
    assert!(
        fake.wait_for_hellos(hellos + 1, Duration::from_secs(20))
            .await,
        "connected once Slack answered"
    );
    let waited = dropped.elapsed();

    let opens: Vec<(u16, bool)> = fake.calls_to("apps.connections.open")[calls..]
        .iter()
        .map(|c| (c.status, c.response["ok"] == true))
        .collect();
    assert_eq!(
        opens,
        [
            (500, false),
            (500, false),
            (200, false),
            (200, false),
            (200, true)
        ],
        "four failures, then one success"
    );
    // Waits of 100 ms doubling per failure, each at least halved by the jitter: 50 (after the
    // lost connection) + 100 + 200 + 400 + 800 ms at least; retrying at once would take a few ms.
    assert!(
        waited >= Duration::from_millis(1550),
        "retried after {waited:?}"
    );
    let ids = slash_commands(&fake, 2).await;
    acked_once_each(&fake, &ids).await;
    daemon.stop().await;
}

/// The fake's App Home and modal surface through staffbot's own Web client and slack-morphism's
/// models: `views.publish`/`views.open` answers (and refusals) classify as the outbox expects,
/// and the `app_home_opened`, Home click and `view_submission` payloads parse as Slack's.
#[tokio::test]
async fn home_and_modal_payloads_fit_the_client_models() {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use slack_morphism::prelude::*;
    use staffbot::slack::web::{Delivery, MorphismWeb, SlackWeb, build_client};
    use tokio_tungstenite::tungstenite::Message;

    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let web = MorphismWeb {
        client: build_client(&fake.api_url()).expect("client"),
        bot_token: SlackApiToken::new("xoxb-test".into()),
        timeout: WAIT,
    };
    let plain = |t: &str| json!({"type": "plain_text", "text": t});
    let home = json!({"type": "home", "blocks": [
        {"type": "actions", "block_id": "offer-1", "elements": [
            {"type": "button", "action_id": "offer_accept", "value": "1", "style": "primary",
             "text": plain("Accept"),
             "confirm": {"title": plain("Accept?"), "text": plain("Take task 1?"),
                         "confirm": plain("Accept"), "deny": plain("Cancel")}}]}]});
    let published = web
        .call("views.publish", &json!({"user_id": "U1", "view": home}))
        .await;
    assert!(matches!(&published, Delivery::Sent(v) if v["view"]["type"] == "home"));
    let too_many = json!({"type": "home", "blocks": vec![json!({"type": "divider"}); 101]});
    assert_eq!(
        web.call("views.publish", &json!({"user_id": "U1", "view": too_many}))
            .await,
        Delivery::Permanent("invalid_arguments".into())
    );

    // A plain WebSocket client reads what the fake sends.
    let app_token = SlackApiToken::new("xapp-test".into());
    let open: Value = web
        .client
        .open_session(&app_token)
        .http_session_api
        .http_post("apps.connections.open", &json!({}), None)
        .await
        .expect("apps.connections.open");
    let url = open["url"].as_str().expect("url").to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    let mut next = async || loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] != "hello" {
                return v;
            }
        }
    };

    fake.send_app_home_opened("U1").await;
    let event: SlackPushEvent =
        serde_json::from_value(next().await["payload"].take()).expect("app_home_opened parses");
    let SlackPushEvent::EventCallback(callback) = event else {
        panic!("not an event callback: {event:?}");
    };
    assert!(matches!(
        callback.event,
        SlackEventCallbackBody::AppHomeOpened(SlackAppHomeOpenedEvent { view: Some(_), .. })
    ));

    fake.click_home("U1", "offer_accept", "1").await;
    let click: SlackInteractionEvent =
        serde_json::from_value(next().await["payload"].take()).expect("home click parses");
    let SlackInteractionEvent::BlockActions(click) = click else {
        panic!("not block_actions: {click:?}");
    };
    assert!(matches!(
        click.container,
        SlackInteractionActionContainer::View(_)
    ));
    assert!(click.response_url.is_none());

    let modal = json!({"type": "modal", "title": plain("Restaff"), "submit": plain("Restaff"),
        "blocks": [{"type": "input", "block_id": "worker", "label": plain("Worker"),
                    "element": {"type": "users_select", "action_id": "pick"}}]});
    let opened = web
        .call(
            "views.open",
            &json!({"trigger_id": click.trigger_id.to_string(), "view": modal}),
        )
        .await;
    assert!(matches!(&opened, Delivery::Sent(v) if v["view"]["type"] == "modal"));
    assert_eq!(
        web.call(
            "views.open",
            &json!({"trigger_id": click.trigger_id.to_string(), "view": modal})
        )
        .await,
        Delivery::Permanent("exchanged_trigger_id".into())
    );

    let values = json!({"worker": {"pick": {"type": "users_select", "selected_user": "U2"}}});
    let submitting = tokio::spawn({
        let fake = fake.clone();
        async move { fake.submit_modal("U1", values).await }
    });
    let mut envelope = next().await;
    let submission: SlackInteractionEvent =
        serde_json::from_value(envelope["payload"].take()).expect("view_submission parses");
    assert!(matches!(
        submission,
        SlackInteractionEvent::ViewSubmission(_)
    ));
    let errors = SlackViewSubmissionResponse::Errors(SlackViewSubmissionErrorsResponse::new(
        [("worker".to_string(), "Not a worker".to_string())].into(),
    ));
    let ack = json!({"envelope_id": envelope["envelope_id"], "payload": errors});
    ws.send(Message::Text(ack.to_string().into()))
        .await
        .expect("ack");
    submitting.await.expect("submitted");
    assert_eq!(
        fake.modal_errors("U1"),
        Some(json!({"worker": "Not a worker"}))
    );
    assert!(fake.protocol_errors().is_empty());
}
