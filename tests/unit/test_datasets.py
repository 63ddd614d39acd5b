"""Datasets: shapes and dtypes, the MNIST IDX and CIFAR-10 readers on real-format files, the npz cache."""

from __future__ import annotations

import gzip
import os
import pickle
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gossip.data import DATASET_NAMES, Dataset, datasets, load_dataset, load_npz, save_npz
from gossip.data.datasets import (
    CIFAR10_FILES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST1D_ARGS,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    mnist1d_cache_path,
)
from gossip.data.files import read_cifar_batch, read_idx, write_idx
from gossip.errors import DataError
from tests.cifar_fixtures import write_cifar_batch

# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def mnist1d(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """MNIST-1D loaded once (about 2 s), in an empty working directory, with the global state around it.

    Records what the load left behind so that single tests can assert on it.
    """
    workdir = tmp_path_factory.mktemp("mnist1d_cwd")
    cache_home = tmp_path_factory.mktemp("mnist1d_cache")  # empty: the load generates, then caches
    py_before, np_before = random.getstate(), np.random.get_state()
    env_before = dict(os.environ)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setenv("XDG_CACHE_HOME", str(cache_home))
        dataset = load_dataset("mnist1d")
    return SimpleNamespace(
        dataset=dataset,
        cache_home=cache_home,
        cwd_files=sorted(p.name for p in workdir.iterdir()),
        py_rng_unchanged=random.getstate() == py_before,
        np_rng_unchanged=all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_before, strict=True)),
        env_unchanged=dict(os.environ) == env_before,
    )


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def _write_mnist(directory: Path, *, gz: bool) -> dict[str, np.ndarray]:
    """20 train and 10 test images in the real IDX files (optionally gzipped); returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = _images(20, seed=1)
    x_test, y_test = _images(10, seed=2)
    arrays = dict(zip(MNIST_FILES, (x_train, y_train, x_test, y_test), strict=True))
    for name, array in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), array)
    return arrays


def _write_cifar(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five data batches of 3 images and a test batch of 4, in the official python-batch format."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    written = {}
    for name in CIFAR10_FILES:
        n = 4 if name == "test_batch" else 3
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        write_cifar_batch(directory / name, data, labels)
        written[name] = (data, labels)
    return written


# ------------------------------------------------------------------------------------------------
# generated datasets


@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "input_shape"),
    [("digits", 1437, 360, (64,)), ("synthetic", 4000, 1000, (64,))],
)
def test_generated_dataset_has_documented_shapes_and_dtypes(name: str, n_train: int, n_test: int, input_shape: tuple[int, ...]) -> None:
    """digits and synthetic load with the documented sizes, float32 C-contiguous x, int64 y, 10 classes."""
    ds = load_dataset(name)

    assert (ds.name, ds.num_classes, ds.input_shape) == (name, 10, input_shape)
    assert ds.x_train.shape == (n_train, *input_shape) and ds.x_test.shape == (n_test, *input_shape)
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(10))


def test_mnist1d_has_documented_shapes_and_dtypes(mnist1d: SimpleNamespace) -> None:
    """MNIST-1D is 4000 train / 1000 test signals of length 40, float32, int64 labels, 10 classes."""
    ds = mnist1d.dataset

    assert (ds.name, ds.num_classes, ds.input_shape) == ("mnist1d", 10, (40,))
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(10))


def test_mnist1d_is_standardised(mnist1d: SimpleNamespace) -> None:
    """mnist1d's own standardisation is kept: the training features have mean ~0 and std ~1."""
    x = mnist1d.dataset.x_train

    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1.0) < 0.05


def test_mnist1d_is_the_canonical_dataset(mnist1d: SimpleNamespace) -> None:
    """The data are mnist1d's defaults (seed 42): its train class counts run 394..411."""
    counts = np.bincount(mnist1d.dataset.y_train)

    assert counts.min() == 394 and counts.max() == 411


