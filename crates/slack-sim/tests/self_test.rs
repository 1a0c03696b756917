//! The fake's own tests: a tungstenite client and raw HTTP/1.1 requests stand in for the bot.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_sim::{FakeSlack, FakeSlackConfig, Fault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(5);

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
async fn http(
    fake: &FakeSlack,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let mut stream = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        fake.addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

async fn api(fake: &FakeSlack, method: &str, token: &str, body: Value) -> HttpReply {
    let auth = format!("Bearer {token}");
    http(
        fake,
        "POST",
        &format!("/api/{method}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        &body.to_string(),
    )
    .await
}

async fn open_url(fake: &FakeSlack) -> String {
    let reply = api(fake, "apps.connections.open", "xapp-test", json!({})).await;
    assert_eq!(reply.body["ok"], true, "{}", reply.body);
    reply.body["url"].as_str().unwrap().to_string()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame ok");
        if let WsMessage::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn socket_mode_slash_command_round_trip() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let url = open_url(&fake).await;
    assert!(url.starts_with(&format!("ws://{}/link/?ticket=", fake.addr())));
    assert!(url.ends_with("&app_id=A0STAFFBOT"));
    assert_eq!(fake.connection_opens(), 1);

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}&debug_reconnects=true"))
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], "A0STAFFBOT");
    assert!(hello["debug_info"]["host"].is_string());
    assert!(fake.wait_for_connections(1, WAIT).await);
    assert!(fake.wait_for_hellos(1, WAIT).await);

    // Pings are answered (the fake sends nothing else meanwhile).
    ws.send(WsMessage::Ping(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let pong = match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(WsMessage::Pong(p)))) => p,
        other => panic!("expected a pong, got {other:?}"),
    };
    assert_eq!(pong.as_ref(), &[1, 2, 3]);

    let id = fake.send_slash("U1", "alice", "help").await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["envelope_id"], id);
    assert_eq!(envelope["accepts_response_payload"], true);
    let p = &envelope["payload"];
    assert_eq!(p["command"], "/staffbot");
    assert_eq!(p["user_id"], "U1");
    assert_eq!(p["user_name"], "alice");
    assert_eq!(p["text"], "help");
    assert_eq!(p["team_id"], "T0TEAM");
    assert_eq!(p["api_app_id"], "A0STAFFBOT");
    let response_url = p["response_url"].as_str().unwrap().to_string();
    assert!(response_url.starts_with(&format!("http://{}/response/", fake.addr())));

    let ack = json!({"envelope_id": id, "payload": {"text": "Working on it"}});
    ws.send(WsMessage::Text(ack.to_string().into()))
        .await
        .unwrap();
    let got = fake.wait_ack(&id, WAIT).await.expect("ack recorded");
    assert_eq!(got.payload, Some(json!({"text": "Working on it"})));
    assert!(got.latency < WAIT);
    assert_eq!(fake.acks().len(), 1);

    // response_url posts are recorded.
    let path = response_url.split_once(&fake.addr().to_string()).unwrap().1;
    let reply = http(
        &fake,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        r#"{"text":"done","replace_original":true}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        fake.response_posts(),
        vec![json!({"text":"done","replace_original":true})]
    );

    // Block actions go out as interactive envelopes.
    let id = fake
        .send_block_action("U1", "offer_accept", "42", "DU1", "1700000000.000100")
        .await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["envelope_id"], id);
    assert_eq!(envelope["type"], "interactive");
    assert_eq!(
        envelope["payload"]["actions"][0]["action_id"],
        "offer_accept"
    );
    assert_eq!(envelope["payload"]["container"]["channel_id"], "DU1");

    // disconnect: frame, then Close, then the connection is gone.
    fake.disconnect("refresh_requested").await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["type"], "disconnect");
    assert_eq!(frame["reason"], "refresh_requested");
    assert_eq!(frame["debug_info"]["host"], "wss-111.slack.com");
    assert_eq!(fake.connections(), 0);
}

