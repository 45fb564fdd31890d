"""CUDA graphs (cupy): the device generator and a recorded, replayed training step.

A replayed step must equal ordinary steps: same dropout masks (the generator's state
is in device memory), the learning rate and momentum of every step (read from device
scalars), the momentum buffers and BatchNorm statistics carried from step to step.
"""

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn, optim

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("cupy" not in mt.available_backends(), reason="needs CuPy and a CUDA GPU"),
]

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _uniform_reference(seed: int, counter: int, n: int, bits: int) -> np.ndarray:
    """The generator's definition, in plain Python integers."""
    key = _mix64(seed ^ _mix64((counter + GOLDEN) & M64))
    out = []
    for i in range(n):
        z = _mix64((key + (i + 1) * GOLDEN) & M64)
        out.append((z >> (64 - bits)) / 2.0**bits)
    return np.array(out)


@pytest.mark.parametrize("dtype,bits", [("float32", 24), ("float64", 53)])
def test_device_generator_matches_its_definition_and_advances(dtype, bits):
    mt.set_backend("cupy")
    mt.manual_seed(1234)
    first = mt.to_numpy(mt.backend.uniform((3, 5), dtype))
    second = mt.to_numpy(mt.backend.uniform((3, 5), dtype))
    assert first.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(first.ravel(), _uniform_reference(1234, 0, 15, bits))
    np.testing.assert_array_equal(second.ravel(), _uniform_reference(1234, 1, 15, bits))
    mt.manual_seed(1234)  # reseeding restarts the stream
    np.testing.assert_array_equal(mt.to_numpy(mt.backend.uniform((3, 5), dtype)), first)


def test_device_generator_statistics():
    mt.set_backend("cupy")
    u = mt.to_numpy(mt.backend.uniform((1_000_000,), "float32")).astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 3e-3 and abs(u.var() - 1 / 12) < 3e-3
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    assert counts.min() > 0.97 * 50_000 and counts.max() < 1.03 * 50_000


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(8),
        nn.MaxPool2d(2, 2),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


def _run(graph: bool, steps: int = 6):
    """Train a small net for ``steps`` with a OneCycle schedule; return its state and losses."""
    from minitorch_alexnet.backend.cuda.graph import GraphedStep

    mt.set_backend("cupy")
    mt.manual_seed(7)
    model = _net().to("cupy")
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.3)
    rng = np.random.default_rng(0)
    batches = [
        (
            mt.asarray(rng.standard_normal((16, 3, 8, 8)), "float32"),
            mt.asarray(rng.integers(0, 10, 16), "int64"),
        )
        for _ in range(steps)
    ]

    def step(x, y):
        loss = crit(model(x), y)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
        return loss

    runner = step
    if graph:
        opt.hyperparameters_on_device()
        runner = GraphedStep(step, warmup=2, before=opt.write_hyperparameters)
    model.train()
    losses = []
    for x, y in batches:
        losses.append(float(runner(x, y)))  # read now: a replay overwrites its output
        sched.step()
    state = {k: mt.to_numpy(v) for k, v in model.state_dict().items()}
    return state, losses, runner


