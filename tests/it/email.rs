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
    let imap_no_password = mail
        .imap_url("staffbot")
        .replace(&format!(":{}@", crate::mailserver::PASSWORD), "@");
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
    // Waited for off the runtime's thread: tick sends emails through the test's own SMTP server.
    let tick = || {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_staffbot"))
            .args(["tick", "mail"])
            .current_dir(dir.path())
            .env_clear()
            .env("STAFFBOT_CONFIG", &conf)
            .env("STAFFBOT_DATABASE_URL", &t.h.t.url)
            .env("STAFFBOT_SMTP_URL", &smtp)
            .env("STAFFBOT_IMAP_URL", &imap)
            .output();
        async move {
            let out = out.await.expect("runs");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    // Without a Slack token, tick delivers the emails (here the answer to erin, unless the
    // daemon took it first) and leaves the Slack rows to the daemon.
    let first = tick().await;
    assert!(
        first.starts_with(
            "mail: 1 read, 1 answer(s) applied, 0 ignored or handled before\n\
             outbox: emails: "
        ) && first.contains("Slack message(s) not delivered: they wait for SLACK_BOT_TOKEN"),
        "{first}"
    );
    // The daemon delivers the answer; a second tick finds nothing.
    assert_eq!(
        mail.next_email("erin").await.text.trim(),
        "Thanks for responding!"
    );
    let again = tick().await;
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

/// The staffing channel of the mail-failure tests.
const STAFFING: &str = "C0STAFF";

/// The email row of the offer (there is one).
async fn offer_row(t: &Team) -> staffbot::db::entities::outbox::Model {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use staffbot::db::entities::outbox;
    outbox::Entity::find()
        .filter(outbox::Column::Method.eq("smtp"))
        .one(t.h.db())
        .await
        .expect("query")
        .expect("the offer's email row")
}

/// Waits until the daemon's sender has tried the offer's email `attempts` times; the row.
async fn tried(t: &Team, attempts: i32) -> staffbot::db::entities::outbox::Model {
    let tried = async {
        loop {
            let row = offer_row(t).await;
            if row.attempts >= attempts {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), tried)
        .await
        .unwrap_or_else(|_| panic!("attempt {attempts} of the offer's email"))
}

/// Makes the offer's email due now, as if `attempts` had failed before (the backoff is over).
async fn due_after(t: &Team, attempts: i32) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use staffbot::db::entities::outbox;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(
            outbox::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(outbox::Column::Method.eq("smtp"))
        .exec(t.h.db())
        .await
        .expect("update");
}

/// The first round of a team whose only worker, Erin, is reached by email: the channel's "all
/// sent" (read), the email row queued.
async fn erin_asked(t: &mut Team) {
    t.staff().await;
    t.h.tick(chrono::Utc::now(), 1).await;
    assert_eq!(
        t.h.next_post(CHANNEL).await,
        format!(
            "All staffing requests for task v1 ({}) - write have been sent!",
            t.description
        )
    );
}

#[tokio::test]
async fn a_refused_smtp_login_holds_email_offers_until_it_works_and_spends_none() {
    let Some(mut mail) = MailServer::start(&["staffbot", "erin"]).await else {
        return;
    };
    mail.require_smtp_login(Some(crate::mailserver::PASSWORD));
    let mut t = emailing(&mail)
        .config(|c| c.email.smtp_password = Some("wrong-password".to_string().into()))
        .email_worker("erin", Notify::Email, false)
        .staffing_channel(STAFFING)
        .start()
        .await;
    erin_asked(&mut t).await;
    // The login is refused (535): the server's failure, said once in the staffing channel.
    let alert = t.h.next_post(STAFFING).await;
    assert!(
        alert
            .starts_with("Email is not going out: the mail server answered `permanent error (535)"),
        "{alert}"
    );
    let row = tried(&t, 1).await;
    assert_eq!(row.status, staffbot::db::OutboxStatus::Pending);
    // However long it lasts (past the 12 attempts other rows get), the offer waits, and the
    // channel is not told again.
    let many = staffbot::delivery::MAX_ATTEMPTS + 5;
    due_after(&t, many).await;
    let row = tried(&t, many + 1).await;
    assert_eq!(row.status, staffbot::db::OutboxStatus::Pending);
    assert_eq!(assignee(&t).await, None);

    // The password is fixed (and staffbot restarted): Erin gets her offer, the channel hears
    // that email works again, and nothing was given up (`finish` checks no other post came).
    t.h.stop().await;
    t.h.config.email.smtp_password = Some(crate::mailserver::PASSWORD.to_string().into());
    t.h.start().await;
    due_after(&t, many + 1).await;
    let offer = mail.next_email("erin").await;
    assert!(
        offer
            .subject
            .starts_with("A new task is available for you [#")
    );
    assert_eq!(t.h.next_post(STAFFING).await, "Email is going out again.");
    // The offer is hers to answer.
    answer(&mut mail, &offer, "erin", "accept").await;
    assert_eq!(read_mailbox(&t).await.answered, 1);
    let [won, _assigned] = <[Email; 2]>::try_from(mail.next_emails("erin", 2).await).expect("two");
    assert!(won.text.starts_with("You got the task!"), "{}", won.text);
    assert_eq!(t.h.next_post(CHANNEL).await, picked_up(&t, "erin"));
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn an_smtp_outage_of_any_length_loses_no_email_offer() {
    let Some(mut mail) = MailServer::start(&["staffbot", "erin"]).await else {
        return;
    };
    let mut t = emailing(&mail)
        .email_worker("erin", Notify::Email, false)
        .staffing_channel(STAFFING)
        .start()
        .await;
    mail.stop_smtp().await;
    erin_asked(&mut t).await;
    let alert = t.h.next_post(STAFFING).await;
    assert!(
        alert.starts_with("Email is not going out: the mail server answered `"),
        "{alert}"
    );
    tried(&t, 1).await;
    // Far more failed attempts than an hour of backoff holds: still waiting.
    let many = 40;
    due_after(&t, many).await;
    let row = tried(&t, many + 1).await;
    assert_eq!(row.status, staffbot::db::OutboxStatus::Pending);

    mail.start_smtp().await;
    due_after(&t, many + 1).await;
    let offer = mail.next_email("erin").await;
    assert!(
        offer
            .subject
            .starts_with("A new task is available for you [#")
    );
    assert_eq!(t.h.next_post(STAFFING).await, "Email is going out again.");
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn a_refused_address_is_reported_as_the_mail_servers_answer() {
    // The mail server has no mailbox for Erin: it refuses her address (550 5.1.1).
    let Some(mut mail) = MailServer::start(&["staffbot"]).await else {
        return;
    };
    let mut t = emailing(&mail)
        .email_worker("erin", Notify::Email, false)
        .staffing_channel(STAFFING)
        .start()
        .await;
    erin_asked(&mut t).await;
    let post = t.h.next_post(STAFFING).await;
    let expected = format!(
        "Could not deliver the offer of task v1 ({}) - write to erin: the mail server (email) answered `permanent error (550): 5.1.1 &lt;erin@example.com&gt;: Recipient address rejected: User unknown`. They will be asked again.",
        t.description
    );
    assert_eq!(post, expected);
    assert_eq!(
        offer_row(&t).await.status,
        staffbot::db::OutboxStatus::Failed
    );
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn mail_passwords_stay_out_of_trace_logs_of_serve_and_check() {
    use slack_sim::{FakeSlack, FakeSlackConfig};
    let Some(mail) = MailServer::start(&["staffbot"]).await else {
        return;
    };
    let password = crate::mailserver::PASSWORD;
    mail.require_smtp_login(Some(password));
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    let t = crate::common::TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(
        &conf,
        "[email]\nfrom = \"staffbot <staffbot@example.com>\"\n",
    )
    .expect("conf");
    let imap_no_password = mail
        .imap_url("staffbot")
        .replace(&format!(":{password}@"), "@");
    let run = |rust_log: &str, command: &str| {
        let mut cmd = crate::process::staffbot(&fake, &t.url, "xoxb-test", "xapp-test");
        cmd.env("STAFFBOT_CONFIG", &conf)
            .env("STAFFBOT_SMTP_URL", mail.smtp_url())
            .env("STAFFBOT_SMTP_PASSWORD", password)
            .env("STAFFBOT_IMAP_URL", &imap_no_password)
            .env("STAFFBOT_IMAP_PASSWORD", password)
            .env("RUST_LOG", rust_log)
            .arg(command);
        cmd
    };
    // Whatever the filter: everything at trace, or the protocol crates by name.
    let filters = [
        "trace",
        "info,async_imap=trace,imap_proto=trace,lettre=trace",
    ];
    let mut logins = 0;
    for filter in filters {
        let (code, stdout, stderr) = crate::process::finish_async(
            run(filter, "check").spawn().expect("spawn"),
            Duration::from_secs(30),
        )
        .await;
        logins += 1;
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("logged in"), "{stdout}");
        for out in [&stdout, &stderr] {
            assert!(!out.contains(password), "check at {filter}: {out}");
            assert!(!out.contains("AUTH PLAIN "), "check at {filter}: {out}");
        }
        if filter == "trace" {
            assert!(stderr.contains("TRACE"), "trace is on: {stderr}");
        }

        // `serve` reads the mailbox: it logs in over IMAP (Dovecot says so), then stops.
        // Its output goes to files: nobody reads a pipe while it runs, and a full one would
        // stop it.
        let hellos = fake.hellos_sent();
        let (out_path, err_path) = (dir.path().join("serve.out"), dir.path().join("serve.err"));
        let child = run(filter, "serve")
            .stdout(std::fs::File::create(&out_path).expect("serve.out"))
            .stderr(std::fs::File::create(&err_path).expect("serve.err"))
            .spawn()
            .expect("spawn");
        assert!(
            fake.wait_for_hellos(hellos + 1, Duration::from_secs(15))
                .await,
            "serve connected to Slack"
        );
        logins += 1;
        let logged_in = mail.imap_logins(logins).await;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let (code, _, _) = crate::process::finish_async(child, Duration::from_secs(30)).await;
        let read = |p: &std::path::Path| {
            String::from_utf8_lossy(&std::fs::read(p).expect("output")).into_owned()
        };
        let (stdout, stderr) = (read(&out_path), read(&err_path));
        assert_eq!(code, 0, "{stderr}");
        if let Err(e) = logged_in {
            panic!(
                "{e}\nserve at {filter}: {}",
                stderr
                    .lines()
                    .filter(|l| l.contains(" INFO ")
                        || l.contains(" WARN ")
                        || l.contains(" ERROR "))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert!(stderr.contains("reading email replies"), "{stderr}");
        for out in [&stdout, &stderr] {
            assert!(!out.contains(password), "serve at {filter}: {out}");
            assert!(!out.contains("AUTH PLAIN "), "serve at {filter}: {out}");
        }
    }
}

/// `name`'s reply to `offer` with `headers` (after the usual ones) and `body`, as written.
async fn send_raw(mail: &mut MailServer, offer: &Email, name: &str, headers: &str, body: &str) {
    let from = address(name);
    let to = offer.reply_to.clone().unwrap_or_else(|| offer.from.clone());
    let raw = format!(
        "From: {from}\nTo: {to}\nSubject: Re: {subject}\nMessage-ID: <{id}@mail.example.com>\nIn-Reply-To: <{orig}>\nDate: Mon, 07 Dec 2026 09:00:00 +0000\n{headers}\n{body}",
        subject = offer.subject,
        id = staffbot::notify::new_token(),
        orig = offer.message_id,
    );
    mail.send(&from, &to, &raw).await;
}

/// Staffbot reads Erin's reply as an acceptance: she wins.
async fn erin_wins(mail: &mut MailServer, t: &mut Team) {
    let report = read_mailbox(t).await;
    assert_eq!((report.read, report.answered), (1, 1));
    let [won, _assigned] = <[Email; 2]>::try_from(mail.next_emails("erin", 2).await).expect("two");
    assert!(won.text.starts_with("You got the task!"), "{}", won.text);
    assert_eq!(assignee(t).await.as_deref(), Some("erin"));
    assert_eq!(t.h.next_post(CHANNEL).await, picked_up(t, "erin"));
}

#[tokio::test]
async fn no_problem_ill_take_it_accepts() {
    let Some((mut mail, mut t, offer)) = erin_offered(&[], |s| s).await else {
        return;
    };
    answer(&mut mail, &offer, "erin", "No problem, I'll take it!").await;
    erin_wins(&mut mail, &mut t).await;
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn a_bottom_posted_reply_accepts() {
    let Some((mut mail, mut t, offer)) = erin_offered(&[], |s| s).await else {
        return;
    };
    let quoted: String = offer.text.lines().map(|l| format!("> {l}\n")).collect();
    let body = format!("On Monday, staffbot wrote:\n{quoted}\nAccept\n\nErin\n");
    send_raw(&mut mail, &offer, "erin", "", &body).await;
    erin_wins(&mut mail, &mut t).await;
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn an_html_only_reply_with_its_quote_in_a_blockquote_accepts() {
    let Some((mut mail, mut t, offer)) = erin_offered(&[], |s| s).await else {
        return;
    };
    let body = "<html><body><p>On Monday, staffbot wrote:</p><blockquote type=\"cite\"><p>Hello erin!</p><p>Reply ACCEPT or REJECT to this email.</p></blockquote><p>Accept</p></body></html>\n";
    let headers = "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n";
    send_raw(&mut mail, &offer, "erin", headers, body).await;
    erin_wins(&mut mail, &mut t).await;
    mail.assert_all_read();
    t.h.finish().await;
}

#[tokio::test]
async fn a_reply_to_a_reminder_gets_the_open_offers_and_how_to_answer_each() {
    let Some((mut mail, mut t, offer)) = erin_offered(&["mallory"], |s| s).await else {
        return;
    };
    let lease = t.h.lease("reminders").await;
    let reminded = staffbot::staffing::reminders::run_once(
        t.h.db(),
        &lease,
        Duration::ZERO,
        true,
        chrono::Utc::now(),
    )
    .await
    .expect("reminders");
    assert_eq!(reminded, 1);
    let reminder = mail.next_email("erin").await;
    assert!(reminder.text.starts_with("Tasks are still available"));
    assert_eq!(reminder.reply_to, None, "a reminder names no one offer");

    // Erin answers the reminder itself; a stranger writes too.
    let reply = reminder.reply(&address("erin"), "Accept");
    mail.send(&address("erin"), &reminder.from, &reply).await;
    let stranger = reminder.reply(&address("mallory"), "Accept");
    mail.send(&address("mallory"), &reminder.from, &stranger)
        .await;
    let report = read_mailbox(&t).await;
    assert_eq!((report.read, report.answered, report.ignored), (2, 0, 2));
    assert_eq!(assignee(&t).await, None, "no offer is guessed");

    // Erin gets her open offers, each with its links; the stranger gets nothing.
    let list = mail.next_email("erin").await;
    assert_eq!(list.subject, "Re: A new task is available for you");
    assert!(
        list.text.starts_with(
            "Your email does not say which offer it answers. These offers are open to you:"
        ),
        "{}",
        list.text
    );
    let plus = offer.reply_to.clone().expect("Reply-To");
    assert!(
        list.text
            .contains(&format!("Task {}: Write the story", t.task)),
        "{}",
        list.text
    );
    assert!(
        list.text.contains(&format!("mailto:{plus}?subject=ACCEPT")),
        "{}",
        list.text
    );
    // Its Accept link answers her offer.
    let token = plus
        .trim_start_matches("staffbot+")
        .split('@')
        .next()
        .expect("token")
        .to_string();
    let raw = format!(
        "From: {erin}\nTo: {plus}\nSubject: ACCEPT [#{token}]\nMessage-ID: <{id}@mail.example.com>\nDate: Mon, 07 Dec 2026 09:00:00 +0000\n\n",
        erin = address("erin"),
        id = staffbot::notify::new_token(),
    );
    mail.send(&address("erin"), &plus, &raw).await;
    erin_wins(&mut mail, &mut t).await;
    mail.assert_all_read();
    t.h.finish().await;
}

/// Issue 27, item 13: `tick` without `SLACK_BOT_TOKEN` still delivers the queued emails; the
/// Slack rows wait, untouched, for a token (and the output says so).
#[tokio::test]
async fn tick_without_a_slack_token_delivers_the_emails() {
    use sea_orm::EntityTrait;
    use staffbot::db::OutboxStatus;
    use staffbot::messages::{Message, Outgoing};
    let Some(mut mail) = MailServer::start(&["staffbot", "erin"]).await else {
        return;
    };
    let t = crate::common::TestDb::new().await;
    let now = chrono::Utc::now();
    let email = Outgoing::Email {
        to: address("erin"),
        message_id: "tick-no-slack".into(),
        token: None,
        in_reply_to: None,
        slack_user: None,
        only_channel: false,
        message: Message::ReplyNotUnderstood,
    };
    staffbot::outbox::enqueue(&t.db, "email-1", email, now)
        .await
        .expect("queued");
    let post = Outgoing::post("G0STAFF", Message::EmailBack);
    staffbot::outbox::enqueue(&t.db, "post-1", post, now)
        .await
        .expect("queued");

    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("staffbot.toml");
    std::fs::write(
        &conf,
        "[email]\nfrom = \"staffbot <staffbot@example.com>\"\n",
    )
    .expect("conf");
    // Waited for off the runtime's thread: tick sends through the test's own SMTP server.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_staffbot"))
        .args(["tick", "retention"])
        .current_dir(dir.path())
        .env_clear()
        .env("STAFFBOT_CONFIG", &conf)
        .env("STAFFBOT_DATABASE_URL", &t.url)
        .env("STAFFBOT_SMTP_URL", mail.smtp_url())
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("outbox: emails: 1 sent, 0 to retry, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("outbox: 1 Slack message(s) not delivered: they wait for SLACK_BOT_TOKEN"),
        "{stdout}"
    );
    let got = mail.next_email("erin").await;
    assert!(got.text.contains("ACCEPT"), "{}", got.text);

    let rows = staffbot::db::entities::outbox::Entity::find()
        .all(&t.db)
        .await
        .expect("rows");
    let row = |key: &str| {
        rows.iter()
            .find(|r| r.dedupe_key == key)
            .map(|r| (r.status, r.attempts))
            .expect("the row")
    };
    assert_eq!(row("email-1"), (OutboxStatus::Sent, 1));
    assert_eq!(row("post-1"), (OutboxStatus::Pending, 0));
    mail.assert_all_read();
}
