"""What a fault costs: wall time, accuracy and models missed of a run under each fault, on an 8-node ring and a 16-node torus.

    .venv/bin/python bench/faults.py [--rounds 400] [--timeout 1.5] [--pause 10] [--only ring|torus]

Every arm is a real ``gossip launch`` (MNIST-1D, the default MLP, a checkpoint every 10 rounds but at most
one a second, so that the nodes' checkpoints lie at different rounds as in a long run) with the faults
injected from outside, by signal, once the victims reached a quarter of the rounds (half for the last arm):

- undisturbed;
- SIGSTOP: one node paused for ``--pause`` seconds, then SIGCONT;
- two killed (keep-going): SIGKILL of two nodes that are not neighbours, ``--keep-going``;
- two killed (restart): the same under ``--restart``: the launcher restarts them from their checkpoints;
- kill everything, resume: SIGKILL of every node, the launcher and its fork server, then
  ``gossip launch --resume RUN_DIR`` (wall time: both launches, and the wait between them for the ports).
  Nodes that write their checkpoints at different moments leave them at different rounds; to measure that
  case every time, the checkpoints of half of the nodes (a whole neighbourhood among them) are the ones
  they had at a quarter of the rounds, copied aside then and put back after the kill.

Wall time is the launcher's, start-up included (both launches for the last arm); training time is from the
first round's record to the last (for the last arm: up to the kill, plus the resumed part), which start-up
noise on a shared machine does not reach. Accuracy is the mean final accuracy of the nodes that
finished (a killed node's is not counted). Models missed are neighbour models that did not arrive in their
round (``missed_messages`` in summary.json: a dead node is missed by each neighbour every round). Rounds
skipped are rounds nodes did not run because they joined their neighbours' round instead (after a pause
or a restart).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.results.rundir import read_jsonl

# spec, nodes, two non-adjacent victims, the paused node, the nodes resumed from an older checkpoint
TOPOLOGIES = {
    "ring": ("ring", 8, (2, 5), 3, (2, 4, 5, 6, 7)),
    "torus": ("torus", 16, (5, 10), 6, tuple(range(8, 16))),
}


@dataclass
class Arm:
    """One measured run."""

    fault: str
    wall_s: float
    training_s: float
    accuracy: float | None
    missed: int
    skipped: int
    exit_codes: tuple[int, ...]
    note: str = ""  # the resume's "checkpoints at rounds [...]; the run continues at round R"


def _node_pids(run_dir: Path) -> dict[int, int]:
    """Node id -> pid of every live node process of ``run_dir`` (forked nodes carry their command line as title)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if "node" in words and "--id" in words[:-1] and "--run-dir" in words[:-1] and words[words.index("--run-dir") + 1] == str(run_dir):
            found[int(words[words.index("--id") + 1])] = int(entry.name)
    return found


def _training_s(run_dir: Path, resumed_at: float | None) -> float:
    """First to last record, over every node; with ``resumed_at`` (wall clock), the parts before and after it."""
    times = sorted(r["time"] for f in (run_dir / "nodes").glob("node-*.jsonl") for r in read_jsonl(f))
    if resumed_at is None:
        return times[-1] - times[0]
    before = [x for x in times if x < resumed_at]
    after = [x for x in times if x >= resumed_at]
    return (before[-1] - before[0] if before else 0.0) + (after[-1] - after[0] if after else 0.0)


