"""Write a random dump in the peer data format, for trying the peer without Rust.

    make_sample.py --out DIR [--items 2000] [--tags 500] [--queries 20] [--seed 1]

Items get 1..20 tags, queries 1..8, drawn with a skewed (Zipf-like) tag
popularity so that posting lists have realistic, uneven lengths. Weights are
positive, indices are sorted within each row, and every row is L2-normalised.
Files written (raw little-endian, no headers): items.{indptr.u64,indices.u32,
data.f32}, queries.{same}, meta.json.
"""

import argparse
import json
import os

import numpy as np


def random_csr(rng, rows, tags, max_per_row, popularity):
    """Random CSR (indptr u64, indices u32, data f32) with normalised rows."""
    indptr = [0]
    indices, data = [], []
    for _ in range(rows):
        n = int(rng.integers(1, min(max_per_row, tags) + 1))
        cols = np.sort(rng.choice(tags, size=n, replace=False, p=popularity))
        w = rng.random(n) + 0.05
        w /= np.linalg.norm(w)
        indices.append(cols)
        data.append(w)
        indptr.append(indptr[-1] + n)
    return (np.asarray(indptr, dtype="<u8"),
            np.concatenate(indices).astype("<u4"),
            np.concatenate(data).astype("<f4"))


def write(out, prefix, csr):
    indptr, indices, data = csr
    indptr.tofile(os.path.join(out, prefix + ".indptr.u64"))
    indices.tofile(os.path.join(out, prefix + ".indices.u32"))
    data.tofile(os.path.join(out, prefix + ".data.f32"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--tags", type=int, default=500)
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    popularity = 1.0 / np.arange(1, args.tags + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    os.makedirs(args.out, exist_ok=True)
    write(args.out, "items", random_csr(rng, args.items, args.tags, 20, popularity))
    write(args.out, "queries", random_csr(rng, args.queries, args.tags, 8, popularity))
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump({"items": args.items, "tags": args.tags, "queries": args.queries}, f)


if __name__ == "__main__":
    main()
