//! Recommendation training: the one code path that makes a model. One scan of the tenant's event log
//! ([`super::fit`]), a fit of every serving model, offline metrics on a leave-one-out holdout fitted by the same
//! code ([`super::holdout`]), the choice of `for_you`'s model on half of the holdout and the metrics on the
//! other half ([`super::choice`]), and a versioned snapshot in the store (`Store::save_model_snapshot`, kind
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

use super::choice::{Choice, HoldoutMetrics, Parts, choose, measure_scorers, split_halves};
use super::fit::{FitFor, SCAN_CHUNK, Scan, fit, fit_parts, scan};
pub use super::fit::{StageResult, TrainError};
use super::holdout::{EVAL_K, ScorerMetrics, holdout, rank_held};
use super::model::{BlendWeights, FittedRecs, ForYouScorer, MODEL_KIND, RecsModel, decode, encode};
use super::unlearn::{Erasures, Unlearned, unlearn_erased, unlearned_now};
use attune_core::{EventKind, TenantId};
use attune_store::{ModelSnapshotInfo, Store};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The seed of the holdout sample when none is configured.
pub const DEFAULT_SEED: u64 = 42;
/// Shoppers held out at most, so metrics stay quick on large tenants: half choose `for_you`'s model, half
/// measure it.
pub const DEFAULT_EVAL_USERS: usize = 4_000;
/// Fewest positive item interactions (views, carts, purchases, ...) a trained model needs.
pub const MIN_INTERACTIONS: usize = 50;
/// Fewest shoppers with two or more distinct items a trained model needs: the shoppers its holdout can evaluate.
pub const MIN_EVAL_SHOPPERS: usize = 10;
/// The version of a model that was fitted but not stored because the data is below the minimum.
pub const UNSTORED_VERSION: i64 = 0;
/// How long the factor parts of a model may still reflect an erased shopper's data before a full training
/// replaces them, when none is configured.
pub const DEFAULT_RETRAIN_AFTER_ERASURE: Duration = Duration::from_secs(24 * 3_600);

/// How a model is trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Seed of everything random in training (the holdout sample).
    pub seed: u64,
    /// Shoppers evaluated at most.
    pub eval_users: usize,
    /// How long after an erasure the factor parts (ALS, EASE) of the served model may still reflect the erased
    /// data; the count-based parts forget it at once.
    pub retrain_after_erasure: Duration,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            eval_users: DEFAULT_EVAL_USERS,
            retrain_after_erasure: DEFAULT_RETRAIN_AFTER_ERASURE,
        }
    }
}

