"""Shared pytest configuration."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see linattn/__init__.py
# the chapters' kernels (nbval) inherit it: a cell that draws an unlabelled axis fails (linattn.figures)
os.environ.setdefault("LINATTN_CHECK_FIGURES", "1")

import pytest
import torch

torch.set_num_threads(int(os.environ.get("LINATTN_THREADS", "2")))


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
    """An empty data folder: only the offline MNIST subset is available."""
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing, empty folder: a missing one is a warning (a mistyped LINATTN_DATA)
    monkeypatch.setenv("LINATTN_DATA", str(empty))
    return empty
