//! The behaviour every [`Store`] backend must show. Each check takes a fresh, empty store. A backend's
//! test binary runs them all with `attune_store::conformance_tests!(|| make_fresh_store());`.

use crate::types::*;
use crate::{Store, StoreError};
use attune_core::{
    AnonymousId, ApiKeyKind, Consent, ConsentSource, ConsentStatement, Event, EventInput, EventType, Item, ItemId,
    ItemInput, Purpose, Tenant, TenantId, TenantSettings, Timestamp, User, UserId, UserInput,
};
use std::collections::HashSet;

/// Instantiate every conformance check as a `#[test]` for one backend.
#[macro_export]
macro_rules! conformance_tests {
    ($make_store:expr) => {
        $crate::conformance_tests!(@each $make_store;
            tenants_are_created_once, api_keys_are_found_by_hash_and_revoked, items_upsert_keep_created_at,
            item_listing_pages_and_searches, items_are_isolated_between_tenants, users_round_trip_and_delete_with_events,
            events_are_idempotent_by_id, events_are_isolated_between_tenants, timeline_is_newest_first_and_pages,
            shopper_activity_leaves_out_what_the_shop_showed, repeated_activity_reads_follow_appends_and_erasure,
            stats_and_daily_counts_follow_appends, event_log_scans_in_order, concurrent_appends_store_each_event_once,
            item_embeddings_round_trip_and_go_with_their_item, model_snapshots_are_versioned_and_pruned,
            task_leases_are_exclusive_and_slots_run_once, restored_events_keep_their_numbers_and_times,
            stored_kinds_are_listed_and_restored_versions_kept, appends_in_many_tenants_keep_each_tenant_in_order,
            a_pinned_model_version_lasts_until_the_next_is_saved, consent_changes_only_through_the_ledger,
            an_erased_users_events_are_refused_until_they_are_registered_again,
            console_sessions_expire_end_and_go_with_their_key, retention_purges_old_events_and_their_counts,
            visitor_consents_and_tenant_settings_are_kept_per_tenant);
    };
    (@each $make_store:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let store = ($make_store)();
                $crate::conformance::$check(&store);
            }
        )*
    };
}

fn tenant(store: &dyn Store, id: &str) -> TenantId {
    let id = TenantId::parse_slug(id).unwrap();
    store
        .create_tenant(&Tenant { id: id.clone(), name: format!("Shop {id}"), created_at: Timestamp::now() }, b"secret")
        .unwrap();
    id
}

fn item(id: &str, title: &str) -> Item {
    let input: ItemInput = ItemInput {
        id: Some(id.into()),
        title: Some(title.into()),
        category: Some("Home > Candles".into()),
        ..Default::default()
    };
    Item::parse(input, Timestamp::now()).unwrap()
}

fn event(json: &str) -> Event {
    let input: EventInput = serde_json::from_str(json).unwrap();
    Event::parse(input, Timestamp::now()).unwrap()
}

fn view(event_id: &str, user: &str, item: &str, ts: &str) -> Event {
    event(&format!(
        r#"{{"type":"view","event_id":"{event_id}","user_id":"{user}","item_id":"{item}","timestamp":"{ts}","dwell_ms":1200}}"#
    ))
}

pub fn tenants_are_created_once(store: &dyn Store) {
    let id = tenant(store, "alpha");
    let again = store.create_tenant(&Tenant { id: id.clone(), name: "dup".into(), created_at: Timestamp::now() }, b"x");
    assert!(matches!(again, Err(StoreError::Conflict(_))), "second create must conflict");
    assert_eq!(store.tenant(&id).unwrap().unwrap().name, "Shop alpha");
    assert_eq!(store.user_token_secret(&id).unwrap().unwrap(), b"secret");
    assert!(store.tenant(&TenantId::parse_slug("nobody").unwrap()).unwrap().is_none());
    assert_eq!(store.tenants().unwrap().len(), 1);
}

