"""A convolutional EBM on the 8×8 digits: likelihood (AIS), OOD AUROC, JEM accuracy, wall time.

Question: how far do IGEBM/JEM-style settings get on scikit-learn's digits in minutes on
a CPU, and where does the model stand against simple baselines?

Three models, all :class:`jebm.energies.conv.ConvEnergy` trained by persistent CD with a
replay buffer (5% re-initialised uniformly on [0, 1]⁶⁴) and decoupled Langevin clamped to
[0, 1] (gradient step ``a``, noise ``σ``, per-element gradient clip), an energy-magnitude
penalty ``α`` and Adam with ``β₁ = 0``, through ``jebm.train.make_train_step`` and
``train_loop``:

1. ``unconditional``: trained on all ten digits. Test NLL in nats per image on
   [0, 1]⁶⁴ via AIS in logit coordinates (``jebm.energy.logit_energy``) from a
   Gaussian fitted to the logits of the training images and, separately, from the
   uniform density on the box, each with its standard error and ESS, and a run with a
   quarter of the bridges as a convergence check;
   sample, replay-buffer, chains-from-noise, inpainting and denoising grids.
2. ``ood``: trained on digits 0–4 only; the energy scores held-out 0–4 against all 5–9
   images (AUROC, Z cancels), next to a full-covariance Gaussian fitted to the same
   0–4 images scored by its density.
3. ``jem``: a 10-logit classifier trained with cross-entropy + PCD on
   ``E(x) = −logsumexp g(x)`` (``jebm.objectives.jem``); test accuracy (next to a
   logistic-regression baseline) and class-conditional samples from ``E(x, y) = −g(x)[y]``.

A fourth model is not an IGEBM: ``residual`` is ``configs/digits_nce.yaml`` run through
``jebm train`` (the same in quick and full mode), an MLP correction ``f`` of the
logit-Gaussian ``q`` (``E = f − log q``) trained by NCE against ``q``. It reports the AIS
test NLL (from ``q``) next to ``q``'s own NLL, so the network's share is visible, the
learned ``c`` of NCE as an independent ``log Z`` estimate, and the OOD AUROC of the same
recipe trained on 0–4 (next to ``q``'s own AUROC in ``ood``).

Baselines for the NLL: the full-covariance Gaussian fitted to the dequantised training
images (about −50 nats), the logit-space Gaussian used as the AIS base (a density on the
box), and the uniform density (0 nats).

Run::

    python benchmarks/digits.py          # --quick: a few minutes on 2 CPU cores
    python benchmarks/digits.py --full   # longer training, more AIS bridges (GPU or patience)

Writes ``benchmarks/results/digits-<backend>.json`` and PNG grids under
``benchmarks/results/digits-figures/`` (``--figures`` to change).
"""

import functools
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from jebm import densities, evaluation, tasks  # noqa: E402
from jebm.datasets import digits  # noqa: E402
from jebm.energies.conv import conv_energy, joint_energy_fns  # noqa: E402
from jebm.energy import batch_energy, logit_energy  # noqa: E402
from jebm.objectives import jem as jem_objective  # noqa: E402
from jebm.objectives import pcd  # noqa: E402
from jebm.partition import ais  # noqa: E402
from jebm.plotting import save_image_grid  # noqa: E402
from jebm.samplers import ula  # noqa: E402
from jebm.train import init_train_state, make_train_step, train_loop  # noqa: E402

IMAGE = digits.IMAGE_SHAPE


def _add_arguments(parser):
    parser.add_argument("--figures", type=Path, default=None, help="folder for PNG grids")
    parser.add_argument("--seed", type=int, default=0)


def settings_for(full: bool) -> dict:
    """The run's hyper-parameters (the same on CPU and GPU)."""
    return {
        "features": [32, 64],
        "hidden": 128,
        "activation": "swish",
        "batch_size": 128 if full else 64,
        "num_train_steps": 3000 if full else 400,
        "num_train_steps_ood": 2000 if full else 250,
        "num_train_steps_jem": 3000 if full else 400,
        "buffer_size": 10000 if full else 2000,
        "reinit_prob": 0.05,
        "langevin_steps": 40 if full else 20,
        "langevin_step_size": 10.0,
        "langevin_noise": 0.005,
        "clip_grad": 0.01,
        "energy_l2": 1.0,
        "learning_rate": 1e-3,
        "adam_b1": 0.0,
        "adam_b2": 0.999,
        "sample_steps": 100 if full else 60,
        "ais_chains": 512 if full else 128,
        "ais_bridges": 2000 if full else 300,
        "ais_step_size": 0.05,
    }


