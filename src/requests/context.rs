//! What a request's messages say about it, from its stored context
//! ([`crate::db::requests::RequestContext`]): the task as displayed, the rendered detailed
//! description, the offer's content.

use crate::db::requests::RequestContext;
use crate::messages::{Details, OfferContent, task_display};
use crate::workflow::functions::describe;
use crate::workflow::script::unix;
use crate::workflow::template::{DescriptionInput, ProjectInfo, StepInfo, TaskInfo, WorkflowInfo};

impl RequestContext {
    /// The task as messages name it (`<version> - <project> - <step>`).
    pub fn display(&self) -> String {
        task_display(&self.version_slug, &self.short_description, &self.step_slug)
    }

    /// What the step's detailed description is rendered from.
    pub fn description_input(&self) -> DescriptionInput {
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
                created_at: unix(self.project_created_at),
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

    /// Renders the step's detailed description (a team's template or script: up to its wall
    /// time). Only the staffing tick calls this, on a blocking thread, before the request's
    /// first batch; everything else reads what it stored ([`RequestContext::details`]). A
    /// function that cannot be used shows nothing (and says why in the log), it never blocks
    /// the offer.
    pub fn render_details(&self) -> Details {
        match describe(
            &self.detailed_description_function,
            &self.description_input(),
        ) {
            Ok(details) => details,
            Err(e) => {
                tracing::warn!(
                    task_id = self.task_id,
                    project_id = self.project_id,
                    "detailed description unusable: {e}"
                );
                Details::default()
            }
        }
    }

    /// Whether the step has a detailed description function at all.
    pub fn has_details_function(&self) -> bool {
        self.detailed_description_function
            .as_object()
            .is_some_and(|f| !f.is_empty())
    }

    /// The detailed description as the staffing tick stored it. Never runs a team's script
    /// here (clicks, Homes and email answers read this, and must answer at once): a request
    /// stored before descriptions were stored renders a template (bounded, and fast), and
    /// shows no script's text.
    pub fn details(&self) -> Details {
        if let Some(stored) = &self.stored_details {
            return serde_json::from_value(stored.clone()).unwrap_or_default();
        }
        let is_script = self
            .detailed_description_function
            .get("script")
            .is_some_and(|s| !s.is_null());
        if is_script || !self.has_details_function() {
            return Details::default();
        }
        self.render_details()
    }

    /// What every offer of this request shows.
    pub fn offer_content(&self) -> OfferContent {
        self.offer_content_with(self.details())
    }

    /// What every offer of this request shows, with `details` as its detailed description.
    pub fn offer_content_with(&self, details: Details) -> OfferContent {
        OfferContent {
            workflow_description: self.workflow_description.clone(),
            project_description: self.short_description.clone(),
            step_description: self.step_description.clone(),
            review: self.required_role_counter > 0,
            details,
        }
    }
}
