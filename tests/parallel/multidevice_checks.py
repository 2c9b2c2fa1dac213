"""Sharding checks run in a subprocess with fake CPU devices (see test_parallel.py).

Usage: ``python multidevice_checks.py MODE NUM_DEVICES WORKDIR [PROCESS_ID PORT]``.
``MODE`` is ``main`` (most checks on one process, saves checkpoints), ``loop``
(data-parallel ``train_loop``), ``restore`` (restores the checkpoints on another device
count), ``multihost`` (one of two processes joined with ``jax.distributed``) or
``restore-multihost``. The device count is set before any jax computation, so the
parent test process is unaffected. Results go to ``WORKDIR/<MODE>-<id>.json`` as
``{check name: {"ok": bool, "detail": str}}``; a check that raises is recorded as failed.
"""

import functools
import json
import os
import re
import sys
import time
import traceback

import jax

MODE, NUM_DEVICES, WORKDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jax.config.update("jax_num_cpu_devices", NUM_DEVICES)
jax.config.update("jax_numpy_rank_promotion", "raise")

from jebm import parallel as par  # noqa: E402

if MODE == "multihost":  # before any computation initialises the backend
    PROCESS_ID, PORT = int(sys.argv[4]), int(sys.argv[5])
    par.initialize(
        True, coordinator_address=f"localhost:{PORT}", num_processes=2, process_id=PROCESS_ID
    )

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jebm.energies import mlp_energy  # noqa: E402
from jebm.energies.analytic import gaussian_mixture  # noqa: E402
from jebm.objectives import cd, pcd  # noqa: E402
from jebm.samplers import hmc, mala, run_chains, ula  # noqa: E402
from jebm.train import (  # noqa: E402
    checkpoint_manager,
    init_train_state,
    make_train_step,
    restore_checkpoint,
    save_checkpoint,
    train_loop,
)

COLLECTIVE = re.compile(r"\b(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)")
RESULTS: dict[str, dict] = {}

# float32 tolerance for "equal up to reduction order": a sum of n terms in another order
# differs by a few ulp times n; the gradients here sum <= 64 terms, so 1e-5 relative
# (~100 ulp) bounds it with room, and an absolute 1e-6 covers entries near zero.
RTOL, ATOL = 1e-5, 1e-6
# Chains of an MLP energy, sharded against one device: each evaluation may round
# differently (XLA picks its matmul kernel by the per-device batch), by ~1e-7 relative,
# and HMC compounds it over its steps; 1e-4 bounds 40 HMC steps here with room
# (docs/distributed.md).
MLP_ATOL = 1e-4


def check(name):
    def wrap(fn):
        tic = time.perf_counter()
        try:
            detail = fn()
            RESULTS[name] = {"ok": True, "detail": str(detail or "")}
        except Exception as err:  # recorded, reported by the parent test
            RESULTS[name] = {"ok": False, "detail": f"{err!r}\n{traceback.format_exc()}"}
        RESULTS[name]["seconds"] = round(time.perf_counter() - tic, 2)
        return fn

    return wrap


def require(condition, message):
    if not condition:
        raise AssertionError(message)


def _is_key(x):
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def tree_close(a, b, rtol=RTOL, atol=ATOL):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    require(len(la) == len(lb), "tree structures differ")
    worst = 0.0
    for x, y in zip(la, lb, strict=True):
        if _is_key(x):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        require(x.shape == y.shape, f"shapes {x.shape} vs {y.shape}")
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        if x.size and np.issubdtype(x.dtype, np.floating):
            worst = max(worst, float(np.max(np.abs(x - y))))
    return worst


def tree_equal(a, b):
    a, b = (jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, t) for t in (a, b))
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# ----- the shared problem --------------------------------------------------------------

TARGET = gaussian_mixture(jnp.array([[-2.0, 0.0], [2.0, 0.0]]), 0.7)
LOGDENSITY = lambda x: -TARGET.energy_fn(TARGET.params, x)
ALGORITHMS = {"mala": mala(LOGDENSITY, 0.3), "ula": ula(LOGDENSITY, 0.05)}
NUM_CHAINS = 64


