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


def test_scalar_helpers_refuse_rather_than_truncate():
    from linattn._validation import check_bool, check_int, check_range, check_seed

    assert check_seed(np.int64(7)) == 7 and check_int(3, "n", maximum=3) == 3
    with pytest.raises(TypeError, match=r"^seed must be an integer, got 1.5$"):
        check_seed(1.5)
    with pytest.raises(TypeError, match=r"pass int\(2.0\)"):
        check_seed(2.0)
    with pytest.raises(ValueError, match="seed must be at least 0, got -1"):
        check_seed(-1)
    with pytest.raises(ValueError, match="n must be at most 3, got 4"):
        check_int(4, "n", maximum=3)
    with pytest.raises(TypeError, match="eps must be a number, got '0.1'"):
        check_range("0.1", "eps", 0.0, 1.0)
    with pytest.raises(TypeError, match="flag must be True or False, got 'no'"):
        check_bool("no", "flag")


def test_pixels_clip_and_labels():
    from linattn._validation import check_clip, check_labels, check_pixels

    assert check_clip(None) is None and check_clip((0, 1)) == (0.0, 1.0)
    for bad, kind in (("01", TypeError), (0.5, TypeError), ((1, 0), ValueError), ((0, float("nan")), ValueError)):
        with pytest.raises(kind, match="clip must be"):
            check_clip(bad)
    x = torch.tensor([[0.0, 1.0]])
    assert check_pixels(x, "x", (0.0, 1.0)) is x
    with pytest.raises(ValueError, match=r"x has values in \[-1, 1\], outside clip = \(0, 1\)"):
        check_pixels(x * 2 - 1, "x", (0.0, 1.0))
    with pytest.raises(TypeError, match="x must hold floating-point pixels, got dtype torch.uint8"):
        check_pixels(x.to(torch.uint8), "x", None)
    assert check_labels([0.0, 2.0], "y", n=2, n_classes=3).tolist() == [0, 2]
    with pytest.raises(ValueError, match="y has 2 labels for the 3 rows of X"):
        check_labels([0, 1], "y", n=3)
    with pytest.raises(ValueError, match="y holds class 3 but there are 3 classes"):
        check_labels([0, 3], "y", n_classes=3)
    with pytest.raises(ValueError, match="y must hold class indices >= 0"):
        check_labels([0, -1], "y")


def test_as_tensor_tells_overflow_from_dirty_input():
    from linattn._validation import ScaleError, as_tensor

    with pytest.raises(ValueError, match="X contains 1 NaN or inf entries; clean the input first"):
        as_tensor([[float("nan"), 1.0]], "X", dtype=torch.float32)
    with pytest.raises(ScaleError, match="X has entries up to 1e\\+39, beyond the range of torch.float32") as err:
        as_tensor([[1e39, 1.0]], "X", dtype=torch.float32)
    assert isinstance(err.value, ValueError) and isinstance(err.value, OverflowError)
    with pytest.raises(TypeError, match="X must be an array or a tensor of numbers, got the string 'abc'"):
        as_tensor("abc", "X")


def test_result_range_helpers():
    from linattn._validation import ScaleError, check_finite_result, check_no_underflow, power_of_two_scale, symmetrize

    with pytest.raises(ScaleError, match="G of X overflows torch.float64 .*; scale X down"):
        check_finite_result(torch.tensor([1.0, float("inf")], dtype=torch.float64), "G of X", "scale X down")
    with pytest.raises(ScaleError, match="underflows to zero for 1 nonzero rows of X"):
        check_no_underflow(torch.tensor([[1e-200], [1.0]], dtype=torch.float64), torch.tensor([[0.0], [1.0]]), "G of X")
    t = torch.tensor([3.0, -1.0], dtype=torch.float64)
    assert power_of_two_scale(t) is t  # ordinary scales are not touched
    s = power_of_two_scale(t * 1e200)
    assert 0.5 <= float(s.abs().max()) <= 1.0 and torch.equal(s / s[0], t / t[0])
    P = torch.tensor([[1.7e308, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert bool(torch.isfinite(symmetrize(P)).all()) and torch.equal(symmetrize(P), symmetrize(P).T)