/// The offline metrics stored with a snapshot (its `metrics` JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainMetrics {
    pub seed: u64,
    /// Events the model learned from: those inside the training window.
    pub events: u64,
    /// The tenant's training window in days when one was set: only events that many days before the newest were
    /// read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_window_days: Option<u32>,
    pub items: usize,
    pub shoppers: usize,
    /// How the metrics were measured.
    pub protocol: String,
    pub k: usize,
    /// Held-out shoppers the metrics are measured on (the reporting half).
    pub eval_users: usize,
    /// Held-out shoppers `for_you`'s model was chosen on (the tuning half; none of them is measured).
    #[serde(default)]
    pub tune_users: usize,
    /// `for_you`: item-kNN over the shopper's weighted history.
    pub for_you: ScorerMetrics,
    /// `for_you` by implicit ALS on the same holdout; absent in versions trained before it was measured.
    #[serde(default)]
    pub for_you_als: Option<ScorerMetrics>,
    /// `for_you` by sparse EASE; absent without positive interactions and in older versions.
    #[serde(default)]
    pub for_you_ease: Option<ScorerMetrics>,
    /// `for_you` by the blend of item-kNN, ALS and EASE with `blend_weights`; absent in older versions.
    #[serde(default)]
    pub for_you_blend: Option<ScorerMetrics>,
    /// The blend's weights (item-kNN, ALS, EASE), tuned on the tuning half.
    #[serde(default)]
    pub blend_weights: Option<BlendWeights>,
    /// Each candidate's NDCG@10 on the tuning half: what the choice rested on.
    #[serde(default)]
    pub tuning_ndcg: Vec<(String, f64)>,
    /// Which `for_you` this version serves (`item_knn`, `als`, `ease` or `blend`): the best NDCG on the
    /// tuning half.
    #[serde(default)]
    pub for_you_serves: String,
    /// `next`: the sequential model over the shopper's ordered history.
    pub next: ScorerMetrics,
    /// Baseline: the most popular items.
    pub popular: ScorerMetrics,
    pub fit_ms: u64,
    pub eval_ms: u64,
    /// Set when data left the log after the factor parts were fitted (erasure, retention) and the count-based
    /// parts were fitted again without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlearned: Option<Unlearned>,
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
    let known = Erasures::read(store, tenant)?;
    let scan = scan(store, tenant, None, report)?;
    check_enough(&scan)?;
    report("fitting models", 0.4)?;
    let clock = Instant::now();
    let fitted = fit(&scan, options.seed, &|part| report(&format!("fitting {part}"), 0.4))?;
    let fit_ms = clock.elapsed().as_millis() as u64;
    // Only the bytes are kept while the holdout is fitted: peak memory is one scan and one model.
    let payload = encode(&fitted)?;
    let (through_seq, items) = (fitted.events_through_seq, fitted.items.len());
    drop(fitted);
    report("evaluating on a holdout", 0.6)?;
    let clock = Instant::now();
    let (events, shoppers, training_window_days) = (scan.events, scan.active_shoppers(), scan.window_days);
    let (reduced, held) = holdout(scan, options.seed, options.eval_users);
    let holdout_part = |part: &str| report(&format!("holdout: fitting {part}"), 0.6);
    let held_out_model = fit_parts(&reduced, options.seed, FitFor::Holdout, &holdout_part)?;
    report("ranking held-out shoppers", 0.7)?;
    let ranked = rank_held(&reduced, &held_out_model, &held);
    let n_items = held_out_model.items.len();
    let parts = Parts { als: held_out_model.als.is_some(), ease: held_out_model.ease.is_some() };
    drop((reduced, held_out_model));
    report("choosing for_you's model", 0.8)?;
    let (tune, test) = split_halves(ranked);
    let choice = choose(&tune, n_items, parts);
    let held_metrics = measure_scorers(&test, n_items, parts, &choice.blend_weights);
    let (payload, served) = serve_for_you(payload, choice.scorer)?;
    let (payload, unlearned) = unlearn_late_erasures(store, tenant, payload, &known, options)?;
    let metrics = TrainMetrics {
        seed: options.seed,
        events,
        training_window_days,
        items,
        shoppers,
        protocol: format!(
            "leave-one-out: the latest item of up to {} shoppers held out, all items ranked, seen items excluded; \
             for_you's model chosen on half of them (tune_users), metrics measured on the other half (eval_users)",
            options.eval_users
        ),
        k: EVAL_K,
        eval_users: test.len(),
        tune_users: tune.len(),
        for_you_serves: served.name().to_string(),
        fit_ms,
        eval_ms: clock.elapsed().as_millis() as u64,
        unlearned,
        ..measured(held_metrics, choice)
    };
    report("saving the snapshot", 0.9)?;
    let metrics_json = serde_json::to_string(&metrics).map_err(|e| TrainError::Metrics(e.to_string()))?;
    let info = store.save_model_snapshot(tenant, MODEL_KIND, through_seq, &metrics_json, &payload)?;
    let model = decode(&payload)?;
    tracing::info!(tenant = %tenant, version = info.version, events = metrics.events, items = metrics.items,
        serves = %metrics.for_you_serves, fit_ms = metrics.fit_ms, eval_ms = metrics.eval_ms,
        "recommendation model trained");
    Ok(Trained { info, metrics, model })
}

/// Whether a scan holds enough data to train on: at least [`MIN_INTERACTIONS`] positive item interactions and
/// [`MIN_EVAL_SHOPPERS`] shoppers with two or more distinct items; else why not.
pub fn check_enough(scan: &Scan) -> Result<(), TrainError> {
    let interactions = scan.interactions.iter().filter(|i| i.weight > 0.0).count();
    let shoppers = scan
        .touches
        .iter()
        .filter(|touches| touches.first().is_some_and(|first| touches.iter().any(|touch| touch.item != first.item)))
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
    let scan = scan(store, tenant, None, &|_, _| Ok(()))?;
    fit(&scan, options.seed, &|_| Ok(()))
}

