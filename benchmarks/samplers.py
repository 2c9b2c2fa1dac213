"""How close are jebm's samplers to the cost of the gradients they need, and to BlackJAX?

Question: per step of ``num_chains`` chains (float32), what do jebm's ULA, MALA, RWMH and
HMC cost through ``jebm.run_chains(..., keep_trace=False)``, relative to the *floor* -- a
``lax.scan`` of batched ``value_and_grad`` evaluations of the same target with the same
shapes and no randomness -- and relative to BlackJAX's MALA and random-walk MH run in
BlackJAX's usual multi-chain loop (one key per step, ``split`` into one key per chain)?
And where does the rest of the time go: how much does random number generation cost,
under which key scheme and PRNG implementation? The randomness table keeps the draw jebm
used before (``jax.random.uniform`` of ``d + 1`` numbers, then ``erf_inv``) as the
baseline of the library's ``normal_and_uniform``, which keeps both output words of each
Threefry-2x32 block.

Targets: (a) ``8gaussians``, the 2-d mixture of 8 Gaussians at radius 2√2 with standard
deviation 0.5/√2 (``jebm.energies.gaussian_mixture``); (b) ``mlp``, a 2 -> 128 -> 128 -> 1
SiLU MLP energy (plus a confining ``0.5|x|^2``).

Run::

    python benchmarks/samplers.py            # --quick: 1024 chains x 100 steps
    python benchmarks/samplers.py --full     # 1024 chains x 1000 steps, more rounds

Writes ``benchmarks/results/samplers-<backend>.json`` and prints markdown tables.
"""

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import jebm  # noqa: E402
from jebm.energies import gaussian_mixture  # noqa: E402
from jebm.samplers.base import normal_and_uniform  # noqa: E402

HMC_INTEGRATION_STEPS = 5
PT_REPLICAS = 4  # PT runs num_chains // PT_REPLICAS chains of this many replicas


# --------------------------------------------------------------------------- targets