#[tokio::test]
async fn tickets_are_single_use_and_app_token_is_checked() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let bad = api(&fake, "apps.connections.open", "xoxb-test", json!({})).await;
    assert_eq!(bad.body, json!({"ok": false, "error": "invalid_auth"}));
    assert_eq!(fake.connection_opens(), 0);

    let url = open_url(&fake).await;
    let (_ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("reused ticket accepted: {:?}", other.map(|_| ())),
    }
    let unknown = url.replace("ticket=", "ticket=nope");
    assert!(tokio_tungstenite::connect_async(&unknown).await.is_err());

    // Two connections: num_connections counts both; drop_sockets ends them.
    let (mut ws2, _) = tokio_tungstenite::connect_async(&open_url(&fake).await)
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws2).await["num_connections"], 2);
    fake.drop_sockets().await;
    assert_eq!(fake.connections(), 0);
    assert!(!matches!(
        tokio::time::timeout(WAIT, ws2.next()).await.unwrap(),
        Some(Ok(WsMessage::Close(_)))
    ));
}

#[tokio::test]
async fn post_message_to_a_user_lands_in_the_dm() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let reply = api(
        &fake,
        "chat.postMessage",
        "xoxb-test",
        json!({"channel": "U1", "text": "offer", "blocks": [{"type": "divider"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body["ok"], true);
    assert_eq!(reply.body["channel"], "DU1");
    assert_eq!(reply.body["message"]["text"], "offer");
    let ts = reply.body["ts"].as_str().unwrap().to_string();
    assert_eq!(reply.body["message"]["ts"], ts.as_str());

    let update = api(
        &fake,
        "chat.update",
        "xoxb-test",
        json!({"channel": "DU1", "ts": ts, "text": "accepted"}),
    )
    .await;
    assert_eq!(update.body["ok"], true, "{}", update.body);
    assert_eq!(update.body["message"]["text"], "accepted");

    let messages = fake.messages("DU1");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "accepted");
    assert!(messages[0].updated);
    assert_eq!(messages[0].blocks, Some(json!([{"type": "divider"}])));

    // Form bodies and the token field work too; a wrong token does not.
    let form = http(
        &fake,
        "POST",
        "/api/chat.postMessage",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "token=xoxb-test&channel=U2&text=hi%20there",
    )
    .await;
    assert_eq!(form.body["channel"], "DU2");
    assert_eq!(fake.messages("U2")[0].text, "hi there");
    let bad = api(
        &fake,
        "chat.postMessage",
        "xoxb-wrong",
        json!({"channel": "U1", "text": "x"}),
    )
    .await;
    assert_eq!(bad.body["error"], "invalid_auth");
    assert_eq!(fake.calls_to("chat.postMessage").len(), 3);
}

#[tokio::test]
async fn workspace_rules_for_invite_kick_and_users() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user("U1", "alice");
    fake.add_user("U2", "bob");
    fake.add_channel("G1", "staff", &["U1"]);

    let invite = api(
        &fake,
        "conversations.invite",
        "xoxb-test",
        json!({"channel": "G1", "users": ["U2"]}),
    )
    .await;
    assert_eq!(invite.body["ok"], true, "{}", invite.body);
    assert_eq!(invite.body["channel"]["id"], "G1");
    assert_eq!(fake.channel_members("G1"), vec!["U1", "U2"]);
    let again = api(
        &fake,
        "conversations.invite",
        "xoxb-test",
        json!({"channel": "G1", "users": "U1,U2"}),
    )
    .await;
    assert_eq!(again.body["error"], "already_in_channel");
    let ghost = api(
        &fake,
        "conversations.invite",
        "xoxb-test",
        json!({"channel": "G1", "users": "U9"}),
    )
    .await;
    assert_eq!(ghost.body["error"], "user_not_found");

    let kick = api(
        &fake,
        "conversations.kick",
        "xoxb-test",
        json!({"channel": "G1", "user": "U2"}),
    )
    .await;
    assert_eq!(kick.body, json!({"ok": true, "errors": {}}));
    let kick = api(
        &fake,
        "conversations.kick",
        "xoxb-test",
        json!({"channel": "G1", "user": "U2"}),
    )
    .await;
    assert_eq!(kick.body["error"], "not_in_channel");

    fake.remove_bot_from("G1");
    let invite = api(
        &fake,
        "conversations.invite",
        "xoxb-test",
        json!({"channel": "G1", "users": ["U2"]}),
    )
    .await;
    assert_eq!(invite.body["error"], "not_in_channel");
    let post = api(
        &fake,
        "chat.postMessage",
        "xoxb-test",
        json!({"channel": "G1", "text": "x"}),
    )
    .await;
    assert_eq!(post.body["error"], "not_in_channel");

    let info = http(
        &fake,
        "GET",
        "/api/users.info?user=U1",
        &[("Authorization", "Bearer xoxb-test")],
        "",
    )
    .await;
    assert_eq!(info.body["user"]["id"], "U1");
    assert_eq!(info.body["user"]["name"], "alice");

    // bots.info: the app's bot (auth.test's bot_id) names the app; any other bot is unknown.
    let me = api(&fake, "auth.test", "xoxb-test", json!({})).await;
    let bot = me.body["bot_id"].as_str().unwrap().to_string();
    let auth = [("Authorization", "Bearer xoxb-test")];
    let info = http(
        &fake,
        "GET",
        &format!("/api/bots.info?bot={bot}"),
        &auth,
        "",
    )
    .await;
    assert_eq!(info.body["ok"], true, "{}", info.body);
    assert_eq!(info.body["bot"]["id"], bot.as_str());
    assert_eq!(info.body["bot"]["app_id"], "A0STAFFBOT");
    assert_eq!(info.body["bot"]["deleted"], false);
    assert!(info.body["bot"]["icons"].is_object());
    let unknown = http(&fake, "GET", "/api/bots.info?bot=B0NOBODY", &auth, "").await;
    assert_eq!(unknown.body, json!({"ok": false, "error": "bot_not_found"}));

    let view = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": {"type": "home", "blocks": []}}),
    )
    .await;
    assert_eq!(view.body["ok"], true);
    for key in [
        "id",
        "team_id",
        "type",
        "blocks",
        "hash",
        "state",
        "title",
        "root_view_id",
        "app_id",
        "bot_id",
    ] {
        assert!(
            !view.body["view"][key].is_null(),
            "views.publish view lacks {key}"
        );
    }
}

