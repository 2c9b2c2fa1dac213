"""The image recipes of configs/digits_{jem,ncsn,drl,ed}.yaml: each config loads, trains a
few updates through build_run/train_run with a tiny network, and its model is sampled the
way its objective says (jebm.experiment.ObjectiveRecipe.sample). The MNIST and CIFAR-10
JEM configs train two updates on tiny files written in their byte formats."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import experiment
from jebm.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = {"jem": "jem", "ncsn": "dsm", "drl": "drl", "ed": "ed"}
# A tiny network and run: the plumbing, not the numbers, is under test.
TINY = ["model.features=[4]", "model.hidden=[8]", "data.batch_size=8", "train.num_steps=2",
        "train.chunk_size=2", "train.log_every=1", "train.eval_every=0",
        "objective.buffer_size=16", "objective.num_chains=8", "sampler.num_steps=2",
        "objective.num_negatives=2"]


def _tiny(name: str, *extra: str):
    return load_config(str(CONFIGS / f"digits_{name}.yaml"), [*TINY, *extra])


@pytest.fixture(scope="module")
def trained():
    """``trained(name) -> (run, result)``: each tiny recipe trained once for this module."""
    cache = {}

    def get(name):
        if name not in cache:
            run = experiment.build_run(_tiny(name, "eval.ais_chains=4", "eval.ais_bridges=4"))
            cache[name] = run, experiment.train_run(run)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_config_loads(name):
    config = load_config(str(CONFIGS / f"digits_{name}.yaml"))
    assert (config.data.name, config.objective.name) == ("digits", RECIPES[name])
    assert 100 <= config.train.num_steps <= 2000  # CPU-sized, like digits_pcd.yaml
    ladder = config.objective.ladder
    assert (ladder is not None) == (name in ("ncsn", "drl"))
    if ladder is not None:  # geometric, largest first, ending at sigma_min
        assert ladder[0] == config.objective.sigma_max
        assert ladder[-1] == pytest.approx(config.objective.sigma_min)
        ratios = np.asarray(ladder[1:]) / np.asarray(ladder[:-1])
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_trains_and_samples(name, trained):
    run, result = trained(name)
    assert int(result.state.step) == 2
    assert all(np.isfinite(v) for v in jax.tree.leaves(result.metrics))
    draws = experiment.sample_model(run, result.state.params, jax.random.key(1), 3, 12)
    assert draws.shape == (3, 8, 8) and bool(jnp.all(jnp.isfinite(draws)))
    energies = jax.vmap(run.model_energy_fn, in_axes=(None, 0))(result.state.params, draws)
    assert energies.shape == (3,) and bool(jnp.all(jnp.isfinite(energies)))
    assert experiment.sampling_label(run, 12)


@pytest.mark.parametrize("name", ["mnist_jem", "cifar10_jem"])
def test_mnist_and_cifar_jem_configs_train_on_tiny_files(name, tmp_path):
    # Labelled batches from the file loaders through the joint objective; every shipped
    # config, PCD's included, is also built at its own size in test_experiment.py.
    from test_cifar import write_batches
    from test_mnist import write_split

    rng = np.random.default_rng(0)
    if name.startswith("mnist"):
        write_split(tmp_path, rng, n_train=8, n_test=4, shape=(28, 28))
    else:
        write_batches(tmp_path, rng, n=2)
    config = load_config(str(CONFIGS / f"{name}.yaml"), [
        f"data.path={tmp_path}", "model.features=[2]", "model.hidden=[4]",
        "data.batch_size=4", "objective.buffer_size=8", "objective.num_chains=4",
        "sampler.num_steps=1", "train.num_steps=2", "train.chunk_size=2",
        "train.eval_every=0", "optimizer.warmup_steps=0"])
    assert config.objective.name == name.split("_")[1]
    run = experiment.build_run(config)
    result = experiment.train_run(run)
    assert int(result.state.step) == 2
    assert all(np.isfinite(v) for v in jax.tree.leaves(result.metrics))


def test_jem_trains_on_labels_and_reports_accuracy(trained):
    run, result = trained("jem")
    x, y = run.batches(jax.random.key(0), 8)
    assert x.shape == (8, 8, 8) and y.shape == (8,) and y.dtype == jnp.int32
    assert {"cross_entropy", "train_accuracy", "energy_pos", "energy_neg"} <= set(result.metrics)
    params = result.state.params
    out = experiment.summary(run, params)
    assert 0.0 <= out["accuracy"] <= 1.0 and np.isfinite(out["test_nll"])
    # the accuracy is the classifier's on the held-out images and their labels
    logits = jax.vmap(run.joint.logits_fn, in_axes=(None, 0))(params, run.data.test)
    expected = np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(run.data.test_labels))
    assert out["accuracy"] == pytest.approx(expected)
    # the marginal energy is -logsumexp of the logits (JEM's E(x)) minus the base's log q
    log_q = jax.vmap(run.base.log_prob)(run.data.test[:4])
    np.testing.assert_allclose(
        jax.vmap(run.model_energy_fn, in_axes=(None, 0))(params, run.data.test[:4]),
        -jax.nn.logsumexp(logits[:4], axis=-1) - log_q, rtol=1e-5, atol=1e-4)
    labels = jnp.arange(4) % 10
    cond = experiment.sample_conditional(run, params, jax.random.key(2), labels, 3)
    assert cond.shape == (4, 8, 8) and bool(jnp.all(jnp.isfinite(cond)))


def _logit_gaussian_log_q(train, x):
    """log q(x) of the logit-Gaussian fitted to ``train``, in float64 by scipy: the
    maximum-likelihood Gaussian of the logits, times the Jacobian ∏ 1 / (x (1 − x))."""
    from scipy.stats import multivariate_normal

    eps = 1e-6  # jebm.densities.logit_gaussian's clipping
    flat = lambda a: np.clip(np.asarray(a, np.float64).reshape(len(a), -1), eps, 1 - eps)
    t, x = flat(train), flat(x)
    z_train, z = np.log(t) - np.log1p(-t), np.log(x) - np.log1p(-x)
    gauss = multivariate_normal(z_train.mean(0), np.cov(z_train, rowvar=False, ddof=0))
    return gauss.logpdf(z) - np.sum(np.log(x) + np.log1p(-x), axis=1)


def test_jem_base_cancels_in_the_classifier_and_enters_both_energies():
    # The committed recipe has model.base=logit_gaussian: E(x, y) = -g(x)[y] - log q(x)
    # and E(x) = -logsumexp g(x) - log q(x), while p(y | x) = softmax g(x) as without it.
    based = experiment.build_run(_tiny("jem"))
    plain = experiment.build_run(_tiny("jem", "model.base=none"))
    assert based.config.model.base == "logit_gaussian" and plain.base is None
    params = based.initial_state.params  # the same seed: the same network in both runs
    jax.tree.map(np.testing.assert_array_equal, params, plain.initial_state.params)
    x = based.data.test[:3]
    logits = np.asarray(jax.vmap(based.joint.logits_fn, in_axes=(None, 0))(params, x), np.float64)
    np.testing.assert_array_equal(
        logits, jax.vmap(plain.joint.logits_fn, in_axes=(None, 0))(params, x))
    log_q = _logit_gaussian_log_q(based.data.train, x)
    assert np.all(np.abs(log_q) > 10.0)  # far from 0: a wrong sign could not pass
    ys = jnp.arange(10)
    cond = np.asarray(jax.vmap(lambda xi: jax.vmap(
        lambda y: based.joint.conditional_energy_fn(params, xi, y))(ys))(x), np.float64)
    # float32 energies of magnitude ~1e2, against float64 scipy: 1e-5 relative
    np.testing.assert_allclose(cond, -logits - log_q[:, None], rtol=1e-5, atol=1e-3)
    from scipy.special import logsumexp, softmax

    marginal = -logsumexp(logits, axis=1) - log_q
    for energy in (based.joint.energy_fn, based.model_energy_fn):
        np.testing.assert_allclose(jax.vmap(energy, in_axes=(None, 0))(params, x), marginal,
                                   rtol=1e-5, atol=1e-3)
    # p(y | x) = exp(E(x) − E(x, y)): q cancels, the classifier's softmax
    np.testing.assert_allclose(np.exp(marginal[:, None] - cond), softmax(logits, axis=1),
                               atol=1e-4)


def test_jem_conditional_chains_start_from_the_base_with_the_adapted_step(monkeypatch):
    # The recipe adapts MALA's step (sampler.target_acceptance); class-conditional chains
    # start from q and take the adapted step, as unconditional ones do (sample_trained).
    run = experiment.build_run(_tiny("jem"))
    state = run.initial_state._replace(objective_state=run.initial_state.objective_state._replace(
        log_step_size=jnp.log(jnp.float32(0.125))))
    assert experiment.adapted_step_size(state.objective_state) == pytest.approx(0.125)
    tunables = []

    def recording(logdensity_fn, **overrides):
        tunables.append(overrides)
        return run.sampler(logdensity_fn, **overrides)

    def no_moves(key, energy_fn, params, labels, start, *, sampler, num_steps):
        sampler(lambda x: -energy_fn(params, x, labels[0]))  # builds the kernel
        return start

    monkeypatch.setattr(experiment.sampling, "conditional_samples", no_moves)
    labels, key = jnp.arange(4) % 10, jax.random.key(5)
    draws = experiment.sample_conditional_trained(run._replace(sampler=recording), state, key,
                                                  labels, 3)
    assert tunables == [{"step_size": pytest.approx(0.125)}]
    # sample_conditional's start: the first half of its key, drawn from q
    np.testing.assert_array_equal(draws, run.base.sample(jax.random.split(key)[0], 4))
    experiment.sample_conditional(run._replace(sampler=recording), state.params, key, labels, 3)
    assert tunables[-1] == {}  # without a trained state: the config's tunables


def test_jem_conditional_sample_quality_beside_the_unconditional(monkeypatch):
    # The feature network is jebm's own (trained once per data set and seed, cached); a stand-in
    # scorer keeps this test about the plumbing: which draws reach the scorer.
    from jebm import sample_quality as sq

    seen = []
    monkeypatch.setattr(sq, "load_or_train_features", lambda cache, data, seed: "net")
    monkeypatch.setattr(sq, "score_draws", lambda net, draws, test, num_draws: (
        seen.append((draws.shape, num_draws)) or {"fd": 1.0}))
    monkeypatch.setattr(sq, "baseline_report", lambda *a, **k: {})
    samplers = []
    original = experiment.sample_conditional
    monkeypatch.setattr(experiment.evaluate, "sample_conditional", lambda *a, sampler=None, **k: (
        samplers.append(sampler) or original(*a, sampler=sampler, **k)))
    run = experiment.build_run(_tiny("jem", "eval.sample_steps=2", "data.classes=[3, 7]",
                                     "eval.quality_draws=2"))
    params = run.initial_state.params
    extra = experiment.evaluate._recipe_extras(run, params, feature_cache="unused",
                                      objective_state=run.initial_state.objective_state)
    assert samplers[0] is not None  # the adapted step (experiment.trained_sampler)
    assert extra["sample_quality"]["model"] == {"fd": 1.0}
    conditional = extra["sample_quality_conditional"]
    assert conditional["model"] == {"fd": 1.0} and 0.0 <= conditional["label_agreement"] <= 1.0
    assert seen == [((720, 8, 8), 2), ((720, 8, 8), 2)]  # two draws of 360 each


def test_ladder_runs_report_what_their_nll_is(trained):
    run, result = trained("ncsn")
    params = result.state.params
    out = experiment.summary(run, params)
    assert "sigma_min=0.02" in out["test_nll_model"] and np.isfinite(out["test_nll"])
    # the model energy is the noise-conditional energy at the smallest level
    x = run.data.test[0]
    assert float(run.model_energy_fn(params, x)) == pytest.approx(
        float(run.energy_fn(params, x, 0.02)), rel=1e-5)
    plain, plain_result = trained("jem")  # no ladder: no label on its NLL
    assert "test_nll_model" not in experiment.evaluate._recipe_extras(
        plain, plain_result.state.params, None)


def test_ladder_sampling_walks_down_the_ladder(monkeypatch):
    # annealed Langevin on a known noise-conditional energy, the Gaussian N(m, (s0² + σ²) I)
    # (data N(m, s0² I) smoothed at σ): the draws end near N(m, s0² + σ_min²).
    run = experiment.build_run(_tiny("ncsn", "objective.sigma_max=1.0",
                                     "objective.sigma_min=0.05", "objective.num_levels=4",
                                     "sampler.step_size=1.0e-3"))
    m, s0 = 0.5, 0.1
    energy = lambda p, x, s: 0.5 * jnp.sum((x - m) ** 2) / (s0**2 + s**2)
    run = run._replace(energy_fn=energy)
    draws = experiment.sample_model(run, None, jax.random.key(3), 200, 400)
    # 200 chains x 64 pixels: the pixel mean has sd ≈ 0.11/√12800 ≈ 1e-3 and the variance
    # ±2%; annealed Langevin's step bias at eps = 1e-3 is well within 10%.
    assert float(jnp.mean(draws)) == pytest.approx(m, abs=0.01)
    assert float(jnp.var(draws)) == pytest.approx(s0**2 + 0.05**2, rel=0.1)


def test_recovery_sampling_uses_the_ladder():
    run = experiment.build_run(_tiny("drl"))
    # A flat energy: each level's recovery is a random walk around the noised point, so
    # the draws' spread is set by the ladder: well above sigma_min, and finite.
    flat = run._replace(energy_fn=lambda p, x, s: 0.0 * jnp.sum(x))
    draws = experiment.sample_model(flat, None, jax.random.key(4), 16, 12)
    assert draws.shape == (16, 8, 8) and bool(jnp.all(jnp.isfinite(draws)))
    assert float(jnp.std(draws)) > 5 * run.config.objective.sigma_min


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["objective.name=dsm", "objective.sigma_max=1.0", "objective.sigma_min=0.1",
          "objective.num_levels=3"],
         r"objective\.sigma_max sets a noise ladder.*model\.kind must be one of "
         r"\('noise_conditional',\), got model\.kind='mlp'"),
        (["objective.name=dsm", "objective.sigmas=[1.0, 0.1]", "model.kind=conv",
          "model.hidden=[8]", "data.name=digits"],
         r"objective\.sigmas sets a noise ladder.*model\.kind='conv'"),
        (["model.kind=noise_conditional", "model.hidden=[8]", "data.name=digits"],
         r"model\.kind=noise_conditional \(an energy E\(x, sigma\)\) is trained over a "
         r"noise ladder.*got objective\.name='pcd' without one"),
        (["objective.name=pcd", "objective.sigma_max=1.0", "objective.sigma_min=0.1",
          "objective.num_levels=3"],
         r"objective\.sigma_max sets a noise ladder, which objective\.name in \('dsm', "
         r"'drl'\) use; objective\.name='pcd' takes none"),
        (["objective.name=dsm", "objective.sigma_max=1.0"],
         r"objective\.sigma_min must be set with objective\.sigma_max"),
        (["objective.name=dsm", "objective.sigma_max=0.1", "objective.sigma_min=1.0",
          "objective.num_levels=3"], r"objective\.sigma_min must be < objective\.sigma_max"),
        (["objective.name=dsm", "objective.sigma_max=1.0", "objective.sigma_min=0.1",
          "objective.num_levels=1"], r"objective\.num_levels must be >= 2"),
        (["objective.name=drl", "objective.sigmas=[0.1, 1.0]"],
         r"objective\.sigmas must be strictly decreasing"),
        (["objective.name=drl", "objective.drl_form=vp"],
         r"objective\.drl_form must be one of \('clean', 'diffusion'\)"),
        (["objective.name=drl", "objective.drl_form=diffusion"],
         r"objective\.drl_form diffusion needs a noise ladder"),
        (["objective.name=dsm", "objective.sigmas=[1.0, 0.1]", "objective.sigma_max=1.0",
          "objective.sigma_min=0.1", "objective.num_levels=2"],
         r"objective\.sigmas must be null when"),
        (["objective.name=jem"], r"model\.kind must be one of \('joint_conv',\)"),
        (["objective.name=jem", "model.kind=joint_conv", "model.hidden=[8]"],
         r"data\.name must be a labelled data set"),
        (["model.kind=noise_conditional", "model.hidden=[8]", "model.base=gaussian",
          "objective.name=dsm", "objective.sigmas=[1.0, 0.1]", "data.name=digits"],
         r"model\.base must be none for model\.kind=noise_conditional"),
    ],
)
def test_bad_recipe_fields_fail_at_load_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_jem_objective_sign():
    # The generative term is PCD on E(x) = −logsumexp g(x) (without a base, the buffer
    # uniform on the box): a model that already puts its data at lower energy than the
    # buffer's uniform noise has a negative energy gap, and a gradient step on the loss
    # widens it (E(data) falls relative to E(noise)).
    from jebm.train import make_train_step

    run = experiment.build_run(_tiny("jem", "model.base=none", "objective.init_low=0.0",
                                     "objective.init_high=1.0", "objective.energy_l2=0.0",
                                     "sampler.num_steps=1", "optimizer.learning_rate=1e-2"))
    step = jax.jit(make_train_step(run.objective, run.optimizer))
    batch = run.batches(jax.random.key(0), 8)
    noise = jax.random.uniform(jax.random.key(1), (64, 8, 8))

    def gap(params):
        e = jax.vmap(run.model_energy_fn, in_axes=(None, 0))
        return float(jnp.mean(e(params, batch[0])) - jnp.mean(e(params, noise)))

    state = run.initial_state
    before = gap(state.params)
    for i in range(5):
        state, _ = step(state, run.batches(jax.random.key(10 + i), 8), jax.random.key(i))
    assert gap(state.params) < before
