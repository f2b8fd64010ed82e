//! The last step of every list: each picked item with its explanation, naming the signal and the shopper's or
//! the request's items that caused it ("Because you viewed …", "Often bought with …", "Like …: brand puma,
//! category shoes").

use super::candidate::{Candidate, Detail, ItemRef};
use super::model::RecsModel;
use super::request::{Explanation, Recommended, Signal};
use super::select::Pooled;
use super::shopper::Touch;
use crate::catalog::{CatalogContent, CatalogSnapshot};
use attune_core::ItemId;
use std::collections::HashMap;

const MS_PER_DAY: f64 = 86_400_000.0;

/// The picked items with their explanations; titles of cited items come from `catalog`.
pub fn explain(
    model: &RecsModel,
    catalog: &CatalogSnapshot,
    picked: Vec<Pooled>,
    touch: &HashMap<ItemId, Touch>,
    now_ms: i64,
) -> Vec<Recommended> {
    let ids = |candidate: &Candidate| -> Vec<ItemId> {
        let cited = candidate.because.iter().map(|item| item.id(&model.items).to_string());
        cited.filter_map(|id| ItemId::parse(id).ok()).collect()
    };
    let mut cited: Vec<ItemId> = picked.iter().flat_map(|p| ids(&p.candidate)).collect();
    cited.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    cited.dedup();
    let names = titles(catalog, &cited);
    let content = catalog.content();
    picked
        .into_iter()
        .map(|p| {
            let text = explanation_text(model, &p.candidate, Some(content), &names, touch, now_ms);
            let because_item_ids = ids(&p.candidate);
            Recommended {
                item: p.item,
                score: p.score,
                explanation: Explanation { signal: p.candidate.signal, because_item_ids, text },
            }
        })
        .collect()
}

/// Titles of `ids`, for explanation texts (the id where an item is gone from the catalog).
fn titles(catalog: &CatalogSnapshot, ids: &[ItemId]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = ids.iter().map(|id| (id.to_string(), id.to_string())).collect();
    for item in catalog.items(ids) {
        out.insert(item.id.to_string(), item.title.trim().to_string());
    }
    out
}

fn days(ms: f64) -> i64 {
    (ms / MS_PER_DAY).round().max(1.0) as i64
}

fn explanation_text(
    model: &RecsModel,
    candidate: &Candidate,
    content: Option<&CatalogContent>,
    names: &HashMap<String, String>,
    touch: &HashMap<ItemId, Touch>,
    now_ms: i64,
) -> String {
    let title = |item: &ItemRef| {
        let id = item.id(&model.items);
        names.get(id).cloned().unwrap_or_else(|| id.to_string())
    };
    let first = candidate.because.first().map(title).unwrap_or_default();
    let how = |item: Option<&ItemRef>| {
        item.and_then(|item| touch.get(item.id(&model.items)).copied()).unwrap_or(Touch::Other)
    };
    match candidate.signal {
        Signal::SimilarItems => format!("Customers who bought {first} also bought this"),
        Signal::YourHistory | Signal::Session | Signal::Sequential => how(candidate.because.first()).text(&first),
        Signal::SimilarContent => {
            let shared = shared_content_text(content, &candidate.detail);
            let shared = if shared.is_empty() { "similar description" } else { shared.as_str() };
            match how(candidate.because.first()) {
                Touch::Other => format!("Like {first}: {shared}"),
                touched => format!("{} ({shared})", touched.text(&first)),
            }
        }
        Signal::Trending => "Trending this week".to_string(),
        Signal::Popular => "Popular with our customers".to_string(),
        Signal::RecentlyViewed => "You viewed this recently".to_string(),
        Signal::BoughtTogether => match candidate.because.get(1) {
            Some(second) => format!("Often bought with {first} and {}", title(second)),
            None => format!("Often bought with {first}"),
        },
        Signal::BuyAgain => buy_again_text(&candidate.detail, now_ms),
    }
}

fn buy_again_text(detail: &Detail, now_ms: i64) -> String {
    match *detail {
        Detail::BuyAgain { interval_ms, times_bought, .. } if times_bought >= 2 => {
            format!("You buy this about every {} days", days(interval_ms))
        }
        Detail::BuyAgain { interval_ms, last_purchase_ms, .. } => format!(
            "You bought this {} days ago; customers buy it again about every {} days",
            days((now_ms - last_purchase_ms) as f64),
            days(interval_ms)
        ),
        Detail::None | Detail::ContentMatch { .. } => "You bought this before".to_string(),
    }
}

/// What a content match shares with its anchors, readable ("brand puma, category shoes"); empty when
/// unknown.
fn shared_content_text(content: Option<&CatalogContent>, detail: &Detail) -> String {
    match (content, detail) {
        (Some(content), Detail::ContentMatch { position, anchors }) => {
            let shared = content.index.shared_features(anchors, *position);
            shared.iter().map(|f| attune_recs::describe_feature(f)).collect::<Vec<_>>().join(", ")
        }
        _ => String::new(),
    }
}
