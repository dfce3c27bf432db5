"""Peer benchmark: top-k recommendation quality of ``implicit`` (PyPI, 0.7.x).

Reads the train/test split written by ``recostore eval --write-split DIR``
(``train.csv``: user,item,weight,ts; ``test.csv``: user,item; ``meta.json``:
catalogue, k, dataset), fits three ``implicit`` models on the user x item
weight matrix built from train.csv and scores their top-k lists against the
held-out items with the same metric definitions as the Rust side.

Models (all CPU, single thread: BLAS pools forced to 1, ``num_threads=1``):

    implicit-cosine  nearest_neighbours.CosineRecommender(K=20)
    implicit-bm25    nearest_neighbours.BM25Recommender(K=20, K1=1.2, B=0.75)
    implicit-als     als.AlternatingLeastSquares(factors=64, regularization=0.05,
                         alpha=10, iterations=15, random_state=42, use_gpu=False)

The item-item models get the weights as written (event counts). ALS gets the
same matrix scaled by alpha=10 (implicit multiplies by ``alpha`` itself), i.e.
confidence = 10 * weight. Items that occur only in test.csv get no column, so
no model can recommend them (our store cannot either, beyond content).

Per evaluated user u (has >= 1 train row and >= 1 test item), with
recs = ``model.recommend(u, X[u], N=k, filter_already_liked_items=True)`` and
T = u's test items:

    hits      = |recs & T|
    precision = hits / k              recall = hits / |T|
    ndcg      = DCG / IDCG, DCG = sum_{i: recs[i] in T} 1/log2(i+2),
                IDCG = sum_{i < min(k,|T|)} 1/log2(i+2)
    map       = (sum_{i: recs[i] in T} hits(recs[0..=i]) / (i+1)) / min(k, |T|)

These are averaged over evaluated users. ``coverage`` = |union of all recs| /
catalogue; ``novelty`` = mean over every recommendation of
-log2((n_i + 1) / (U + 1)), n_i = distinct train users of item i, U = distinct
train users. ``seconds_fit`` / ``seconds_recommend`` are wall times of fit()
and of all recommend() calls.

Prints ONE JSON object on stdout:

    {"peer": "implicit", "version": ..., "dataset": ..., "k": k,
     "models": {"implicit-cosine": {"users": ..., "precision": ..., "recall": ...,
                "ndcg": ..., "map": ..., "coverage": ..., "novelty": ...,
                "seconds_fit": ..., "seconds_recommend": ...}, ...}}

Bad input (missing file or column, bad number) -> message on stderr, exit 2.
"""

import os

# Single-threaded everywhere; must happen before numpy/scipy/implicit load BLAS.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402

import implicit  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender  # noqa: E402

ALS_ALPHA = 10.0

# The item-item models hand implicit's own kernels a COO matrix internally
# (normalize / bm25_weight), which makes implicit warn on every fit. The
# conversion is part of the library's fit time either way; keep stderr quiet.
warnings.filterwarnings("ignore", message="Method expects CSR input")


class DataError(Exception):
    """Split directory is missing something or is malformed."""


