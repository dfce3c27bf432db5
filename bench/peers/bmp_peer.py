"""Peer benchmark: top-k dot-product search with BMP (block-max pruning; PyPI ``bmp``).

BMP is Mallia, Suel & Tonellotto, "Faster Learned Sparse Retrieval with
Block-Max Pruning" (SIGIR 2024), https://github.com/pisa-engine/BMP. This
script reads the item x tag CSR matrix and the query rows dumped by the Rust
benchmark (format: see README.md in this folder), builds a BMP index from the
items once, then times one ``Searcher.search(query, k, alpha=1.0, beta=1.0)``
call per query (alpha = beta = 1 is BMP's exact, rank-safe setting).

BMP scores integers, not floats:

* item weights are quantised here to 8-bit impacts,
  ``clip(rint(w * 255 / max_w), 1, 255)`` with ``max_w`` the largest item
  weight in the dump (one global linear scale; nonzero weights stay
  nonzero). BMP stores impacts as ``u8`` and sums scores in ``u16``.
* BMP itself quantises each query: ``ceil(w * (32 / max_q))`` in f32
  (``MAX_TERM_WEIGHT = 32`` in BMP's source), so query weights are 1..32.

So a score is an integer dot product of the two quantised vectors, and BMP's
top-k can differ from the float-cosine top-k at near-ties. ``--check`` (small
data only) computes a numpy brute force over the *same* quantised integers
and a model of BMP's search loop: every reported score must be exact and the
score list must equal the model's; differences from the brute-force top-k
are counted by cause (ties at BMP's initial threshold; BMP 0.2.8 never
scoring its last candidate block, see README.md), and the overlap with the
float-cosine top-k is reported, all on stderr.

Prints ONE JSON object on stdout:

    {"peer": "bmp", "version": ..., "queries": Q, "k": k,
     "prepare_s": ..., "p50_us": ..., "p99_us": ..., "mean_us": ...,
     "qps": ..., "top": [[item ids of query 0, best first], ...],
     "bsize": 32, "compress_range": false, "alpha": 1.0, "beta": 1.0, "impact_bits": 8, "index_bytes": ...}

plus "panics" / "overflow_risk" when nonzero (see README.md). ``prepare_s``
covers quantisation, index build, writing it to a temporary file and loading
it into a ``Searcher``. Timing: one untimed warm-up call, then ``--repeat``
passes over all queries; latencies of every pass are pooled for p50/p99/mean;
``qps`` is the number of timed calls divided by the sum of their times.
``top`` holds only items with a positive quantised score, and it can hold
fewer than k of those (see README.md, "initial threshold"). Equal scores come
back in BMP's order. ``--scores`` adds "top_scores" (BMP's integer scores).

Bad input (missing file, size mismatch, malformed CSR, negative or NaN
weights, more than 65,536 distinct tags in use) -> message on stderr, exit
code 2. ``--check`` exits 1 on a mismatch.
"""

import os

# Single-threaded everywhere; must happen before numpy/scipy/bmp are imported.
# RAYON_NUM_THREADS: BMP's index build uses rayon (search is single-threaded).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["RUST_BACKTRACE"] = "0"  # a caught BMP panic must not dump a backtrace

import argparse  # noqa: E402
import contextlib  # noqa: E402
import heapq  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402

import bmp  # noqa: E402

INT32_MAX = np.iinfo(np.int32).max
CHECK_MAX_CELLS = 50_000_000  # --check: queries x items score matrix limit
IMPACT_MAX = 255              # 8-bit impacts (BMP stores u8; larger values wrap)
QUERY_LEVELS = 32             # bmp::query::MAX_TERM_WEIGHT
SCORE_MAX = 65535             # BMP accumulates block scores in u16 (wraps)
MAX_TERMS = 65536             # BMP's block forward index keeps term ids as u16
MAX_BSIZE = 256               # ... and in-block doc offsets as u8
DEFAULT_BSIZE = 32            # the block size in BMP's README and PyTerrier indexer


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
    if nnz and not (np.all(np.isfinite(data)) and data.min() >= 0):
        raise DataError(f"{prefix}: weights must be finite and >= 0 (BMP scores "
                        "non-negative integer impacts)")
    idx = np.int32 if max(nnz, cols) <= INT32_MAX else np.int64
    m = csr_matrix(
        (data.astype(np.float32, copy=False), indices.astype(idx), indptr.astype(idx)),
        shape=(rows, cols),
    )
    m.eliminate_zeros()  # explicit zeros carry nothing (and BMP would index them)
    return m


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
    items = load_csr(data_dir, "items", n, t)
    used = int(np.count_nonzero(np.bincount(items.indices, minlength=t)))
    if used > MAX_TERMS:
        raise DataError(f"items use {used} distinct tags; BMP's block forward index "
                        f"holds term ids as u16 (at most {MAX_TERMS})")
    return items, load_csr(data_dir, "queries", q, t)


