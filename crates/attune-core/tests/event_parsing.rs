//! Property tests for parsing at the boundary: whatever arrives, parsing never panics; what it accepts
//! keeps the domain invariants; and writing an accepted event out and parsing it again gives it back.

use attune_core::input::{AmountInput, TimeInput};
use attune_core::{Currency, Event, EventInput, EventKind, Money, OrderLineInput, Timestamp};
use proptest::prelude::*;

const TYPES: &[&str] = &[
    "view",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "return",
    "search",
    "impression",
    "click",
    "rating",
    "wishlist",
    "not_interested",
    "teleport",
    "",
    "VIEW",
];

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9_-]{1,12}",
        1 => Just(String::new()),
        1 => "\\PC{0,6}",
        1 => Just(" padded ".to_string()),
        1 => Just("a\u{0}b".to_string()),
    ]
}

fn amount() -> impl Strategy<Value = AmountInput> {
    prop_oneof![
        (0_i64..1_000_000).prop_map(|cents| AmountInput::Text(format!("{}.{:02}", cents / 100, cents % 100))),
        (-1000.0_f64..1000.0).prop_map(AmountInput::Number),
        "[0-9.,a-z-]{0,8}".prop_map(AmountInput::Text),
    ]
}

fn line() -> impl Strategy<Value = OrderLineInput> {
    (identifier(), -5_i64..50, amount()).prop_map(|(item_id, quantity, unit_price)| OrderLineInput {
        item_id,
        quantity,
        unit_price,
    })
}

fn timestamp() -> impl Strategy<Value = Option<TimeInput>> {
    prop_oneof![
        Just(None),
        (631_152_000_000_i64..4_000_000_000_000).prop_map(|m| Some(TimeInput::Millis(m))),
        any::<i64>().prop_map(|m| Some(TimeInput::Millis(m))),
        Just(Some(TimeInput::Text("2011-12-09T12:50:00Z".into()))),
        "\\PC{0,10}".prop_map(|t| Some(TimeInput::Text(t))),
    ]
}

prop_compose! {
    fn event_input()(
        event_type in prop::sample::select(TYPES),
        event_id in prop::option::of(identifier()),
        user_id in prop::option::of(identifier()),
        anonymous_id in prop::option::of(identifier()),
        session_id in prop::option::of(identifier()),
        timestamp in timestamp(),
        channel in prop::option::of(prop::sample::select(&["web", "app", "store", "kiosk", "call_center", "fax"][..])),
        item_id in prop::option::of(identifier()),
        quantity in prop::option::of(-3_i64..5),
        dwell_ms in prop::option::of(-10_i64..100_000),
        order_id in prop::option::of(identifier()),
        currency in prop::option::of(prop::sample::select(&["GBP", "JPY", "KWD", "gbp", "EURO"][..])),
        lines in prop::option::of(prop::collection::vec(line(), 0..4)),
        query in prop::option::of("\\PC{0,20}"),
        result_ids in prop::option::of(prop::collection::vec(identifier(), 0..4)),
        recommendation_id in prop::option::of(identifier()),
        item_ids in prop::option::of(prop::collection::vec(identifier(), 0..4)),
        positions in prop::option::of(prop::collection::vec(-1_i64..10, 0..4)),
        rating in prop::option::of(-1.0_f64..6.0),
    ) -> EventInput {
        EventInput {
            event_type: event_type.to_string(), event_id, user_id, anonymous_id, session_id, timestamp,
            channel: channel.map(str::to_string), store_id: None, context: None, item_id, quantity, dwell_ms, order_id,
            currency: currency.map(str::to_string), lines, query, result_ids, recommendation_id, item_ids, positions,
            position: None, rating,
        }
    }
}

// Inputs shaped to be valid, to check that the valid space is accepted and round-trips.
prop_compose! {
    fn valid_purchase()(
        user in "[a-z0-9]{1,8}",
        order in "[A-Z0-9]{1,8}",
        lines in prop::collection::vec(("[A-Z0-9]{1,6}", 1_i64..100, 0_i64..100_000), 1..6),
        millis in 631_152_000_000_i64..4_000_000_000_000,
    ) -> EventInput {
        EventInput {
            event_type: "purchase".into(),
            event_id: Some(format!("p-{order}")),
            user_id: Some(user),
            order_id: Some(order),
            currency: Some("GBP".into()),
            timestamp: Some(TimeInput::Millis(millis)),
            lines: Some(lines.into_iter().map(|(item_id, quantity, pence)| OrderLineInput {
                item_id, quantity, unit_price: AmountInput::Text(format!("{}.{:02}", pence / 100, pence % 100)),
            }).collect()),
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parsing_never_panics_and_accepted_events_keep_invariants(input in event_input()) {
        let original = input.clone();
        if let Ok(event) = Event::parse(input, Timestamp::now()) {
            prop_assert!(event.subject.user_id.is_some() || event.subject.anonymous_id.is_some());
            prop_assert_eq!(event.event_type().as_str(), original.event_type.as_str());
            match &event.kind {
                EventKind::AddToCart { quantity, .. } | EventKind::RemoveFromCart { quantity, .. } => prop_assert!(*quantity >= 1),
                EventKind::Purchase { lines, .. } | EventKind::Return { lines, .. } => {
                    prop_assert!(!lines.is_empty());
                    for line in lines {
                        prop_assert!(line.quantity >= 1);
                        prop_assert!(line.unit_price.minor_units >= 0);
                    }
                }
                EventKind::Impression { item_ids, positions, .. } => prop_assert_eq!(item_ids.len(), positions.len()),
                EventKind::Rating { rating, .. } => prop_assert!((0.0..=5.0).contains(rating)),
                _ => {}
            }
            if let Some(quantity) = original.quantity {
                prop_assert!(quantity >= 1, "a negative or zero quantity was accepted");
            }
            // What was accepted is written out and read back unchanged.
            let again = Event::parse(event.to_input(), Timestamp::now());
            prop_assert_eq!(again.as_ref(), Ok(&event));
        }
    }

    #[test]
    fn valid_purchases_are_accepted_and_round_trip(input in valid_purchase()) {
        let event = Event::parse(input, Timestamp::now()).expect("valid purchase");
        let json = serde_json::to_string(&event.to_input()).unwrap();
        let reread: EventInput = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(Event::parse(reread, Timestamp::now()).unwrap(), event);
    }

    #[test]
    fn money_amounts_round_trip(minor in -1_000_000_000_i64..=1_000_000_000, code in prop::sample::select(&["GBP", "JPY", "KWD"][..])) {
        let currency = Currency::parse(code).unwrap();
        let money = Money::new(minor, currency);
        prop_assert_eq!(Money::parse_amount(&money.amount_string(), currency).unwrap(), money);
    }
}
