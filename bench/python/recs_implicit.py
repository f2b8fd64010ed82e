"""Peer benchmark for `attune eval recs --peer`: fits implicit's ALS (CPU, conjugate gradient) and its
cosine ItemItemRecommender on a split written by Attune, writes each model's top-K list per test user,
and prints one JSON line with the fit seconds.

Input (--split-dir): train.txt (first line "n_users n_items", then "user item value" lines),
users.txt (one user index per line). Output in the same folder: recs_als_SEED.txt and recs_itemknn.txt
(one line of K item indices per user, in users.txt order). Attune computes the metrics from these lists
with the same code it uses for its own models. ALS is fitted once per seed of --seeds (its result depends
on the initial factors); each seed starts from Attune's initial factors for that seed (init_users_SEED.f32 and
init_items_SEED.f32, raw little-endian f32, row-major), writes its own list file, and the JSON line lists the
fit seconds in --seeds order.

Confidence: Attune's ALS uses c = 1 + alpha*r; implicit uses its matrix values as c (times its own
alpha), so the script passes 1 + alpha*r with implicit's alpha = 1: the same objective.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from _bench_env import ensure_venv  # noqa: E402

ensure_venv(["implicit", "numpy", "scipy"], ["implicit", "numpy", "scipy"])

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split-dir", required=True)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--knn-k", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="42", help="comma-separated ALS seeds")
    args = ap.parse_args()

    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    d = Path(args.split_dir)
    with open(d / "train.txt") as f:
        n_users, n_items = map(int, f.readline().split())
        data = np.loadtxt(f, dtype=np.float64, ndmin=2)
    rows, cols, vals = data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 2].astype(np.float32)
    train = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
    users = np.loadtxt(d / "users.txt", dtype=np.int64, ndmin=1)

    conf = train.copy()
    conf.data = (1.0 + args.alpha * conf.data).astype(np.float32)
    als_fit = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        als = AlternatingLeastSquares(
            factors=args.factors,
            regularization=args.regularization,
            alpha=1.0,
            iterations=args.iterations,
            use_cg=True,
            num_threads=args.threads,
            random_state=seed,
        )
        # Attune's initial factors for this seed, so both sides solve from the same start.
        start_users = np.fromfile(d / f"init_users_{seed}.f32", dtype="<f4").reshape(n_users, args.factors)
        start_items = np.fromfile(d / f"init_items_{seed}.f32", dtype="<f4").reshape(n_items, args.factors)
        als.user_factors, als.item_factors = start_users, start_items
        t0 = time.perf_counter()
        als.fit(conf, show_progress=False)
        if als.user_factors is not start_users or als.item_factors is not start_items:
            sys.exit("implicit replaced the given initial factors; the comparison would not be paired")
        als_fit.append(time.perf_counter() - t0)
        ids, _ = als.recommend(users, train[users], N=args.top_k, filter_already_liked_items=True)
        np.savetxt(d / f"recs_als_{seed}.txt", ids, fmt="%d")

    binary = train.copy()
    binary.data[:] = 1.0
    knn = CosineRecommender(K=args.knn_k, num_threads=args.threads)
    t0 = time.perf_counter()
    knn.fit(binary, show_progress=False)
    knn_fit = time.perf_counter() - t0
    ids, _ = knn.recommend(users, binary[users], N=args.top_k, filter_already_liked_items=True)
    np.savetxt(d / "recs_itemknn.txt", ids, fmt="%d")

    print(
        json.dumps(
            {
                "implicit_version": implicit.__version__,
                "als_fit_seconds": als_fit,
                "itemknn_fit_seconds": knn_fit,
                "users": int(len(users)),
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
