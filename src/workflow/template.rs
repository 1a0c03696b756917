//! The `staffbot.template` detailed-description function: a Jinja template (rendered with
//! [minijinja](https://docs.rs/minijinja), close to the Django templates Orchestra users know)
//! over the task's details ([`DescriptionInput`]: `task`, `step`, `project` with its `data`,
//! `workflow`) and the function's kwargs, by their bare names and as `kwargs`.
//!
//! Templates are checked when the workflow is loaded: a syntax error, or a variable that is
//! neither a task detail nor a kwarg (nor set by the template itself), is an error with its
//! line and column. What a template prints is text, escaped for Slack when it is sent, except
//! what the `safe` (or `mrkdwn`) and `mention` filters mark as Slack markup.

use std::sync::LazyLock;

use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::messages::Details;

/// The objects every description sees, with their fields (`project.data` holds anything).
pub const OBJECTS: &[(&str, &[&str])] = &[
    ("task", &["id", "step"]),
    ("step", &["slug", "name", "description"]),
    (
        "project",
        &[
            "id",
            "description",
            "priority",
            "status",
            "created_at",
            "data",
        ],
    ),
    ("workflow", &["slug", "name", "description", "version"]),
];

/// Jinja's global functions, which a template may call.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];

/// Marks around what a filter made Slack markup, in the rendered text (private-use characters,
/// removed from everything else).
const MARKUP_OPEN: char = '\u{E000}';
const MARKUP_CLOSE: char = '\u{E001}';

/// Template steps (fuel) one rendering may take: loops over large data stop here.
const FUEL: u64 = 100_000;

/// What a detailed description is rendered from: the task's details (times in Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DescriptionInput {
    pub task: TaskInfo,
    pub step: StepInfo,
    pub project: ProjectInfo,
    pub workflow: WorkflowInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskInfo {
    pub id: i64,
    pub step: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepInfo {
    pub slug: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProjectInfo {
    pub id: i64,
    pub description: String,
    pub priority: i32,
    pub status: String,
    pub created_at: i64,
    pub data: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkflowInfo {
    pub slug: String,
    pub name: String,
    pub description: String,
    /// The version's slug.
    pub version: String,
}

impl crate::db::tasks::DescriptionSource {
    /// What the task's detailed description is rendered from.
    pub fn input(&self) -> DescriptionInput {
        DescriptionInput {
            task: TaskInfo {
                id: self.task_id,
                step: self.step_slug.clone(),
            },
            step: StepInfo {
                slug: self.step_slug.clone(),
                name: self.step_name.clone(),
                description: self.step_description.clone(),
            },
            project: ProjectInfo {
                id: self.project_id,
                description: self.short_description.clone(),
                priority: self.priority,
                status: self.project_status.to_string(),
                created_at: self.project_created_at.timestamp(),
                data: self.project_data.clone(),
            },
            workflow: WorkflowInfo {
                slug: self.workflow_slug.clone(),
                name: self.workflow_name.clone(),
                description: self.workflow_description.clone(),
                version: self.version_slug.clone(),
            },
        }
    }
}

fn strip_marks(text: &str) -> String {
    text.chars()
        .filter(|c| *c != MARKUP_OPEN && *c != MARKUP_CLOSE)
        .collect()
}

/// True for the ids Slack gives users: `U…` (or `W…` in Enterprise Grid) and then capital
/// letters and digits. A channel id (`C…`), a name or anything else is not a user.
pub fn is_slack_user_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && id.len() >= 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        let text = strip_marks(&value.to_string());
        if value.is_safe() {
            out.write_str(&format!("{MARKUP_OPEN}{text}{MARKUP_CLOSE}"))?;
        } else {
            out.write_str(&text)?;
        }
        Ok(())
    });
    env.add_filter("mrkdwn", |value: JinjaValue| {
        JinjaValue::from_safe_string(value.to_string())
    });
    // Only a Slack user id becomes a mention; anything else (nothing, a name, a channel id)
    // stays text.
    env.add_filter("mention", |value: JinjaValue| match value.as_str() {
        Some(id) if is_slack_user_id(id) => JinjaValue::from_safe_string(format!("<@{id}>")),
        _ if value.is_none() || value.is_undefined() => JinjaValue::from(""),
        _ => JinjaValue::from(value.to_string()),
    });
    env.add_filter("datetime", |ts: i64| {
        chrono::DateTime::from_timestamp(ts, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    });
    env
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

/// Line and column (1-based, in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where `name` (a dotted variable) first appears in `text` as a whole name.
fn position_of(text: &str, name: &str) -> Option<(usize, usize)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut from = 0;
    while let Some(i) = text.get(from..).and_then(|t| t.find(name)) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            return Some(line_column(text, at));
        }
        from = at + name.len();
    }
    None
}

