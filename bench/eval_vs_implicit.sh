#!/usr/bin/env bash
# Offline evaluation of recostore's for-user and cart scenarios beside implicit's item-item and
# ALS models and EASE (bench/peers/ease_peer.py), on the same time split of both real data
# sets, in one run.
#
#   bench/eval_vs_implicit.sh            # needs bench/peers/.venv (see bench/peers/README.md)
#   RECOSTORE_EVAL_HOLDOUT=0.3 bench/eval_vs_implicit.sh   # hold out another fraction (default 0.2)
#
# Stores and splits go to a temporary directory; the data are read from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${RECOSTORE_PEER_PYTHON:-bench/peers/.venv/bin/python}"
cargo build --release --quiet
bin=target/release/recostore
holdout="${RECOSTORE_EVAL_HOLDOUT:-0.2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
$bin import movielens ../shared/data/movielens-small --dir "$work/movielens" --json > /dev/null
$bin import retail ../shared/data/online-retail/online-retail.csv.gz --dir "$work/retail" --json > /dev/null
for set in movielens retail; do
  echo "## $set"
  for scenario in for-user cart; do
    $bin eval --dir "$work/$set" --scenario "$scenario" -k 10 --holdout "$holdout" --write-split "$work/split-$set"
  done
  "$py" bench/peers/implicit_peer.py "$work/split-$set" > "$work/peer-$set.json"
  "$py" bench/peers/ease_peer.py "$work/split-$set" > "$work/ease-$set.json"
  "$py" - "$work/peer-$set.json" "$work/ease-$set.json" <<'PY'
import json, sys
models = {}
for path in sys.argv[1:]:
    models.update(json.load(open(path))["models"])
for name, m in models.items():
    cols = "  ".join(f"{k} {m[k]:.4f}" for k in ("precision", "recall", "ndcg", "map", "coverage"))
    print(f"{name} @10 over {m['users']} users: {cols}  novelty {m['novelty']:.2f}")
PY
done
