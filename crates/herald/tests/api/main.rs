//! Herald's integration suite: one binary; every test runs against SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod bad_input;
mod channels;
mod credentials;
mod delivery;
mod mock_push;
mod native_providers;
mod openapi;
mod process;
mod subscriptions;
