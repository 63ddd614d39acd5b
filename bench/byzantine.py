"""Robust aggregation × attack, on the real multi-process network: final honest accuracy and consensus.

    .venv/bin/python bench/byzantine.py [--rules dsgd,median,...] [--attacks none,sign-flip,...]
                                        [--nodes 16] [--topology torus:4x4] [--byzantine 0,1,10] [--rounds 200]

Every cell is one ``gossip launch`` (N real node processes over TCP on loopback). Before the grid the
script prints each honest node's Byzantine neighbour count and checks that every honest node keeps
an honest majority among its inputs (and that the run is one each rule accepts: ``f`` is set to the
largest count). It prints a table of the final mean accuracy over honest nodes and of the honest
consensus distance (RMS distance of the honest nodes' final models to their average), and writes
``bench/out/byzantine.json`` and ``bench/out/byzantine.png`` (heat maps of both).

A rule can carry parameters, ``clipped-gossip:clip_tau=1``, and so can an attack, ``alie:alie_z=10``
(keys of ``[aggregation]`` / ``[byzantine]``).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import RunConfig, load_config
from gossip.errors import ConfigError
from gossip.run.launch import launch
from gossip.topology import parse_spec

OUT = Path(__file__).resolve().parent / "out"
RULES = "dsgd,median,trimmed-mean,krum,multi-krum,clipped-gossip,clipped-gossip:clip_rule=second-largest,balance"
ATTACKS = "none,sign-flip,gaussian,label-flip,alie,alie:alie_z=10,ipm,dissensus,silent"


def parse_cell(spec: str) -> tuple[str, dict[str, str]]:
    """``name:key=value;key=value`` → (name, {key: value})."""
    name, _, rest = spec.partition(":")
    params = dict(kv.split("=", 1) for kv in rest.split(";") if kv) if rest else {}
    return name, params


def placement_report(cfg: RunConfig) -> int:
    """Print each honest node's Byzantine neighbours; exit if one lacks an honest majority. Returns max count."""
    topo = parse_spec(cfg.topology.spec, n=cfg.run.nodes, seed=cfg.run.seed)
    bad = set(cfg.byzantine.nodes)
    worst = 0
    print(f"placement: {topo.name}, Byzantine nodes {sorted(bad)}")
    for i in range(topo.n):
        if i in bad:
            continue
        nb = list(topo.neighbours(i))
        b = sum(j in bad for j in nb)
        worst = max(worst, b)
        ok = b < (len(nb) + 1) / 2
        print(f"  node {i:>2}: {len(nb)} neighbours, {b} Byzantine, honest majority {'yes' if ok else 'NO'}")
        if not ok:
            raise SystemExit(f"node {i} has no honest majority among its inputs; choose another --byzantine placement")
    print(f"every honest node has an honest majority; largest Byzantine count at a node = {worst}")
    return worst


def run_cell(base: dict[str, Any], rule: str, attack: str) -> dict[str, Any]:
    rule_name, rule_params = parse_cell(rule)
    attack_name, attack_params = parse_cell(attack)
    overrides = dict(base)
    overrides["aggregation.rule"] = rule_name
    overrides.update({f"aggregation.{k}": v for k, v in rule_params.items()})
    if attack_name == "silent":
        overrides["transport.round_timeout_s"] = base["silent_timeout"]
    overrides.pop("silent_timeout")
    if attack_name == "none":
        overrides["byzantine.nodes"] = "[]"
        overrides["byzantine.attack"] = "none"
    else:
        overrides["byzantine.attack"] = attack_name
        overrides.update({f"byzantine.{k}": v for k, v in attack_params.items()})
    cfg = load_config(env={}, overrides=overrides)
    tmp = Path(tempfile.mkdtemp(prefix="gossip-byz-"))
    t0 = time.perf_counter()
    try:
        result = launch(cfg, run_dir=tmp / "run", progress=False, out=io.StringIO())
    except ConfigError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"rule": rule, "attack": attack, "error": str(exc)}
    wall = time.perf_counter() - t0
    if result.exit_code == 130:
        raise SystemExit("interrupted")
    s = result.summary
    misses = honest_misses(result.run_dir, set(cfg.byzantine.nodes))
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "rule": rule,
        "attack": attack,
        "exit_code": result.exit_code,
        "accuracy": s["accuracy_mean"],
        "accuracy_min": s["accuracy_min"],
        "consensus": s["consensus_distance_honest"],
        "honest_misses": misses,
        "wall_s": wall,
    }


