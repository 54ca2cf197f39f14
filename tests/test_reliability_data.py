"""Bad data never crashes: IDX files fuzzed byte by byte, damaged folders, corrupt images."""
import gzip
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from clipvae_studio.core.data import DatasetError, load_dataset
from clipvae_studio.core.idx import IDXError, parse_idx, write_idx

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


VALID = _idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
VALID_GZ = gzip.compress(VALID, mtime=0)
VALID_INT32 = _idx_bytes(np.arange(6, dtype=">i4"), code=0x0C)


def _parses_or_refuses(data: bytes) -> None:
    try:
        array = parse_idx(data, "fuzz")
    except IDXError as exc:
        assert str(exc).startswith("fuzz: ") and "\n" not in str(exc)
    else:
        assert isinstance(array, np.ndarray)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_idx_on_arbitrary_bytes_raises_only_idx_error(data):
    _parses_or_refuses(data)


@FUZZ
@given(st.binary(max_size=64))
def test_parse_idx_on_arbitrary_headers_raises_only_idx_error(tail):
    # a plausible start makes the fuzzer reach the dimension and length checks, not just the magic
    _parses_or_refuses(b"\x00\x00" + tail)
    _parses_or_refuses(gzip.compress(b"\x00\x00" + tail, mtime=0))


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from([VALID, VALID_GZ, VALID_INT32])))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[at]
    return bytes(data)


@FUZZ
@given(mutated())
def test_parse_idx_on_mutated_valid_files_raises_only_idx_error(data):
    _parses_or_refuses(data)


def test_idx_header_errors_are_specific():
    with pytest.raises(IDXError, match="zero dimensions"):
        parse_idx(b"\x00\x00\x08\x00")
    with pytest.raises(IDXError, match="wrong magic number"):
        parse_idx(b"PK\x03\x04" + VALID[4:])
    with pytest.raises(IDXError, match="header cut short"):
        parse_idx(VALID[:9])
    with pytest.raises(IDXError, match="trailing bytes"):
        parse_idx(VALID + b"\0")
    with pytest.raises(IDXError, match="implausibly large"):
        parse_idx(b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 60000, 60000))


