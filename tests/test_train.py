"""Tests of linattn.train: loss goes down, determinism, the optimiser's L2 semantics, recorded
kernels, the lazy regime (wide net + small-lr GD = NTK gradient flow), adversarial training."""

import pytest
import torch

from linattn.attacks import loss_closure, pgd
from linattn.kernels import ntk_inf
from linattn.models import mlp_attn, relu_net, unit_rows
from linattn.ntk import empirical_ntk
from linattn.predictors import gd_time, ntk_flow
from linattn.train import TrainingDivergedError, TrainResult, adversarial_train, penalty_share, train


def blobs(n=60, d=10, C=3, seed=0):
    """C Gaussian blobs with positive coordinates (pixels-like, in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(C, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % C
    X = (centres[y] + 0.15 * torch.randn(n, d, generator=g, dtype=torch.float64)).clamp(0.01, 1.0)
    return X, y


def test_training_decreases_the_loss_and_fits():
    X, y = blobs()
    net = relu_net(10, 64, 3, seed=0)
    res = train(net, X, y, epochs=30, lr=1e-2, batch_size=16, progress=False)
    assert isinstance(res, TrainResult)
    assert len(res.loss) == len(res.accuracy) == 31 and res.steps == 30 * 4
    assert res.loss[-1] < 0.5 * res.loss[0]
    assert res.accuracy[-1] > 0.9 > res.accuracy[0]
    # the recorded final loss is the model's own, on the whole training set
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(net(X), y).item()
    assert res.final_loss == pytest.approx(direct, rel=1e-5)
    assert torch.equal(res.state["W"], net.W.detach())


def test_mse_on_pm1_targets_and_full_batch_gd():
    X, y = blobs(C=2)
    t = y.to(torch.float64) * 2 - 1
    net = mlp_attn(X, 128, 1, seed=1)
    res = train(net, X, t, loss="mse", optimizer="gd", lr=0.5, batch_size=None, weight_decay=0.0,
                epochs=50, progress=False)
    assert res.steps == 50 and res.loss[-1] < res.loss[0]
    with torch.no_grad():
        assert res.final_loss == pytest.approx(((net(X)[:, 0] - t) ** 2).mean().item(), rel=1e-5)


def test_same_seed_same_numbers_different_seed_different():
    X, y = blobs()
    runs = [train(relu_net(10, 32, 3, seed=0), X, y, epochs=5, lr=1e-2, batch_size=8, seed=s, progress=False)
            for s in (4, 4, 5)]
    assert runs[0].loss == runs[1].loss and torch.equal(runs[0].state["W"], runs[1].state["W"])
    assert runs[0].loss != runs[2].loss  # another shuffling order


def test_weight_decay_is_the_coupled_l2_penalty():
    """One step: GD gives W - lr (grad + wd W); Adam's first step is W - lr g / (|g| + eps) with g = grad + wd W."""
    X, y = blobs(n=12)
    lr, wd = 0.1, 0.05
    for opt in ("gd", "adam"):
        net, ref = relu_net(10, 8, 3, seed=2, dtype=torch.float64), relu_net(10, 8, 3, seed=2, dtype=torch.float64)
        loss = torch.nn.functional.cross_entropy(ref(X), y)
        (grad,) = torch.autograd.grad(loss, ref.W)
        g = grad + wd * ref.W.detach()
        want = ref.W.detach() - (lr * g if opt == "gd" else lr * g / (g.abs() + 1e-8))
        train(net, X, y, optimizer=opt, lr=lr, weight_decay=wd, batch_size=None, epochs=1, progress=False)
        torch.testing.assert_close(net.W.detach(), want, rtol=1e-10, atol=1e-12)


def _reference_adam_run(net, X, y, *, lr, wd, epochs, batch, seed):
    """The training loop as it was before ``penalty`` existed: torch's Adam with its own coupled decay."""
    H = net.features(X)
    opt = torch.optim.Adam([net.W], lr=lr, weight_decay=wd)
    gen, n = torch.Generator().manual_seed(seed), X.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net.forward_features(H[idx]), y[idx]).backward()
            opt.step()


def test_the_l2_penalty_is_the_default_and_bit_identical_to_torchs_coupled_decay():
    X, y = blobs()
    kw = dict(epochs=4, lr=1e-2, batch_size=16, weight_decay=1e-2, seed=3, progress=False)
    default, explicit, ref = (relu_net(10, 32, 3, seed=1) for _ in range(3))
    train(default, X, y, **kw)
    train(explicit, X, y, penalty="l2", **kw)
    _reference_adam_run(ref, X, y, lr=1e-2, wd=1e-2, epochs=4, batch=16, seed=3)
    assert torch.equal(default.W, explicit.W) and torch.equal(default.W, ref.W)


