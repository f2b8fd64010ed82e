//! Recommendation training: the one code path that makes a model. One scan of the tenant's event log
//! ([`super::fit`]), a fit of every serving model, offline metrics on a leave-one-out holdout fitted by the same
//! code ([`super::holdout`]), and a versioned snapshot in the store (`Store::save_model_snapshot`, kind
//! [`MODEL_KIND`]) whose payload is the fitted model ([`super::model::encode`]). The `train_recs` task,
//! `attune train`, and a tenant's very first request when nothing is stored all call [`train`].
//!
//! Determinism: the holdout sample is drawn with the configured seed and nothing else is random, so the same
//! events and seed give the same payload bytes.
//!
//! Minimum data: a tenant below [`MIN_INTERACTIONS`] positive item interactions or [`MIN_EVAL_SHOPPERS`]
//! shoppers with two or more distinct items is not trained ([`TrainError::NotEnoughData`], nothing stored):
//! the leave-one-out holdout evaluates only shoppers with a second item left after holding one out, and with
//! fewer of them its metrics are noise. Serving then uses [`fit_unstored`], a fit of what there is that is never
//! stored, so popularity, trending and content matches keep working.

use super::fit::{SCAN_CHUNK, Scan, fit, scan};
pub use super::fit::{StageResult, TrainError};
use super::holdout::{EVAL_K, HoldoutMetrics, ScorerMetrics, evaluate, holdout};
use super::model::{FittedRecs, ForYouScorer, MODEL_KIND, RecsModel, decode, encode};
use attune_core::{EventKind, TenantId};
use attune_store::{ModelSnapshotInfo, Store};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The seed of the holdout sample when none is configured.
pub const DEFAULT_SEED: u64 = 42;
/// Shoppers evaluated at most, so metrics stay quick on large tenants.
pub const DEFAULT_EVAL_USERS: usize = 2_000;
/// Fewest positive item interactions (views, carts, purchases, ...) a trained model needs.
pub const MIN_INTERACTIONS: usize = 50;
/// Fewest shoppers with two or more distinct items a trained model needs: the shoppers its holdout can evaluate.
pub const MIN_EVAL_SHOPPERS: usize = 10;
/// The version of a model that was fitted but not stored because the data is below the minimum.
pub const UNSTORED_VERSION: i64 = 0;

/// How a model is trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Seed of everything random in training (the holdout sample).
    pub seed: u64,
    /// Shoppers evaluated at most.
    pub eval_users: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { seed: DEFAULT_SEED, eval_users: DEFAULT_EVAL_USERS }
    }
}

/// The offline metrics stored with a snapshot (its `metrics` JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainMetrics {
    pub seed: u64,
    pub events: u64,
    pub items: usize,
    pub shoppers: usize,
    /// How the metrics were measured.
    pub protocol: String,
    pub k: usize,
    /// Shoppers evaluated.
    pub eval_users: usize,
    /// `for_you`: item-kNN over the shopper's weighted history.
    pub for_you: ScorerMetrics,
    /// `for_you` by implicit ALS on the same holdout; absent in versions trained before it was measured.
    #[serde(default)]
    pub for_you_als: Option<ScorerMetrics>,
    /// Which `for_you` this version serves (`item_knn` or `als`): the better NDCG on the holdout.
    #[serde(default)]
    pub for_you_serves: String,
    /// `next`: the sequential model over the shopper's ordered history.
    pub next: ScorerMetrics,
    /// Baseline: the most popular items.
    pub popular: ScorerMetrics,
    pub fit_ms: u64,
    pub eval_ms: u64,
}

/// A trained and stored model.
pub struct Trained {
    pub info: ModelSnapshotInfo,
    pub metrics: TrainMetrics,
    /// The model as decoded from the stored payload.
    pub model: FittedRecs,
}

/// Scans, fits, evaluates and stores a new version of `tenant`'s model. `report(stage, fraction)` follows
/// the progress. Runs on a blocking thread (or in the CLI).
pub fn train(
    store: &dyn Store,
    tenant: &TenantId,
    options: &TrainOptions,
    report: &dyn Fn(&str, f64),
) -> Result<Trained, TrainError> {
    train_with_checkpoints(store, tenant, options, &|stage, fraction| {
        report(stage, fraction);
        Ok(())
    })
}