/// The payload without the shoppers erased since the scan began (`known`: the tombstones then; here or in
/// another process sharing the store): the scan may have read their events. Nothing changes when no one was
/// erased.
fn unlearn_late_erasures(
    store: &dyn Store,
    tenant: &TenantId,
    payload: Vec<u8>,
    known: &Erasures,
    options: &TrainOptions,
) -> Result<(Vec<u8>, Option<Unlearned>), TrainError> {
    if !known.any_since(store, tenant)? {
        return Ok((payload, None));
    }
    tracing::info!(tenant = %tenant, "a shopper was erased while training; unlearning before storing");
    let unlearned = unlearn_erased(store, tenant, &decode(&payload)?)?;
    Ok((encode(&unlearned)?, Some(unlearned_now(None, options.retrain_after_erasure))))
}

/// A one-line account of a training, for the task list and the CLI.
pub fn summary(info: &ModelSnapshotInfo, m: &TrainMetrics) -> String {
    let other = |name: &str, metrics: Option<ScorerMetrics>| {
        metrics.map_or(String::new(), |x| format!(", ({name}) HR@{} {:.4} NDCG@{} {:.4}", m.k, x.hr, m.k, x.ndcg))
    };
    format!(
        "version {}: {} events, {} items; for you (item-kNN) HR@{k} {:.4} NDCG@{k} {:.4}{}{}{}, serving {}, \
         next HR@{k} {:.4} NDCG@{k} {:.4}, popular HR@{k} {:.4} ({} shoppers measured, {} chose the model)",
        info.version,
        m.events,
        m.items,
        m.for_you.hr,
        m.for_you.ndcg,
        other("ALS", m.for_you_als),
        other("EASE", m.for_you_ease),
        other("blend", m.for_you_blend),
        m.for_you_serves,
        m.next.hr,
        m.next.ndcg,
        m.popular.hr,
        m.eval_users,
        m.tune_users,
        k = m.k,
    )
}

/// The metrics and choice part of a version's [`TrainMetrics`].
fn measured(held: HoldoutMetrics, choice: Choice) -> TrainMetrics {
    TrainMetrics {
        for_you: held.for_you,
        for_you_als: held.for_you_als,
        for_you_ease: held.for_you_ease,
        for_you_blend: Some(held.for_you_blend),
        blend_weights: Some(choice.blend_weights),
        tuning_ndcg: choice.tuning_ndcg,
        next: held.next,
        popular: held.popular,
        ..TrainMetrics::default()
    }
}

/// The payload with `for_you` set to serve `scorer`, and the scorer it serves: item-kNN when the full model
/// lacks a part `scorer` needs (the holdout's model had it). Decoded and encoded again: training keeps only
/// the bytes of the full model while the holdout is evaluated.
fn serve_for_you(payload: Vec<u8>, scorer: ForYouScorer) -> Result<(Vec<u8>, ForYouScorer), TrainError> {
    if scorer == ForYouScorer::ItemKnn {
        return Ok((payload, scorer));
    }
    let mut model = decode(&payload)?;
    if !scorer.is_backed_by(&model) {
        return Ok((payload, ForYouScorer::ItemKnn));
    }
    model.for_you_scorer = scorer;
    Ok((encode(&model)?, scorer))
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

    #[test]
    fn the_chosen_scorer_is_written_into_the_payload_when_the_model_backs_it() {
        let payload = encode(&fit(&tiny_scan(), 1, &|_| Ok(())).unwrap()).unwrap();
        assert_eq!(decode(&payload).unwrap().for_you_scorer, ForYouScorer::ItemKnn);
        for scorer in [ForYouScorer::Als, ForYouScorer::Ease, ForYouScorer::Blend([0.5, 1.0, 2.0])] {
            let (served, serves) = serve_for_you(payload.clone(), scorer).unwrap();
            assert_eq!((decode(&served).unwrap().for_you_scorer, serves), (scorer, scorer));
        }
        let mut without_ease = decode(&payload).unwrap();
        without_ease.ease = None;
        let (served, serves) = serve_for_you(encode(&without_ease).unwrap(), ForYouScorer::Ease).unwrap();
        assert_eq!((decode(&served).unwrap().for_you_scorer, serves), (ForYouScorer::ItemKnn, ForYouScorer::ItemKnn));
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
                scan.add_interaction(&shopper, item, 1.0, at as i64);
                scan.add_touch(&shopper, at as i64, None, item);
            }
        }
        check_enough(&scan).expect("enough data");
        let first_added = scan.shoppers.index("s0").unwrap();
        scan.interactions.retain(|i| i.shopper >= first_added);
        scan.interactions.truncate(MIN_INTERACTIONS - 1);
        assert!(matches!(check_enough(&scan), Err(TrainError::NotEnoughData(_))), "one interaction short");
    }
}
