//! Unlearning: taking data that left the log (an erased shopper's events, events past retention) out of a
//! fitted recommendation model at once, without a full training.
//!
//! The count-based parts — item map, popularity, trending, item-kNN, bought-together, buy-again, the session
//! index and the sequential model — are sums over shoppers and their events. Fitting them again from the log
//! as it is now, through the same sequence number, gives exactly what a training on data without the erased
//! shopper fits: the same scan and the same code, so the same bytes.
//!
//! The factor parts (ALS, EASE) are not sums: they are carried over into the new item indices (an item that
//! only erased shoppers touched leaves them too), and a full training must replace them within the configured
//! bound ([`Unlearned::factors_retrained_by`]), which the stored version's metrics record.
//!
//! A refit (or a training) that ran while another erasure was committed may have read that shopper's events; it
//! is done again until no erasure was committed during it ([`unlearn_erased`], [`Erasures`]).

use super::fit::{Scan, TrainError, assemble, fit_counted, scan};
use super::model::{FittedRecs, ForYouScorer};
use attune_core::{TenantId, Timestamp, UserId};
use attune_recs::IdMap;
use attune_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// Data taken out of a stored version after its factor parts were trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlearned {
    /// When the count-based parts were last fitted again without it.
    pub at: Timestamp,
    /// Until when the factor parts, fitted before, may still reflect it: a full training replaces them by then.
    pub factors_retrained_by: Timestamp,
}

/// The tombstones of a tenant at one moment: a scan that began after this was read cannot have seen the events
/// of these shoppers, and one that began before may have seen those of shoppers erased since.
pub struct Erasures(HashSet<(UserId, Timestamp)>);

impl Erasures {
    pub fn read(store: &dyn Store, tenant: &TenantId) -> Result<Self, TrainError> {
        Ok(Self(store.erasures(tenant)?.into_iter().collect()))
    }

    /// Whether a shopper was erased (again) since these were read.
    pub fn any_since(&self, store: &dyn Store, tenant: &TenantId) -> Result<bool, TrainError> {
        Ok(store.erasures(tenant)?.into_iter().any(|erasure| !self.0.contains(&erasure)))
    }
}

/// `served` without the data that left the log since it was fitted, through the same sequence number; the
/// count-based parts fitted again, the factor parts carried over into the new item indices. Repeated while
/// erasures are committed during the refit.
pub fn unlearn_erased(store: &dyn Store, tenant: &TenantId, served: &FittedRecs) -> Result<FittedRecs, TrainError> {
    loop {
        let known = Erasures::read(store, tenant)?;
        let unlearned = unlearn(store, tenant, served)?;
        if !known.any_since(store, tenant)? {
            return Ok(unlearned);
        }
        tracing::info!(tenant = %tenant, "a shopper was erased while unlearning; unlearning again");
    }
}

/// One refit of `served`'s count-based parts from the log as it is now.
pub fn unlearn(store: &dyn Store, tenant: &TenantId, served: &FittedRecs) -> Result<FittedRecs, TrainError> {
    let scan: Scan = scan(store, tenant, Some(served.events_through_seq), &|_, _| Ok(()))?;
    let (counted, _) = fit_counted(&scan, &|_| Ok(()))?;
    let new_of_old = new_indices(&served.items, &counted.items);
    let n_new = counted.items.len();
    let als = served.als.as_ref().map(|als| als.reindex_items(&new_of_old, n_new)).transpose()?;
    let ease = served.ease.as_ref().map(|ease| ease.reindex_items(&new_of_old, n_new)).transpose()?;
    let mut model = assemble(&scan, served.seed, counted, als, ease);
    // Sequence numbers past the last remaining event were seen too: the model is not behind them.
    model.events_through_seq = served.events_through_seq;
    model.for_you_scorer =
        if served.for_you_scorer.is_backed_by(&model) { served.for_you_scorer } else { ForYouScorer::ItemKnn };
    Ok(model)
}

/// What a version's unlearning record becomes after another unlearning now: the earlier deadline stands.
pub fn unlearned_now(previous: Option<Unlearned>, bound: Duration) -> Unlearned {
    let now = Timestamp::now();
    let deadline = Timestamp::from_millis(now.millis().saturating_add(bound.as_millis().min(i64::MAX as u128) as i64))
        .unwrap_or(now);
    let factors_retrained_by = previous.map_or(deadline, |p| p.factors_retrained_by.min(deadline));
    Unlearned { at: now, factors_retrained_by }
}