# --- IDX folders -------------------------------------------------------------------------------------
def _idx_folder(folder, images, labels, test=None):
    folder.mkdir(exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    if test is not None:
        write_idx(folder / "t10k-images-idx3-ubyte", test[0])
        write_idx(folder / "t10k-labels-idx1-ubyte", test[1])
    return folder


def test_idx_folders_with_wrong_files_get_clear_dataset_errors(tmp_path):
    images, labels = np.zeros((10, 6, 6), np.uint8), np.arange(10, dtype=np.uint8) % 3

    magic = _idx_folder(tmp_path / "magic", images, labels)
    (magic / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x07\x03" + b"\0" * 400)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: wrong magic number"):
        load_dataset("idx", magic)

    png = _idx_folder(tmp_path / "png", images, labels)  # some other file under an IDX name
    Image.new("L", (4, 4)).save(png / "train-labels-idx1-ubyte", format="PNG")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte: wrong magic number"):
        load_dataset("idx", png)

    short = _idx_folder(tmp_path / "short", images, labels)
    (short / "train-images-idx3-ubyte").write_bytes((short / "train-images-idx3-ubyte").read_bytes()[:-7])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("idx", short)

    with pytest.raises(DatasetError, match="has 10 images but .* has 9 labels"):
        load_dataset("idx", _idx_folder(tmp_path / "counts", images, labels[:9]))
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset("idx", _idx_folder(tmp_path / "empty", images[:0], labels[:0]))
    with pytest.raises(DatasetError, match="expected uint8 images"):
        load_dataset("idx", _idx_folder(tmp_path / "flat", labels, labels))
    with pytest.raises(DatasetError, match="integer labels"):
        load_dataset("idx", _idx_folder(tmp_path / "2d-labels", images, images[:, 0]))
    with pytest.raises(DatasetError, match="test images"):
        load_dataset("idx", _idx_folder(tmp_path / "sizes", images, labels, (np.zeros((4, 5, 5), np.uint8),
                                                                             labels[:4])))
    named = _idx_folder(tmp_path / "names", images, labels)
    (named / "labels.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match="lists 2 names"):
        load_dataset("idx", named)
    empty_test = _idx_folder(tmp_path / "empty-test", images, labels, (images[:0], labels[:0]))
    # empty test files: the test split is taken from the training images, with a warning, never left empty
    split = load_dataset("idx", empty_test)
    assert len(split.train_images) + len(split.test_images) == 10 and len(split.test_images) >= 1
    assert "holds no images" in split.warnings[0]


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_images=st.integers(0, 5), n_labels=st.integers(0, 5), shape=st.sampled_from([(4, 4), (4,), (2, 3, 3), ()]),
       top=st.integers(0, 255), test=st.booleans())
def test_idx_folder_fuzz_raises_only_dataset_error(tmp_path_factory, n_images, n_labels, shape, top, test):
    folder = tmp_path_factory.mktemp("idxfuzz")
    rng = np.random.default_rng(n_images * 7 + n_labels)
    images = rng.integers(0, 256, (n_images, *shape), dtype=np.uint8)
    labels = rng.integers(0, top + 1, n_labels, dtype=np.uint8)
    try:
        dataset = load_dataset("idx", _idx_folder(folder, images, labels, (images, labels) if test else None))
    except DatasetError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert len(dataset.train_images) > 0 and dataset.num_labels >= 1


# --- image folders ---------------------------------------------------------------------------------
def test_image_folder_skips_and_counts_corrupt_images(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    good = (tmp_path / "circle" / "0.png").read_bytes()
    (tmp_path / "circle" / "empty.png").write_bytes(b"")
    (tmp_path / "circle" / "text.jpg").write_text("not an image")
    (tmp_path / "square" / "half.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "square" / "renamed.gif").write_bytes(b"GIF89a" + b"\xff" * 20)
    (tmp_path / "square" / "notes.txt").write_text("ignored: not an image suffix")
    dataset = load_dataset("folder", tmp_path, image_size=8)
    assert len(dataset) == 8 and dataset.label_names == ["circle", "square"]
    assert len(dataset.warnings) == 1 and "skipped 4 unreadable" in dataset.warnings[0]
    # each file named with its class folder, the data folder named once
    assert f"in {tmp_path}:" in dataset.warnings[0]
    for name in ("circle/empty.png", "circle/text.jpg", "square/half.png", "square/renamed.gif"):
        assert name in dataset.warnings[0]


def test_empty_and_unreadable_image_folders(tmp_path):
    with pytest.raises(DatasetError, match="found 0 sub-folders with 0 images"):
        load_dataset("folder", tmp_path)
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="found 1 sub-folder with 0 images"):
        load_dataset("folder", tmp_path)
    (tmp_path / "cats" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="none of the 1 image files could be read"):
        load_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("folder", tmp_path / "cats" / "a.png")


# --- issue 22: data that used to load wrong without a word ---------------------------------------------
def _int32_label_file(path, labels):
    labels = np.asarray(labels, dtype=">i4")
    path.write_bytes(struct.pack(">HBBI", 0, 0x0C, 1, len(labels)) + labels.tobytes())


def test_idx_labels_with_gaps_are_renumbered_with_a_warning(tmp_path):
    images = np.zeros((12, 4, 4), np.uint8)
    sparse = _idx_folder(tmp_path / "sparse", images, np.array([0, 255] * 6, np.uint8))
    dataset = load_dataset("idx", sparse)
    assert dataset.num_labels == 2 and dataset.label_names == ["0", "255"]
    assert set(dataset.train_labels.tolist()) | set(dataset.test_labels.tolist()) == {0, 1}
    assert "not numbered 0..1" in dataset.warnings[-1]

    million = _idx_folder(tmp_path / "million", images, np.zeros(12, np.uint8))
    _int32_label_file(million / "train-labels-idx1-ubyte", [0, 1, 1_000_000] * 4)
    dataset = load_dataset("idx", million)  # used to build 1,000,001 labels (decoder heads: no output for minutes)
    assert dataset.label_names == ["0", "1", "1000000"]
    _int32_label_file(million / "train-labels-idx1-ubyte", [0, 2_000_000_000] * 6)
    assert load_dataset("idx", million).label_names == ["0", "2000000000"]

    named = _idx_folder(tmp_path / "named", images, np.array([1, 3] * 6, np.uint8))
    (named / "labels.txt").write_text("zero\none\ntwo\nthree\n")
    assert load_dataset("idx", named).label_names == ["one", "three"]  # labels.txt line i names value i

    many = _idx_folder(tmp_path / "many", np.zeros((1200, 2, 2), np.uint8), np.zeros(1200, np.uint8))
    _int32_label_file(many / "train-labels-idx1-ubyte", np.arange(1200))
    with pytest.raises(DatasetError, match="1,200 different values; the studio handles up to 1,000"):
        load_dataset("idx", many)


def test_idx_train_and_test_with_different_channels_say_so(tmp_path):
    folder = _idx_folder(tmp_path / "mixed", np.zeros((4, 5, 5), np.uint8), np.arange(4, dtype=np.uint8) % 2,
                         (np.zeros((2, 5, 5, 3), np.uint8), np.arange(2, dtype=np.uint8)))
    with pytest.raises(DatasetError, match="train images are 5x5 grey but test images are 5x5 with 3 channels"):
        load_dataset("idx", folder)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "latin-1"])