def energy_fn(params, x):
    return 0.5 * jnp.sum(jnp.exp(params["log_prec"]) * (x - params["mu"]) ** 2)


def make_problem(kind):
    objective = {
        "pcd": pcd(
            energy_fn, functools.partial(mala, step_size=0.1), num_steps=3, buffer_size=128
        ),
        "cd": cd(energy_fn, functools.partial(mala, step_size=0.1), num_steps=3),
    }[kind]
    optimizer = optax.adam(0.05)
    batch = 1.5 + jax.random.normal(jax.random.key(3), (64, 2))
    params = {"mu": jnp.zeros(2), "log_prec": jnp.zeros(2)}
    state = init_train_state(jax.random.key(4), params, optimizer, objective, batch)
    return state, make_train_step(objective, optimizer), batch


def run_steps(step, state, batch, n=3):
    metrics = []
    for _ in range(n):
        state, m = step(state, batch, jax.random.key(5))
        metrics.append(m)
    return state, metrics


# ----- checks on one process with NUM_DEVICES devices -----------------------------------


def main_checks():
    @check("make_mesh")
    def _():
        require(dict(par.make_mesh().shape) == {"chains": 8, "data": 1}, "default mesh")
        require(dict(par.make_mesh(num_data_devices=8).shape) == {"chains": 1, "data": 8}, "")
        require(dict(par.make_mesh(2, 4).shape) == {"chains": 2, "data": 4}, "2 x 4")
        require(par.make_mesh(2, 2).devices.size == 4, "2 x 2 uses a subset")
        for bad in ({"num_chain_devices": 3}, {"num_data_devices": 16}, {"num_chain_devices": 4,
                    "num_data_devices": 4}, {"num_chain_devices": 0}):
            try:
                par.make_mesh(**bad)
            except ValueError:
                continue
            raise AssertionError(f"no ValueError for {bad}")

    @check("shard_errors")
    def _():
        mesh = par.make_mesh()
        try:
            par.shard_chains(jnp.zeros((12, 2)), mesh)
        except ValueError as err:
            require("divisible" in str(err), str(err))
        else:
            raise AssertionError("12 chains on 8 devices did not raise")

    mesh = par.make_mesh()
    x0 = jax.random.normal(jax.random.key(1), (NUM_CHAINS, 2))
    for name, options in (("mala", {"thin": 2, "burn_in": 4}), ("ula", {"keep_trace": False})):
        alg = ALGORITHMS[name]
        tag = f"{name}-{'trace' if options.get('keep_trace', True) else 'moments'}"

        @check(f"chains_{tag}")
        def _(alg=alg, options=options):
            run = jax.jit(lambda k, x: run_chains(k, alg, x, 20, **options))  # noqa: B023
            xs = par.shard_chains(x0, mesh)
            compiled = run.lower(jax.random.key(0), xs).compile()
            found = sorted(set(COLLECTIVE.findall(compiled.as_text())))
            require(not found, f"collectives in the compiled run: {found}")
            sharded = compiled(jax.random.key(0), xs)
            for path, leaf in jax.tree_util.tree_leaves_with_path(sharded):
                if leaf.ndim == 0:
                    continue
                # the chain axis is 0 for states/moments and 1 for trace/info
                axis = 1 if path[0].name in ("trace", "info") else 0
                spec = tuple(leaf.sharding.spec)
                require(
                    len(spec) > axis and spec[axis] == "chains",
                    f"{jax.tree_util.keystr(path)} has spec {spec}",
                )
            single = run(jax.random.key(0), x0)
            # an elementwise energy: the sharded run is the one-device run bit for bit
            require(tree_equal(sharded, single),
                    f"not bit-identical: max_abs_diff={tree_close(sharded, single)}")
            return "bitwise=True"

    @check("chains_mlp-hmc")
    def _():
        net_fn, params = mlp_energy(jax.random.key(7), 2, hidden=(32, 32))
        alg = hmc(lambda x: -net_fn(params, x) - 0.5 * jnp.sum(x**2), 0.1, jnp.ones(2), 5)
        run = jax.jit(lambda k, x: run_chains(k, alg, x, 40, keep_trace=False))
        sharded = run(jax.random.key(0), par.shard_chains(x0, mesh))
        require(len(sharded.state.position.sharding.device_set) == NUM_DEVICES,
                f"{sharded.state.position.sharding}")
        single = run(jax.random.key(0), x0)
        worst = tree_close(sharded, single, rtol=0.0, atol=MLP_ATOL)
        return f"bitwise={tree_equal(sharded, single)} max_abs_diff={worst:.2e}"

    @check("constrain_chains")
    def _():
        dmesh = par.make_mesh(num_data_devices=8)
        params = par.replicate(jnp.ones((1, 2)), dmesh)

        def f(p, k):
            with jax.sharding.use_abstract_mesh(dmesh.abstract_mesh):
                x = par.constrain_chains(jax.random.normal(k, (16, 2)))
            return x * p

        out = jax.jit(f)(params, jax.random.key(0))
        # split 8 ways (the size-1 "chains" axis may be dropped from the spec)
        require({s.data.shape for s in out.addressable_shards} == {(2, 2)}, str(out.sharding))
        plain = jnp.ones((16, 2))
        require(par.constrain_chains(plain) is plain, "no-op without a mesh")

    dmesh = par.make_mesh(num_data_devices=8)
    saved = {}

    @check("data_parallel_pcd")
    def _():
        state, step, batch = make_problem("pcd")
        single_state, single_metrics = run_steps(jax.jit(step), state, batch)
        state, batch = par.shard_train_state(state, dmesh), par.shard_batch(batch, dmesh)
        compiled = (
            jax.jit(par.data_parallel_train_step(step, dmesh))
            .lower(state, batch, jax.random.key(5))
            .compile()
        )
        require("all-reduce" in compiled.as_text(), "no gradient all-reduce: batch not split")
        dp_state, dp_metrics = run_steps(compiled, state, batch)
        worst = tree_close(dp_state, single_state)
        tree_close(dp_metrics, single_metrics)
        require(int(dp_state.step) == 3, "three updates")
        # the updates must move the parameters, or the equality would be vacuous
        moved = float(jnp.max(jnp.abs(dp_state.params["mu"] - state.params["mu"])))
        require(moved > 1e-3, f"parameters did not move ({moved})")
        for leaf in jax.tree.leaves((dp_state.params, dp_state.opt_state, dp_state.step,
                                     dp_metrics)):
            require(leaf.sharding.is_fully_replicated, f"not replicated: {leaf.sharding}")
        buffer = dp_state.objective_state.samples
        require(tuple(buffer.sharding.spec) == ("data",), f"buffer: {buffer.sharding.spec}")
        saved["state"] = dp_state
        return f"max_abs_diff={worst}"

    @check("host_helpers_one_process")
    def _():
        require(par.initialize(False) == (0, 1), "one process")
        require(par.host_slice(64) == slice(0, 64), "whole range")
        key = jax.random.key(0)
        require(tree_equal(par.host_key(key), jax.random.fold_in(key, 0)), "fold_in(key, 0)")
        batch = jnp.arange(32.0).reshape(16, 2)
        g = par.global_batch(batch, dmesh)
        require(tuple(g.sharding.spec) == ("data",) and tree_equal(g, batch), "global_batch")
        try:
            par.global_batch(jnp.zeros((12, 2)), dmesh)
        except ValueError:
            pass
        else:
            raise AssertionError("12 rows over 8 data devices did not raise")

    @check("save_checkpoints")
    def _():
        state = saved["state"]
        tree = {"state": state, "key": par.replicate(jax.random.key(9), dmesh)}
        par.save_sharded(os.path.join(WORKDIR, "sharded"), tree)
        manager = checkpoint_manager(os.path.join(WORKDIR, "train"))
        save_checkpoint(manager, 1, state)
        manager.close()
        leaves = jax.tree.leaves(jax.tree.map(lambda x: x, state))
        np.savez(os.path.join(WORKDIR, "expected.npz"), *[np.asarray(x) for x in leaves])