class _NoDataGradient(torch.nn.Module):
    """Logits that do not depend on W (but W is in the graph): the data gradient of W is exactly 0."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x[:, :3] + 0.0 * self.W.sum()


def test_the_anchored_penalty_keeps_weights_without_a_data_gradient_at_w0():
    """(wd/2)||W - W_0||^2 is 0 with zero gradient at W_0; v1's (wd/2)||W||^2 shrinks W all the same."""
    X, y = blobs()
    for opt in ("adam", "gd"):
        anchored, l2 = _NoDataGradient(), _NoDataGradient()
        W0 = anchored.W.detach().clone()
        kw = dict(epochs=5, lr=0.1, batch_size=16, weight_decay=0.1, optimizer=opt, progress=False)
        train(anchored, X, y, penalty="anchored", **kw)
        train(l2, X, y, **kw)
        assert torch.equal(anchored.W.detach(), W0)
        assert l2.W.detach().norm() < 0.9 * W0.norm()


def test_the_anchored_penalty_adds_wd_times_w_minus_w0_to_the_gradient():
    """Two full-batch GD steps by hand: W_2 = W_1 - lr (grad(W_1) + wd (W_1 - W_0))."""
    X, y = blobs(n=12)
    lr, wd = 0.1, 0.5
    net, ref = relu_net(10, 8, 3, seed=2, dtype=torch.float64), relu_net(10, 8, 3, seed=2, dtype=torch.float64)
    W = ref.W.detach().clone()
    W0 = W.clone()
    for _ in range(2):
        ref.W.data.copy_(W)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(ref(X), y), ref.W)
        W = W - lr * (grad + wd * (W - W0))
    train(net, X, y, optimizer="gd", lr=lr, weight_decay=wd, batch_size=None, epochs=2, penalty="anchored",
          progress=False)
    torch.testing.assert_close(net.W.detach(), W, rtol=1e-10, atol=1e-12)


def test_penalty_share_counts_coordinates_where_the_penalty_wins():
    X, y = blobs()
    net = relu_net(10, 64, 3, seed=0, dtype=torch.float64)
    none, huge = (penalty_share(net, X, y, weight_decay=wd, loss="ce") for wd in (0.0, 1e6))
    assert none["share"] == 0.0 and huge["share"] == 1.0 and huge["share_live"] == 1.0
    assert none["live"] == huge["live"] > 0.5
    anchored = penalty_share(net, X, y, weight_decay=1e6, loss="ce", anchor=[net.W.detach()])
    assert anchored["share"] == 0.0  # lambda (W - W_0) = 0 at W_0
    # NTK parametrisation: the data gradient per coordinate ~ m^{-1/2}, the weights ~ 1
    narrow, wide = (penalty_share(relu_net(10, m, 3, seed=0, dtype=torch.float64), X, y, weight_decay=1e-3,
                                  loss="ce")["ratio"] for m in (64, 4096))
    assert 4 < wide / narrow < 16  # sqrt(4096 / 64) = 8
    with pytest.raises(ValueError, match="anchor"):
        penalty_share(net, X, y, weight_decay=1.0, loss="ce", anchor=[])


def test_records_the_empirical_ntk_at_chosen_epochs():
    X, y = blobs()
    net = relu_net(10, 64, 3, seed=0)
    theta0 = empirical_ntk(net, X[:7])
    res = train(net, X, y, epochs=6, lr=1e-2, record_ntk_at=[0, 3, 6], X_ntk=X[:7], progress=False)
    assert sorted(res.ntk) == [0, 3, 6] and res.ntk[0].dtype == torch.float64
    torch.testing.assert_close(res.ntk[0], theta0)
    torch.testing.assert_close(res.ntk[6], empirical_ntk(net, X[:7]))
    assert not torch.equal(res.ntk[6], res.ntk[0])  # training moved the kernel


def lazy_gap(width: int) -> tuple[float, float]:
    """Relative gap between full-batch GD on a width-m net and the NTK flow, on train and held-out points."""
    g = torch.Generator().manual_seed(0)
    X = unit_rows(torch.randn(16, 8, generator=g, dtype=torch.float64))
    Xt = unit_rows(torch.randn(6, 8, generator=g, dtype=torch.float64))
    y = torch.sign(X[:, 0] + 1e-3)
    net = relu_net(8, width, 1, seed=1, dtype=torch.float64)
    with torch.no_grad():
        f0, f0t = net(X)[:, 0], net(Xt)[:, 0]
    theta0, theta0_x = empirical_ntk(net, X), empirical_ntk(net, Xt, X)
    lr, steps = 0.1, 200  # kernel time t = 2.5; the GD-vs-flow discretisation gap is < 1e-3 here
    train(net, X, y, loss="mse", optimizer="gd", lr=lr, batch_size=None, weight_decay=0.0, epochs=steps,
          progress=False)
    with torch.no_grad():
        f, ft = net(X)[:, 0], net(Xt)[:, 0]
    t = gd_time(lr, steps, 16)
    pred = ntk_flow(theta0, theta0, y, t, f0_train=f0, f0_test=f0)
    pred_t = ntk_flow(theta0, theta0_x, y, t, f0_train=f0, f0_test=f0t)
    gap = float((f - pred).norm() / (f - f0).norm())
    gap_t = float((ft - pred_t).norm() / (ft - f0t).norm())
    return gap, gap_t


