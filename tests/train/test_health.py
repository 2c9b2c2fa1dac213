"""Training health beyond NaN: the checks on known inputs, and the loop's stop with the
newest healthy checkpoint kept through rotation."""

import jax
import numpy as np
import pytest
from train_helpers import data_sampler, setup

from jebm.train import (
    DEFAULT_HEALTH,
    HealthConfig,
    TrainingDivergedError,
    checkpoint_info,
    checkpoint_manager,
    checkpoint_steps,
    list_checkpoints,
    read_metrics,
    restore_checkpoint,
    train_loop,
)
from jebm.train.health import check_health, init_health, is_healthy

# the tiny test objective names its energies energy_data / energy_model
TINY = HealthConfig(energy_metrics=("energy_data", "energy_model"),
                    gap_metrics=("energy_data", "energy_model"))


def _metrics(n, **overrides):
    base = {"energy_pos": np.full(n, -5.0), "energy_neg": np.full(n, -5.5),
            "grad_norm": np.full(n, 2.0), "sampler/is_divergent": np.zeros(n)}
    base.update(overrides)
    return base


def test_healthy_metrics_pass_and_history_fills():
    config = HealthConfig(min_history=50)
    state, report = check_health(config, init_health(config), _metrics(200), 0)
    assert report.stop_index is None and report.reasons == []
    assert len(state.history["grad_norm"]) == 200 and state.failing == 0
    assert state.last_failure is None and is_healthy(config, state, 200)


@pytest.mark.parametrize("name, values, expected", [
    # |E| > 1e4 from index 5 on: the 10th consecutive failing step is index 14
    ("energy_neg", np.r_[np.full(5, -5.0), np.full(45, 2e4)], "|energy_neg| > max_abs_energy"),
    # gap |E+ - E-| = 2000 > 1e3 with both energies below 1e4
    ("energy_neg", np.r_[np.full(5, -5.0), np.full(45, 1995.0)], "max_energy_gap"),
    # 60% divergent sampler transitions > 50%
    ("sampler/is_divergent", np.r_[np.zeros(5), np.full(45, 0.6)], "max_divergent_fraction"),
])
def test_each_check_stops_after_patience_steps(name, values, expected):
    config = DEFAULT_HEALTH
    _, report = check_health(config, init_health(config), _metrics(50, **{name: values}), 100)
    assert report.stop_index == 5 + config.patience - 1
    assert any(expected in r for r in report.reasons), report.reasons


def test_running_median_checks_start_after_min_history():
    config = HealthConfig(min_history=100, patience=1)
    state, report = check_health(config, init_health(config), _metrics(100), 0)
    assert report.stop_index is None  # 100 steps of history: |E+| median 5, grad median 2
    # growth: |E+| / max(energy_floor=10, 5) > 100 means |E+| > 1000, below max_abs_energy
    ok, _ = check_health(config, state, _metrics(3, energy_pos=np.full(3, -999.0),
                                                 energy_neg=np.full(3, -999.0)), 100)
    _, report = check_health(config, state, _metrics(3, energy_pos=np.full(3, -1001.0),
                                                     energy_neg=np.full(3, -1001.0)), 100)
    assert report.stop_index == 0 and "max_energy_growth" in report.reasons[0]
    # gradient: 2 * 1e3 = 2000 is the limit
    _, report = check_health(config, state, _metrics(3, grad_norm=np.array([1999.0, 2001.0,
                                                                             1.0])), 100)
    assert report.stop_index == 1 and "max_grad_norm_ratio" in report.reasons[0]
    # before min_history, the same spike is not judged
    _, report = check_health(config, init_health(config),
                             _metrics(3, grad_norm=np.array([1.0, 2001.0, 1.0])), 0)
    assert report.stop_index is None


