"""The experiment layer: every shipped config builds, parts can be replaced, registries
are the config's choice lists."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jebm import config as config_module
from jebm import experiment
from jebm.config import Config, apply_overrides, load_config
from jebm.energy import from_nnx, logdensity_fn
from jebm.samplers import SAMPLERS

CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))


def _tiny_image_files(name: str, directory: Path) -> str:
    """Tiny files in the byte format of MNIST's idx-ubyte or CIFAR-10's binary batches."""
    import struct

    rng = np.random.default_rng(0)
    if name == "cifar10":
        from jebm.datasets.cifar import CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES

        for file in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
            rows = [bytes([int(rng.integers(10))]) + rng.integers(0, 256, 3072, np.uint8).tobytes()
                    for _ in range(4)]
            (directory / file).write_bytes(b"".join(rows))
        return str(directory)
    from jebm.datasets.mnist import MNIST_FILES

    for part, file in MNIST_FILES.items():
        shape = (8, 28, 28) if "images" in part else (8,)
        array = rng.integers(0, 10 if "labels" in part else 256, shape, np.uint8)
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in shape)
        (directory / file).write_bytes(header + array.tobytes())
    return str(directory)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_builds_through_the_experiment_layer(path, tmp_path):
    overrides = ["data.num_test=64"]
    name = load_config(str(path)).data.name
    if name in ("digits", "mnist", "fashion_mnist", "cifar10"):  # images: small buffers
        overrides += ["objective.buffer_size=64", "objective.num_chains=8"]
    if name in ("mnist", "fashion_mnist", "cifar10"):  # file-backed: tiny files, same format
        overrides += [f"data.path={_tiny_image_files(name, tmp_path)}", "data.num_test=4"]
    cfg = load_config(str(path), overrides)
    run = experiment.build_run(cfg)
    batch = run.data.sample(jax.random.key(0), 4)
    assert batch.shape == (4, *run.data.event_shape)
    # One program each (eagerly, every op would compile a program of its own).
    energies = jax.jit(jax.vmap(run.model_energy_fn, in_axes=(None, 0)))(
        run.initial_state.params, batch)
    assert energies.shape == (4,) and bool(jnp.all(jnp.isfinite(energies)))

    # The run's own sampler takes a step on the model's log-density.
    def one_step(params, x):
        algorithm = run.sampler(logdensity_fn(run.model_energy_fn, params))
        return algorithm.step(jax.random.key(1), algorithm.init(x))[0].position

    position = jax.jit(one_step)(run.initial_state.params, batch[0])
    assert position.shape == run.data.event_shape


def test_registries_are_the_config_choice_lists():
    with pytest.raises(ValueError, match=r"objective\.name must be one of \('cd', 'pcd'"):
        load_config(None, ["objective.name=bogus"])
    with pytest.raises(ValueError, match=r"data\.name must be one of"):
        load_config(None, ["data.name=bogus"])
    assert set(SAMPLERS) == {"ula", "mala", "rwmh", "hmc", "underdamped", "nuts"}
    assert not hasattr(config_module, "OBJECTIVES")  # one list, in the registry


class SmallEnergy(nnx.Module):
    """A user-written NNX energy: a quadratic (normalisable, variance 2) plus a learned
    16-unit tanh correction."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, 16, rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):  # (n, 2) -> (n, 1)
        return 0.25 * jnp.sum(x**2, -1, keepdims=True) + self.out(jnp.tanh(self.hidden(x)))


def test_default_run_with_a_user_nnx_energy_trains_and_evaluates(tmp_path):
    cfg = load_config(None, ["train.num_steps=30", "train.chunk_size=10", "train.log_every=10",
                             "train.eval_every=0", "data.num_test=2000", "eval.grid_points=100"])
    energy_fn, params = from_nnx(SmallEnergy(nnx.Rngs(0)))
    run = experiment.build_run(cfg, energy=(energy_fn, params))
    before = experiment.summary(run, run.initial_state.params)
    result = experiment.train_run(run, tmp_path / "run")
    after = experiment.summary(run, result.state.params)
    assert int(result.state.step) == 30
    assert jax.tree.structure(result.state.params) == jax.tree.structure(params)
    # NLL − H ≥ 0 for any normalised model, up to quadrature and test-set error (2000
    # points: ±0.05); 30 PCD updates on 8gaussians from a near-flat start lower it.
    assert after["nll_minus_entropy"] > -0.1
    assert after["test_nll"] < before["test_nll"]