fn jinja_error(source: &str, e: &minijinja::Error) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    let at = match (e.range(), e.line()) {
        (Some(range), _) => {
            let (line, column) = line_column(source, range.start);
            format!("line {line}, column {column}: ")
        }
        (None, Some(line)) => format!("line {line}: "),
        _ => String::new(),
    };
    format!("{at}{}{detail}", e.kind())
}

/// A checked template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
}

impl Template {
    /// Checks `text`: its syntax, and that every variable it reads is a task detail
    /// ([`OBJECTS`]), one of `kwargs`, `kwargs` itself, or set by the template.
    pub fn parse<'a>(
        text: &str,
        kwargs: impl Iterator<Item = &'a str>,
    ) -> Result<Template, String> {
        let kwargs: Vec<&str> = kwargs.collect();
        if let Some(bad) = kwargs
            .iter()
            .find(|k| **k == "kwargs" || OBJECTS.iter().any(|(o, _)| o == *k))
        {
            return Err(format!(
                "kwargs.{bad} would hide the task detail of that name; rename it"
            ));
        }
        let source = strip_marks(text);
        let template = ENV
            .template_from_str(&source)
            .map_err(|e| format!("template {}", jinja_error(&source, &e)))?;
        check_tags_and_filters(&source)?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|name| !is_known(name, &kwargs))
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            let shown = shown_name(name, &kwargs);
            let at = position_of(&source, &shown)
                .or_else(|| position_of(&source, shown.split('.').next().unwrap_or(&shown)))
                .map(|(l, c)| format!(", line {l}, column {c}"))
                .unwrap_or_default();
            let mut known: Vec<String> = OBJECTS
                .iter()
                .flat_map(|(o, fields)| fields.iter().map(move |f| format!("{o}.{f}")))
                .collect();
            known.extend(kwargs.iter().map(|k| k.to_string()));
            return Err(format!(
                "unknown variable {{{{ {shown} }}}} in template{at}; known: {}",
                known.join(", ")
            ));
        }
        Ok(Template { source })
    }

    /// Renders over `input` and `kwargs`. Fails only on errors a load could not see (a filter
    /// given a value it cannot take, a loop over too much data).
    pub fn render(
        &self,
        input: &DescriptionInput,
        kwargs: &Map<String, Value>,
    ) -> Result<Details, String> {
        let mut context = kwargs.clone();
        context.insert("kwargs".to_string(), Value::Object(kwargs.clone()));
        if let Value::Object(details) = serde_json::to_value(input).unwrap_or_default() {
            context.extend(details);
        }
        let template = ENV
            .template_from_str(&self.source)
            .map_err(|e| format!("template {}", jinja_error(&self.source, &e)))?;
        let text = template
            .render(JinjaValue::from(minijinja::value::Serde(&context)))
            .map_err(|e| format!("template {}", jinja_error(&self.source, &e)))?;
        Ok(split_markup(&text))
    }
}

/// Tags that would read another template: a description is one text, with nothing to read.
const LOADING_TAGS: &[&str] = &["include", "import", "from", "extends"];

/// Whether `name` is a filter the environment has (Jinja's built-ins and staffbot's).
fn is_filter(name: &str) -> bool {
    let probe = format!("{{{{ 1 | {name} }}}}");
    match ENV.render_str(&probe, ()) {
        Ok(_) => true,
        Err(e) => e.kind() != minijinja::ErrorKind::UnknownFilter,
    }
}