def honest_misses(run_dir: Path, byzantine: set[int]) -> int:
    """Honest models that missed an honest node's round timeout (spurious timeouts of a loaded machine)."""
    from gossip.results.rundir import records_by_node

    return sum(
        sum(1 for j in r.get("missing", []) if j not in byzantine)
        for node, records in records_by_node(run_dir)
        if node not in byzantine
        for r in records
    )


def table(rows: list[dict[str, Any]], rules: list[str], attacks: list[str], key: str, fmt: str) -> str:
    cell = {(r["rule"], r["attack"]): r for r in rows}
    width = max(len(a) for a in attacks) + 1
    lines = [f"{'':<38}" + "".join(f"{a:>{max(width, 10)}}" for a in attacks)]
    for rule in rules:
        vals = []
        for a in attacks:
            r = cell.get((rule, a), {})
            v = r.get(key)
            vals.append(("refused" if "error" in r else "-") if v is None else format(v, fmt))
        lines.append(f"{rule:<38}" + "".join(f"{v:>{max(width, 10)}}" for v in vals))
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]], rules: list[str], attacks: list[str]) -> str:
    """Two markdown tables: final mean honest accuracy, then honest consensus distance."""
    cell = {(r["rule"], r["attack"]): r for r in rows}
    out = []
    for key, title, fmt in (("accuracy", "final mean accuracy of honest nodes", ".3f"), ("consensus", "honest consensus distance", ".2g")):
        out += [f"{title}:", "", "| rule \\ attack | " + " | ".join(f"`{a}`" for a in attacks) + " |", "|---|" + "---:|" * len(attacks)]
        for rule in rules:
            vals = []
            for a in attacks:
                r = cell.get((rule, a), {})
                v = r.get(key)
                vals.append(("refused" if "error" in r else "-") if v is None else ("non-finite" if v != v else format(v, fmt)))
            out.append(f"| `{rule}` | " + " | ".join(vals) + " |")
        out.append("")
    return "\n".join(out)


