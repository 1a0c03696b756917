//! Offers by email (issue 16), against real mail servers on loopback (see [`crate::mailserver`]):
//! staffbot sends through SMTP, the worker replies by email, staffbot reads the reply over IMAP
//! and answers the offer through the same code as the Slack buttons.

use std::time::Duration;

use staffbot::db::Notify;
use staffbot::email::inbox::{ImapTarget, Inbox, InboxReport};

use crate::common::{PICKED_UP, slack_id};
use crate::harness::{CHANNEL, Team, TeamSpec};
use crate::mailserver::{Email, MailServer, address};

/// A team whose daemon emails through `mail` and reads `staffbot@example.com`.
fn emailing(mail: &MailServer) -> TeamSpec {
    let (smtp, imap) = (mail.smtp_url(), mail.imap_url("staffbot"));
    TeamSpec::new().config(move |c| {
        c.email.smtp_url = Some(staffbot::config::SecretUrl::new(&smtp));
        c.email.from = Some("staffbot <staffbot@example.com>".into());
        c.email.imap_url = Some(staffbot::config::SecretUrl::new(&imap));
    })
}

/// One read of the mailbox under the test's `mail` lease (the daemon's own loop is kept out).
async fn read_mailbox(t: &Team) -> InboxReport {
    let config = &t.h.config.email;
    let settings = staffbot::email::EmailSettings::from_config(config)
        .expect("email settings")
        .expect("email is on");
    let target = ImapTarget::from_config(config)
        .expect("imap url")
        .expect("replies are read");
    let inbox = Inbox {
        db: t.h.db().clone(),
        clock: std::sync::Arc::new(staffbot::clock::SystemClock),
        target: target.clone(),
        settings,
        notices: t.h.config.notices(),
        timeout: Duration::from_secs(10),
    };
    let lease = t.h.lease(staffbot::email::inbox::LEASE).await;
    let mut session = staffbot::email::inbox::connect(&target, Duration::from_secs(10))
        .await
        .expect("IMAP login");
    let report = inbox.run_once(&mut session, &lease).await.expect("a round");
    let _ = session.logout().await;
    report
}

/// The offer emailed to `name` in the next batching round (which asks everyone: the channel
/// is told).
async fn offer_to(t: &mut Team, mail: &mut MailServer, name: &str) -> Email {
    t.h.tick(chrono::Utc::now(), 1).await;
    let offer = mail.next_email(name).await;
    let all_sent = format!(
        "All staffing requests for task v1 ({}) - write have been sent!",
        t.description
    );
    assert_eq!(t.h.next_post(CHANNEL).await, all_sent);
    assert!(
        offer
            .subject
            .starts_with("A new task is available for you [#"),
        "{}",
        offer.subject
    );
    offer
}

/// Mailboxes `staffbot`, `erin` and `extra`, and a team (as `spec` makes it) whose worker Erin
/// prefers email and has no Slack id, staffed, with her offer read. None when there is no mail
/// server (the test is skipped).
async fn erin_offered(
    extra: &[&str],
    spec: impl FnOnce(TeamSpec) -> TeamSpec,
) -> Option<(MailServer, Team, Email)> {
    let mut names = vec!["staffbot", "erin"];
    names.extend_from_slice(extra);
    let mut mail = MailServer::start(&names).await?;
    let team = emailing(&mail).email_worker("erin", Notify::Email, false);
    let mut t = spec(team).start().await;
    t.staff().await;
    let offer = offer_to(&mut t, &mut mail, "erin").await;
    Some((mail, t, offer))
}

/// `name` replies `body` to `offer` from their own address; returns the message sent.
async fn answer(mail: &mut MailServer, offer: &Email, name: &str, body: &str) -> String {
    let reply = offer.reply(&address(name), body);
    let reply_to = offer.reply_to.clone().expect("a Reply-To");
    mail.send(&address(name), &reply_to, &reply).await;
    reply
}

/// The channel's notice that `name`, who has no Slack id, picked up the team's task.
fn picked_up(t: &Team, name: &str) -> String {
    t.notice(PICKED_UP, name)
        .replace(&format!(" (<@{}>)", slack_id(name)), "")
}