def test_isolated_spike_does_not_stop_but_marks_checkpoints_unhealthy():
    config = HealthConfig(min_history=10, patience=10)
    grad = np.full(40, 2.0)
    grad[25] = 1e6  # one spike, far above 1e3 x median
    state, report = check_health(config, init_health(config), _metrics(40, grad_norm=grad), 0)
    assert report.stop_index is None
    assert state.last_failure == 26  # 1-based step of index 25
    assert not is_healthy(config, state, 30) and is_healthy(config, state, 36)


def test_failing_run_continues_across_chunks():
    config = HealthConfig(patience=10)
    bad = _metrics(6, energy_neg=np.full(6, 5e4))
    state, report = check_health(config, init_health(config), bad, 0)
    assert report.stop_index is None and state.failing == 6
    _, report = check_health(config, state, bad, 6)
    assert report.stop_index == 3  # steps 1..10 failed: the 4th step of the second chunk


def test_bad_threshold_is_refused_naming_it():
    with pytest.raises(ValueError, match="health.max_abs_energy must be a finite number > 0"):
        init_health(HealthConfig(max_abs_energy=-1.0))
    with pytest.raises(ValueError, match="health.patience must be an int >= 1"):
        init_health(HealthConfig(patience=0))
    state, step = setup()
    with pytest.raises(ValueError, match="health must be a HealthConfig"):
        train_loop(jax.random.key(0), state, step, data_sampler, num_steps=5, batch_size=8,
                   progress=False, health={"max_abs_energy": 1.0})


def test_finite_blowup_stops_and_keeps_newest_healthy_checkpoint(tmp_path):
    # Reported energies jump by 1e6 on every other update from 25 (an intermittent
    # blow-up: never 10 failing steps in a row) and on every update from 61. Before,
    # only NaN stopped training: this ran to the end and kept checkpoints 90 and 100.
    # Now checkpoints 30..60 are written while checks fail (unhealthy), training stops
    # at update 70 (61..70 fail), and rotation (max_to_keep=2) keeps 20, the newest
    # healthy one, beside 50 and 60.
    blowup = [*range(25, 61, 2), *range(61, 200)]
    state, step = setup(blowup_steps=blowup)
    with pytest.raises(TrainingDivergedError) as err:
        train_loop(jax.random.key(0), state, step, data_sampler, num_steps=100, batch_size=8,
                   chunk_size=10, checkpoint_every=10, max_to_keep=2, workdir=tmp_path,
                   progress=False, health=TINY)
    e = err.value
    assert (e.step, e.healthy_checkpoint, e.last_checkpoint) == (70, 20, 60)
    message = str(e)
    assert "step 70: |energy_model| > max_abs_energy=10000" in message
    assert "(health checks failing for 10 consecutive steps)" in message
    assert "newest healthy checkpoint, step 20 in" in message
    assert "Checkpoints [50, 60] were written while the health checks were failing" in message
    manager = checkpoint_manager(tmp_path / "checkpoints")
    assert checkpoint_steps(manager) == [20, 50, 60]
    assert [(c.step, c.intact, c.healthy) for c in list_checkpoints(manager)] == [
        (20, True, True), (50, True, False), (60, True, False)]
    assert checkpoint_info(manager, 20)["healthy"] is True
    restored, _ = restore_checkpoint(manager, state, step=20)
    manager.close()
    assert int(restored.step) == 20
    # the blow-up is logged, up to the stopping step
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert records[-1]["step"] == 70 and records[-1]["energy_model"] > 1e5


def test_healthy_tiny_run_is_not_stopped(tmp_path):
    # The tiny problem trains normally with every check on (energies O(1), gradient
    # norms within a few times their median) and every checkpoint is healthy.
    state, step = setup()
    train_loop(jax.random.key(1), state, step, data_sampler, num_steps=300, batch_size=16,
               chunk_size=100, checkpoint_every=100, workdir=tmp_path, progress=False,
               health=TINY._replace(min_history=50))
    manager = checkpoint_manager(tmp_path / "checkpoints")
    assert [(c.step, c.healthy) for c in list_checkpoints(manager, verify=False)] == [
        (100, True), (200, True), (300, True)]
    manager.close()
