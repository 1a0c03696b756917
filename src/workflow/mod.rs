//! Workflows: Orchestra's `workflow.json` / `version.json` loaded and stored, with what they
//! define (steps, their rules and functions, description templates, SanityBot's checks). The task
//! lifecycle that runs them is [`crate::lifecycle`].

pub mod definition;
pub mod functions;
pub mod load;
pub mod memory;
pub mod rules;
pub mod sanity;
pub mod script;
pub mod template;