def quantise_items(items):
    """Items as an int CSR of 8-bit impacts (same sparsity pattern)."""
    q = items.copy()
    if q.nnz:
        scale = IMPACT_MAX / float(q.data.max())
        q.data = np.clip(np.rint(q.data.astype(np.float64) * scale), 1, IMPACT_MAX)
    return q.astype(np.int64)


def quantise_query(w):
    """BMP's own query quantisation (python/src/lib.rs, Searcher.search), in f32."""
    w = np.asarray(w, dtype=np.float32)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    scale = np.float32(QUERY_LEVELS) / w.max()
    return np.ceil(w * scale).astype(np.int64)


@contextlib.contextmanager
def quiet_stderr():
    """Silence fd 2 (BMP's panic hook writes there) and restore it afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def is_bmp_panic(e):
    # pyo3's PanicException derives from BaseException, not Exception.
    return type(e).__name__ == "PanicException"


def run(items, queries, k, repeat, bsize, workdir=None, compress_range=False):
    """Build, then time the peer.

    Returns (prepare_s, index_bytes, latencies_ns, top_ids, top_scores,
    panicked query indices, imp) where ``imp`` is the quantised item matrix.
    """
    t0 = time.perf_counter()
    imp = quantise_items(items)
    with tempfile.TemporaryDirectory(prefix="bmp_peer_", dir=workdir) as tmp:
        path = os.path.join(tmp, "index.bmp")
        indexer = bmp.Indexer(path, bsize, compress_range)
        ind, ptr, dat = imp.indices.tolist(), imp.indptr.tolist(), imp.data.tolist()
        names = [str(j) for j in range(imp.shape[1])]
        add = indexer.add_document
        for i in range(imp.shape[0]):
            lo, hi = ptr[i], ptr[i + 1]
            add(str(i), {names[c]: v for c, v in zip(ind[lo:hi], dat[lo:hi])})
        indexer.finish()
        index_bytes = os.path.getsize(path)
        searcher = bmp.Searcher(path)  # deserialises the whole index into memory
    prepare_s = time.perf_counter() - t0

    # Query dicts {tag name: float weight}, built outside the timed region.
    qs = []
    for i in range(queries.shape[0]):
        lo, hi = queries.indptr[i], queries.indptr[i + 1]
        qs.append({names[c]: float(v)
                   for c, v in zip(queries.indices[lo:hi].tolist(),
                                   queries.data[lo:hi].tolist())})

    search = searcher.search
    results = [([], [])] * len(qs)
    panicked = set()
    lat = np.empty(len(qs) * repeat, dtype=np.int64)
    clock = time.perf_counter_ns
    with quiet_stderr():
        if qs:
            try:
                search(qs[0], k, 1.0, 1.0)  # warm-up
            except BaseException as e:  # noqa: B036
                if not is_bmp_panic(e):
                    raise
        j = 0
        for _ in range(repeat):
            for i, q in enumerate(qs):
                s = clock()
                try:
                    r = search(q, k, 1.0, 1.0)
                except BaseException as e:  # noqa: B036
                    if not is_bmp_panic(e):
                        raise
                    r = ([], [])
                    panicked.add(i)
                lat[j] = clock() - s
                j += 1
                results[i] = r
    top = [[int(d) for d in ids] for ids, _ in results]
    scores = [[float(x) for x in sc] for _, sc in results]
    return prepare_s, index_bytes, lat, top, scores, sorted(panicked), imp


def query_parts(queries, i):
    lo, hi = queries.indptr[i], queries.indptr[i + 1]
    return queries.indices[lo:hi], queries.data[lo:hi]


def overflow_risk(queries, imp):
    """Queries whose Cauchy-Schwarz bound on the integer score exceeds u16."""
    doc_norm = np.sqrt(np.asarray(imp.multiply(imp).sum(axis=1)).ravel().astype(np.float64))
    dmax = float(doc_norm.max()) if doc_norm.size else 0.0
    risky = []
    for i in range(queries.shape[0]):
        qw = quantise_query(query_parts(queries, i)[1])
        if float(np.sqrt((qw.astype(np.float64) ** 2).sum())) * dmax > SCORE_MAX:
            risky.append(i)
    return risky


def kth_impacts(imp, k):
    """Per tag: the impact BMP's initial threshold uses (10th/100th/1000th best, else 0)."""
    rank = {0: 10, 1: 100, 2: 1000}.get(int(k > 10) + int(k > 100) + int(k > 1000))
    out = np.zeros(imp.shape[1], dtype=np.int64)
    if rank is None:
        return out
    cols = imp.tocsc()
    for t in range(imp.shape[1]):
        v = cols.data[cols.indptr[t]:cols.indptr[t + 1]]
        if v.size >= rank:
            out[t] = np.partition(v, v.size - rank)[v.size - rank]
    return out


