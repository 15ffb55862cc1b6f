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

Bad input (checked before any gradient is taken): ``x`` must hold floating-point values inside
``clip`` -- an input outside the box (standardised pixels in [-2, 2], 0-255 images) would be moved
into it by the projection, by more than eps, so it is a ValueError, not a silent perturbation of
the wrong size; integer images are a TypeError (scale them first). Every result lies in the eps
ball around x *and* in the clip box. Seeds are non-negative integers (a float is refused, not
truncated). A ``loss_fn`` whose gradient is NaN or inf is an error (the attack would return NaN).
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import torch

from ._validation import (
    as_tensor,
    check_bool,
    check_clip,
    check_int,
    check_option,
    check_pixels,
    check_range,
    check_seed,
)

__all__ = ["fgsm", "pgd", "mim", "random_sign_noise", "attack", "loss_closure"]

LossFn = Callable[[torch.Tensor], torch.Tensor]

ATTACKS = ("fgsm", "pgd", "mim", "noise")
LOSSES = ("ce", "mse", "margin")


def _check_x(x, clip, name: str = "x") -> torch.Tensor:
    """The clean input as a detached floating tensor (N, ...), N >= 1, inside ``clip``."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must hold real floating-point pixels, got dtype {t.dtype}")
    else:
        t = as_tensor(x, name, dtype=None)
        if t.is_floating_point():
            t = t.to(torch.float32)
    check_pixels(t, name, None)  # floating point (integer images: scale them first)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf entries; clean the input first")
    if t.ndim < 1 or t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(t.shape)}")
    return check_pixels(t, name, clip)


def _check_clip(clip) -> tuple[float, float] | None:
    return check_clip(clip, "clip")


def _check_loss_fn(loss_fn) -> LossFn:
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable x -> (N,) losses, got {type(loss_fn).__name__}")
    return loss_fn


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
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor of per-example losses, got {type(loss).__name__}")
    if loss.ndim != 1 or loss.shape[0] != x.shape[0]:
        raise ValueError(
            f"loss_fn must return one loss per example, shape ({x.shape[0]},), got {tuple(loss.shape)}"
        )
    if not loss.requires_grad:
        raise ValueError("loss_fn's losses do not depend on x (no gradient); compute them from the input it is given")
    (g,) = torch.autograd.grad(loss.sum(), xr, allow_unused=True)
    if g is None:
        raise ValueError("loss_fn's losses do not depend on x (no gradient); compute them from the input it is given")
    if not bool(torch.isfinite(g).all()):
        raise ValueError(
            "loss_fn has a NaN or inf gradient at x (the attack would return NaN); check the model's "
            "outputs on x (an overflow in its dtype?) or use a loss that is finite there"
        )
    return g.detach()


def fgsm(loss_fn: LossFn, x, *, eps: float = 0.3, clip=(0.0, 1.0)) -> torch.Tensor:
    """Fast gradient sign method: x' = clip(x + eps sign(d loss / d x)), same shape as x."""
    loss_fn = _check_loss_fn(loss_fn)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    x = _check_x(x, clip)
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
    loss_fn = _check_loss_fn(loss_fn)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    steps = check_int(steps, "steps")
    step_size = check_range(step_size, "step_size", 0.0, 1.0, lo_open=True)
    random_start = check_bool(random_start, "random_start")
    seed = check_seed(seed)
    x = _check_x(x, clip)
    x_adv = x.clone()
    if random_start:
        gen = torch.Generator(device=x.device).manual_seed(seed)
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
    loss_fn = _check_loss_fn(loss_fn)
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    steps = check_int(steps, "steps")
    mu = check_range(mu, "mu", 0.0, float("inf"))
    step_size = eps / steps if step_size is None else check_range(step_size, "step_size", 0.0, 1.0, lo_open=True)
    x = _check_x(x, clip)
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
    eps = _check_eps(eps)
    clip = _check_clip(clip)
    seed = check_seed(seed)
    x = _check_x(x, clip)
    gen = torch.Generator(device=x.device).manual_seed(seed)
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
    seed = check_seed(seed)
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
    if not callable(model):
        raise TypeError(f"model must be a callable x -> (N, C) outputs, got {type(model).__name__}")
    check_option(loss, "loss", LOSSES)
    yt = as_tensor(y, "y", ndim=(1, 2), dtype=None)
    is_index = not yt.is_floating_point()
    if is_index and (yt.ndim != 1 or bool((yt < 0).any())):
        raise ValueError(f"class indices y must be non-negative with shape (N,), got shape {tuple(yt.shape)}")
    if loss in ("ce", "margin") and not is_index:
        raise ValueError(f"loss={loss!r} needs integer class indices y of shape (N,), got dtype {yt.dtype}")
    if is_index:
        yt = yt.long()

    def _labels(f: torch.Tensor) -> torch.Tensor:
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != yt.shape[0]:
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"model output must have shape ({yt.shape[0]}, C), got {got}")
        if is_index and yt.numel():
            top = max(f.shape[1], 2)
            if int(yt.max()) >= top:
                raise ValueError(
                    f"y holds class {int(yt.max())} but the model has {f.shape[1]} outputs "
                    f"(classes 0..{top - 1}); relabel the classes or use a model with more outputs"
                )
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
            raise ValueError(f"y (the targets) has shape {tuple(yt.shape)}, which does not match the model output "
                             f"{tuple(f.shape)}; pass (N,) targets for one output or (N, C) for C")
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