def test_replayed_steps_equal_ordinary_steps():
    eager_state, eager_losses, _ = _run(graph=False)
    graph_state, graph_losses, runner = _run(graph=True)
    assert runner.replays == 4  # two warm-up steps, then the recording's run and 3 replays
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-5)
    for k in eager_state:  # weights, momentum-updated; BatchNorm running statistics
        np.testing.assert_allclose(graph_state[k], eager_state[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(graph_losses[2:], graph_losses[2])  # replays really ran


def test_graphed_step_runs_other_shapes_eagerly_and_checks_inputs():
    from minitorch_alexnet.backend.cuda.graph import GraphedStep

    mt.set_backend("cupy")
    cp = mt.get_backend().xp
    calls = []

    def double(x):
        calls.append(x.shape)
        return x * 2

    g = GraphedStep(double, warmup=1)
    for n in (4, 4, 4):
        out = g(cp.arange(n, dtype=cp.float32))
    assert g.replays == 2 and len(calls) == 2  # warm-up and recording ran Python
    np.testing.assert_array_equal(mt.to_numpy(out), [0, 2, 4, 6])
    np.testing.assert_array_equal(mt.to_numpy(g(cp.arange(3, dtype=cp.float32))), [0, 2, 4])
    assert len(calls) == 3  # another shape: an ordinary call
    with pytest.raises(TypeError, match="CuPy arrays"):
        g(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="warmup"):
        GraphedStep(double, warmup=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_matmul_equals_numpy_for_every_layout(dtype):
    """The GPU backend's own cuBLAS call handles C- and F-ordered operands (the
    transposed views Conv2d and Linear pass) without copies, and edge sizes."""
    from minitorch_alexnet.backend.cuda.cublas import matmul

    mt.set_backend("cupy")
    rng = np.random.default_rng(3)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for m, k, n in [(5, 7, 3), (1, 4, 6), (6, 1, 2), (3, 5, 1), (64, 75, 300)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        for da in (mt.asarray(a), mt.asarray(np.asfortranarray(a)), mt.asarray(a.T.copy()).T):
            for db in (mt.asarray(b), mt.asarray(b.T.copy()).T, mt.asarray(b)[:, ::-1][:, ::-1]):
                out = matmul(da, db)
                assert out.shape == (m, n) and out.dtype == np.dtype(dtype)
                np.testing.assert_allclose(mt.to_numpy(out), a @ b, rtol=tol, atol=tol)
    wide = mt.asarray(rng.standard_normal((4, 10)).astype(dtype))[:, 2:8]  # row stride > cols
    np.testing.assert_allclose(
        mt.to_numpy(matmul(wide, mt.asarray(np.eye(6, dtype=dtype)))), mt.to_numpy(wide), rtol=tol
    )
    empty = matmul(mt.asarray(np.zeros((3, 0), dtype)), mt.asarray(np.zeros((0, 2), dtype)))
    np.testing.assert_array_equal(mt.to_numpy(empty), np.zeros((3, 2)))


def test_cublas_batched_matmul_equals_numpy():
    from minitorch_alexnet.backend.cuda.cublas import matmul

    mt.set_backend("cupy")
    rng = np.random.default_rng(4)
    for dtype, tol in (("float32", 1e-5), ("float64", 1e-12)):
        a = rng.standard_normal((36, 7, 5)).astype(dtype)
        b = rng.standard_normal((36, 5, 9)).astype(dtype)
        out = matmul(mt.asarray(a), mt.asarray(b))
        assert out.shape == (36, 7, 9)
        np.testing.assert_allclose(mt.to_numpy(out), a @ b, rtol=tol, atol=tol)


def test_cublas_batched_matmul_reads_transposed_batches_and_accumulates():
    """3-D operands whose matrices are transposed views (v.transpose(0, 2, 1)) are read in
    place; ``out=`` writes into a given array and ``accumulate=True`` adds to it (the
    Winograd weight gradient sums chunk by chunk)."""
    from minitorch_alexnet.backend.cuda.cublas import matmul

    mt.set_backend("cupy")
    rng = np.random.default_rng(5)
    for dtype, tol in (("float32", 1e-5), ("float64", 1e-12)):
        a = rng.standard_normal((6, 7, 5)).astype(dtype)
        b = rng.standard_normal((6, 9, 5)).astype(dtype)  # used as b^T: (6, 5, 9)
        da, db = mt.asarray(a), mt.asarray(b).transpose(0, 2, 1)
        for left in (da, mt.asarray(a.transpose(0, 2, 1).copy()).transpose(0, 2, 1)):
            out = matmul(left, db)
            np.testing.assert_allclose(
                mt.to_numpy(out), a @ b.transpose(0, 2, 1), rtol=tol, atol=tol
            )
        out = mt.asarray(np.ones((6, 7, 9), dtype))
        assert matmul(da, db, out=out) is out
        matmul(da, db, out=out, accumulate=True)
        want = 2 * (a @ b.transpose(0, 2, 1))
        np.testing.assert_allclose(mt.to_numpy(out), want, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="out"):
        matmul(da, db, out=mt.asarray(np.ones((6, 9, 7), "float64")))
    with pytest.raises(ValueError, match="accumulate"):
        matmul(da, db, accumulate=True)


@pytest.mark.parametrize("blocks", [1, 7, 4096])
def test_im2col_rows_in_shares_equals_numpy(monkeypatch, blocks):
    """The GPU im2col gives each block a contiguous share of the rows (c, ki, kj) and steps
    through them; with any number of shares it equals the NumPy reference (strided and
    padded windows, rows carried across kernel rows and channels)."""
    from minitorch_alexnet.backend.cuda import im2col as cuda_im2col
    from minitorch_alexnet.nn.im2col import im2col

    mt.set_backend("cupy")
    monkeypatch.setattr(cuda_im2col, "_IM2COL_BLOCKS", blocks)
    rng = np.random.default_rng(7)
    for shape, k, s, p in [
        ((2, 3, 35, 35), 11, 4, 0),
        ((3, 5, 9, 8), 3, 1, 1),
        ((1, 2, 7, 9), 5, 2, 2),
    ]:
        x = rng.standard_normal(shape).astype(np.float32)
        want = im2col.reference(x, (k, k), (s, s), (p, p))
        got = cuda_im2col.im2col(mt.asarray(x), (k, k), (s, s), (p, p))
        np.testing.assert_array_equal(mt.to_numpy(got), want)