#[tokio::test]
async fn an_email_only_worker_accepts_by_replying_and_wins() {
    let Some((mut mail, mut t, offer)) = erin_offered(&[], |s| s).await else {
        return;
    };
    assert!(
        offer
            .text
            .starts_with("Hello erin!\n\nA new task is available"),
        "{}",
        offer.text
    );
    assert!(
        offer.text.contains("Task: Write the story"),
        "{}",
        offer.text
    );
    assert!(
        offer.text.contains("Reply ACCEPT or REJECT to this email."),
        "{}",
        offer.text
    );
    let reply_to = offer.reply_to.clone().expect("a Reply-To");
    assert!(reply_to.starts_with("staffbot+"), "{reply_to}");
    assert_eq!(offer.auto_submitted.as_deref(), Some("auto-generated"));
    let accept_link = format!("<a href=\"mailto:{reply_to}?subject=ACCEPT");
    assert!(offer.html.contains(&accept_link), "{}", offer.html);

    answer(&mut mail, &offer, "erin", "Accept\n\nThanks!").await;
    let report = read_mailbox(&t).await;
    assert_eq!((report.read, report.answered, report.moved), (1, 1, 1));

    // Erin has the task; she has no Slack id, so the channel only gets the status notice.
    let [won, assigned] = <[Email; 2]>::try_from(mail.next_emails("erin", 2).await).expect("two");
    assert_eq!(won.subject, format!("Re: {}", offer.subject));
    assert_eq!(
        won.in_reply_to
            .as_deref()
            .map(|v| v.contains("@mail.example.com")),
        Some(true)
    );
    assert!(
        won.text
            .starts_with(&format!("You got the task! Task {} is yours", t.task))
    );
    // Her status notice comes by email too (she does not see the channel).
    assert_eq!(assigned.subject, "You've been assigned to a new task!");
    let task_line = format!("Task: write {}", t.task);
    assert!(assigned.text.contains(&task_line), "{}", assigned.text);
    assert_eq!(t.h.next_post(CHANNEL).await, picked_up(&t, "erin"));
    assert_eq!(
        mail.count("staffbot", "INBOX").await,
        0,
        "the reply was moved"
    );
    assert_eq!(mail.count("staffbot", "staffbot-handled").await, 1);
    mail.assert_all_read();
    t.h.finish().await;
}

/// The username of whoever has the team's task, if anyone.
async fn assignee(t: &Team) -> Option<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use staffbot::db::entities::{task_assignment, worker};
    let a = task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(t.task))
        .all(t.h.db())
        .await
        .expect("query");
    assert!(a.len() <= 1, "one assignment at most: {a:?}");
    let a = a.into_iter().next()?;
    worker::Entity::find_by_id(a.worker_id)
        .one(t.h.db())
        .await
        .expect("query")
        .map(|w| w.username)
}