def loop_checks():
    mesh = par.make_mesh(num_data_devices=NUM_DEVICES)

    @check("train_loop_data_parallel")
    def _():
        state, step, batch = make_problem("pcd")
        data = 1.5 + jax.random.normal(jax.random.key(6), (256, 2))
        options = dict(num_steps=4, batch_size=64, chunk_size=2, progress=False)
        single = train_loop(jax.random.key(7), state, step, data, **options)
        parallel = train_loop(
            jax.random.key(7),
            par.shard_train_state(state, mesh),
            par.data_parallel_train_step(step, mesh),
            data,
            **options,
        )
        require(tuple(parallel.state.objective_state.samples.sharding.spec) == ("data",), "")
        return f"max_abs_diff={tree_close(parallel.state, single.state)}"

    @check("experiment_train_devices")
    def _():
        from jebm import experiment
        from jebm.config import Config, apply_overrides

        require(par.use_cpu_cores() is None, "the device count was configured already")
        small = ["model.hidden=[8]", "data.batch_size=64", "objective.num_chains=32",
                 "objective.buffer_size=64", "train.num_steps=2", "train.chunk_size=2",
                 "sampler.num_steps=2"]
        states = {}
        for devices in (0, 1):
            cfg = apply_overrides(Config(), [*small, f"train.devices={devices}"])
            states[devices] = experiment.train_run(experiment.build_run(cfg)).state
            # 0: the most devices dividing the batch (64) and the chains (32): all 8
            require(experiment.training_devices(cfg) == (devices or NUM_DEVICES),
                    f"train.devices={devices} -> {experiment.training_devices(cfg)}")
        buffer = states[0].objective_state.samples
        require(len(buffer.sharding.device_set) == NUM_DEVICES, f"{buffer.sharding}")
        try:
            experiment.training_devices(apply_overrides(Config(), ["train.devices=3"]))
        except ValueError as err:
            require("train.devices=3" in str(err) and "data.batch_size" in str(err), str(err))
        else:
            require(False, "train.devices=3 with batch 256 was accepted")
        # the model's draws: chains split over the devices, the same draws as one device
        run, params = experiment.build_run(cfg), states[0].params
        spread = experiment.sample_model(run, params, jax.random.key(3), 16, 3)
        require(len(spread.sharding.device_set) == NUM_DEVICES, f"{spread.sharding}")
        from jebm.experiment import recipes

        whole = recipes.chain_spread
        recipes.chain_spread = lambda n: (lambda x0: x0)
        try:
            alone = experiment.sample_model(run, params, jax.random.key(3), 16, 3)
        finally:
            recipes.chain_spread = whole
        return (f"max_abs_diff={tree_close(states[0], states[1])}, "
                f"draws {tree_close(spread, alone)}")


