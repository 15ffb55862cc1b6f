"""l_inf attacks (FGSM, PGD, MIM) over a loss closure, and the random-sign control.

Every attack takes ``loss_fn(x) -> (N,)``, one loss per example (example j's loss may depend
only on x[j]), and ASCENDS it inside the l_inf ball of radius eps around x, intersected with
the valid pixel range ``clip`` (default (0, 1)); inputs are pixels scaled to [0, 1], so eps is
in the same units (eps = 0.3 is 0.3 * 255 grey levels) and must lie in [0, 1]. Inputs may have
any shape (N, ...). Randomness (PGD's random start, the control) comes from a seeded
``torch.Generator``: the same seed gives the same perturbation.

- FGSM (Goodfellow et al. 2015): x' = clip(x + eps sign(grad)).
- PGD (Madry et al. 2018): start x_0 = x + U(-eps, eps) (random start), then
  x_{k+1} = Proj(x_k + step sign(grad_k)); defaults eps 0.3, 40 steps, step 0.01.
- MIM (Dong et al. 2018): g_{k+1} = mu g_k + grad_k / ||grad_k||_1 (per example),
  x_{k+1} = Proj(x_k + step sign(g_{k+1})); defaults mu 1.0, 10 steps, step eps / steps, no random start.

Proj clips to [x - eps, x + eps] and to ``clip``.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import torch

from ._validation import as_tensor, check_int, check_option, check_range

__all__ = ["fgsm", "pgd", "mim", "random_sign_noise", "attack", "loss_closure"]

LossFn = Callable[[torch.Tensor], torch.Tensor]

ATTACKS = ("fgsm", "pgd", "mim", "noise")
LOSSES = ("ce", "mse", "margin")


def _check_x(x, name: str = "x") -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        t = x.detach()
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf entries; clean the input first")
    else:
        t = as_tensor(x, name, dtype=torch.float32)
    if t.ndim < 1 or t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(t.shape)}")
    return t


def _check_clip(clip) -> tuple[float, float] | None:
    if clip is None:
        return None
    lo, hi = (float(c) for c in clip)
    if not lo < hi:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip}")
    return lo, hi


def _check_eps(eps) -> float:
    return check_range(eps, "eps (inputs in [0, 1], so eps is a fraction of the pixel range)", 0.0, 1.0)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clip) -> torch.Tensor:
    x_adv = torch.maximum(torch.minimum(x_adv, x + eps), x - eps)
    if clip is not None:
        x_adv = x_adv.clamp(clip[0], clip[1])
    return x_adv


def _grad(loss_fn: LossFn, x: torch.Tensor) -> torch.Tensor:
    xr = x.detach().clone().requires_grad_(True)
    loss = loss_fn(xr)
    if loss.ndim != 1 or loss.shape[0] != x.shape[0]:
        raise ValueError(
            f"loss_fn must return one loss per example, shape ({x.shape[0]},), got {tuple(loss.shape)}"
        )
    (g,) = torch.autograd.grad(loss.sum(), xr)
    return g.detach()


def fgsm(loss_fn: LossFn, x, *, eps: float = 0.3, clip=(0.0, 1.0)) -> torch.Tensor:
    """Fast gradient sign method: x' = clip(x + eps sign(d loss / d x)), same shape as x."""
    x = _check_x(x)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    return _project(x + eps * torch.sign(_grad(loss_fn, x)), x, eps, clip).detach()


def pgd(
    loss_fn: LossFn,
    x,
    *,
    eps: float = 0.3,
    steps: int = 40,
    step_size: float = 0.01,
    random_start: bool = True,
    seed: int = 0,
    clip=(0.0, 1.0),
) -> torch.Tensor:
    """Projected gradient ascent in the l_inf ball (Madry et al. 2018), same shape as x.

    x_0 = Proj(x + U(-eps, eps)) if ``random_start`` else x; x_{k+1} = Proj(x_k + step_size sign(grad)).
    """
    x = _check_x(x)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    steps = check_int(steps, "steps")
    step_size = check_range(step_size, "step_size", 0.0, 1.0, lo_open=True)
    x_adv = x.clone()
    if random_start:
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        x_adv = _project(x + eps * (2.0 * u - 1.0), x, eps, clip)
    for _ in range(steps):
        x_adv = _project(x_adv + step_size * torch.sign(_grad(loss_fn, x_adv)), x, eps, clip)
    return x_adv.detach()


def mim(
    loss_fn: LossFn,
    x,
    *,
    eps: float = 0.3,
    steps: int = 10,
    mu: float = 1.0,
    step_size: float | None = None,
    clip=(0.0, 1.0),
) -> torch.Tensor:
    """Momentum iterative method (Dong et al. 2018), same shape as x.

    g_{k+1} = mu g_k + grad_k / ||grad_k||_1 (l1 norm per example, over all its entries),
    x_{k+1} = Proj(x_k + step_size sign(g_{k+1})), step_size = eps / steps by default; x_0 = x.
    """
    x = _check_x(x)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    steps = check_int(steps, "steps")
    mu = check_range(mu, "mu", 0.0, float("inf"))
    step_size = eps / steps if step_size is None else check_range(step_size, "step_size", 0.0, 1.0, lo_open=True)
    g = torch.zeros_like(x)
    x_adv = x.clone()
    for _ in range(steps):
        grad = _grad(loss_fn, x_adv)
        l1 = grad.abs().reshape(x.shape[0], -1).sum(dim=1).clamp_min(1e-12)
        g = mu * g + grad / l1.reshape((-1,) + (1,) * (x.ndim - 1))
        x_adv = _project(x_adv + step_size * torch.sign(g), x, eps, clip)
    return x_adv.detach()