#[tokio::test]
async fn fail_next_rate_limits_then_recovers() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.fail_next(
        "auth.test",
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    fake.fail_next("auth.test", Fault::ServerError, 1);

    let limited = api(&fake, "auth.test", "xoxb-test", json!({})).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.header("content-type"), Some("application/json"));
    assert_eq!(limited.body, json!({"ok": false, "error": "ratelimited"}));

    let failed = api(&fake, "auth.test", "xoxb-test", json!({})).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.body["error"], "internal_error");

    let ok = api(&fake, "auth.test", "xoxb-test", json!({})).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["team_id"], "T0TEAM");
    assert!(
        ok.body["user_id"].is_string() && ok.body["url"].is_string() && ok.body["team"].is_string()
    );

    assert!(fake.wait_for_calls("auth.test", 3, WAIT).await);
    let statuses: Vec<u16> = fake
        .calls_to("auth.test")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![429, 500, 200]);
    assert_eq!(
        fake.calls_to("auth.test")[2].token.as_deref(),
        Some("xoxb-test")
    );
}

#[tokio::test]
async fn history_returns_metadata_newest_first_with_a_cursor() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    for key in ["a", "b", "c"] {
        let reply = api(
            &fake,
            "chat.postMessage",
            "xoxb-test",
            json!({"channel": "U1", "text": key,
                   "metadata": {"event_type": "staffbot_outbox", "event_payload": {"key": key}}}),
        )
        .await;
        assert_eq!(reply.body["ok"], true, "{}", reply.body);
        assert_eq!(
            reply.body["message"]["metadata"]["event_payload"]["key"],
            key
        );
    }
    let bad = api(
        &fake,
        "chat.postMessage",
        "xoxb-test",
        json!({"channel": "U1", "text": "x", "metadata": {"event_type": 1}}),
    )
    .await;
    assert_eq!(bad.body["error"], "invalid_metadata_format");

    let get = |query: String| {
        let fake = fake.clone();
        async move {
            http(
                &fake,
                "GET",
                &format!("/api/conversations.history?{query}"),
                &[("Authorization", "Bearer xoxb-test")],
                "",
            )
            .await
        }
    };
    let page = get("channel=DU1&limit=2&include_all_metadata=true".into()).await;
    assert_eq!(page.body["ok"], true, "{}", page.body);
    let keys: Vec<&str> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metadata"]["event_payload"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["c", "b"]);
    assert_eq!(page.body["has_more"], true);
    let cursor = page.body["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let rest = get(format!(
        "channel=DU1&limit=2&include_all_metadata=true&cursor={cursor}"
    ))
    .await;
    assert_eq!(rest.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["messages"][0]["text"], "a");
    assert_eq!(rest.body["has_more"], false);
    // Without include_all_metadata there is none; `oldest` bounds the range; user ids are not
    // conversation ids.
    let newest = rest.body["messages"][0]["ts"].as_str().unwrap().to_string();
    let plain = get(format!("channel=DU1&oldest={newest}")).await;
    assert_eq!(plain.body["messages"].as_array().unwrap().len(), 2);
    assert!(plain.body["messages"][0].get("metadata").is_none());
    let user = get("channel=U1".into()).await;
    assert_eq!(user.body["error"], "channel_not_found");
}

