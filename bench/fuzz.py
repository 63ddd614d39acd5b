"""Fuzz a live node: ≥100 000 malformed messages at a real ``gossip node`` process while it trains.

The bench plays node 1 of a 2-node run for real (answers hellos, echoes a valid model back each round, so
node 0 keeps training at full speed) and, on the same connection and two strangers' connections, sends
hand-mutated messages: random frames, byte-flipped and field-mutated msgpack headers, wrong sizes, wrong
dtypes, NaN/inf payloads, rounds outside the window, merge kinds with the merge off, unknown kinds,
too many frames, and identities that are no node of the run. The rate limit is raised to 10⁶ msg/s so
every message reaches validation (the limiter is tested on its own).

It checks and prints:
- node 0 kept training: rounds completed before, during and after the flood;
- its RSS (``VmRSS`` from /proc) at the start of the flood, the peak while sampling, and at the end;
- the accounting: messages sent (malformed + legitimate) against what node 0's /metrics counts as received
  (``gossip_messages_received_total``) plus rejected by reason (``gossip_messages_rejected_total``).

Run: ``.venv/bin/python bench/fuzz.py [--messages 100000] [--seed 0]``; writes bench/out/fuzz.json.
Frames stay below the node's MAXMSGSIZE: larger ones make libzmq drop the connection before Python sees
them (tests/e2e/test_hostile_peer.py covers that), and could not be counted here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
import zmq.asyncio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gossip.config import config_to_toml, load_config  # noqa: E402
from gossip.errors import ExitCode  # noqa: E402
from gossip.results.rundir import read_jsonl  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MAX_FRAME = 4000  # below the node's MAXMSGSIZE (logreg on digits: 650 floats + 8 KiB slack)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _scrape(port: int) -> tuple[dict[str, float], float]:
    """(rejected by reason, messages received from node 1) from node 0's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    rejected: dict[str, float] = {}
    received = 0.0
    for line in text.splitlines():
        m = re.match(r'gossip_messages_rejected_total\{node="0",reason="([a-z_]+)"\} (\S+)', line)
        if m:
            rejected[m.group(1)] = float(m.group(2))
        m = re.match(r'gossip_messages_received_total\{node="0",peer="1"\} (\S+)', line)
        if m:
            received = float(m.group(1))
    return rejected, received


