//! sea-orm entities, one module per table (see `migrations/` for the schema and its rules).
//! Relations are not declared: joins that matter are written as named queries.

pub mod workflow {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflows")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(column_type = "Text")]
        pub slug: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod certification {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "certifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_id: i64,
        #[sea_orm(column_type = "Text")]
        pub slug: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub required_certifications: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow_version {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_versions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_id: i64,
        #[sea_orm(column_type = "Text")]
        pub slug: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub sanity_checks: Option<Json>,
        #[sea_orm(column_type = "JsonBinary")]
        pub definition: Json,
        /// The source of every `script:` file the version uses, by file name (`null`: none).
        #[sea_orm(column_type = "JsonBinary")]
        pub scripts: Option<Json>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "steps")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_version_id: i64,
        #[sea_orm(column_type = "Text")]
        pub slug: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        pub position: i32,
        pub is_human: bool,
        #[sea_orm(column_type = "JsonBinary")]
        pub assignment_policy: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub review_policy: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub creation_policy: Json,
        #[sea_orm(column_type = "JsonBinary")]
        pub detailed_description_function: Json,
        pub completion_ends_project: bool,
        /// A machine step's `{path, kwargs}`; `None` for human steps.
        #[sea_orm(column_type = "JsonBinary")]
        pub execution_function: Option<Json>,
        /// Orchestra's `assignable_hours_function` as written (stored, unused).
        #[sea_orm(column_type = "JsonBinary")]
        pub assignable_hours_function: Option<Json>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step_certification {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "step_certifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub step_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub certification_id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod step_dependency {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "step_dependencies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub step_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub depends_on_step_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        #[sea_orm(column_type = "Text")]
        pub kind: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod worker {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "workers")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(column_type = "Text")]
        pub username: String,
        #[sea_orm(column_type = "Text")]
        pub first_name: String,
        #[sea_orm(column_type = "Text")]
        pub email: String,
        #[sea_orm(column_type = "Text")]
        pub slack_user_id: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub slack_username: Option<String>,
        pub is_admin: bool,
        pub last_reminded_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub notify: Notify,
        /// The most hours a day they may be auto-staffed (Orchestra's default 0: never).
        pub max_autostaff_hours_per_day: f64,
        /// Their IANA time zone (`Europe/Berlin`), from Slack's `users.info` or set by an admin.
        #[sea_orm(column_type = "Text")]
        pub tz: Option<String>,
        /// An admin set `tz` (`worker update --tz`): Slack's is not fetched.
        pub tz_set_by_admin: bool,
        /// When Slack was last asked for their time zone.
        pub tz_checked_at: Option<DateTimeUtc>,
        /// Their own working hours (`09:00-18:00`), instead of `staffbot.working_hours`.
        #[sea_orm(column_type = "Text")]
        pub working_hours: Option<String>,
        /// Their own working days (`mon-fri`), instead of `staffbot.working_days`.
        #[sea_orm(column_type = "Text")]
        pub working_days: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod worker_availability {
    use sea_orm::entity::prelude::*;

    /// A worker's hours available per weekday in one week (Orchestra's `WorkerAvailability`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "worker_availability")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub worker_id: i64,
        /// The week's Monday, `YYYY-MM-DD`.
        #[sea_orm(column_type = "Text")]
        pub week: String,
        pub mon: f64,
        pub tue: f64,
        pub wed: f64,
        pub thu: f64,
        pub fri: f64,
        pub sat: f64,
        pub sun: f64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod worker_certification {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "worker_certifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub worker_id: i64,
        pub certification_id: i64,
        pub role: Role,
        pub staffbot_enabled: bool,
        pub staffing_priority: i32,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod project {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "projects")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_version_id: i64,
        #[sea_orm(column_type = "Text")]
        pub short_description: String,
        pub priority: i32,
        pub status: ProjectStatus,
        #[sea_orm(column_type = "Text")]
        pub slack_channel_id: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub project_data: Json,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub project_id: i64,
        pub step_id: i64,
        pub status: TaskStatus,
        pub created_at: DateTimeUtc,
        pub status_changed_at: DateTimeUtc,
        /// What the task produced, set when it completes (a machine command's stdout, the
        /// data of a human task's last assignment).
        #[sea_orm(column_type = "JsonBinary")]
        pub output: Option<Json>,
        /// Machine tasks: failed runs so far, when to run again, and the last failure.
        pub machine_attempts: i32,
        pub machine_next_attempt_at: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text")]
        pub machine_last_error: Option<String>,
        /// When the warning loop last reported this machine task as waiting.
        pub machine_warned_at: Option<DateTimeUtc>,
        /// How many times the status changed (status notices are keyed on it).
        pub status_changes: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task_assignment {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_assignments")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub task_id: i64,
        pub worker_id: i64,
        pub assignment_counter: i32,
        pub status: AssignmentStatus,
        #[sea_orm(column_type = "JsonBinary")]
        pub in_progress_task_data: Json,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// How many times this assignment changed hands (each hand-over's Slack effects are
        /// keyed on it).
        pub handovers: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod staffing_request {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "staffing_requests")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub task_id: i64,
        pub required_role_counter: i32,
        pub cause: RequestCause,
        pub status: RequestStatus,
        pub last_batch_at: Option<DateTimeUtc>,
        pub last_warned_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub closed_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod staffing_inquiry {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "staffing_inquiries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub request_id: i64,
        pub worker_id: i64,
        pub method: InquiryMethod,
        #[sea_orm(column_type = "Text")]
        pub dm_channel: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub dm_ts: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod staffing_response {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "staffing_responses")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub inquiry_id: i64,
        pub request_id: i64,
        pub worker_id: i64,
        pub is_available: bool,
        pub is_winner: bool,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sanity_check {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sanity_checks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub project_id: i64,
        #[sea_orm(column_type = "Text")]
        pub check_slug: String,
        pub created_at: DateTimeUtc,
        pub handled_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(column_type = "Text")]
        pub dedupe_key: String,
        #[sea_orm(column_type = "Text")]
        pub method: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub payload: Json,
        pub status: OutboxStatus,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        #[sea_orm(column_type = "Text")]
        pub claimed_by: Option<String>,
        pub claim_expires_at: Option<DateTimeUtc>,
        #[sea_orm(column_type = "JsonBinary")]
        pub result: Option<Json>,
        #[sea_orm(column_type = "Text")]
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
        /// The outbox format of the release that wrote it ([`crate::db::outbox::FORMAT`]).
        pub format: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod lease {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub holder: String,
        pub expires_at: DateTimeUtc,
        /// The fencing token (see `staffbot::lease::LeaseProof`).
        pub token: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod handled_envelope {
    #[allow(unused_imports)]
    use crate::db::enums::*;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "handled_envelopes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        #[sea_orm(column_type = "Text")]
        pub envelope_id: String,
        pub handled_at: DateTimeUtc,
        #[sea_orm(column_type = "JsonBinary")]
        pub response: Option<Json>,
        /// The format of `response` ([`crate::db::envelopes::FORMAT`]).
        pub format: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod offer_reply_token {
    use sea_orm::entity::prelude::*;

    /// The unguessable token of an emailed offer (its `Reply-To` plus-address).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "offer_reply_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
        pub token: String,
        pub inquiry_id: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod email_reply {
    use sea_orm::entity::prelude::*;

    /// An email read from the mailbox, by `Message-ID`: handled once.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_replies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
        pub message_id: String,
        pub inquiry_id: Option<i64>,
        #[sea_orm(column_type = "Text")]
        pub verdict: String,
        pub handled_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
