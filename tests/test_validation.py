"""The shared validation helpers (linattn._validation): one message style, argument, value and fix."""
import numpy as np
import pytest
import torch

from linattn._validation import check_consistent_length, check_option


def test_check_option_returns_the_value_and_lists_the_options():
    assert check_option("pgd", "attack", ("fgsm", "pgd")) == "pgd"
    assert check_option(2, "p", [1, 2, 3]) == 2
    with pytest.raises(ValueError, match=r"^attack must be 'fgsm', 'pgd' or 'mim', got 'cw'$"):
        check_option("cw", "attack", ("fgsm", "pgd", "mim"))
    with pytest.raises(ValueError, match=r"^mode must be 'a', got 'b'$"):
        check_option("b", "mode", ["a"])
    with pytest.raises(ValueError, match="got \\['a'\\]"):
        check_option(["a"], "mode", {"a", "b"})  # unhashable value against a set: refused, not a TypeError
    with pytest.raises(ValueError, match="at least one option"):
        check_option("a", "mode", ())


def test_check_consistent_length():
    X, y = torch.zeros(4, 3), np.zeros(4)
    assert check_consistent_length(X, y, names=("X", "y")) == 4
    with pytest.raises(ValueError, match=r"^y has 3 labels for the 4 rows of X; pass one per row$"):
        check_consistent_length(X, torch.zeros(3), names=("X", "y"), what="labels")
    with pytest.raises(ValueError, match="Z has 2 rows for the 4 rows of X"):
        check_consistent_length(X, y, torch.zeros(2), names=("X", "y", "Z"))
    with pytest.raises(TypeError, match="one name an array"):
        check_consistent_length(X, y, names=("X",))