def test_label_files_in_other_encodings_are_decoded(tmp_path, encoding):
    folder = _idx_folder(tmp_path / "enc", np.zeros((6, 4, 4), np.uint8), np.arange(6, dtype=np.uint8) % 3)
    (folder / "labels.txt").write_bytes("café\nnaïve\nZürich\n".encode(encoding))
    dataset = load_dataset("idx", folder)
    assert dataset.label_names == ["café", "naïve", "Zürich"]
    assert any("not UTF-8" in w for w in dataset.warnings) == (encoding == "latin-1")


@pytest.mark.parametrize("text, message", [
    ("a\n\nb\nc\n", "line 2 is blank"),
    ("a\nb\na\n", "'a' is on lines 1 and 3"),
    ("\n\n", "holds no names"),
])
def test_label_files_that_would_misname_labels_are_refused(tmp_path, text, message):
    folder = _idx_folder(tmp_path / "bad", np.zeros((6, 4, 4), np.uint8), np.arange(6, dtype=np.uint8) % 3)
    (folder / "labels.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset("idx", folder)


def _class_folder(folder, names, per_class=3, size=6):
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((size, size), 40 * i, np.uint8)).save(folder / name / f"{i}.png")
    return folder


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    for name, value in (("dark", 53), ("light", 200)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6), value * 257, np.uint16)).save(tmp_path / name / f"{i}.png")
    assert Image.open(tmp_path / "dark" / "0.png").mode.startswith("I")  # really a 16-bit file
    dataset = load_dataset("folder", tmp_path, image_size=6)
    images = torch.cat([dataset.train_images, dataset.test_images]).float()
    labels = torch.cat([dataset.train_labels, dataset.test_labels])
    assert images[labels == 0].mean().item() == pytest.approx(53, abs=1)
    assert images[labels == 1].mean().item() == pytest.approx(200, abs=1)


def test_folders_too_small_for_a_test_split_are_refused_or_named(tmp_path):
    single = _class_folder(tmp_path / "single", ["a", "b"], per_class=1)
    with pytest.raises(DatasetError, match="no class has two readable images"):
        load_dataset("folder", single)
    mixed = _class_folder(tmp_path / "mixed", ["a", "b"], per_class=3)
    _class_folder(mixed, ["lonely"], per_class=1)
    dataset = load_dataset("folder", mixed)
    assert dataset.label_names == ["a", "b", "lonely"] and len(dataset.test_images) == 2
    assert any("single readable image" in w and "lonely" in w for w in dataset.warnings)


def test_empty_looping_hidden_and_nested_folders_are_not_labels(tmp_path):
    folder = _class_folder(tmp_path / "data", ["a", "b", "__MACOSX", ".hidden"])
    (folder / "empty").mkdir()
    (folder / "loop").symlink_to(folder)  # a link back to the data folder itself
    _class_folder(folder / "a", ["deeper"])  # images one level down: not read, but said so
    (folder / "b" / "._0.png").write_bytes(b"\0\5\26\7 macOS resource fork")
    dataset = load_dataset("folder", folder)
    assert dataset.label_names == ["a", "b"] and len(dataset) == 6 and not any("unreadable" in w for w in dataset.warnings)
    text = " | ".join(dataset.warnings)
    assert "without images, not used as labels: empty" in text
    assert "leading back into the folder itself: loop" in text
    assert "a/deeper" in text


def test_decompression_bomb_warning_becomes_a_dataset_warning(tmp_path, monkeypatch):
    import warnings

    folder = _class_folder(tmp_path / "data", ["a", "b"], size=12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144-pixel images now count as "very large"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's raw warning must not escape
        dataset = load_dataset("folder", folder, image_size=6)
    assert len(dataset) == 6
    assert any("6 images" in w and "decompression bomb" in w and "a/0.png" in w for w in dataset.warnings)