class Mutator:
    """Malformed messages made from a valid header and payload, by category, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)

    def _junk(self) -> Any:
        r = self.rng
        return r.choice(
            [
                None,
                True,
                -1,
                1 << 63,
                r.randint(-(1 << 40), 1 << 40),
                r.random() * 1e300,
                float("nan"),
                "x" * r.randint(0, 300),
                r.randbytes(r.randint(0, 80)),
                [1, 2, 3],
                {"a": 1},
                list(range(40)),
            ]
        )

    def make(self, header: dict[str, Any], payload: bytes) -> tuple[str, list[bytes]]:
        r = self.rng
        kind = r.choice(
            [
                "random_frames",
                "byte_flip_header",
                "mutate_field",
                "drop_field",
                "extra_fields",
                "wrong_size",
                "non_finite",
                "bad_dtype",
                "round_window",
                "merge_kind",
                "unknown_kind",
                "too_many_frames",
                "empty",
                "not_a_map",
            ]
        )
        pack = lambda d: msgpack.packb(d, use_bin_type=True)  # noqa: E731
        if kind == "random_frames":
            return kind, [r.randbytes(r.randint(0, MAX_FRAME)) for _ in range(r.randint(1, 3))]
        if kind == "byte_flip_header":
            head = bytearray(pack(header))
            for _ in range(r.randint(1, 4)):
                head[r.randrange(len(head))] = r.randrange(256)
            return kind, [bytes(head), payload]
        if kind == "mutate_field":
            d = dict(header)
            d[r.choice(list(d))] = self._junk()
            return kind, [pack(d), payload]
        if kind == "drop_field":
            d = dict(header)
            d.pop(r.choice(list(d)))
            return kind, [pack(d), payload]
        if kind == "extra_fields":
            d = dict(header)
            for _ in range(r.randint(1, 40)):
                d[f"k{r.randrange(1000)}"] = self._junk()
            return kind, [pack(d), payload]
        if kind == "wrong_size":
            cut = r.choice([0, 1, 3, len(payload) // 2, len(payload) - 1, len(payload) + 1, len(payload) + 4])
            body = payload[:cut] if cut <= len(payload) else payload + b"\0" * (cut - len(payload))
            d = dict(header, n=r.choice([header["n"], header["n"] + 1, 0, -1])) if r.random() < 0.5 else header
            return kind, [pack(d), body]
        if kind == "non_finite":
            body = np.frombuffer(payload, dtype="<f4").copy()
            body[self.np.integers(len(body), size=r.randint(1, 3))] = r.choice([np.nan, np.inf, -np.inf])
            return kind, [pack(header), body.tobytes()]
        if kind == "bad_dtype":
            return kind, [pack(dict(header, dtype=r.choice(["float64", "int8", "", "float32 ", "<f4"]))), payload]
        if kind == "round_window":
            return kind, [pack(dict(header, round=header["round"] + r.choice([-5, -1, 50, 1 << 40, -(1 << 40)]))), payload]
        if kind == "merge_kind":
            return kind, [pack(dict(header, kind=r.choice(["merge", "merge_view", "merge_stats"]))), payload]
        if kind == "unknown_kind":
            return kind, [pack(dict(header, kind=r.choice(["MODEL", "helo", "", "x" * 200]))), payload]
        if kind == "too_many_frames":
            return kind, [pack(header)] + [payload[: r.randint(0, 64)] for _ in range(r.randint(3, 8))]
        if kind == "empty":
            return kind, [b""]
        return kind, [pack(r.choice([[1, 2], 3, "model", b"\x00", None])), payload]


async def fuzz(messages: int, seed: int, work: Path) -> dict[str, Any]:
    p0, p1, m0 = free_port(), free_port(), free_port()
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 2,
            "topology.spec": "complete",
            "training.rounds": 1_000_000,
            "data.dataset": "digits",
            "model.name": "logreg",
            "transport.addresses": [f"tcp://127.0.0.1:{p0}", f"tcp://127.0.0.1:{p1}"],
            "transport.round_timeout_s": 5.0,
            "metrics.ports": [m0, free_port()],
            "security.max_messages_per_s": 1e6,
            "security.burst_messages": 1_000_000,
        },
    )
    (work / "run.toml").write_text(config_to_toml(cfg))
    run_dir = work / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(work / "node0.log", "wb") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "gossip", "node", "--config", str(work / "run.toml"), "--id", "0", "--run-dir", str(run_dir)],
            stdout=log,
            stderr=log,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    ctx = zmq.asyncio.Context()
    inbound = ctx.socket(zmq.PULL)
    inbound.bind(f"tcp://127.0.0.1:{p1}")
    envelope: dict[zmq.asyncio.Socket, bytes] = {}  # the id each connection claims in its envelope frame

    def dealer(identity: bytes) -> zmq.asyncio.Socket:
        s = ctx.socket(zmq.PUSH)
        envelope[s] = identity
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 16)  # short queue: the echoed model must not wait behind thousands of fuzz messages
        s.connect(f"tcp://127.0.0.1:{p0}")
        return s

    me, stranger, nobody = dealer(b"1"), dealer(b"7"), dealer(b"x!")  # node 1, an id outside the run, no id at all
    legit = 0
    latest: dict[str, Any] = {}
    started = asyncio.Event()
    done = False
    echo = True

    async def play() -> None:
        nonlocal legit
        while not done:
            try:
                _ident, head, *rest = await asyncio.wait_for(inbound.recv_multipart(), 1.0)
            except TimeoutError:
                continue
            header = msgpack.unpackb(head, raw=False)
            if header["kind"] == "hello":
                await me.send_multipart([b"1", msgpack.packb(dict(header, src=1, kind="welcome"), use_bin_type=True)])
                legit += 1
            elif header["kind"] == "model" and echo:
                mine = dict(header, src=1)
                latest["header"], latest["payload"] = mine, bytes(rest[0])
                await me.send_multipart([b"1", msgpack.packb(mine, use_bin_type=True), rest[0]])
                legit += 1
                if header["round"] >= 3:
                    started.set()

    player = asyncio.create_task(play())
    try:
        await asyncio.wait_for(started.wait(), 180)
        mut = Mutator(seed)
        sent: Counter[str] = Counter()
        rounds_before = len(read_jsonl(run_dir / "nodes" / "node-0.jsonl"))
        rss_start = _rss_kib(node.pid)
        rss_peak = rss_start
        t0 = time.monotonic()
        for k in range(messages):
            # one round ahead of the last model node 0 sent: inside its window, so the later checks are reached too
            base = dict(latest["header"], round=latest["header"]["round"] + 1)
            category, frames = mut.make(base, latest["payload"])
            sock = me if k % 10 else (stranger if k % 20 else nobody)
            await sock.send_multipart([envelope[sock], *frames])
            sent[category] += 1
            if k % 20 == 0:  # a send that does not block never yields: let the player echo node 0's models
                await asyncio.sleep(0)
            if k % 5000 == 0:
                rss_peak = max(rss_peak, _rss_kib(node.pid))
        flood_s = time.monotonic() - t0
        rounds_during = len(read_jsonl(run_dir / "nodes" / "node-0.jsonl")) - rounds_before
        rounds_after = len(read_jsonl(run_dir / "nodes" / "node-0.jsonl"))
        await asyncio.sleep(2.0)
        rounds_later = len(read_jsonl(run_dir / "nodes" / "node-0.jsonl"))
        rss_end = _rss_kib(node.pid)
        # stop the legitimate traffic, let the queues drain, then read the counters once they stop moving
        echo = False
        previous = None
        for _ in range(60):
            await asyncio.sleep(1.0)
            counts = await asyncio.to_thread(_scrape, m0)
            if counts == previous:
                break
            previous = counts
        rejected, received = previous if previous else await asyncio.to_thread(_scrape, m0)
        legit_at_scrape = legit
    finally:
        done = True
        await player
        node.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(node.wait, 60)
        for s in (me, stranger, nobody, inbound):
            s.close(linger=0)
        ctx.term()
    total_rejected = sum(rejected.values())
    fuzz_sent = sum(sent.values())
    return {
        "messages_fuzz": fuzz_sent,
        "messages_legit": legit_at_scrape,
        "sent_by_category": dict(sorted(sent.items())),
        "rejected_by_reason": {k: int(v) for k, v in sorted(rejected.items()) if v},
        "rejected_total": int(total_rejected),
        "accepted_from_node_1": int(received),
        "unaccounted": int(fuzz_sent + legit_at_scrape - total_rejected - received),
        "flood_s": flood_s,
        "messages_per_s": fuzz_sent / flood_s,
        "rounds_before_flood": rounds_before,
        "rounds_during_flood": rounds_during,
        "rounds_still_advancing_after": rounds_later - rounds_after,
        "rss_kib": {"start": rss_start, "peak_sampled": rss_peak, "end": rss_end},
        "node_exit_code": code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "fuzz.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gossip-fuzz-") as tmp:
        result = asyncio.run(fuzz(args.messages, args.seed, Path(tmp)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"sent {result['messages_fuzz']} malformed + {result['messages_legit']} legitimate messages in {result['flood_s']:.1f} s "
        f"({result['messages_per_s']:.0f}/s)"
    )
    print(f"{'category':<20} {'sent':>8}")
    for k, v in result["sent_by_category"].items():
        print(f"{k:<20} {v:>8}")
    print(f"{'node 0 counted':<20} {'count':>8}")
    for k, v in result["rejected_by_reason"].items():
        print(f"rejected {k:<11} {v:>8}")
    print(f"{'accepted (node 1)':<20} {result['accepted_from_node_1']:>8}")
    print(f"{'unaccounted':<20} {result['unaccounted']:>8}")
    rss = result["rss_kib"]
    print(
        f"rounds: {result['rounds_before_flood']} before, {result['rounds_during_flood']} during the flood, "
        f"{result['rounds_still_advancing_after']} in the 2 s after; VmRSS {rss['start']} KiB at start, peak {rss['peak_sampled']}, "
        f"end {rss['end']} KiB; node exit code {result['node_exit_code']}"
    )
    ok = (
        result["rounds_during_flood"] > 0
        and result["rounds_still_advancing_after"] > 0
        and result["unaccounted"] == 0
        and result["node_exit_code"] == ExitCode.TERMINATED
    )  # our SIGTERM came before its last round: stopped cleanly
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