/// [`train`], stopping at the first stage whose report answers an error (the engine is shutting down);
/// nothing is stored then.
pub fn train_with_checkpoints(
    store: &dyn Store,
    tenant: &TenantId,
    options: &TrainOptions,
    report: &dyn Fn(&str, f64) -> StageResult,
) -> Result<Trained, TrainError> {
    let scan = scan(store, tenant, report)?;
    check_enough(&scan)?;
    report("fitting models", 0.4)?;
    let clock = Instant::now();
    let fitted = fit(&scan, options.seed)?;
    let fit_ms = clock.elapsed().as_millis() as u64;
    // Only the bytes are kept while the holdout is fitted: peak memory is one scan and one model.
    let payload = encode(&fitted)?;
    let (through_seq, items) = (fitted.events_through_seq, fitted.items.len());
    drop(fitted);
    report("evaluating on a holdout", 0.6)?;
    let clock = Instant::now();
    let (events, shoppers) = (scan.events, scan.touches.len());
    let (reduced, held) = holdout(scan, options.seed, options.eval_users);
    let held_out_model = fit(&reduced, options.seed)?;
    let HoldoutMetrics { for_you, for_you_als, next, popular } = evaluate(&reduced, &held_out_model, &held);
    drop((reduced, held_out_model));
    let scorer = choose_for_you(&for_you, for_you_als.as_ref());
    let payload = serve_for_you(payload, scorer)?;
    let metrics = TrainMetrics {
        seed: options.seed,
        events,
        items,
        shoppers,
        protocol: format!(
            "leave-one-out: the latest item of up to {} shoppers held out, all items ranked, seen items excluded",
            options.eval_users
        ),
        k: EVAL_K,
        eval_users: held.len(),
        for_you,
        for_you_als,
        for_you_serves: scorer.name().to_string(),
        next,
        popular,
        fit_ms,
        eval_ms: clock.elapsed().as_millis() as u64,
    };
    report("saving the snapshot", 0.9)?;
    let metrics_json = serde_json::to_string(&metrics).map_err(|e| TrainError::Metrics(e.to_string()))?;
    let info = store.save_model_snapshot(tenant, MODEL_KIND, through_seq, &metrics_json, &payload)?;
    let model = decode(&payload)?;
    tracing::info!(tenant = %tenant, version = info.version, events = metrics.events, items = metrics.items,
        hr = metrics.for_you.hr, ndcg = metrics.for_you.ndcg, "recommendation model trained");
    Ok(Trained { info, metrics, model })
}

/// Whether a scan holds enough data to train on: at least [`MIN_INTERACTIONS`] positive item interactions and
/// [`MIN_EVAL_SHOPPERS`] shoppers with two or more distinct items; else why not.
pub fn check_enough(scan: &Scan) -> Result<(), TrainError> {
    let interactions = scan.interactions.iter().filter(|i| i.weight > 0.0).count();
    let shoppers = scan
        .touches
        .values()
        .filter(|touches| touches.first().is_some_and(|(_, _, first)| touches.iter().any(|(_, _, item)| item != first)))
        .count();
    if interactions >= MIN_INTERACTIONS && shoppers >= MIN_EVAL_SHOPPERS {
        return Ok(());
    }
    Err(TrainError::NotEnoughData(format!(
        "item interactions: {interactions} (training needs {MIN_INTERACTIONS}), shoppers with two or more items: \
         {shoppers} (training needs {MIN_EVAL_SHOPPERS}); until then recommendations come from popularity, \
         trending and content matches"
    )))
}

/// A fit of everything `tenant` has, never stored and without metrics: what serves while the data is below
/// the minimum. Runs on a blocking thread.
pub fn fit_unstored(store: &dyn Store, tenant: &TenantId, options: &TrainOptions) -> Result<FittedRecs, TrainError> {
    let scan = scan(store, tenant, &|_, _| Ok(()))?;
    fit(&scan, options.seed)
}

/// A one-line account of a training, for the task list and the CLI.
pub fn summary(info: &ModelSnapshotInfo, m: &TrainMetrics) -> String {
    format!(
        "version {}: {} events, {} items; for you (item-kNN) HR@{k} {:.4} NDCG@{k} {:.4}{}, serving {}, \
         next HR@{k} {:.4} NDCG@{k} {:.4}, popular HR@{k} {:.4} ({} shoppers held out)",
        info.version,
        m.events,
        m.items,
        m.for_you.hr,
        m.for_you.ndcg,
        m.for_you_als
            .map_or(String::new(), |als| format!(", (ALS) HR@{} {:.4} NDCG@{} {:.4}", m.k, als.hr, m.k, als.ndcg)),
        m.for_you_serves,
        m.next.hr,
        m.next.ndcg,
        m.popular.hr,
        m.eval_users,
        k = m.k,
    )
}

