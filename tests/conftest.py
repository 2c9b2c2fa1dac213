import os

# Tests are dominated by XLA compilation on CPU: skip its expensive LLVM passes (about a
# third less CPU time; the programs compute the same functions, checked by the suite's
# tolerances). Set before JAX is imported; a user's own XLA_FLAGS are kept.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


def _cache_dir(run: str):
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir()) / f"jebm-test-xla-cache-{run}"


def _share_compilations() -> None:
    """One persistent compilation cache for the whole test run, shared by the xdist
    workers: many tests compile the same small programs (the same tiny models and
    configs), and a cache hit costs milliseconds. It lives in a fresh folder under the
    system temp directory, named by the run (xdist's ``PYTEST_XDIST_TESTRUNUID``), so no
    run reads another's programs and nothing is written to the repository or the user's
    cache; the controlling process removes it when the run ends."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"solo-{os.getpid()}"
    path = _cache_dir(run)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


if os.environ.get("JEBM_TEST_CACHE", "1") == "1":
    _share_compilations()


@pytest.fixture
def key():
    return jax.random.key(0)


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller cleans up
        return
    if getattr(config.option, "testrunuid", "") is None:  # let xdist use a known run id
        import uuid

        config.option.testrunuid = uuid.uuid4().hex
    config._jebm_cache_dirs = [_cache_dir(f"solo-{os.getpid()}")]
    if getattr(config.option, "testrunuid", None):
        config._jebm_cache_dirs.append(_cache_dir(config.option.testrunuid))


def pytest_unconfigure(config):
    import shutil

    for path in getattr(config, "_jebm_cache_dirs", ()):
        shutil.rmtree(path, ignore_errors=True)
