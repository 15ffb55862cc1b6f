"""FGSM, PGD, MIM and the random-sign control (linattn.attacks)."""
import pytest
import torch

from linattn.attacks import attack, fgsm, loss_closure, mim, pgd, random_sign_noise
from linattn.models import relu_net

TOL = 1e-6  # float32 round-off of x + eps


def _images(n=16, shape=(1, 6, 6), seed=0, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand((n, *shape), generator=g)


def _linear_model(d, C, seed=1):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, C, generator=g)
    return lambda x: x.flatten(1) @ W, W


ATTACKS = {
    "fgsm": lambda fn, x, eps: fgsm(fn, x, eps=eps),
    "pgd": lambda fn, x, eps: pgd(fn, x, eps=eps, seed=3),
    "mim": lambda fn, x, eps: mim(fn, x, eps=eps),
    "noise": lambda fn, x, eps: random_sign_noise(x, eps, seed=3),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
def test_perturbation_in_ball_and_pixel_range(name, eps):
    x = _images()
    model, _ = _linear_model(36, 4)
    fn = loss_closure(model, torch.arange(16) % 4, "ce")
    xa = ATTACKS[name](fn, x, eps)
    assert xa.shape == x.shape and xa.dtype == x.dtype
    assert float((xa - x).abs().max()) <= eps + TOL
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


def test_attacks_raise_the_loss_more_than_random_control():
    torch.manual_seed(0)
    d, C, n = 20, 3, 64
    net = relu_net(d, 256, C, seed=0)
    x = _images(n, (d,), seed=1, lo=0.2, hi=0.8)
    with torch.no_grad():
        y = net(x).argmax(1)  # labels the model gets right: the attacks must push them away
    fn = loss_closure(net, y, "ce")
    eps = 0.1
    advs = {name: ATTACKS[name](fn, x, eps) for name in ("fgsm", "pgd", "mim")}
    with torch.no_grad():
        base = fn(x).mean()
        control = fn(random_sign_noise(x, eps, seed=0)).mean() - base
        gains = {name: float(fn(xa).mean() - base) for name, xa in advs.items()}
    for name, gain in gains.items():
        assert gain > 0 and gain > 5 * abs(float(control)), (name, gains, float(control))


def test_fgsm_linear_loss_is_analytic_worst_case():
    # loss = w . x: the l_inf worst case is x + eps sign(w); points away from the borders.
    g = torch.Generator().manual_seed(2)
    x = 0.3 + 0.4 * torch.rand(10, 25, generator=g, dtype=torch.float64)
    w = torch.randn(25, generator=g, dtype=torch.float64)
    fn = lambda z: z @ w  # noqa: E731
    eps = 0.2
    torch.testing.assert_close(fgsm(fn, x, eps=eps), x + eps * torch.sign(w).expand_as(x), rtol=0, atol=1e-15)
    # PGD and MIM reach the same corner of the ball (PGD: 40 x 0.01 = 0.4 >= 2 eps from any start)
    torch.testing.assert_close(pgd(fn, x, eps=eps, seed=0), x + eps * torch.sign(w), rtol=0, atol=1e-12)
    torch.testing.assert_close(mim(fn, x, eps=eps), x + eps * torch.sign(w), rtol=0, atol=1e-12)


def test_mim_without_momentum_is_iterative_fgsm():
    x = _images(8, (3, 4, 4), seed=4, lo=0.1, hi=0.9)
    net = relu_net(48, 32, 5, seed=1)
    fn = loss_closure(lambda z: net(z.flatten(1)), torch.arange(8) % 5, "ce")
    ifgsm = pgd(fn, x, eps=0.2, steps=10, step_size=0.02, random_start=False)
    torch.testing.assert_close(mim(fn, x, eps=0.2, steps=10, mu=0.0), ifgsm, rtol=0, atol=0)


def test_mim_momentum_hand_trajectory():
    # loss -|x - 0.55| from x = 0.5, steps of 0.03: the gradient sign is +, +, -, - at
    # 0.50, 0.53, 0.56, 0.59. With mu = 1, g = 1, 2, 1, 0 -> x ends at 0.59 (the momentum carries it
    # past the peak); with mu = 0 it oscillates 0.53, 0.56, 0.53, 0.56.
    x = torch.tensor([[0.5]], dtype=torch.float64)
    fn = lambda z: -(z[:, 0] - 0.55).abs()  # noqa: E731
    assert float(mim(fn, x, eps=0.3, steps=4, mu=1.0, step_size=0.03)) == pytest.approx(0.59, abs=1e-12)
    assert float(mim(fn, x, eps=0.3, steps=4, mu=0.0, step_size=0.03)) == pytest.approx(0.56, abs=1e-12)


def test_mim_normalises_each_example_by_its_own_l1_norm():
    # two examples whose gradients differ by a factor 1000: per-example l1 normalisation makes the
    # momentum terms comparable, so both move by the same steps
    x = torch.full((2, 3), 0.5, dtype=torch.float64)
    scale = torch.tensor([[1.0], [1000.0]], dtype=torch.float64)
    fn = lambda z: (scale * (z - 0.5) * torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)).sum(1)  # noqa: E731
    xa = mim(fn, x, eps=0.1, steps=5)
    torch.testing.assert_close(xa[0], xa[1], rtol=0, atol=1e-15)


