"""The results store: canonical keys, strict JSON with non-finite floats, atomic writes,
corrupt files found by path, no overwriting of another config."""
import json
import math
import os

import numpy as np
import pytest
import torch

from linattn import store as st
from linattn.store import CorruptCell, Store, StoreError

PARAMS = {"task": "mnist", "width": 16, "seed": 0, "protocol": {"lr": 0.01, "epochs": 4}, "widths": (1, 2)}
TABLES = {"rows": [{"value": 1.5, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "flag": True, "n": 3}]}


def test_keys_are_canonical_and_depend_on_every_param():
    k = st.cell_key("exp", 1, PARAMS)
    reordered = dict(reversed(list(PARAMS.items())))
    assert st.cell_key("exp", 1, reordered) == k                           # order of keys does not matter
    assert st.cell_key("exp", 1, {**PARAMS, "widths": [1, 2]}) == k         # a tuple and a list are the same
    assert st.cell_key("exp", 2, PARAMS) != k                               # the experiment's version counts
    assert st.cell_key("other", 1, PARAMS) != k
    assert st.cell_key("exp", 1, {**PARAMS, "seed": 1}) != k
    assert st.cell_key("exp", 1, {**PARAMS, "protocol": {"lr": 0.02, "epochs": 4}}) != k
    assert len(k) == 20 and int(k, 16) >= 0


def test_non_finite_floats_round_trip_as_floats_in_strict_json():
    text = st.dumps(TABLES)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    back = st.loads(text)["rows"][0]
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["ninf"] == -math.inf
    assert isinstance(back["nan"], float) and back["flag"] is True and back["n"] == 3
    enc = st.encode({"a": np.float32(2.5), "b": np.int64(4), "t": torch.tensor([1.0, float("nan")])})
    assert enc["a"] == 2.5 and enc["b"] == 4 and enc["t"][1] == {"$float": "nan"}
    with pytest.raises(TypeError, match="keys must be strings"):
        st.encode({1: 2})
    with pytest.raises(TypeError, match="cannot store"):
        st.encode({"x": object()})


def test_put_get_round_trip_with_provenance(tmp_path):
    s = Store(tmp_path)
    path = s.put("exp", 1, PARAMS, TABLES, st.provenance(wall_s=1.25, peak_mem_mb=10.0))
    assert path == tmp_path / "exp" / f"{st.cell_key('exp', 1, PARAMS)}.json"
    rec = s.get("exp", 1, PARAMS)
    assert rec.params["widths"] == [1, 2] and math.isnan(rec.table()[0]["nan"])
    prov = rec.provenance
    for field in ("linattn", "git_commit", "git_dirty", "device", "torch", "threads", "wall_s", "peak_mem_mb",
                  "time_utc", "python", "host"):
        assert field in prov
    assert prov["wall_s"] == 1.25
    assert s.get("exp", 1, {**PARAMS, "seed": 9}) is None
    assert s.verify() == []
    assert not list(tmp_path.glob("exp/.*"))  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "edit", "rename", "empty"])
def test_damaged_files_are_reported_by_path(tmp_path, damage):
    s = Store(tmp_path)
    path = s.put("exp", 1, PARAMS, TABLES, st.provenance())
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "edit":
        path.write_text(text.replace('"value": 1.5', '"value": 2.5'))
    elif damage == "empty":
        path.write_text("")
    else:  # a valid file under another cell's name
        other = path.with_name(st.cell_key("exp", 1, {**PARAMS, "seed": 5}) + ".json")
        path.rename(other)
        with pytest.raises(CorruptCell, match="key does not match"):
            s.get("exp", 1, {**PARAMS, "seed": 5})
        return
    with pytest.raises(CorruptCell) as err:
        s.get("exp", 1, PARAMS)
    assert err.value.path == path and str(path) in str(err.value)
    assert [e.path for e in s.verify()] == [path]


def test_a_write_that_fails_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    s = Store(tmp_path)
    path = s.put("exp", 1, PARAMS, TABLES, st.provenance())
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        s.put("exp", 1, PARAMS, {"rows": [{"value": 99.0}]}, st.provenance())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert s.get("exp", 1, PARAMS).table()[0]["value"] == 1.5
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [path.name]  # the temporary file is gone


def test_a_damaged_file_is_replaced_but_another_config_never_is(tmp_path):
    s = Store(tmp_path)
    a = s.put("exp", 1, PARAMS, TABLES, st.provenance())
    b = s.put("exp", 1, {**PARAMS, "seed": 1}, {"rows": [{"value": 7.0}]}, st.provenance())
    assert a != b and s.get("exp", 1, PARAMS).table()[0]["value"] == 1.5  # the other config is untouched
    a.write_text("{")
    s.put("exp", 1, PARAMS, TABLES, st.provenance())
    assert s.get("exp", 1, PARAMS).table()[0]["value"] == 1.5
    # every config has its own file, so writing one config leaves every other file as it was
    before = b.read_bytes()
    for seed in range(2, 6):
        s.put("exp", 1, {**PARAMS, "seed": seed}, TABLES, st.provenance())
    s.put("exp", 1, PARAMS, {"rows": []}, st.provenance())
    assert b.read_bytes() == before
    # a copy of another cell's file at this cell's path is not a result of this cell: reported as corrupt
    a.write_text(b.read_text())
    with pytest.raises(CorruptCell, match="key does not match"):
        s.get("exp", 1, PARAMS)


def test_unusable_output_folders_are_refused(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        Store(f).check_writable()
    with pytest.raises(StoreError, match="not writable"):
        Store(f / "sub").check_writable()
    Store(tmp_path / "new" / "folder").check_writable()
    assert (tmp_path / "new" / "folder").is_dir()


def test_bad_experiment_names_are_refused(tmp_path):
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ValueError, match="plain name"):
            Store(tmp_path).path(bad, "k")
