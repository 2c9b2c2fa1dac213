"""Tests of jebm.parallel.

The multi-device checks run in subprocesses with fake CPU devices
(``multidevice_checks.py``), so this process keeps its single device. One subprocess
runs the 8-device checks and saves checkpoints; one more restores them on meshes of 4
devices and of 1. Marked slow: the data-parallel train_loop check (its own subprocess) and the
two-host test, which joins two processes with ``jax.distributed`` on localhost (4 CPU
devices each).
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import parallel as par

SCRIPT = os.path.join(os.path.dirname(__file__), "multidevice_checks.py")
TIMEOUT = 900


# The checks are dominated by compiling small programs: XLA's cheapest CPU settings (as in
# conftest.py) cut that; sharded and one-device runs are compared under the same flags.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def _run(mode: str, num_devices: int, workdir, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = FAST_COMPILE
    return subprocess.Popen(
        [sys.executable, SCRIPT, mode, str(num_devices), str(workdir), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _results(process: subprocess.Popen, path) -> dict:
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, f"checks crashed:\n{output[-4000:]}"
    with open(path) as f:
        return json.load(f)


def _assert_all_ok(results: dict, expected: set[str]) -> None:
    assert expected <= set(results), f"checks missing: {expected - set(results)}"
    failed = {name: r["detail"] for name, r in results.items() if not r["ok"]}
    assert not failed, "\n\n".join(f"{name}:\n{detail}" for name, detail in failed.items())


@pytest.fixture(scope="module")
def multidevice(tmp_path_factory):
    """Run the 8-device checks, then the restores onto 4 and 1 devices (one process of 4)."""
    workdir = tmp_path_factory.mktemp("parallel")
    main = _results(_run("main", 8, workdir), workdir / "main.json")
    restores = {}
    if main.get("save_checkpoints", {}).get("ok"):
        restores = _results(_run("restore", 4, workdir), workdir / "restore-4.json")
    return main, restores


def test_mesh_and_sharding_helpers_on_eight_devices(multidevice):
    main, _ = multidevice
    _assert_all_ok(main, {"make_mesh", "shard_errors", "constrain_chains",
                          "host_helpers_one_process"})


@pytest.mark.parametrize("config", ["mala-trace", "ula-moments", "mlp-hmc"])
def test_sharded_chains_equal_unsharded_and_stay_sharded(multidevice, config):
    # Inside the check: jitted run_chains on chains sharded over 8 devices has no
    # collective anywhere in its compiled HLO and every output keeps the chain axis
    # split over "chains". With an elementwise energy (mala, ula) the draws are the
    # one-device run's bit for bit (partitionable Threefry makes the keys independent of
    # the sharding); with an MLP energy (40 HMC steps) they agree to 1e-4 absolute, since
    # the matmuls may round differently per device batch.
    main, _ = multidevice
    _assert_all_ok(main, {f"chains_{config}"})


def test_data_parallel_training_equals_single_device(multidevice):
    # PCD with a replay buffer: three data-parallel updates (batch and buffer split
    # over 8 devices, one gradient all-reduce) equal three one-device updates up to
    # float reduction order (1e-5 relative, see RTOL in the script); params, optimizer
    # state and metrics come out replicated, the buffer split over "data".
    main, _ = multidevice
    _assert_all_ok(main, {"data_parallel_pcd"})


@pytest.mark.slow
def test_train_loop_data_parallel_equals_single_device(tmp_path):
    # train_loop with the data-parallel step (batches drawn inside the jitted chunk)
    # ends at the one-device result up to float reduction order; so does the experiment
    # layer's train_run with train.devices=0 (all 8 devices) against train.devices=1, and
    # sample_model's chains, split over the devices, give the one-device draws exactly.
    _assert_all_ok(_results(_run("loop", 8, tmp_path), tmp_path / "loop.json"),
                   {"train_loop_data_parallel", "experiment_train_devices"})


@pytest.mark.parametrize("num_devices", [4, 1])
def test_checkpoint_saved_on_eight_devices_restores_on_fewer(multidevice, num_devices):
    # Saved by the 8-device process with save_sharded and with jebm.train's
    # save_checkpoint; restored bit-exactly onto a mesh of num_devices.
    main, restores = multidevice
    _assert_all_ok(main, {"save_checkpoints"})
    _assert_all_ok(restores, {f"restore_sharded_{num_devices}",
                              f"restore_train_checkpoint_{num_devices}"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_with_jax_distributed(tmp_path):
    # Two processes x 4 CPU devices joined by jax.distributed on localhost: sharded
    # chains, data-parallel PCD fed by global_batch from each host's rows, and an
    # orbax checkpoint written by both hosts, then restored on one device.
    port = str(_free_port())
    processes = [_run("multihost", 4, tmp_path, str(pid), port) for pid in (0, 1)]
    try:
        results = [_results(p, tmp_path / f"multihost-{pid}.json") for pid, p in
                   enumerate(processes)]
    finally:
        for p in processes:  # a crashed host leaves the other waiting for it
            if p.poll() is None:
                p.kill()
            p.communicate()
    for r in results:
        _assert_all_ok(r, {"multihost_topology", "multihost_chains", "multihost_data_parallel"})
    restored = _results(_run("restore-multihost", 1, tmp_path), tmp_path /
                        "restore-multihost.json")
    _assert_all_ok(restored, {"restore_multihost"})


# ----- in-process tests on this process's single device --------------------------------


def test_make_mesh_on_one_device():
    mesh = par.make_mesh()
    assert mesh.axis_names == ("chains", "data")
    assert dict(mesh.shape) == {"chains": 1, "data": 1}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize(
    "sizes",
    [{"num_chain_devices": 2}, {"num_data_devices": 2}, {"num_chain_devices": 1,
     "num_data_devices": 2}, {"num_chain_devices": 0}, {"num_data_devices": 1.0}],
)
def test_make_mesh_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="num_"):
        par.make_mesh(**sizes)


def test_placement_helpers_keep_values(key):
    mesh = par.make_mesh()
    x = jax.random.normal(key, (6, 3))
    for placed in (par.shard_chains(x, mesh), par.shard_batch(x, mesh), par.replicate(x, mesh)):
        np.testing.assert_array_equal(placed, x)
    assert par.shard_chains({"a": x}, mesh)["a"].sharding == par.chain_sharding(mesh)
    with pytest.raises(ValueError, match="leading axis"):
        par.shard_batch(jnp.float32(1.0), mesh)


def test_initialize_without_distributed():
    assert par.initialize(False) == (0, 1)
    with pytest.raises(ValueError, match="distributed=True"):
        par.initialize(False, num_processes=2)


def test_host_key_and_slice_on_one_host(key):
    np.testing.assert_array_equal(
        jax.random.key_data(par.host_key(key)), jax.random.key_data(jax.random.fold_in(key, 0))
    )
    assert par.host_slice(10) == slice(0, 10)
    with pytest.raises(ValueError, match="global_size"):
        par.host_slice(0)


def test_save_and_restore_sharded_round_trip(tmp_path, key):
    mesh = par.make_mesh()
    tree = {"x": jnp.arange(6.0).reshape(3, 2), "key": key, "n": jnp.int32(3)}
    par.save_sharded(tmp_path / "ckpt", tree)
    template = jax.tree.map(jnp.zeros_like, {"x": tree["x"], "n": tree["n"]})
    template["key"] = jax.random.key(1)
    shardings = jax.tree.map(lambda _: par.replicated_sharding(mesh), template)
    restored = par.restore_sharded(tmp_path / "ckpt", template, shardings)
    np.testing.assert_array_equal(restored["x"], tree["x"])
    assert int(restored["n"]) == 3
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(key))


_CORES_CHILD = """
import sys, jax
from jebm.parallel import use_cpu_cores
if sys.argv[1] == "late":  # a computation first: the backend is up
    jax.numpy.zeros(1).block_until_ready()
    print(use_cpu_cores(2), len(jax.devices("cpu")))
else:
    print(use_cpu_cores(3), use_cpu_cores(), len(jax.devices("cpu")))
"""


@pytest.mark.parametrize(("when", "extra_env", "expected"), [
    ("fresh", {}, "3 None 3"),  # set once; a second call (now configured) leaves it
    ("fresh", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, "None None 2"),
    ("late", {}, "None 1"),
])
def test_use_cpu_cores_sets_the_count_only_when_nobody_has(when, extra_env, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", **extra_env)
    out = subprocess.run([sys.executable, "-c", _CORES_CHILD, when], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == expected
