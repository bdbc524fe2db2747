"""The restricted checkpoint unpickler: allow-listed globals only, nothing executed, clear errors."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from tracker_core.detector.checkpoint_unpickler import StandIn, read_checkpoint
from tracker_core.detector.convert import convert_checkpoint, detect_arch
from tracker_core.errors import UnsafePickleError, WeightsError


def _global_call_pickle(module: str, name: str, arg: str) -> bytes:
    """Protocol-2 pickle of ``module.name(arg)`` written opcode by opcode (GLOBAL, BINUNICODE, TUPLE1, REDUCE)."""
    raw = arg.encode()
    return (
        b"\x80\x02"
        + b"c"
        + f"{module}\n{name}\n".encode()
        + b"X"
        + struct.pack("<I", len(raw))
        + raw
        + b"\x85R."
    )


def _zip_checkpoint(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ckpt/data.pkl", data_pkl)
        z.writestr("ckpt/version", "3\n")
        for key, raw in (storages or {}).items():
            z.writestr(f"ckpt/data/{key}", raw)
    return path


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("subprocess", "call"),
    ],
)
def test_forbidden_global_is_rejected_and_nothing_runs(tmp_path, module, name):
    marker = tmp_path / "pwned"
    arg = f"open({str(marker)!r}, 'w').write('x')" if module == "builtins" else f"touch {marker}"
    ckpt = _zip_checkpoint(tmp_path / "evil.pt", _global_call_pickle(module, name, arg))
    with pytest.raises(UnsafePickleError, match=rf"{module}\.{name}.*not on the allow-list"):
        read_checkpoint(str(ckpt))
    assert not marker.exists()


def test_the_crafted_pickle_is_live_under_plain_pickle(tmp_path):
    """Control: the same bytes *do* run a command under an unrestricted unpickler."""
    marker = tmp_path / "ran"
    pickle.loads(_global_call_pickle("os", "system", f"touch {marker}"))
    assert marker.exists()


def test_forbidden_global_nested_inside_a_checkpoint_dict(tmp_path):
    marker = tmp_path / "pwned"
    inner = _global_call_pickle("os", "system", f"touch {marker}")[2:-1]  # without PROTO / STOP
    # {'epoch': -1, 'model': os.system(...)}
    data = b"\x80\x02}q\x00(X\x05\x00\x00\x00epochJ\xff\xff\xff\xffX\x05\x00\x00\x00model" + inner + b"u."
    ckpt = _zip_checkpoint(tmp_path / "evil.pt", data)
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        convert_checkpoint(ckpt)
    assert not marker.exists()


def test_real_module_class_outside_the_allow_list_is_rejected(tmp_path):
    path = tmp_path / "linear.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(UnsafePickleError, match=r"torch\.nn\.modules\.linear\.Linear"):
        read_checkpoint(str(path))


def test_foreign_but_harmless_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="no 'model'"):
        convert_checkpoint(path)


def test_not_a_zip_and_missing_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02}q\x00." * 10)
    with pytest.raises(WeightsError, match=r"not a torch\.save zip checkpoint"):
        read_checkpoint(str(junk))
    with pytest.raises(WeightsError, match="no such file"):
        read_checkpoint(str(tmp_path / "absent.pt"))


def test_truncated_official_checkpoint(tmp_path, yolov7_reference):
    src = (yolov7_reference / "yolov7-tiny-random-official-format.pt").read_bytes()
    for frac in (0.5, 0.999):
        cut = tmp_path / f"cut{frac}.pt"
        cut.write_bytes(src[: int(len(src) * frac)])
        with pytest.raises(WeightsError):
            convert_checkpoint(cut)


def test_storage_with_wrong_size_is_corrupt(tmp_path):
    buf = io.BytesIO()
    torch.save({"model": torch.arange(4, dtype=torch.float32)}, buf)
    buf.seek(0)
    out = tmp_path / "short.pt"
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            raw = src.read(info)
            if "/data/" in info.filename and not info.filename.endswith("serialization_id"):
                raw = raw[:8]  # half the floats
            dst.writestr(info.filename, raw)
    with pytest.raises(WeightsError, match="holds 8 bytes, expected 16"):
        read_checkpoint(str(out))


def test_numpy_core_and_numpy__core_names_are_both_accepted(tmp_path):
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        # _reconstruct(ndarray, (0,), b'b') as an old numpy writes it; mapped to an inert stand-in
        data = (
            b"\x80\x02c"
            + f"{module}\n_reconstruct\n".encode()
            + b"c"
            + f"{module}\nndarray\n".encode()
            + b"K\x00\x85C\x01b\x87R."
        )
        ckpt = _zip_checkpoint(tmp_path / f"{module}.pt", data)
        obj = read_checkpoint(str(ckpt)).obj
        assert isinstance(obj, StandIn)


def test_official_checkpoint_reads_into_inert_stand_ins(yolov7_reference):
    raw = read_checkpoint(str(yolov7_reference / "yolov7-tiny-random-official-format.pt"))
    model = raw.obj["model"]
    assert isinstance(model, StandIn) and model.qualname == "models.yolo.Model"
    assert not isinstance(model, torch.nn.Module)
    assert model.attr("nc") == 80


def test_detect_arch_names_the_first_mismatch():
    with torch.device("meta"):
        from tracker_core.detector.model import YoloNet

        net = YoloNet("yolov7-tiny")
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert detect_arch(shapes) == ("yolov7-tiny", 80)
    bad = dict(shapes)
    bad["model.37.conv.weight"] = (128, 512, 1, 1)
    with pytest.raises(WeightsError, match=r"model\.37\.conv\.weight has shape \[128, 512, 1, 1\]"):
        detect_arch(bad)
    missing = dict(shapes)
    del missing["model.0.bn.running_var"]
    with pytest.raises(WeightsError, match=r"missing key model\.0\.bn\.running_var"):
        detect_arch(missing)
    with pytest.raises(WeightsError, match="not a known YOLOv7 layout"):
        detect_arch({"fc.weight": (10, 10)})


def test_pickle_module_is_not_used_to_resolve_globals(tmp_path):
    """A pickle naming a harmless but unlisted global (collections.Counter) is still refused."""
    ckpt = _zip_checkpoint(
        tmp_path / "c.pt", pickle.dumps({"x": __import__("collections").Counter()}, protocol=2)
    )
    with pytest.raises(UnsafePickleError, match=r"collections\.Counter"):
        read_checkpoint(str(ckpt))
