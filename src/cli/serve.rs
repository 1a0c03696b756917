//! `staffbot serve`: the daemon.

use anyhow::bail;

use super::App;

pub async fn run(app: &App) -> anyhow::Result<()> {
    if app.config.slack.bot_token.is_none() {
        bail!(
            "SLACK_BOT_TOKEN is not set (or slack.bot_token in the config file): staffbot needs the bot token (xoxb-…) to run"
        );
    }
    if app.config.slack.app_token.is_none() {
        bail!(
            "SLACK_APP_TOKEN is not set (or slack.app_token in the config file): staffbot needs an app-level token (xapp-…) with connections:write for Socket Mode"
        );
    }
    bail!(
        "this build of staffbot has no Slack connection yet; the database is migrated and the admin CLI works"
    )
}
