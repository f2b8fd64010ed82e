//! Invariants of the customer models, the segments and the accuracy metrics, checked on random inputs.

use attune_insights::clv::{BgNbdParams, GammaGammaParams, PurchaseSummary, RfmInput, rfm_segments};
use attune_insights::forecast::{mase, smape};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = BgNbdParams> {
    (0.05f64..5.0, 0.1f64..50.0, 0.05f64..5.0, 0.05f64..10.0).prop_map(|(r, alpha, a, b)| BgNbdParams {
        r,
        alpha,
        a,
        b,
    })
}

proptest! {
    #[test]
    fn p_alive_is_a_probability_that_falls_with_silence(
        p in params(),
        frequency in 1u32..40,
        recency in 0.0f64..50.0,
        gap in 0.0f64..50.0,
        more in 0.1f64..20.0,
    ) {
        let c = PurchaseSummary { frequency, recency, age: recency + gap };
        let later = PurchaseSummary { age: recency + gap + more, ..c };
        let (now, then) = (p.p_alive(&c), p.p_alive(&later));
        prop_assert!(now > 0.0 && now <= 1.0);
        prop_assert!(then <= now);
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon(p in params(), t in 0.5f64..52.0, frequency in 0u32..10) {
        prop_assume!(p.a + p.b > 1.2);
        let c = PurchaseSummary { frequency, recency: if frequency > 0 { 10.0 } else { 0.0 }, age: 20.0 };
        let short = p.conditional_expected_purchases(&c, t).unwrap();
        let long = p.conditional_expected_purchases(&c, 2.0 * t).unwrap();
        prop_assert!(short >= 0.0 && long >= short - 1e-9, "{} {}", short, long);
    }

    #[test]
    fn expected_spend_lies_between_population_and_own_mean(
        p in 0.5f64..20.0, q in 1.1f64..20.0, gamma in 0.5f64..100.0, frequency in 1u32..50, spend in 0.5f64..500.0,
    ) {
        let gg = GammaGammaParams { p, q, gamma };
        let expected = gg.conditional_expected_spend(frequency, spend);
        let population = gg.population_mean_spend();
        let (low, high) = if population < spend { (population, spend) } else { (spend, population) };
        prop_assert!(expected >= low - 1e-9 && expected <= high + 1e-9);
    }

    #[test]
    fn rfm_scores_are_quintiles(values in proptest::collection::vec((0.0f64..400.0, 1u32..30, 0.0f64..1e4), 1..200)) {
        let inputs: Vec<RfmInput> = values
            .iter()
            .map(|&(d, n, m)| RfmInput { days_since_last_purchase: d, purchases: n, monetary: m })
            .collect();
        let scored = rfm_segments(&inputs).unwrap();
        prop_assert_eq!(scored.len(), inputs.len());
        for (i, (score, _)) in scored.iter().enumerate() {
            prop_assert!((1..=5).contains(&score.recency) && (1..=5).contains(&score.frequency));
            prop_assert!((1..=5).contains(&score.monetary));
            for (j, (other, _)) in scored.iter().enumerate() {
                // More recent never scores lower on recency.
                if inputs[i].days_since_last_purchase < inputs[j].days_since_last_purchase {
                    prop_assert!(score.recency >= other.recency);
                }
            }
        }
    }

    #[test]
    fn smape_is_bounded_and_mase_non_negative(
        train in proptest::collection::vec(-100.0f64..100.0, 14..40),
        pairs in proptest::collection::vec((-100.0f64..100.0, -100.0f64..100.0), 1..24),
    ) {
        let (actual, forecast): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let s = smape(&actual, &forecast);
        prop_assert!((0.0..=200.0 + 1e-9).contains(&s), "{}", s);
        if let Some(m) = mase(&train, &actual, &forecast, 12) {
            prop_assert!(m >= 0.0);
        }
    }
}
