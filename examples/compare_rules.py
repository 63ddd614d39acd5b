"""Final honest accuracy of the geometric-median plug-in beside shipped rules, under one sign-flip attacker.

    python examples/compare_rules.py            # 5 node processes per rule, complete graph, 20 rounds

The plug-in is found the way a user's own module is: this script's directory is on the launcher's Python
path (``python examples/...`` puts it there), and the launcher gives its nodes that path.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gossip

RULES = {
    "geomedian (plug-in)": {"aggregation.rule": "geomedian:GeoMedian", "aggregation.options": "iterations=20"},
    "trimmed-mean": {"aggregation.rule": "trimmed-mean"},
    "median": {"aggregation.rule": "median"},
    "dsgd (no defence)": {"aggregation.rule": "dsgd"},
}
BASE = {
    "run.nodes": 5,
    "topology.spec": "complete",
    "training.rounds": 20,
    "metrics.enabled": False,
    "byzantine.nodes": "[4]",
    "byzantine.attack": "sign-flip",
}


def main() -> int:
    print("final honest accuracy, 5 nodes (complete graph), 20 rounds, node 4 plays sign-flip, f = 1")
    print(f"{'rule':<22} {'accuracy':>9}")
    base = gossip.configure(gossip.RunConfig(), BASE)
    with tempfile.TemporaryDirectory() as tmp:
        for label, rule in RULES.items():
            result = gossip.experiment(gossip.configure(base, rule), run_dir=Path(tmp) / label.split()[0], progress=False)
            shown = (
                f"{result.accuracy_mean:>9.3f}" if result.ok and result.accuracy_mean is not None else f"failed (exit {result.exit_code})"
            )
            print(f"{label:<22} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