def _sampler(s: dict):
    return functools.partial(ula, step_size=s["langevin_step_size"],
                             noise_scale=s["langevin_noise"], clip_grad=s["clip_grad"],
                             bounds=(0.0, 1.0))


def _langevin_kwargs(s: dict) -> dict:
    return {"sampler": _sampler(s)}


class _BoxNLL(NamedTuple):
    nll: jax.Array
    nll_stderr: jax.Array
    log_z_stderr: jax.Array
    ais: object


def _box_nll(key, energy_fn, params, x_test, base, num_chains, **ais_kwargs):
    """Test NLL on [0, 1]^64: AIS on the logit-space energy, then mean E + log Z."""
    result = ais(key, logit_energy(energy_fn), params, base, num_chains, **ais_kwargs)
    est = evaluation.nll(energy_fn, params, x_test, result.log_z, result.log_z_stderr)
    return _BoxNLL(est.nll, est.nll_stderr, est.log_z_stderr, result)


def _train(key, energy_fn, params, objective, data, num_steps, s, figures, name):
    """Train with ``train_loop``; save the replay buffer every quarter of the run."""
    optimizer = optax.adam(s["learning_rate"], b1=s["adam_b1"], b2=s["adam_b2"])
    k_init, k_batch, k_run = jax.random.split(key, 3)
    state = init_train_state(k_init, params, optimizer, objective,
                             data(k_batch, s["batch_size"]))
    eval_every = max(num_steps // 4, 1)

    def eval_fn(state):
        samples = state.objective_state.samples[:100]
        save_image_grid(figures / f"{name}-buffer-step{int(state.step):05d}.png", samples,
                            10, title=f"{name}: replay buffer, step {int(state.step)}")
        return {"energy_buffer": jnp.mean(batch_energy(energy_fn, state.params, samples))}

    tic = time.perf_counter()
    result = train_loop(k_run, state, make_train_step(objective, optimizer), data,
                        num_steps=num_steps, batch_size=s["batch_size"],
                        chunk_size=min(50, eval_every), eval_fn=eval_fn, eval_every=eval_every,
                        log_every=50, progress=False)
    wall = time.perf_counter() - tic
    print(f"{name}: {num_steps} steps in {wall:.1f} s ({result.steps_per_second:.2f} steps/s "
          f"steady); last metrics {({k: round(v, 4) for k, v in result.metrics.items()})}",
          flush=True)
    return result, wall


def _pcd_objective(energy_fn, s):
    return pcd(energy_fn, _sampler(s), s["langevin_steps"], buffer_size=s["buffer_size"],
               reinit_prob=s["reinit_prob"], init_density=densities.uniform_box(0.0, 1.0, IMAGE),
               energy_l2=s["energy_l2"])


def run_unconditional(key, split, x_train, x_test, s, figures):
    k_model, k_train, k_chain, k_inpaint, k_noise, k_ais = jax.random.split(key, 6)
    energy_fn, params = conv_energy(k_model, IMAGE, features=tuple(s["features"]),
                                    hidden=s["hidden"], activation=s["activation"])
    result, wall = _train(k_train, energy_fn, params, _pcd_objective(energy_fn, s),
                          digits.sampler(split.train_counts), s["num_train_steps"], s, figures,
                          "unconditional")
    params = result.state.params
    save_image_grid(figures / "unconditional-buffer.png",
                        result.state.objective_state.samples[:100], 10,
                        title="replay buffer (final)")

    # Chains from uniform noise: 10 chains, 6 snapshots each (a row per chain).
    start = jax.random.uniform(k_chain, (10, *IMAGE))
    frames = jax.jit(lambda k: tasks.sample_chains(
        k, energy_fn, params, start, num_steps=s["sample_steps"], num_frames=6,
        **_langevin_kwargs(s)))(k_chain)
    rows = jnp.concatenate([start[None], frames]).transpose(1, 0, 2, 3)
    save_image_grid(figures / "unconditional-chains.png", rows.reshape(-1, *IMAGE), 7,
                        title=f"chains from noise, {s['sample_steps']} steps")
    samples = jax.jit(lambda k: tasks.sample_chains(
        k, energy_fn, params, jax.random.uniform(k, (100, *IMAGE)),
        num_steps=s["sample_steps"], **_langevin_kwargs(s)))(k_chain)[-1]
    save_image_grid(figures / "unconditional-samples.png", samples, 10,
                        title="fresh samples from noise")

    # Inpainting (bottom half missing) and denoising (Gaussian noise, sd 0.3) of 10 test
    # images; rows: original, corrupted, restored.
    images = x_test[:10]
    mask = jnp.zeros(IMAGE, bool).at[4:].set(True)
    inpainted = jax.jit(jax.vmap(lambda k, im: tasks.inpaint(
        k, energy_fn, params, im, mask, num_steps=s["sample_steps"], **_langevin_kwargs(s))))(
        jax.random.split(k_inpaint, 10), images)
    noisy = jnp.clip(images + 0.3 * jax.random.normal(k_noise, images.shape), 0.0, 1.0)
    denoised = jax.jit(jax.vmap(lambda k, im: tasks.denoise(
        k, energy_fn, params, im, num_steps=s["langevin_steps"], **_langevin_kwargs(s))))(
        jax.random.split(k_noise, 10), noisy)
    save_image_grid(figures / "unconditional-inpainting.png",
                        jnp.concatenate([images, jnp.where(mask, 0.0, images), inpainted]), 10,
                        title="inpainting: original / bottom half removed / inpainted")
    save_image_grid(figures / "unconditional-denoising.png",
                        jnp.concatenate([images, noisy, denoised]), 10,
                        title="denoising: original / noisy (sd 0.3) / denoised")
    restore = {
        "inpaint_mse_masked": float(jnp.mean((inpainted - images)[:, 4:] ** 2)),
        "inpaint_mse_mean_image": float(jnp.mean((x_train.mean(0)[4:] - images[:, 4:]) ** 2)),
        "denoise_mse_noisy": float(jnp.mean((noisy - images) ** 2)),
        "denoise_mse_denoised": float(jnp.mean((denoised - images) ** 2)),
    }

    # Test NLL on [0, 1]^64 via logit-space AIS from the fitted logit Gaussian.
    base = densities.fit_gaussian(densities.logit(np.asarray(x_train, np.float64)))
    tic = time.perf_counter()
    nll_fn = jax.jit(lambda k, p: _box_nll(
        k, energy_fn, p, x_test, base, s["ais_chains"], num_bridges=s["ais_bridges"],
        step_size=s["ais_step_size"], adapt_step_size=True))
    est = jax.block_until_ready(nll_fn(k_ais, params))
    ais_wall = time.perf_counter() - tic
    half = jax.block_until_ready(jax.jit(lambda k, p: _box_nll(
        k, energy_fn, p, x_test, base, s["ais_chains"], num_bridges=s["ais_bridges"] // 4,
        step_size=s["ais_step_size"], adapt_step_size=True))(k_ais, params))
    # The same from the uniform density on the box (the logistic base in logit space):
    # the better base when the model is close to uniform.
    uniform = jax.block_until_ready(jax.jit(lambda k, p: _box_nll(
        k, energy_fn, p, x_test, densities.logistic(IMAGE), s["ais_chains"],
        num_bridges=s["ais_bridges"], step_size=s["ais_step_size"], adapt_step_size=True))(
        k_ais, params))
    energies_test = batch_energy(energy_fn, params, x_test)
    energies_noise = batch_energy(energy_fn, params, jax.random.uniform(k_ais, (500, *IMAGE)))
    # Headline: the base whose weights have the larger ESS (the more trustworthy estimate;
    # with ESS of a few chains the delta-method error bar is itself unreliable).
    best, best_name = (est, "logit_gaussian") if est.ais.ess >= uniform.ais.ess else (
        uniform, "uniform")
    nll = {
        "nll": float(best.nll), "nll_stderr": float(best.nll_stderr), "nll_base": best_name,
        "nll_logit_gaussian_base": float(est.nll),
        "log_z_logit_gaussian_base": float(est.ais.log_z),
        "log_z_stderr_logit_gaussian_base": float(est.log_z_stderr),
        "ais_ess_logit_gaussian_base": float(est.ais.ess), "ais_chains": s["ais_chains"],
        "ais_bridges": s["ais_bridges"], "ais_wall_s": ais_wall,
        "nll_quarter_bridges": float(half.nll),
        "log_z_stderr_quarter_bridges": float(half.log_z_stderr),
        "nll_uniform_base": float(uniform.nll),
        "log_z_stderr_uniform_base": float(uniform.log_z_stderr),
        "ais_ess_uniform_base": float(uniform.ais.ess),
        "mean_energy_test": float(energies_test.mean()),
        "mean_energy_uniform_noise": float(energies_noise.mean()),
        "energy_range_test": [float(energies_test.min()), float(energies_test.max())],
    }
    print(f"unconditional: test NLL {best.nll:.2f} ± {best.nll_stderr:.2f} nats ({best_name} "
          f"base); logit-Gaussian base: {est.nll:.2f} "
          f"(log Z stderr {est.log_z_stderr:.2f}, ESS {est.ais.ess:.1f}/{s['ais_chains']}; "
          f"{s['ais_bridges'] // 4} bridges: {half.nll:.2f}; uniform base: {uniform.nll:.2f} ± "
          f"{uniform.log_z_stderr:.2f}, ESS {uniform.ais.ess:.1f}); AIS {ais_wall:.1f} s",
          flush=True)
    return {"train_wall_s": wall, "steps_per_second": result.steps_per_second,
            "final_metrics": result.metrics, **nll, **restore}


def ood_split(key):
    """Digits 0-4 (train, held-out test) and all 5-9 images, dequantised; the split is
    ``jebm train``'s with ``data.classes=[0, 1, 2, 3, 4]``."""
    k_train, k_in, k_out = jax.random.split(key, 3)
    inside = digits.load_digits(classes=range(5), seed=0)
    outside = digits.load_digits(classes=range(5, 10), seed=0)
    out_counts = np.concatenate([outside.train_counts, outside.test_counts])
    return (inside, digits.dequantize(k_train, inside.train_counts),
            digits.dequantize(k_in, inside.test_counts), digits.dequantize(k_out, out_counts))


def _auroc_of_density(log_prob, x_in, x_out) -> float:
    score = lambda x: -jax.vmap(log_prob)(x)
    labels = jnp.concatenate([jnp.zeros(len(x_in)), jnp.ones(len(x_out))])
    return float(evaluation.auroc(labels, jnp.concatenate([score(x_in), score(x_out)])))


def run_ood(key, s, figures, split):
    k_model, k_train = jax.random.split(key)
    inside, x_in_train, x_in, x_out = split
    energy_fn, params = conv_energy(k_model, IMAGE, features=tuple(s["features"]),
                                    hidden=s["hidden"], activation=s["activation"])
    result, wall = _train(k_train, energy_fn, params, _pcd_objective(energy_fn, s),
                          digits.sampler(inside.train_counts), s["num_train_steps_ood"], s,
                          figures, "ood")
    auroc = float(evaluation.ood_auroc(energy_fn, result.state.params, x_in, x_out))
    # Baselines: a full-covariance Gaussian and the logit-Gaussian fitted to the
    # (dequantised) 0-4 training images, scored by −log density.
    gauss = densities.fit_gaussian(x_in_train)
    gauss_auroc = _auroc_of_density(gauss.log_prob, x_in, x_out)
    logit_auroc = _auroc_of_density(densities.logit_gaussian(x_in_train).log_prob, x_in,
                                    x_out)
    print(f"ood: AUROC {auroc:.3f} (Gaussian baseline {gauss_auroc:.3f}, logit-Gaussian "
          f"{logit_auroc:.3f}); {len(x_in)} held-out 0-4 vs {len(x_out)} 5-9 images", flush=True)
    return {"auroc": auroc, "auroc_gaussian_baseline": gauss_auroc,
            "auroc_logit_gaussian_baseline": logit_auroc,
            "num_in": int(len(x_in)), "num_out": int(len(x_out)), "train_wall_s": wall,
            "steps_per_second": result.steps_per_second, "final_metrics": result.metrics}


def run_jem(key, split, x_test, s, figures):
    k_model, k_train, k_sample = jax.random.split(key, 3)
    jem = joint_energy_fns(k_model, IMAGE, digits.NUM_CLASSES, features=tuple(s["features"]),
                           hidden=s["hidden"], activation=s["activation"])
    objective = jem_objective(_pcd_objective(jem.energy_fn, s), jem.logits_fn)
    sampler = digits.labelled_sampler(split.train_counts, split.train_labels)
    result, wall = _train(k_train, jem.energy_fn, jem.params, objective, sampler,
                          s["num_train_steps_jem"], s, figures, "jem")
    params = result.state.params
    acc = float(evaluation.accuracy(jem.logits_fn, params, x_test, split.test_labels))
    labels = jnp.repeat(jnp.arange(10), 10)
    cond = jax.jit(lambda k: tasks.conditional_samples(
        k, jem.conditional_energy_fn, params, labels, jax.random.uniform(k, (100, *IMAGE)),
        num_steps=s["sample_steps"], **_langevin_kwargs(s)))(k_sample)
    save_image_grid(figures / "jem-conditional-samples.png", cond, 10,
                        title="JEM samples of p(x | y), one row per class y = 0..9")
    agree = float(evaluation.accuracy(jem.logits_fn, params, cond, labels))

    from sklearn.linear_model import LogisticRegression

    flat = lambda c: np.asarray(c, np.float64).reshape(len(c), -1) / 16.0
    logreg = LogisticRegression(max_iter=2000).fit(flat(split.train_counts), split.train_labels)
    logreg_acc = float(logreg.score(flat(split.test_counts), split.test_labels))
    print(f"jem: test accuracy {acc:.3f} (logistic regression {logreg_acc:.3f}); "
          f"conditional samples classified as their class: {agree:.2f}", flush=True)
    return {"test_accuracy": acc, "logistic_regression_accuracy": logreg_acc,
            "conditional_samples_agreement": agree, "train_wall_s": wall,
            "steps_per_second": result.steps_per_second, "final_metrics": result.metrics}


def run_residual(s, figures, split):
    """``configs/digits_nce.yaml`` through ``jebm train``: the logit-Gaussian q plus an MLP
    correction, trained by NCE against q; its AIS test NLL, and the same recipe on digits
    0-4 scored on held-out 0-4 against 5-9 (AUROC)."""
    from jebm.cli import train
    from jebm.experiment import load_model

    _, _, x_in, x_out = split
    config = str(Path(__file__).resolve().parent.parent / "configs" / "digits_nce.yaml")
    overrides = [f"eval.ais_chains={s['ais_chains']}"]
    with tempfile.TemporaryDirectory(prefix="jebm-digits-") as tmp:
        tic = time.perf_counter()
        summary = train(config, f"{tmp}/all", overrides, progress=False)
        wall = time.perf_counter() - tic
        shutil.copy(f"{tmp}/all/samples.png", figures / "residual-samples.png")
        train(config, f"{tmp}/ood", [*overrides, "data.classes=[0, 1, 2, 3, 4]"],
              progress=False)
        energy_fn, params, _ = load_model(f"{tmp}/ood")
        auroc = float(evaluation.ood_auroc(energy_fn, params, x_in, x_out))
    keys = ("test_nll", "test_nll_stderr", "log_z", "log_z_stderr", "ais_ess", "ais_bridges",
            "nce_log_z", "logit_gaussian_nll", "steps_per_second", "final_metrics")
    print(f"residual (NCE on the logit-Gaussian): test NLL {summary['test_nll']:.2f} ± "
          f"{summary['test_nll_stderr']:.2f} (logit-Gaussian alone "
          f"{summary['logit_gaussian_nll']:.2f}); AIS log Z {summary['log_z']:.3f} ± "
          f"{summary['log_z_stderr']:.3f} (ESS {summary['ais_ess']:.1f}), NCE c "
          f"{summary['nce_log_z']:.3f}; OOD AUROC {auroc:.3f}; {wall:.0f} s", flush=True)
    return {"config": "configs/digits_nce.yaml", **{k: summary[k] for k in keys},
            "train_wall_s": wall, "ood_auroc": auroc}


def baselines(x_train, x_test):
    nll, stderr = digits.gaussian_nll(x_train, x_test)
    logp = jax.vmap(densities.logit_gaussian(x_train).log_prob)(x_test)
    return {
        "gaussian_nll": nll, "gaussian_nll_stderr": stderr,
        "logit_gaussian_nll": float(-logp.mean()),
        "logit_gaussian_nll_stderr": float(logp.std(ddof=1) / np.sqrt(len(logp))),
        "uniform_nll": 0.0,
        "discrete_offset_nats": digits.DISCRETE_OFFSET,
    }


def summary_table(results: dict) -> str:
    """The headline numbers against their baselines, as a markdown table."""
    b, u, o, j, r = (results[k] for k in ("baselines", "unconditional", "ood", "jem", "residual"))
    return _common.markdown_table(
        ["quantity", "EBM", "baseline"],
        [[f"test NLL, conv PCD (nats/image, AIS, {u['nll_base']} base)",
          f"{u['nll']:.2f} ± {u['nll_stderr']:.2f}",
          f"Gaussian {b['gaussian_nll']:.1f}, logit-Gaussian {b['logit_gaussian_nll']:.1f}, "
          "uniform 0"],
         ["test NLL, NCE correction of the logit-Gaussian (AIS)",
          f"{r['test_nll']:.2f} ± {r['test_nll_stderr']:.2f}",
          f"logit-Gaussian alone {r['logit_gaussian_nll']:.2f} (same test set)"],
         ["OOD AUROC (0-4 vs 5-9)", f"PCD {o['auroc']:.3f}, NCE correction {r['ood_auroc']:.3f}",
          f"Gaussian {o['auroc_gaussian_baseline']:.3f}, "
          f"logit-Gaussian {o['auroc_logit_gaussian_baseline']:.3f}"],
         ["test accuracy (JEM)", f"{j['test_accuracy']:.3f}",
          f"logistic regression {j['logistic_regression_accuracy']:.3f}"],
         ["wall time (s)", f"{results['wall_time_s']:.0f}", ""]])  # fmt: skip


def render_markdown(payload: dict) -> str:
    """RESULTS.md section: the headline table; every number is in the JSON."""
    return (summary_table(payload["results"]) + "\n\nAll numbers (AIS ESS and standard "
            "errors, training metrics, the NCE model's learned log Z) are in the JSON file.")


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    s = settings_for(args.full)
    info = _common.device_info()
    figures = args.figures or _common.RESULTS_DIR / "digits-figures"
    figures.mkdir(parents=True, exist_ok=True)
    _common.print_header("digits EBM", info, {"mode": "full" if args.full else "quick", **s})
    tic = time.perf_counter()
    key = jax.random.key(args.seed)
    k_data, k_unc, k_ood, k_jem = jax.random.split(key, 4)
    split = digits.load_digits(seed=0)
    k_train, k_test = jax.random.split(k_data)
    x_train = digits.dequantize(k_train, split.train_counts)
    x_test = digits.dequantize(k_test, split.test_counts)
    results = {"baselines": baselines(x_train, x_test)}
    b = results["baselines"]
    print(f"baselines: Gaussian {b['gaussian_nll']:.2f} ± {b['gaussian_nll_stderr']:.2f}, "
          f"logit-Gaussian {b['logit_gaussian_nll']:.2f}, uniform 0 nats", flush=True)
    results["unconditional"] = run_unconditional(k_unc, split, x_train, x_test, s, figures)
    split_ood = ood_split(k_ood)
    results["ood"] = run_ood(k_ood, s, figures, split_ood)
    results["residual"] = run_residual(s, figures, split_ood)
    results["jem"] = run_jem(k_jem, split, x_test, s, figures)
    results["wall_time_s"] = time.perf_counter() - tic
    results["figures"] = sorted(p.name for p in figures.glob("*.png"))
    path = _common.write_json("digits", info, {"mode": "full" if args.full else "quick", **s},
                              results, args.out)
    print(summary_table(results))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
