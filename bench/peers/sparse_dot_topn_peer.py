"""Peer benchmark: top-k cosine search with ``sparse_dot_topn`` (PyPI, 1.x).

Reads an item x tag CSR matrix and a batch of query rows dumped by the Rust
benchmark (format: see README.md in this folder), then times one
``sp_matmul_topn(q, B, top_n=k, sort=True, n_threads=1)`` call per query,
where ``B = A.T`` (tags x items, CSR) is built once beforehand. Rows are
L2-normalised by the producer, so the dot product is the cosine.

Prints ONE JSON object on stdout:

    {"peer": "sparse_dot_topn", "version": ..., "queries": Q, "k": k,
     "prepare_s": ..., "p50_us": ..., "p99_us": ..., "mean_us": ...,
     "qps": ..., "top": [[item ids of query 0, best first], ...]}

Timing: one untimed warm-up call, then ``--repeat`` passes over all queries.
Latencies of every pass are pooled for p50/p99/mean; ``qps`` is the number of
timed calls divided by the sum of their times. ``top`` holds only items that
share at least one tag with the query (so it may be shorter than k); the
order of items with equal scores is the library's.

Bad input (missing file, size mismatch, malformed CSR) -> message on stderr,
exit code 2. ``--entry unchecked`` times the kernel without the public API's
per-call copy of B's index arrays (see ``run``). ``--scores`` adds
"top_scores" (parallel to "top") for tie-aware cross-checks. ``--check`` (small data only) verifies every query against a
dense numpy brute force and exits 1 on a mismatch; its report goes to stderr.
"""

import os

# Single-threaded everywhere; must happen before numpy/scipy are imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402

import sparse_dot_topn  # noqa: E402
from sparse_dot_topn import sp_matmul_topn  # noqa: E402
from sparse_dot_topn.unchecked import sp_matmul_topn as sp_unchecked  # noqa: E402

INT32_MAX = np.iinfo(np.int32).max
CHECK_MAX_CELLS = 50_000_000  # dense brute force limit for --check (rows x tags)


class DataError(Exception):
    """Input directory is missing something or is inconsistent."""


def _read(path, dtype, count=None):
    """Read a raw little-endian array; check its length when ``count`` is given."""
    if not os.path.isfile(path):
        raise DataError(f"missing file: {path}")
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise DataError(f"{path}: {size} bytes is not a multiple of {dtype.itemsize}")
    arr = np.fromfile(path, dtype=dtype)
    if count is not None and arr.size != count:
        raise DataError(f"{path}: expected {count} elements, found {arr.size}")
    return arr


def load_csr(data_dir, prefix, rows, cols):
    """Load ``<prefix>.{indptr.u64,indices.u32,data.f32}`` as a float32 CSR matrix."""
    base = os.path.join(data_dir, prefix)
    indptr = _read(base + ".indptr.u64", np.dtype("<u8"), rows + 1)
    indices = _read(base + ".indices.u32", np.dtype("<u4"))
    data = _read(base + ".data.f32", np.dtype("<f4"), indices.size)
    nnz = indices.size
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise DataError(f"{prefix}: indptr must start at 0 and end at nnz={nnz} "
                        f"(got {indptr[0]}..{indptr[-1]})")
    if np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise DataError(f"{prefix}: indptr is not non-decreasing")
    if nnz and int(indices.max()) >= cols:
        raise DataError(f"{prefix}: column index {int(indices.max())} >= tags={cols}")
    idx = np.int32 if max(nnz, cols) <= INT32_MAX else np.int64
    return csr_matrix(
        (data.astype(np.float32, copy=False), indices.astype(idx), indptr.astype(idx)),
        shape=(rows, cols),
    )


def load(data_dir):
    """Return (items A, queries Qm) from the dump directory."""
    meta_path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise DataError(f"missing file: {meta_path}")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        n, t, q = (int(meta[key]) for key in ("items", "tags", "queries"))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{meta_path}: need integer keys items, tags, queries ({e})")
    return load_csr(data_dir, "items", n, t), load_csr(data_dir, "queries", q, t)