def _rounds_done(run_dir: Path, node: int) -> int:
    return len(read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl"))


def _launch(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "gossip", *args], stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_for(run_dir: Path, nodes: Sequence[int], rounds: int, proc: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while min(_rounds_done(run_dir, i) for i in nodes) < rounds:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{run_dir}: the run ended or stalled before round {rounds}")
        time.sleep(0.02)


Injector = Callable[[subprocess.Popen[bytes]], tuple[list[int], subprocess.Popen[bytes]]]


def run_arm(fault: str, base: Sequence[str], run_dir: Path, inject: Injector) -> Arm:
    """Launch ``base`` into ``run_dir`` and let ``inject`` disturb it; it returns the exit codes of the launches it
    saw end and the launch whose end ends the arm."""
    log = run_dir.parent / f"{run_dir.name}.log"
    t0 = time.perf_counter()
    first = _launch([*base, "--run-dir", str(run_dir)], log)
    codes, last = inject(first)
    resumed_at = time.time() if last is not first else None  # the records before it are the first launch's
    codes.append(last.wait())
    wall = time.perf_counter() - t0
    summary = json.loads((run_dir / "summary.json").read_text())
    finished = [n["accuracy"] for n in summary["per_node"] if n["status"] == "finished" and n["accuracy"] is not None]
    note = next((line.split(": ", 2)[-1] for line in log.read_text().splitlines() if "checkpoints at rounds" in line), "")
    return Arm(
        fault,
        wall,
        _training_s(run_dir, resumed_at),
        sum(finished) / len(finished) if finished else None,
        summary["missed_messages"],
        summary.get("rounds_skipped", 0),
        tuple(codes),
        note,
    )


def arms(
    spec: str, nodes: int, victims: tuple[int, int], paused: int, older: tuple[int, ...], args: argparse.Namespace, root: Path
) -> list[Arm]:
    base = [
        "launch",
        "-n",
        str(nodes),
        "-t",
        spec,
        "-r",
        str(args.rounds),
        "--no-progress",
        "--no-report",
        "--set",
        f"transport.round_timeout_s={args.timeout}",
        "--set",
        "training.checkpoint_interval_s=1",
    ]
    quarter, half = args.rounds // 4, args.rounds // 2
    out = []

    def nothing(proc: subprocess.Popen[bytes]) -> tuple[list[int], subprocess.Popen[bytes]]:
        return [], proc

    def pause(run_dir: Path) -> Injector:
        def inject(proc: subprocess.Popen[bytes]) -> tuple[list[int], subprocess.Popen[bytes]]:
            _wait_for(run_dir, [paused], quarter, proc)
            pid = _node_pids(run_dir)[paused]
            os.kill(pid, signal.SIGSTOP)
            time.sleep(args.pause)
            os.kill(pid, signal.SIGCONT)
            return [], proc

        return inject

    def kill_two(run_dir: Path) -> Injector:
        def inject(proc: subprocess.Popen[bytes]) -> tuple[list[int], subprocess.Popen[bytes]]:
            _wait_for(run_dir, list(victims), quarter, proc)
            pids = _node_pids(run_dir)
            for v in victims:
                os.kill(pids[v], signal.SIGKILL)
            return [], proc

        return inject

    def kill_all_and_resume(run_dir: Path) -> Injector:
        def inject(proc: subprocess.Popen[bytes]) -> tuple[list[int], subprocess.Popen[bytes]]:
            ckpt = {i: run_dir / "nodes" / f"node-{i}.ckpt.npz" for i in older}
            _wait_for(run_dir, range(nodes), quarter, proc)
            while not all(c.exists() for c in ckpt.values()):
                if proc.poll() is not None:
                    raise SystemExit(f"{run_dir}: the run ended before nodes {list(older)} wrote a checkpoint")
                time.sleep(0.02)
            saved = {i: c.read_bytes() for i, c in ckpt.items()}  # written by rename: each is a whole checkpoint
            _wait_for(run_dir, range(nodes), half, proc)
            for pid in _node_pids(run_dir).values():  # first: the fork server's death would SIGTERM them into a checkpoint
                os.kill(pid, signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its fork server
            first = proc.wait()
            for i, data in saved.items():
                ckpt[i].write_bytes(data)
            return [first], _launch(
                ["launch", "--resume", str(run_dir), "--no-progress", "--no-report"], run_dir.parent / f"{run_dir.name}.log"
            )

        return inject

    for fault, extra, make in (
        ("undisturbed", [], lambda d: nothing),
        (f"SIGSTOP {args.pause:g} s", [], pause),
        ("two killed (keep-going)", ["--keep-going"], kill_two),
        ("two killed (restart)", ["--restart"], kill_two),
        ("kill everything, resume", [], kill_all_and_resume),
    ):
        run_dir = root / f"{spec}-{nodes}-{len(out)}"
        arm = run_arm(fault, [*base, *extra], run_dir, make(run_dir))
        print(
            f"  {spec}-{nodes} {fault}: {arm.wall_s:.1f} s ({arm.training_s:.1f} s training), accuracy {arm.accuracy}, missed {arm.missed}, "
            f"skipped {arm.skipped}, exit {arm.exit_codes}",
            file=sys.stderr,
            flush=True,
        )
        out.append(arm)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--timeout", type=float, default=1.5, help="transport.round_timeout_s (default 1.5)")
    p.add_argument("--pause", type=float, default=10.0, help="seconds the paused node stays stopped (default 10)")
    p.add_argument("--only", choices=sorted(TOPOLOGIES), action="append")
    p.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gossip-faults-"))
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    results = {}
    for name in args.only or list(TOPOLOGIES):
        spec, nodes, victims, paused, older = TOPOLOGIES[name]
        results[f"{spec}-{nodes}"] = (victims, paused, arms(spec, nodes, victims, paused, older, args, root))

    print(
        f"\n{args.rounds} rounds, MNIST-1D, MLP, round timeout {args.timeout:g} s; faults at round {args.rounds // 4} "
        f"(kill everything: round {args.rounds // 2})\n"
    )
    print("| topology | fault | wall s | training s | accuracy | models missed | rounds skipped | exit codes |")
    print("|---|---|---|---|---|---|---|---|")
    for topo, (victims, paused, rows) in results.items():
        for a in rows:
            who = (
                f" (node {paused})" if a.fault.startswith("SIGSTOP") else f" (nodes {victims[0]}, {victims[1]})" if "two" in a.fault else ""
            )
            acc = f"{a.accuracy:.3f}" if a.accuracy is not None else "-"
            print(
                f"| {topo} | {a.fault}{who} | {a.wall_s:.1f} | {a.training_s:.1f} | {acc} | {a.missed} | {a.skipped} | {', '.join(map(str, a.exit_codes))} |"
            )
    for topo, (_v, _p, rows) in results.items():
        for a in rows:
            if a.note:
                print(f"\n{topo}, {a.fault}: {a.note}")
    print(f"\nLoad average before / after: {load_before} / {' '.join(open('/proc/loadavg').read().split()[:3])} (the machine is shared).")
    if args.keep:
        print(f"run directories: {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
