import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_helpers import data_sampler, setup

from jebm.train import (
    CheckpointError,
    MetricsLogger,
    TornMetricsWarning,
    TrainingDivergedError,
    checkpoint_manager,
    checkpoint_steps,
    read_metrics,
    restore_checkpoint,
    save_checkpoint,
    train_loop,
)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_tiny_problem_learns_the_data_mean():
    # The data are N((1, -2), 0.5² I); the contrastive gradient of μ vanishes when the
    # buffer (a Langevin chain on the model) and the data have the same mean. With a
    # batch of 64 and 32 buffer chains, the per-step estimate of the mean has std about
    # 0.5/√32 ≈ 0.09; Adam at 0.05 averages many steps, so 0.3 (≈ 3 std) is generous
    # for noise yet far below the initial error of ‖(1, -2)‖ ≈ 2.2.
    state, step = setup()
    result = train_loop(jax.random.key(1), state, step, data_sampler, num_steps=400,
                        batch_size=64, chunk_size=100, progress=False)
    assert int(result.state.step) == 400
    np.testing.assert_allclose(result.state.params["mu"], [1.0, -2.0], atol=0.3)
    assert set(result.metrics) >= {"loss", "grad_norm", "energy_data", "energy_model"}


def test_array_dataset_and_metrics_file(tmp_path):
    state, step = setup()
    data = data_sampler(jax.random.key(5), 256)
    train_loop(jax.random.key(1), state, step, data, num_steps=30, batch_size=16,
               chunk_size=7, workdir=tmp_path, log_every=10, progress=False,
               eval_fn=lambda s: {"mu0": s.params["mu"][0]}, eval_every=15)
    records = read_metrics(tmp_path / "metrics.jsonl")
    train_steps = [r["step"] for r in records if "loss" in r]
    eval_steps = [r["step"] for r in records if "eval/mu0" in r]
    assert train_steps == [10, 20, 30]
    assert eval_steps == [15, 30]
    times = [r["train_seconds"] for r in records if "eval/mu0" in r]
    assert 0 < times[0] < times[1]


def test_resume_after_kill_is_bit_identical(tmp_path):
    kw = dict(num_steps=60, batch_size=16, chunk_size=10, checkpoint_every=20, progress=False)
    state, step = setup()
    full = train_loop(jax.random.key(3), state, step, data_sampler,
                      workdir=tmp_path / "full", **kw)

    class Killed(Exception):
        pass

    def kill_at_50(s):
        if int(s.step) == 50:
            raise Killed  # dies after checkpoint 40, before checkpoint 60
        return {}

    with pytest.raises(Killed):
        train_loop(jax.random.key(3), state, step, data_sampler, workdir=tmp_path / "killed",
                   eval_fn=kill_at_50, eval_every=10, **kw)
    manager = checkpoint_manager(tmp_path / "killed" / "checkpoints")
    assert checkpoint_steps(manager) == [20, 40]
    manager.close()
    resumed = train_loop(jax.random.key(3), state, step, data_sampler,
                         workdir=tmp_path / "killed", **kw)
    assert int(resumed.state.step) == 60
    _assert_trees_equal(resumed.state, full.state)  # params, Adam moments and PCD buffer
    # metrics of the lost steps 41..50 were dropped, then rewritten once
    steps = [r["step"] for r in read_metrics(tmp_path / "killed" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(10, 61, 10))


def test_checkpoint_keeps_last_k(tmp_path):
    state, step = setup()
    train_loop(jax.random.key(0), state, step, data_sampler, num_steps=50, batch_size=8,
               chunk_size=10, checkpoint_every=10, max_to_keep=2, workdir=tmp_path,
               progress=False)
    manager = checkpoint_manager(tmp_path / "checkpoints")
    assert checkpoint_steps(manager) == [40, 50]
    manager.close()
    assert not any(f.endswith((".pkl", ".pickle")) for _, _, fs in os.walk(tmp_path) for f in fs)


@pytest.mark.parametrize("metric", ["loss", "energy_model"])
def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, metric):
    state, step = setup(nan_at=37, nan_metric=metric)
    with pytest.raises(TrainingDivergedError, match=rf"step 37: non-finite .*{metric}=nan") as err:
        train_loop(jax.random.key(0), state, step, data_sampler, num_steps=100, batch_size=8,
                   chunk_size=10, checkpoint_every=10, workdir=tmp_path, progress=False)
    assert err.value.step == 37 and err.value.last_checkpoint == 30
    manager = checkpoint_manager(tmp_path / "checkpoints")
    assert checkpoint_steps(manager) == [10, 20, 30]  # nothing written for the NaN state
    restored, _ = restore_checkpoint(manager, state)
    manager.close()
    assert int(restored.step) == 30
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(restored.params))
    # logged metrics stop before the NaN step
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert max(r["step"] for r in records) == 36
    assert all(isinstance(v, float | int) for r in records for v in r.values())


def test_checkpoint_from_another_config_names_the_leaf(tmp_path):
    state, step = setup(hidden_shape=(2,))
    manager = checkpoint_manager(tmp_path)
    save_checkpoint(manager, 0, state)
    other, _ = setup(hidden_shape=(3,))
    with pytest.raises(CheckpointError, match=r"params\.mu: checkpoint has shape \(2,\)"):
        restore_checkpoint(manager, other)
    fewer = state._replace(objective_state={"buffer": state.objective_state["buffer"]})
    with pytest.raises(CheckpointError, match=r"objective_state\.count: in the checkpoint"):
        restore_checkpoint(manager, fewer)
    manager.close()


