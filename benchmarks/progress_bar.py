"""What does a progress bar that moves at every log window cost the training loop?

Question: ``train_loop`` runs ``chunk_size`` updates per jitted ``lax.scan`` call, so a
bar updated only between chunks moves once per 250 steps on the default job. Two ways to
move it every ``log_every`` (50) steps: a host callback from inside the scan (what
``train_loop(progress=True)`` does: running sums of the shown metrics in the scan carry,
and a ``jax.debug.callback`` under ``lax.cond`` at each window end), or chunks of
``log_every`` steps with a host round trip (``device_get`` of the metrics) after each.
Each is timed against the plain 250-step chunk on the default job's train step (PCD on
2-D data, a 2 → 128 → 128 → 1 SiLU MLP, 256 chains × 10 ULA steps, batch 256, Adam).

Cases, each one call covering 250 updates, timed interleaved (``_common``):

* ``chunk250``: one 250-step scan, no callback (``progress=False``);
* ``chunk250_callback``: the same scan with the bar's callback every 50 steps (the
  callback's host work: one ``set_postfix`` on a disabled bar);
* ``chunk50x5``: five 50-step scans, each followed by ``jax.device_get`` of its metrics.

Run::

    python benchmarks/progress_bar.py            # --quick: 5 rounds
    python benchmarks/progress_bar.py --repeats 15

Writes ``benchmarks/results/progress_bar-<backend>.json`` and prints a markdown table of
time per update and the ratios to ``chunk250`` (median per-round ratio and min ratio).
"""

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import optax  # noqa: E402

import _common  # noqa: E402
from jebm.objectives.contrastive import pcd  # noqa: E402
from jebm.samplers.ula import ula  # noqa: E402
from jebm.train import init_train_state, make_train_step  # noqa: E402
from jebm.train.loop import _Bar  # noqa: E402  (the loop's own callback mechanism)

CHUNK, WINDOW, BATCH = 250, 50, 256


def _setup():
    energy_fn, params = _common.mlp_energy(jax.random.key(0), 2, (128, 128))
    objective = pcd(energy_fn, functools.partial(ula, step_size=0.02), 10, buffer_size=10_000,
                    num_chains=BATCH,
                    base_sampler=lambda k, n: jax.random.uniform(k, (n, 2), minval=-4.5,
                                                                 maxval=4.5))
    optimizer = optax.adam(2e-3)
    draw = lambda key: 2.0 * jax.random.normal(key, (BATCH, 2))
    state = init_train_state(jax.random.key(1), params, optimizer, objective,
                             draw(jax.random.key(2)))
    return state, make_train_step(objective, optimizer), draw


def _chunk(train_step, draw, bar, length):
    def run(state):
        def body(carry, _):
            state, shown = carry
            batch = draw(jax.random.fold_in(jax.random.key(3), state.step))
            state, metrics = train_step(state, batch, jax.random.key(4))
            if bar.enabled:
                shown = bar.accumulate(shown, state.step, metrics)
            return (state, shown), metrics

        (state, _), metrics = jax.lax.scan(body, (state, bar.zeros()), None, length=length)
        return state, metrics

    return run


def main(argv=None):
    args = _common.parse_args(__doc__.splitlines()[0], argv=argv)
    repeats = args.repeats or 5
    info = _common.device_info()
    settings = {"chunk": CHUNK, "log_every": WINDOW, "batch": BATCH, "repeats": repeats}
    _common.print_header("progress bar cost", info, settings)
    state, train_step, draw = _setup()
    plain = _Bar(CHUNK, WINDOW, enabled=False)
    shown = _Bar(CHUNK, WINDOW, enabled=True)  # never opened: the callback's tqdm is a no-op
    cases = {
        "chunk250": (_chunk(train_step, draw, plain, CHUNK), (state,)),
        "chunk250_callback": (_chunk(train_step, draw, shown, CHUNK), (state,)),
        "chunk50": (_chunk(train_step, draw, plain, WINDOW), (state,)),
    }
    compiled, _ = _common.compile_cases(cases)
    small = compiled.pop("chunk50")

    def five_small(state):
        for _ in range(CHUNK // WINDOW):
            state, metrics = small.fn(state)
            jax.device_get(metrics)
        return state

    compiled["chunk50x5"] = small._replace(fn=five_small)
    times = _common.time_interleaved(compiled, repeats)
    rows, results = [], {}
    for name in compiled:
        per_step_ms = 1e3 * _common.median(times[name]) / CHUNK
        ratio = _common.round_ratio(times, name, "chunk250")
        low = _common.min_ratio(times, name, "chunk250")
        results[name] = {"ms_per_update": per_step_ms, "round_ratio": ratio, "min_ratio": low,
                         "times_s": times[name]}
        rows.append([name, per_step_ms, ratio, low])
    print(_common.markdown_table(["case", "ms/update", "ratio (median)", "ratio (min)"], rows))
    path = _common.write_json("progress_bar", info, settings, results, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