def _same_data(a: Dataset, b: Dataset) -> bool:
    arrays = ("x_train", "y_train", "x_test", "y_test")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) and getattr(a, k).dtype == getattr(b, k).dtype for k in arrays) and (
        a.name,
        a.num_classes,
        a.input_shape,
    ) == (b.name, b.num_classes, b.input_shape)


def test_mnist1d_is_generated_once_then_read_from_the_users_cache(mnist1d: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load wrote $XDG_CACHE_HOME/gossip/mnist1d-<key>.npz; the next one reads it (nothing is generated)
    and gets the same arrays bit for bit."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(mnist1d.cache_home))
    cached = mnist1d_cache_path()
    assert cached is not None and cached.parent == mnist1d.cache_home / "gossip" and cached.is_file()

    def no_generation() -> Dataset:
        raise AssertionError("generated although cached")

    monkeypatch.setattr(datasets, "_generate_mnist1d", no_generation)
    assert _same_data(load_dataset("mnist1d"), mnist1d.dataset)


def test_a_torn_mnist1d_cache_is_made_again(mnist1d: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache file cut short (a crash mid-write on another tool's part, a full disk) is generated anew and rewritten whole."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = mnist1d_cache_path()
    assert cached is not None
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 torn")
    monkeypatch.setattr(datasets, "_generate_mnist1d", lambda: mnist1d.dataset)  # the generation itself is tested above
    assert _same_data(load_dataset("mnist1d"), mnist1d.dataset)
    assert _same_data(load_npz(cached), mnist1d.dataset)


def test_an_unwritable_mnist1d_cache_is_skipped(mnist1d: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache directory that cannot be made (here a file stands in its way, as a read-only home would) costs a
    generation each time, never an error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(datasets, "_generate_mnist1d", lambda: mnist1d.dataset)
    assert _same_data(load_dataset("mnist1d"), mnist1d.dataset)


def test_the_mnist1d_cache_key_spells_out_mnist1ds_own_defaults() -> None:
    """The key is built without importing mnist1d, from MNIST1D_ARGS: they must be the installed mnist1d's defaults."""
    from mnist1d.data import get_dataset_args

    assert {k: v for k, v in vars(get_dataset_args()).items() if k != "url"} == dict(MNIST1D_ARGS)


def test_mnist1d_writes_nothing_to_the_working_directory(mnist1d: SimpleNamespace) -> None:
    """Generation is offline and in memory: no mnist1d_data.pkl appears in the cwd."""
    assert mnist1d.cwd_files == []


def test_mnist1d_restores_the_global_random_generators(mnist1d: SimpleNamespace) -> None:
    """mnist1d reseeds random and numpy.random globally; load_dataset puts both states back."""
    assert mnist1d.py_rng_unchanged and mnist1d.np_rng_unchanged


def test_mnist1d_leaves_the_environment_alone(mnist1d: SimpleNamespace) -> None:
    """Loading mnist1d (which imports matplotlib) changes no environment variable, e.g. MPLBACKEND."""
    assert mnist1d.env_unchanged


def test_digits_is_scaled_to_unit_interval() -> None:
    """digits pixels 0..16 become 0..1."""
    ds = load_dataset("digits")

    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_seed_determines_the_random_datasets(name: str) -> None:
    """The same seed gives identical arrays; another seed gives different ones."""
    a, b, c = load_dataset(name, seed=5), load_dataset(name, seed=5), load_dataset(name, seed=6)

    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_digits_split_is_stratified() -> None:
    """Each class keeps its share in the 80/20 split (within one sample of 20%)."""
    ds = load_dataset("digits", seed=0)
    train, test = np.bincount(ds.y_train), np.bincount(ds.y_test)

    assert np.all(np.abs(test - 0.2 * (train + test)) <= 1)


@pytest.mark.parametrize("features", [64, 1000])
def test_synthetic_options_set_the_shape(features: int) -> None:
    """features/classes/train/test options set the arrays' shapes and num_classes."""
    ds = load_dataset("synthetic", features=features, classes=4, train=200, test=50)

    assert ds.x_train.shape == (200, features) and ds.x_test.shape == (50, features)
    assert ds.num_classes == 4 and ds.input_shape == (features,)


def test_synthetic_is_learnable() -> None:
    """Class means are separated: a nearest-class-mean classifier fit on train is > 85% right on test."""
    ds = load_dataset("synthetic", seed=0)
    means = np.stack([ds.x_train[ds.y_train == k].mean(0) for k in range(ds.num_classes)])

    predicted = ((ds.x_test[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)

    assert (predicted == ds.y_test).mean() > 0.85


@pytest.mark.parametrize("options", [{"feature": 3}, {"features": 0}, {"classes": 1}, {"train": 2.5}, {"separation": -1.0}])
def test_synthetic_refuses_bad_options(options: dict[str, object]) -> None:
    """A misspelt or out-of-range synthetic option is a DataError."""
    with pytest.raises(DataError, match="synthetic option"):
        load_dataset("synthetic", **options)


def test_options_on_a_dataset_without_options_are_refused() -> None:
    """Options are only meaningful for synthetic; elsewhere they are an error, not silently ignored."""
    with pytest.raises(DataError, match="takes no options"):
        load_dataset("digits", features=3)


def test_unknown_dataset_names_the_known_ones() -> None:
    """An unknown name is a DataError that suggests the close match and lists every known dataset."""
    with pytest.raises(DataError) as info:
        load_dataset("mnsit")

    assert "'mnist'" in str(info.value)
    assert "known: mnist1d, digits, mnist, cifar10, synthetic" in str(info.value)
    assert DATASET_NAMES == ("mnist1d", "digits", "mnist", "cifar10", "synthetic")


# ------------------------------------------------------------------------------------------------
# MNIST: IDX files


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_mnist_loads_from_idx_files(tmp_path: Path, gz: bool) -> None:
    """Real-format IDX files (plain or .gz) load as (N, 1, 28, 28), scaled to [0, 1] then MNIST-normalised."""
    written = _write_mnist(tmp_path, gz=gz)

    ds = load_dataset("mnist", root=tmp_path)

    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    expected = (written["train-images-idx3-ubyte"].astype(np.float64) / 255 - MNIST_MEAN) / MNIST_STD
    np.testing.assert_allclose(ds.x_train[:, 0], expected, rtol=0, atol=1e-5)
    assert np.array_equal(ds.y_test, written["t10k-labels-idx1-ubyte"].astype(np.int64))


def test_mnist_finds_the_torchvision_layout(tmp_path: Path) -> None:
    """Files under root/MNIST/raw (where torchvision puts them) are found too."""
    _write_mnist(tmp_path / "MNIST" / "raw", gz=True)

    assert load_dataset("mnist", root=tmp_path).x_train.shape == (20, 1, 28, 28)


def test_mnist_without_root_is_refused() -> None:
    """mnist needs a directory; without one the error says to set [data] root."""
    with pytest.raises(DataError, match="root"):
        load_dataset("mnist")


def test_mnist_missing_file_is_named(tmp_path: Path) -> None:
    """With one file missing, the one-line error names that file and the directory."""
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()

    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path)

    assert "t10k-labels-idx1-ubyte" in str(info.value) and str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)


def test_mnist_truncated_file_is_refused_by_name(tmp_path: Path) -> None:
    """A truncated images file (an interrupted download) is a DataError naming the file."""
    _write_mnist(tmp_path, gz=False)
    victim = tmp_path / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-100])

    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trips_every_type(tmp_path: Path, dtype: str, suffix: str) -> None:
    """write_idx then read_idx gives back the same values, dtype and shape, plain or gzipped."""
    array = (np.arange(60) - 30).astype(dtype).reshape(3, 4, 5)
    path = tmp_path / f"a.idx{suffix}"

    write_idx(path, array)
    back = read_idx(path)

    assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)


def test_idx_header_is_the_real_format(tmp_path: Path) -> None:
    """The writer emits the MNIST layout: magic 0x00000803 for 3-D uint8, big-endian dimensions, raw bytes."""
    write_idx(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.uint8))

    raw = (tmp_path / "x").read_bytes()

    assert raw[:16] == bytes.fromhex("00000803000000020000001c0000001c")
    assert len(raw) == 16 + 2 * 28 * 28


