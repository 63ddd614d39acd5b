"""``gossip deploy``: compose and Kubernetes files for any topology and size, validated offline.

Kubernetes manifests are checked against the real API schemas bundled by ``kubernetes-validate``
(strict: unknown fields fail) for the oldest and newest versions it ships. The ServiceMonitor is a CRD
those schemas do not cover: its metadata and selector are checked against the real ObjectMeta and
LabelSelector schemas (embedded in a ConfigMap and a PodDisruptionBudget), and its endpoint against
the Service it selects. The shipped example files are pinned: rendering them again changes nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gossip import cli
from gossip.config import load_config
from gossip.errors import UsageError
from gossip.node import daemon
from gossip.run.deploy import ComposeOptions, KubernetesOptions, prepare, render_compose, render_kubernetes
from gossip.run.deploy.compose import compose_address_template
from gossip.run.deploy.kubernetes import k8s_address_template
from gossip.topology import load
from tests.conftest import REPO

K8S_VERSIONS = ("1.25.0", "1.37.0")  # the oldest and newest schemas kubernetes-validate bundles
SIZES = [(4, "ring"), (16, "torus:4x4"), (64, "exponential")]


def _config(n: int, spec: str, **extra: Any) -> Any:
    return load_config(env={}, overrides={"run.nodes": n, "topology.spec": spec, "training.rounds": 5, **extra})


def _load_container_config(text: str, topology_text: str, tmp_path: Path) -> Any:
    """The rendered config as a node would load it, with the mounted graph file at a local path."""
    graph = tmp_path / "topology.json"
    graph.write_text(topology_text)
    (tmp_path / "config.toml").write_text(text)
    return load_config(tmp_path / "config.toml", env={}, overrides={"topology.spec": str(graph)})


@pytest.mark.parametrize(("n", "spec"), SIZES)
def test_compose_has_one_service_per_node_named_as_its_peers_dial_it(tmp_path: Path, n: int, spec: str) -> None:
    """N node services whose names are the DNS names in the config's address template, each with its own id;
    the config and graph they mount describe the same N-node graph; Prometheus scrapes every node."""
    run = prepare(_config(n, spec), compose_address_template())
    files = render_compose(run, ComposeOptions(command="gossip deploy compose"))
    compose = yaml.safe_load(files["docker-compose.yml"])
    nodes = [s for s in compose["services"] if s.startswith("node-")]
    assert nodes == [f"node-{i}" for i in range(n)]
    cfg = _load_container_config(files["deploy/compose/gossip/config.toml"], files["deploy/compose/gossip/topology.json"], tmp_path)
    for i in range(n):
        service = compose["services"][f"node-{i}"]
        assert service["command"][service["command"].index("--id") + 1] == str(i)
        assert cfg.transport.address_of(i) == f"tcp://node-{i}:7000"
        assert cfg.metrics.port_of(i) == 9100
    assert cfg.transport.listen_address(0) == "tcp://0.0.0.0:7000" and cfg.metrics.host == "0.0.0.0"
    assert load(tmp_path / "topology.json").edges == run.topology.edges
    prom = yaml.safe_load(files["deploy/compose/prometheus.yml"])
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [f"node-{i}:9100" for i in range(n)]
    assert compose["services"]["grafana"]["profiles"] == ["grafana"]


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    """docker-compose itself accepts a rendered 16-node project (schema, interpolation, profiles)."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run `bash deploy/system-deps.sh`")
    assert cli.main(["deploy", "compose", "-t", "torus:4x4", "-n", "16", "--out", str(tmp_path), "--source", str(REPO)]) == 0
    compose = ["docker-compose", "-f", str(tmp_path / "docker-compose.yml"), "config"]
    check = subprocess.run([*compose, "-q"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    services = subprocess.run([*compose, "--services"], capture_output=True, text=True, timeout=60)
    assert sorted(services.stdout.split()) == sorted([f"node-{i}" for i in range(16)] + ["prometheus", "grafana"])


def _validate(doc: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(("n", "spec"), SIZES)
def test_kubernetes_manifests_pass_the_real_schemas(tmp_path: Path, n: int, spec: str) -> None:
    """StatefulSet, Service and ConfigMap validate strictly against Kubernetes 1.25 and 1.37; the StatefulSet
    has N replicas started in parallel, probes on /healthz and /readyz, and pods whose ordinal is the node id."""
    run = prepare(_config(n, spec), k8s_address_template("gossip"))
    files = render_kubernetes(run, KubernetesOptions(command="gossip deploy k8s"))
    docs = {name: yaml.safe_load(text) for name, text in files.items()}
    for name in ("configmap.yaml", "service.yaml", "statefulset.yaml"):
        _validate(docs[name])
    sts = docs["statefulset.yaml"]["spec"]
    assert sts["replicas"] == n and sts["podManagementPolicy"] == "Parallel" and sts["serviceName"] == "gossip"
    container = sts["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--id") + 1] == "hostname"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sts["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    service = docs["service.yaml"]["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    data = docs["configmap.yaml"]["data"]
    cfg = _load_container_config(data["config.toml"], data["topology.json"], tmp_path)
    assert cfg.transport.address_of(n - 1) == f"tcp://gossip-{n - 1}.gossip:7000"
    assert load(tmp_path / "topology.json").n == n


def test_servicemonitor_selects_the_service_and_its_metrics_port() -> None:
    """What of the ServiceMonitor can be checked offline is: ObjectMeta and LabelSelector against the real
    schemas, and that it selects the Service's labels and names a port the Service has."""
    run = prepare(_config(4, "ring"), k8s_address_template("gossip"))
    files = render_kubernetes(run, KubernetesOptions(command="gossip deploy k8s"))
    monitor = yaml.safe_load(files["servicemonitor.yaml"])
    service = yaml.safe_load(files["service.yaml"])
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    _validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": monitor["metadata"]})
    _validate(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "x"},
            "spec": {"maxUnavailable": 1, "selector": monitor["spec"]["selector"]},
        }
    )
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert set(monitor["spec"]["endpoints"][0]) == {"port", "path", "interval"}


def test_a_broken_manifest_is_caught_by_the_validator() -> None:
    """The validation above can fail: an unknown field in the StatefulSet is refused in strict mode."""
    run = prepare(_config(4, "ring"), k8s_address_template("gossip"))
    sts = yaml.safe_load(render_kubernetes(run, KubernetesOptions(command="x"))["statefulset.yaml"])
    sts["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)


def test_kustomize_builds_the_shipped_manifests(tmp_path: Path) -> None:
    """`kubectl kustomize` (offline) of the shipped deploy/k8s, once its CURVE keys are made, yields exactly
    the ConfigMap, Service and StatefulSet files, plus the keys' Secret that the pods mount (by the
    hashed name kustomize gives it)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (needed to check the kustomization offline)")
    k8s = tmp_path / "k8s"
    shutil.copytree(REPO / "deploy" / "k8s", k8s, ignore=shutil.ignore_patterns("keys"))
    assert cli.main(["keys", "--nodes", "4", "--out", str(k8s / "keys")]) == 0
    out = subprocess.run([kubectl, "kustomize", str(k8s)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    built = {d["kind"]: d for d in yaml.safe_load_all(out.stdout)}
    shipped = {
        d["kind"]: d
        for name in ("configmap.yaml", "service.yaml", "statefulset.yaml")
        for d in [yaml.safe_load((REPO / "deploy" / "k8s" / name).read_text())]
    }
    secret = built.pop("Secret")
    assert sorted(secret["data"]) == sorted(f"node-{i}.{kind}" for i in range(4) for kind in ("key", "key_secret"))
    volume = next(v for v in built["StatefulSet"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"] != "gossip-keys"  # hashed: new keys roll the pods
    volume["secret"]["secretName"] = "gossip-keys"
    assert built == shipped


def test_kubernetes_runs_curve_by_default_with_keys_made_once(tmp_path: Path) -> None:
    """`gossip deploy k8s` turns CURVE on (keys read from the mounted Secret), makes each node's key pair
    once (secret keys 0600, the directory ignoring itself for git), keeps them on a second render, and
    adds only the missing ones when the run grows; the node loads them."""
    from gossip.net.zeromq import load_keys
    from gossip.run.deploy.common import KEYS_DIR

    args = ["deploy", "k8s", "-t", "ring", "-n", "4", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    configmap = yaml.safe_load((tmp_path / "configmap.yaml").read_text())
    (tmp_path / "cfg").mkdir()
    cfg = _load_container_config(configmap["data"]["config.toml"], configmap["data"]["topology.json"], tmp_path / "cfg")
    assert cfg.security.curve and cfg.security.keys_dir == KEYS_DIR
    pod = yaml.safe_load((tmp_path / "statefulset.yaml").read_text())["spec"]["template"]["spec"]
    assert {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True} in pod["containers"][0]["volumeMounts"]
    keys = tmp_path / "keys"
    first = {p.name: p.read_bytes() for p in keys.glob("node-*")}
    assert len(first) == 8 and all((keys / f"node-{i}.key_secret").stat().st_mode & 0o777 == 0o600 for i in range(4))
    assert (keys / ".gitignore").read_text().splitlines()[-1] == "*"
    assert cli.main(args) == 0
    assert {p.name: p.read_bytes() for p in keys.glob("node-*")} == first
    assert cli.main([*args, "-n", "6", "--force"]) == 0
    now = {p.name: p.read_bytes() for p in keys.glob("node-*")}
    assert len(now) == 12 and all(now[name] == data for name, data in first.items())
    assert load_keys(keys, 5, [0, 4]).peers[0] == load_keys(keys, 1, [0]).peers[0]


def test_kubernetes_without_curve_has_no_keys(tmp_path: Path) -> None:
    """`--no-curve` (links in the clear, for a namespace a NetworkPolicy closes): no Secret, no keys made."""
    assert cli.main(["deploy", "k8s", "-t", "ring", "-n", "4", "--no-curve", "--out", str(tmp_path)]) == 0
    assert "secretGenerator" not in yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert "keys" not in (tmp_path / "statefulset.yaml").read_text()
    assert not (tmp_path / "keys").exists()
    configmap = yaml.safe_load((tmp_path / "configmap.yaml").read_text())
    assert "curve = false" in configmap["data"]["config.toml"]


def _header_command(path: Path) -> list[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Generated by: gossip "), first
    return shlex.split(first.removeprefix("# Generated by: gossip "))


@pytest.mark.parametrize(
    ("target", "engine_files"),
    [
        (
            "docker-compose.yml",
            [
                "docker-compose.yml",
                "deploy/compose/gossip/config.toml",
                "deploy/compose/gossip/topology.json",
                "deploy/compose/prometheus.yml",
            ],
        ),
        (
            "deploy/k8s/statefulset.yaml",
            ["configmap.yaml", "service.yaml", "statefulset.yaml", "servicemonitor.yaml", "kustomization.yaml"],
        ),
    ],
)
def test_shipped_examples_are_exactly_what_the_command_renders(
    monkeypatch: pytest.MonkeyPatch, target: str, engine_files: list[str]
) -> None:
    """The committed docker-compose.yml and deploy/k8s/ are the output of the command in their header, byte for byte."""
    monkeypatch.chdir(REPO)
    argv = _header_command(REPO / target)
    args = cli.build_parser().parse_args(argv)
    args.argv = argv
    out, files = cli.render_deploy(args)
    assert sorted(files) == sorted(engine_files)
    for rel, text in files.items():
        assert (out / rel).read_text() == text, f"{out / rel} differs from `gossip {shlex.join(argv)}`; render it again"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compose", "-t", "rnig", "-n", "4"), "unknown topology 'rnig'"),
        (("compose", "-t", "ring"), "needs --nodes"),
        (("k8s", "-t", "ring", "-n", "4", "--dataset", "mnsit"), "unknown dataset 'mnsit'"),
        (("k8s", "-t", "ring", "-n", "4", "--name", "Gossip_Nodes"), "--name 'Gossip_Nodes'"),
        (("k8s", "-t", "ring", "-n", "4", "--set", "training.lrr=1"), "unknown key 'lrr'"),
        (("compose", "-t", "ring", "-n", "4", "--source", "{tmp}"), "not a gossip source checkout"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    """Each mistake ends in one line on stderr and exit code 2, and nothing is written."""
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    try:
        code = cli.main(["deploy", *argv, "--out", str(out)])
    except SystemExit as exc:  # argparse errors exit from inside main
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_rendering_never_clobbers_a_changed_file_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second render is a no-op; a hand-edited file stops the render (nothing written) until --force."""
    args = ["deploy", "k8s", "-t", "ring", "-n", "4", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert cli.main(args) == 0 and "0 file(s) written" in capsys.readouterr().out
    sts = tmp_path / "statefulset.yaml"
    sts.write_text(sts.read_text() + "# edited\n")
    assert cli.main([*args, "-n", "8"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert "replicas: 4" in sts.read_text()
    assert cli.main([*args, "-n", "8", "--force"]) == 0
    assert "replicas: 8" in sts.read_text()


def test_statefulset_pods_take_their_id_from_the_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--id hostname` turns the pod name gossip-12 into node 12 and refuses a name without a number."""
    monkeypatch.setattr("socket.gethostname", lambda: "gossip-12")
    assert daemon.node_id_of("hostname") == 12
    monkeypatch.setattr("socket.gethostname", lambda: "gossip")
    with pytest.raises(UsageError, match="does not end in a number"):
        daemon.node_id_of("hostname")


def test_make_missing_keys_refuses_half_a_key_pair(tmp_path: Path) -> None:
    """A public key without its secret (or the reverse) is refused by name, not overwritten: pods may be using it."""
    from gossip.run.deploy import make_missing_keys

    files = render_kubernetes(prepare(_config(3, "ring"), k8s_address_template("gossip"), curve=True), KubernetesOptions(command="t"))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "node-1.key").write_text("public only")

    with pytest.raises(UsageError, match="half of node-1's key pair"):
        make_missing_keys(keys, files)

    assert (keys / "node-1.key").read_text() == "public only"


def test_compose_files_default_to_this_checkout_relative_to_the_output(tmp_path: Path) -> None:
    """Without a source, the project builds from the checkout gossip runs from, named relative to the output directory."""
    from gossip.run.deploy import compose_files

    out = tmp_path / "out"
    out.mkdir()

    files = compose_files(_config(3, "ring"), out, None, ComposeOptions(command="t"))

    context = yaml.safe_load(files["docker-compose.yml"])["services"]["node-0"]["build"]["context"]
    assert (out / context).resolve() == REPO.resolve()


def test_manifests_with_gpus_and_a_plug_in_package_pass_the_real_schemas(tmp_path: Path) -> None:
    """``gossip deploy k8s --with-package examples/geomedian.py`` for a run on GPUs: the StatefulSet (package image,
    ``nvidia.com/gpu`` limit), Service and ConfigMap validate strictly against every Kubernetes version we target."""
    out = tmp_path / "k"
    argv = ["deploy", "k8s", "-t", "ring", "-n", "4", "--out", str(out), "--with-package", str(REPO / "examples" / "geomedian.py")]
    argv += ["--set", "aggregation.rule=geomedian:GeoMedian", "--set", "training.device=cuda", "--set", "training.gpus=[0,1]"]
    assert cli.main(argv) == 0
    for name in ("configmap.yaml", "service.yaml", "statefulset.yaml"):
        _validate(yaml.safe_load((out / name).read_text()))
    container = yaml.safe_load((out / "statefulset.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and "geomedian" in container["image"]