def random_sign_noise(x, eps: float, seed: int = 0, *, clip=(0.0, 1.0)) -> torch.Tensor:
    """The control of the same size: x' = clip(x + eps s), s uniform in {-1, +1} per entry (seeded)."""
    x = _check_x(x)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    s = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
    return _project(x + eps * s, x, eps, clip)


def attack(
    name: Literal["fgsm", "pgd", "mim", "noise"],
    loss_fn: LossFn,
    x,
    *,
    eps: float = 0.3,
    seed: int = 0,
    clip=(0.0, 1.0),
    **kwargs,
) -> torch.Tensor:
    """Dispatch by name: ``"fgsm"``, ``"pgd"``, ``"mim"`` or ``"noise"`` (random_sign_noise, the control).

    ``kwargs`` go to the attack (steps, step_size, random_start, mu); ``seed`` is used by PGD and noise.
    """
    check_option(name, "attack", ATTACKS)
    if name == "fgsm":
        return fgsm(loss_fn, x, eps=eps, clip=clip, **kwargs)
    if name == "pgd":
        return pgd(loss_fn, x, eps=eps, seed=seed, clip=clip, **kwargs)
    if name == "mim":
        return mim(loss_fn, x, eps=eps, clip=clip, **kwargs)
    if kwargs:  # "noise"
        raise TypeError(f"random_sign_noise takes no {sorted(kwargs)}; drop them for attack='noise'")
    return random_sign_noise(x, eps, seed, clip=clip)


def loss_closure(
    model: Callable[[torch.Tensor], torch.Tensor],
    y,
    loss: Literal["ce", "mse", "margin"] = "ce",
) -> LossFn:
    """Per-example loss x -> (N,) of a model x -> f (N, C) against labels y, for the attacks.

    The dtype of ``y`` says what it is: an integer tensor/array holds class indices (N,), a float
    one holds regression targets (N,) or (N, C).
    ``"ce"``: cross-entropy, y class indices (needs C >= 2).
    ``"mse"``: sum_c (f_c - y_c)^2; class indices are coded +-1 (class 1 -> +1, class 0 -> -1) for
        C = 1 and one-hot for C >= 2.
    ``"margin"``: max_{j != y} f_j - f_y for C >= 2, -s f with s = +-1 (class 1 -> +1) for C = 1,
        y class indices; positive means misclassified.
    """
    yt = y if isinstance(y, torch.Tensor) else torch.as_tensor(y)
    check_option(loss, "loss", LOSSES)
    is_index = not yt.is_floating_point()
    if is_index and (yt.ndim != 1 or bool((yt < 0).any())):
        raise ValueError(f"class indices y must be non-negative with shape (N,), got shape {tuple(yt.shape)}")
    if not is_index and not bool(torch.isfinite(yt).all()):
        raise ValueError("y contains NaN or inf entries")
    if loss in ("ce", "margin") and not is_index:
        raise ValueError(f"loss={loss!r} needs integer class indices y of shape (N,), got dtype {yt.dtype}")
    if is_index:
        yt = yt.long()

    def _labels(f: torch.Tensor) -> torch.Tensor:
        if f.ndim != 2 or f.shape[0] != yt.shape[0]:
            raise ValueError(f"model output must have shape ({yt.shape[0]}, C), got {tuple(f.shape)}")
        return yt.to(device=f.device)

    def ce(x: torch.Tensor) -> torch.Tensor:
        f = model(x)
        lab = _labels(f)
        if f.shape[1] < 2:
            raise ValueError("loss='ce' needs C >= 2 outputs; use 'mse' or 'margin' for a scalar output")
        return torch.nn.functional.cross_entropy(f, lab, reduction="none")

    def mse(x: torch.Tensor) -> torch.Tensor:
        f = model(x)
        lab = _labels(f)
        if not is_index:
            tgt = lab.to(f.dtype).reshape(f.shape[0], -1)
        elif f.shape[1] == 1:
            tgt = (2.0 * lab.to(f.dtype) - 1.0)[:, None]
        else:
            tgt = torch.nn.functional.one_hot(lab, f.shape[1]).to(f.dtype)
        if tgt.shape != f.shape:
            raise ValueError(f"targets of shape {tuple(tgt.shape)} do not match the output {tuple(f.shape)}")
        return ((f - tgt) ** 2).sum(dim=1)

    def margin(x: torch.Tensor) -> torch.Tensor:
        f = model(x)
        lab = _labels(f)
        if f.shape[1] == 1:
            return -(2.0 * lab.to(f.dtype) - 1.0) * f[:, 0]
        true = f.gather(1, lab[:, None])[:, 0]
        other = f.masked_fill(torch.nn.functional.one_hot(lab, f.shape[1]).bool(), -math.inf)
        return other.amax(dim=1) - true

    return {"ce": ce, "mse": mse, "margin": margin}[loss]
