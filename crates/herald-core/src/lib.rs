//! Herald's core: the domain model, validation of everything that arrives from the network,
//! credentials, the storage seam ([`store::Store`]) and the service layer — one function per
//! use case, called by the native API and by every compatible surface alike.
#![forbid(unsafe_code)]

pub mod clock;
pub mod cluster;
pub mod compat_store;
pub mod delivery;
pub mod error;
pub mod events;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod pairing_store;
pub mod receipts;
pub mod secrets;
pub mod service;
pub mod store;
pub mod tokens;
pub mod validate;
pub mod webhooks;

pub use error::{FieldError, ServiceError, StoreError};
pub use service::Service;
