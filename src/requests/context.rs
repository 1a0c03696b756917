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

    /// The detailed description; a function that cannot be used shows nothing (and says why
    /// in the log), it never blocks the offer.
    pub fn details(&self) -> Details {
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
