"""Optimisers and schedulers against torch.optim: same parameters, same gradients, same numbers."""

import json

import numpy as np
import pytest

from minitorch_alexnet import backend as B
from minitorch_alexnet import optim
from minitorch_alexnet.nn.module import Parameter

try:  # the oracle; tests that need it call pytest.importorskip("torch")
    import torch
except ImportError:
    torch = None

SHAPES = [(3, 4), (5,), (2, 3, 3)]
STEPS = 7


@pytest.fixture(autouse=True)
def _numpy_backend():
    with B.use_backend("numpy"):
        yield


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    if torch is None:
        return ours, None
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    return ours, theirs


def _grads(step, rng):
    """Gradients for one step; the second parameter has none on every third step (skipped)."""
    gs = [rng.standard_normal(s) for s in SHAPES]
    if step % 3 == 2:
        gs[1] = None
    return gs


def _set_grads(ours, theirs, gs):
    for p, t, g in zip(ours, theirs, gs):
        p.grad = None if g is None else g.copy()
        t.grad = None if g is None else torch.tensor(g.copy())


def _assert_same(ours, theirs, tol=1e-12):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=tol, atol=tol)


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.1),
]


@pytest.mark.torch
@pytest.mark.parametrize(
    "kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items())
)
def test_sgd_matches_torch(kw):
    pytest.importorskip("torch")
    ours, theirs = _pair()
    opt = optim.SGD(ours, **kw)
    ref = torch.optim.SGD(theirs, **kw)
    rng = np.random.default_rng(1)
    for step in range(STEPS):
        _set_grads(ours, theirs, _grads(step, rng))
        opt.step()
        ref.step()
        _assert_same(ours, theirs)
    if kw.get("momentum"):
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(
                opt.state[p]["momentum_buffer"], ref.state[t]["momentum_buffer"].numpy(), rtol=1e-12
            )


ADAM_CASES = [
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.torch
@pytest.mark.parametrize("name,kw", ADAM_CASES)
def test_adam_matches_torch(name, kw):
    pytest.importorskip("torch")
    ours, theirs = _pair()
    opt = getattr(optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, **kw)
    rng = np.random.default_rng(2)
    for step in range(STEPS):
        _set_grads(ours, theirs, _grads(step, rng))
        opt.step()
        ref.step()
        _assert_same(ours, theirs)
    for p, t in zip(ours, theirs):
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(opt.state[p][key], ref.state[t][key].numpy(), rtol=1e-12)
        assert opt.state[p]["step"] == int(ref.state[t]["step"])


def test_param_groups_have_their_own_lr():
    pytest.importorskip("torch")
    ours, theirs = _pair()
    opt = optim.SGD([{"params": ours[:1], "lr": 1.0}, {"params": ours[1:]}], lr=0.1)
    ref = torch.optim.SGD([{"params": theirs[:1], "lr": 1.0}, {"params": theirs[1:]}], lr=0.1)
    rng = np.random.default_rng(3)
    for step in range(3):
        _set_grads(ours, theirs, _grads(step, rng))
        opt.step()
        ref.step()
    _assert_same(ours, theirs)


def test_zero_grad():
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=0.1)
    for p in ours:
        p.grad = np.ones(p.shape)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in ours)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_parameters_without_grad_are_not_touched():
    ours, _ = _pair()
    before = [p.data.copy() for p in ours]
    opt = optim.Adam(ours, lr=0.1, weight_decay=0.5)
    ours[0].grad = np.ones(ours[0].shape)
    ours[2].requires_grad = False
    ours[2].grad = np.ones(ours[2].shape)
    opt.step()
    assert not np.array_equal(ours[0].data, before[0])
    np.testing.assert_array_equal(ours[1].data, before[1])
    np.testing.assert_array_equal(ours[2].data, before[2])
    assert ours[1] not in opt.state


