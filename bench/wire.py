"""Wire cost: encode + decode of a model against a plain memory copy of the same bytes, in one run.

    .venv/bin/python bench/wire.py [--repeat 30]

The send path copies the parameter vector once (the snapshot the socket reads while training goes
on) and hands ZeroMQ a zero-copy view; "clone" is a fresh snapshot per message (first touch of new
pages: slow at 10M), "pooled" the node's SnapshotPool, which copies into a buffer ZeroMQ released; the receive path validates a zero-copy view of the frame
(the finiteness check is one read pass) and copies nothing. So "encode + decode" should cost about
one copy plus one read, and the table shows it as a ratio to a memcpy of the same bytes. The last
column checks the zero-copy claim directly: the encoded frame and the decoded tensor share memory
with the snapshot.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.net.sendbuffers import SnapshotPool
from gossip.net.wire import Expectation, Kind, all_finite, decode, encode

RUN = b"benchrun"
FP = b"F" * 16


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(
        f"{'params':>10} {'MB':>7} {'memcpy ms':>10} {'clone+encode ms':>16} {'pooled+encode ms':>17} {'pooled/clone':>13} {'decode ms':>10} "
        f"{'(pooled+dec)/memcpy':>20} {'zero-copy':>10}"
    )
    checks: dict[int, tuple[float, float, float]] = {}
    for n in (10_000, 1_000_000, 10_000_000):
        vector = torch.randn(n)
        target = torch.empty_like(vector)
        expect = Expectation(RUN, FP, n, 2, frozenset({1}), 0, 10)
        frames = encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=vector.clone())

        def copy() -> None:
            target.copy_(vector)

        def send_side() -> None:
            encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=vector.clone())

        pool = SnapshotPool()

        def pooled_send_side() -> None:
            snap = pool.snapshot(vector)
            pool.track(snap, encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=snap))

        def receive_side() -> None:
            decode(frames, expect, 1)

        t_copy, t_enc, t_pool, t_dec = ([] for _ in range(4))
        for _ in range(3):  # interleaved: load on the shared machine hits every variant alike
            t_copy.append(timed(copy, args.repeat))
            t_enc.append(timed(send_side, args.repeat))
            t_pool.append(timed(pooled_send_side, args.repeat))
            t_dec.append(timed(receive_side, args.repeat))
        t_copy, t_enc, t_pool, t_dec = (statistics.median(x) for x in (t_copy, t_enc, t_pool, t_dec))
        snapshot = vector.clone()
        f = encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=snapshot)
        msg = decode(f, expect, 1)
        frame_address = np.frombuffer(f[1], dtype=np.uint8).ctypes.data
        shares = frame_address == snapshot.data_ptr() and msg.payload is not None and msg.payload.data_ptr() == snapshot.data_ptr()
        print(
            f"{n:>10,} {n * 4 / 1e6:>7.2f} {t_copy * 1e3:>10.3f} {t_enc * 1e3:>16.3f} {t_pool * 1e3:>17.3f} {t_pool / t_enc:>13.2f} {t_dec * 1e3:>10.3f} "
            f"{(t_pool + t_dec) / t_copy:>20.2f} {'yes' if shares else 'NO':>10}"
        )
        checks[n] = finiteness_checks(vector, args.repeat)
    print("\nThe receiver's finiteness check (ms; all_finite is what decode runs: a sum, exact fallback only when it is not finite)")
    print(f"{'params':>10} {'isfinite().all()':>17} {'aminmax':>10} {'all_finite':>11} {'all_finite/aminmax':>19}")
    for n, (t_mask, t_minmax, t_ours) in checks.items():
        print(f"{n:>10,} {t_mask * 1e3:>17.3f} {t_minmax * 1e3:>10.3f} {t_ours * 1e3:>11.3f} {t_ours / t_minmax:>19.2f}")


def finiteness_checks(x: torch.Tensor, repeat: int) -> tuple[float, float, float]:
    """Seconds for three exact finiteness checks of ``x``, interleaved, medians."""
    variants = (lambda: bool(torch.isfinite(x).all()), lambda: [v.item() for v in torch.aminmax(x)], lambda: all_finite(x))
    samples: list[list[float]] = [[], [], []]
    for _ in range(3):
        for i, fn in enumerate(variants):
            samples[i].append(timed(fn, repeat))
    mask, minmax, ours = (statistics.median(s) for s in samples)
    return mask, minmax, ours


if __name__ == "__main__":
    main()