def _rows(path, columns):
    """Yield tuples of the named columns from a CSV with header (quoting-aware)."""
    if not os.path.isfile(path):
        raise DataError(f"missing file: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        try:
            pos = [header.index(c) for c in columns]
        except ValueError:
            raise DataError(f"{path}: header must contain {','.join(columns)} (got {header})")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue  # tolerate a trailing blank line
            try:
                yield tuple(row[p] for p in pos)
            except IndexError:
                raise DataError(f"{path}:{line}: expected {len(header)} fields")


def load(split_dir):
    """Return (meta, X csr users x items, user ids, item ids, test {user row: set(item ids)})."""
    meta_path = os.path.join(split_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise DataError(f"missing file: {meta_path}")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        meta["catalogue"] = int(meta["catalogue"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{meta_path}: need integer key catalogue ({e})")

    train_path = os.path.join(split_dir, "train.csv")
    users, items, weights = [], [], []
    for u, i, w in _rows(train_path, ("user", "item", "weight")):
        users.append(u)
        items.append(i)
        weights.append(w)
    try:
        weights = np.asarray(weights, dtype=np.float32)
    except ValueError as e:
        raise DataError(f"{train_path}: bad weight ({e})")
    # Sorted id -> index maps, so tie-breaking by index does not depend on
    # the row order of train.csv.
    user_ids, urow = np.unique(np.array(users, dtype=str), return_inverse=True)
    item_ids, icol = np.unique(np.array(items, dtype=str), return_inverse=True)
    # csr_matrix (not csr_array): implicit's recommend() insists on it.
    # Duplicate (user,item) rows, should a writer emit them, are summed.
    x = csr_matrix((weights, (urow, icol)), shape=(len(user_ids), len(item_ids)),
                   dtype=np.float32)
    x.sum_duplicates()

    row_of = {u: r for r, u in enumerate(user_ids.tolist())}
    test = {}
    for u, i in _rows(os.path.join(split_dir, "test.csv"), ("user", "item")):
        r = row_of.get(u)
        if r is not None:  # users without train rows are not evaluated (cold start)
            test.setdefault(r, set()).add(i)
    return meta, x, user_ids, item_ids, test


def evaluate(model, x, item_ids, test, k, catalogue, n_users_of):
    """Fit ``model`` on ``x``, recommend k items per test user, return the metrics."""
    t0 = time.perf_counter()
    model.fit(x, show_progress=False)
    seconds_fit = time.perf_counter() - t0

    evaluated = sorted(test)  # deterministic order; every entry has >= 1 test item
    recs = {}
    t0 = time.perf_counter()
    for r in evaluated:
        ids, _ = model.recommend(r, x[r], N=k, filter_already_liked_items=True)
        recs[r] = ids
    seconds_recommend = time.perf_counter() - t0

    # Log-discount table shared by DCG and IDCG.
    disc = [1.0 / math.log2(i + 2) for i in range(k)]
    n_train_users = x.shape[0]
    sums = dict(precision=0.0, recall=0.0, ndcg=0.0, map=0.0)
    novelty_sum, n_recs, seen = 0.0, 0, set()
    for r in evaluated:
        truth = test[r]
        rec_cols = [int(c) for c in recs[r][:k]]
        hits, dcg, ap = 0, 0.0, 0.0
        for pos, c in enumerate(rec_cols):
            seen.add(c)
            # n_i >= 1 for any recommendable item, but keep the +1 smoothing
            # exactly as the Rust side defines it.
            novelty_sum += -math.log2((n_users_of[c] + 1) / (n_train_users + 1))
            n_recs += 1
            if item_ids[c] in truth:
                hits += 1
                dcg += disc[pos]
                ap += hits / (pos + 1)
        ideal = min(k, len(truth))
        sums["precision"] += hits / k
        sums["recall"] += hits / len(truth)
        sums["ndcg"] += dcg / sum(disc[:ideal])
        sums["map"] += ap / ideal

    n = len(evaluated)
    out = {"users": n}
    out.update({m: (s / n if n else 0.0) for m, s in sums.items()})
    out["coverage"] = len(seen) / catalogue if catalogue > 0 else 0.0
    out["novelty"] = novelty_sum / n_recs if n_recs else 0.0
    out["seconds_fit"] = seconds_fit
    out["seconds_recommend"] = seconds_recommend
    return out


def models():
    """The compared models, constructed fresh (name, instance), fixed parameters."""
    return [
        ("implicit-cosine", CosineRecommender(K=20, num_threads=1)),
        ("implicit-bm25", BM25Recommender(K=20, K1=1.2, B=0.75, num_threads=1)),
        # alpha scales the weights inside fit() (confidence = alpha * weight);
        # use_gpu=False so a CUDA build never changes what is measured.
        ("implicit-als", AlternatingLeastSquares(
            factors=64, regularization=0.05, alpha=ALS_ALPHA, iterations=15,
            random_state=42, num_threads=1, use_gpu=False)),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("split", help="directory written by `recostore eval --write-split`")
    p.add_argument("--k", type=int, default=None,
                   help="list length (default: k from meta.json, else 10)")
    args = p.parse_args(argv)

    try:
        meta, x, _user_ids, item_ids, test = load(args.split)
    except DataError as e:
        print(f"implicit_peer: {e}", file=sys.stderr)
        return 2
    k = args.k if args.k is not None else int(meta.get("k", 10))
    if k < 1:
        p.error("--k must be >= 1")

    # Distinct train users per item: column nnz of the (deduplicated) matrix.
    n_users_of = np.diff(x.tocsc().indptr)
    result = {"peer": "implicit", "version": implicit.__version__,
              "dataset": meta.get("dataset"), "k": k, "models": {}}
    for name, model in models():
        result["models"][name] = evaluate(model, x, item_ids.tolist(), test, k,
                                          meta["catalogue"], n_users_of)
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
