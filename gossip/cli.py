"""The ``gossip`` console script: parse arguments, load config, hand over. No logic of its own.

Every user mistake (bad flag, bad config, unknown topology or dataset, port in use) ends as one line
``gossip: error: ...`` on stderr and exit code 2 — never a traceback. A socket or file error while a
node runs is one line too, but exit 1: a runtime failure, which a restart may cure. Anything else is a
bug and keeps its traceback. The exit codes are :class:`gossip.errors.ExitCode`'s table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from gossip.config import MAX_NODES, MAX_SEED, check_path_text, load_config
from gossip.errors import ExitCode, GossipError, UsageError, error_text, one_line
from gossip.node.daemon import add_node_arguments, exit_without_teardown, hold_seconds, run_node

__all__ = ["main"]


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
    p.add_argument("--dataset", help="mnist1d (default), digits, mnist, cifar10, synthetic")
    p.add_argument("--data-root", metavar="DIR", help="directory of file-based datasets (mnist IDX files, cifar10 batches)")
    p.add_argument("--partition", choices=["iid", "dirichlet", "shards"], help="how data is split across nodes")
    p.add_argument("--alpha", type=float, help="Dirichlet concentration (smaller = more skewed)")
    p.add_argument("--model", help="mlp (default), mlpbn, cnn1d, cnn, logreg, vector")
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
    p.add_argument(
        "--ipc",
        action="store_true",
        help="nodes talk over Unix-domain sockets (ZeroMQ ipc://) instead of loopback TCP: less CPU per model moved on "
        "one machine; TCP (the default) is what a real network does",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--prometheus", action="store_true", help="run a Prometheus server (the binary on PATH) scraping the nodes; prints its URL"
    )
    p.add_argument(
        "--prometheus-port", type=_int_in(0, 65535), default=0, metavar="PORT", help="port of that Prometheus (default: a free port)"
    )
    p.add_argument("--no-report", action="store_true", help="do not write the PNG/Markdown report (RUN_DIR/report) at the end")
    _launch_control_args(p)
    p.set_defaults(handler=_cmd_launch)


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
        description="Run the configured D-SGD with all N models in one process (vmap over the models, one "
        "matrix product per mixing step). Same config, same batches, same initialisation as gossip launch, "
        "so the accuracy curve is the same; writes a run directory of the same layout.",
    )
    _common_config_args(p)
    _launch_like_args(p)
    p.add_argument("--run-dir", metavar="DIR", help="exact run directory (must not exist or be empty)")
    p.set_defaults(handler=_cmd_simulate)


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
    p.set_defaults(handler=_cmd_node)


def _keys_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="generate CURVE key pairs for the nodes of a run",
        description="Write node-<i>.key (public) and node-<i>.key_secret (mode 0600) for every node: "
        "ZeroMQ certificates for [security] curve = true. Give each node its own secret and every public key.",
    )
    p.add_argument("-n", "--nodes", type=_int_in(1, MAX_NODES), required=True, help="number of nodes")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="directory to write the keys into (must not hold keys already)")
    p.set_defaults(handler=_cmd_keys)


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
    show.set_defaults(handler=_cmd_topology_show)


def _report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="plot a run: accuracy, loss, consensus, bytes, topology; Markdown summary",
        description="Write PNG plots (accuracy and loss per node with the mean, consensus distance, bytes on the wire, "
        "the topology coloured by final accuracy, honest vs attacker nodes for Byzantine runs) and report.md for a run directory.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by gossip launch")
    p.add_argument("-o", "--output", metavar="DIR", help="where to write the report (default: RUN_DIR/report)")
    p.set_defaults(handler=_cmd_report)


def _dashboards_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboards",
        help="regenerate the Grafana dashboards and Prometheus configs/rules under deploy/",
        description="Write the generated observability files (deploy/grafana/dashboards/*.json, deploy/prometheus/*.yml and "
        "deploy/prometheus/rules/*.yml) from the code that defines them (gossip/ops/dashboards.py, gossip/ops/prometheus.py, gossip/ops/alerts.py).",
    )
    p.add_argument("--deploy-dir", metavar="DIR", default="deploy", help="the deploy/ directory to write into (default: ./deploy)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is missing or out of date")
    p.set_defaults(handler=_cmd_dashboards)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossip`` console script; returns the exit code.

    A node process (``gossip node`` as the process's own command, ``argv`` not given) ends without the
    interpreter's teardown: see :func:`gossip.node.daemon.exit_without_teardown`.
    """
    whole_process = argv is None
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    code = _run(args)
    if whole_process and args.handler is _cmd_node:
        exit_without_teardown(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except GossipError as exc:
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        if exc.filename is None:
            raise
        # a path the user named (an output directory under /proc, a file where a directory goes, no
        # permission, a full disk): theirs or their machine's to fix, one line like every other mistake
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("gossip: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _overrides(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[key.strip()] = value.strip()
    for attr, dotted in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            out[dotted] = value
    return out


_LAUNCH_FLAGS = {
    "nodes": "run.nodes",
    "topology": "topology.spec",
    "rounds": "training.rounds",
    "weights": "topology.weights",
    "dataset": "data.dataset",
    "data_root": "data.root",
    "partition": "data.partition",
    "alpha": "data.alpha",
    "model": "model.name",
    "lr": "training.lr",
    "local_steps": "training.local_steps",
    "batch_size": "data.batch_size",
    "seed": "run.seed",
    "name": "run.name",
}


def _cmd_launch(args: argparse.Namespace) -> int:
    if args.resume:
        given = [
            f"--{k.replace('_', '-')}" for k in (*_LAUNCH_FLAGS, "config", "run_dir", "base_port") if getattr(args, k, None) is not None
        ]
        given += ["--ipc"] if args.ipc else []
        if given or args.overrides:
            raise UsageError(f"--resume takes the run's own config; drop {', '.join(given or ['--set'])}")
        result = _run_launcher(
            args,
            lambda launching: launching.resume(
                Path(args.resume),
                progress=False if args.no_progress else None,
                keep_going=args.keep_going,
                restarts=args.restart,
                spawn=args.spawn,
            ),
        )
    else:
        overrides = _overrides(args, _LAUNCH_FLAGS)
        if args.ipc:
            if args.base_port is not None:
                raise UsageError("--ipc and --base-port exclude each other: ipc sockets have no ports")
            overrides = {**overrides, "transport.address_template": "ipc://"}
        cfg = load_config(args.config, overrides=overrides)
        result = _run_launcher(
            args,
            lambda launching: launching.launch(
                cfg,
                run_dir=args.run_dir,
                base_port=args.base_port or None,
                progress=False if args.no_progress else None,
                prometheus=args.prometheus,
                prometheus_port=args.prometheus_port,
                keep_going=args.keep_going,
                restarts=args.restart,
                spawn=args.spawn,
            ),
        )
    if not args.no_report:
        _report_after_launch(result.run_dir, result.exit_code)
    return int(result.exit_code)


def _run_launcher(args: argparse.Namespace, run: Callable[[ModuleType], Any]) -> Any:
    """Import the launcher (torch with it) and run it, with the fork server started first so that its own
    import of torch runs beside the launcher's (~1.3 s each, on two cores) — once the flags and the config
    are known to be valid, since a refused run only wastes that import."""
    from gossip.run import forkserver

    if not args.spawn:
        forkserver.warm_up()
    try:
        import gossip.run.launch

        return run(gossip.run.launch)
    finally:
        forkserver.stop(kill=True)  # refused after all (a bad topology, say): at once; after a run or with --spawn: nothing to stop


def _cmd_simulate(args: argparse.Namespace) -> int:
    import time as _time

    from gossip.run.simulate import simulate

    cfg = load_config(args.config, overrides=_overrides(args, _LAUNCH_FLAGS))
    if args.run_dir:
        check_path_text("--run-dir", args.run_dir)
    run_dir = Path(args.run_dir) if args.run_dir else cfg.run.directory(f"{_time.strftime('%Y%m%d-%H%M%S')}-simulated")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {run_dir} already exists and is not empty; choose another --run-dir or --name")
    result = simulate(cfg, run_dir=run_dir)
    print(f"gossip: simulated {len(result.accuracy)} nodes in {result.wall_s:.1f} s; run directory {run_dir}", file=sys.stderr)
    print(
        f"mean accuracy {result.accuracy.mean():.4f} ± {result.accuracy.std():.4f} (min {result.accuracy.min():.4f}, max {result.accuracy.max():.4f})"
    )
    return 0


def _report_after_launch(run_dir: Path, exit_code: int) -> None:
    """The report of a finished (or failed) run; after Ctrl-C (or SIGTERM), only how to make it: the user wants out."""
    if exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        print(f"gossip: report skipped; write it with: gossip report {run_dir}", file=sys.stderr)
        return
    from gossip.results.report import write_report

    try:
        paths = write_report(run_dir)
    except GossipError as exc:  # e.g. no node got to record a round: the run's own error says why
        print(f"gossip: no report: {exc}", file=sys.stderr)
        return
    print(f"gossip: report {paths[-1]}", file=sys.stderr)


def _cmd_node(args: argparse.Namespace) -> int:
    from gossip.run.capacity import check_node_config_fits

    return run_node(args, check_fits=check_node_config_fits)


def _cmd_keys(args: argparse.Namespace) -> int:
    from gossip.net.zeromq import generate_keys

    out = Path(args.out)
    if out.exists() and any(out.glob("node-*.key*")):
        raise UsageError(f"{out} already holds node keys; refusing to overwrite them (choose another --out)")
    files = generate_keys(out, args.nodes)
    print(f"wrote {len(files)} key files for {args.nodes} nodes to {out}")
    return 0


_DEPLOY_FLAGS = {
    "nodes": "run.nodes",
    "topology": "topology.spec",
    "rounds": "training.rounds",
    "seed": "run.seed",
    "dataset": "data.dataset",
    "model": "model.name",
}


def _deploy_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deploy",
        help="render Docker Compose or Kubernetes files for a run of any size",
        description="Render the deployment files of one run — the same config and graph for every node, one "
        "`gossip node` daemon per container — so nobody writes N services by hand.",
    )
    dsub = p.add_subparsers(dest="deploy_command", metavar="ENGINE", parser_class=_Parser)
    dsub.required = True
    for engine, help_text, out, engine_args in (
        ("compose", "docker-compose.yml, the shipped config and graph, a Prometheus scrape config", ".", _compose_args),
        ("k8s", "StatefulSet, headless Service, ConfigMap, ServiceMonitor, kustomization", "deploy/k8s", _k8s_args),
    ):
        e = dsub.add_parser(engine, help=help_text, description=f"Render {help_text} into --out.")
        _deploy_run_args(e, out)
        engine_args(e)
        e.set_defaults(handler=_cmd_deploy)


def _deploy_run_args(e: argparse.ArgumentParser, out: str) -> None:
    """What every engine takes: the run (config and its shortcuts), where to write, the image, --force."""
    _common_config_args(e)
    e.add_argument("-t", "--topology", metavar="SPEC", help="ring, torus[:RxC], er[:p=P], ... or a graph file")
    e.add_argument("-n", "--nodes", type=int, help="number of nodes (needed for generated topologies)")
    e.add_argument("-r", "--rounds", type=int, help="communication rounds")
    e.add_argument("--seed", type=int, help="seed for split, init and batches")
    e.add_argument("--dataset", help="mnist1d (default), digits, synthetic, ...")
    e.add_argument("--model", help="mlp (default), cnn1d, ...")
    e.add_argument("-o", "--out", metavar="DIR", default=out, help=f"output directory (default {out})")
    e.add_argument("--image", type=_text, default="gossip:latest", help="the gossip image (default gossip:latest)")
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


def _deploy_command(args: argparse.Namespace) -> str:
    import shlex

    # --force changes what is overwritten, not what is written: leave it out so the header is reproducible.
    return "gossip " + shlex.join(a for a in args.argv if a != "--force")


def render_deploy(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """The files ``gossip deploy compose|k8s`` would write, and where; writes nothing (the tests pin the shipped ones)."""
    from gossip.run.deploy import ComposeOptions, KubernetesOptions, compose_files, hold_text, kubernetes_files

    out = Path(args.out)
    cfg = load_config(args.config, overrides=_overrides(args, _DEPLOY_FLAGS))
    if args.deploy_command == "k8s":
        k8s = KubernetesOptions(
            command=_deploy_command(args),
            name=args.name,
            image=args.image,
            cpu=args.cpu,
            memory=args.memory,
            storage=args.storage,
            curve=not args.no_curve,
        )
        return out, kubernetes_files(cfg, k8s)
    compose = ComposeOptions(command=_deploy_command(args), image=args.image, base_image=args.base_image, hold=hold_text(args.hold))
    return out, compose_files(cfg, out, Path(args.source) if args.source else None, compose)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from gossip.run.deploy import make_missing_keys, write_files

    out, files = render_deploy(args)
    written = write_files(out, files, force=args.force)
    nxt = f"cd {out} && docker-compose up -d" if args.deploy_command == "compose" else f"kubectl apply -k {out}"
    print(f"gossip: {len(written)} file(s) written under {out}; next: {nxt}")
    if args.deploy_command == "k8s" and not args.no_curve:
        keys = out / "keys"
        made = make_missing_keys(keys, files)
        if made:
            print(f"gossip: CURVE key pairs for {len(made)} node(s) written to {keys} (secret keys: keep them out of version control)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from gossip.results.report import write_report

    for path in write_report(args.run_dir, args.output):
        print(path)
    return 0


def _cmd_dashboards(args: argparse.Namespace) -> int:
    from gossip.ops.generated import stale_files, write_generated

    deploy = Path(args.deploy_dir)
    if not deploy.is_dir():
        raise UsageError(f"--deploy-dir {deploy}: no such directory (run from the repository root, or pass the deploy/ path)")
    if args.check:
        stale = stale_files(deploy)
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        if stale:
            print("gossip: regenerate with: gossip dashboards", file=sys.stderr)
        return 1 if stale else 0
    written = write_generated(deploy)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"gossip: every generated file under {deploy} is up to date")
    return 0


def _cmd_topology_show(args: argparse.Namespace) -> int:
    from gossip.topology import DESCRIBE_MAX_NODES, describe, draw, parse_spec

    topo = parse_spec(args.spec, n=args.nodes, seed=args.seed)
    print(describe(topo, args.weights))
    if not args.no_draw:
        out = Path(args.output) if args.output else Path(f"{topo.name}.png")
        gap = f"spectral gap {topo.spectral_gap(args.weights):.4f}, " if topo.n <= DESCRIBE_MAX_NODES else ""
        draw(topo, out, title=f"{topo.name}  ({gap}{args.weights})")
        print(f"drawing: {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
