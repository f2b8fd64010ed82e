//! `attune eval forecast`: the automatic forecast on aus_retail (152 monthly Australian retail series),
//! last 24 months held out, scored by MASE and sMAPE beside single-method baselines and, optionally,
//! statsforecast's AutoETS and AutoTheta.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use attune_insights::forecast::{
    Candidate, ForecastSettings, Method, Selection, forecast_many, mase, rolling_origin_many, smape,
};

use super::{json_number, pass, run_peer_script, table};

const HORIZON: usize = 24;
const PERIOD: usize = 12;

/// One monthly series.
struct Series {
    id: String,
    values: Vec<f64>,
}

/// Scores of one configuration over all series.
struct Scored {
    name: String,
    mase: f64,
    smape: f64,
    coverage: f64,
    seconds: f64,
    methods: Vec<Method>,
}

/// Runs the hold-out evaluation on `data_dir/forecast/aus_retail.csv` and returns the report; with `peer`,
/// also runs `bench/python/forecast_statsforecast.py` (AutoETS, AutoTheta) and compares.
pub fn run_forecast_eval(data_dir: &Path, peer: bool) -> anyhow::Result<String> {
    let series = read_aus_retail(&data_dir.join("forecast/aus_retail.csv"))?;
    let short = series.iter().filter(|s| s.values.len() <= HORIZON + PERIOD).count();
    let auto_settings = ForecastSettings::new(PERIOD, HORIZON);
    let configurations = [
        ("Attune automatic choice", auto_settings),
        (
            "Attune hold-out choice",
            ForecastSettings { selection: Selection::Holdout { window: HORIZON }, ..auto_settings },
        ),
        ("Attune Theta", ForecastSettings { selection: Selection::Fixed(Candidate::Theta), ..auto_settings }),
        ("Seasonal naive", ForecastSettings { selection: Selection::Fixed(Candidate::SeasonalNaive), ..auto_settings }),
    ];
    let mut results = Vec::new();
    for (name, settings) in configurations {
        results.push(evaluate(name, &series, &settings)?);
    }

    let mut out = String::new();
    writeln!(out, "attune eval forecast: aus_retail, {} monthly series (ABS retail turnover)\n", series.len())?;
    writeln!(
        out,
        "Protocol: the last {HORIZON} months of each series are held out; each method is fitted on the rest with\n\
         season length {PERIOD} and forecasts {HORIZON} months. MASE = mean |y - f| / mean |y_t - y_(t-12)| on the\n\
         training part ({short} series with no more than {PERIOD} training months use period 1); sMAPE = mean\n\
         200 |y - f| / (|y| + |f|); both averaged over series. Seconds: wall time to fit and forecast all\n\
         series, {} threads. Coverage: share of held-out months inside the 95 % interval.\n",
        rayon_threads()
    )?;

    let mut rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                format!("{:.4}", r.mase),
                format!("{:.3}", r.smape),
                format!("{:.2}", r.seconds),
                format!("{:.1} %", 100.0 * r.coverage),
            ]
        })
        .collect();
    let peer_result = if peer { Some(run_peer_script("forecast_statsforecast.py", data_dir)) } else { None };
    let mut peer_models = Vec::new();
    let peer_note = match &peer_result {
        Some(Ok(value)) => {
            let version = value.get("version").and_then(|v| v.as_str()).unwrap_or("?");
            let jobs = value.get("n_jobs").and_then(|v| v.as_u64()).unwrap_or(0);
            for model in ["AutoETS", "AutoTheta"] {
                let mase = json_number(value, &["models", model, "mase"])?;
                let smape = json_number(value, &["models", model, "smape"])?;
                let seconds = json_number(value, &["models", model, "fit_seconds"])?;
                rows.push(vec![
                    format!("statsforecast {version} {model}"),
                    format!("{mase:.4}"),
                    format!("{smape:.3}"),
                    format!("{seconds:.2}"),
                    "n/a".into(),
                ]);
                peer_models.push((model, mase, seconds));
            }
            format!("statsforecast ran with n_jobs = {jobs}.")
        }
        Some(Err(e)) => format!("statsforecast could not be run: {e:#}"),
        None => "statsforecast not run (pass --peer).".into(),
    };
    out.push_str(&table(&["method", "MASE", "sMAPE %", "seconds", "95 % coverage"], &rows));
    writeln!(out, "  Automatic choice: Croston/TSB for intermittent series, else the AICc-best of 15 ETS models")?;
    writeln!(out, "  (Theta, then seasonal naive, if none fits). Hold-out choice: lowest MASE on the last {HORIZON}")?;
    writeln!(out, "  training months among ETS, Theta and seasonal naive. {peer_note}")?;

    let auto = &results[0];
    writeln!(out, "\nGoals")?;
    match peer_models.iter().find(|(m, _, _)| *m == "AutoETS") {
        Some((_, ets_mase, ets_seconds)) => {
            let goal_rows = vec![
                vec![
                    "MASE at or below AutoETS".into(),
                    format!("{:.4}", auto.mase),
                    format!("{ets_mase:.4}"),
                    pass(auto.mase <= *ets_mase),
                ],
                vec![
                    "faster than AutoETS".into(),
                    format!("{:.2} s", auto.seconds),
                    format!("{ets_seconds:.2} s ({:.1}x)", ets_seconds / auto.seconds),
                    pass(auto.seconds < *ets_seconds),
                ],
            ];
            out.push_str(&table(&["goal", "Attune", "AutoETS", "result"], &goal_rows));
        }
        None => writeln!(out, "  MASE at or below AutoETS, faster than AutoETS: NOT RUN (needs the peer)")?,
    }

    backtest_summary(&mut out, &series, &auto_settings)?;

    writeln!(out, "\nMethods chosen by the automatic choice")?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in &auto.methods {
        *counts.entry(m.to_string()).or_default() += 1;
    }
    let mut counted: Vec<(String, usize)> = counts.into_iter().collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rows: Vec<Vec<String>> = counted.into_iter().map(|(m, n)| vec![m, n.to_string()]).collect();
    out.push_str(&table(&["method", "series"], &rows));
    Ok(out)
}

