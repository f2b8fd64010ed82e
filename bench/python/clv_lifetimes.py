"""Peer benchmark for `attune eval clv`: fit BG/NBD, MBG/NBD and Gamma-Gamma with the Python `lifetimes` package on the
CDNOW 2,357-customer cohort, with the same protocol as Attune, and print one JSON line with the parameters,
the log-likelihood and the fit times (median of repeated fits, data preparation excluded).

Protocol: transactions of CDNOW_sample.txt on one day are one transaction; calibration 1997-01-01 to
1997-09-30 (39 weeks); frequency = repeat transactions, recency and T in weeks (days / 7); monetary value =
mean value of the repeat transactions; Gamma-Gamma on customers with frequency > 0.

Usage: python3 bench/python/clv_lifetimes.py --data-dir ../shared/data [--repeats 7]
"""

import argparse
import json
import statistics
import sys
import time
import warnings

from _bench_env import ensure_venv

ensure_venv(["lifetimes==0.11.3"], ["lifetimes", "pandas"])

import lifetimes  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter  # noqa: E402
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402


def load_summary(data_dir: str) -> pd.DataFrame:
    rows = []
    with open(f"{data_dir}/clv/CDNOW_sample.txt") as f:
        for line in f:
            _, customer, date, _, amount = line.split()
            rows.append((int(customer), date, float(amount)))
    tx = pd.DataFrame(rows, columns=["customer", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    summary = summary_data_from_transaction_data(
        tx, "customer", "date", monetary_value_col="amount", observation_period_end="1997-09-30", freq="D"
    )
    summary["recency"] /= 7.0
    summary["T"] /= 7.0
    return summary


def log_likelihood(model, summary: pd.DataFrame) -> float:
    """Total log-likelihood of a BG/NBD-family fit at its parameters on the data in weeks (lifetimes fits on
    rescaled time and stores the mean on that scale)."""
    params = np.log([model.params_["r"], model.params_["alpha"], model.params_["a"], model.params_["b"]])
    weights = np.ones(len(summary))
    mean_nll = type(model)._negative_log_likelihood(
        params, summary["frequency"].values, summary["recency"].values, summary["T"].values, weights, 0.0
    )
    return -float(mean_nll) * len(summary)


def family_result(model, summary: pd.DataFrame, seconds: float) -> dict:
    """Parameters, log-likelihood and fit time of a BG/NBD-family fit."""
    result = {name: model.params_[name] for name in ("r", "alpha", "a", "b")}
    return {**result, "log_likelihood": log_likelihood(model, summary), "fit_seconds": seconds}


def timed_median(fit, repeats: int):
    times, model = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - start)
    return model, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    summary = load_summary(args.data_dir)
    repeaters = summary[summary["frequency"] > 0]

    bg, bg_seconds = timed_median(
        lambda: BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"]), args.repeats
    )
    mbg, mbg_seconds = timed_median(
        lambda: ModifiedBetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"]), args.repeats
    )
    gg, gg_seconds = timed_median(
        lambda: GammaGammaFitter().fit(repeaters["frequency"], repeaters["monetary_value"]), args.repeats
    )
    n = len(summary)
    result = {
        "peer": "lifetimes",
        "version": lifetimes.__version__,
        "customers": n,
        "repeat_customers": len(repeaters),
        "bg_nbd": family_result(bg, summary, bg_seconds),
        "mbg_nbd": family_result(mbg, summary, mbg_seconds),
        "gamma_gamma": {
            "p": gg.params_["p"],
            "q": gg.params_["q"],
            "gamma": gg.params_["v"],
            "fit_seconds": gg_seconds,
        },
        "repeats": args.repeats,
    }
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