def test_determinism_and_seed():
    x = _images()
    model, _ = _linear_model(36, 4)
    fn = loss_closure(model, torch.arange(16) % 4, "ce")
    a = pgd(fn, x, eps=0.3, steps=5, seed=7)
    torch.testing.assert_close(pgd(fn, x, eps=0.3, steps=5, seed=7), a, rtol=0, atol=0)
    assert not torch.equal(pgd(fn, x, eps=0.3, steps=1, seed=8), pgd(fn, x, eps=0.3, steps=1, seed=7))
    n1 = random_sign_noise(x, 0.1, seed=5)
    torch.testing.assert_close(random_sign_noise(x, 0.1, seed=5), n1, rtol=0, atol=0)
    torch.testing.assert_close(attack("noise", fn, x, eps=0.1, seed=5), n1, rtol=0, atol=0)
    torch.testing.assert_close(attack("pgd", fn, x, eps=0.3, seed=7, steps=5), a, rtol=0, atol=0)


def test_random_sign_noise_has_size_eps_away_from_borders():
    x = _images(lo=0.3, hi=0.7)
    delta = random_sign_noise(x, 0.2, seed=0) - x
    torch.testing.assert_close(delta.abs(), torch.full_like(x, 0.2), rtol=0, atol=TOL)
    frac_pos = float((delta > 0).float().mean())
    assert 0.4 < frac_pos < 0.6  # 576 fair signs


def test_loss_closure_values():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(6, 3, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    model = lambda x: x  # noqa: E731  the "model" returns its input as logits
    ce = loss_closure(model, y, "ce")(f)
    torch.testing.assert_close(ce, -torch.log_softmax(f, 1)[torch.arange(6), y])
    mse = loss_closure(model, y, "mse")(f)
    torch.testing.assert_close(mse, ((f - torch.eye(3)[y]) ** 2).sum(1))
    margin = loss_closure(model, y, "margin")(f)
    other = f.clone()
    other[torch.arange(6), y] = -float("inf")
    torch.testing.assert_close(margin, other.max(1).values - f[torch.arange(6), y])
    # scalar output: class 1 -> +1, class 0 -> -1
    s = torch.tensor([[0.5], [-2.0]])
    torch.testing.assert_close(loss_closure(model, torch.tensor([1, 0]), "mse")(s), torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(loss_closure(model, torch.tensor([1, 0]), "margin")(s), torch.tensor([-0.5, -2.0]))
    # float targets are used as they are
    torch.testing.assert_close(loss_closure(model, torch.tensor([0.5, 0.0]), "mse")(s), torch.tensor([0.0, 4.0]))


def test_errors():
    x = _images(4)
    model, _ = _linear_model(36, 4)
    fn = loss_closure(model, torch.arange(4), "ce")
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="eps"):
            fgsm(fn, x, eps=eps)
        with pytest.raises(ValueError, match="eps"):
            random_sign_noise(x, eps)
    with pytest.raises(ValueError, match="one loss per example"):
        fgsm(lambda z: z.sum(), x)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pgd(fn, bad)
    with pytest.raises(ValueError, match="attack"):
        attack("cw", fn, x)
    with pytest.raises(ValueError, match="clip"):
        fgsm(fn, x, clip=(1.0, 0.0))
    with pytest.raises(ValueError, match="class indices"):
        loss_closure(model, torch.tensor([0.5, 1.0]), "ce")
    with pytest.raises(ValueError, match="loss"):
        loss_closure(model, torch.arange(4), "hinge")
    with pytest.raises(ValueError, match="C >= 2"):
        loss_closure(lambda z: z.flatten(1)[:, :1], torch.arange(4) % 2, "ce")(x)
