//! `staffbot.allowed.*`: each of the seven whitelists refuses a caller outside it with
//! Orchestra's text and lets one inside through; an unset list allows everything, an empty list
//! refuses everything (Orchestra: an absent list is no restriction, an empty one matches
//! nothing), and a payload without the field is refused as missing.

use staffbot::config::AllowedConfig;
use staffbot::slack::envelope::SlashCommand;
use staffbot::slack::slash::{HELP_TEXT, SlashSettings, handle};

use crate::common::{TestDb, t0, worker};

type List = fn(&mut AllowedConfig) -> &mut Option<Vec<String>>;
type Field = fn(&mut SlashCommand) -> &mut Option<String>;

/// Every whitelist: its payload field (as Orchestra names it), the list, and the field.
fn whitelists() -> [(&'static str, List, Field); 7] {
    [
        ("team_id", |a| &mut a.team_ids, |c| &mut c.team_id),
        (
            "team_domain",
            |a| &mut a.team_domains,
            |c| &mut c.team_domain,
        ),
        ("channel_id", |a| &mut a.channel_ids, |c| &mut c.channel_id),
        (
            "channel_name",
            |a| &mut a.channel_names,
            |c| &mut c.channel_name,
        ),
        ("user_id", |a| &mut a.user_ids, |c| &mut c.user_id),
        ("user_name", |a| &mut a.user_names, |c| &mut c.user_name),
        ("command", |a| &mut a.commands, |c| &mut c.command),
    ]
}

/// `/staffbot help` from the admin, every whitelisted field set.
fn help_from_admin() -> SlashCommand {
    SlashCommand {
        team_id: Some("T0ACME".into()),
        team_domain: Some("acme".into()),
        channel_id: Some("G0PROJ".into()),
        channel_name: Some("privategroup".into()),
        user_id: Some("U0ADMIN".into()),
        user_name: Some("erin".into()),
        command: Some("/staffbot".into()),
        text: Some("help".into()),
        ..Default::default()
    }
}

async fn reply(db: &TestDb, allowed: AllowedConfig, cmd: &SlashCommand) -> String {
    let settings = SlashSettings {
        verification_token: None,
        allowed,
        random_seed: None,
        policy: Default::default(),
        working: Default::default(),
    };
    let reply = handle(&db.db, &settings, cmd, t0()).await.expect("handled");
    reply["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn every_whitelist_refuses_outsiders_and_admits_insiders() {
    let db = TestDb::new().await;
    worker("erin").slack("U0ADMIN").admin().add(&db.db).await;
    let allow = |list: List, values: &[&str]| {
        let mut allowed = AllowedConfig::default();
        *list(&mut allowed) = Some(values.iter().map(|v| v.to_string()).collect());
        allowed
    };

    assert_eq!(
        reply(&db, AllowedConfig::default(), &help_from_admin()).await,
        HELP_TEXT,
        "unset lists allow everything"
    );
    for (name, list, field) in whitelists() {
        let mut cmd = help_from_admin();
        let inside = field(&mut cmd).clone().expect("set");
        let listed = allow(list, &["other", &inside]);
        assert_eq!(reply(&db, listed.clone(), &cmd).await, HELP_TEXT, "{name}");

        let mut outsider = cmd.clone();
        *field(&mut outsider) = Some("intruder".into());
        assert_eq!(
            reply(&db, listed.clone(), &outsider).await,
            format!("Field {name} did not validate: intruder")
        );

        let mut without = cmd.clone();
        *field(&mut without) = None;
        assert_eq!(
            reply(&db, listed, &without).await,
            format!("{name} is missing")
        );

        assert_eq!(
            reply(&db, allow(list, &[]), &cmd).await,
            format!("Field {name} did not validate: {inside}"),
            "an empty list refuses everyone"
        );
    }
}