def test_hmc_works_on_digits():
    cfg = load_config(str(CONFIGS[0].parent / "digits_pcd.yaml"),
                      ["sampler.name=hmc", "sampler.bounds=null", "sampler.clip_grad=null",
                       "sampler.step_size=0.01", "sampler.num_steps=2",
                       "sampler.num_integration_steps=3", "objective.buffer_size=64",
                       "objective.num_chains=16", "data.batch_size=16"])
    run = experiment.build_run(cfg)
    from jebm.train import make_train_step

    step = jax.jit(make_train_step(run.objective, run.optimizer))
    state, metrics = step(run.initial_state, run.data.sample(jax.random.key(0), 16),
                          run.train_key)
    assert np.isfinite(float(metrics["loss"]))
    assert float(metrics["sampler/acceptance_rate"]) > 0.0
    assert state.objective_state.samples.shape == (64, 8, 8)


def test_logit_space_pcd_on_digits_adapts_and_samples_with_the_adapted_step():
    """digits_pcd_mala.yaml's mechanism, tiny: MALA in logit space, chains from the base,
    the step size adapted during training and used by the trained sampler."""
    cfg = load_config(str(CONFIGS[0].parent / "digits_pcd_mala.yaml"),
                      ["model.features=[4]", "model.hidden=[8]", "sampler.num_steps=2",
                       "objective.buffer_size=32", "objective.num_chains=8",
                       "data.batch_size=8", "train.num_steps=3", "train.chunk_size=3"])
    run = experiment.build_run(cfg)
    buffer = run.initial_state.objective_state.buffer.samples
    # the buffer starts from the base q (the logit-Gaussian), not the uniform box
    np.testing.assert_allclose(jax.vmap(run.base.log_prob)(buffer[:4]),
                               jax.vmap(run.base.log_prob)(run.base.sample(
                                   jax.random.key(0), 4)), rtol=0.5)
    result = experiment.train_run(run)
    log_h = result.state.objective_state.log_step_size
    assert float(log_h) != float(np.log(cfg.sampler.step_size))  # it adapted
    assert "sampler/step_size" in result.metrics
    sampler = experiment.trained_sampler(run, result.state.objective_state)
    draws = experiment.sample_model(run, result.state.params, jax.random.key(1), 4, 3,
                                    sampler=sampler)
    assert draws.shape == (4, 8, 8) and bool(jnp.all((draws > 0) & (draws < 1)))
    assert experiment.trained_sampler(run) is None  # nothing adapted: the run's own
    assert experiment.adapted_step_size(result.state.objective_state) == pytest.approx(
        float(np.exp(log_h)))
    # the buffer inside the adaptive state is found (the CLI's buffer.png)
    assert experiment.replay_samples(result.state.objective_state) is (
        result.state.objective_state.buffer.samples)
    assert experiment.replay_samples(()) is None
    draws = experiment.sample_trained(run, result.state, jax.random.key(1), 4, 3)
    assert draws.shape == (4, 8, 8) and bool(jnp.all((draws > 0) & (draws < 1)))


def test_logit_space_refuses_planar_data():
    cfg = load_config(None, ["sampler.space=logit"])
    with pytest.raises(ValueError, match=r"sampler\.space=logit.*8gaussians lives on R\^2"):
        experiment.build_run(cfg)


def test_training_devices_on_one_device():
    # 0 takes what divides the batch and the chains (here: the one device); a count
    # beyond the devices there are is refused by name (8-device checks: tests/parallel).
    assert experiment.training_devices(Config()) == 1
    with pytest.raises(ValueError, match=r"train\.devices=2, but there are only 1"):
        experiment.training_devices(apply_overrides(Config(), ["train.devices=2"]))