def test_wide_net_under_small_lr_gd_follows_the_ntk_gradient_flow():
    """The lazy regime at small scale: the gap to the linearised flow is small at m = 8192 and
    shrinks with width (kernel drift is O(m^{-1/2}))."""
    narrow, narrow_t = lazy_gap(64)
    wide, wide_t = lazy_gap(8192)
    assert wide < 0.02 and wide_t < 0.05
    assert wide < narrow / 4 and wide_t < narrow_t / 4


def test_and_the_limit_kernel_predicts_the_wide_net_too():
    g = torch.Generator().manual_seed(0)
    X = unit_rows(torch.randn(16, 8, generator=g, dtype=torch.float64))
    y = torch.sign(X[:, 0] + 1e-3)
    net = relu_net(8, 8192, 1, seed=1, dtype=torch.float64)
    with torch.no_grad():
        f0 = net(X)[:, 0]
    train(net, X, y, loss="mse", optimizer="gd", lr=0.1, batch_size=None, weight_decay=0.0, epochs=200,
          progress=False)
    K = ntk_inf(net, X)
    pred = ntk_flow(K, K, y, gd_time(0.1, 200, 16), f0_train=f0, f0_test=f0)
    with torch.no_grad():
        f = net(X)[:, 0]
    assert float((f - pred).norm() / (f - f0).norm()) < 0.05


def test_bad_input_is_refused_with_a_useful_message():
    X, y = blobs()
    net = relu_net(10, 8, 3)
    with pytest.raises(ValueError, match="loss"):
        train(net, X, y, loss="hinge", epochs=1, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        train(net, X, y, optimizer="lbfgs", epochs=1, progress=False)
    with pytest.raises(ValueError, match="X_ntk"):
        train(net, X, y, epochs=1, record_ntk_at=[0], progress=False)
    with pytest.raises(ValueError, match="epoch 5"):
        train(net, X, y, epochs=1, record_ntk_at=[5], X_ntk=X, progress=False)
    with pytest.raises(ValueError, match="5 labels for the 60 rows of X"):
        train(net, X, y[:5], epochs=1, progress=False)
    with pytest.raises(ValueError, match="outputs"):
        train(net, X, y + 7, epochs=1, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        train(net, X * float("nan"), y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(net, X, y, epochs=1, lr=0.0, progress=False)
    with pytest.raises(ValueError, match="penalty must be 'l2' .* or 'anchored' .*got 'l1'"):
        train(net, X, y, epochs=1, penalty="l1", progress=False)
    with pytest.raises(ValueError, match="eps"):
        adversarial_train(net, X, y, eps=1.5, epochs=1, progress=False)


def test_adversarial_training_with_eps_zero_is_clean_training():
    X, y = blobs(n=32)
    clean = train(relu_net(10, 16, 3, seed=0), X, y, epochs=3, lr=1e-2, batch_size=8, progress=False)
    adv = adversarial_train(relu_net(10, 16, 3, seed=0), X, y, eps=0.0, steps=2, epochs=3, lr=1e-2,
                            batch_size=8, progress=False)
    assert adv.loss == pytest.approx(clean.loss, rel=1e-5)


def test_adversarial_training_is_deterministic_and_makes_the_model_robust():
    """Madry training on 64 MNIST 3-vs-8 images: under a fresh PGD attack (another seed, 20 steps)
    the adversarially trained net keeps most of its accuracy, the standard one loses it."""
    from linattn.data import task_data

    td = task_data("mnist_3v8", 64, 0)
    X, y = td.X_train.float(), td.y_train
    kw = dict(epochs=30, lr=2e-2, batch_size=16, weight_decay=0.0, progress=False)
    std_net, adv_net, adv_net2 = (relu_net(784, 64, 2, seed=0) for _ in range(3))
    train(std_net, X, y, **kw)
    a1 = adversarial_train(adv_net, X, y, eps=0.1, steps=5, step_size=0.025, seed=1, **kw)
    a2 = adversarial_train(adv_net2, X, y, eps=0.1, steps=5, step_size=0.025, seed=1, **kw)
    assert a1.loss == a2.loss and torch.equal(a1.state["W"], a2.state["W"])

    def robust_accuracy(net):
        x_adv = pgd(loss_closure(net, y), X, eps=0.1, steps=20, step_size=0.01, seed=9)
        with torch.no_grad():
            return (net(x_adv).argmax(1) == y).double().mean().item()

    assert robust_accuracy(adv_net) > 0.8 and robust_accuracy(std_net) < 0.5


def test_a_step_that_diverges_on_the_last_batch_is_reported_not_stored():
    """The batch loss is checked before each step; the loss after the last step of an epoch is checked too
    (one batch, lr 1e30: the first step overflows float32), so no inf enters the history."""
    X = torch.tensor([[0.64, 0.27, 0.04]])
    net = relu_net(3, 4, 1, seed=0, dtype=torch.float32)
    with pytest.raises(TrainingDivergedError, match="lr = 1e[+]30 is too large"):
        train(net, X, torch.tensor([[1.0]]), loss="mse", lr=1e30, epochs=1, progress=False,
                        weight_decay=0.0)
