//! Database access: connecting (SQLite or PostgreSQL), migrations, the sea-orm entities, and the
//! named queries the rest of staffbot uses, one store module per aggregate ([`workflows`],
//! [`workers`], [`projects`], [`tasks`], [`envelopes`], [`sanity`], [`machine`], [`health`],
//! [`retention`]). Enum values reach SQL through [`enums`] only, and values are always bound.
//! The plumbing is in [`connect`], [`sql`] and [`transactions`].

pub mod availability;
mod connect;
pub mod email;
pub mod entities;
pub mod enums;
pub mod envelopes;
pub mod health;
pub mod home;
pub mod leases;
pub mod machine;
pub mod offers;
pub mod outbox;
pub mod projects;
pub mod requests;
pub mod retention;
pub mod sanity;
pub mod schema;
mod sql;
pub mod tasks;
mod transactions;
pub mod warnings;
pub mod workers;
pub mod workflows;

pub use connect::{
    ConnectError, SQLITE_BUSY_TIMEOUT, SQLITE_CHECKPOINT_EVERY, connect, connect_and_migrate,
    reset_for_simulation, run_checkpointer,
};
pub use enums::*;
pub use sql::{db_now, db_now_plus, duration_param, is_postgres, statement};
pub(crate) use sql::{pg_int_array, pg_text_array};
pub use transactions::{begin_write, is_unique_violation, settle};
