#!/usr/bin/env python3
"""The shadow and interleaving steps of plugins/README.md's workflow, on Online Retail.

The store is the Online Retail history up to a cut (the replay's default cut: 80% of the
interest events before it). Served through the admin socket as a shop would:

1. shadow: slot `home` serves the built-in ranker, with `a9_match` and `spend_match` as
   shadows of every answer; every shopper who buys after the cut is asked `for-user` once.
2. interleave: slot `home-a9` interleaves `a9_match` with the built-in ranker, `home-spend`
   interleaves `spend_match` with it. Each of those shoppers is asked on both slots; then
   their purchases after the cut are recorded through `events.record`, as the shop's app
   would record them: a purchase of an item an answer showed is credited to the team that
   put it there.

Prints `slot.stats` for both steps. Needs a release build (`cargo build --release`) and the
example plugins (`cargo build --release --target wasm32-unknown-unknown --manifest-path
plugins/Cargo.toml`). Run from the repository root:

    python3 bench/retail_workflow.py /tmp/rw [--defaults]

It writes the stores under the given directory (and removes what it wrote there before).
With `--defaults` the server keeps the library's shadow settings (0.1 of a core, 256
queued) instead of a whole core and 4,096.
"""

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/recostore")
CSV = os.path.join(ROOT, "../shared/data/online-retail/online-retail.csv.gz")
WASM = os.path.join(ROOT, "plugins/target/wasm32-unknown-unknown/release")
INTEREST = {"view", "click", "cart", "purchase", "rate"}


def run(*args):
    subprocess.run([BIN, *args], check=True, stdout=subprocess.DEVNULL)


class Admin:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")

    def __call__(self, cmd, args=None):
        self.f.write(json.dumps({"cmd": cmd, "args": args if args is not None else {}}) + "\n")
        self.f.flush()
        r = json.loads(self.f.readline())
        if not r["ok"]:
            raise RuntimeError(f"{cmd}: {r['error']}")
        return r["result"]


def main():
    args = [a for a in sys.argv[1:] if a != "--defaults"]
    defaults = "--defaults" in sys.argv[1:]
    work = args[0] if args else "/tmp/rw"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    full, out, cut_dir = (os.path.join(work, d) for d in ("full", "jsonl", "cut"))
    run("import", "retail", CSV, "--dir", full)
    run("export", "jsonl", "--dir", full, "--out", out)
    events = [json.loads(l) for l in open(os.path.join(out, "events.jsonl"))]
    times = sorted(e["ts"] for e in events if e["kind"] in INTEREST)
    cut = times[int(len(times) * 0.8)]
    before = os.path.join(out, "before.jsonl")
    with open(before, "w") as f:
        for e in events:
            if e["ts"] < cut:
                f.write(json.dumps(e) + "\n")
    after = collections.defaultdict(list)
    for e in events:
        if e["ts"] >= cut and e["kind"] == "purchase":
            after[e["user"]].append(e)
    run("import", "jsonl", "--items", os.path.join(out, "items.jsonl"),
        "--users", os.path.join(out, "users.jsonl"), "--events", before, "--dir", cut_dir)
    sock = os.path.join(work, "admin.sock")
    # This machine has a core to spare while one client asks: let the shadow worker use it
    # all and keep every sampled answer, as a canary period would (the defaults, 0.1 of a
    # core and 256 queued, drop most of them at this pace).
    config = os.path.join(work, "recostore.toml")
    with open(config, "w") as f:
        if not defaults:
            f.write("[store.plugins]\nshadow_cpu = 1.0\nshadow_queue = 4096\n")
    server = subprocess.Popen([BIN, "serve", "--dir", cut_dir, "--socket", sock,
                               "--config", config], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        a = Admin(sock)
        for name in ("a9_match", "spend_match"):
            a("plugin.load", {"name": name.replace("_", "-"), "path": os.path.join(WASM, name + ".wasm")})
        users = sorted(u for u in after)
        known = set(json.loads(l)["id"] for l in open(os.path.join(out, "users.jsonl")))
        users = [u for u in users if u in known]
        print(f"cut at {cut}: {len(users)} shoppers buy after it "
              f"({sum(len(after[u]) for u in users)} purchase lines)")

        # 1. Shadow.
        a("slot.route", {"slot": "home", "variants": [
            {"strategy": "builtin", "weight": 1},
            {"strategy": "a9-match", "mode": "shadow"},
            {"strategy": "spend-match", "mode": "shadow"}]})
        # Excluding purchases gives the shadow's check of the host something to check.
        for u in users:
            a("query", {"scenario": "for-user", "user": u, "slot": "home", "k": 10,
                        "exclude_purchased": True})
        for _ in range(600):
            rows = [r for r in a("slot.stats", {"slot": "home"}) if r["mode"] == "shadow"]
            if all(r["shadow"]["calls"] + r["shadow"]["dropped"] == r["shadow"]["sampled"] for r in rows):
                break
            time.sleep(0.1)
        print("\n## shadow")
        for r in a("slot.stats", {"slot": "home"}):
            print(json.dumps(r))

        # 2. Interleave, then the shoppers' purchases after the cut.
        for slot, cand in (("home-a9", "a9-match"), ("home-spend", "spend-match")):
            a("slot.route", {"slot": slot, "variants": [
                {"strategy": cand, "mode": "interleave"},
                {"strategy": "builtin", "mode": "interleave"}]})
        started = time.time()
        # Every shopper is asked before any purchase after the cut is recorded, so that no
        # answer is ranked on another shopper's future.
        for u in users:
            for slot in ("home-a9", "home-spend"):
                a("query", {"scenario": "for-user", "user": u, "slot": slot, "k": 10})
        for u in users:
            a("events.record", {"events": after[u]})
        print(f"\n## interleave ({time.time() - started:.1f} s)")
        for slot in ("home-a9", "home-spend"):
            for r in a("slot.stats", {"slot": slot}):
                print(json.dumps(r))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