/// Rolling-origin backtest of the automatic choice on the training parts: three origins a year apart,
/// twelve months ahead.
fn backtest_summary(out: &mut String, series: &[Series], settings: &ForecastSettings) -> anyhow::Result<()> {
    const ORIGINS: usize = 3;
    let settings = ForecastSettings { horizon: PERIOD, ..*settings };
    let long: Vec<&[f64]> = series
        .iter()
        .map(|s| &s.values[..s.values.len() - HORIZON])
        .filter(|train| train.len() > PERIOD * (ORIGINS + 2))
        .collect();
    let start = Instant::now();
    let reports = rolling_origin_many(&long, &settings, ORIGINS, PERIOD);
    let seconds = start.elapsed().as_secs_f64();
    let mut by_fold = [(0.0, 0.0, 0usize); ORIGINS];
    for report in reports {
        for (k, fold) in report?.folds.iter().enumerate() {
            by_fold[k].0 += fold.mase.unwrap_or(f64::NAN);
            by_fold[k].1 += fold.smape;
            by_fold[k].2 += 1;
        }
    }
    let rows: Vec<Vec<String>> = by_fold
        .iter()
        .enumerate()
        .map(|(k, (mase, smape, n))| {
            vec![
                format!("{} months before the hold-out", PERIOD * (ORIGINS - k)),
                format!("{:.4}", mase / *n as f64),
                format!("{:.3}", smape / *n as f64),
            ]
        })
        .collect();
    writeln!(
        out,
        "\nRolling-origin backtest of the automatic choice inside the training parts ({} series, {ORIGINS} origins\n\
         {PERIOD} months apart, {PERIOD} months ahead, {seconds:.1} s)",
        long.len()
    )?;
    out.push_str(&table(&["origin", "MASE", "sMAPE %"], &rows));
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn evaluate(name: &str, series: &[Series], settings: &ForecastSettings) -> anyhow::Result<Scored> {
    let trains: Vec<&[f64]> = series.iter().map(|s| &s.values[..s.values.len() - HORIZON]).collect();
    let start = Instant::now();
    let results = forecast_many(&trains, settings);
    let seconds = start.elapsed().as_secs_f64();
    let (mut total_mase, mut total_smape, mut inside, mut points) = (0.0, 0.0, 0usize, 0usize);
    let mut methods = Vec::with_capacity(series.len());
    for ((s, train), result) in series.iter().zip(&trains).zip(results) {
        let result = result.with_context(|| format!("{name}: series {}", s.id))?;
        let forecast = &result.forecast;
        let actual = &s.values[s.values.len() - HORIZON..];
        total_mase += mase(train, actual, &forecast.mean, PERIOD).with_context(|| format!("MASE of {}", s.id))?;
        total_smape += smape(actual, &forecast.mean);
        for (h, y) in actual.iter().enumerate() {
            inside += usize::from(*y >= forecast.lower[h] && *y <= forecast.upper[h]);
            points += 1;
        }
        methods.push(result.method());
    }
    let n = series.len() as f64;
    Ok(Scored {
        name: name.to_string(),
        mase: total_mase / n,
        smape: total_smape / n,
        coverage: inside as f64 / points as f64,
        seconds,
        methods,
    })
}

/// aus_retail.csv: State, Industry, Series ID, Month (YYYY-MM), Turnover; one series per Series ID, months
/// in order and without gaps.
fn read_aus_retail(path: &Path) -> anyhow::Result<Vec<Series>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_id: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for record in reader.records() {
        let record = record?;
        let id = record.get(2).context("Series ID")?.to_string();
        let month = record.get(3).context("Month")?.to_string();
        let value: f64 = record.get(4).context("Turnover")?.parse().context("Turnover")?;
        by_id.entry(id).or_default().push((month, value));
    }
    let mut series = Vec::with_capacity(by_id.len());
    for (id, mut rows) in by_id {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in rows.windows(2) {
            if month_index(&pair[1].0)? != month_index(&pair[0].0)? + 1 {
                bail!("series {id}: months {} and {} are not consecutive", pair[0].0, pair[1].0);
            }
        }
        if rows.len() <= HORIZON + 2 {
            bail!("series {id} has only {} months", rows.len());
        }
        series.push(Series { id, values: rows.into_iter().map(|(_, v)| v).collect() });
    }
    Ok(series)
}

fn month_index(month: &str) -> anyhow::Result<i64> {
    let (year, month) = month.split_once('-').with_context(|| format!("month {month:?} is not YYYY-MM"))?;
    Ok(year.parse::<i64>()? * 12 + month.parse::<i64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_consecutive_across_years() {
        assert_eq!(month_index("1982-12").unwrap() + 1, month_index("1983-01").unwrap());
        assert!(month_index("1982/12").is_err());
    }
}