#[tokio::test]
async fn held_responses_take_effect_first_and_lasting_faults_last_until_cleared() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.hold_responses_after("chat.postMessage", 1);
    let first = api(
        &fake,
        "chat.postMessage",
        "xoxb-test",
        json!({"channel": "U1", "text": "1"}),
    )
    .await;
    assert_eq!(first.body["ok"], true);
    let held = tokio::spawn({
        let fake = fake.clone();
        async move {
            api(
                &fake,
                "chat.postMessage",
                "xoxb-test",
                json!({"channel": "U1", "text": "2"}),
            )
            .await
        }
    });
    assert!(fake.wait_for_held("chat.postMessage", 1, WAIT).await);
    // Slack has the message; the client has no answer yet.
    assert_eq!(fake.messages("U1").len(), 2);
    assert!(!held.is_finished());
    fake.release("chat.postMessage");
    assert_eq!(held.await.unwrap().body["ok"], true);

    fake.fail_until_cleared("*", Fault::ServerError);
    for _ in 0..3 {
        assert_eq!(
            api(&fake, "auth.test", "xoxb-test", json!({})).await.status,
            500
        );
    }
    assert_eq!(fake.calls_with_status(500), 3);
    fake.clear_faults("*");
    assert_eq!(
        api(&fake, "auth.test", "xoxb-test", json!({})).await.status,
        200
    );
}

// --- App Home, modals and view actions ---

/// A connected client that has read its hello.
async fn connected(fake: &FakeSlack) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(open_url(fake).await)
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "hello");
    ws
}

async fn ack(ws: &mut Ws, envelope_id: &Value, payload: Option<Value>) {
    let mut frame = json!({"envelope_id": envelope_id});
    if let Some(p) = payload {
        frame["payload"] = p;
    }
    ws.send(WsMessage::Text(frame.to_string().into()))
        .await
        .unwrap();
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

fn home_view() -> Value {
    json!({"type": "home", "blocks": [
        {"type": "header", "text": plain("Your tasks")},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*proj* · write"},
         "accessory": {"type": "button", "action_id": "task_open", "value": "7",
                       "text": plain("Open")}},
        {"type": "actions", "block_id": "task-7", "elements": [
            {"type": "button", "action_id": "task_submit", "value": "7", "style": "primary",
             "text": plain("Submit"),
             "confirm": {"title": plain("Submit?"), "text": plain("Submit task 7?"),
                         "confirm": plain("Submit"), "deny": plain("Cancel")}},
        ]},
    ]})
}

fn restaff_modal() -> Value {
    json!({"type": "modal", "callback_id": "restaff", "private_metadata": "7",
           "title": plain("Restaff task 7"), "submit": plain("Restaff"),
           "close": plain("Cancel"), "blocks": [
        {"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": "Who?"}},
        {"type": "input", "block_id": "worker", "label": plain("New worker"),
         "element": {"type": "users_select", "action_id": "pick"}},
    ]})
}