# A damaged checkpoint makes one of orbax's concurrent tensorstore reads fail; orbax then
# closes its event loop with the other reads still pending, and when they finish they
# report "Event loop is closed" as unraisable exceptions, which pytest blames on whichever
# test runs next. jebm's behaviour (a CheckpointError naming the step) is what is under
# test, so these cases run in a child process that keeps that noise to itself.
_DAMAGE_SCRIPT = """
import os, sys
import jax.numpy as jnp
from jebm.train import CheckpointError, checkpoint_manager, restore_checkpoint, save_checkpoint

tree = {"w": jnp.arange(4096.0), "b": jnp.ones(3)}
for kind in ("data", "manifest"):
    directory = os.path.join(sys.argv[1], kind)
    manager = checkpoint_manager(directory)
    save_checkpoint(manager, 5, tree)
    manager.close()
    damaged = 0
    if kind == "data":  # flip a byte in the middle of every array data file
        for root, _, files in os.walk(os.path.join(directory, "5", "state")):
            for name in files:
                path = os.path.join(root, name)
                if "/d" in root.replace(os.sep, "/") and os.path.getsize(path) > 16:
                    with open(path, "r+b") as f:
                        f.seek(os.path.getsize(path) // 2)
                        byte = f.read(1)
                        f.seek(-1, 1)
                        f.write(bytes([byte[0] ^ 0xFF]))
                    damaged += 1
    else:
        with open(os.path.join(directory, "5", "meta", "metadata"), "w") as f:
            f.write("{not json")
        damaged = 1
    manager = checkpoint_manager(directory)
    try:
        restore_checkpoint(manager, tree)
        message = "restored without error"
    except CheckpointError as err:
        message = str(err).replace(chr(10), " ")
    manager.close()
    print(f"{kind}|{damaged}|{message}", flush=True)
"""


def test_damaged_checkpoint_and_manifest_are_reported(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _DAMAGE_SCRIPT, str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
    assert set(lines) == {"data", "manifest"}, out.stdout
    for kind, text in lines.items():
        damaged, message = text.split("|", 1)
        assert int(damaged) > 0, kind
        assert re.search(r"step 5.*damaged", message), (kind, message)


def test_missing_checkpoint_is_reported(tmp_path):
    state, _ = setup()
    manager = checkpoint_manager(tmp_path)
    with pytest.raises(CheckpointError, match="No checkpoint found"):
        restore_checkpoint(manager, state)
    manager.close()


def test_typed_keys_round_trip(tmp_path):
    tree = {"key": jax.random.key(7), "x": jnp.arange(3.0)}
    manager = checkpoint_manager(tmp_path)
    save_checkpoint(manager, 0, tree, extra={"note": "hi"})
    restored, extra = restore_checkpoint(manager, tree)
    manager.close()
    assert extra == {"note": "hi"}
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                  jax.random.key_data(tree["key"]))
    assert json.dumps(extra)


def test_every_log_window_is_written_when_chunks_are_longer(tmp_path):
    # log_every=10 < chunk_size=50: before the fix, flush() rebound the window dict that
    # _log_steps was filling, so only the first window of each chunk was written (2 of
    # 10 records) and the final metrics came from step 60.
    state, step = setup()
    result = train_loop(jax.random.key(1), state, step, data_sampler, num_steps=100,
                        batch_size=8, chunk_size=50, workdir=tmp_path, log_every=10,
                        progress=False)
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == list(range(10, 101, 10))
    last = {k: v for k, v in records[-1].items() if k != "step"}
    assert result.metrics == pytest.approx(last, rel=1e-6)


def test_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    # A kill while a record is written leaves a partial last line; before, the resume
    # failed with json's bare "Expecting ',' delimiter" and no file name.
    kw = dict(num_steps=40, batch_size=8, chunk_size=10, checkpoint_every=20, log_every=10,
              progress=False)
    state, step = setup()
    train_loop(jax.random.key(0), state, step, data_sampler, workdir=tmp_path,
               **{**kw, "num_steps": 20})
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 30, "loss": 0.1')  # torn: no newline, not valid JSON
    with pytest.warns(TornMetricsWarning, match=r"metrics\.jsonl: dropping its last line 3"):
        train_loop(jax.random.key(0), state, step, data_sampler, workdir=tmp_path, **kw)
    steps = [r["step"] for r in read_metrics(path)]
    assert steps == [10, 20, 30, 40]


def test_malformed_metrics_line_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 10, "loss": 1.0}\n{"step": 20, "loss" 2.0}\n{"step": 30}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2: not valid JSON"):
        read_metrics(path)
    path.write_text('{"step": 10}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"line 2: a metrics record must be a JSON object"):
        read_metrics(path)
    path.write_text('{"step": 10}\n{"step": 20}')  # complete but unterminated: kept
    assert [r["step"] for r in read_metrics(path)] == [10, 20]
    MetricsLogger(path).write(30, {"loss": 0.5})
    assert [r["step"] for r in read_metrics(path)] == [10, 20, 30]


def test_a_batch_larger_than_the_dataset_warns_and_an_empty_one_fails():
    from jebm.train import batch_fn

    with pytest.warns(UserWarning, match="batch_size=64 exceeds the dataset's 10 examples"):
        batch_fn(jnp.zeros((10, 2)), 64)
    with pytest.raises(ValueError, match="empty"):
        batch_fn(jnp.zeros((0, 2)), 4)
