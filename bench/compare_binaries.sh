#!/bin/bash
# Two recostore binaries alternately, in one sitting: for a change that must not change speed.
# Per round and binary: import Online Retail (wall time: ingestion), then `recostore bench`
# similar and for-user on the imported store, one thread. The order swaps each round.
#
#   bench/compare_binaries.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Prints one TSV line per round and binary (round, binary, import seconds, similar p50/p99 µs,
# for-user p50/p99 µs), then the medians. Needs ../shared/data (see README).
set -euo pipefail
OLD=$1 NEW=$2 ROUNDS=${3:-5}
DATA=${DATA:-../shared/data/online-retail/online-retail.csv.gz}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for side in $order; do
    if [ "$side" = old ]; then bin=$OLD; else bin=$NEW; fi
    store="$WORK/$side"
    rm -rf "$store"
    start=$(date +%s.%N)
    "$bin" import retail "$DATA" --dir "$store" > /dev/null 2>&1
    end=$(date +%s.%N)
    sim=$("$bin" bench --dir "$store" --scenario similar --queries 4000 --threads 1 --json 2>/dev/null)
    fu=$("$bin" bench --dir "$store" --scenario for-user --queries 1000 --threads 1 --json 2>/dev/null)
    printf '%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n' "$round" "$side" "$(echo "$end - $start" | bc)" \
      "$(echo "$sim" | field p50_us)" "$(echo "$sim" | field p99_us)" \
      "$(echo "$fu" | field p50_us)" "$(echo "$fu" | field p99_us)"
  done
done | tee "$WORK/rows.tsv"
python3 - "$WORK/rows.tsv" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
for side in ('old', 'new'):
    r = [list(map(float, x[2:])) for x in rows if x[1] == side]
    med = [statistics.median(c) for c in zip(*r)]
    print(f"{side}: import {med[0]:.3f} s, similar p50 {med[1]:.2f} p99 {med[2]:.2f} µs, "
          f"for-user p50 {med[3]:.0f} p99 {med[4]:.0f} µs (medians of {len(r)})")
PY
