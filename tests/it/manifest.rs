//! `manifest.yml` creates the app design.md §5.3 describes.

use yaml_rust2::{Yaml, YamlLoader};

fn manifest() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifest.yml"))
        .expect("manifest.yml exists");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .pop()
        .expect("one document")
}

#[test]
fn socket_mode_slash_command_interactivity_home_and_scopes() {
    let m = manifest();
    assert_eq!(m["settings"]["socket_mode_enabled"].as_bool(), Some(true));
    assert_eq!(
        m["settings"]["interactivity"]["is_enabled"].as_bool(),
        Some(true)
    );
    assert!(
        m["settings"]["interactivity"]["request_url"].is_badvalue(),
        "no URL in Socket Mode"
    );
    assert_eq!(
        m["features"]["app_home"]["home_tab_enabled"].as_bool(),
        Some(true)
    );
    let events: Vec<&str> = m["settings"]["event_subscriptions"]["bot_events"]
        .as_vec()
        .expect("events")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(events, ["app_home_opened"]);

    let commands = m["features"]["slash_commands"].as_vec().expect("commands");
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["command"].as_str(), Some("/staffbot"));
    assert_eq!(commands[0]["should_escape"].as_bool(), Some(true));
    assert!(commands[0]["url"].is_badvalue());
    assert!(
        commands[0]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );

    let mut scopes: Vec<&str> = m["oauth_config"]["scopes"]["bot"]
        .as_vec()
        .expect("scopes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    scopes.sort_unstable();
    assert_eq!(
        scopes,
        [
            "channels:history",
            "channels:read",
            "chat:write",
            "commands",
            "groups:history",
            "groups:read",
            "groups:write",
            "im:history",
            "im:write",
            "users:read"
        ]
    );
    let name = m["display_information"]["name"].as_str().expect("name");
    assert!(!name.is_empty() && name.chars().count() <= 35);
}
