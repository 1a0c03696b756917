//! App Home and modals on the test side: the Home views the app published, the
//! `app_home_opened` event, clicks on the Home tab's buttons, and each user's modal (reading,
//! closing, submitting it).

use std::time::Duration;

use serde_json::{Value, json};

use crate::FakeSlack;
use crate::envelopes::{merge_overrides, payload_token, payload_user};
use crate::fixtures;
use crate::modal;
use crate::state;

/// How long [`FakeSlack::submit_modal`] waits for the ack of a `view_submission`.
const SUBMIT_ACK_WAIT: Duration = Duration::from_secs(10);

impl FakeSlack {
    /// `user`'s Home tab as Slack stores it after the last successful `views.publish` (the
    /// `view` of its answer: `id`, `hash`, `type`, `blocks` with every `block_id` filled in,
    /// `state`, …), or `None` if nothing was published for them.
    pub fn home_view(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.home_views.get(user).map(|h| h.view.clone()))
    }

    /// The number of successful `views.publish` calls for `user` (refused ones are only in
    /// [`FakeSlack::calls_to`]).
    pub fn home_publishes(&self, user: &str) -> usize {
        self.inner
            .read(|s| s.home_views.get(user).map_or(0, |h| h.publishes))
    }

    /// Waits until `home_publishes(user) >= n`; `false` on timeout.
    pub async fn wait_for_home_publishes(&self, user: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.home_views.get(user).is_some_and(|h| h.publishes >= n)
            })
            .await
    }

    /// Sends the `events_api` envelope Slack sends when `user` opens the app's Home tab: an
    /// `event_callback` with `event: {type: "app_home_opened", user, channel: <their DM>,
    /// tab: "home", event_ts, view?}` (`view` is the current Home view, when there is one),
    /// `accepts_response_payload: false`, `retry_attempt: 0`. Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_app_home_opened(&self, user: &str) -> String {
        let cfg = &self.inner.config;
        let (envelope_id, _, _) = self.fresh_envelope_ids();
        let (channel, event_ts, n, view) = self.inner.update(|s| {
            let channel = s.ensure_dm(user);
            let view = s.home_views.get(user).map(|h| h.view.clone());
            (channel, s.next_action_ts(), s.next_id(), view)
        });
        let event_time = event_ts
            .split('.')
            .next()
            .and_then(|secs| secs.parse::<u64>().ok())
            .unwrap_or(0);
        let mut event = json!({
            "type": "app_home_opened",
            "user": user,
            "channel": channel,
            "tab": "home",
            "event_ts": event_ts,
        });
        if let Some(view) = view {
            event["view"] = view;
        }
        let mut envelope = fixtures::load(fixtures::EVENTS_API_ENVELOPE);
        envelope["envelope_id"] = json!(envelope_id);
        envelope["accepts_response_payload"] = json!(false);
        envelope["retry_attempt"] = json!(0);
        envelope["retry_reason"] = json!("");
        let payload = &mut envelope["payload"];
        payload["token"] = payload_token();
        payload["team_id"] = json!(cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["event"] = event;
        payload["type"] = json!("event_callback");
        payload["event_id"] = json!(format!("Ev{:08X}{n:06}", self.inner.nonce));
        payload["event_time"] = json!(event_time);
        payload["authorizations"] = json!([{
            "enterprise_id": null,
            "team_id": cfg.team_id,
            "user_id": state::BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false,
        }]);
        // The app_mention example's event_context names a channel message; this event has none.
        fixtures::remove(payload, "event_context");
        self.send_envelope(envelope).await
    }

    /// `user` clicks the button with this `action_id` and `value` in their current Home tab:
    /// sends the `block_actions` envelope Slack sends for a view (`container: {type: "view",
    /// view_id}`, the whole `view`, `actions: [the button as rendered, with block_id and
    /// action_ts]`, a fresh `trigger_id` for `views.open`; no `response_url`, `channel` or
    /// `message`). A button with a `confirm` dialog is clicked as confirmed (see
    /// [`FakeSlack::confirmations`]). Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `user` has no Home view or it has no such button (the message lists the buttons it
    /// has: tests click what was rendered), or no connection opens within 10 s.
    pub async fn click_home(&self, user: &str, action_id: &str, value: &str) -> String {
        let Some(view) = self.home_view(user) else {
            panic!(
                "slack-sim: {user} has no published Home view to click {action_id:?} ({value:?}) in"
            );
        };
        let buttons = modal::buttons(&view);
        let Some((block_id, button)) = buttons
            .iter()
            .find(|(_, b)| b["action_id"] == action_id && modal::button_value(b) == value)
            .cloned()
        else {
            panic!(
                "slack-sim: {user}'s Home view has no button action_id={action_id:?} \
                 value={value:?}; its buttons: {}",
                modal::describe_buttons(&buttons)
            );
        };
        if let Some(confirm) = button.get("confirm") {
            let confirm = confirm.clone();
            self.inner
                .update(|s| s.confirmations.push((user.to_string(), confirm)));
        }
        let envelope =
            self.view_action_envelope(user, Some(view), block_id, button, Default::default());
        self.send_envelope(envelope).await
    }

    /// A Home tab `block_actions` envelope like [`FakeSlack::click_home`]'s, sent without
    /// checking that the button exists (for forged clicks): the button is the rendered one
    /// when the Home view has it, else `{type: "button", action_id, value, text: "Button"}` in
    /// block `forged`; `view` is the current Home view (left out when there is none, with
    /// `container.view_id` `V0NOVIEW`). `overrides`' fields are merged over the payload's top
    /// level (a `null` removes the field). Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `overrides` is not a JSON object, or no connection opens within 10 s.
    pub async fn send_view_action_with(
        &self,
        user: &str,
        action_id: &str,
        value: &str,
        overrides: Value,
    ) -> String {
        let Value::Object(overrides) = overrides else {
            panic!("slack-sim: send_view_action_with needs a JSON object, got {overrides}");
        };
        let view = self.home_view(user);
        let rendered = view.as_ref().and_then(|v| {
            modal::buttons(v)
                .into_iter()
                .find(|(_, b)| b["action_id"] == action_id && modal::button_value(b) == value)
        });
        let (block_id, button) = rendered.unwrap_or_else(|| {
            (
                "forged".to_string(),
                json!({
                    "type": "button",
                    "action_id": action_id,
                    "text": {"type": "plain_text", "text": "Button", "emoji": true},
                    "value": value,
                }),
            )
        });
        let envelope = self.view_action_envelope(user, view, block_id, button, overrides);
        self.send_envelope(envelope).await
    }

    /// The `interactive` envelope of a click on `button` (in block `block_id`) in a view.
    fn view_action_envelope(
        &self,
        user: &str,
        view: Option<Value>,
        block_id: String,
        button: Value,
        overrides: serde_json::Map<String, Value>,
    ) -> Value {
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, _) = self.fresh_envelope_ids();
        let (name, action_ts) = self.inner.update(|s| {
            s.issue_trigger(&trigger_id, user);
            let name = s
                .users
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string());
            (name, s.next_action_ts())
        });
        let mut payload = fixtures::load(fixtures::HOME_BLOCK_ACTIONS_PAYLOAD);
        payload["team"]["id"] = json!(cfg.team_id);
        payload["user"] = payload_user(user, &name, &cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["token"] = payload_token();
        payload["trigger_id"] = json!(trigger_id);
        let view_id = view
            .as_ref()
            .and_then(|v| v["id"].as_str())
            .unwrap_or("V0NOVIEW")
            .to_string();
        payload["container"] = json!({"type": "view", "view_id": view_id});
        match view {
            Some(view) => payload["view"] = view,
            None => fixtures::remove(&mut payload, "view"),
        }
        let mut action = button;
        action["block_id"] = json!(block_id);
        action["action_ts"] = json!(action_ts);
        payload["actions"] = json!([action]);
        merge_overrides(&mut payload, overrides);
        json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": true,
            "payload": payload,
        })
    }

    /// The `confirm` objects of the buttons `user` clicked with [`FakeSlack::click_home`]
    /// (Slack showed each dialog and the user chose its `confirm` button), oldest first.
    pub fn confirmations(&self, user: &str) -> Vec<Value> {
        self.inner.read(|s| {
            s.confirmations
                .iter()
                .filter(|(u, _)| u == user)
                .map(|(_, c)| c.clone())
                .collect()
        })
    }

    /// How long a `trigger_id` the fake issued stays valid for `views.open` (Slack: 3 s).
    /// `Duration::ZERO` makes every trigger expired at once (`expired_trigger_id`).
    pub fn set_trigger_lifetime(&self, lifetime: Duration) {
        self.inner.update(|s| s.trigger_lifetime = Some(lifetime));
    }

    /// The modal `user` sees, as Slack stores it (`id`, `type: "modal"`, `title`, `blocks`,
    /// `private_metadata`, `callback_id`, `state`, `hash`, …): the top of their modal stack,
    /// or `None` once it is closed (or was never opened).
    pub fn open_modal(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.modals.get(user).and_then(|m| m.views.last().cloned()))
    }

    /// `user` closes their modal (the × or Cancel): it is gone, as in Slack (staffbot does not
    /// ask for `view_closed` events).
    pub fn close_modal(&self, user: &str) {
        self.inner.update(|s| {
            s.modals.remove(user);
        });
    }

    /// Waits until `user` has a modal open; `false` on timeout.
    pub async fn wait_for_modal(&self, user: &str, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.modals.get(user).is_some_and(|m| !m.views.is_empty())
            })
            .await
    }

    /// The errors (`{block_id: message}`) the last submission's ack showed on `user`'s open
    /// modal, if it answered with `response_action: errors`.
    pub fn modal_errors(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.modals.get(user).and_then(|m| m.errors.clone()))
    }

    /// `user` submits their open modal with these input `values` (Slack's `state.values`
    /// shape, `{block_id: {action_id: {"type": "users_select", "selected_user": "U…"}}}`):
    /// sends an `interactive` envelope with a `view_submission` payload
    /// (`accepts_response_payload: true`), waits for its ack and applies it as Slack does: a
    /// bare ack closes the submitted view, `response_action` `clear` the whole modal,
    /// `errors` keeps it open with the errors ([`FakeSlack::modal_errors`]), `update`/`push`
    /// show a new view (checked as a modal). What Slack would refuse (errors not keyed by an
    /// input block's `block_id`, an invalid view, an unknown response) is recorded in
    /// [`FakeSlack::protocol_errors`] and leaves the modal as it was. Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `user` has no open modal, no connection opens within 10 s, or no ack arrives within
    /// 10 s.
    pub async fn submit_modal(&self, user: &str, values: Value) -> String {
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, _) = self.fresh_envelope_ids();
        let submitted = self.inner.update(|s| {
            let stack = s.modals.get_mut(user)?;
            stack.errors = None;
            let top = stack.views.last_mut()?;
            top["state"] = json!({"values": values});
            let view = top.clone();
            s.issue_trigger(&trigger_id, user);
            let name = s
                .users
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string());
            Some((view, name))
        });
        let Some((view, name)) = submitted else {
            panic!("slack-sim: {user} has no open modal to submit");
        };
        let view_id = view["id"].as_str().unwrap_or_default().to_string();
        let mut payload = fixtures::load(fixtures::VIEW_SUBMISSION_PAYLOAD);
        payload["team"] = json!({"id": cfg.team_id, "domain": "workspace-domain"});
        payload["user"] = payload_user(user, &name, &cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["token"] = payload_token();
        payload["trigger_id"] = json!(trigger_id);
        payload["view"] = view;
        payload["response_urls"] = json!([]);
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": true,
            "payload": payload,
        });
        let id = self.send_envelope(envelope).await;
        let Some(ack) = self.wait_ack(&id, SUBMIT_ACK_WAIT).await else {
            panic!("slack-sim: no ack of {user}'s view_submission {id} within {SUBMIT_ACK_WAIT:?}");
        };
        let nonce = self.inner.nonce;
        self.inner.update(|s| {
            modal::apply_submission_ack(cfg, nonce, s, user, &view_id, ack.payload.as_ref());
        });
        id
    }

    /// What the client did that Slack would refuse or ignore outside of a Web API answer
    /// (e.g. a `view_submission` ack with errors for a block that is not an input block), in
    /// order. A test that drives modals should expect this to be empty.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.inner.read(|s| s.protocol_errors.clone())
    }
}