/// For every item of `old`, its index in `new` (`None`: it left the model).
fn new_indices(old: &IdMap, new: &IdMap) -> Vec<Option<u32>> {
    (0..old.len() as u32).map(|i| old.id(i).and_then(|id| new.index(id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recs::fit::fit;
    use attune_core::{Event, EventInput, UserId};
    use attune_recs::{BoughtTogether, BuyAgain, ItemKnn, Popularity, SequentialModel, SessionKnn, Trending};
    use attune_store::{SqliteOptions, SqliteStore};
    use serde::Serialize;

    /// The count-based parts of a model, as bytes.
    fn counted_bytes(model: &FittedRecs) -> Vec<u8> {
        #[derive(Serialize)]
        struct CountedParts<'a> {
            items: &'a IdMap,
            knn: &'a ItemKnn,
            popularity: &'a Popularity,
            trending: &'a Trending,
            bought_together: &'a BoughtTogether,
            buy_again: &'a Option<BuyAgain>,
            sessions: &'a SessionKnn,
            sequential: &'a SequentialModel,
        }
        let parts = CountedParts {
            items: &model.items,
            knn: &model.knn,
            popularity: &model.popularity,
            trending: &model.trending,
            bought_together: &model.bought_together,
            buy_again: &model.buy_again,
            sessions: &model.sessions,
            sequential: &model.sequential,
        };
        postcard::to_stdvec(&parts).unwrap()
    }

    /// A small shop's events: 40 shoppers over 12 items, views in sessions, orders, repeat orders; shopper
    /// `erased` is the only one who touched item `only-theirs`, and is among the last to act.
    fn events() -> Vec<Event> {
        let mut events = Vec::new();
        let mut at = Timestamp::now().millis() - 10 * 86_400_000;
        let mut push = |json: serde_json::Value| {
            let input: EventInput = serde_json::from_value(json).unwrap();
            events.push(Event::parse(input, Timestamp::now()).unwrap());
        };
        let users: Vec<String> = (0..40).map(|u| format!("u{u}")).chain(["erased".to_string()]).collect();
        for round in 0..3 {
            for (u, user) in users.iter().enumerate() {
                let items: Vec<String> = if user == "erased" {
                    vec!["i1".into(), "only-theirs".into(), "i2".into()]
                } else {
                    (0..3).map(|k| format!("i{}", (u + k * (round + 1)) % 12)).collect()
                };
                for item in &items {
                    at += 60_000;
                    push(serde_json::json!({"type": "view", "user_id": user, "item_id": item,
                        "session_id": format!("{user}-{round}"), "timestamp": at}));
                }
                if (u + round) % 3 == 0 || user == "erased" {
                    at += 60_000;
                    let lines: Vec<_> = items[..2]
                        .iter()
                        .map(|i| serde_json::json!({"item_id": i, "quantity": 1, "unit_price": 10.0}))
                        .collect();
                    push(
                        serde_json::json!({"type": "purchase", "user_id": user, "order_id": format!("{user}-{round}"),
                        "currency": "EUR", "lines": lines, "timestamp": at}),
                    );
                }
            }
        }
        events
    }

    fn store_with(events: &[Event]) -> (tempfile::TempDir, SqliteStore, TenantId) {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path().join("unlearn.sqlite3"), SqliteOptions::default()).unwrap();
        let tenant = TenantId::parse_slug("shop").unwrap();
        crate::keys::create_tenant(&store, &tenant, "Shop").unwrap();
        store.append_events(&tenant, events).unwrap();
        (directory, store, tenant)
    }

    #[test]
    fn after_erasure_the_count_based_parts_equal_a_fit_without_the_shopper_byte_for_byte() {
        let all = events();
        let erased = UserId::parse("erased").unwrap();
        let (_dir, store, tenant) = store_with(&all);
        let served = fit(&scan(&store, &tenant, None, &|_, _| Ok(())).unwrap(), 7, &|_| Ok(())).unwrap();
        assert!(served.items.index("only-theirs").is_some());
        store.delete_user(&tenant, &erased).unwrap();
        let unlearned = unlearn_erased(&store, &tenant, &served).unwrap();

        let without: Vec<Event> = all.iter().filter(|e| e.subject.user_id.as_ref() != Some(&erased)).cloned().collect();
        let (_dir2, never, tenant2) = store_with(&without);
        let reference = fit(&scan(&never, &tenant2, None, &|_, _| Ok(())).unwrap(), 7, &|_| Ok(())).unwrap();

        assert_ne!(counted_bytes(&served), counted_bytes(&reference), "the shopper's data made a difference");
        assert_eq!(counted_bytes(&unlearned), counted_bytes(&reference), "unlearned exactly");
        assert!(unlearned.items.index("only-theirs").is_none());
        assert_eq!(unlearned.events_through_seq, served.events_through_seq);
        // The factor parts stay until retraining, in the new item indices.
        let (als, old_als) = (unlearned.als.as_ref().unwrap(), served.als.as_ref().unwrap());
        let index = |m: &FittedRecs, id: &str| m.items.index(id).unwrap();
        assert_eq!(
            als.item_similarity(index(&unlearned, "i1"), index(&unlearned, "i2")),
            old_als.item_similarity(index(&served, "i1"), index(&served, "i2"))
        );
        super::super::model::decode(&super::super::model::encode(&unlearned).unwrap()).expect("a servable model");
    }

    #[test]
    fn a_deadline_once_set_only_comes_earlier() {
        let first = unlearned_now(None, Duration::from_secs(3_600));
        let later = unlearned_now(Some(first), Duration::from_secs(7_200));
        assert_eq!(later.factors_retrained_by, first.factors_retrained_by);
        let sooner = unlearned_now(Some(first), Duration::from_secs(60));
        assert!(sooner.factors_retrained_by < first.factors_retrained_by);
    }
}