/// The identifier at byte `from` of `source` (empty when there is none).
fn ident_at(source: &str, from: usize) -> &str {
    let rest = &source[from..];
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Byte `i` of `source` moved past whitespace and Jinja's `-`/`+` trim marks.
fn skip_space(source: &str, mut i: usize) -> usize {
    while source[i..].starts_with(|c: char| c.is_whitespace() || c == '-' || c == '+') {
        i += 1;
    }
    i
}

/// `line L, column C` of byte `offset` of `source`.
fn at(source: &str, offset: usize) -> String {
    let (line, column) = line_column(source, offset);
    format!("line {line}, column {column}")
}

/// Scans a block from byte `body` to its `close` (`}}` or `%}`), outside string literals: each
/// `|` names a filter, which must exist. Returns the byte after the block.
fn check_block_filters(source: &str, body: usize, close: &str) -> Result<usize, String> {
    let mut j = body;
    let mut quote: Option<char> = None;
    while j < source.len() {
        let Some(c) = source[j..].chars().next() else {
            break;
        };
        match quote {
            Some(_) if c == '\\' => {
                j += c.len_utf8();
                if let Some(n) = source[j..].chars().next() {
                    j += n.len_utf8();
                }
                continue;
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if source[j..].starts_with(close) => return Ok(j + close.len()),
            None if c == '|' && !source[j + 1..].starts_with('|') => {
                let name_at = skip_space(source, j + 1);
                let name = ident_at(source, name_at);
                if !name.is_empty() && !is_filter(name) {
                    return Err(format!(
                        "template, {}: unknown filter {name}",
                        at(source, name_at)
                    ));
                }
            }
            None => {}
        }
        j += c.len_utf8();
    }
    Ok(source.len())
}

/// What minijinja only finds while rendering, found at load: a filter it does not have, and a
/// tag that reads another template. Errors name the line and column.
fn check_tags_and_filters(source: &str) -> Result<(), String> {
    let mut i = 0;
    while let Some(found) = source[i..].find('{') {
        let start = i + found;
        let close = match source[start + 1..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                i = start + 1;
                continue;
            }
        };
        let body = start + 2;
        if close == "%}" {
            let word_at = skip_space(source, body);
            let word = ident_at(source, word_at);
            if LOADING_TAGS.contains(&word) {
                return Err(format!(
                    "template, {}: {{% {word} %}} is not available: a description is one template, it cannot read others",
                    at(source, word_at)
                ));
            }
            if word == "filter" {
                let name_at = skip_space(source, word_at + word.len());
                let name = ident_at(source, name_at);
                if !name.is_empty() && !is_filter(name) {
                    return Err(format!(
                        "template, {}: unknown filter {name}",
                        at(source, name_at)
                    ));
                }
            }
        }
        let end = check_block_filters(source, body, close)?;
        i = end.max(start + 1);
    }
    Ok(())
}

/// The part of an undeclared name to show: a known object with an unknown field
/// (`task.colour`), else the name itself.
fn shown_name(name: &str, kwargs: &[&str]) -> String {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or_default();
    match (OBJECTS.iter().find(|(o, _)| *o == first), parts.next()) {
        (Some(_), Some(field)) if !kwargs.contains(&first) => format!("{first}.{field}"),
        _ => first.to_string(),
    }
}

fn is_known(name: &str, kwargs: &[&str]) -> bool {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or_default();
    if first == "kwargs" || kwargs.contains(&first) || GLOBALS.contains(&first) {
        return true;
    }
    match OBJECTS.iter().find(|(o, _)| *o == first) {
        Some((_, fields)) => parts.next().is_none_or(|field| fields.contains(&field)),
        None => false,
    }
}

/// Splits rendered text into text and the markup between the marks.
fn split_markup(text: &str) -> Details {
    let mut details = Details::default();
    let mut rest = text;
    while let Some(open) = rest.find(MARKUP_OPEN) {
        details.push_text(&rest[..open]);
        let after = &rest[open + MARKUP_OPEN.len_utf8()..];
        let close = after.find(MARKUP_CLOSE).unwrap_or(after.len());
        details.push_markup(&after[..close]);
        rest = after
            .get(close + MARKUP_CLOSE.len_utf8()..)
            .unwrap_or_default();
    }
    details.push_text(rest);
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::DetailPart;
    use serde_json::json;

    fn input(data: Value) -> DescriptionInput {
        DescriptionInput {
            task: TaskInfo {
                id: 12,
                step: "copy_edit".into(),
            },
            step: StepInfo {
                slug: "copy_edit".into(),
                name: "Copy edit".into(),
                description: "Edit the copy".into(),
            },
            project: ProjectInfo {
                id: 7,
                description: "Mayor <race>".into(),
                priority: 2,
                status: "active".into(),
                created_at: 0,
                data,
            },
            workflow: WorkflowInfo {
                slug: "newsroom".into(),
                name: "Newsroom".into(),
                description: "News".into(),
                version: "v1".into(),
            },
        }
    }

    fn render(text: &str, kwargs: Value, data: Value) -> Details {
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        Template::parse(text, kwargs.keys().map(String::as_str))
            .expect("valid")
            .render(&input(data), &kwargs)
            .expect("renders")
    }

    #[test]
    fn the_old_placeholders_still_work() {
        let d = render(
            "Find out more about {{ text }} at project {{project.id}} ({{ task.step }})!",
            json!({"text": "the draft"}),
            json!({}),
        );
        assert_eq!(
            d,
            Details::text("Find out more about the draft at project 7 (copy_edit)!")
        );
    }

    #[test]
    fn conditionals_loops_and_filters_over_project_data() {
        let text = "{% if project.data.rush %}RUSH: {% endif %}{{ project.description | upper }}\
                    {% for s in project.data.sources %} [{{ loop.index }}] {{ s }}{% endfor %}\
                    {{ project.data.missing.deeper }}";
        let d = render(
            text,
            json!({}),
            json!({"rush": true, "sources": ["a & b", "c"]}),
        );
        assert_eq!(d, Details::text("RUSH: MAYOR <RACE> [1] a & b [2] c"));
        let d = render(text, json!({}), json!({}));
        assert_eq!(d, Details::text("MAYOR <RACE>"));
    }

    #[test]
    fn markup_only_where_a_filter_says_so() {
        let d = render(
            "Ask {{ data_owner | mention }} or see {{ link | safe }} <{{ project.id }}>",
            json!({"data_owner": "U0ERIN", "link": "<https://x.example|the brief>"}),
            json!({}),
        );
        assert_eq!(
            d.parts(),
            &[
                DetailPart::Text("Ask ".into()),
                DetailPart::Markup("<@U0ERIN>".into()),
                DetailPart::Text(" or see ".into()),
                DetailPart::Markup("<https://x.example|the brief>".into()),
                DetailPart::Text(" <7>".into()),
            ]
        );
        // Not a Slack user id: plain text (nothing for nothing).
        for (who, shown) in [
            (json!("<!channel>"), "<!channel>"),
            (json!(null), ""),
            (json!("hello"), "hello"),
            (json!("C0FIRE"), "C0FIRE"),
            (json!("U0erin"), "U0erin"),
            (json!(42), "42"),
        ] {
            let d = render("{{ who | mention }}", json!({ "who": who }), json!({}));
            assert_eq!(d, Details::text(shown), "{who}");
        }
        let d = render("{{ project.data.owner | mention }}", json!({}), json!({}));
        assert_eq!(d, Details::text(""), "a missing value");
        let d = render("{{ w | mention }}", json!({"w": "W0GRID1"}), json!({}));
        assert_eq!(d.parts(), &[DetailPart::Markup("<@W0GRID1>".into())]);
    }

    #[test]
    fn errors_have_positions() {
        let err = Template::parse("ok\n  {% if x %}", ["x"].into_iter()).expect_err("syntax");
        assert!(err.starts_with("template line 2"), "{err}");
        let err = Template::parse("{{ task.owner }}", std::iter::empty()).expect_err("unknown");
        assert!(
            err.starts_with("unknown variable {{ task.owner }} in template, line 1, column 4"),
            "{err}"
        );
        assert!(err.contains("task.id"), "{err}");
        let err = Template::parse("a\n{{ colour }}", std::iter::empty()).expect_err("unknown");
        assert!(
            err.contains("{{ colour }} in template, line 2, column 4"),
            "{err}"
        );
        assert!(
            Template::parse(
                "{% for x in kwargs.items %}{{ x }}{% endfor %}",
                std::iter::empty()
            )
            .is_ok()
        );
        let err = Template::parse("{{ project }}", ["project"].into_iter()).expect_err("shadow");
        assert!(err.contains("kwargs.project"), "{err}");
    }

    #[test]
    fn unknown_filters_and_loading_tags_are_found_at_load() {
        let none = || std::iter::empty();
        let err = Template::parse("ok\n {{ task.id | shout }}", none()).expect_err("filter");
        assert_eq!(err, "template, line 2, column 15: unknown filter shout");
        let err = Template::parse("{% filter nope %}x{% endfilter %}", none()).expect_err("block");
        assert!(err.contains("unknown filter nope"), "{err}");
        // A `|` inside a string is not a filter; `||` is not one either.
        assert!(
            Template::parse(
                r#"{{ "a | b" | upper }} {{ task.id | default(1) }}"#,
                none()
            )
            .is_ok()
        );
        assert!(Template::parse("{{ task.id | mention | mrkdwn | datetime }}", none()).is_ok());
        for tag in [
            "include 'x.txt'",
            "import 'm' as m",
            "from 'm' import f",
            "extends 'base'",
        ] {
            let err = Template::parse(&format!("a\n{{% {tag} %}}"), none()).expect_err(tag);
            assert!(
                err.starts_with("template, line 2, column 4: {%"),
                "{tag}: {err}"
            );
        }
    }
}