def test_invalid_arguments():
    ours, _ = _pair()
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(ours, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.SGD(ours, lr=-1.0)
    with pytest.raises(ValueError):
        optim.Adam(ours, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def _host_copy(state):
    """What a checkpoint does: arrays to fresh host copies, the rest through JSON."""
    out = {"state": {}, "param_groups": json.loads(json.dumps(state["param_groups"]))}
    for k, s in state["state"].items():
        out["state"][int(k)] = {
            n: (np.array(v) if hasattr(v, "shape") else v) for n, v in s.items()
        }
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
        lambda ps: optim.AdamW(ps, lr=0.01),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_state_dict_round_trip_continues_identically(make):
    rng = np.random.default_rng(4)
    grads = [_grads(s, rng) for s in range(6)]
    a, _ = _pair()
    b, _ = _pair()
    opt_a = make(a)
    sched_a = optim.OneCycleLR(opt_a, max_lr=0.1, total_steps=6)
    opt_b = make(b)
    sched_b = optim.OneCycleLR(opt_b, max_lr=0.1, total_steps=6)
    for s in range(3):
        for ps, opt, sched in ((a, opt_a, sched_a), (b, opt_b, sched_b)):
            for p, g in zip(ps, grads[s]):
                p.grad = None if g is None else g.copy()
            opt.step()
            sched.step()
    # a fresh optimiser + scheduler for b's parameters, restored from saved state
    saved_opt = _host_copy(opt_b.state_dict())
    saved_sched = json.loads(json.dumps(sched_b.state_dict()))
    opt_b = make(b)
    sched_b = optim.OneCycleLR(opt_b, max_lr=0.1, total_steps=6)
    opt_b.load_state_dict(saved_opt)
    sched_b.load_state_dict(saved_sched)
    for s in range(3, 6):
        for ps, opt, sched in ((a, opt_a, sched_a), (b, opt_b, sched_b)):
            for p, g in zip(ps, grads[s]):
                p.grad = None if g is None else g.copy()
            opt.step()
            sched.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)
    assert sched_a.get_last_lr() == sched_b.get_last_lr()


def test_load_state_dict_rejects_other_model():
    a, _ = _pair()
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    for p in a:
        p.grad = np.ones(p.shape)
    opt.step()
    state = opt.state_dict()
    other = optim.SGD([Parameter(np.zeros(3))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="another model"):
        other.load_state_dict(state)


def test_state_loads_into_float32_params():
    """Saved float64 host arrays take the dtype (and library) of the parameter they belong to."""
    a, _ = _pair()
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    for p in a:
        p.grad = np.ones(p.shape)
    opt.step()
    state = _host_copy(opt.state_dict())
    b = [Parameter(np.zeros(s, dtype=np.float32)) for s in SHAPES]
    opt_b = optim.SGD(b, lr=0.1, momentum=0.9)
    opt_b.load_state_dict(state)
    assert all(opt_b.state[p]["momentum_buffer"].dtype == np.float32 for p in b)


# ---------------------------------------------------------------- schedulers
def _sched_pair(make_ours, make_ref, opt_kw=None, adam=False):
    ours, theirs = _pair()
    opt_kw = opt_kw or dict(lr=0.1, momentum=0.9)
    if adam:
        opt, ref_opt = optim.Adam(ours, lr=0.1), torch.optim.Adam(theirs, lr=0.1)
    else:
        opt, ref_opt = optim.SGD(ours, **opt_kw), torch.optim.SGD(theirs, **opt_kw)
    return opt, ref_opt, make_ours(opt), make_ref(ref_opt)


def _run_schedules(opt, ref_opt, sched, ref, steps):
    key = "betas" if "betas" in opt.defaults else "momentum"
    assert sched.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12, abs=0)
    for _ in range(steps):
        ref_opt.step()  # no grads: a no-op that keeps torch's order check quiet
        sched.step()
        ref.step()
        for g, h in zip(opt.param_groups, ref_opt.param_groups):
            assert g["lr"] == pytest.approx(h["lr"], rel=1e-12, abs=1e-300)
            assert np.allclose(g[key], h[key], rtol=1e-12, atol=0)
        assert sched.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12, abs=1e-300)


