//! Events → weighted interactions → matrix.

use std::collections::BTreeMap;

use attune_core::{Channel, Event, EventId, EventKind, ItemId, Subject, Timestamp, UserId};
use attune_recs::{InteractionMatrix, InteractionWeights, interactions_from_events};

fn event(user: &str, kind: EventKind) -> Event {
    Event {
        id: EventId::generate(),
        subject: Subject { user_id: Some(UserId::parse(user).unwrap()), anonymous_id: None },
        session_id: None,
        timestamp: Timestamp::from_millis(1_700_000_000_000).unwrap(),
        channel: Channel::Web,
        store_id: None,
        context: BTreeMap::new(),
        kind,
    }
}

fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

#[test]
fn events_become_weighted_matrix_entries() {
    let w = InteractionWeights::default();
    let events = vec![
        event("u1", EventKind::View { item_id: item("a"), dwell_ms: Some(30_000) }),
        event("u1", EventKind::AddToCart { item_id: item("b"), quantity: 2 }),
        event("u2", EventKind::View { item_id: item("a"), dwell_ms: None }),
        event("u2", EventKind::NotInterested { item_id: item("a") }),
        event("u2", EventKind::Wishlist { item_id: item("c") }),
        event("u2", EventKind::Search { query: "shoes".into(), result_ids: vec![item("a")] }),
    ];
    let interactions = interactions_from_events(&events, &w);
    assert_eq!(interactions.len(), 5);
    assert_eq!(interactions[0].weight, w.view + 0.5 * w.dwell_bonus);
    let m = InteractionMatrix::build(&interactions).unwrap();
    let (u1, u2) = (m.users.index("u1").unwrap() as usize, m.users.index("u2").unwrap() as usize);
    let (a, b, c) = (m.items.index("a").unwrap(), m.items.index("b").unwrap(), m.items.index("c").unwrap());
    assert!(m.matrix.get(u1, b) > m.matrix.get(u1, a));
    assert_eq!(m.matrix.get(u2, a), 0.0, "not_interested cancels the view");
    assert_eq!(m.matrix.get(u2, c), w.wishlist);
    assert_eq!(m.items.id(c), Some("c"));
}
