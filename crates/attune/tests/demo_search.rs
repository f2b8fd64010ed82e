//! Search on the bundled demo shop ranks by what sells among lexically equivalent hits: for `heart`, the shop's
//! best seller (85123A, White hanging heart t-light holder) is on the first page with the sales signal, and far
//! down without it (BM25 alone favours short titles that say "heart" as often).

use attune_core::EventKind;
use attune_search::{Retrieval, SearchConfig, SearchEngine, SearchRequest, popularity_signal};
use std::collections::{HashMap, HashSet};

/// Orders per item (distinct orders containing it), as the engine counts popularity.
fn orders_per_item(dataset: &attune::demo::DemoDataset) -> HashMap<String, u64> {
    let mut orders: HashMap<String, u64> = HashMap::new();
    for event in &dataset.events {
        if let EventKind::Purchase { lines, .. } = &event.kind {
            let distinct: HashSet<&str> = lines.iter().map(|l| l.item_id.as_str()).collect();
            for id in distinct {
                *orders.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    orders
}

fn rank_of(engine: &SearchEngine, signals: Option<&[f32]>, query: &str, id: &str) -> Option<usize> {
    let mut request = SearchRequest::new(query);
    request.retrieval = Retrieval::LexicalOnly;
    request.limit = 200;
    request.signals = signals;
    let response = engine.search(&request).unwrap();
    response.hits.iter().position(|hit| hit.item.id.as_str() == id)
}

#[test]
fn the_best_selling_heart_is_on_the_first_page_for_heart() {
    let dataset = attune::demo::load_demo_dataset().unwrap();
    let orders = orders_per_item(&dataset);
    let most = orders.values().copied().max().unwrap();
    let engine = SearchEngine::build(dataset.items.clone(), None, SearchConfig::default()).unwrap();
    let signals: Vec<f32> = engine
        .items()
        .iter()
        .map(|item| popularity_signal(orders.get(item.id.as_str()).copied().unwrap_or(0), most))
        .collect();
    let best_seller = orders.iter().max_by_key(|(id, n)| (**n, std::cmp::Reverse(id.as_str()))).unwrap().0;
    assert_eq!(best_seller, "85123A", "the demo's best seller");
    let with = rank_of(&engine, Some(&signals), "heart", "85123A");
    let without = rank_of(&engine, None, "heart", "85123A");
    assert!(with.is_some_and(|rank| rank < 10), "with the sales signal: rank {with:?}");
    assert!(without.is_none_or(|rank| rank >= 20), "BM25 alone puts it at {without:?}");
    // The signal reorders, it does not make a query match: an unrelated query stays empty.
    assert_eq!(
        engine.search(&SearchRequest { signals: Some(&signals), ..SearchRequest::new("xyzzy") }).unwrap().total,
        0
    );
}