/// The `for_you` model to serve: ALS when its holdout NDCG is higher than item-kNN's, else item-kNN.
fn choose_for_you(knn: &ScorerMetrics, als: Option<&ScorerMetrics>) -> ForYouScorer {
    match als {
        Some(als) if als.ndcg > knn.ndcg => ForYouScorer::Als,
        _ => ForYouScorer::ItemKnn,
    }
}

/// The payload with `for_you` set to serve `scorer` (decoded and encoded again: training keeps only the bytes
/// of the full model while the holdout is evaluated).
fn serve_for_you(payload: Vec<u8>, scorer: ForYouScorer) -> Result<Vec<u8>, TrainError> {
    if scorer == ForYouScorer::ItemKnn {
        return Ok(payload);
    }
    let mut model = decode(&payload)?;
    model.for_you_scorer = scorer;
    Ok(encode(&model)?)
}

/// Whether an event changes what training fits: impressions (the engine's own record of what it served) and
/// searches do not, so serving traffic alone never makes a model stale.
pub fn trains_on(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Impression { .. } | EventKind::Search { .. })
}

/// Whether `tenant`'s log holds an event that training uses beyond what `model` has seen. Scans from where the
/// previous check of this model stopped, in chunks, and stops at the first such event; impressions and
/// searches are skipped once and never read again for the same model.
pub fn is_behind(store: &dyn Store, tenant: &TenantId, model: &RecsModel) -> Result<bool, TrainError> {
    let mut through = model.checked_through.load(Ordering::Acquire).max(model.events_through_seq);
    loop {
        let chunk = store.events_after(tenant, through, SCAN_CHUNK)?;
        if chunk.iter().any(|stored| trains_on(&stored.event.kind)) {
            return Ok(true);
        }
        let Some(last) = chunk.last() else { break };
        through = last.seq;
        model.checked_through.fetch_max(through, Ordering::AcqRel);
        if chunk.len() < SCAN_CHUNK {
            break;
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recs::fit::tests::tiny_scan;
    use attune_recs::Interaction;

    #[test]
    fn the_better_holdout_ndcg_serves_for_you_and_the_payload_says_so() {
        let metrics = |ndcg| ScorerMetrics { hr: 0.5, ndcg, coverage: 0.1 };
        assert_eq!(choose_for_you(&metrics(0.1), Some(&metrics(0.2))), ForYouScorer::Als);
        assert_eq!(choose_for_you(&metrics(0.2), Some(&metrics(0.2))), ForYouScorer::ItemKnn);
        assert_eq!(choose_for_you(&metrics(0.2), None), ForYouScorer::ItemKnn);
        let payload = encode(&fit(&tiny_scan(), 1).unwrap()).unwrap();
        assert_eq!(decode(&payload).unwrap().for_you_scorer, ForYouScorer::ItemKnn);
        let served = serve_for_you(payload, ForYouScorer::Als).unwrap();
        assert_eq!(decode(&served).unwrap().for_you_scorer, ForYouScorer::Als);
    }

    #[test]
    fn too_little_data_is_not_trained_and_the_reason_gives_the_figures() {
        let Err(TrainError::NotEnoughData(reason)) = check_enough(&tiny_scan()) else { panic!("trained on 4 events") };
        assert!(
            reason.starts_with("item interactions: 4 (training needs 50), shoppers with two or more items: 2"),
            "{reason}"
        );
        let mut scan = tiny_scan();
        for n in 0..MIN_EVAL_SHOPPERS {
            let shopper = format!("s{n}");
            for (at, item) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
                let at = at as i64;
                scan.interactions.push(Interaction {
                    user: shopper.clone(),
                    item: item.into(),
                    weight: 1.0,
                    timestamp_ms: at,
                });
                scan.touches.entry(shopper.clone()).or_default().push((at, None, item.to_string()));
            }
        }
        check_enough(&scan).expect("enough data");
        scan.interactions.retain(|i| i.user.starts_with('s'));
        scan.interactions.truncate(MIN_INTERACTIONS - 1);
        assert!(matches!(check_enough(&scan), Err(TrainError::NotEnoughData(_))), "one interaction short");
    }
}
