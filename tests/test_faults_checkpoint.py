"""Checkpoint faults found by probing, each pinned down.

Loads are all or nothing; damaged, hostile or hand-edited files give a CheckpointError
(never a raw traceback, never a huge allocation, never silently accepted junk); saves
keep the user's file modes and links, clean up after killed saves and tell the truth
about a Ctrl-C. The last tests fuzz a checkpoint with bit flips and truncations.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import backend as B
from minitorch_alexnet import checkpoint as ckpt
from minitorch_alexnet import nn, optim
from minitorch_alexnet.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

SaveInterrupted = getattr(ckpt, "SaveInterrupted", KeyboardInterrupt)
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and signals")


# ---------------------------------------------------------------- a small run to save
def _trio(seed=0, lr=0.1, scheduler="onecycle", small=False):
    with B.use_backend("numpy"):
        mt.manual_seed(seed)
        if small:  # few members: a short zip directory, for fuzzing
            model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        else:
            model = nn.Sequential(
                nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)
            )
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        if scheduler == "onecycle":
            sched = optim.OneCycleLR(opt, max_lr=lr, total_steps=10, pct_start=0.3)
        else:
            sched = optim.StepLR(opt, step_size=3)
    return model, opt, sched


def _step(model, opt, sched, seed):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
    with B.use_backend("numpy"):
        opt.step()
    sched.step()


def _target(scheduler="onecycle", small=False):
    """A model, optimiser and scheduler with states of their own (to see any overwrite)."""
    trio = _trio(seed=5, lr=0.05, scheduler=scheduler, small=small)
    _step(*trio, seed=9)
    return trio


def _snapshot(model, opt, sched):
    state = opt.state_dict()
    return (
        {k: np.array(v, copy=True) for k, v in model.state_dict().items()},
        repr([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]),
        {i: {k: np.array(v, copy=True) for k, v in s.items()} for i, s in state["state"].items()},
        json.dumps(sched.state_dict()),
        json.dumps(B.get_rng_state()),
    )


def _assert_same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1] == b[1]
    assert a[2].keys() == b[2].keys()
    for i in a[2]:
        for k in a[2][i]:
            np.testing.assert_array_equal(a[2][i][k], b[2][i][k])
    assert a[3:] == b[3:]


@pytest.fixture
def saved(tmp_path):
    trio = _trio()
    _step(*trio, seed=1)
    extra = {"config": {"model": "tiny"}, "history": [{"epoch": 1, "loss": 1.5}]}
    return save_checkpoint(tmp_path / "ck.npz", *trio, epoch=1, extra=extra)


# ---------------------------------------------------------------- editing a file
def _members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _npy(array):
    f = io.BytesIO()
    np.save(f, array, allow_pickle=False)
    return f.getvalue()


def _write_zip(path, members, deflate=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)


def _meta_of(members):
    return json.loads(np.load(io.BytesIO(members["__meta__.npy"]), allow_pickle=False).tobytes())


def _edit(path, meta=None, raw_meta=None, arrays=None):
    """Rewrite the checkpoint at ``path``: ``meta(m)`` returns the new metadata (or
    ``raw_meta`` gives its bytes); ``arrays`` replaces or adds members by key."""
    members = _members(path)
    if meta is not None:
        raw_meta = json.dumps(meta(_meta_of(members))).encode()
    if raw_meta is not None:
        members["__meta__.npy"] = _npy(np.frombuffer(raw_meta, np.uint8))
    for key, a in (arrays or {}).items():
        members[f"{key}.npy"] = _npy(a)
    _write_zip(path, members)
    return path


def _set(*keys_and_value):
    """A meta edit setting meta[k1][k2]... = value (creating nothing else)."""
    *keys, value = keys_and_value

    def edit(m):
        d = m
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
        return m

    return edit


def _in_first_state(**entries):
    """A meta edit setting entries of the first parameter's packed optimiser state."""

    def edit(m):
        m["optimizer"]["state"]["__items__"][0][1].update(entries)
        return m

    return edit


def _pop(*keys):
    """A meta edit deleting meta[k1][k2]...."""

    def edit(m):
        d = m
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
        return m

    return edit


def _central_directory(blob):
    """Offset of the zip's central directory (the archive has no comment)."""
    return int.from_bytes(blob[-6:-2], "little")


# ---------------------------------------------------------------- 4. all or nothing
def _misshaped_buffer(path):
    return _edit(path, arrays={"optimizer/state/4/momentum_buffer": np.zeros((2, 2), np.float32)})