def run(items, queries, k, repeat, entry="api"):
    """Time the peer; return (prepare_s, latencies_ns, top_ids, top_scores).

    ``entry="api"`` times the public ``sp_matmul_topn``, which casts B's index
    arrays with ``astype`` (a full O(nnz(B)) copy) on every call. ``"unchecked"``
    times ``sparse_dot_topn.unchecked.sp_matmul_topn``, the package's own
    no-conversion entry point to the same C++ kernel, as a kernel-only figure.
    """
    t0 = time.perf_counter()
    b = items.T.tocsr()  # tags x items, built once
    if b.nnz <= INT32_MAX and b.shape[1] <= INT32_MAX:
        b.indices = b.indices.astype(np.int32, copy=False)
        b.indptr = b.indptr.astype(np.int32, copy=False)
    prepare_s = time.perf_counter() - t0

    # One 1 x T CSR per query, sliced outside the timed region.
    rows = [queries[i] for i in range(queries.shape[0])]

    if entry == "unchecked":
        for q in rows:  # the kernel needs one index dtype for A and B
            q.indices = q.indices.astype(b.indices.dtype, copy=False)
            q.indptr = q.indptr.astype(b.indices.dtype, copy=False)

        def call(q):
            return sp_unchecked(q, b, top_n=k, sort=True, threshold=None, density=1.0)
    else:
        def call(q):
            return sp_matmul_topn(q, b, top_n=k, sort=True, n_threads=1)

    if rows:
        call(rows[0])  # warm-up
    lat = np.empty(len(rows) * repeat, dtype=np.int64)
    results = [None] * len(rows)
    clock = time.perf_counter_ns
    j = 0
    for _ in range(repeat):
        for i, q in enumerate(rows):
            s = clock()
            c = call(q)
            lat[j] = clock() - s
            j += 1
            results[i] = c
    top = [c.indices.tolist() for c in results]
    scores = [c.data.astype(np.float64).tolist() for c in results]
    return prepare_s, lat, top, scores


def check(items, queries, k, top, scores, tol=1e-5):
    """Dense brute-force verification, tie-tolerant. Returns number of bad queries."""
    cells = max(items.shape[0], queries.shape[0]) * items.shape[1]
    if cells > CHECK_MAX_CELLS:
        raise DataError(f"--check: data too large for dense brute force ({cells} cells)")
    a = items.toarray().astype(np.float64)
    exact = queries.toarray().astype(np.float64) @ a.T
    # Items sharing >= 1 tag with the query: exactly those a sparse product can return.
    overlap = (queries.toarray() != 0).astype(np.float64) @ (a != 0).T > 0
    bad = 0
    for i, (ids, got) in enumerate(zip(top, scores)):
        cand = np.sort(exact[i][overlap[i]])[::-1]
        want_len = min(k, cand.size)
        errs = []
        if len(ids) != want_len:
            errs.append(f"{len(ids)} results, expected {want_len}")
        if len(set(ids)) != len(ids):
            errs.append("duplicate ids")
        if any(x < y - tol for x, y in zip(got, got[1:])):
            errs.append("scores not in descending order")
        if ids and not np.allclose(exact[i][ids], got, atol=tol):
            errs.append("reported scores differ from brute force")
        if ids and not np.allclose(np.sort(exact[i][ids])[::-1], cand[:len(ids)], atol=tol):
            errs.append("not the top-k scores")
        if errs:
            bad += 1
            print(f"check: query {i}: " + "; ".join(errs), file=sys.stderr)
    print(f"check: {len(top) - bad} passed, {bad} failed", file=sys.stderr)
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="directory written by the Rust bench")
    p.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--repeat", type=int, default=1, help="timed passes over all queries")
    p.add_argument("--entry", choices=("api", "unchecked"), default="api",
                   help="api: public sp_matmul_topn (default); unchecked: kernel without "
                        "the per-call index-array copy (adds \"entry\" to the JSON)")
    p.add_argument("--scores", action="store_true",
                   help='also emit "top_scores" (scores matching "top", for tie-aware cross-checks)')
    p.add_argument("--check", action="store_true",
                   help="verify results against a dense brute force (small data only)")
    args = p.parse_args(argv)
    if args.k < 1 or args.repeat < 1:
        p.error("--k and --repeat must be >= 1")

    try:
        items, queries = load(args.data)
    except DataError as e:
        print(f"sparse_dot_topn_peer: {e}", file=sys.stderr)
        return 2

    prepare_s, lat, top, scores = run(items, queries, args.k, args.repeat, args.entry)
    lat_us = lat / 1e3
    total_s = lat.sum() / 1e9
    out = {
        "peer": "sparse_dot_topn",
        "version": sparse_dot_topn.__version__,
        "queries": queries.shape[0],
        "k": args.k,
        "prepare_s": prepare_s,
        "p50_us": float(np.percentile(lat_us, 50)) if lat.size else 0.0,
        "p99_us": float(np.percentile(lat_us, 99)) if lat.size else 0.0,
        "mean_us": float(lat_us.mean()) if lat.size else 0.0,
        "qps": lat.size / total_s if total_s > 0 else 0.0,
        "top": top,
    }
    if args.entry != "api":
        out["entry"] = args.entry
    if args.scores:
        out["top_scores"] = scores
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")

    if args.check:
        try:
            return 1 if check(items, queries, args.k, top, scores) else 0
        except DataError as e:
            print(f"sparse_dot_topn_peer: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