#[tokio::test]
async fn home_views_are_checked_stored_opened_and_clicked() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user("U1", "alice");
    let mut ws = connected(&fake).await;

    // Refused as Slack refuses it: invalid_arguments naming every problem; nothing stored.
    let mut bad = home_view();
    bad["blocks"][2]["elements"][0]["confirm"]["title"] = plain(&"t".repeat(101));
    bad["blocks"][0]["text"]["text"] = json!("h".repeat(151));
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": bad}),
    )
    .await;
    assert_eq!(reply.body["ok"], false);
    assert_eq!(reply.body["error"], "invalid_arguments");
    assert_eq!(
        reply.body["response_metadata"]["messages"],
        json!([
            "[ERROR] must be less than 151 characters [json-pointer:/view/blocks/0/text/text]",
            "[ERROR] must be less than 101 characters \
             [json-pointer:/view/blocks/2/elements/0/confirm/title/text]",
        ])
    );
    let many = json!({"type": "home", "blocks": vec![json!({"type": "divider"}); 101]});
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": many}),
    )
    .await;
    assert_eq!(
        reply.body["response_metadata"]["messages"],
        json!(["[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"])
    );
    assert_eq!(fake.home_publishes("U1"), 0);
    assert_eq!(fake.home_view("U1"), None);

    // Opening the Home tab before anything was published: no view in the event.
    let id = fake.send_app_home_opened("U1").await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["envelope_id"], id);
    assert_eq!(envelope["type"], "events_api");
    assert_eq!(envelope["accepts_response_payload"], false);
    assert_eq!(envelope["retry_attempt"], 0);
    assert_eq!(envelope["retry_reason"], "");
    let p = &envelope["payload"];
    assert_eq!(p["type"], "event_callback");
    assert_eq!(p["team_id"], "T0TEAM");
    assert_eq!(p["api_app_id"], "A0STAFFBOT");
    assert_eq!(p["token"], "verification_token");
    assert!(p["event_id"].as_str().unwrap().starts_with("Ev"));
    assert!(p["event_time"].as_u64().unwrap() > 1_700_000_000);
    let event = &p["event"];
    assert_eq!(event["type"], "app_home_opened");
    assert_eq!(event["user"], "U1");
    assert_eq!(event["channel"], "DU1");
    assert_eq!(event["tab"], "home");
    assert!(event["event_ts"].is_string());
    assert!(event.get("view").is_none());
    ack(&mut ws, &envelope["envelope_id"], None).await;

    // Published: stored as Slack stores it, block ids filled in.
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": home_view()}),
    )
    .await;
    assert_eq!(reply.body["ok"], true, "{}", reply.body);
    let stored = fake.home_view("U1").expect("stored");
    assert_eq!(stored, reply.body["view"]);
    assert_eq!(stored["type"], "home");
    assert_eq!(stored["blocks"][2]["block_id"], "task-7");
    assert!(stored["blocks"][1]["block_id"].is_string());
    assert_eq!(fake.home_publishes("U1"), 1);
    // A second publish keeps the view id, changes the hash; a stale hash is refused.
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": home_view(), "hash": stored["hash"]}),
    )
    .await;
    assert_eq!(reply.body["view"]["id"], stored["id"]);
    assert_ne!(reply.body["view"]["hash"], stored["hash"]);
    let stale = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": home_view(), "hash": stored["hash"]}),
    )
    .await;
    assert_eq!(stale.body, json!({"ok": false, "error": "hash_conflict"}));
    assert!(
        fake.wait_for_home_publishes("U1", 2, WAIT).await,
        "two publishes"
    );
    let stored = fake.home_view("U1").unwrap();
    // Slack makes up a block id for a block without one, anew on every publish.
    let generated = stored["blocks"][1]["block_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Now the event carries the view.
    fake.send_app_home_opened("U1").await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["payload"]["event"]["view"], stored);

    // A click on a rendered button: the view container, the button as rendered.
    let id = fake.click_home("U1", "task_submit", "7").await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["envelope_id"], id);
    assert_eq!(envelope["type"], "interactive");
    let p = &envelope["payload"];
    assert_eq!(p["type"], "block_actions");
    assert_eq!(
        p["container"],
        json!({"type": "view", "view_id": stored["id"]})
    );
    assert_eq!(p["view"], stored);
    assert_eq!(p["user"]["id"], "U1");
    assert_eq!(p["user"]["name"], "alice");
    assert_eq!(p["team"]["id"], "T0TEAM");
    assert_eq!(p["api_app_id"], "A0STAFFBOT");
    assert_eq!(p["token"], "verification_token");
    assert!(p["trigger_id"].is_string());
    for absent in ["response_url", "channel", "message"] {
        assert!(p.get(absent).is_none(), "{absent} in a Home tab click");
    }
    let action = &p["actions"][0];
    assert_eq!(action["action_id"], "task_submit");
    assert_eq!(action["value"], "7");
    assert_eq!(action["block_id"], "task-7");
    assert_eq!(action["style"], "primary");
    assert_eq!(action["text"], plain("Submit"));
    assert!(action["action_ts"].is_string());
    assert_eq!(
        fake.confirmations("U1"),
        vec![stored["blocks"][2]["elements"][0]["confirm"].clone()]
    );
    // An accessory button is found in its section, under the generated block id.
    fake.click_home("U1", "task_open", "7").await;
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["payload"]["actions"][0]["block_id"], generated);
    assert_eq!(fake.confirmations("U1").len(), 1);

    // A forged click: any action, overrides merged over the payload.
    fake.send_view_action_with("U2", "admin_staff", "9", json!({"token": null, "x": 1}))
        .await;
    let envelope = next_json(&mut ws).await;
    let p = &envelope["payload"];
    assert_eq!(
        p["container"],
        json!({"type": "view", "view_id": "V0NOVIEW"})
    );
    assert!(p.get("token").is_none());
    assert_eq!(p["x"], 1);
    assert_eq!(p["actions"][0]["action_id"], "admin_staff");
    assert_eq!(p["actions"][0]["value"], "9");
    assert_eq!(p["actions"][0]["block_id"], "forged");

    // Views are not messages.
    assert!(fake.messages("U1").is_empty());
}