def _valid_idx() -> bytes:
    return bytes.fromhex("0000080100000004") + b"\x01\x02\x03\x04"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an IDX file"),
        (b"PK\x03\x04" + bytes(8), "not an IDX file"),
        (bytes.fromhex("00000f0100000004") + bytes(4), "unknown IDX type"),
        (bytes.fromhex("00000800"), "0 dimensions"),
        (bytes.fromhex("0000080300000002"), "header alone"),
        (_valid_idx()[:-1], "truncated"),
        (_valid_idx() + b"\x00", "trailing bytes"),
        (gzip.compress(_valid_idx())[:-6], "corrupt or truncated gzip"),
    ],
    ids=["empty", "bad-magic", "bad-type", "zero-dims", "short-header", "short-payload", "trailing", "cut-gzip"],
)
def test_corrupt_idx_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    """Every malformed IDX file is refused with a DataError that names it; none yields a wrong array."""
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)

    with pytest.raises(DataError, match=message) as info:
        read_idx(path)

    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------------
# CIFAR-10: python batches


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"], ids=["root", "extracted-subdir"])
def test_cifar10_loads_from_python_batches(tmp_path: Path, subdir: str) -> None:
    """Five data batches plus test_batch (in root or root/cifar-10-batches-py) load as (N, 3, 32, 32)."""
    written = _write_cifar(tmp_path / subdir if subdir else tmp_path)

    ds = load_dataset("cifar10", root=tmp_path)

    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    expected_labels = np.concatenate([written[n][1] for n in CIFAR10_FILES[:5]])
    assert np.array_equal(ds.y_train, expected_labels)