def _string_weights(path):
    return _edit(path, arrays={"model/4.bias": np.array(["a", "b", "c"])})


def _structured_weights(path):
    return _edit(path, arrays={"model/4.bias": np.zeros(3, dtype=[("w", "<f4")])})


def _bad_rng(path):
    return _edit(path, meta=_set("rng_state", "state", "junk"))


def _renumber(m):
    m["optimizer"]["state"]["__items__"][-1][0] = 99  # a parameter the optimiser lacks
    return m


@pytest.mark.parametrize(
    "damage,scheduler,match",
    [
        (lambda p: p, "step", "OneCycleLR scheduler, not of a StepLR"),
        (_misshaped_buffer, "onecycle", "shape"),
        (_string_weights, "onecycle", "not numbers"),
        (_structured_weights, "onecycle", "not numbers"),
        (_bad_rng, "onecycle", "random-generator state"),
        (lambda p: _edit(p, meta=_renumber), "onecycle", "parameter 99"),
    ],
    ids=[
        "scheduler-class",
        "misshaped-buffer",
        "string-weights",
        "structured-weights",
        "bad-rng",
        "optimizer-meta",
    ],
)
def test_a_failed_load_changes_nothing(saved, damage, scheduler, match):
    damage(saved)
    target = _target(scheduler)
    before = _snapshot(*target)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(saved, *target)
    _assert_same(_snapshot(*target), before)


def test_the_check_hook_runs_before_anything_changes(saved):
    target = _target()
    before = _snapshot(*target)
    seen = []

    def check(meta):
        seen.append(meta["extra"])
        raise CheckpointError("written with other settings")

    with pytest.raises(CheckpointError, match="other settings"):
        load_checkpoint(saved, *target, check=check)
    assert seen == [{"config": {"model": "tiny"}, "history": [{"epoch": 1, "loss": 1.5}]}]
    _assert_same(_snapshot(*target), before)


# ---------------------------------------------------------------- 7. bounded reading
def _zeros_member(n_floats):
    """A valid .npy member of ``n_floats`` float32 zeros (deflates to almost nothing)."""
    return _npy(np.zeros(n_floats, np.float32))


