"""Every script in ``examples/`` runs to completion with tiny sizes (``--smoke``, ``JEBM_SMOKE=1``).

Each runs in a child process, as a user would run it: ``sys.executable``, the working
directory a fresh temporary folder (so nothing is written into the repository), and
``PYTHONPATH`` pointing at this checkout's ``src``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[!_]*.py"))  # _args.py is their shared flags
# Compilation dominates a smoke run; XLA's cheapest CPU backend settings cut it by about a
# third (they change speed, not semantics).
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# Extra flags per script: sharded_chains runs on four fake CPU devices, so the smoke test
# exercises a real split of the chains.
EXTRA_FLAGS = {"sharded_chains.py": "--xla_force_host_platform_device_count=4"}


def test_examples_are_found():
    assert len(EXAMPLES) >= 6, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    flags = [os.environ.get("XLA_FLAGS", ""), FAST_COMPILE, EXTRA_FLAGS.get(script.name, "")]
    env = {**os.environ, "JEBM_SMOKE": "1", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(f for f in flags if f)}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, str(script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    assert not list(tmp_path.iterdir()), f"{script.name} wrote files: {list(tmp_path.iterdir())}"


def test_blackjax_example_skips_cleanly_without_blackjax(tmp_path):
    hidden = tmp_path / "hide"  # a package that shadows blackjax and fails to import
    (hidden / "blackjax").mkdir(parents=True)
    (hidden / "blackjax" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "JEBM_SMOKE": "1", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(hidden), str(ROOT / "src")])
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "blackjax_negative_sampler.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "skipping" in proc.stdout