SCHEDULES = {
    "step": (
        lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    ),
    "cosine": (
        lambda o: optim.CosineAnnealingLR(o, T_max=5),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5),
    ),
    "cosine-eta-min": (
        lambda o: optim.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
    ),
    "onecycle": (
        lambda o: optim.OneCycleLR(o, max_lr=0.1, total_steps=20),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
    ),
    "onecycle-recipe": (
        lambda o: optim.OneCycleLR(o, max_lr=0.1, total_steps=23, pct_start=0.2),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=23, pct_start=0.2),
    ),
    "onecycle-linear-3phase": (
        lambda o: optim.OneCycleLR(
            o, max_lr=0.2, total_steps=20, anneal_strategy="linear", three_phase=True
        ),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.2, total_steps=20, anneal_strategy="linear", three_phase=True
        ),
    ),
    "onecycle-no-momentum": (
        lambda o: optim.OneCycleLR(
            o,
            max_lr=0.1,
            total_steps=20,
            cycle_momentum=False,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o,
            max_lr=0.1,
            total_steps=20,
            cycle_momentum=False,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
}


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduler_matches_torch(name):
    pytest.importorskip("torch")
    make_ours, make_ref = SCHEDULES[name]
    opt, ref_opt, sched, ref = _sched_pair(make_ours, make_ref)
    steps = (
        20
        if name.startswith("onecycle") and "recipe" not in name
        else 23
        if "recipe" in name
        else 16
    )
    _run_schedules(opt, ref_opt, sched, ref, steps)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_onecycle_cycles_adam_beta1_like_torch():
    pytest.importorskip("torch")
    opt, ref_opt, sched, ref = _sched_pair(
        lambda o: optim.OneCycleLR(o, max_lr=0.01, total_steps=12),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=12),
        adam=True,
    )
    _run_schedules(opt, ref_opt, sched, ref, 12)
    assert opt.param_groups[0]["betas"][1] == 0.999


def test_onecycle_refuses_too_many_steps():
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_training_steps_with_schedule_match_torch():
    pytest.importorskip("torch")
    """SGD + OneCycle together, updating real parameters, as the training script uses them."""
    ours, theirs = _pair()
    kw = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt, ref_opt = optim.SGD(ours, **kw), torch.optim.SGD(theirs, **kw)
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=0.2)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.1, total_steps=10, pct_start=0.2)
    rng = np.random.default_rng(5)
    for step in range(10):
        _set_grads(ours, theirs, _grads(step, rng))
        opt.step()
        ref_opt.step()
        sched.step()
        ref.step()
    _assert_same(ours, theirs)


def test_onecycle_with_a_warm_up_shorter_than_a_step():
    """total_steps * pct_start <= 1: PyTorch divides by zero; here the peak comes at once."""
    ours, _ = _pair()
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=5, pct_start=0.2)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(4):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.1 / 25 / 1e4)


@pytest.mark.parametrize(
    "kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items())
)
def test_sgd_with_hyperparameters_on_device_steps_identically(kw):
    """The CUDA-graph mode (lr and momentum read from 0-d arrays, refreshed before each
    step) gives the same parameters as plain numbers, with a schedule changing both."""
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in SHAPES]
    plain = [Parameter(a.copy()) for a in init]
    device = [Parameter(a.copy()) for a in init]
    opt_plain, opt_device = optim.SGD(plain, **kw), optim.SGD(device, **kw)
    opt_device.hyperparameters_on_device()
    for step in range(STEPS):
        gs = _grads(step, rng)
        for opt, params in ((opt_plain, plain), (opt_device, device)):
            for group in opt.param_groups:  # what a scheduler does between steps
                group["lr"] = kw["lr"] * (1 + step) / STEPS
                if group["momentum"]:
                    group["momentum"] = 0.95 - 0.01 * step
            for p, g in zip(params, gs):
                p.grad = None if g is None else g.copy()
        opt_device.write_hyperparameters()
        opt_plain.step()
        opt_device.step()
    for a, b in zip(plain, device):
        np.testing.assert_array_equal(a.data, b.data)
