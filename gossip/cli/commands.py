"""What each ``gossip`` subcommand does once its flags are parsed: load the config, call the package that
does the work, print one line of outcome. User mistakes are raised as :class:`gossip.errors.UsageError`;
:func:`gossip.cli.main` turns them into ``gossip: error: ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gossip.config import check_path_text, load_config
from gossip.errors import ExitCode, GossipError, UsageError
from gossip.node.daemon import run_node
from gossip.plugins import modules


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


def cmd_launch(args: argparse.Namespace) -> int:
    if args.resume:
        given = [
            f"--{k.replace('_', '-')}"
            for k in (*_LAUNCH_FLAGS, "config", "run_dir", "base_port", "gpus", "hosts")
            if getattr(args, k, None) is not None
        ]
        given += ["--ipc"] if args.ipc else []
        given += ["--no-shared-memory"] if args.no_shared_memory else []
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
        if args.no_shared_memory:
            overrides = {**overrides, "transport.shared_memory": "false"}
        if args.gpus is not None:
            overrides = {**overrides, **_gpu_overrides(args.gpus)}
        cfg = load_config(args.config, overrides=overrides)
        if cfg.membership.enabled and (args.restart or args.ipc or args.hosts):
            flag = "--restart" if args.restart else "--ipc" if args.ipc else "--hosts"
            raise UsageError(
                f"{flag} and an open network ([membership] enabled) exclude each other: members dial tcp:// addresses, and one that "
                "dies rejoins as a new member (gossip node --join), not from a checkpoint"
            )
        result = (
            _launch_on_hosts(args, cfg)
            if args.hosts
            else _run_launcher(
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
                plugin_modules=modules(cfg.plugin_names()),
            )
        )
    if not args.no_report:
        _report_after_launch(result.run_dir, result.exit_code)
    return int(result.exit_code)


def _launch_on_hosts(args: argparse.Namespace, cfg: Any) -> Any:
    """``gossip launch --hosts``: every node a fresh interpreter on its host (no fork server here), over ssh."""
    if args.prometheus or args.ipc:
        raise UsageError(
            f"--hosts and {'--prometheus' if args.prometheus else '--ipc'} exclude each other: the nodes are on other machines"
        )
    from gossip.run.hosts import launch_on_hosts

    return launch_on_hosts(
        cfg,
        args.hosts,
        ssh_option=args.ssh_option,
        run_dir=args.run_dir,
        base_port=args.base_port or None,
        progress=False if args.no_progress else None,
        keep_going=args.keep_going,
        restarts=args.restart,
    )


def _gpu_overrides(gpus: str | tuple[int, ...]) -> dict[str, Any]:
    """``--gpus``'s config keys; ``all`` asks this machine which GPUs it has (in a subprocess: gossip.run.gpus)."""
    if gpus == "all":
        from gossip.run.gpus import gpu_inventory

        found = gpu_inventory()
        if not found:
            raise UsageError("--gpus all but this machine has no CUDA GPU (torch sees none); leave --gpus out to run on the CPU")
        gpus = tuple(g.index for g in found)
    return {"training.device": "cuda", "training.gpus": list(gpus)}


def _run_launcher(args: argparse.Namespace, run: Callable[[ModuleType], Any], plugin_modules: Sequence[str] = ()) -> Any:
    """Import the launcher (torch with it) and run it, with the fork server started first so that its own
    import of torch runs beside the launcher's — once the flags and the config
    are known to be valid, since a refused run only wastes that import."""
    from gossip.run import forkserver

    if not args.spawn:
        forkserver.warm_up(plugin_modules)
    try:
        import gossip.run.launch

        return run(gossip.run.launch)
    finally:
        forkserver.stop(kill=True)  # refused after all (a bad topology, say): at once; after a run or with --spawn: nothing to stop


def cmd_simulate(args: argparse.Namespace) -> int:
    """One process for every node; the run directory a launch leaves (config, topology, records, summary, report)."""
    from gossip.cli.churn import churn_of
    from gossip.run.experiment import experiment

    cfg = load_config(args.config, overrides=_overrides(args, _LAUNCH_FLAGS))
    if args.run_dir:
        check_path_text("--run-dir", args.run_dir)
    result = experiment(cfg, run_dir=args.run_dir or None, simulate=True, progress=True, churn=churn_of(args))
    finals = result.final("accuracy")
    if cfg.membership.enabled:  # an open network: over the members live at the end (the summary's figures too)
        finals = finals[[n.status == "finished" for n in result.summary.per_node]]
    print(
        f"mean {result.summary.metric.name} {np.nanmean(finals):.4f} ± {np.nanstd(finals):.4f} "
        f"(min {np.nanmin(finals):.4f}, max {np.nanmax(finals):.4f})"
    )
    if not args.no_report:
        _report_after_launch(result.run_dir, result.exit_code)
    return result.exit_code


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


