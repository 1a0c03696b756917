//! The `staffbot.template` detailed-description function: `{{ name }}` placeholders over task
//! details and the function's own kwargs. Placeholders are checked when the workflow is loaded.

use std::collections::HashMap;

/// Task details every template may use (design.md §5.4).
pub const TASK_FIELDS: &[&str] = &[
    "task.id",
    "task.step",
    "project.id",
    "project.description",
    "project.priority",
    "workflow.slug",
    "workflow.description",
];

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
}

/// A parsed template; rendering cannot fail once parsing succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `text`, accepting the task fields and the given kwarg names as placeholders.
    pub fn parse<'a>(
        text: &str,
        kwargs: impl Iterator<Item = &'a str>,
    ) -> Result<Template, String> {
        let kwargs: Vec<&str> = kwargs.collect();
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed placeholder in template {text:?}"))?;
            let name = after[..end].trim();
            if !TASK_FIELDS.contains(&name) && !kwargs.contains(&name) {
                let mut known: Vec<&str> = TASK_FIELDS.to_vec();
                known.extend(kwargs.iter().copied());
                return Err(format!(
                    "unknown placeholder {{{{ {name} }}}} in template; known: {}",
                    known.join(", ")
                ));
            }
            pieces.push(Piece::Field(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// Renders with `values` (missing values render empty).
    pub fn render(&self, values: &HashMap<String, String>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(name) => {
                    if let Some(v) = values.get(name) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_kwargs() {
        let t = Template::parse(
            "Find out more about {{ text }} at project {{project.id}} ({{ task.step }})!",
            ["text"].into_iter(),
        )
        .expect("valid");
        let values: HashMap<String, String> = [
            ("text", "the draft"),
            ("project.id", "7"),
            ("task.step", "copy_edit"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            t.render(&values),
            "Find out more about the draft at project 7 (copy_edit)!"
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let err = Template::parse("{{ task.owner }}", std::iter::empty()).expect_err("unknown");
        assert!(err.contains("{{ task.owner }}"), "{err}");
        assert!(err.contains("task.id"), "{err}");
        let err = Template::parse("{{ task.id ", std::iter::empty()).expect_err("unclosed");
        assert!(err.contains("unclosed"), "{err}");
    }
}