#[tokio::test]
async fn a_slack_worker_and_an_email_worker_race_and_exactly_one_wins() {
    let Some(mut mail) = MailServer::start(&["staffbot", "erin"]).await else {
        return;
    };
    let mut t = emailing(&mail)
        .worker("rob", 1)
        .email_worker("erin", Notify::Email, false)
        .start()
        .await;
    t.staff().await;
    t.h.tick(chrono::Utc::now(), 1).await;
    let mut first = t.h.next_messages(2).await;
    first.sort_by_key(|c| c.body["channel"].as_str().map(str::to_string));
    assert_eq!(first[1].body["channel"], slack_id("rob"), "rob's offer DM");
    let offer = mail.next_email("erin").await;
    let reply = offer.reply(&address("erin"), "yes");
    let reply_to = offer.reply_to.clone().expect("Reply-To");
    mail.send(&address("erin"), &reply_to, &reply).await;

    // Rob clicks Accept while staffbot reads Erin's "yes".
    let (_, report) = tokio::join!(t.accept("rob"), read_mailbox(&t));
    assert_eq!((report.read, report.answered), (1, 1));
    match assignee(&t).await.as_deref() {
        Some("rob") => {
            let answer = mail.next_email("erin").await;
            assert_eq!(
                answer.text.trim(),
                "This task has been taken by another expert."
            );
            let calls = t.h.next_messages(3).await; // Rob's DM, the welcome, the notice
            let texts = crate::harness::texts_of(&calls).join("\n");
            assert!(texts.contains("You got the task!"), "{texts}");
        }
        Some("erin") => {
            let emails = mail.next_emails("erin", 2).await;
            let [answer, assigned] = <[Email; 2]>::try_from(emails).expect("two");
            assert!(
                answer.text.starts_with("You got the task!"),
                "{}",
                answer.text
            );
            assert_eq!(assigned.subject, "You've been assigned to a new task!");
            let calls = t.h.next_messages(2).await; // Rob's DM says taken, the notice
            let (_, outcome) = crate::harness::update_text(
                calls
                    .iter()
                    .find(|c| c.method == "chat.update")
                    .expect("an update"),
            );
            assert_eq!(outcome, "This task has been taken by another expert.");
        }
        other => panic!("exactly one winner, not {other:?}"),
    }
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn strangers_wrong_tokens_auto_replies_and_gibberish_change_nothing() {
    let Some((mut mail, mut t, offer)) = erin_offered(&["mallory"], |s| s).await else {
        return;
    };
    let reply_to = offer.reply_to.clone().expect("Reply-To");
    let erin = address("erin");
    // Someone else answers Erin's offer.
    let stranger = offer.reply(&address("mallory"), "Accept");
    mail.send(&address("mallory"), &reply_to, &stranger).await;
    // Erin answers an offer that does not exist.
    let wrong = offer
        .reply(&erin, "Accept")
        .replace(&reply_to, "staffbot+aaaaaaaaaaaaaaaaaaaa@example.com");
    let wrong = wrong.replace(&offer.subject, "A new task is available for you");
    mail.send(&erin, "staffbot+aaaaaaaaaaaaaaaaaaaa@example.com", &wrong)
        .await;
    // Erin's vacation responder answers.
    let vacation = offer
        .reply(&erin, "Accept my apologies, I am away until Monday.")
        .replacen("\n\n", "\nAuto-Submitted: auto-replied\n\n", 1);
    mail.send(&erin, &reply_to, &vacation).await;
    let report = read_mailbox(&t).await;
    assert_eq!((report.read, report.answered, report.ignored), (3, 0, 3));
    assert_eq!(assignee(&t).await, None);

    // Erin writes something that is not an answer: she is asked again, nothing changes.
    answer(&mut mail, &offer, "erin", "Maybe tomorrow?").await;
    let report = read_mailbox(&t).await;
    assert_eq!((report.read, report.answered), (1, 0));
    let again = mail.next_email("erin").await;
    assert_eq!(again.subject, format!("Re: {}", offer.subject));
    assert!(
        again.text.contains("reply ACCEPT or REJECT"),
        "{}",
        again.text
    );
    assert_eq!(assignee(&t).await, None);

    // Her offer is still open: she can still say no.
    answer(&mut mail, &offer, "erin", "REJECT").await;
    assert_eq!(read_mailbox(&t).await.answered, 1);
    assert_eq!(
        mail.next_email("erin").await.text.trim(),
        "Thanks for responding!"
    );
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!(
            "No worker has accepted to work on task v1 ({}) - write",
            t.description
        )
    );
    assert_eq!(mail.count("staffbot", "staffbot-handled").await, 5);
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn a_reply_read_again_after_a_crash_is_handled_once() {
    let Some((mut mail, mut t, offer)) = erin_offered(&[], |s| s).await else {
        return;
    };
    let reply = answer(&mut mail, &offer, "erin", "accept").await;

    // A process handles the reply and dies before moving it out of the inbox.
    let incoming = staffbot::email::inbox::parse(reply.replace('\n', "\r\n").as_bytes());
    let settings = staffbot::email::EmailSettings::from_config(&t.h.config.email)
        .expect("settings")
        .expect("on");
    let lease = t.h.lease(staffbot::email::inbox::LEASE).await;
    let notices = t.h.config.notices();
    let now = chrono::Utc::now();
    let first =
        staffbot::email::inbox::handle(t.h.db(), &lease, &incoming, &settings, &notices, now)
            .await
            .expect("handled");
    assert!(
        matches!(first, staffbot::email::inbox::Verdict::Answered(_)),
        "{first:?}"
    );
    assert_eq!(
        mail.count("staffbot", "INBOX").await,
        1,
        "still in the inbox"
    );

    // After the restart the reply is read again: found handled, moved, nothing repeated.
    let report = read_mailbox(&t).await;
    assert_eq!(
        (report.read, report.answered, report.ignored, report.moved),
        (1, 0, 1, 1)
    );
    assert_eq!(assignee(&t).await.as_deref(), Some("erin"));
    let [won, assigned] = <[Email; 2]>::try_from(mail.next_emails("erin", 2).await).expect("two");
    assert!(won.text.starts_with("You got the task!"), "{}", won.text);
    assert_eq!(assigned.subject, "You've been assigned to a new task!");
    assert_eq!(t.h.next_post(CHANNEL).await, picked_up(&t, "erin"));
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn offers_wait_while_smtp_is_down_and_go_out_when_it_is_back() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use staffbot::db::entities::outbox;
    let Some(mut mail) = MailServer::start(&["staffbot", "erin"]).await else {
        return;
    };
    let mut t = emailing(&mail)
        .email_worker("erin", Notify::Email, false)
        .start()
        .await;
    t.staff().await;
    mail.stop_smtp().await;
    t.h.tick(chrono::Utc::now(), 1).await;
    // The daemon's sender tries and fails (the server refuses connections); the row waits.
    let failed_once = async {
        loop {
            let row = outbox::Entity::find()
                .filter(outbox::Column::Method.eq("smtp"))
                .one(t.h.db())
                .await
                .expect("query");
            if let Some(row) = row.filter(|r| r.attempts > 0) {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let row = tokio::time::timeout(Duration::from_secs(15), failed_once)
        .await
        .expect("an attempt while SMTP is down");
    assert_eq!(row.status, staffbot::db::OutboxStatus::Pending);
    assert!(row.last_error.is_some());

    mail.start_smtp().await;
    let offer = mail.next_email("erin").await;
    assert!(offer.subject.starts_with("A new task is available for you"));
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!(
            "All staffing requests for task v1 ({}) - write have been sent!",
            t.description
        )
    );
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn check_logs_in_to_both_mail_servers_without_printing_passwords() {
    use slack_sim::{FakeSlack, FakeSlackConfig};
    let Some(mail) = MailServer::start(&["staffbot"]).await else {
        return;
    };
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = crate::common::TestDb::new().await;
    let imap_no_password = mail.imap_url("staffbot").replace(":secret@", "@");
    let run = |imap_password: &str| {
        let mut cmd = crate::process::staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
        cmd.env("STAFFBOT_SMTP_URL", mail.smtp_url())
            .env("STAFFBOT_IMAP_URL", &imap_no_password)
            .env("STAFFBOT_IMAP_PASSWORD", imap_password)
            .env("STAFFBOT_CONFIG", "/dev/null")
            .arg("check");
        cmd
    };
    // `email.from` comes from a file; without it email is off.
    let (code, stdout, _) = crate::process::finish_async(
        run(crate::mailserver::PASSWORD).spawn().expect("spawn"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("email: off"), "{stdout}");
    assert!(
        stdout.contains("email.imap_url is set but unused"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(
        &conf,
        "[email]\nfrom = \"staffbot <staffbot@example.com>\"\n",
    )
    .expect("conf");
    for (password, ok) in [(crate::mailserver::PASSWORD, true), ("wrong-pass", false)] {
        let mut cmd = run(password);
        cmd.env("STAFFBOT_CONFIG", &conf);
        let (code, stdout, stderr) =
            crate::process::finish_async(cmd.spawn().expect("spawn"), Duration::from_secs(30))
                .await;
        assert!(
            stdout.contains("replies to staffbot+<token>@example.com"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("SMTP {}: connected", mail.smtp_url())),
            "{stdout}"
        );
        let imap_ok = stdout.contains("IMAP imap://staffbot@example.com@127.0.0.1:")
            && stdout.contains("/INBOX: logged in; 0 message(s) waiting");
        assert_eq!(imap_ok, ok, "{stdout}");
        assert_eq!(code == 0, ok, "{stdout}{stderr}");
        assert!(
            !stdout.contains(password) && !stderr.contains(password),
            "{stdout}{stderr}"
        );
    }
}

#[tokio::test]
async fn the_daemon_reads_replies_as_they_arrive() {
    // Leases (and so the mailbox loop's rounds without IDLE) last an hour here: only IMAP IDLE
    // can make the daemon read the reply at once.
    let hour = Duration::from_secs(3600);
    let spec = |s: TeamSpec| {
        s.daemon_reads_mail().config(move |c| {
            c.loops.lease_ttl = hour;
            c.email.poll_interval = hour;
        })
    };
    let Some((mut mail, mut t, offer)) = erin_offered(&[], spec).await else {
        return;
    };
    answer(&mut mail, &offer, "erin", "Yes!").await;
    let [won, _assigned] = <[Email; 2]>::try_from(mail.next_emails("erin", 2).await).expect("two");
    assert!(won.text.starts_with("You got the task!"), "{}", won.text);
    assert_eq!(assignee(&t).await.as_deref(), Some("erin"));
    assert_eq!(t.h.next_post(CHANNEL).await, picked_up(&t, "erin"));
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn tick_mail_reads_the_replies_once() {
    let Some((mut mail, mut t, offer)) =
        erin_offered(&[], |s| s.config(|c| c.email.imap_url = None)).await
    else {
        return;
    };
    // The daemon does not read this mailbox (no email.imap_url): only `tick mail` does.
    answer(&mut mail, &offer, "erin", "no").await;
    staffbot::lease::release(t.h.db(), staffbot::email::inbox::LEASE, "test")
        .await
        .expect("release");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(
        &conf,
        "[email]\nfrom = \"staffbot <staffbot@example.com>\"\n",
    )
    .expect("conf");
    let (smtp, imap) = (mail.smtp_url(), mail.imap_url("staffbot"));
    let tick = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_staffbot"))
            .args(["tick", "mail"])
            .current_dir(dir.path())
            .env_clear()
            .env("STAFFBOT_CONFIG", &conf)
            .env("STAFFBOT_DATABASE_URL", &t.h.t.url)
            .env("STAFFBOT_SMTP_URL", &smtp)
            .env("STAFFBOT_IMAP_URL", &imap)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        tick(),
        "mail: 1 read, 1 answer(s) applied, 0 ignored or handled before\n\
         outbox: not delivered (SLACK_BOT_TOKEN is not set)\n"
    );
    // The daemon delivers the answer; a second tick finds nothing.
    assert_eq!(
        mail.next_email("erin").await.text.trim(),
        "Thanks for responding!"
    );
    let again = tick();
    assert!(
        again.starts_with("mail: 0 read, 0 answer(s) applied"),
        "{again}"
    );
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!(
            "No worker has accepted to work on task v1 ({}) - write",
            t.description
        )
    );
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn reminders_follow_each_workers_preference() {
    let Some(mut mail) = MailServer::start(&["staffbot", "erin", "rae"]).await else {
        return;
    };
    let mut t = emailing(&mail)
        .email_worker("erin", Notify::Email, false)
        .email_worker("rae", Notify::Both, true)
        .start()
        .await;
    t.staff().await;
    t.h.tick(chrono::Utc::now(), 1).await;
    let erin_offer = mail.next_email("erin").await;
    let rae_offer = mail.next_email("rae").await;
    let mut slack = t.h.next_messages(2).await;
    slack.sort_by_key(|c| c.body["channel"].as_str().map(str::to_string));
    assert_eq!(slack[0].body["channel"], CHANNEL, "the pool is exhausted");
    let dm = &slack[1].body["channel"];
    assert_eq!(dm, &slack_id("rae"), "Rae's offer is a DM too");
    // Rae also uses Slack: her email links her App Home; Erin's does not.
    assert!(
        rae_offer.text.contains("slack://app?team="),
        "{}",
        rae_offer.text
    );
    assert!(!erin_offer.text.contains("slack://"), "{}", erin_offer.text);

    // Reminders with no minimum gap, now (the daemon's sender delivers what is due now).
    let lease = t.h.lease("reminders").await;
    let now = chrono::Utc::now();
    let reminded =
        staffbot::staffing::reminders::run_once(t.h.db(), &lease, Duration::ZERO, true, now)
            .await
            .expect("reminders");
    assert_eq!(reminded, 2);
    let erin = mail.next_email("erin").await;
    assert_eq!(erin.subject, "A new task is available for you");
    assert!(
        erin.text.starts_with("Tasks are still available"),
        "{}",
        erin.text
    );
    // Its links answer her offer (its token), as a reply to the offer would.
    let token = erin_offer.reply_to.as_deref().expect("Reply-To");
    assert!(
        erin.text
            .contains(&format!("mailto:{token}?subject=ACCEPT")),
        "{}",
        erin.text
    );
    assert!(
        mail.next_email("rae")
            .await
            .text
            .starts_with("Tasks are still available")
    );
    let dm = t.h.next_message().await;
    assert_eq!(dm.body["channel"], slack_id("rae"), "and on Slack: {dm:?}");
    mail.assert_all_read();
    t.h.finish().await;
}
