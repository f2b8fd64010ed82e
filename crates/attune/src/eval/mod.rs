//! `attune eval clv`, `attune eval forecast`, `attune eval recs` and `attune eval search`: reproduce published figures and compare with peer
//! libraries on the real data sets in `../shared/data`, and print a report with a pass/fail column per goal.
//!
//! The peer comparisons run the Python scripts in `bench/python/` (which set up their own virtual
//! environment under `target/bench-venv`) and read the JSON line each prints.

pub mod clv;
pub mod forecast;
pub mod recs;
pub mod search;
pub mod search_threshold;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub use clv::run_clv_eval;
pub use forecast::run_forecast_eval;
pub use recs::run_recs_eval;
pub use search::run_search_eval;

/// The peer scripts' directory: `$ATTUNE_BENCH_DIR` when set, else the repository's `bench/python`.
fn bench_scripts_dir() -> PathBuf {
    std::env::var_os("ATTUNE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/python"))
}

/// Runs `bench/python/<script> --data-dir <data_dir>` with python3 and parses the last line of its output
/// as JSON.
fn run_peer_script(script: &str, data_dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = bench_scripts_dir().join(script);
    let output = Command::new("python3")
        .arg(&path)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .with_context(|| format!("running python3 {}", path.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line in output")?;
    serde_json::from_str(line).with_context(|| format!("parsing the JSON line of {script}"))
}

/// A number from a JSON object by path, for example `["bg_nbd", "r"]`.
fn json_number(value: &serde_json::Value, path: &[&str]) -> anyhow::Result<f64> {
    let mut v = value;
    for key in path {
        v = v.get(key).with_context(|| format!("peer output lacks {}", path.join(".")))?;
    }
    v.as_f64().with_context(|| format!("peer output {} is not a number", path.join(".")))
}

/// A plain-text table: columns padded to their widest cell, numbers right-aligned.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([headers[c].chars().count()]).max().unwrap_or(0))
        .collect();
    let numeric = |s: &str| s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(c, s)| {
                    if numeric(s) { format!("{s:>w$}", w = widths[c]) } else { format!("{s:<w$}", w = widths[c]) }
                },
            )
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(|s| s.as_str()).collect()));
    for row in rows {
        out.push_str(&line(row.iter().map(|s| s.as_str()).collect()));
    }
    out
}

fn pass(ok: bool) -> String {
    if ok { "PASS".into() } else { "FAIL".into() }
}

/// Median of a non-empty sample.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["name", "value"], &[vec!["r".into(), "0.243".into()], vec!["alpha".into(), "4.414".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "  name   value");
        assert_eq!(lines[2], "  r      0.243");
    }

    #[test]
    fn median_of_even_and_odd_samples() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