def simulate_bmp(row, tags, qw, cols, kth, k, bsize, skip_last=True):
    """Score list (best first) that BMP's search loop yields for one query, alpha = 1.

    A model of ``b_search_verbose`` (src/search.rs of BMP): the heap starts at
    threshold max_t kth_t * qw_t and admits only scores strictly above the
    threshold; blocks whose upper bound (u16, saturating) exceeds it are
    visited by decreasing bound (ties: ascending block id), stopping once the
    threshold exceeds the current block's bound. ``skip_last`` reproduces
    that the loop scores a block only when another candidate follows it, so
    the last candidate block is never scored. ``row`` holds the exact integer
    scores of every item; BMP sums them in u16 (wrapping).
    """
    n = row.size
    nblocks = -(-n // bsize)
    ub = np.zeros(nblocks, dtype=np.int64)
    thr = 0
    for t, w in zip(tags.tolist(), qw.tolist()):
        lo, hi = cols.indptr[t], cols.indptr[t + 1]
        if lo == hi:
            continue  # tag unknown to the index: BMP has no cursor for it
        bm = np.zeros(nblocks, dtype=np.int64)
        np.maximum.at(bm, cols.indices[lo:hi] // bsize, cols.data[lo:hi])
        ub += bm * w
        thr = max(thr, int(kth[t]) * w)
    ub = np.minimum(ub, SCORE_MAX)
    cand = np.flatnonzero(ub > thr)
    if cand.size == 0:
        return []  # BMP panics here (unwrap on an empty candidate list)
    order = cand[np.lexsort((cand, -ub[cand]))]
    if skip_last:
        order = order[:-1]
    wrapped = row % (SCORE_MAX + 1)
    heap = []
    for b in order.tolist():
        for s in wrapped[b * bsize:(b + 1) * bsize].tolist():
            if s > thr:
                heapq.heappush(heap, s)
                if len(heap) > k:
                    heapq.heappop(heap)
                if len(heap) >= k:
                    thr = heap[0]
        if thr > ub[b]:
            break
    return sorted(heap, reverse=True)


def check(items, queries, imp, k, bsize, top, scores, tol=1e-6):
    """Compare BMP with an integer brute force over the same quantised impacts.

    Per query, a failure is: a reported score that is not the item's quantised
    score, unsorted or duplicate results, or a score list that differs from
    what BMP's algorithm must return (``simulate_bmp``). Differences from the
    brute-force top-k are then counted by cause (see README.md). Returns the
    number of failed queries; prints the report and the float-cosine overlap
    to stderr.
    """
    cells = queries.shape[0] * items.shape[0]
    if cells > CHECK_MAX_CELLS:
        raise DataError(f"--check: data too large for brute force ({cells} cells)")
    cols = imp.tocsc()
    kth = kth_impacts(imp, k)
    qint = queries.copy().astype(np.int64)
    qparts = []
    for i in range(queries.shape[0]):
        lo, hi = qint.indptr[i], qint.indptr[i + 1]
        tags, w = query_parts(queries, i)
        qw = quantise_query(w)
        qint.data[lo:hi] = qw
        qparts.append((tags, qw))
    exact = (qint @ imp.T).toarray()                       # integer scores, Q x N
    fexact = (queries.astype(np.float64) @ items.T.astype(np.float64)).toarray()

    bad = 0
    causes = {"exact": 0, "threshold_tie": 0, "last_block": 0, "other": 0}
    recalls = []
    for i, (ids, got) in enumerate(zip(top, scores)):
        row = exact[i]
        tags, qw = qparts[i]
        got_i = [int(x) for x in got]
        errs = []
        if len(set(ids)) != len(ids):
            errs.append("duplicate ids")
        if any(x < y for x, y in zip(got_i, got_i[1:])):
            errs.append("scores not in descending order")
        if ids and not np.array_equal(row[ids] % (SCORE_MAX + 1), got_i):
            errs.append("reported scores differ from the quantised brute force")
        model = simulate_bmp(row, tags, qw, cols, kth, k, bsize)
        if got_i != model:
            errs.append(f"scores {got_i} differ from BMP's algorithm {model}")
        if errs:
            bad += 1
            print(f"check: query {i}: " + "; ".join(errs), file=sys.stderr)

        cand = np.sort(row[row > 0])[::-1][:k].tolist()    # brute-force top-k scores
        if got_i == cand:
            causes["exact"] += 1
        else:
            full = simulate_bmp(row, tags, qw, cols, kth, k, bsize, skip_last=False)
            thr0 = max((int(kth[t]) * w for t, w in zip(tags.tolist(), qw.tolist())
                        if cols.indptr[t] < cols.indptr[t + 1]), default=0)
            if full != got_i:
                causes["last_block"] += 1
            elif full == cand[:len(full)] and all(s == thr0 for s in cand[len(full):]):
                causes["threshold_tie"] += 1
            else:
                causes["other"] += 1
                bad += 1
                print(f"check: query {i}: {got_i} is not the brute-force top-k {cand}",
                      file=sys.stderr)

        # Overlap with the float-cosine top-k (items sharing >= 1 tag), tie-aware:
        # an id counts if its float score reaches the float k-th best score.
        frow = fexact[i]
        fpos = np.sort(frow[frow > 0])[::-1]
        fwant = min(k, fpos.size)
        if fwant:
            kth_score = fpos[fwant - 1]
            hits = sum(1 for d in ids if frow[d] >= kth_score - tol)
            recalls.append(min(hits, fwant) / fwant)
    print(f"check: {len(top) - bad} passed, {bad} failed", file=sys.stderr)
    print(f"check: vs quantised brute-force top-{k}: {causes['exact']} identical, "
          f"{causes['threshold_tie']} short by ties at BMP's initial threshold, "
          f"{causes['last_block']} differ because BMP never scores its last candidate "
          f"block, {causes['other']} unexplained", file=sys.stderr)
    if recalls:
        r = np.asarray(recalls)
        print(f"check: overlap with float-cosine top-{k} (tie-aware): mean {r.mean():.4f}, "
              f"min {r.min():.4f}, {int((r == 1.0).sum())}/{r.size} queries identical",
              file=sys.stderr)
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="directory written by the Rust bench")
    p.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--repeat", type=int, default=1, help="timed passes over all queries")
    p.add_argument("--bsize", type=int, default=DEFAULT_BSIZE,
                   help=f"BMP block size, 1..{MAX_BSIZE} (default {DEFAULT_BSIZE})")
    p.add_argument("--compress-range", action="store_true",
                   help="store each tag's block maxima sparsely (BMP's compress_range; "
                        "default: one byte per tag and block)")
    p.add_argument("--workdir", default=None,
                   help="where the temporary index file goes (default: system temp dir)")
    p.add_argument("--scores", action="store_true",
                   help='also emit "top_scores" (BMP\'s integer scores, parallel to "top")')
    p.add_argument("--check", action="store_true",
                   help="verify against an integer brute force over the same quantised "
                        "impacts and report overlap with float cosine (small data only)")
    args = p.parse_args(argv)
    if args.k < 1 or args.repeat < 1:
        p.error("--k and --repeat must be >= 1")
    if not 1 <= args.bsize <= MAX_BSIZE:
        p.error(f"--bsize must be in 1..{MAX_BSIZE}")

    try:
        items, queries = load(args.data)
        if args.check and queries.shape[0] * items.shape[0] > CHECK_MAX_CELLS:
            raise DataError("--check: data too large for brute force "
                            f"({queries.shape[0] * items.shape[0]} cells)")
    except DataError as e:
        print(f"bmp_peer: {e}", file=sys.stderr)
        return 2

    prepare_s, index_bytes, lat, top, scores, panicked, imp = run(
        items, queries, args.k, args.repeat, args.bsize, args.workdir, args.compress_range)
    risky = overflow_risk(queries, imp)
    lat_us = lat / 1e3
    total_s = lat.sum() / 1e9
    out = {
        "peer": "bmp",
        "version": importlib.metadata.version("bmp"),
        "queries": queries.shape[0],
        "k": args.k,
        "prepare_s": prepare_s,
        "p50_us": float(np.percentile(lat_us, 50)) if lat.size else 0.0,
        "p99_us": float(np.percentile(lat_us, 99)) if lat.size else 0.0,
        "mean_us": float(lat_us.mean()) if lat.size else 0.0,
        "qps": lat.size / total_s if total_s > 0 else 0.0,
        "top": top,
        "bsize": args.bsize,
        "compress_range": args.compress_range,
        "alpha": 1.0,
        "beta": 1.0,
        "impact_bits": 8,
        "index_bytes": index_bytes,
    }
    if panicked:
        out["panics"] = len(panicked)
        print(f"bmp_peer: {len(panicked)} queries panicked inside BMP (no block scores "
              "above its initial threshold, or no known tag); reported as empty",
              file=sys.stderr)
    if risky:
        out["overflow_risk"] = len(risky)
        print(f"bmp_peer: {len(risky)} queries could overflow BMP's u16 scores "
              f"(Cauchy-Schwarz bound > {SCORE_MAX}); their results may be wrong",
              file=sys.stderr)
    if args.scores:
        out["top_scores"] = scores
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")

    if args.check:
        return 1 if check(items, queries, imp, args.k, args.bsize, top, scores) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
