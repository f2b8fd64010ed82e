//! Forecasts that must be exact: constant series and purely seasonal series, for every method and for
//! the automatic choice; and intermittent series go to Croston or TSB.

use attune_insights::forecast::ets::{ErrorKind, EtsSpec, SeasonKind, TrendKind, fit_ets};
use attune_insights::forecast::{
    Candidate, ForecastSettings, Method, SeasonalNaive, Selection, ThetaModel, auto_ets, forecast_auto,
};
use proptest::prelude::*;

fn assert_close(forecast: &[f64], expected: impl Fn(usize) -> f64, tolerance: f64, what: &str) {
    for (h, f) in forecast.iter().enumerate() {
        let e = expected(h);
        assert!((f - e).abs() <= tolerance * e.abs().max(1.0), "{what}: step {h}: {f} vs {e}");
    }
}

#[test]
fn constant_series_are_forecast_exactly_by_every_method() {
    let y = vec![250.0; 60];
    let constant = |_| 250.0;
    assert_close(&auto_ets(&y, 12).unwrap().forecast(24, 0.95).mean, constant, 1e-9, "auto ETS");
    assert_close(&ThetaModel::fit(&y, 12).unwrap().forecast(24, 0.95).mean, constant, 1e-9, "Theta");
    assert_close(&SeasonalNaive::fit(&y, 12).unwrap().forecast(24, 0.95).mean, constant, 0.0, "seasonal naive");
    let auto = forecast_auto(&y, &ForecastSettings::new(12, 24)).unwrap();
    assert_close(&auto.forecast.mean, constant, 1e-9, "automatic choice");
    // A perfect fit has (almost) no error: the intervals collapse onto the forecast.
    assert!(auto.forecast.upper.iter().zip(&auto.forecast.mean).all(|(u, m)| u - m < 1e-6));
}

#[test]
fn purely_seasonal_series_are_forecast_exactly() {
    let pattern = [80.0, 95.0, 110.0, 100.0, 120.0, 140.0, 130.0, 115.0, 105.0, 90.0, 150.0, 200.0];
    let y: Vec<f64> = (0..72).map(|t| pattern[t % 12]).collect();
    let n = y.len();
    let seasonal = |h: usize| pattern[(n + h) % 12];
    assert_close(&SeasonalNaive::fit(&y, 12).unwrap().forecast(30, 0.95).mean, seasonal, 0.0, "seasonal naive");
    assert_close(&ThetaModel::fit(&y, 12).unwrap().forecast(30, 0.95).mean, seasonal, 1e-9, "Theta");
    for season in [SeasonKind::Additive, SeasonKind::Multiplicative] {
        let spec = EtsSpec::new(ErrorKind::Multiplicative, TrendKind::None, season);
        let model = fit_ets(&y, 12, spec).unwrap();
        assert_close(&model.forecast(30, 0.95).mean, seasonal, 1e-6, &spec.to_string());
    }
    let auto = forecast_auto(&y, &ForecastSettings::new(12, 30)).unwrap();
    assert_close(&auto.forecast.mean, seasonal, 1e-6, "automatic choice");
    for candidate in Candidate::ALL {
        let settings = ForecastSettings { selection: Selection::Fixed(candidate), ..ForecastSettings::new(12, 30) };
        let f = forecast_auto(&y, &settings).unwrap();
        assert_close(&f.forecast.mean, seasonal, 1e-6, &format!("{candidate:?}"));
    }
}

#[test]
fn intermittent_series_use_croston_or_tsb() {
    // Demand in about one period out of four, of varying size.
    let y: Vec<f64> = (0..120u64).map(|t| if (t * 7 + 3) % 4 == 0 { ((t * 13) % 5 + 1) as f64 } else { 0.0 }).collect();
    let result = forecast_auto(&y, &ForecastSettings::new(12, 12)).unwrap();
    assert!(matches!(result.method(), Method::Croston | Method::Tsb), "chose {}", result.method());
    let rate = y.iter().sum::<f64>() / y.len() as f64;
    assert!(result.forecast.mean.iter().all(|f| (f - rate).abs() < 0.5 * rate), "{:?}", result.forecast.mean);
    assert!(result.forecast.lower.iter().all(|l| *l >= 0.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn any_constant_is_forecast_exactly(level in 0.5f64..1e5, n in 30usize..80) {
        let y = vec![level; n];
        let auto = forecast_auto(&y, &ForecastSettings::new(12, 12)).unwrap();
        for f in &auto.forecast.mean {
            prop_assert!((f - level).abs() <= 1e-8 * level, "{} vs {}", f, level);
        }
    }

    #[test]
    fn seasonal_naive_repeats_any_pattern(pattern in proptest::collection::vec(-1e3f64..1e3, 2..13), seasons in 2usize..5) {
        let m = pattern.len();
        let y: Vec<f64> = (0..m * seasons).map(|t| pattern[t % m]).collect();
        let f = SeasonalNaive::fit(&y, m).unwrap().forecast(2 * m, 0.9);
        for (h, v) in f.mean.iter().enumerate() {
            prop_assert_eq!(*v, pattern[h % m]);
        }
    }

    #[test]
    fn forecasts_are_finite_and_intervals_ordered(
        values in proptest::collection::vec(1.0f64..1_000.0, 40..90),
        level in 0.5f64..0.99,
    ) {
        let settings = ForecastSettings { level, ..ForecastSettings::new(12, 6) };
        let result = forecast_auto(&values, &settings).unwrap();
        let f = &result.forecast;
        for h in 0..f.horizon() {
            prop_assert!(f.mean[h].is_finite() && f.sd[h] >= 0.0);
            prop_assert!(f.lower[h] <= f.mean[h].max(0.0) + 1e-9 && f.mean[h] <= f.upper[h] + 1e-9);
        }
    }
}
