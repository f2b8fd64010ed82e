"""Peer benchmark for `attune eval forecast`: statsforecast's AutoETS and AutoTheta on aus_retail (152 monthly
series) with the same protocol as Attune, printing one JSON line with MASE, sMAPE and fit seconds per model.

Protocol: each series' last 24 months are held out; models are fitted on the rest with season length 12 and
forecast 24 months. MASE = mean |y - f| / mean |y_t - y_(t-12)| on the training part (period 1 when the
training part has no more than 12 months); sMAPE = mean 200 |y - f| / (|y| + |f|); both averaged over
series. Fit seconds: wall time of fitting and forecasting all series (n_jobs cores).

Usage: python3 bench/python/forecast_statsforecast.py --data-dir ../shared/data [--n-jobs -1]
"""

import argparse
import json
import os
import sys
import time
import warnings

from _bench_env import ensure_venv

ensure_venv(["statsforecast==2.1.1"], ["statsforecast", "pandas"])

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsforecast  # noqa: E402
from statsforecast import StatsForecast  # noqa: E402
from statsforecast.models import AutoETS, AutoTheta  # noqa: E402

HORIZON = 24
PERIOD = 12


def seasonal_scale(train: np.ndarray, period: int):
    if len(train) <= period:
        return None
    return float(np.mean(np.abs(train[period:] - train[:-period])))


def mase(train: np.ndarray, actual: np.ndarray, forecast: np.ndarray) -> float:
    scale = seasonal_scale(train, PERIOD)
    if scale is None:
        scale = seasonal_scale(train, 1)
    return float(np.mean(np.abs(actual - forecast)) / scale)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denominator == 0, 0.0, 200.0 * np.abs(actual - forecast) / np.where(denominator == 0, 1, denominator))
    return float(np.mean(ratio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    df = pd.read_csv(f"{args.data_dir}/forecast/aus_retail.csv")
    df = df.rename(columns={"Series ID": "unique_id", "Turnover": "y"})
    df["ds"] = pd.to_datetime(df["Month"] + "-01")
    df = df[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    test = df.groupby("unique_id").tail(HORIZON)
    train = df.drop(test.index)

    results = {}
    for name, model in [("AutoETS", AutoETS(season_length=PERIOD)), ("AutoTheta", AutoTheta(season_length=PERIOD))]:
        sf = StatsForecast(models=[model], freq="MS", n_jobs=args.n_jobs)
        start = time.perf_counter()
        fc = sf.forecast(df=train, h=HORIZON)
        seconds = time.perf_counter() - start
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        scores_mase, scores_smape = [], []
        for uid, actual in test.groupby("unique_id"):
            y_train = train.loc[train["unique_id"] == uid, "y"].to_numpy()
            f = fc.loc[fc["unique_id"] == uid, name].to_numpy()
            a = actual["y"].to_numpy()
            scores_mase.append(mase(y_train, a, f))
            scores_smape.append(smape(a, f))
        results[name] = {
            "mase": float(np.mean(scores_mase)),
            "smape": float(np.mean(scores_smape)),
            "fit_seconds": seconds,
            "series": len(scores_mase),
        }

    print(
        json.dumps(
            {
                "peer": "statsforecast",
                "version": statsforecast.__version__,
                "n_jobs": args.n_jobs if args.n_jobs > 0 else os.cpu_count(),
                "horizon": HORIZON,
                "models": results,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
