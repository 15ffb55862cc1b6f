"""Shared pytest configuration."""
import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("LINATTN_THREADS", "2")))


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
    """An empty data folder: only the offline MNIST subset is available."""
    monkeypatch.setenv("LINATTN_DATA", str(tmp_path / "empty"))
    return tmp_path / "empty"
