"""Gibbs-with-Gradients vs single-site Metropolis on a binarised-digits RBM: cost per step, ESS/s.

Question (issue 12's speed row): per step of ``num_chains`` chains, what does
Gibbs-with-Gradients (GWG, one ``value_and_grad`` of the free energy per step) cost next
to single-site Metropolis (one free-energy evaluation per step) on the same target, and
which gives more effective samples per second? RBM block Gibbs (two matrix products per
step, every step a full sweep) is the model-specific reference.

Target: a Bernoulli RBM with 64 visible units (scikit-learn's 8×8 digits, binarised at
pixel count >= 8 by :func:`jebm.datasets.digits.binarize`) and ``num_hidden`` hidden
units, trained here for a few hundred steps of PCD-1 (``jebm.objectives.pcd`` with
``block_gibbs`` negatives) and Adam (the training is setup, not timed). The samplers all
see ``logdensity_fn = −F(v)``.

With 20 hidden units the exact log Z is enumerable (2^20 hidden states); the script also
reports AIS (:func:`jebm.partition.ais` with GWG transitions and a Bernoulli base at the
data means) against it.

Measured, per sampler, all in the same run:

* **per step**: ``run_chains(..., keep_trace=False)`` over ``num_steps`` steps, steady
  state (median over interleaved rounds, see ``_common.py``), divided by ``num_steps``;
* **ESS**: bulk ESS (:func:`jebm.diagnostics.effective_sample_size`) of the free energy
  ``F(v)`` and the median over pixels of the per-pixel bulk ESS, from a traced run of the
  same length after ``burn_in`` steps from Bernoulli(½) noise;
* **ESS/s**: ESS over the steady-state wall time of that traced run.

Run::

    python benchmarks/discrete.py            # --quick: 32 chains x 2000 steps
    python benchmarks/discrete.py --full     # 32 chains x 20000 steps, more rounds

Writes ``benchmarks/results/discrete-<backend>.json`` and prints a markdown table.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from jebm import densities  # noqa: E402
from jebm.datasets.digits import binarize, load_digits  # noqa: E402
from jebm.diagnostics import effective_sample_size  # noqa: E402
from jebm.energies.discrete import (  # noqa: E402
    rbm_free_energy,
    rbm_init,
    rbm_log_z,
)
from jebm.energy import logdensity_fn  # noqa: E402
from jebm.objectives import pcd  # noqa: E402
from jebm.partition.ais import ais  # noqa: E402
from jebm.samplers.discrete import block_gibbs, gibbs_with_gradients, metropolis_flip  # noqa: E402
from jebm.samplers.runner import run_chains  # noqa: E402


def train_rbm(key, data, num_hidden, num_steps, batch_size=100, learning_rate=1e-2):
    """PCD-1 (:func:`jebm.objectives.pcd`) with block Gibbs negatives and Adam; RBM params.

    ``batch_size`` persistent chains from Bernoulli(½), never restarted (Tieleman's PCD);
    ``block_gibbs`` reads the RBM's parameters from the log-density PCD hands it.
    """
    k_init, k_buffer, k_run = jax.random.split(key, 3)
    params = rbm_init(k_init, data.shape[1], num_hidden, scale=0.01)
    mean = jnp.clip(data.mean(0), 1e-3, 1 - 1e-3)
    params["visible_bias"] = jnp.log(mean) - jnp.log1p(-mean)  # Hinton's guide: log-odds
    objective = pcd(
        rbm_free_energy, block_gibbs, 1, buffer_size=batch_size, num_chains=batch_size,
        reinit_prob=0.0, init_density=densities.bernoulli(jnp.full(data.shape[1], 0.5)),
    )
    optimizer = optax.adam(learning_rate)

    def step(carry, key):
        params, opt_state, buffer = carry
        k_batch, k_loss = jax.random.split(key)
        batch = data[jax.random.randint(k_batch, (batch_size,), 0, data.shape[0])]
        grads, (_, buffer) = jax.grad(objective.loss, has_aux=True)(params, k_loss, batch, buffer)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, buffer), None

    carry = (params, optimizer.init(params), objective.init(k_buffer, data[:batch_size]))
    (params, _, _), _ = jax.jit(
        lambda c, ks: jax.lax.scan(step, c, ks)
    )(carry, jax.random.split(k_run, num_steps))
    return params


def make_cases(params, num_chains, num_steps, burn_in):
    logdensity = logdensity_fn(rbm_free_energy, params)
    algorithms = {
        "metropolis_flip": metropolis_flip(logdensity),
        "gwg": gibbs_with_gradients(logdensity),
        "block_gibbs": block_gibbs(params),
    }
    num_visible = params["weights"].shape[0]
    init = jax.random.bernoulli(jax.random.key(3), 0.5, (num_chains, num_visible)).astype(
        jnp.float32
    )
    step_cases, trace_cases = {}, {}
    for name, alg in algorithms.items():

        def steps(key, x, alg=alg):
            result = run_chains(
                key, alg, x, num_steps, keep_trace=False, transform=lambda s: s.logdensity
            )
            return result.state.position

        def traced(key, x, alg=alg):
            transform = lambda s: (s.logdensity, s.position)
            result = run_chains(key, alg, x, burn_in + num_steps, burn_in=burn_in,
                                transform=transform)
            return result.trace

        step_cases[name] = (steps, (jax.random.key(1), init))
        trace_cases[name] = (traced, (jax.random.key(2), init))
    return step_cases, trace_cases


def main(argv=None):
    args = _common.parse_args(__doc__.splitlines()[0], argv=argv)
    full = args.full
    settings = {
        "num_chains": 32,
        "num_steps": 20_000 if full else 2000,
        "burn_in": 2000 if full else 500,
        "num_hidden": 20,  # 2^20 hidden states: the exact log Z is enumerable
        "ais_chains": 256,
        "ais_bridges": 2000 if full else 500,
        "train_steps": 2000 if full else 300,
        "repeats": args.repeats or (10 if full else 3),
    }
    info = _common.device_info()
    _common.print_header("GWG vs single-site Metropolis on a binarised-digits RBM", info, settings)

    split = load_digits()
    data = binarize(split.train_counts).reshape(len(split.train_counts), -1)
    params = train_rbm(jax.random.key(0), data, settings["num_hidden"], settings["train_steps"])

    step_cases, trace_cases = make_cases(
        params, settings["num_chains"], settings["num_steps"], settings["burn_in"]
    )
    cases = {
        **{f"step/{k}": v for k, v in step_cases.items()},
        **{f"trace/{k}": v for k, v in trace_cases.items()},
    }
    compiled, _ = _common.compile_cases(cases)
    step_compiled = {k: v for k, v in compiled.items() if k.startswith("step/")}
    trace_compiled = {k: v for k, v in compiled.items() if k.startswith("trace/")}
    step_times = _common.time_interleaved(step_compiled, settings["repeats"])
    trace_times = _common.time_interleaved(trace_compiled, settings["repeats"])

    num_steps = settings["num_steps"]
    results, rows = {}, []
    for name in step_cases:
        c = trace_compiled[f"trace/{name}"]
        neg_free_energy, pixels = c.fn(*c.args)
        ess_f = float(effective_sample_size(neg_free_energy))
        ess_pixels = np.asarray(effective_sample_size(pixels))
        ess_pix = float(np.nanmedian(ess_pixels))
        per_step = _common.median(step_times[f"step/{name}"]) / num_steps
        trace_s = _common.median(trace_times[f"trace/{name}"])
        results[name] = {
            "per_step_s": per_step,
            "per_step_ratio_vs_metropolis": _common.round_ratio(
                step_times, f"step/{name}", "step/metropolis_flip"
            ),
            "ess_free_energy": ess_f,
            "ess_pixels_median": ess_pix,
            "ess_per_s_free_energy": ess_f / trace_s,
            "ess_per_s_pixels_median": ess_pix / trace_s,
            "traced_run_s": trace_s,
            "mean_free_energy": float(-jnp.mean(neg_free_energy)),
            "compile_s": compiled[f"step/{name}"].total_s,
            "step_times_s": step_times[f"step/{name}"],
            "trace_times_s": trace_times[f"trace/{name}"],
        }
    base = results["metropolis_flip"]
    for name, r in results.items():
        r["ess_per_s_ratio_vs_metropolis"] = (
            r["ess_per_s_free_energy"] / base["ess_per_s_free_energy"]
        )
        rows.append([
            name, 1e6 * r["per_step_s"], r["per_step_ratio_vs_metropolis"], r["ess_free_energy"],
            r["ess_per_s_free_energy"], r["ess_per_s_ratio_vs_metropolis"],
            r["ess_pixels_median"], r["ess_per_s_pixels_median"], r["mean_free_energy"],
        ])
    print()
    print(_common.markdown_table(
        ["sampler", "µs/step (all chains)", "× MH per step", "ESS F", "ESS F / s", "× MH ESS/s",
         "ESS pixel (median)", "ESS pixel / s", "mean F"],
        rows,
    ))

    # log Z: exact (enumerating the 2^20 hidden states) against AIS in visible space with
    # GWG transitions and a Bernoulli base at the data means (Salakhutdinov and Murray 2008).
    exact = float(jax.jit(rbm_log_z)(params))
    ais_base = densities.bernoulli(jnp.clip(data.mean(0), 0.02, 0.98))
    kernel = lambda logdensity, step_size: gibbs_with_gradients(logdensity)
    run_ais = jax.jit(lambda k: ais(k, rbm_free_energy, params, ais_base, settings["ais_chains"],
                                    num_bridges=settings["ais_bridges"], kernel=kernel))
    estimate = run_ais(jax.random.key(4))
    results["log_z"] = {
        "exact": exact,
        "ais_gwg": float(estimate.log_z),
        "ais_gwg_stderr": float(estimate.log_z_stderr),
        "ais_gwg_ess": float(estimate.ess),
        "ais_error": float(estimate.log_z) - exact,
    }
    print(f"\nlog Z: exact {exact:.3f}; AIS (GWG, {settings['ais_bridges']} bridges, "
          f"{settings['ais_chains']} chains) {float(estimate.log_z):.3f} ± "
          f"{float(estimate.log_z_stderr):.3f} (ESS {float(estimate.ess):.0f})")
    path = _common.write_json("discrete", info, settings, results, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
