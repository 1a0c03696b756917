//! The whole data model of design.md §4.

use sea_orm_migration::prelude::*;

use crate::dialect;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_init"
    }
}

const UP: &str = r#"
CREATE TABLE workflows (
    id {pk},
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at {ts} NOT NULL
);

CREATE TABLE certifications (
    id {pk},
    workflow_id {id} NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    required_certifications {json} NOT NULL,
    UNIQUE (workflow_id, slug)
);

CREATE TABLE workflow_versions (
    id {pk},
    workflow_id {id} NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    sanity_checks {json},
    definition {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    UNIQUE (workflow_id, slug)
);

CREATE TABLE steps (
    id {pk},
    workflow_version_id {id} NOT NULL REFERENCES workflow_versions (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position INTEGER NOT NULL,
    is_human BOOLEAN NOT NULL DEFAULT TRUE,
    assignment_policy {json} NOT NULL,
    review_policy {json} NOT NULL,
    creation_policy {json} NOT NULL,
    detailed_description_function {json} NOT NULL,
    completion_ends_project BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (workflow_version_id, slug)
);

CREATE TABLE step_certifications (
    step_id {id} NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    certification_id {id} NOT NULL REFERENCES certifications (id) ON DELETE CASCADE,
    PRIMARY KEY (step_id, certification_id)
);

CREATE TABLE step_dependencies (
    step_id {id} NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    depends_on_step_id {id} NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('creation', 'submission')),
    PRIMARY KEY (step_id, depends_on_step_id, kind)
);

CREATE TABLE workers (
    id {pk},
    username TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    slack_user_id TEXT UNIQUE,
    slack_username TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    last_reminded_at {ts},
    created_at {ts} NOT NULL
);

CREATE TABLE worker_certifications (
    id {pk},
    worker_id {id} NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    certification_id {id} NOT NULL REFERENCES certifications (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('entry_level', 'reviewer')),
    staffbot_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    staffing_priority INTEGER NOT NULL DEFAULT 0,
    created_at {ts} NOT NULL,
    UNIQUE (worker_id, certification_id, role)
);
CREATE INDEX worker_certifications_by_certification ON worker_certifications (certification_id, role);

CREATE TABLE projects (
    id {pk},
    workflow_version_id {id} NOT NULL REFERENCES workflow_versions (id),
    short_description TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'completed', 'aborted')),
    slack_channel_id TEXT,
    project_data {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);

CREATE TABLE tasks (
    id {pk},
    project_id {id} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    step_id {id} NOT NULL REFERENCES steps (id),
    status TEXT NOT NULL CHECK (status IN ('awaiting_processing', 'processing', 'pending_review',
        'reviewing', 'post_review_processing', 'complete', 'aborted')),
    created_at {ts} NOT NULL,
    status_changed_at {ts} NOT NULL,
    UNIQUE (project_id, step_id)
);
CREATE INDEX tasks_by_status ON tasks (status);

CREATE TABLE task_assignments (
    id {pk},
    task_id {id} NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    worker_id {id} NOT NULL REFERENCES workers (id),
    assignment_counter INTEGER NOT NULL CHECK (assignment_counter >= 0),
    status TEXT NOT NULL CHECK (status IN ('processing', 'submitted', 'failed')),
    in_progress_task_data {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    UNIQUE (task_id, assignment_counter),
    UNIQUE (task_id, worker_id)
);
CREATE INDEX task_assignments_by_worker ON task_assignments (worker_id, status);

CREATE TABLE staffing_requests (
    id {pk},
    task_id {id} NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    required_role_counter INTEGER NOT NULL CHECK (required_role_counter >= 0),
    cause TEXT NOT NULL CHECK (cause IN ('user', 'task_policy', 'restaff')),
    status TEXT NOT NULL CHECK (status IN ('sending', 'done_sending', 'closed')),
    last_batch_at {ts},
    last_warned_at {ts},
    created_at {ts} NOT NULL,
    closed_at {ts}
);
CREATE UNIQUE INDEX staffing_requests_one_open_per_task ON staffing_requests (task_id)
    WHERE status <> 'closed';
CREATE INDEX staffing_requests_by_status ON staffing_requests (status, last_batch_at);

CREATE TABLE staffing_inquiries (
    id {pk},
    request_id {id} NOT NULL REFERENCES staffing_requests (id) ON DELETE CASCADE,
    worker_id {id} NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('slack', 'previously_opted_in')),
    dm_channel TEXT,
    dm_ts TEXT,
    created_at {ts} NOT NULL,
    UNIQUE (request_id, worker_id)
);
CREATE INDEX staffing_inquiries_by_worker ON staffing_inquiries (worker_id);

CREATE TABLE staffing_responses (
    id {pk},
    inquiry_id {id} NOT NULL UNIQUE REFERENCES staffing_inquiries (id) ON DELETE CASCADE,
    request_id {id} NOT NULL REFERENCES staffing_requests (id) ON DELETE CASCADE,
    worker_id {id} NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    is_available BOOLEAN NOT NULL,
    is_winner BOOLEAN NOT NULL DEFAULT FALSE,
    created_at {ts} NOT NULL
);
CREATE UNIQUE INDEX staffing_responses_one_winner_per_request ON staffing_responses (request_id)
    WHERE is_winner;

CREATE TABLE sanity_checks (
    id {pk},
    project_id {id} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    check_slug TEXT NOT NULL,
    created_at {ts} NOT NULL,
    handled_at {ts}
);
CREATE INDEX sanity_checks_by_project ON sanity_checks (project_id, check_slug);

CREATE TABLE outbox (
    id {pk},
    dedupe_key TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    payload {json} NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {ts} NOT NULL,
    claimed_by TEXT,
    claim_expires_at {ts},
    result {json},
    last_error TEXT,
    created_at {ts} NOT NULL,
    sent_at {ts}
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at {ts} NOT NULL
);

CREATE TABLE handled_envelopes (
    envelope_id TEXT NOT NULL PRIMARY KEY,
    handled_at {ts} NOT NULL
)
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS handled_envelopes;
DROP TABLE IF EXISTS leases;
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS sanity_checks;
DROP TABLE IF EXISTS staffing_responses;
DROP TABLE IF EXISTS staffing_inquiries;
DROP TABLE IF EXISTS staffing_requests;
DROP TABLE IF EXISTS task_assignments;
DROP TABLE IF EXISTS tasks;
DROP TABLE IF EXISTS projects;
DROP TABLE IF EXISTS worker_certifications;
DROP TABLE IF EXISTS workers;
DROP TABLE IF EXISTS step_dependencies;
DROP TABLE IF EXISTS step_certifications;
DROP TABLE IF EXISTS steps;
DROP TABLE IF EXISTS workflow_versions;
DROP TABLE IF EXISTS certifications;
DROP TABLE IF EXISTS workflows
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        dialect::run(manager, DOWN).await
    }
}
