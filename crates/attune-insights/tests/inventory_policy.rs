//! Inventory policy invariants: the reorder point grows with lead time and with the service level;
//! safety stock is never negative; stockout risk is a probability; the suggestion list is ordered.

use attune_insights::forecast::Forecast;
use attune_insights::inventory::{
    ItemStock, LeadTime, OrderRules, PolicySettings, StockPosition, inventory_policy, reorder_suggestions,
};
use proptest::prelude::*;

fn forecast(mean: f64, sd: f64, horizon: usize) -> Forecast {
    Forecast::from_mean_and_sd(vec![mean; horizon], vec![sd; horizon], 0.95, true)
}

fn settings(service_level: f64) -> PolicySettings {
    PolicySettings { service_level, review_period: 1.0, days_per_period: 7.0, overstock_cover_days: 120.0 }
}

proptest! {
    #[test]
    fn reorder_point_grows_with_lead_time(
        mean in 0.1f64..500.0,
        sd in 0.0f64..200.0,
        lead in 0.0f64..20.0,
        extra in 0.01f64..10.0,
        lead_sd in 0.0f64..3.0,
        service in 0.5f64..0.999,
    ) {
        let f = forecast(mean, sd, 12);
        let stock = StockPosition::default();
        let rules = OrderRules::default();
        let short = inventory_policy(&f, &stock, &LeadTime { mean: lead, sd: lead_sd }, &rules, &settings(service)).unwrap();
        let long = inventory_policy(&f, &stock, &LeadTime { mean: lead + extra, sd: lead_sd }, &rules, &settings(service)).unwrap();
        prop_assert!(long.reorder_point > short.reorder_point);
        prop_assert!(long.safety_stock >= short.safety_stock);
    }

    #[test]
    fn reorder_point_grows_with_service_level(
        mean in 0.1f64..500.0,
        sd in 0.01f64..200.0,
        lead in 0.1f64..20.0,
        low in 0.5f64..0.98,
        step in 0.001f64..0.019,
    ) {
        let f = forecast(mean, sd, 6);
        let stock = StockPosition::default();
        let lead = LeadTime { mean: lead, sd: 0.0 };
        let rules = OrderRules::default();
        let a = inventory_policy(&f, &stock, &lead, &rules, &settings(low)).unwrap();
        let b = inventory_policy(&f, &stock, &lead, &rules, &settings(low + step)).unwrap();
        prop_assert!(b.reorder_point > a.reorder_point);
        prop_assert!(b.safety_stock > a.safety_stock && a.safety_stock >= 0.0);
    }

    #[test]
    fn figures_are_sane(
        mean in 0.0f64..500.0,
        sd in 0.0f64..200.0,
        lead in 0.0f64..20.0,
        on_hand in 0.0f64..5_000.0,
        on_order in 0.0f64..1_000.0,
        pack in 0.0f64..50.0,
    ) {
        let f = forecast(mean, sd, 8);
        let stock = StockPosition { on_hand, on_order, backordered: 0.0 };
        let rules = OrderRules { pack_size: pack, minimum_order: 0.0 };
        let p = inventory_policy(&f, &stock, &LeadTime { mean: lead, sd: 0.0 }, &rules, &settings(0.95)).unwrap();
        prop_assert!((0.0..=1.0).contains(&p.stockout_risk));
        prop_assert!(p.days_of_cover >= 0.0);
        prop_assert!(p.suggested_order >= 0.0);
        if p.reorder {
            prop_assert!(p.inventory_position + p.suggested_order >= p.order_up_to - 1e-9);
        } else {
            prop_assert_eq!(p.suggested_order, 0.0);
        }
        if pack > 0.0 && p.suggested_order > 0.0 {
            let packs = p.suggested_order / pack;
            prop_assert!((packs - packs.round()).abs() < 1e-6);
        }
    }
}

#[test]
fn reorder_list_is_sorted_by_risk() {
    let items: Vec<ItemStock<usize>> = (0..20)
        .map(|i| ItemStock {
            item: i,
            forecast: forecast(10.0 + i as f64, 4.0, 8),
            stock: StockPosition { on_hand: (i * 7 % 40) as f64, on_order: 0.0, backordered: 0.0 },
            lead_time: LeadTime { mean: 2.0, sd: 0.5 },
            rules: OrderRules { pack_size: 6.0, minimum_order: 12.0 },
        })
        .collect();
    let list = reorder_suggestions(&items, &settings(0.95)).unwrap();
    assert!(!list.is_empty());
    assert!(list.windows(2).all(|w| w[0].policy.stockout_risk >= w[1].policy.stockout_risk));
    assert!(list.iter().all(|s| s.quantity >= 12.0 && (s.quantity / 6.0).fract() == 0.0));
}