def test_unused_members_are_never_decompressed(saved):
    members = _members(saved)
    members["junk.npy"] = _zeros_member(16 * 2**20)  # 64 MiB, about 64 KB deflated
    _write_zip(saved, members, deflate={"junk.npy"})
    assert saved.stat().st_size < 2**20
    target = _target()
    tracemalloc.start()
    try:
        load_checkpoint(saved, *target)
        read_checkpoint(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def _huge_header_member(shape):
    """A .npy member whose header declares ``shape`` float32 but that holds 16 bytes."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return f.getvalue() + bytes(16)


@pytest.mark.parametrize("key", ["model/0.weight", "optimizer/state/0/momentum_buffer"])
def test_a_header_claiming_a_trillion_elements_is_refused_unread(saved, key):
    members = _members(saved)
    members[f"{key}.npy"] = _huge_header_member((10**12,))
    _write_zip(saved, members)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved, *_target())
    with pytest.raises(CheckpointError):
        read_checkpoint(saved)


def test_an_array_nobody_expects_may_not_inflate_far_beyond_the_file(saved):
    members = _members(saved)
    meta = _meta_of(members)
    meta["extra"] = {"big": {"__array__": "extra/big"}}
    members["__meta__.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    members["extra/big.npy"] = _zeros_member(8 * 2**20)  # 32 MiB from about 32 KB
    _write_zip(saved, members, deflate={"extra/big.npy"})
    with pytest.raises(CheckpointError, match="more than a file"):
        read_checkpoint(saved)
    target = _target()
    before = _snapshot(*target)
    with pytest.raises(CheckpointError, match="more than a file"):
        load_checkpoint(saved, *target)
    _assert_same(_snapshot(*target), before)


def test_a_pickled_member_is_refused(saved):
    f = io.BytesIO()
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    members = _members(saved)
    members["model/4.bias.npy"] = f.getvalue()
    _write_zip(saved, members)
    with pytest.raises(CheckpointError, match="Python objects"):
        load_checkpoint(saved, *_target())


# ---------------------------------------------------------------- 13, 14. damaged or junk metadata
META_EDITS = {
    "meta-is-a-list": lambda m: [m],
    "version-is-text": _set("version", "1"),
    "version-is-a-flag": _set("version", True),
    "no-epoch": _pop("epoch"),
    "epoch-is-text": _set("epoch", "3"),
    "epoch-negative": _set("epoch", -1),
    "model-keys-not-a-list": _set("model_keys", 5),
    "model-keys-numbers": _set("model_keys", [1, 2]),
    "rng-state-a-number": _set("rng_state", 5),
    "rng-state-other-generator": _set("rng_state", "bit_generator", "MT19937"),
    "optimizer-is-text": _set("optimizer", "x"),
    "optimizer-class-without-state": _set("optimizer", None),
    "array-ref-a-number": _in_first_state(momentum_buffer={"__array__": 5}),
    "array-ref-missing": _in_first_state(momentum_buffer={"__array__": "optimizer/nope"}),
    "array-ref-outside": _in_first_state(momentum_buffer={"__array__": "__meta__"}),
    "items-not-a-list": _set("extra", {"__items__": 3}),
    "items-unhashable-key": _set("extra", {"__items__": [[[1], 2]]}),
    "extra-too-deep": _set("extra", json.loads("[" * 200 + "]" * 200)),
    "no-param-groups": _pop("optimizer", "param_groups"),
    "params-not-indices": _set("optimizer", "param_groups", 0, "params", "abcd"),
    "params-repeated": _set("optimizer", "param_groups", 0, "params", [0, 0, 1, 2, 3, 4]),
    "lr-is-text": _set("optimizer", "param_groups", 0, "lr", "0.1"),
    "lr-is-nan": _set("optimizer", "param_groups", 0, "lr", float("nan")),
    "lr-negative": _set("optimizer", "param_groups", 0, "lr", -1.0),
    "lr-beyond-floats": _set("optimizer", "param_groups", 0, "lr", 10**400),
    "nesterov-is-text": _set("optimizer", "param_groups", 0, "nesterov", "yes"),
    "group-lacks-momentum": _pop("optimizer", "param_groups", 0, "momentum"),
    "state-unknown-name": _in_first_state(velocity=1.0),
    "state-not-a-dict": _set("optimizer", "state", "__items__", 0, 1, 3),
    "scheduler-optimizer-key": _set("scheduler", "optimizer", 5),
    "scheduler-lacks-key": _pop("scheduler", "total_steps"),
    "scheduler-last-epoch-text": _set("scheduler", "last_epoch", "3"),
    "scheduler-last-epoch-past-end": _set("scheduler", "last_epoch", 11),
    "scheduler-base-lrs-length": _set("scheduler", "base_lrs", [0.1, 0.1]),
    "scheduler-base-lr-text": _set("scheduler", "base_lrs", ["0.1"]),
    "scheduler-base-lr-beyond-floats": _set("scheduler", "base_lrs", [10**400]),
    "scheduler-total-steps-zero": _set("scheduler", "total_steps", 0),
    "scheduler-anneal-unknown": _set("scheduler", "anneal_strategy", "cubic"),
    "scheduler-phase-unknown-key": _set("scheduler", "_schedule_phases", 0, 1, "nope"),
    "scheduler-phases-short": _set("scheduler", "_schedule_phases", [[1.0, "max_lr"]]),
}
RAW_META = {
    "not-utf8": b"\xff\xfe{",
    "not-json": b'{"format": ',
    "nested-past-recursion": b"[" * 100_000 + b"]" * 100_000,
    "huge-integer": b'{"format": "minitorch_alexnet-checkpoint", "version": 1' + b"0" * 6000 + b"}",
}


@pytest.mark.parametrize("name", sorted(META_EDITS))
def test_hand_edited_metadata_is_a_checkpoint_error_and_changes_nothing(saved, name):
    _edit(saved, meta=META_EDITS[name])
    target = _target()
    before = _snapshot(*target)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved, *target)
    _assert_same(_snapshot(*target), before)


@pytest.mark.parametrize("name", sorted(RAW_META))
def test_damaged_metadata_bytes_are_a_checkpoint_error(saved, name):
    _edit(saved, raw_meta=RAW_META[name])
    with pytest.raises(CheckpointError):
        read_checkpoint(saved)
    with pytest.raises(CheckpointError):
        load_checkpoint(saved, *_target())


@pytest.mark.parametrize(
    "offset,value",
    [(10, 99), (10, 14), (8, 0x41)],  # compression: unknown, LZMA; flags: encrypted
    ids=["unknown-compression", "lzma", "encrypted"],
)
def test_a_flipped_central_directory_field_is_a_checkpoint_error(saved, offset, value):
    blob = bytearray(saved.read_bytes())
    at = _central_directory(blob) + offset
    blob[at : at + 2] = value.to_bytes(2, "little")
    saved.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(saved, *_target())


def test_junk_optimizer_and_scheduler_states_are_refused_by_the_objects_themselves():
    model, opt, sched = _target()
    before = _snapshot(model, opt, sched)
    state = opt.state_dict()
    state["param_groups"][0]["lr"] = "0.1"
    with pytest.raises(TypeError, match="lr"):
        opt.load_state_dict(state)
    junk = dict(sched.state_dict(), optimizer=5)
    with pytest.raises(ValueError, match="optimizer"):
        sched.load_state_dict(junk)
    _assert_same(_snapshot(model, opt, sched), before)
    sched.step()  # still works


def test_resume_from_a_damaged_checkpoint_exits_2_with_the_message(tmp_path, capsys):
    from minitorch_alexnet.train import TrainConfig, run

    out = tmp_path / "run"
    flags = dict(
        model="tiny",
        dataset="synthetic",
        subset=64,
        test_subset=32,
        batch_size=32,
        epochs=2,
        backend="numpy",
        out=out,
        progress=False,
    )
    assert run(TrainConfig(**flags, stop_after=1)) == 0
    _edit(out / "checkpoint.npz", meta=_pop("epoch"))
    capsys.readouterr()
    assert run(TrainConfig(**flags, resume=True)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--resume" in err and "damaged" in err


# ---------------------------------------------------------------- 27. modes and links
@posix_only
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o007, 0o660)])
def test_saved_files_get_the_mode_open_would_give_them(tmp_path, umask, mode):
    model = _trio()[0]
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
        text = atomic_write(tmp_path / "metrics.json", lambda f: f.write("[]\n"), binary=False)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == mode
    assert os.stat(text).st_mode & 0o777 == mode


@posix_only
def test_a_replaced_file_keeps_its_mode(tmp_path):
    model = _trio()[0]
    path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
    os.chmod(path, 0o640)
    save_checkpoint(path, model, epoch=2)
    assert os.stat(path).st_mode & 0o777 == 0o640


@posix_only
def test_a_symlinked_checkpoint_is_written_through(tmp_path):
    model = _trio()[0]
    real = tmp_path / "store" / "ck.npz"
    real.parent.mkdir()
    save_checkpoint(real, model, epoch=1)
    link = tmp_path / "run" / "checkpoint.npz"
    link.parent.mkdir()
    link.symlink_to(real)
    save_checkpoint(link, model, epoch=2)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read_checkpoint(real)[1]["epoch"] == 2
    assert sorted(p.name for p in real.parent.iterdir()) == ["ck.npz"]


# ---------------------------------------------------------------- 28. temporaries of killed saves
def _dead_pid():
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


@posix_only
def test_temporaries_of_killed_saves_are_removed_on_the_next_save(tmp_path):
    from minitorch_alexnet.checkpoint.files import STALE_SECONDS, temporary_name

    def ours(pid):
        name = temporary_name("ck.npz")  # .ck.npz.<pid>@<host>.<token>.tmp
        return name.replace(f".{os.getpid()}@", f".{pid}@")

    old = time.time() - 2 * STALE_SECONDS
    stale = {
        ".ck.npz.a1b2c3d4.tmp": old,  # a killed save of an earlier version
        ours(_dead_pid()): None,  # its process is gone
        ours(os.getppid()): old,  # a live pid, but untouched for hours
    }
    kept = {
        ".ck.npz.x9y8z7w6.tmp": None,  # fresh: maybe a save running right now
        ours(os.getppid()): None,  # a live process, writing now
        ours(os.getpid()): None,  # this process's own
        ".other.npz.a1b2c3d4.tmp": old,  # another file's
        "ck.npz.a1b2c3d4.tmp": old,  # not our pattern
        ".ck.npz.notes.tmp": old,
    }
    for name, mtime in {**stale, **kept}.items():
        (tmp_path / name).write_bytes(b"x" * 100)
        if mtime is not None:
            os.utime(tmp_path / name, (mtime, mtime))
    save_checkpoint(tmp_path / "ck.npz", _trio()[0], epoch=1)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"ck.npz", *kept}


# ---------------------------------------------------------------- 20. Ctrl-C during a save
def _ctrl_c_during_savez(monkeypatch, times):
    real = np.savez

    def savez(f, **arrays):
        real(f, **arrays)
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(np, "savez", savez)


@posix_only
def test_one_ctrl_c_during_a_save_lets_it_finish_and_says_so(tmp_path, monkeypatch, capsys):
    model = _trio()[0]
    path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
    _ctrl_c_during_savez(monkeypatch, 1)
    with pytest.raises(SaveInterrupted) as e:
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert e.value.saved and e.value.held_epoch == 2 and "holds epoch 2" in str(e.value)
    assert read_checkpoint(path)[1]["epoch"] == 2
    assert "Ctrl-C again" in capsys.readouterr().err


@posix_only
def test_a_second_ctrl_c_abandons_the_save_and_says_what_the_file_holds(tmp_path, monkeypatch):
    model = _trio()[0]
    path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
    _ctrl_c_during_savez(monkeypatch, 2)
    with pytest.raises(SaveInterrupted) as e:
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert not e.value.saved and e.value.held_epoch == 1 and "still holds epoch 1" in str(e.value)
    assert read_checkpoint(path)[1]["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


def test_an_interrupted_first_save_says_there_is_no_checkpoint(tmp_path, monkeypatch):
    def interrupted(f, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(SaveInterrupted) as e:
        save_checkpoint(tmp_path / "ck.npz", _trio()[0], epoch=1)
    assert not e.value.saved and e.value.held_epoch is None
    assert "no checkpoint" in str(e.value)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- fuzzing
def _fuzz_case(tmp_path):
    trio = _trio(small=True)
    _step(*trio, seed=1)
    path = save_checkpoint(tmp_path / "ck.npz", *trio, epoch=3, extra={"history": [1.5, 2.5]})
    target = _target(small=True)
    meta = load_checkpoint(path, *target)
    return path.read_bytes(), _snapshot(*target), meta


def _try_load(path, reference, reference_meta, target):
    """Load ``path``: a CheckpointError must leave ``target`` as it was; a success must
    load exactly the reference. Returns the target to use next."""
    before = _snapshot(*target)
    try:
        meta = load_checkpoint(path, *target)
    except CheckpointError:
        _assert_same(_snapshot(*target), before)
        return target
    _assert_same(_snapshot(*target), reference)
    assert meta["epoch"] == reference_meta["epoch"] and meta["extra"] == reference_meta["extra"]
    return _target(small=True)


def test_fuzz_bit_flips_give_a_checkpoint_error_or_identical_data(tmp_path):
    blob, reference, reference_meta = _fuzz_case(tmp_path)
    rng = np.random.default_rng(2024)
    cd = _central_directory(blob)
    # every byte of the zip's directory (one random bit each), and a sample of the members'
    spots = list(range(cd, len(blob))) + rng.integers(0, cd, 300).tolist()
    target, path = _target(small=True), tmp_path / "flipped.npz"
    path.write_bytes(blob)
    with open(path, "r+b", buffering=0) as f:  # flip a byte in place, then put it back
        for at in spots:
            f.seek(at)
            f.write(bytes([blob[at] ^ (1 << int(rng.integers(8)))]))
            target = _try_load(path, reference, reference_meta, target)
            f.seek(at)
            f.write(blob[at : at + 1])


def test_fuzz_truncations_give_a_checkpoint_error(tmp_path):
    blob, _, _ = _fuzz_case(tmp_path)
    cut = sorted({*range(0, len(blob), 37), *range(len(blob) - 64, len(blob))})
    target, path = _target(small=True), tmp_path / "cut.npz"
    for n in cut:
        path.write_bytes(blob[:n])
        before = _snapshot(*target)
        with pytest.raises(CheckpointError):
            load_checkpoint(path, *target)
        _assert_same(_snapshot(*target), before)


def test_adam_state_missing_a_moment_is_refused_and_changes_nothing():
    """A hand-edited Adam state without exp_avg used to load, then fail in step()."""
    from minitorch_alexnet import nn, optim

    layer = nn.Linear(3, 2)
    for amsgrad, drop in ((False, "exp_avg"), (True, "max_exp_avg_sq")):
        opt = optim.Adam(layer.parameters(), lr=0.1, amsgrad=amsgrad)
        for p in layer.parameters():
            p.grad = p.data * 0 + 1
        opt.step()
        state = opt.state_dict()
        before = {k: v.copy() for k, v in state["state"][0].items() if hasattr(v, "copy")}
        broken = {**state, "state": {**state["state"], 0: dict(state["state"][0])}}
        del broken["state"][0][drop]
        with pytest.raises(ValueError, match=f"lacks {drop}"):
            opt.load_state_dict(broken)
        after = opt.state_dict()["state"][0]
        for k, v in before.items():
            assert (after[k] == v).all(), k
