"""The Python API's pieces that start no process: ``gossip.configure``, a run's records as arrays, progress lines."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

import gossip
from gossip.errors import ConfigError
from gossip.results.records import RunRecords
from gossip.results.rundir import NodeFiles, RecordWriter
from gossip.run.progress import ProgressBar


def test_configure_lays_dotted_keys_over_a_config_like_set() -> None:
    """Strings are parsed as ``--set`` values, typed values are taken as they are, other keys keep theirs."""
    base = gossip.RunConfig().replace(training={"rounds": 7})
    cfg = gossip.configure(
        base, {"aggregation.rule": "median", "run.seed": 2, "byzantine.nodes": "[4]", "byzantine.attack": "sign-flip", "training.lr": "0.5"}
    )
    assert (cfg.aggregation.rule, cfg.run.seed, cfg.byzantine.nodes, cfg.training.lr) == ("median", 2, (4,), 0.5)
    assert cfg.training.rounds == 7


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"training.lrr": 0.1}, "unknown key 'lrr' in [training]; did you mean 'lr'?"),
        ({"trainig.lr": 0.1}, "unknown section [trainig]; did you mean 'training'?"),
        ({"training.lr": -1}, "[training] lr must be"),
        ({"lr": 0.1}, "expected section.key=value"),
    ],
)
def test_a_bad_setting_is_one_config_error_naming_it(settings: dict[str, object], message: str) -> None:
    """A wrong key, section or value raises ConfigError (the CLI's one ``gossip: error:`` line), nothing else."""
    with pytest.raises(ConfigError) as info:
        gossip.configure(gossip.RunConfig(), settings)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def _write_records(run_dir: Path, rows: dict[int, list[dict[str, object]]]) -> None:
    for node, records in rows.items():
        writer = RecordWriter(NodeFiles(run_dir, node).records)
        for r in records:
            writer.write({"node": node, **r})
        writer.close()


def test_records_array_is_nodes_by_rounds_with_nan_where_nothing_was_recorded(tmp_path: Path) -> None:
    """Node 0 evaluated in round 1 only; node 1 died after round 0; node 2 left no file: the array keeps the
    config's shape (3 nodes, 3 rounds) and holds NaN for every gap."""
    _write_records(
        tmp_path,
        {
            0: [{"round": 0, "loss": 2.0, "accuracy": None}, {"round": 1, "loss": 1.5, "accuracy": 0.5}, {"round": 2, "loss": 1.0}],
            1: [{"round": 0, "loss": 3.0, "accuracy": 0.25}],
        },
    )
    records = RunRecords.read(tmp_path, nodes=3, rounds=3)
    accuracy = records.array("accuracy")
    assert accuracy.shape == (3, 3)
    np.testing.assert_array_equal(accuracy, [[np.nan, 0.5, np.nan], [0.25, np.nan, np.nan], [np.nan] * 3])
    np.testing.assert_array_equal(records.last("accuracy"), [0.5, 0.25, np.nan])
    assert [(r.round, r.loss, r.accuracy) for r in records.of(0)] == [(0, 2.0, None), (1, 1.5, 0.5), (2, 1.0, None)]
    assert len(records) == 4 and records.of(2) == ()


def test_records_refuse_a_field_no_record_holds_a_number_in(tmp_path: Path) -> None:
    """``array("acuracy")`` is a KeyError naming the numeric fields there are, not an array of NaN."""
    _write_records(tmp_path, {0: [{"round": 0, "loss": 2.0, "missing": [1]}]})
    records = RunRecords.read(tmp_path, nodes=1, rounds=1)
    assert records.keys() == ("loss",)
    with pytest.raises(KeyError, match="numeric fields: loss"):
        records.array("acuracy")
    with pytest.raises(KeyError):
        records.array("missing")  # a list, not a number


def test_records_frame_without_pandas_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas is not a dependency: without it, ``frame()`` is an ImportError that says what to install and the alternative."""
    _write_records(tmp_path, {0: [{"round": 0, "loss": 2.0}]})
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError, installed or not
    with pytest.raises(ImportError, match=r"pip install pandas \(or use .array\(key\)\)"):
        RunRecords.read(tmp_path, nodes=1, rounds=1).frame()


def test_records_frame_has_one_row_per_record(tmp_path: Path) -> None:
    """With pandas installed: columns node, round and every numeric field; NaN where a record has none."""
    pd = pytest.importorskip("pandas")
    _write_records(tmp_path, {0: [{"round": 0, "loss": 2.0, "accuracy": None}], 1: [{"round": 0, "loss": 1.0, "accuracy": 0.5}]})
    frame = RunRecords.read(tmp_path, nodes=2, rounds=1).frame()
    assert list(frame.columns) == ["node", "round", "loss", "accuracy"]
    assert frame["accuracy"].isna().tolist() == [True, False]
    assert isinstance(frame, pd.DataFrame)


class _Stream(io.StringIO):
    """A text stream that is (or is not) a terminal; a Jupyter kernel's stderr is not one."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_off_a_terminal_is_a_plain_line_every_tenth_of_the_rounds() -> None:
    """40 rounds drawn one by one on a non-terminal stream: the first round's line, then one per 4 rounds, no carriage return."""
    out = _Stream(tty=False)
    bar = ProgressBar(40, 5, True, out)
    for t in range(1, 41):
        bar.show(t, 0.5 if t >= 4 else None, 0.1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[2] for line in lines] == ["1/40"] + [f"{4 * k}/40" for k in range(1, 11)]
    assert lines[0] == "gossip: round 1/40  mean accuracy -  consensus distance 0.1"
    assert lines[1] == "gossip: round 4/40  mean accuracy 0.500  consensus distance 0.1"


def test_progress_on_a_terminal_redraws_one_line_and_disabled_draws_nothing() -> None:
    """A terminal gets ``\\r`` redraws and one final newline; ``enabled=False`` writes nothing anywhere."""
    tty, silent = _Stream(tty=True), _Stream(tty=True)
    for stream, enabled in ((tty, True), (silent, False)):
        bar = ProgressBar(3, 2, enabled, stream)
        for t in range(1, 4):
            bar.show(t, None, None)
        bar.close()
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().endswith("\n")
    assert silent.getvalue() == ""


def test_experiment_takes_a_name_or_a_run_dir_not_both(tmp_path: Path) -> None:
    """Both given is a ConfigError before anything is written."""
    with pytest.raises(ConfigError, match="not both"):
        gossip.experiment(gossip.RunConfig(), name="a", run_dir=tmp_path / "b", simulate=True)
    assert list(tmp_path.iterdir()) == []


def test_experiment_refuses_a_name_that_is_not_one_directory(tmp_path: Path) -> None:
    """``name`` is ``[run] name``: one directory under ``out_dir``, checked as the CLI's ``--name`` is."""
    with pytest.raises(ConfigError, match=r"\[run\] name must be one directory name"):
        gossip.experiment(gossip.RunConfig().replace(run={"out_dir": str(tmp_path)}), name="../escape", simulate=True)
    assert list(tmp_path.iterdir()) == []
