//! Workflows: loading Orchestra's `workflow.json` / `version.json`, and the task lifecycle
//! (creating tasks, role counters, assign, submit, review, completion, abort, assignment
//! policies).

pub mod definition;
pub mod functions;
pub mod lifecycle;
pub mod load;
pub mod rules;
pub mod template;
