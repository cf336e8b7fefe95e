//! The storage seam of pairing codes: a short-lived secret that subscribes one device to one
//! (channel, user) when redeemed. Implemented next to [`crate::store::Store`] for both engines.
//! Codes are stored only as SHA-256, like every secret Herald mints.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::store::StoreResult;

/// A pairing code to insert.
#[derive(Debug, Clone)]
pub struct NewPairingCode {
    /// SHA-256 of the code.
    pub hash: Vec<u8>,
    pub account_id: i64,
    pub channel_id: String,
    /// The user the redeemed subscription will belong to.
    pub external_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// A stored pairing code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCode {
    pub account_id: i64,
    pub channel_id: String,
    pub external_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// When it was redeemed (or is being redeemed); `None` while it is still usable.
    pub redeemed_at: Option<Millis>,
    /// The subscription its redemption created or refreshed.
    pub subscription_id: Option<i64>,
}

/// Storage for pairing codes.
#[async_trait]
pub trait PairingStore: Send + Sync {
    /// Inserts a code; codes that expired before `purge_before` are deleted in passing.
    async fn insert_pairing_code(&self, code: &NewPairingCode, purge_before: Millis) -> StoreResult<()>;
    /// The code with this hash, whatever its state.
    async fn get_pairing_code(&self, hash: &[u8]) -> StoreResult<Option<PairingCode>>;
    /// Marks an unredeemed, unexpired code redeemed at `now` in one conditional update and
    /// returns it; `None` when it is unknown, expired or already taken, so of two concurrent
    /// claims exactly one wins.
    async fn claim_pairing_code(&self, hash: &[u8], now: Millis) -> StoreResult<Option<PairingCode>>;
    /// Undoes the claim made at `claimed_at` when the redemption failed before storing anything.
    async fn release_pairing_code(&self, hash: &[u8], claimed_at: Millis) -> StoreResult<()>;
    /// Records the subscription a claimed code produced.
    async fn complete_pairing_code(&self, hash: &[u8], subscription_id: i64) -> StoreResult<()>;
}