def restore_checks():
    """Restore the 8-device checkpoints onto meshes of all NUM_DEVICES devices and of one."""
    template, _, _ = make_problem("pcd")
    expected = np.load(os.path.join(WORKDIR, "expected.npz"))
    expected = [expected[f"arr_{i}"] for i in range(len(expected.files))]

    def compare(state, n):
        for got, want in zip(jax.tree.leaves(state), expected, strict=True):
            require(np.array_equal(np.asarray(got), want), "restored values differ")
        buffer = state.objective_state.samples
        require(len(buffer.sharding.device_set) == n, f"{buffer.sharding}")
        if n > 1:
            require(tuple(buffer.sharding.spec) == ("data",), f"{buffer.sharding.spec}")

    for n in sorted({NUM_DEVICES, 1}, reverse=True):
        mesh = par.make_mesh(1, n)  # n of the devices, all on "data"

        @check(f"restore_sharded_{n}")
        def _(mesh=mesh, n=n):
            tree = {"state": template, "key": jax.random.key(0)}
            shardings = {
                "state": par.train_state_shardings(template, mesh),
                "key": par.replicated_sharding(mesh),
            }
            restored = par.restore_sharded(os.path.join(WORKDIR, "sharded"), tree, shardings)
            compare(restored["state"], n)
            require(tree_equal(restored["key"], jax.random.key(9)), "key")

        @check(f"restore_train_checkpoint_{n}")
        def _(mesh=mesh, n=n):
            manager = checkpoint_manager(os.path.join(WORKDIR, "train"))
            restored, _ = restore_checkpoint(manager, par.shard_train_state(template, mesh))
            manager.close()
            compare(restored, n)