def test_cifar10_is_normalised_per_channel(tmp_path: Path) -> None:
    """Rows are channel-major; each channel is scaled to [0, 1] then normalised with CIFAR's mean/std."""
    written = _write_cifar(tmp_path)

    ds = load_dataset("cifar10", root=tmp_path)

    raw = written["test_batch"][0].reshape(-1, 3, 32, 32).astype(np.float64) / 255
    expected = (raw - np.reshape(CIFAR10_MEAN, (1, 3, 1, 1))) / np.reshape(CIFAR10_STD, (1, 3, 1, 1))
    np.testing.assert_allclose(ds.x_test, expected, rtol=0, atol=1e-5)


def test_cifar10_missing_batch_is_named(tmp_path: Path) -> None:
    """Without data_batch_3 the one-line error names it and the directory."""
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()

    with pytest.raises(DataError, match="data_batch_3") as info:
        load_dataset("cifar10", root=tmp_path)

    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_cifar_batch_round_trips(tmp_path: Path) -> None:
    """write_cifar_batch then read_cifar_batch gives back uint8 (N, 3072) data and int64 labels."""
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)

    write_cifar_batch(tmp_path / "b", data, [7, 1])
    back, labels = read_cifar_batch(tmp_path / "b")

    assert back.dtype == np.uint8 and np.array_equal(back, data)
    assert labels.dtype == np.int64 and labels.tolist() == [7, 1]


def test_cifar_batch_has_the_official_keys(tmp_path: Path) -> None:
    """The fixture writer emits the official dict (batch_label, labels, data, filenames) as a protocol-2 pickle."""
    write_cifar_batch(tmp_path / "b", np.zeros((1, 3072), dtype=np.uint8), [0])

    raw = (tmp_path / "b").read_bytes()
    batch = pickle.loads(raw, encoding="bytes")  # test-only: our own fixture, to check its layout

    assert raw[:2] == b"\x80\x02"
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}


