"""The ``gossip`` command line's argparse tree: one builder per subcommand, each pointing at its handler in
:mod:`gossip.cli.commands`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from gossip.cli.churn import add_churn_arguments
from gossip.cli.commands import (
    cmd_dashboards,
    cmd_deploy,
    cmd_deploy_summary,
    cmd_keys,
    cmd_launch,
    cmd_node,
    cmd_report,
    cmd_simulate,
    cmd_topology_show,
)
from gossip.cli.local_flags import add_local_transport_arguments
from gossip.config import MAX_NODES, MAX_SEED, check_path_text
from gossip.errors import ExitCode, GossipError, one_line
from gossip.node.daemon import add_node_arguments, hold_seconds

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"gossip: error: {one_line(message)} (see {self.prog} --help)\n")


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``lo..hi``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not in {lo}..{hi}")
        return value

    return parse


def _gpus(text: str) -> str | tuple[int, ...]:
    """An argparse type for ``--gpus``: ``all``, or distinct GPU indices separated by commas."""
    if text.strip().lower() == "all":
        return "all"
    parse = _int_in(0, 1023)
    indices = tuple(parse(part.strip()) for part in text.split(","))
    if len(set(indices)) != len(indices):
        raise argparse.ArgumentTypeError(f"{text!r} names a GPU twice")
    return indices


def _text(text: str) -> str:
    """An argparse type for a string that ends up in a file: no control characters, no bytes that are not UTF-8."""
    try:
        check_path_text("the value", text)
    except GossipError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _common_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML run config (every key: docs/operate/configuration.md); flags override it")
    p.add_argument(
        "--set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one config key, e.g. --set training.lr=0.1 (repeatable)",
    )


def _launch_like_args(p: argparse.ArgumentParser) -> None:
    """The experiment flags shared by launch and simulate (shortcuts for config keys)."""
    p.add_argument("-n", "--nodes", type=int, help="number of nodes (needed for generated topologies)")
    p.add_argument(
        "-t",
        "--topology",
        metavar="SPEC",
        help="ring, torus[:RxC], complete, er[:p=P], ba[:m=M], regular[:d=D], exponential, one-peer-exponential, or a graph file",
    )
    p.add_argument("-r", "--rounds", type=int, help="communication rounds")
    p.add_argument("--weights", choices=["metropolis", "uniform", "max-degree"], help="mixing weights (default metropolis)")
    p.add_argument("--dataset", help="mnist1d (default), digits, mnist, cifar10, synthetic, or a plug-in 'module:load'")
    p.add_argument("--data-root", metavar="DIR", help="directory of file-based datasets (mnist IDX files, cifar10 batches)")
    p.add_argument("--partition", help="how data is split across nodes: iid (default), dirichlet, shards, or a plug-in 'module:split'")
    p.add_argument("--alpha", type=float, help="Dirichlet concentration (smaller = more skewed)")
    p.add_argument("--model", help="mlp (default), mlpbn, cnn1d, cnn, logreg, vector, or a plug-in 'module:Factory'")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--local-steps", type=int, help="SGD steps per round")
    p.add_argument("--batch-size", type=int, help="minibatch size per node")
    p.add_argument("--seed", type=int, help="seed for split, init and batches")
    p.add_argument("--name", help="run directory name under runs/ (default: timestamp and topology)")


def build_parser() -> argparse.ArgumentParser:
    """The ``gossip`` command line: one subcommand per job, each built by its own function below."""
    parser = _Parser(
        prog="gossip",
        description="Decentralized learning on real processes: every node trains a PyTorch model on its own "
        "data and gossips with its neighbours over ZeroMQ. No server, no coordinator.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (
        _launch_parser,
        _simulate_parser,
        _node_parser,
        _keys_parser,
        _deploy_parser,
        _topology_parser,
        _report_parser,
        _dashboards_parser,
    ):
        add(sub)
    return parser


def _launch_parser(sub: Any) -> None:
    p = sub.add_parser(
        "launch",
        help="run N node processes on this machine (the quick start)",
        description="Start one real node process per vertex of the topology on loopback, show progress, "
        "stop them all cleanly at the end (or on Ctrl-C), and write a run directory with the config, "
        "per-node JSONL records and a summary.",
    )
    _common_config_args(p)
    _launch_like_args(p)
    p.add_argument("--run-dir", metavar="DIR", help="exact run directory (must not exist or be empty)")
    p.add_argument(
        "--base-port",
        type=_int_in(0, 65535),
        default=None,
        help="first TCP port for nodes, their metrics on the ports after theirs (default or 0: free ports picked by the OS)",
    )
    add_local_transport_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--gpus",
        type=_gpus,
        metavar="0,1,...|all",
        help="run the nodes on these CUDA GPUs, node i on the (i mod k)-th (training.device = 'cuda', training.gpus); "
        "refused on a machine without them",
    )
    p.add_argument(
        "--prometheus", action="store_true", help="run a Prometheus server (the binary on PATH) scraping the nodes; prints its URL"
    )
    p.add_argument(
        "--prometheus-port", type=_int_in(0, 65535), default=0, metavar="PORT", help="port of that Prometheus (default: a free port)"
    )
    p.add_argument("--no-report", action="store_true", help="do not write the PNG/Markdown report (RUN_DIR/report) at the end")
    p.add_argument(
        "--hosts",
        metavar="FILE",
        help="start the nodes on the machines FILE lists ('[user@]host [slots=K]' a line) over ssh, block-wise, node i at "
        "HOST:base port + its index there; the run directory must be on a file system they all share",
    )
    p.add_argument(
        "--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="with --hosts: give every ssh -o KEY=VALUE (repeatable)"
    )
    _launch_control_args(p)
    p.set_defaults(handler=cmd_launch)


def _launch_control_args(p: argparse.ArgumentParser) -> None:
    """How ``gossip launch`` treats its nodes: dead ones, forking or spawning, restarts, resuming a run."""
    p.add_argument("--keep-going", action="store_true", help="when a node dies, let the others finish (the final merge excludes it)")
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start every node as its own `python -m gossip node` process (each imports torch: ~1.5 s of CPU a node) "
        "instead of forking it from one process that imported torch once (the default)",
    )
    p.add_argument(
        "--restart",
        type=_int_in(0, 1000),
        nargs="?",
        const=3,
        default=0,
        metavar="N",
        help="restart a node that dies from its checkpoint (gossip node --resume), up to N times per node (default 3)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run whose launcher was killed: restart every node of RUN_DIR from its checkpoint (its config, "
        "ports and topology; other run flags are refused)",
    )


def _simulate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="the same D-SGD run, vectorised in one process (a baseline and a fast research tool)",
        description="Run the configured D-SGD with all N models in one process, same batches and initialisation as gossip launch "
        "(the same curve), or an open network ([membership] enabled) under churn; writes a run directory of the same layout.",
    )
    _common_config_args(p)
    _launch_like_args(p)
    add_churn_arguments(p)
    p.add_argument("--run-dir", metavar="DIR", help="exact run directory (must not exist or be empty)")
    p.add_argument("--no-report", action="store_true", help="do not write the PNG/Markdown report (RUN_DIR/report) at the end")
    p.set_defaults(handler=cmd_simulate)


def _node_parser(sub: Any) -> None:
    p = sub.add_parser(
        "node",
        help="run one node (the daemon behind launch, compose and Kubernetes)",
        description="Run one node of a run: load the shared config, bind, wait for the neighbours, train, "
        "gossip, and exit 0 when done (143 when SIGTERM stopped it first, 3 when its model diverged, 1 on a runtime "
        "failure, 2 on a usage error). Environment variables GOSSIP_<SECTION>_<KEY> override "
        "the config; GOSSIP_NODE_ID gives the id.",
    )
    _common_config_args(p)
    add_node_arguments(p)
    p.set_defaults(handler=cmd_node)


def _keys_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="generate CURVE key pairs for the nodes of a run",
        description="Write node-<i>.key (public) and node-<i>.key_secret (mode 0600) for every node: "
        "ZeroMQ certificates for [security] curve = true. Give each node its own secret and every public key.",
    )
    p.add_argument("-n", "--nodes", type=_int_in(1, MAX_NODES), required=True, help="number of nodes")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="directory to write the keys into (must not hold keys already)")
    p.set_defaults(handler=cmd_keys)


def _topology_parser(sub: Any) -> None:
    p = sub.add_parser("topology", help="inspect topologies", description="Inspect a topology file or generator spec.")
    tsub = p.add_subparsers(dest="topology_command", metavar="ACTION", parser_class=_Parser)
    tsub.required = True
    show = tsub.add_parser(
        "show",
        help="print nodes, edges, degrees, spectral gap; draw a PNG",
        description="Print a topology's size, degrees and mixing properties, and write a PNG drawing.",
    )
    show.add_argument("spec", metavar="FILE|SPEC", help="a graph file or a generator spec such as ring, torus:4x4, er:p=0.3")
    show.add_argument("-n", "--nodes", type=_int_in(1, MAX_NODES), help="number of nodes for generator specs")
    show.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="seed for random generators")
    show.add_argument("--weights", default="metropolis", choices=["metropolis", "uniform", "max-degree"])
    show.add_argument("-o", "--output", metavar="PNG", help="where to write the drawing (default: <name>.png here)")
    show.add_argument("--no-draw", action="store_true", help="do not write the PNG")
    show.set_defaults(handler=cmd_topology_show)


def _report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="plot a run: accuracy, loss, consensus, bytes, topology; Markdown summary",
        description="Write PNG plots (accuracy and loss per node with the mean, consensus distance, bytes on the wire, "
        "the topology coloured by final accuracy, honest vs attacker nodes for Byzantine runs) and report.md for a run directory.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by gossip launch")
    p.add_argument("-o", "--output", metavar="DIR", help="where to write the report (default: RUN_DIR/report)")
    p.set_defaults(handler=cmd_report)


def _dashboards_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboards",
        help="regenerate the Grafana dashboards and Prometheus configs/rules under deploy/",
        description="Write the generated observability files (deploy/grafana/dashboards/*.json, deploy/prometheus/*.yml and "
        "deploy/prometheus/rules/*.yml) from the code that defines them (gossip/ops/dashboards.py, gossip/ops/prometheus.py, gossip/ops/alerts.py).",
    )
    p.add_argument("--deploy-dir", metavar="DIR", default="deploy", help="the deploy/ directory to write into (default: ./deploy)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is missing or out of date")
    p.set_defaults(handler=cmd_dashboards)


def _deploy_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deploy",
        help="render Docker Compose, Kubernetes or SLURM files for a run of any size",
        description="Render the deployment files of one run — the same config and graph for every node, one "
        "`gossip node` daemon per container — so nobody writes N services by hand.",
    )
    dsub = p.add_subparsers(dest="deploy_command", metavar="ENGINE", parser_class=_Parser)
    dsub.required = True
    for engine, help_text, out, engine_args in (
        ("compose", "docker-compose.yml, the shipped config and graph, a Prometheus scrape config", ".", _compose_args),
        ("k8s", "StatefulSet, headless Service, ConfigMap, ServiceMonitor, kustomization", "deploy/k8s", _k8s_args),
        ("slurm", "a batch script whose srun tasks are the nodes, its config and graph", "RUN_DIR/slurm", _slurm_args),
    ):
        e = dsub.add_parser(engine, help=help_text, description=f"Render {help_text} into --out.")
        _deploy_run_args(e, out, image=engine != "slurm")
        engine_args(e)
        e.set_defaults(handler=cmd_deploy)
    s = dsub.add_parser(
        "summary",
        help="summarise a run directory the nodes of a deployment wrote: summary.json and the table",
        description="Fold the nodes' records and summaries in --run-dir into summary.json and print the launcher's "
        "table (a SLURM job's last step; also for the run directory of a compose or Kubernetes run).",
    )
    _common_config_args(s)
    s.add_argument("--run-dir", metavar="DIR", required=True, help="the run directory the nodes wrote")
    s.add_argument("--wall-s", type=float, default=0.0, help="the run's wall time in seconds, for summary.json (default 0)")
    s.set_defaults(handler=cmd_deploy_summary)


def _deploy_run_args(e: argparse.ArgumentParser, out: str, *, image: bool = True) -> None:
    """What every engine takes: the run (config and its shortcuts), where to write, the image (containers), --force."""
    _common_config_args(e)
    e.add_argument("-t", "--topology", metavar="SPEC", help="ring, torus[:RxC], er[:p=P], ... or a graph file")
    e.add_argument("-n", "--nodes", type=int, help="number of nodes (needed for generated topologies)")
    e.add_argument("-r", "--rounds", type=int, help="communication rounds")
    e.add_argument("--seed", type=int, help="seed for split, init and batches")
    e.add_argument("--dataset", help="mnist1d (default), digits, synthetic, ...")
    e.add_argument("--model", help="mlp (default), cnn1d, ...")
    e.add_argument(
        "-o", "--out", metavar="DIR", default=None if out.startswith("RUN_DIR") else out, help=f"output directory (default {out})"
    )
    if image:
        e.add_argument("--image", type=_text, default="gossip:latest", help="the gossip image (default gossip:latest)")
        e.add_argument(
            "--with-package",
            type=_text,
            metavar="PATH",
            help="the nodes run the gossip image plus PATH, the plug-ins' code: a module file, a package directory, or a "
            "directory with pyproject.toml/setup.py (pip-installed); renders the Dockerfile that adds it",
        )
    e.add_argument("--force", action="store_true", help="overwrite files that differ from what would be written")


def _compose_args(e: argparse.ArgumentParser) -> None:
    e.add_argument(
        "--base-image",
        type=_text,
        default="debian:bookworm-slim",
        help="default BASE_IMAGE of the build (a registry image; without a registry build one with deploy/docker/debian-base.sh)",
    )
    e.add_argument(
        "--hold", type=hold_seconds, default=15.0, help="seconds a finished node keeps /metrics up for a last scrape (default 15)"
    )
    e.add_argument(
        "--source",
        type=_text,
        metavar="DIR",
        help="the gossip source checkout: build context and Grafana provisioning (default: this one)",
    )


def _slurm_args(e: argparse.ArgumentParser) -> None:
    e.add_argument("--run-dir", metavar="DIR", required=True, help="absolute run directory on a file system every host of the job shares")
    e.add_argument("--time", type=_text, default="01:00:00", help="the job's time limit (default 01:00:00)")
    e.add_argument("--hosts", type=int, default=0, help="hosts the job spans (#SBATCH --nodes; default: as SLURM gives)")
    e.add_argument("--tasks-per-host", type=int, default=0, help="nodes per host (#SBATCH --ntasks-per-node; default: as SLURM packs)")
    e.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per node (default 1)")
    e.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per node (default 0)")
    e.add_argument("--partition", type=_text, default="", help="the SLURM partition (default: the cluster's default)")
    e.add_argument("--account", type=_text, default="", help="the SLURM account to charge (default: the user's)")
    e.add_argument("--job-name", type=_text, default="gossip", help="the job's name (default gossip)")
    e.add_argument("--overcommit", action="store_true", help="more nodes than CPUs on a host: nodes share CPUs (sbatch --overcommit)")
    e.add_argument("--port", type=int, default=7000, help="node ports are PORT + the node's index on its host (default 7000)")
    e.add_argument(
        "--metrics-port", type=int, default=9100, help="/metrics ports are PORT + the node's index on its host; 0: none (default 9100)"
    )
    e.add_argument(
        "--gossip",
        type=_text,
        default="gossip",
        metavar="COMMAND",
        help="how every host runs gossip (default gossip; e.g. '/opt/venv/bin/python -m gossip')",
    )


def _k8s_args(e: argparse.ArgumentParser) -> None:
    e.add_argument("--name", default="gossip", help="StatefulSet and Service name; pods are NAME-0 … (default gossip)")
    e.add_argument("--cpu", type=_text, default="500m", help="CPU request per node (default 500m)")
    e.add_argument("--memory", type=_text, default="1Gi", help="memory request and limit per node (default 1Gi)")
    e.add_argument(
        "--storage",
        type=_text,
        default="1Gi",
        help="volume claim per node for results and checkpoints; '' for an emptyDir (default 1Gi)",
    )
    e.add_argument(
        "--no-curve",
        action="store_true",
        help="links in the clear: only where nothing but the run's pods can reach them (a NetworkPolicy); "
        "by default every link is encrypted and authenticated with CURVE, keys made in OUT/keys",
    )