#[tokio::test]
#[should_panic(expected = "its buttons: \n  block_id=")]
async fn clicking_a_button_that_was_not_rendered_panics() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U1", "view": home_view()}),
    )
    .await;
    assert_eq!(reply.body["ok"], true);
    fake.click_home("U1", "task_submit", "8").await;
}

/// A trigger id from a fresh slash command of U1.
async fn trigger(fake: &FakeSlack, ws: &mut Ws) -> String {
    fake.send_slash("U1", "alice", "restaff").await;
    let envelope = next_json(ws).await;
    ack(ws, &envelope["envelope_id"], None).await;
    envelope["payload"]["trigger_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn views_open_checks_the_trigger_and_the_modal() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let mut ws = connected(&fake).await;
    let open = |trigger_id: Value, view: Value| {
        let fake = fake.clone();
        async move {
            api(
                &fake,
                "views.open",
                "xoxb-test",
                json!({"trigger_id": trigger_id, "view": view}),
            )
            .await
            .body
        }
    };

    assert_eq!(
        open(json!("1.2.nope"), restaff_modal()).await,
        json!({"ok": false, "error": "invalid_trigger_id"})
    );
    let missing = open(Value::Null, restaff_modal()).await;
    assert_eq!(missing["error"], "invalid_arguments");
    assert_eq!(
        missing["response_metadata"]["messages"],
        json!(["invalid `trigger_id`"])
    );

    // An invalid modal is refused without using up the trigger.
    let t = trigger(&fake, &mut ws).await;
    let mut bad = restaff_modal();
    bad["title"] = plain("A title far too long for Slack");
    let reply = open(json!(t), bad).await;
    assert_eq!(reply["error"], "invalid_arguments");
    assert_eq!(
        reply["response_metadata"]["messages"],
        json!(["[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"])
    );
    assert_eq!(fake.open_modal("U1"), None);

    let reply = open(json!(t), restaff_modal()).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let view = &reply["view"];
    for (key, want) in [
        ("type", json!("modal")),
        ("team_id", json!("T0TEAM")),
        ("title", plain("Restaff task 7")),
        ("callback_id", json!("restaff")),
        ("private_metadata", json!("7")),
        ("state", json!({"values": {}})),
        ("app_id", json!("A0STAFFBOT")),
    ] {
        assert_eq!(view[key], want, "view.{key}");
    }
    assert!(view["id"].is_string() && view["hash"].is_string());
    assert_eq!(view["root_view_id"], view["id"]);
    assert_eq!(fake.open_modal("U1").as_ref(), Some(view));
    assert!(fake.wait_for_modal("U1", WAIT).await);

    // Used once; after its lifetime, expired.
    assert_eq!(
        open(json!(t), restaff_modal()).await,
        json!({"ok": false, "error": "exchanged_trigger_id"})
    );
    fake.set_trigger_lifetime(Duration::ZERO);
    let t = trigger(&fake, &mut ws).await;
    assert_eq!(
        open(json!(t), restaff_modal()).await,
        json!({"ok": false, "error": "expired_trigger_id"})
    );
    fake.set_trigger_lifetime(Duration::from_secs(3));
    let reply = open(json!(trigger(&fake, &mut ws).await), restaff_modal()).await;
    assert_eq!(reply["ok"], true);
    // Home clicks issue triggers too, for the user who clicked: the modal is theirs.
    let reply = api(
        &fake,
        "views.publish",
        "xoxb-test",
        json!({"user_id": "U3", "view": home_view()}),
    )
    .await;
    assert_eq!(reply.body["ok"], true);
    fake.click_home("U3", "task_submit", "7").await;
    let click = next_json(&mut ws).await;
    let reply = open(click["payload"]["trigger_id"].clone(), restaff_modal()).await;
    assert_eq!(reply["ok"], true);
    assert_eq!(fake.open_modal("U3").unwrap()["id"], reply["view"]["id"]);
    assert!(fake.protocol_errors().is_empty());
}

#[tokio::test]
async fn modal_submissions_are_acked_like_slack() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user("U1", "alice");
    let mut ws = connected(&fake).await;
    let t = trigger(&fake, &mut ws).await;
    let reply = api(
        &fake,
        "views.open",
        "xoxb-test",
        json!({"trigger_id": t, "view": restaff_modal()}),
    )
    .await;
    let view_id = reply.body["view"]["id"].clone();
    let values = json!({"worker": {"pick": {"type": "users_select", "selected_user": "U2"}}});

    // Submits, and answers the envelope with `answer`; returns the envelope.
    async fn submit(fake: &FakeSlack, ws: &mut Ws, values: &Value, answer: Option<Value>) -> Value {
        let submitting = tokio::spawn({
            let fake = fake.clone();
            let values = values.clone();
            async move { fake.submit_modal("U1", values).await }
        });
        let envelope = next_json(ws).await;
        ack(ws, &envelope["envelope_id"], answer).await;
        assert_eq!(submitting.await.unwrap(), envelope["envelope_id"]);
        envelope
    }

    // Errors keyed by a block that is not an input block: a protocol error, modal unchanged.
    let envelope = submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "errors", "errors": {"intro": "No."}})),
    )
    .await;
    assert_eq!(envelope["type"], "interactive");
    assert_eq!(envelope["accepts_response_payload"], true);
    let p = &envelope["payload"];
    assert_eq!(p["type"], "view_submission");
    assert_eq!(p["user"]["id"], "U1");
    assert_eq!(p["team"]["id"], "T0TEAM");
    assert_eq!(p["api_app_id"], "A0STAFFBOT");
    assert_eq!(p["token"], "verification_token");
    assert!(p["trigger_id"].is_string());
    assert_eq!(p["response_urls"], json!([]));
    assert_eq!(p["view"]["id"], view_id);
    assert_eq!(p["view"]["callback_id"], "restaff");
    assert_eq!(p["view"]["private_metadata"], "7");
    assert_eq!(p["view"]["state"]["values"], values);
    let errors = fake.protocol_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("[\"intro\"]"), "{}", errors[0]);
    assert_eq!(fake.modal_errors("U1"), None);
    assert!(fake.open_modal("U1").is_some());

    // Errors keyed by the input block: shown, the modal stays open.
    let shown = json!({"worker": "U2 is already on this task"});
    submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "errors", "errors": shown})),
    )
    .await;
    assert_eq!(fake.modal_errors("U1"), Some(shown));
    assert_eq!(fake.open_modal("U1").unwrap()["id"], view_id);

    // update: the view is replaced (same id), and the errors are gone.
    let mut next = restaff_modal();
    next["title"] = plain("Restaff task 8");
    submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "update", "view": next})),
    )
    .await;
    let modal = fake.open_modal("U1").unwrap();
    assert_eq!(modal["id"], view_id);
    assert_eq!(modal["title"], plain("Restaff task 8"));
    assert_eq!(fake.modal_errors("U1"), None);

    // An update with an invalid view is a protocol error.
    let mut invalid = restaff_modal();
    invalid["submit"] = Value::Null;
    submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "update", "view": invalid})),
    )
    .await;
    assert_eq!(fake.protocol_errors().len(), 2);
    assert!(fake.protocol_errors()[1].contains("missing required field: submit"));

    // push stacks a view; a bare ack closes it, back to the first; clear closes everything.
    submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "push", "view": restaff_modal()})),
    )
    .await;
    let pushed = fake.open_modal("U1").unwrap();
    assert_ne!(pushed["id"], view_id);
    assert_eq!(pushed["previous_view_id"], view_id);
    assert_eq!(pushed["root_view_id"], view_id);
    submit(&fake, &mut ws, &values, None).await;
    assert_eq!(fake.open_modal("U1").unwrap()["id"], view_id);
    submit(&fake, &mut ws, &values, Some(json!({}))).await;
    assert_eq!(fake.open_modal("U1"), None);

    let t = trigger(&fake, &mut ws).await;
    api(
        &fake,
        "views.open",
        "xoxb-test",
        json!({"trigger_id": t, "view": restaff_modal()}),
    )
    .await;
    submit(
        &fake,
        &mut ws,
        &values,
        Some(json!({"response_action": "clear"})),
    )
    .await;
    assert_eq!(fake.open_modal("U1"), None);
    assert_eq!(fake.protocol_errors().len(), 2);
}

