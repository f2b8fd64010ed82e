//! Catalog tuning kept in the store, so a restarted server (or another replica) reads the fitted map instead of
//! embedding the descriptions and fitting again: a model snapshot of kind [`TUNING_KIND`] whose metrics say
//! what it was fitted on (the fingerprint of the described items' texts, the model, the tuning settings) and
//! whose payload is the map's parts in postcard.

use attune_core::TenantId;
use attune_search::{CatalogTuning, TuningConfig, TuningParts};
use attune_store::Store;
use serde::{Deserialize, Serialize};

/// The snapshot kind of stored catalog tunings.
pub const TUNING_KIND: &str = "catalog_tuning";
/// The first bytes of every payload; the number is the payload format's version.
const MAGIC: &[u8; 8] = b"ATTUNE01";

/// What a map was fitted on: a stored map is used only when all of it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningKey {
    /// Fingerprint of the described items' embedded texts and descriptions, in hex.
    pub fingerprint: String,
    /// The embedding model's name.
    pub model: String,
    /// The tuning settings, as `Debug` prints them.
    pub settings: String,
}

impl TuningKey {
    pub fn new(fingerprint: u64, model: &str, config: &TuningConfig) -> Self {
        Self { fingerprint: format!("{fingerprint:016x}"), model: model.to_string(), settings: format!("{config:?}") }
    }
}

/// The snapshot's metrics: its key and what the map holds.
#[derive(Serialize, Deserialize)]
struct TuningMetrics {
    #[serde(flatten)]
    key: TuningKey,
    examples: usize,
    words: usize,
}

/// The newest stored map fitted on `key`, or `None` (none stored, or one that cannot be read, which is logged:
/// the caller fits again).
pub fn load(store: &dyn Store, tenant: &TenantId, key: &TuningKey) -> Option<CatalogTuning> {
    let read = || -> Result<Option<CatalogTuning>, String> {
        let snapshots = store.model_snapshots(tenant, TUNING_KIND).map_err(|e| e.to_string())?;
        let Some(info) = snapshots
            .into_iter()
            .find(|info| serde_json::from_str::<TuningMetrics>(&info.metrics).is_ok_and(|metrics| metrics.key == *key))
        else {
            return Ok(None);
        };
        let Some(payload) =
            store.model_snapshot_payload(tenant, TUNING_KIND, info.version).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let body = crate::snapshot::unseal(MAGIC, &payload)?;
        let parts: TuningParts = postcard::from_bytes(body).map_err(|e| e.to_string())?;
        CatalogTuning::from_parts(parts).map(Some).map_err(|e| e.to_string())
    };
    read().unwrap_or_else(|error| {
        tracing::warn!(tenant = %tenant, %error, "stored catalog tuning not read; fitting again");
        None
    })
}

/// Stores a freshly fitted map under `key`; a failure is logged (the map still serves from memory).
pub fn save(store: &dyn Store, tenant: &TenantId, key: &TuningKey, tuning: &CatalogTuning) {
    let write = || -> Result<(), String> {
        let parts = tuning.to_parts();
        let metrics = TuningMetrics { key: key.clone(), examples: parts.examples, words: parts.words.len() };
        let body = postcard::to_stdvec(&parts).map_err(|e| e.to_string())?;
        let metrics = serde_json::to_string(&metrics).map_err(|e| e.to_string())?;
        store
            .save_model_snapshot(tenant, TUNING_KIND, 0, &metrics, &crate::snapshot::seal(MAGIC, &body))
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    if let Err(error) = write() {
        tracing::warn!(tenant = %tenant, %error, "catalog tuning not stored");
    }
}