def cmd_node(args: argparse.Namespace) -> int:
    from gossip.run.capacity import check_node_config_fits

    return run_node(args, check_fits=check_node_config_fits)


def cmd_keys(args: argparse.Namespace) -> int:
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


def _deploy_command(args: argparse.Namespace) -> str:
    import shlex

    # --force changes what is overwritten, not what is written: leave it out so the header is reproducible.
    return "gossip " + shlex.join(a for a in args.argv if a != "--force")


def render_deploy(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """The files ``gossip deploy compose|k8s|slurm`` would write, and where; writes nothing (the tests pin the shipped ones)."""
    from gossip.run.deploy import ComposeOptions, KubernetesOptions, SlurmOptions, compose_files, hold_text, kubernetes_files, slurm_files
    from gossip.run.deploy.package import user_package

    cfg = load_config(args.config, overrides=_overrides(args, _DEPLOY_FLAGS))
    if cfg.membership.enabled:
        raise UsageError(
            f"gossip deploy {args.deploy_command} starts a fixed topology; an open network ([membership] enabled) is started "
            "member by member with gossip node --join (see docs/concepts/open-membership.md)"
        )
    package = user_package(args.with_package) if getattr(args, "with_package", None) else None
    if args.deploy_command == "slurm":
        out = Path(args.out) if args.out is not None else Path(args.run_dir) / "slurm"
        slurm = SlurmOptions(
            command=_deploy_command(args),
            run_dir=args.run_dir,
            gossip=args.gossip,
            job_name=args.job_name,
            time=args.time,
            hosts=args.hosts,
            tasks_per_host=args.tasks_per_host,
            cpus_per_task=args.cpus_per_task,
            gpus_per_task=args.gpus_per_task,
            partition=args.partition,
            account=args.account,
            overcommit=args.overcommit,
            port=args.port,
            metrics_port=args.metrics_port,
        )
        return out, slurm_files(cfg, out, slurm)
    out = Path(args.out)
    if args.deploy_command == "k8s":
        k8s = KubernetesOptions(
            command=_deploy_command(args),
            name=args.name,
            image=args.image,
            cpu=args.cpu,
            memory=args.memory,
            storage=args.storage,
            curve=not args.no_curve,
            package=package,
        )
        return out, kubernetes_files(cfg, k8s, out)
    compose = ComposeOptions(
        command=_deploy_command(args), image=args.image, base_image=args.base_image, hold=hold_text(args.hold), package=package
    )
    return out, compose_files(cfg, out, Path(args.source) if args.source else None, compose)


def cmd_deploy(args: argparse.Namespace) -> int:
    from gossip.run.deploy import make_missing_keys, write_files

    out, files = render_deploy(args)
    written = write_files(out, files, force=args.force)
    nxt = {
        "compose": f"cd {out} && docker-compose up -d",
        "k8s": f"kubectl apply -k {out}",
        "slurm": f"sbatch {out.resolve() / 'gossip.sbatch'}",
    }[args.deploy_command]
    print(f"gossip: {len(written)} file(s) written under {out}; next: {nxt}")
    if args.deploy_command == "k8s" and not args.no_curve:
        keys = out / "keys"
        made = make_missing_keys(keys, files)
        if made:
            print(f"gossip: CURVE key pairs for {len(made)} node(s) written to {keys} (secret keys: keep them out of version control)")
    return 0


def cmd_deploy_summary(args: argparse.Namespace) -> int:
    """A deployment's run directory folded into ``summary.json`` and the launcher's table (``gossip launch`` does it itself)."""
    from gossip.errors import RunDirError
    from gossip.run.tally import format_table, summarise
    from gossip.topology import topology_of

    cfg = load_config(args.config, overrides=_overrides(args, {}))
    run_dir = Path(args.run_dir)
    if not (run_dir / "nodes").is_dir():
        raise RunDirError(f"{run_dir}: no nodes/ directory, so no node of this run wrote anything")
    summary = summarise(run_dir, topology_of(cfg), cfg, args.wall_s)
    summary.write(run_dir / "summary.json")
    print(format_table(summary))
    print(f"gossip: wrote {run_dir / 'summary.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gossip.results.report import write_report

    for path in write_report(args.run_dir, args.output):
        print(path)
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
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


def cmd_topology_show(args: argparse.Namespace) -> int:
    from gossip.topology import DESCRIBE_MAX_NODES, describe, draw, parse_spec

    topo = parse_spec(args.spec, n=args.nodes, seed=args.seed)
    print(describe(topo, args.weights))
    if not args.no_draw:
        out = Path(args.output) if args.output else Path(f"{topo.name}.png")
        gap = f"spectral gap {topo.spectral_gap(args.weights):.4f}, " if topo.n <= DESCRIBE_MAX_NODES else ""
        draw(topo, out, title=f"{topo.name}  ({gap}{args.weights})")
        print(f"drawing: {out}")
    return 0