def eight_gaussians():
    angles = np.arange(8) * np.pi / 4
    means = 2.0 * np.sqrt(2.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    target = gaussian_mixture(means, 0.5 / np.sqrt(2.0))
    logdensity = lambda x: -target.energy_fn(target.params, x)
    # component sd 0.354: proposal sds of ~0.2-0.3 give MH acceptance in the usual ranges.
    steps = {"ula": 0.005, "mala": 0.02, "rwmh": 0.3, "hmc": 0.1, "underdamped": 0.1}
    return logdensity, 2, steps


def mlp_target():
    energy_fn, params = _make_mlp()
    logdensity = lambda x: -energy_fn(params, x)
    steps = {"ula": 0.01, "mala": 0.05, "rwmh": 0.5, "hmc": 0.15, "underdamped": 0.15}
    return logdensity, 2, steps


def _make_mlp():
    # Plain jax with a confining term (benchmarks/_common.py), kept so that numbers stay
    # comparable across runs; the same network as ``jebm.energies.mlp.mlp_energy``.
    return _common.mlp_energy(jax.random.key(42), 2, (128, 128))


TARGETS = {"8gaussians": eight_gaussians, "mlp": mlp_target}


# --------------------------------------------------------------------------- harnesses


def _acceptance(info) -> jax.Array:
    rate = getattr(info, "acceptance_rate", None)
    return jnp.float32(jnp.nan) if rate is None else jnp.mean(rate)


def floor_case(logdensity: Callable, num_steps: int, value_only: bool = False) -> Callable:
    """``lax.scan`` of batched ``value_and_grad`` (or value) calls; no randomness, no MH."""
    if value_only:
        evaluate = jax.vmap(lambda x: (logdensity(x), x))
    else:
        evaluate = jax.vmap(jax.value_and_grad(logdensity))

    def run(key, x0):
        del key

        def body(carry, _):
            x, total = carry
            value, direction = evaluate(x)
            # A data dependence from one step to the next, as in a chain.
            return (x + 1e-3 * direction, total + jnp.sum(value)), None

        (x, total), _ = jax.lax.scan(body, (x0, jnp.float32(0.0)), None, length=num_steps)
        return x, total

    return run


def runner_case(algorithm, num_steps: int) -> Callable:
    """``jebm.run_chains(key, algorithm, x0, num_steps, keep_trace=False)``."""

    def run(key, x0):
        result = jebm.run_chains(key, algorithm, x0, num_steps, keep_trace=False)
        return result.state.position, result.moments.mean, _acceptance(result.info)

    return run


def blackjax_loop_case(algorithm, num_steps: int, num_chains: int) -> Callable:
    """BlackJAX's usual multi-chain loop: split per step, then split per chain."""

    def run(key, x0):
        states = jax.vmap(algorithm.init)(x0)

        def one_step(states, step_key):
            keys = jax.random.split(step_key, num_chains)
            states, info = jax.vmap(algorithm.step)(keys, states)
            return states, _acceptance(info)

        states, acc = jax.lax.scan(one_step, states, jax.random.split(key, num_steps))
        return states.position, jnp.mean(acc)

    return run


# --------------------------------------------------------------------------- samplers


def _jebm_factory(name: str):
    try:
        module = importlib.import_module(f"jebm.samplers.{name}")
    except ImportError:
        return None
    return getattr(module, name, None)


def jebm_algorithms(logdensity, dim, steps) -> dict[str, tuple[object, int]]:
    """``name -> (SamplingAlgorithm, log-density evaluations per step)``, those present."""
    algs = {}
    if (ula := _jebm_factory("ula")) is not None:
        algs["jebm ULA"] = (ula(logdensity, steps["ula"]), 1)
    if (mala := _jebm_factory("mala")) is not None:
        algs["jebm MALA"] = (mala(logdensity, steps["mala"]), 1)
    if (rwmh := _jebm_factory("rwmh")) is not None:
        algs["jebm RWMH"] = (rwmh(logdensity, steps["rwmh"]), 1)
    if (hmc := _jebm_factory("hmc")) is not None:
        alg = hmc(logdensity, steps["hmc"], jnp.ones(dim), HMC_INTEGRATION_STEPS)
        algs["jebm HMC"] = (alg, HMC_INTEGRATION_STEPS)
    if (underdamped := _jebm_module("underdamped")) is not None:
        alg = underdamped.underdamped_langevin(logdensity, steps["underdamped"], 1.0)
        algs["jebm underdamped (BAOAB)"] = (alg, 1)
    return algs


def _jebm_module(name: str):
    try:
        return importlib.import_module(f"jebm.samplers.{name}")
    except ImportError:
        return None


def pt_case(logdensity, steps, num_chains: int, num_steps: int) -> Callable | None:
    """PT with PT_REPLICAS MALA replicas on num_chains // PT_REPLICAS chains.

    Same number of replica-steps as ``num_chains`` MALA chains, so the ratio to
    "jebm MALA" is the overhead of the ladder and the swaps.
    """
    tempering, mala_module = _jebm_module("tempering"), _jebm_module("mala")
    if tempering is None or mala_module is None:
        return None
    betas = jnp.geomspace(1.0, 0.1, PT_REPLICAS)
    alg = tempering.parallel_tempering(
        logdensity, betas, mala_module.init, mala_module.build_kernel(), steps["mala"] / betas
    )

    def run(key, x0):
        x = x0[: num_chains // PT_REPLICAS]
        result = jebm.run_chains(
            key, alg, x, num_steps, keep_trace=False, transform=tempering.cold_position
        )
        rate = jnp.mean(result.info.replica_info.acceptance_rate)
        return result.state.replicas.position, result.moments.mean, rate

    return run


def blackjax_algorithms(logdensity, dim, steps) -> dict[str, tuple[object, int]]:
    import blackjax

    rw = blackjax.additive_step_random_walk.normal_random_walk
    return {
        "BlackJAX MALA": (blackjax.mala(logdensity, steps["mala"]), 1),
        "BlackJAX RMH": (rw(logdensity, steps["rwmh"] * jnp.ones(dim)), 1),
        "BlackJAX HMC": (
            blackjax.hmc(logdensity, steps["hmc"], jnp.ones(dim), HMC_INTEGRATION_STEPS),
            HMC_INTEGRATION_STEPS,
        ),
    }


def sampler_cases(target: str, num_chains: int, num_steps: int):
    logdensity, dim, steps = TARGETS[target]()
    cases: dict[str, Callable] = {
        "floor": floor_case(logdensity, num_steps),
        "floor (value only)": floor_case(logdensity, num_steps, value_only=True),
    }
    evals = {"floor": 1, "floor (value only)": 1}
    for name, (alg, n) in jebm_algorithms(logdensity, dim, steps).items():
        cases[name] = runner_case(alg, num_steps)
        evals[name] = n
    jebm_mala = jebm_algorithms(logdensity, dim, steps).get("jebm MALA")
    if jebm_mala is not None:
        # Same kernel in BlackJAX's loop: separates kernel cost from runner cost.
        cases["jebm MALA (BlackJAX loop)"] = blackjax_loop_case(jebm_mala[0], num_steps, num_chains)
        evals["jebm MALA (BlackJAX loop)"] = 1
    if (pt := pt_case(logdensity, steps, num_chains, num_steps)) is not None:
        name = f"jebm PT ({PT_REPLICAS} MALA replicas x {num_chains // PT_REPLICAS} chains)"
        cases[name], evals[name] = pt, 1
    for name, (alg, n) in blackjax_algorithms(logdensity, dim, steps).items():
        cases[name] = blackjax_loop_case(alg, num_steps, num_chains)
        evals[name] = n
    # The draws alone, in the same rounds as the floor: their share of a step.
    for label, scheme in (
        ("jebm draws", "split per step + normal_and_uniform (jebm)"),
        ("previous draw", "split per step + uniform + erf_inv (previous jebm draw)"),
    ):
        cases[f"randomness only ({label})"] = rng_case(scheme, num_chains, num_steps)
        evals[f"randomness only ({label})"] = 0
    x0 = 0.5 * jax.random.normal(jax.random.key(1), (num_chains, dim), jnp.float32)
    key = jax.random.key(0)
    return {name: (fn, (key, x0)) for name, fn in cases.items()}, evals


# --------------------------------------------------------------------------- randomness


def _uniform_to_normal(u):
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)


def _block_normal_and_uniform(key, shape, dtype=jnp.float32):
    """One ``(num_chains, d + 1)`` draw from one key: row c is chain c's noise and uniform."""
    tiny = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = jax.random.uniform(key, (shape[0], shape[1] + 1), dtype, minval=tiny, maxval=1.0)
    return _uniform_to_normal(u[:, :-1]), jnp.log1p(u[:, -1]) - np.float32(np.log(2.0))


def _previous_draw(key, x):
    """The baseline: jebm's draw before the 2x32 change (one ``uniform`` word per block)."""
    tiny = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = jax.random.uniform(key, (x.size + 1,), jnp.float32, minval=tiny, maxval=1.0)
    return _uniform_to_normal(u[:-1]).reshape(x.shape), jnp.log1p(u[-1]) - np.float32(np.log(2.0))


def _blackjax_style_draw(key, x):
    """What BlackJAX's MALA draws per chain: split in two, one normal, one uniform."""
    k_noise, k_accept = jax.random.split(key)
    return jax.random.normal(k_noise, x.shape, x.dtype), jnp.log(jax.random.uniform(k_accept))


def rng_scheme(name: str, num_chains: int) -> Callable:
    """``draw(key, chain_keys, t, x) -> (noise (C, d), log_u (C,))`` for one scheme."""
    per_chain = jax.vmap(normal_and_uniform)
    if name == "split per step + normal_and_uniform (jebm)":
        return lambda key, ck, t, x: per_chain(
            jax.random.split(jax.random.fold_in(key, t), num_chains), x
        )
    if name == "split per step + split/normal/uniform (BlackJAX)":
        return lambda key, ck, t, x: jax.vmap(_blackjax_style_draw)(
            jax.random.split(jax.random.fold_in(key, t), num_chains), x
        )
    if name == "split per step + uniform + erf_inv (previous jebm draw)":
        return lambda key, ck, t, x: jax.vmap(_previous_draw)(
            jax.random.split(jax.random.fold_in(key, t), num_chains), x
        )
    if name == "chain keys once + fold_in(t) + normal_and_uniform":
        return lambda key, ck, t, x: per_chain(
            jax.vmap(jax.random.fold_in, in_axes=(0, None))(ck, t), x
        )
    if name == "one (C, d+1) block per step":
        return lambda key, ck, t, x: _block_normal_and_uniform(
            jax.random.fold_in(key, t), x.shape
        )
    if name == "no randomness (loop only)":
        return lambda key, ck, t, x: (x, jnp.zeros(x.shape[:1], x.dtype))
    raise ValueError(name)


PREVIOUS_SCHEME = "split per step + uniform + erf_inv (previous jebm draw)"
RNG_SCHEMES = [
    "no randomness (loop only)",
    "split per step + normal_and_uniform (jebm)",
    "split per step + uniform + erf_inv (previous jebm draw)",
    "split per step + split/normal/uniform (BlackJAX)",
    "chain keys once + fold_in(t) + normal_and_uniform",
    "one (C, d+1) block per step",
]
RNG_IMPLS = ["threefry2x32", "rbg", "unsafe_rbg"]


def rng_case(scheme: str, num_chains: int, num_steps: int) -> Callable:
    draw = rng_scheme(scheme, num_chains)

    def run(key, x0):
        chain_keys = jax.random.split(key, num_chains)

        def body(x, t):
            noise, log_u = draw(key, chain_keys, t, x)
            return x + 1e-3 * noise + 1e-6 * log_u[:, None], None

        x, _ = jax.lax.scan(body, x0, jnp.arange(num_steps))
        return x

    return run


def rng_cases(num_chains: int, num_steps: int, dim: int = 2):
    x0 = jnp.zeros((num_chains, dim), jnp.float32)
    cases = {}
    for impl in RNG_IMPLS:
        key = jax.random.key(0, impl=impl)
        for scheme in RNG_SCHEMES:
            if impl != "threefry2x32" and ("no randomness" in scheme or "previous" in scheme):
                # The loop is impl-free; for non-threefry keys the library draw *is* the
                # previous one (``jax.random.uniform``), so the row would repeat.
                continue
            cases[f"{impl}: {scheme}"] = (rng_case(scheme, num_chains, num_steps), (key, x0))
    return cases


# --------------------------------------------------------------------------- NUTS vs HMC


def correlated_gaussian_20d():
    """A 20-D Gaussian with a random rotation and variances 0.01 … 1 (condition 100)."""
    rng = np.random.default_rng(20)
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    cov = (q * np.geomspace(0.01, 1.0, 20)) @ q.T
    precision = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    chol = np.linalg.cholesky(cov).astype(np.float32)
    return (lambda x: -0.5 * x @ precision @ x), cov, chol


def nuts_section(num_chains: int, num_warmup: int, num_steps: int, hmc_lengths, repeats: int):
    """ESS per gradient (and per second) of NUTS and HMC after the same warm-up.

    Both tuned by ``dual_averaging_warmup`` (shared step size, target 0.8, identity
    metric: the rotation defeats a diagonal one) from exact draws. ESS is the bulk ESS
    of every coordinate (``jebm.diagnostics``), its minimum over coordinates reported.
    Gradients: HMC pays L per chain-step; NUTS's *work* is its ``num_integration_steps``
    summed over chains, but under ``vmap`` every chain waits for the longest trajectory,
    so the *paid* count is the per-step maximum times the number of chains.
    """
    from jebm.diagnostics import effective_sample_size
    from jebm.samplers.adaptation import dual_averaging_warmup

    hmc_module, nuts_module = _jebm_module("hmc"), _jebm_module("nuts")
    logdensity, cov, chol = correlated_gaussian_20d()
    x0 = jax.random.normal(jax.random.key(3), (num_chains, 20)) @ jnp.asarray(chol).T
    ones = jnp.ones(20)
    variants = {f"HMC L={n}": (hmc_module, hmc_module.build_kernel(n), n) for n in hmc_lengths}
    variants["NUTS"] = (nuts_module, nuts_module.build_kernel(), None)
    out = {}
    for name, (module, kernel, length) in variants.items():
        warm = jax.jit(
            lambda key, kernel=kernel, module=module: dual_averaging_warmup(
                key, kernel, module.init, logdensity, x0, num_warmup,
                target_acceptance=0.8, inverse_mass_matrix=ones,
            )
        )(jax.random.key(0))
        step = jax.vmap(kernel, (0, 0, None, None, None))

        def sample(key, states, step=step, step_size=warm.step_size, length=length):
            def body(s, k):
                s, info = step(jax.random.split(k, num_chains), s, logdensity, step_size, ones)
                grads = getattr(info, "num_integration_steps", None)
                grads = jnp.full((num_chains,), length) if grads is None else grads
                return s, (s.position, grads, info.acceptance_rate)

            return jax.lax.scan(body, states, jax.random.split(key, num_steps))[1]

        compiled = jax.jit(sample).lower(jax.random.key(1), warm.state).compile()
        jax.block_until_ready(compiled(jax.random.key(1), warm.state))
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            trace, grads, rate = jax.block_until_ready(compiled(jax.random.key(1 + r), warm.state))
            times.append(time.perf_counter() - t0)
        ess = np.asarray(effective_sample_size(trace))  # (20,) over chains and draws
        grads = np.asarray(grads)  # (num_steps, num_chains)
        work = float(grads.sum())
        paid = float(grads.max(axis=1).sum() * num_chains)
        seconds = _common.median(times)
        out[name] = {
            "step_size": float(warm.step_size),
            "mean_acceptance": float(np.mean(rate)),
            "mean_grads_per_step": work / grads.size,
            "min_ess": float(ess.min()),
            "ess_per_1k_grads_work": 1e3 * float(ess.min()) / work,
            "ess_per_1k_grads_paid": 1e3 * float(ess.min()) / paid,
            "ess_per_s": float(ess.min()) / seconds,
            "run_s": seconds,
            "run_times_s": times,
        }
    return out


def nuts_table(record: dict):
    headers = ["sampler", "step size", "acceptance", "grads/step", "min ESS",
               "ESS/1k grads (work)", "ESS/1k grads (paid under vmap)", "ESS/s"]  # fmt: skip
    rows = [
        [name, r["step_size"], r["mean_acceptance"], r["mean_grads_per_step"], r["min_ess"],
         r["ess_per_1k_grads_work"], r["ess_per_1k_grads_paid"], r["ess_per_s"]]
        for name, r in record.items()
    ]  # fmt: skip
    return headers, rows


# --------------------------------------------------------------------------- main


def main(argv=None):
    args = _common.parse_args(__doc__.split("\n\n")[0], _add_arguments, argv)
    num_chains = args.num_chains
    num_steps = args.num_steps or (1000 if args.full else 100)
    repeats = args.repeats or (7 if args.full else 5)
    compile_repeats = args.compile_repeats or (3 if args.full else 1)
    settings = {
        "mode": "full" if args.full else "quick",
        "num_chains": num_chains,
        "num_steps": num_steps,
        "repeats": repeats,
        "compile_repeats": compile_repeats,
        "dtype": "float32",
        "hmc_integration_steps": HMC_INTEGRATION_STEPS,
    }
    info = _common.device_info()
    _common.print_header("jebm samplers vs the value_and_grad floor and BlackJAX", info, settings)
    results = {"samplers": {}, "rng": {}}
    floor_us = {}

    for target in args.targets:
        cases, evals = sampler_cases(target, num_chains, num_steps)
        compiled, compile_times = _common.compile_cases(cases, compile_repeats)
        outputs = {name: c.fn(*c.args) for name, c in compiled.items()}
        times = _common.time_interleaved(compiled, repeats)
        run_med = {name: _common.median(t) for name, t in times.items()}
        comp_med = {name: _common.median(t) for name, t in compile_times.items()}
        base_run, base_comp = run_med["floor"], comp_med["floor"]
        bj_comp = comp_med.get("BlackJAX MALA", float("nan"))
        floor_us[target] = 1e6 * base_run / num_steps
        record = {}
        for name in cases:
            us = 1e6 * run_med[name] / num_steps
            has_acc = not name.startswith(("floor", "randomness"))
            acc = float(outputs[name][-1]) if has_acc else None
            record[name] = {
                "us_per_step": us,
                "ns_per_chain_step": 1e3 * us / num_chains,
                "ratio_to_floor": _common.round_ratio(times, name, "floor"),
                "ratio_to_jebm_mala": (
                    _common.round_ratio(times, name, "jebm MALA") if "jebm MALA" in times else None
                ),
                "ratio_of_medians_to_floor": run_med[name] / base_run,
                "ratio_of_minima_to_floor": _common.min_ratio(times, name, "floor"),
                "min_us_per_step": 1e6 * min(times[name]) / num_steps,
                "compile_s": comp_med[name],
                "lower_s": compiled[name].lower_s,
                "xla_compile_s": compiled[name].compile_s,
                "compile_ratio_to_floor": comp_med[name] / base_comp,
                "compile_ratio_to_blackjax_mala": comp_med[name] / bj_comp,
                "evals_per_step": evals[name],
                "mean_acceptance": acc,
                "run_times_s": times[name],
                "compile_times_s": compile_times[name],
            }
        results["samplers"][target] = record
        print(f"\n## {target}: {num_chains} chains x {num_steps} steps\n")
        print(_common.markdown_table(*sampler_table(record)))

    if not args.skip_nuts and _jebm_module("nuts") is not None:
        nuts_chains, nuts_steps = (64, 1000) if args.full else (32, 300)
        results["nuts"] = nuts_section(nuts_chains, nuts_steps, nuts_steps, (5, 20), repeats)
        print(f"\n## NUTS vs HMC: correlated 20-D Gaussian, {nuts_chains} chains x "
              f"{nuts_steps} steps after {nuts_steps} warm-up steps\n")  # fmt: skip
        print(_common.markdown_table(*nuts_table(results["nuts"])))

    if not args.skip_rng:
        cases = rng_cases(num_chains, num_steps)
        compiled, compile_times = _common.compile_cases(cases, compile_repeats)
        times = _common.time_interleaved(compiled, repeats)
        run_med = {name: _common.median(t) for name, t in times.items()}
        loop = run_med["threefry2x32: no randomness (loop only)"]
        loop_min = min(times["threefry2x32: no randomness (loop only)"])
        previous = run_med[f"threefry2x32: {PREVIOUS_SCHEME}"] - loop
        for name in cases:
            us = 1e6 * run_med[name] / num_steps
            net = 1e6 * (run_med[name] - loop) / num_steps
            net_min = 1e6 * (min(times[name]) - loop_min) / num_steps
            frac = {t: net / f for t, f in floor_us.items()}
            results["rng"][name] = {
                "us_per_step": us,
                "us_per_step_net_of_loop": net,
                "min_us_per_step_net_of_loop": net_min,
                "net_over_floor": frac,
                "net_over_previous_draw": (run_med[name] - loop) / previous,
                "compile_s": _common.median(compile_times[name]),
                "run_times_s": times[name],
            }
        print(f"\n## randomness: {num_chains} chains x {num_steps} steps, d=2, alone\n")
        print(_common.markdown_table(*rng_table(results["rng"])))

    path = _common.write_json("samplers", info, settings, results, args.out)
    print(f"\nwrote {path}")


def sampler_table(record: dict):
    """(headers, rows) of one target's sampler table, from its JSON record."""
    nan = float("nan")
    rows = [
        [name, r["evals_per_step"], r["us_per_step"], r["ratio_to_floor"],
         r["ratio_of_minima_to_floor"], nan if r.get("ratio_to_jebm_mala") is None
         else r["ratio_to_jebm_mala"], r["compile_s"], r["compile_ratio_to_floor"],
         nan if r["mean_acceptance"] is None else r["mean_acceptance"]]
        for name, r in record.items()
    ]  # fmt: skip
    headers = ["case", "evals/step", "µs/step", "× floor", "× floor (min)", "× jebm MALA",
               "compile s", "compile × floor", "acceptance"]  # fmt: skip
    return headers, rows


def rng_table(rng: dict):
    """(headers, rows) of the randomness table, from its JSON record."""
    targets = list(next(iter(rng.values()))["net_over_floor"]) if rng else []
    nan = float("nan")
    rows = [
        [name, r["us_per_step"], r["us_per_step_net_of_loop"], r["min_us_per_step_net_of_loop"],
         r.get("net_over_previous_draw", nan), *(r["net_over_floor"][t] for t in targets)]
        for name, r in rng.items()
    ]  # fmt: skip
    headers = ["PRNG: scheme", "µs/step", "µs/step − loop", "(min) − loop",
               "net ÷ previous draw", *(f"÷ floor {t}" for t in targets)]  # fmt: skip
    return headers, rows


def render_markdown(payload: dict) -> str:
    """The tables of a ``samplers`` JSON payload, for ``run_all.py``'s RESULTS.md."""
    s, res = payload["settings"], payload["results"]
    parts = []
    for target, record in res["samplers"].items():
        parts.append(f"#### {target}: {s['num_chains']} chains x {s['num_steps']} steps")
        parts.append(_common.markdown_table(*sampler_table(record)))
    if res.get("nuts"):
        parts.append("#### NUTS vs HMC: correlated 20-D Gaussian")
        parts.append(_common.markdown_table(*nuts_table(res["nuts"])))
    if res.get("rng"):
        parts.append(f"#### randomness alone: {s['num_chains']} chains x {s['num_steps']} "
                     "steps, d=2")  # fmt: skip
        parts.append(_common.markdown_table(*rng_table(res["rng"])))
    return "\n\n".join(parts)


def _add_arguments(parser):
    parser.add_argument("--num-chains", type=int, default=1024)
    parser.add_argument("--num-steps", type=int, default=None, help="100 quick, 1000 full")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--compile-repeats", type=int, default=None, help="1 quick, 3 full")
    parser.add_argument("--skip-rng", action="store_true", help="skip the randomness section")
    parser.add_argument("--skip-nuts", action="store_true", help="skip NUTS vs HMC")


if __name__ == "__main__":
    main()