def heatmap(rows: list[dict[str, Any]], rules: list[str], attacks: list[str], path: Path, title: str) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cell = {(r["rule"], r["attack"]): r for r in rows}
    acc = np.array([[cell.get((ru, a), {}).get("accuracy") or np.nan for a in attacks] for ru in rules], dtype=float)
    cons = np.array([[cell.get((ru, a), {}).get("consensus") or np.nan for a in attacks] for ru in rules], dtype=float)
    fig = Figure(figsize=(3 + 1.15 * len(attacks), 2 + 0.5 * len(rules) * 2), dpi=110)
    FigureCanvasAgg(fig)
    panels = [
        (acc, "final mean accuracy of honest nodes", "viridis", False),
        (cons, "honest consensus distance (log10 colour)", "magma_r", True),
    ]
    for k, (data, label, cmap, log) in enumerate(panels):
        ax = fig.add_subplot(2, 1, k + 1)
        shown = np.log10(np.clip(data, 1e-6, None)) if log else data
        im = ax.imshow(shown, cmap=cmap, aspect="auto", vmin=None if log else 0.0)
        ax.set_xticks(range(len(attacks)), attacks, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rules)), rules, fontsize=8)
        for i in range(len(rules)):
            for j in range(len(attacks)):
                if np.isnan(data[i, j]):
                    if (rules[i], attacks[j]) in cell and "error" not in cell[(rules[i], attacks[j])]:
                        ax.text(j, i, "non-finite", ha="center", va="center", fontsize=7, color="k")
                    continue
                r, g, b, _ = im.cmap(im.norm(shown[i, j]))
                ink = "k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w"
                ax.text(j, i, f"{data[i, j]:.3f}" if not log else f"{data[i, j]:.2g}", ha="center", va="center", fontsize=7, color=ink)
        ax.set_title(label, fontsize=10)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", default=RULES, help=f"comma-separated rules (default {RULES})")
    p.add_argument("--attacks", default=ATTACKS, help=f"comma-separated attacks (default {ATTACKS})")
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--topology", default="torus:4x4")
    p.add_argument("--byzantine", default="0,1,10", help="attacker node ids")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument(
        "--round-timeout",
        type=float,
        default=3.0,
        help="seconds to wait for neighbours' models (generous: a loaded machine must not time out)",
    )
    p.add_argument(
        "--silent-timeout",
        type=float,
        default=1.0,
        help="round timeout of the 'silent' cells: the attack costs its neighbours this much every round",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT / "byzantine"), help="output path prefix (.json, .png, .md)")
    p.add_argument("--replot", metavar="JSON", help="only redraw the tables and the heat map of a grid saved earlier")
    args = p.parse_args()
    rules = [r for r in args.rules.split(",") if r]
    attacks = [a for a in args.attacks.split(",") if a]
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        rows = saved["rows"]
        rules = list(dict.fromkeys(r["rule"] for r in rows))
        attacks = list(dict.fromkeys(r["attack"] for r in rows))
        report(rows, rules, attacks, Path(args.out), saved["setting"], saved["args"])
        return
    base: dict[str, Any] = {
        "run.nodes": args.nodes,
        "run.seed": args.seed,
        "topology.spec": args.topology,
        "training.rounds": args.rounds,
        "training.lr": args.lr,
        "training.momentum": 0.9,
        "data.batch_size": 25,
        "training.eval_every": max(1, args.rounds // 4),
        "metrics.enabled": False,
        "transport.round_timeout_s": args.round_timeout,
        "byzantine.nodes": f"[{args.byzantine}]",
        "byzantine.attack": "sign-flip",
    }
    worst = placement_report(load_config(env={}, overrides=base))
    base["silent_timeout"] = args.silent_timeout
    base["aggregation.f"] = max(1, worst)
    print(f"aggregation.f = {base['aggregation.f']}; {len(rules)} rules × {len(attacks)} attacks, {args.rounds} rounds each")
    rows = []
    t0 = time.perf_counter()
    for rule in rules:
        for attack in attacks:
            row = run_cell(base, rule, attack)
            rows.append(row)
            acc = row.get("accuracy")
            done = f"acc {acc:.4f}  consensus {row['consensus']:.3g}  honest timeouts {row['honest_misses']}  {row['wall_s']:.0f} s"
            print(f"  {rule:<38} {attack:<16} " + (done if acc is not None else f"refused: {row.get('error')}"), flush=True)
    print(f"grid done in {time.perf_counter() - t0:.0f} s\n")
    setting = f"{args.nodes} nodes, {args.topology}, Byzantine {args.byzantine}, MNIST-1D IID, MLP, {args.rounds} rounds"
    report(rows, rules, attacks, Path(args.out), setting, vars(args))


def report(rows: list[dict[str, Any]], rules: list[str], attacks: list[str], out: Path, setting: str, args: dict[str, Any]) -> None:
    """Print both tables; write the JSON, the markdown tables and the heat map next to ``out``."""
    print("final mean accuracy over honest nodes")
    print(table(rows, rules, attacks, "accuracy", ".3f"))
    print("\nhonest consensus distance (RMS distance of honest final models to their mean)")
    print(table(rows, rules, attacks, "consensus", ".3g"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"setting": setting, "args": args, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(markdown(rows, rules, attacks))
    heatmap(rows, rules, attacks, out.with_suffix(".png"), setting)
    print(f"\nwrote {out.with_suffix('.json')}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
