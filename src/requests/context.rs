//! What a request's messages say about it, from its stored context
//! ([`crate::db::requests::RequestContext`]): the task as displayed, the rendered detailed
//! description, the offer's content.

use std::collections::HashMap;

use serde_json::Value;

use crate::db::requests::RequestContext;
use crate::messages::{OfferContent, task_display};
use crate::workflow::functions::DescriptionFunction;

impl RequestContext {
    /// The task as messages name it (`<version> - <project> - <step>`).
    pub fn display(&self) -> String {
        task_display(&self.version_slug, &self.short_description, &self.step_slug)
    }

    /// The detailed description; a function that cannot be used shows nothing (and says why
    /// in the log), it never blocks the offer.
    pub fn details(&self) -> String {
        if self
            .detailed_description_function
            .as_object()
            .is_none_or(|o| o.is_empty())
        {
            return String::new();
        }
        let function: DescriptionFunction =
            match serde_json::from_value(self.detailed_description_function.clone()) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(task_id = self.task_id, "detailed description unusable: {e}");
                    return String::new();
                }
            };
        let template = match function.template() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(task_id = self.task_id, "detailed description unusable: {e}");
                return String::new();
            }
        };
        let mut values: HashMap<String, String> = function
            .kwargs
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        for (k, v) in [
            ("task.id", self.task_id.to_string()),
            ("task.step", self.step_slug.clone()),
            ("project.id", self.project_id.to_string()),
            ("project.description", self.short_description.clone()),
            ("project.priority", self.priority.to_string()),
            ("workflow.slug", self.workflow_slug.clone()),
            ("workflow.description", self.workflow_description.clone()),
        ] {
            values.insert(k.to_string(), v);
        }
        template.render(&values)
    }

    /// What every offer of this request shows.
    pub fn offer_content(&self) -> OfferContent {
        OfferContent {
            workflow_description: self.workflow_description.clone(),
            project_description: self.short_description.clone(),
            step_description: self.step_description.clone(),
            review: self.required_role_counter > 0,
            details: self.details(),
        }
    }
}
