//! Herald's integration suite: one binary; every test runs against SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod bad_input;
mod browser;
mod channels;
mod compat_bnotify;
mod compat_brightpattern;
mod compat_discord;
mod compat_doboard;
mod compat_notiflows;
mod credentials;
mod delivery;
mod events_atomic;
mod failover;
mod fuzz;
mod hardening;
mod metrics;
mod mock_push;
mod native_providers;
mod openapi;
mod outage;
mod pairing;
mod process;
mod secrets;
mod subscriptions;
mod webhooks;