def test_cifar_batch_accepts_the_numpy1_global_spelling(tmp_path: Path) -> None:
    """Batches pickled under numpy 1.x name numpy.core.multiarray._reconstruct; that spelling is read too."""
    data = np.full((1, 3072), 9, dtype=np.uint8)
    write_cifar_batch(tmp_path / "b", data, [3])
    raw = (tmp_path / "b").read_bytes()
    path = tmp_path / "numpy1"
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))

    back, labels = read_cifar_batch(path)

    assert np.array_equal(back, data) and labels.tolist() == [3]


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_cifar_batch_pickled_by_python3_at_any_protocol_is_read_without_the_pickle_module(tmp_path: Path, protocol: int) -> None:
    """The reader parses the opcodes itself; batches re-saved by Python 3 (str keys, bytes by BINBYTES or
    _codecs.encode, frames, memo, STACK_GLOBAL) read back exactly."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    path = tmp_path / "b"
    path.write_bytes(
        pickle.dumps({"batch_label": "x", "labels": [7, 1], "data": data, "filenames": [b"a.png", b"b.png"]}, protocol=protocol)
    )

    back, labels = read_cifar_batch(path)

    assert np.array_equal(back, data) and back.flags.writeable and labels.tolist() == [7, 1]
    package = Path(__file__).resolve().parents[2] / "gossip" / "data"
    assert not any("import pickle" in (package / name).read_text() for name in ("files.py", "unpickle.py"))


def _malicious_pickles(marker: Path) -> dict[str, bytes]:
    """Pickles that would run code or call non-allowlisted globals if loaded with pickle.load."""
    command = f"touch {marker}".encode()
    return {
        # protocol 0: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE
        "os.system": b"cos\nsystem\n(S'" + command + b"'\ntR.",
        "posix.system": b"cposix\nsystem\n(S'" + command + b"'\ntR.",
        "builtins.exec": b"cbuiltins\nexec\n(S'open(" + repr(str(marker)).encode() + b', "w")\'\ntR.',
        "numpy.load": b"cnumpy\nload\n(S'" + str(marker).encode() + b"'\ntR.",
        "codecs-by-name": b"c_codecs\nencode\n(Vx\nVrot13\ntR.",
    }


@pytest.mark.parametrize("payload", ["os.system", "posix.system", "builtins.exec", "numpy.load", "codecs-by-name"])
def test_cifar_batch_with_a_malicious_global_is_refused_and_not_run(tmp_path: Path, payload: str) -> None:
    """A batch naming any global outside the numpy-array allowlist is a DataError, and its code never runs."""
    marker = tmp_path / "pwned"
    data_dir = tmp_path / "data"
    _write_cifar(data_dir)
    (data_dir / "data_batch_2").write_bytes(_malicious_pickles(marker)[payload])

    with pytest.raises(DataError, match=r"data_batch_2 .*refusing"):
        load_dataset("cifar10", root=data_dir)

    assert not marker.exists()


def test_pickle_loads_would_have_run_the_os_system_payload(tmp_path: Path) -> None:
    """Control for the test above: the os.system payload really is live under plain pickle.loads."""
    marker = tmp_path / "pwned"

    pickle.loads(_malicious_pickles(marker)["os.system"])  # test-only, on a payload we just built

    assert marker.exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([1, 2, 3], "expected a dict"),
        ({b"data": np.zeros((2, 3072), dtype=np.float32), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": ["a", "b"]}, "list of integers"),
    ],
    ids=["not-a-dict", "float-data", "wrong-width", "label-count", "label-type"],
)
def test_cifar_batch_with_wrong_contents_is_refused(tmp_path: Path, batch: object, message: str) -> None:
    """A well-formed pickle with the wrong structure is a DataError, not a wrong dataset."""
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(batch, protocol=2))  # test-only: a fixture with deliberately wrong contents

    with pytest.raises(DataError, match=message):
        read_cifar_batch(path)


def test_truncated_cifar_batch_is_refused(tmp_path: Path) -> None:
    """A batch cut short is a DataError naming the file."""
    write_cifar_batch(tmp_path / "data_batch_1", np.zeros((2, 3072), dtype=np.uint8), [0, 1])
    raw = (tmp_path / "data_batch_1").read_bytes()
    (tmp_path / "data_batch_1").write_bytes(raw[: len(raw) // 2])

    with pytest.raises(DataError, match="data_batch_1"):
        read_cifar_batch(tmp_path / "data_batch_1")


# ------------------------------------------------------------------------------------------------
# npz cache and the Dataset value


def test_npz_cache_round_trips_exactly(tmp_path: Path) -> None:
    """save_npz then load_npz gives identical arrays, dtypes, name, num_classes and input_shape."""
    ds = load_dataset("synthetic", features=8, classes=3, train=30, test=10, seed=4)
    path = tmp_path / "data.npz"

    save_npz(ds, path)
    back = load_npz(path)

    assert (back.name, back.num_classes, back.input_shape) == (ds.name, ds.num_classes, ds.input_shape)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        original, loaded = getattr(ds, field), getattr(back, field)
        assert loaded.dtype == original.dtype and np.array_equal(loaded, original)


def test_npz_cache_of_image_data_keeps_the_shape(tmp_path: Path) -> None:
    """A multi-dimensional input_shape such as (1, 28, 28) survives the cache."""
    _write_mnist(tmp_path / "mnist", gz=False)
    ds = load_dataset("mnist", root=tmp_path / "mnist")

    save_npz(ds, tmp_path / "cache")

    back = load_npz(tmp_path / "cache")
    assert back.input_shape == (1, 28, 28) and np.array_equal(back.x_train, ds.x_train)


def test_npz_cache_is_written_at_exactly_the_given_path(tmp_path: Path) -> None:
    """No '.npz' is appended and no temporary file is left behind."""
    save_npz(load_dataset("synthetic", train=10, test=5), tmp_path / "data.cache")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.cache"]


def test_npz_cache_holding_objects_is_refused(tmp_path: Path) -> None:
    """A cache whose arrays need pickle (dtype object) is refused: load_npz never unpickles."""
    path = tmp_path / "evil.npz"
    save_npz(load_dataset("synthetic", train=10, test=5), path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    np.savez(path, **{**arrays, "name": np.array([{"a": 1}], dtype=object)})

    with pytest.raises(DataError, match="cannot read dataset cache"):
        load_npz(path)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all"], ids=["empty", "garbage"])
def test_npz_cache_that_is_not_an_archive_is_refused(tmp_path: Path, content: bytes) -> None:
    """An empty or garbage cache file is a DataError."""
    path = tmp_path / "data.npz"
    path.write_bytes(content)

    with pytest.raises(DataError):
        load_npz(path)


def test_npz_without_dataset_keys_is_refused(tmp_path: Path) -> None:
    """An unrelated .npz is a DataError that lists the missing keys."""
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))

    with pytest.raises(DataError, match="missing format, name"):
        load_npz(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_train": np.zeros((4, 2), dtype=np.float64)}, "float32"),
        ({"y_train": np.zeros(4, dtype=np.int32)}, "int64"),
        ({"x_train": np.zeros((4, 3), dtype=np.float32)}, "expected"),
        ({"y_train": np.array([0, 1, 2, 5])}, "outside"),
    ],
    ids=["x-dtype", "y-dtype", "x-shape", "label-range"],
)
def test_dataset_refuses_inconsistent_arrays(change: dict[str, np.ndarray], message: str) -> None:
    """Dataset checks dtypes, shapes against input_shape, and label range at construction."""
    fields = {
        "name": "t",
        "x_train": np.zeros((4, 2), dtype=np.float32),
        "y_train": np.zeros(4, dtype=np.int64),
        "x_test": np.zeros((1, 2), dtype=np.float32),
        "y_test": np.zeros(1, dtype=np.int64),
        "num_classes": 3,
        "input_shape": (2,),
    }

    with pytest.raises(DataError, match=message):
        Dataset(**{**fields, **change})  # type: ignore[arg-type]
