"""Peer benchmark: EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

The strongest simple quality baseline for item recommendation: a dense item x item weight
matrix in closed form,

    G = X^T X + lambda I,   P = G^-1,   B = -P / diag(P) (column-wise),   diag(B) = 0,

with X the binary user x item matrix of train.csv. A user's scores are x_u B; items the user
already holds are not recommended. lambda = 500 (the paper's value for MovieLens-20M; one
value for both data sets, not tuned on the test split).

Reads the split of ``recostore eval --write-split DIR`` and scores with the metric code of
``implicit_peer.py`` (imported, so the definitions cannot drift apart). Prints one JSON object
in implicit_peer's shape, with the one model ``ease``. Memory is items^2 doubles (MovieLens
small: about 0.7 GB), and the inverse costs items^3: fine for these data sets, not for a
large catalogue, which is why recostore does not do this.
"""

import os
import sys

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from implicit_peer import DataError, evaluate, load  # noqa: E402

LAMBDA = 500.0


class Ease:
    """EASE with implicit's fit/recommend interface, so ``evaluate`` can drive it."""

    def __init__(self, lam):
        self.lam = lam
        self.b = None

    def fit(self, x, show_progress=False):
        xb = (x > 0).astype(np.float64)
        g = (xb.T @ xb).toarray()
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.b = b

    def recommend(self, _row, x_row, N, filter_already_liked_items=True):
        held = x_row.indices
        scores = np.asarray((x_row > 0).astype(np.float64) @ self.b).ravel()
        if filter_already_liked_items:
            scores[held] = -np.inf
        top = np.argpartition(-scores, min(N, len(scores) - 1))[:N]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("split", help="directory written by `recostore eval --write-split`")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--lambda", dest="lam", type=float, default=LAMBDA)
    args = p.parse_args(argv)
    try:
        meta, x, _users, item_ids, test = load(args.split)
    except DataError as e:
        print(f"ease_peer: {e}", file=sys.stderr)
        return 2
    k = args.k if args.k is not None else int(meta.get("k", 10))
    n_users_of = np.diff(x.tocsc().indptr)
    result = {"peer": "ease", "version": "numpy " + np.__version__,
              "dataset": meta.get("dataset"), "k": k, "lambda": args.lam,
              "models": {"ease": evaluate(Ease(args.lam), x, item_ids.tolist(), test, k,
                                          meta["catalogue"], n_users_of)}}
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