pub fn api_keys_are_found_by_hash_and_revoked(store: &dyn Store) {
    let a = tenant(store, "alpha");
    let b = tenant(store, "beta");
    let record = ApiKeyRecord {
        key_id: "k1".into(),
        tenant_id: a.clone(),
        kind: ApiKeyKind::Public,
        label: "web".into(),
        secret_hash: "h1".into(),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store.insert_api_key(&record).unwrap();
    assert_eq!(store.api_key_by_hash("h1").unwrap().unwrap(), record);
    assert!(store.api_key_by_hash("h2").unwrap().is_none());
    assert!(!store.revoke_api_key(&b, "k1").unwrap(), "another tenant must not revoke the key");
    assert!(store.revoke_api_key(&a, "k1").unwrap());
    assert!(store.api_key_by_hash("h1").unwrap().unwrap().revoked_at.is_some());
    assert!(!store.revoke_api_key(&a, "k1").unwrap(), "revoking twice is a no-op");
    assert_eq!(store.api_keys(&a).unwrap().len(), 1);
    assert!(store.api_keys(&b).unwrap().is_empty());
}

pub fn items_upsert_keep_created_at(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let mut first = item("a", "Candle");
    first.created_at = Timestamp::from_millis(1_600_000_000_000).unwrap();
    assert_eq!(store.upsert_items(&t, &[first.clone()]).unwrap(), UpsertCounts { created: 1, updated: 0 });
    let mut second = item("a", "Scented candle");
    second.created_at = Timestamp::from_millis(1_700_000_000_000).unwrap();
    assert_eq!(store.upsert_items(&t, &[second]).unwrap(), UpsertCounts { created: 0, updated: 1 });
    let stored = store.item(&t, &ItemId::parse("a").unwrap()).unwrap().unwrap();
    assert_eq!(stored.title, "Scented candle");
    assert_eq!(stored.created_at, first.created_at);
    assert!(store.delete_item(&t, &stored.id).unwrap());
    assert!(store.item(&t, &stored.id).unwrap().is_none());
    assert!(!store.delete_item(&t, &stored.id).unwrap());
}

pub fn item_listing_pages_and_searches(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let items: Vec<Item> = (0..25).map(|i| item(&format!("sku{i:03}"), &format!("Heart holder {i}"))).collect();
    store.upsert_items(&t, &items).unwrap();
    store.upsert_items(&t, &[item("x_1", "Blue 100% wool scarf")]).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_items(&t, &ItemQuery { after: after.clone(), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(page.total, 26);
        seen.extend(page.items.iter().map(|i| i.id.to_string()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages are in id order without overlap");
    let found = store
        .list_items(&t, &ItemQuery { search: Some("HEART HOLDER 1".into()), limit: 50, ..Default::default() })
        .unwrap();
    assert_eq!(found.total, 11, "1 and 10..=19");
    let percent =
        store.list_items(&t, &ItemQuery { search: Some("100%".into()), limit: 50, ..Default::default() }).unwrap();
    assert_eq!(percent.total, 1, "LIKE wildcards in the search text are literal");
    let underscore =
        store.list_items(&t, &ItemQuery { search: Some("x_".into()), limit: 50, ..Default::default() }).unwrap();
    assert_eq!(underscore.total, 1);
    let wanted =
        [ItemId::parse("sku002").unwrap(), ItemId::parse("missing").unwrap(), ItemId::parse("sku001").unwrap()];
    let fetched: Vec<String> = store.items(&t, &wanted).unwrap().iter().map(|i| i.id.to_string()).collect();
    assert_eq!(fetched, ["sku002", "sku001"]);
    assert_eq!(store.all_items(&t).unwrap().len(), 26);
}

pub fn items_are_isolated_between_tenants(store: &dyn Store) {
    let a = tenant(store, "alpha");
    let b = tenant(store, "beta");
    store.upsert_items(&a, &[item("shared-id", "Alpha's candle")]).unwrap();
    store.upsert_items(&b, &[item("shared-id", "Beta's mug")]).unwrap();
    let id = ItemId::parse("shared-id").unwrap();
    assert_eq!(store.item(&a, &id).unwrap().unwrap().title, "Alpha's candle");
    assert_eq!(store.item(&b, &id).unwrap().unwrap().title, "Beta's mug");
    assert!(store.delete_item(&b, &id).unwrap());
    assert!(store.item(&a, &id).unwrap().is_some(), "deleting in beta leaves alpha's item");
    assert_eq!(store.list_items(&b, &ItemQuery { limit: 10, ..Default::default() }).unwrap().total, 0);
}

pub fn users_round_trip_and_delete_with_events(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let other = tenant(store, "beta");
    let input: UserInput =
        serde_json::from_str(r#"{"id":"17850","traits":{"country":"United Kingdom","vip":true}}"#).unwrap();
    let user = User::parse(input, Timestamp::now()).unwrap();
    store.upsert_user(&t, &user).unwrap();
    store.upsert_user(&other, &user).unwrap();
    assert_eq!(store.user(&t, &user.id).unwrap().unwrap(), user);
    store
        .append_events(
            &t,
            &[view("e1", "17850", "a", "2011-01-01T10:00:00Z"), view("e2", "17850", "b", "2011-01-02T10:00:00Z")],
        )
        .unwrap();
    store.append_events(&other, &[view("e1", "17850", "a", "2011-01-01T10:00:00Z")]).unwrap();
    let deleted = store.delete_user(&t, &user.id).unwrap();
    assert_eq!(deleted, DeletedUser { profile: true, events: 2 });
    assert!(store.user(&t, &user.id).unwrap().is_none());
    assert_eq!(store.stats(&t).unwrap().events, 0, "daily counts follow deletion");
    assert!(store.user(&other, &user.id).unwrap().is_some(), "the other tenant's user is untouched");
    assert_eq!(store.stats(&other).unwrap().events, 1);
    let page = store.list_users(&other, &UserQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(page.total, 1);
}

pub fn events_are_idempotent_by_id(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let batch = vec![view("e1", "u", "a", "2011-01-01T10:00:00Z"), view("e2", "u", "b", "2011-01-01T11:00:00Z")];
    assert_eq!(store.append_events(&t, &batch).unwrap(), AppendOutcome { accepted: 2, duplicates: 0, erased: 0 });
    let retry = vec![batch[1].clone(), view("e3", "u", "c", "2011-01-01T12:00:00Z"), batch[0].clone()];
    assert_eq!(store.append_events(&t, &retry).unwrap(), AppendOutcome { accepted: 1, duplicates: 2, erased: 0 });
    let within = vec![view("e4", "u", "a", "2011-01-01T10:00:00Z"), view("e4", "u", "a", "2011-01-01T10:00:00Z")];
    assert_eq!(store.append_events(&t, &within).unwrap(), AppendOutcome { accepted: 1, duplicates: 1, erased: 0 });
    assert_eq!(store.stats(&t).unwrap().events, 4);
    assert_eq!(store.events_after(&t, 0, 100).unwrap().len(), 4);
}

pub fn events_are_isolated_between_tenants(store: &dyn Store) {
    let a = tenant(store, "alpha");
    let b = tenant(store, "beta");
    store.append_events(&a, &[view("same-id", "u", "a", "2011-01-01T10:00:00Z")]).unwrap();
    let outcome = store.append_events(&b, &[view("same-id", "u", "b", "2011-01-01T10:00:00Z")]).unwrap();
    assert_eq!(outcome.accepted, 1, "event ids are unique per tenant, not globally");
    let user = UserId::parse("u").unwrap();
    let query = TimelineQuery { limit: 10, ..Default::default() };
    let a_items: Vec<_> = store
        .user_timeline(&a, &user, &query)
        .unwrap()
        .events
        .iter()
        .map(|e| e.event.kind.primary_item().unwrap().to_string())
        .collect();
    assert_eq!(a_items, ["a"]);
    assert_eq!(store.events_after(&b, 0, 10).unwrap().len(), 1);
    assert!(store.event_by_id(&a, "same-id").unwrap().is_some());
    assert!(store.event_by_id(&a, "other").unwrap().is_none());
}

pub fn timeline_is_newest_first_and_pages(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let events: Vec<Event> = (0..7)
        .map(|i| view(&format!("e{i}"), "u", &format!("item{i}"), &format!("2011-01-0{}T10:00:00Z", i + 1)))
        .collect();
    store.append_events(&t, &events).unwrap();
    store.append_events(&t, &[view("other-user", "v", "zz", "2011-01-01T10:00:00Z")]).unwrap();
    let user = UserId::parse("u").unwrap();
    let first = store.user_timeline(&t, &user, &TimelineQuery { limit: 4, before_seq: None }).unwrap();
    let ids: Vec<_> = first.events.iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(ids, ["e6", "e5", "e4", "e3"]);
    let second =
        store.user_timeline(&t, &user, &TimelineQuery { limit: 4, before_seq: first.next_before_seq }).unwrap();
    let ids: Vec<_> = second.events.iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(ids, ["e2", "e1", "e0"]);
    assert!(second.next_before_seq.is_none());
    assert_eq!(second.events[0].event, events[2], "events read back equal what was written");
}

pub fn shopper_activity_leaves_out_what_the_shop_showed(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let mut events = vec![view("v0", "u", "a", "2011-01-01T10:00:00Z")];
    for i in 0..5 {
        events.push(event(&format!(
            r#"{{"type":"impression","event_id":"i{i}","user_id":"u","item_ids":["b","c"],"recommendation_id":"r{i}"}}"#
        )));
    }
    events.push(event(r#"{"type":"search","event_id":"s0","user_id":"u","query":"candle"}"#));
    events.push(view("v1", "u", "b", "2011-01-02T10:00:00Z"));
    events.push(view("other", "w", "b", "2011-01-02T10:00:00Z"));
    events.push(event(r#"{"type":"view","event_id":"anon-1","anonymous_id":"x","item_id":"c"}"#));
    events.push(event(r#"{"type":"view","event_id":"anon-2","anonymous_id":"x","user_id":"w","item_id":"d"}"#));
    events.push(event(
        r#"{"type":"impression","event_id":"anon-3","anonymous_id":"x","item_ids":["e"],"recommendation_id":"r9"}"#,
    ));
    store.append_events(&t, &events).unwrap();
    let ids = |events: std::sync::Arc<[Event]>| events.iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
    let user = UserId::parse("u").unwrap();
    assert_eq!(ids(store.shopper_activity(&t, ShopperRef::User(&user), 10).unwrap()), ["v1", "v0"]);
    assert_eq!(ids(store.shopper_activity(&t, ShopperRef::User(&user), 1).unwrap()), ["v1"]);
    // An anonymous visitor's events are those without a user id (once signed in, they belong to the user).
    let anonymous = attune_core::AnonymousId::parse("x").unwrap();
    assert_eq!(ids(store.shopper_activity(&t, ShopperRef::Anonymous(&anonymous), 10).unwrap()), ["anon-1"]);
    let other = tenant(store, "beta");
    assert!(store.shopper_activity(&other, ShopperRef::User(&user), 10).unwrap().is_empty());
}

/// Reading a shopper's activity again (as every list does) always returns what a first read would: new events
/// in front, any limit honoured, nothing left after erasure.
pub fn repeated_activity_reads_follow_appends_and_erasure(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let user = UserId::parse("u").unwrap();
    let anonymous = attune_core::AnonymousId::parse("x").unwrap();
    let read = |limit: usize| -> Vec<String> {
        store.shopper_activity(&t, ShopperRef::User(&user), limit).unwrap().iter().map(|e| e.id.to_string()).collect()
    };
    let append = |ids: std::ops::Range<usize>| {
        let events: Vec<Event> = ids.map(|i| view(&format!("e{i}"), "u", "a", "2011-01-01T10:00:00Z")).collect();
        store.append_events(&t, &events).unwrap();
    };
    let newest = |from: usize, to: usize| (from..to).rev().map(|i| format!("e{i}")).collect::<Vec<_>>();
    assert!(read(10).is_empty());
    append(0..3);
    assert_eq!(read(2), newest(1, 3));
    assert_eq!(read(10), newest(0, 3), "a larger limit than the last read's");
    append(3..5);
    assert_eq!(read(10), newest(0, 5), "new events in front");
    assert_eq!(read(3), newest(2, 5), "a smaller limit");
    append(5..20);
    assert_eq!(read(10), newest(10, 20), "more new events than the limit");
    assert_eq!(read(30), newest(0, 20));
    store.append_events(&t, &[event(r#"{"type":"view","event_id":"anon","anonymous_id":"x","item_id":"c"}"#)]).unwrap();
    let anonymous_read = || store.shopper_activity(&t, ShopperRef::Anonymous(&anonymous), 10).unwrap().len();
    assert_eq!(anonymous_read(), 1);
    store.delete_user(&t, &user).unwrap();
    assert!(read(10).is_empty(), "erased events must not be served from memory");
    assert_eq!(anonymous_read(), 1);
    append(20..21);
    assert!(read(10).is_empty(), "an erased user's new events are not stored");
    store.lift_erasure(&t, &user).unwrap();
    append(21..22);
    assert_eq!(read(10), newest(21, 22));
}

pub fn stats_and_daily_counts_follow_appends(store: &dyn Store) {
    let t = tenant(store, "alpha");
    store.upsert_items(&t, &[item("a", "A"), item("b", "B")]).unwrap();
    store.append_events(
        &t,
        &[
            view("e1", "u", "a", "2011-01-01T10:00:00Z"),
            view("e2", "u", "a", "2011-01-01T23:59:59Z"),
            event(r#"{"type":"purchase","event_id":"p1","user_id":"u","order_id":"o1","currency":"GBP","timestamp":"2011-01-03T00:00:00Z","lines":[{"item_id":"a","quantity":2,"unit_price":"1.25"}]}"#),
        ],
    )
    .unwrap();
    let stats = store.stats(&t).unwrap();
    assert_eq!((stats.items, stats.users, stats.events), (2, 0, 3));
    assert_eq!(stats.events_by_type, vec![(EventType::View, 2), (EventType::Purchase, 1)]);
    assert_eq!(stats.first_event_at.unwrap().day(), "2011-01-01");
    let days = store.events_per_day(&t).unwrap();
    assert_eq!(
        days,
        vec![DayCount { day: "2011-01-01".into(), events: 2 }, DayCount { day: "2011-01-03".into(), events: 1 }]
    );
}

pub fn event_log_scans_in_order(store: &dyn Store) {
    let t = tenant(store, "alpha");
    for batch in 0..3 {
        let events: Vec<Event> =
            (0..5).map(|i| view(&format!("b{batch}e{i}"), "u", "a", "2011-01-01T10:00:00Z")).collect();
        store.append_events(&t, &events).unwrap();
    }
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let chunk = store.events_after(&t, after, 4).unwrap();
        if chunk.is_empty() {
            break;
        }
        after = chunk.last().unwrap().seq;
        seen.extend(chunk.into_iter().map(|e| e.event.id.to_string()));
    }
    assert_eq!(seen.len(), 15);
    assert_eq!(seen[0], "b0e0");
    assert_eq!(seen[14], "b2e4");
    let other = tenant(store, "beta");
    store.append_events(&other, &[view("beta-1", "u", "a", "2011-01-01T10:00:00Z")]).unwrap();
    let recent: Vec<String> = store.recent_events(&t, 3).unwrap().into_iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(recent, ["b2e4", "b2e3", "b2e2"], "newest first, own tenant only");
}

pub fn concurrent_appends_store_each_event_once(store: &dyn Store) {
    let t = tenant(store, "alpha");
    let threads = 8;
    let per_thread = 150;
    // Every event id is sent by two threads, so half of all appends are duplicates.
    let outcomes: Vec<AppendOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let t = t.clone();
                scope.spawn(move || {
                    let mut total = AppendOutcome::default();
                    for i in 0..per_thread {
                        let id = format!("e{}-{i}", thread / 2);
                        let outcome = store.append_events(&t, &[view(&id, "u", "a", "2011-01-01T10:00:00Z")]).unwrap();
                        total.accepted += outcome.accepted;
                        total.duplicates += outcome.duplicates;
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted: u64 = outcomes.iter().map(|o| o.accepted).sum();
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    let distinct = (threads / 2 * per_thread) as u64;
    assert_eq!(accepted, distinct);
    assert_eq!(duplicates, distinct);
    assert_eq!(store.stats(&t).unwrap().events, distinct);
    assert_eq!(store.events_after(&t, 0, 10_000).unwrap().len() as u64, distinct);
}

pub fn item_embeddings_round_trip_and_go_with_their_item(store: &dyn Store) {
    let shop = tenant(store, "shop");
    let other = tenant(store, "other");
    store.upsert_items(&shop, &[item("a", "Candle"), item("b", "Lamp")]).unwrap();
    let embedding = |id: &str, hash: u64, x: f32| ItemEmbedding {
        item_id: ItemId::parse(id).unwrap(),
        content_hash: hash,
        vector: vec![x, -x, 0.5, f32::MIN_POSITIVE],
    };
    store.upsert_item_embeddings(&shop, "minilm", &[embedding("a", u64::MAX, 0.25), embedding("b", 7, 1.0)]).unwrap();
    store.upsert_item_embeddings(&shop, "other-model", &[embedding("a", 1, 3.0)]).unwrap();
    let stored = store.item_embeddings(&shop, "minilm").unwrap();
    assert_eq!(stored, vec![embedding("a", u64::MAX, 0.25), embedding("b", 7, 1.0)]);
    // Replacing keeps one row per item; other tenants and models see nothing of it.
    store.upsert_item_embeddings(&shop, "minilm", &[embedding("b", 8, 2.0)]).unwrap();
    assert_eq!(store.item_embeddings(&shop, "minilm").unwrap()[1], embedding("b", 8, 2.0));
    assert!(store.item_embeddings(&other, "minilm").unwrap().is_empty());
    assert!(store.delete_item(&shop, &ItemId::parse("a").unwrap()).unwrap());
    let left: Vec<String> =
        store.item_embeddings(&shop, "minilm").unwrap().into_iter().map(|e| e.item_id.to_string()).collect();
    assert_eq!(left, ["b"]);
    assert!(store.item_embeddings(&shop, "other-model").unwrap().is_empty());
}

pub fn model_snapshots_are_versioned_and_pruned(store: &dyn Store) {
    let shop = tenant(store, "shop");
    let other = tenant(store, "other");
    for n in 0..crate::MODEL_VERSIONS_KEPT as i64 + 2 {
        let info = store.save_model_snapshot(&shop, "recs", 100 + n, &format!("{{\"n\":{n}}}"), &[n as u8; 3]).unwrap();
        assert_eq!(info.version, n + 1);
        assert_eq!(info.payload_bytes, 3);
    }
    let other_info = store.save_model_snapshot(&other, "recs", 1, "{}", b"x").unwrap();
    assert_eq!(other_info.version, 1);
    let versions = store.model_snapshots(&shop, "recs").unwrap();
    assert_eq!(versions.len(), crate::MODEL_VERSIONS_KEPT);
    let newest = crate::MODEL_VERSIONS_KEPT as i64 + 2;
    assert_eq!(versions[0].version, newest);
    assert_eq!(versions[0].events_through_seq, 100 + newest - 1);
    assert_eq!(versions[0].metrics, format!("{{\"n\":{}}}", newest - 1));
    assert_eq!(versions.last().unwrap().version, 3);
    assert_eq!(store.model_snapshot_payload(&shop, "recs", newest).unwrap(), Some(vec![(newest - 1) as u8; 3]));
    assert_eq!(store.model_snapshot_payload(&shop, "recs", 1).unwrap(), None);
    assert!(store.model_snapshots(&shop, "search").unwrap().is_empty());
}

pub fn task_leases_are_exclusive_and_slots_run_once(store: &dyn Store) {
    let shop = tenant(store, "shop");
    let other = tenant(store, "other");
    store.ping().unwrap();
    let mut lease = store.lock_task(&shop, "train").unwrap().expect("a free task is leased");
    assert!(lease.still_held());
    assert!(store.lock_task(&shop, "train").unwrap().is_none(), "a held lease is not given twice");
    let other_task = store.lock_task(&shop, "forecast").unwrap();
    let other_tenant = store.lock_task(&other, "train").unwrap();
    assert!(other_task.is_some() && other_tenant.is_some(), "leases are per tenant and kind");
    drop(lease);
    assert!(store.lock_task(&shop, "train").unwrap().is_some(), "a dropped lease is free again");
    assert!(!store.task_slot_done(&shop, "train", 42).unwrap());
    store.finish_task_slot(&shop, "train", 42).unwrap();
    store.finish_task_slot(&shop, "train", 42).unwrap();
    assert!(store.task_slot_done(&shop, "train", 42).unwrap());
    assert!(!store.task_slot_done(&shop, "train", 43).unwrap());
    assert!(!store.task_slot_done(&other, "train", 42).unwrap());
}

pub fn restored_events_keep_their_numbers_and_times(store: &dyn Store) {
    let shop = tenant(store, "shop");
    let received_at = Timestamp::from_millis(1_300_000_000_000).unwrap();
    let restored: Vec<StoredEvent> = (0..3)
        .map(|i| StoredEvent {
            seq: 1_000 + 10 * i,
            received_at,
            event: view(&format!("old-{i}"), "u", "a", "2011-01-01T10:00:00Z"),
        })
        .collect();
    let outcome = store.restore_events(&shop, &restored).unwrap();
    assert_eq!(outcome, AppendOutcome { accepted: 3, duplicates: 0, erased: 0 });
    assert_eq!(
        store.restore_events(&shop, &restored[1..]).unwrap(),
        AppendOutcome { accepted: 0, duplicates: 2, erased: 0 }
    );
    let stored = store.events_after(&shop, 0, 10).unwrap();
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1_000, 1_010, 1_020]);
    assert!(stored.iter().all(|e| e.received_at == received_at));
    store.append_events(&shop, &[view("new", "u", "a", "2011-01-02T10:00:00Z")]).unwrap();
    let newest = store.recent_events(&shop, 1).unwrap();
    assert!(newest[0].seq > 1_020, "new events number after restored ones");
    assert_eq!(store.stats(&shop).unwrap().events, 4);
    assert_eq!(store.events_per_day(&shop).unwrap().iter().map(|d| d.events).sum::<u64>(), 4);
}

pub fn stored_kinds_are_listed_and_restored_versions_kept(store: &dyn Store) {
    let shop = tenant(store, "shop");
    store.upsert_items(&shop, &[item("a", "Candle")]).unwrap();
    let embedding = ItemEmbedding { item_id: ItemId::parse("a").unwrap(), content_hash: 1, vector: vec![1.0] };
    store.upsert_item_embeddings(&shop, "minilm", &[embedding]).unwrap();
    let saved = store.save_model_snapshot(&shop, "recs", 5, "{}", b"abc").unwrap();
    assert_eq!(store.model_kinds(&shop).unwrap(), ["recs"]);
    assert_eq!(store.embedding_models(&shop).unwrap(), ["minilm"]);
    let copy = tenant(store, "copy");
    let old = ModelSnapshotInfo { version: 7, ..saved };
    assert!(store.restore_model_snapshot(&copy, &old, b"xyz").unwrap());
    assert!(!store.restore_model_snapshot(&copy, &old, b"xyz").unwrap(), "a stored version is kept as it is");
    let versions = store.model_snapshots(&copy, "recs").unwrap();
    assert_eq!(versions, vec![ModelSnapshotInfo { payload_bytes: 3, ..old }]);
    assert_eq!(store.model_snapshot_payload(&copy, "recs", 7).unwrap().unwrap(), b"xyz");
    assert_eq!(store.save_model_snapshot(&copy, "recs", 9, "{}", b"n").unwrap().version, 8);
}

/// Threads appending to different tenants at once: every tenant's log scans in the order its events were
/// acknowledged, and a scan after any sequence number misses nothing.
pub fn appends_in_many_tenants_keep_each_tenant_in_order(store: &dyn Store) {
    let tenants: Vec<TenantId> = (0..4).map(|i| tenant(store, &format!("t{i}"))).collect();
    std::thread::scope(|scope| {
        for (n, t) in tenants.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..40 {
                    let id = format!("t{n}-{i:03}");
                    store.append_events(t, &[view(&id, "u", "a", "2011-01-01T10:00:00Z")]).unwrap();
                }
            });
        }
    });
    for t in &tenants {
        let ids: Vec<String> =
            store.events_after(t, 0, 100).unwrap().into_iter().map(|e| e.event.id.to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids.len(), 40);
        assert_eq!(ids, sorted, "tenant {t} scans in acknowledgement order");
    }
}

pub fn a_pinned_model_version_lasts_until_the_next_is_saved(store: &dyn Store) {
    let shop = tenant(store, "shop");
    let other = tenant(store, "other");
    for n in 0..3 {
        store.save_model_snapshot(&shop, "recs", n, "{}", b"m").unwrap();
    }
    assert_eq!(store.pinned_model_version(&shop, "recs").unwrap(), None);
    store.pin_model_version(&shop, "recs", 2).unwrap();
    store.pin_model_version(&shop, "recs", 1).unwrap();
    assert_eq!(store.pinned_model_version(&shop, "recs").unwrap(), Some(1), "the latest pin wins");
    assert_eq!(store.pinned_model_version(&shop, "search").unwrap(), None, "pins are per kind");
    assert_eq!(store.pinned_model_version(&other, "recs").unwrap(), None, "and per tenant");
    store.save_model_snapshot(&shop, "recs", 9, "{}", b"n").unwrap();
    assert_eq!(store.pinned_model_version(&shop, "recs").unwrap(), None, "a new version serves again");
}

pub fn consent_changes_only_through_the_ledger(store: &dyn Store) {
    let (t, other) = (tenant(store, "alpha"), tenant(store, "beta"));
    let id = UserId::parse("17850").unwrap();
    let statement = |purpose, granted| ConsentStatement {
        purpose,
        granted,
        source: ConsentSource::Storefront,
        policy_version: Some("2026-01".into()),
        recorded_at: Timestamp::now(),
    };
    // A statement about a customer without a profile creates one with the default consent, then applies.
    let withdrawn = statement(Purpose::Personalization, false);
    let stored = store.record_consent(&t, &id, std::slice::from_ref(&withdrawn)).unwrap();
    assert_eq!(stored.consent, Consent { personalization: false, ..Consent::default() });
    let marketing = [statement(Purpose::Marketing, true), statement(Purpose::Analytics, false)];
    store.record_consent(&t, &id, &marketing).unwrap();
    let expected = Consent { personalization: false, marketing: true, analytics: false, ..Consent::default() };
    assert_eq!(store.user(&t, &id).unwrap().unwrap().consent, expected);
    // Replacing the profile keeps the consent (and the first `created_at`).
    let input: UserInput = serde_json::from_str(r#"{"id":"17850","traits":{"vip":true},"consent":{}}"#).unwrap();
    let replaced = store.upsert_user(&t, &User::parse(input, Timestamp::now()).unwrap()).unwrap();
    assert_eq!((replaced.consent, replaced.created_at), (expected.clone(), stored.created_at));
    assert_eq!(store.user(&t, &id).unwrap().unwrap().consent, expected);
    // Those who withhold a purpose are found without reading every profile.
    let withholding = |tenant: &TenantId, purpose: Purpose| store.users_withholding(tenant, &purpose).unwrap();
    assert_eq!(withholding(&t, Purpose::Analytics), HashSet::from([id.clone()]));
    assert_eq!(withholding(&t, Purpose::Personalization), HashSet::from([id.clone()]));
    assert!(withholding(&t, Purpose::Marketing).is_empty());
    assert!(withholding(&other, Purpose::Analytics).is_empty(), "per tenant");
    let own = Purpose::Other("sms_reminders".into());
    store
        .record_consent(&t, &id, &[ConsentStatement { purpose: own.clone(), ..statement(Purpose::Marketing, false) }])
        .unwrap();
    assert_eq!(withholding(&t, own), HashSet::from([id.clone()]));
    // The ledger, oldest first, per tenant; erasure takes it too.
    let history = store.consent_history(&t, &id).unwrap();
    assert_eq!(history[..3], [withdrawn, marketing[0].clone(), marketing[1].clone()]);
    assert!(store.consent_history(&other, &id).unwrap().is_empty());
    store.delete_user(&t, &id).unwrap();
    assert!(store.consent_history(&t, &id).unwrap().is_empty());
    assert!(withholding(&t, Purpose::Analytics).is_empty(), "erasure takes the profile");
}

pub fn an_erased_users_events_are_refused_until_they_are_registered_again(store: &dyn Store) {
    let (t, other) = (tenant(store, "alpha"), tenant(store, "beta"));
    let (gone, kept) = (UserId::parse("gone").unwrap(), UserId::parse("kept").unwrap());
    store.append_events(&t, &[view("e1", "gone", "a", "2011-01-01T10:00:00Z")]).unwrap();
    assert!(store.erased_users(&t, &[&gone, &kept]).unwrap().is_empty());
    store.delete_user(&t, &gone).unwrap();
    assert_eq!(store.erased_users(&t, &[&gone, &kept]).unwrap(), [gone.clone()].into());
    assert!(store.erased_users(&other, &[&gone]).unwrap().is_empty(), "per tenant");
    // An impression queued before the erasure, or any later event naming the user, is not stored.
    let late = [view("e2", "gone", "a", "2011-01-02T10:00:00Z"), view("e3", "kept", "a", "2011-01-02T10:00:00Z")];
    assert_eq!(store.append_events(&t, &late).unwrap(), AppendOutcome { accepted: 1, duplicates: 0, erased: 1 });
    let timeline = store.user_timeline(&t, &gone, &TimelineQuery { before_seq: None, limit: 10 }).unwrap();
    assert!(timeline.events.is_empty());
    assert_eq!(store.stats(&t).unwrap().events, 1);
    assert_eq!(store.append_events(&other, &late).unwrap().accepted, 2, "another tenant's user of that id");
    // Erasure revoked the user's tokens; a later revocation moves the moment on, an earlier one does not.
    let erased_at = store.user_tokens_revoked_before(&t, &gone).unwrap().expect("revoked at erasure");
    assert!(store.user_tokens_revoked_before(&t, &kept).unwrap().is_none());
    let later = Timestamp::from_millis(erased_at.millis() + 1_000).unwrap();
    store.revoke_user_tokens(&t, &gone, later).unwrap();
    store.revoke_user_tokens(&t, &gone, erased_at).unwrap();
    assert_eq!(store.user_tokens_revoked_before(&t, &gone).unwrap(), Some(later));
    // Listed for copying, and restored elsewhere without deleting anything.
    let erasures = store.erasures(&t).unwrap();
    assert_eq!(erasures.iter().map(|(user, _)| user).collect::<Vec<_>>(), [&gone]);
    assert_eq!(store.token_revocations(&t).unwrap(), [(gone.clone(), later)]);
    store.restore_erasure(&other, &kept, erasures[0].1).unwrap();
    assert_eq!(store.erasures(&other).unwrap(), [(kept.clone(), erasures[0].1)]);
    assert_eq!(store.append_events(&other, &late).unwrap(), AppendOutcome { accepted: 0, duplicates: 1, erased: 1 });
    // Registered again by the shop: their new events are stored.
    assert!(store.lift_erasure(&t, &gone).unwrap());
    assert!(!store.lift_erasure(&t, &gone).unwrap());
    let again = [view("e4", "gone", "b", "2011-01-03T10:00:00Z")];
    assert_eq!(store.append_events(&t, &again).unwrap().accepted, 1);
}

pub fn console_sessions_expire_end_and_go_with_their_key(store: &dyn Store) {
    let (t, other) = (tenant(store, "alpha"), tenant(store, "beta"));
    let now = Timestamp::now().millis();
    let session = |id: &str, tenant: &TenantId, key_id: &str, expires_in: i64| ConsoleSessionRecord {
        session_id: id.into(),
        token_hash: format!("hash-{id}"),
        tenant_id: tenant.clone(),
        key_id: key_id.into(),
        form_token: format!("form-{id}"),
        user_agent: "Firefox".into(),
        created_at: Timestamp::from_millis(now).unwrap(),
        expires_at: Timestamp::from_millis(now + expires_in).unwrap(),
    };
    let first = session("s1", &t, "k1", 60_000);
    for record in [first.clone(), session("s2", &t, "k2", 60_000), session("s3", &other, "k3", 60_000)] {
        store.create_console_session(&record).unwrap();
    }
    store.create_console_session(&session("old", &t, "k1", -1)).unwrap();
    assert_eq!(store.console_session("hash-s1").unwrap(), Some(first));
    assert!(store.console_session("hash-old").unwrap().is_none(), "expired");
    assert!(store.console_session("nope").unwrap().is_none());
    let listed: Vec<String> = store.console_sessions(&t).unwrap().into_iter().map(|s| s.session_id).collect();
    assert_eq!(listed, ["s1", "s2"]);
    assert!(!store.end_console_session(&other, "s2").unwrap(), "another tenant's session");
    assert!(store.end_console_session(&t, "s2").unwrap());
    assert!(store.console_session("hash-s2").unwrap().is_none());
    // Revoking the key that signed in ends its sessions.
    store
        .insert_api_key(&ApiKeyRecord {
            key_id: "k1".into(),
            tenant_id: t.clone(),
            kind: ApiKeyKind::Secret,
            label: "backend".into(),
            secret_hash: "h1".into(),
            created_at: Timestamp::now(),
            revoked_at: None,
        })
        .unwrap();
    store.revoke_api_key(&t, "k1").unwrap();
    assert!(store.console_session("hash-s1").unwrap().is_none());
    assert_eq!(store.console_sessions(&other).unwrap().len(), 1);
}

pub fn retention_purges_old_events_and_their_counts(store: &dyn Store) {
    let (t, other) = (tenant(store, "alpha"), tenant(store, "beta"));
    let anonymous = |id: &str, ts: &str| {
        event(&format!(r#"{{"type":"view","event_id":"{id}","anonymous_id":"v","item_id":"a","timestamp":"{ts}"}}"#))
    };
    let events = [
        view("old-user", "u", "a", "2011-01-01T10:00:00Z"),
        anonymous("old-anonymous", "2011-01-01T11:00:00Z"),
        view("new-user", "u", "a", "2011-06-01T10:00:00Z"),
        anonymous("new-anonymous", "2011-06-01T11:00:00Z"),
    ];
    store.append_events(&t, &events).unwrap();
    store.append_events(&other, &events).unwrap();
    let user = UserId::parse("u").unwrap();
    assert_eq!(store.shopper_activity(&t, ShopperRef::User(&user), 10).unwrap().len(), 2);
    let march = Timestamp::parse_rfc3339("2011-03-01T00:00:00Z").unwrap();
    assert_eq!(store.purge_events(&t, march, true).unwrap(), 1, "anonymous visitors only");
    assert_eq!(store.purge_events(&t, march, false).unwrap(), 1, "then the rest");
    let left: Vec<String> =
        store.events_after(&t, 0, 10).unwrap().into_iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(left, ["new-user", "new-anonymous"]);
    assert_eq!(store.stats(&t).unwrap().events, 2, "daily counts follow");
    assert_eq!(store.shopper_activity(&t, ShopperRef::User(&user), 10).unwrap().len(), 1, "no cached copy served");
    assert_eq!(store.stats(&other).unwrap().events, 4, "another tenant keeps its events");
}

pub fn visitor_consents_and_tenant_settings_are_kept_per_tenant(store: &dyn Store) {
    let (t, other) = (tenant(store, "alpha"), tenant(store, "beta"));
    let visitor = AnonymousId::parse("browser-1").unwrap();
    let statement = |purpose, granted| ConsentStatement {
        purpose,
        granted,
        source: ConsentSource::Storefront,
        policy_version: None,
        recorded_at: Timestamp::now(),
    };
    assert!(store.visitor_consent_history(&t, &visitor).unwrap().is_empty());
    let first = [statement(Purpose::Personalization, false)];
    let second = [statement(Purpose::Personalization, true), statement(Purpose::Marketing, true)];
    store.record_visitor_consent(&t, &visitor, &first).unwrap();
    store.record_visitor_consent(&t, &visitor, &second).unwrap();
    let history = store.visitor_consent_history(&t, &visitor).unwrap();
    assert_eq!(history, [first[0].clone(), second[0].clone(), second[1].clone()], "oldest first");
    assert!(store.visitor_consent_history(&other, &visitor).unwrap().is_empty(), "per tenant");
    let ledger = store.visitor_consent_ledger(&t).unwrap();
    assert_eq!(ledger.len(), 3);
    assert!(ledger.iter().all(|(id, _)| *id == visitor));
    assert!(store.visitor_consent_ledger(&other).unwrap().is_empty());

    assert_eq!(store.tenant_settings(&t).unwrap(), TenantSettings::default(), "defaults until set");
    let settings = TenantSettings {
        anonymous_consent: Consent { personalization: false, marketing: false, analytics: true, ..Consent::default() },
        retention_days: Some(730),
        anonymous_retention_days: Some(90),
        training_window_days: Some(365),
        purposes: vec![attune_core::DeclaredPurpose {
            name: "sms_reminders".into(),
            description: "Text messages about offers".into(),
            default_granted: false,
        }],
    };
    store.put_tenant_settings(&t, &settings).unwrap();
    assert_eq!(store.tenant_settings(&t).unwrap(), settings);
    assert_eq!(store.tenant_settings(&other).unwrap(), TenantSettings::default());
    let changed = TenantSettings { retention_days: None, ..settings.clone() };
    store.put_tenant_settings(&t, &changed).unwrap();
    assert_eq!(store.tenant_settings(&t).unwrap(), changed, "replaced");
}