#[tokio::test]
#[should_panic(expected = "U1 has no open modal to submit")]
async fn submitting_without_an_open_modal_panics() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.submit_modal("U1", json!({})).await;
}

/// Issue 27, item 14: a command typed in the demo page reaches the app as Slack sends it for a
/// command with `should_escape: true` (staffbot's manifest): mentions of known users and
/// channels as `<@U…|name>` and `<#C…|name>`, `&`, `<` and `>` escaped, unknown names and
/// email addresses as typed.
#[tokio::test]
async fn typed_slash_commands_are_escaped_as_slack_escapes_them() {
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user("U0PAT", "pat");
    fake.add_user("U0ADA", "ada");
    fake.add_channel("G0PROJ", "proj-mayor-race", &["U0ADA"]);
    let mut ws = connected(&fake).await;
    for (typed, sent) in [
        ("restaff 4 @pat", "restaff 4 <@U0PAT|pat>"),
        ("restaff 4 @pat.", "restaff 4 <@U0PAT|pat>."),
        (
            "tell @ada in #proj-mayor-race & <now>",
            "tell <@U0ADA|ada> in <#G0PROJ|proj-mayor-race> &amp; &lt;now&gt;",
        ),
        ("restaff 4 @nobody", "restaff 4 @nobody"),
        ("mail pat@example.com @here", "mail pat@example.com <!here>"),
    ] {
        // Typed in the demo page's message box, as `ada` in `# proj-mayor-race`.
        let form =
            json!({"user": "U0ADA", "channel": "G0PROJ", "text": format!("/staffbot {typed}")});
        let page = tokio::spawn({
            let fake = fake.clone();
            async move {
                let headers = [("Content-Type", "application/json")];
                http(&fake, "POST", "/ui/slash", &headers, &form.to_string()).await
            }
        });
        let envelope = next_json(&mut ws).await;
        ack(&mut ws, &envelope["envelope_id"], None).await;
        assert_eq!(page.await.expect("page").status, 204);
        let p = &envelope["payload"];
        assert_eq!(p["text"], sent, "{typed}");
        assert_eq!(p["user_name"], "ada");
        assert_eq!(p["channel_id"], "G0PROJ");
        assert_eq!(p["channel_name"], "proj-mayor-race");
    }
}