def restore_multihost_checks():
    mesh = par.make_mesh(num_data_devices=NUM_DEVICES)
    template, _, _ = make_problem("pcd")

    @check("restore_multihost")
    def _():
        tree = {"state": template, "key": jax.random.key(0)}
        shardings = {
            "state": par.train_state_shardings(template, mesh),
            "key": par.replicated_sharding(mesh),
        }
        restored = par.restore_sharded(os.path.join(WORKDIR, "multihost"), tree, shardings)
        expected = np.load(os.path.join(WORKDIR, "multihost.npz"))
        expected = [expected[f"arr_{i}"] for i in range(len(expected.files))]
        # written by the two-host data-parallel run, compared with a one-device run
        tree_close(jax.tree.leaves(restored["state"]), expected)
        require(tree_equal(restored["key"], jax.random.key(9)), "key")


def multihost_checks(process_id):
    local0 = jax.local_devices()[0]

    @check("multihost_topology")
    def _():
        require(jax.process_count() == 2 and len(jax.devices()) == 2 * NUM_DEVICES, "")
        require(par.host_slice(64) == slice(32 * process_id, 32 * (process_id + 1)), "slice")
        other = jax.random.fold_in(jax.random.key(0), 1 - process_id)
        require(not tree_equal(par.host_key(jax.random.key(0)), other), "keys differ per host")

    @check("multihost_chains")
    def _():
        mesh = par.make_mesh()
        x0 = jax.random.normal(jax.random.key(1), (NUM_CHAINS, 2))  # same on both hosts
        run = jax.jit(lambda k, x: run_chains(k, ALGORITHMS["mala"], x, 20))
        out = run(jax.random.key(0), par.shard_chains(x0, mesh))
        with jax.default_device(local0):
            ref = run(jax.random.key(0), x0)
        for shard in out.trace.addressable_shards:
            np.testing.assert_allclose(
                np.asarray(shard.data), np.asarray(ref.trace)[shard.index], RTOL, ATOL
            )

    @check("multihost_data_parallel")
    def _():
        mesh = par.make_mesh(num_data_devices=2 * NUM_DEVICES)
        state, step, batch = make_problem("pcd")
        with jax.default_device(local0):
            ref_state, _ = run_steps(jax.jit(step), state, batch)
        local_rows = np.asarray(batch)[par.host_slice(batch.shape[0])]
        dp = jax.jit(par.data_parallel_train_step(step, mesh))
        new, _ = run_steps(dp, par.shard_train_state(state, mesh), par.global_batch(local_rows,
                                                                                     mesh))
        params = jax.tree.map(lambda x: x.addressable_data(0), new.params)
        tree_close(params, ref_state.params)
        tree = {"state": new, "key": par.replicate(jax.random.key(9), mesh)}
        par.save_sharded(os.path.join(WORKDIR, "multihost"), tree)
        if process_id == 0:
            leaves = jax.tree.leaves(ref_state)
            np.savez(os.path.join(WORKDIR, "multihost.npz"), *[np.asarray(x) for x in leaves])


if __name__ == "__main__":
    if MODE == "main":
        main_checks()
        name = "main"
    elif MODE == "loop":
        loop_checks()
        name = MODE
    elif MODE == "restore":
        restore_checks()
        name = f"restore-{NUM_DEVICES}"
    elif MODE == "restore-multihost":
        restore_multihost_checks()
        name = MODE
    elif MODE == "multihost":
        multihost_checks(PROCESS_ID)
        name = f"multihost-{PROCESS_ID}"
    else:
        raise SystemExit(f"unknown mode {MODE!r}")
    with open(os.path.join(WORKDIR, f"{name}.json"), "w") as f:
        json.dump(RESULTS, f, indent=1)
