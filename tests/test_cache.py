"""The persistent compilation cache helper: where it writes, and that JAX writes there."""

import os
import subprocess
import sys
from pathlib import Path

from jebm._cache import default_cache_dir


def test_default_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "jebm" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "jebm" / "jax"


_CHILD = """
import jax, jax.numpy as jnp
from jebm._cache import enable_compilation_cache
path = enable_compilation_cache(min_compile_time_secs=0.0)
print(path)
jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))))
"""


def test_compiled_programs_land_in_the_user_cache(tmp_path):
    # A child process: JAX decides once per process whether the cache is on.
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    cache = tmp_path / "jebm" / "jax"
    assert Path(out.stdout.strip().splitlines()[-1]) == cache
    assert any(cache.iterdir()), "no compiled program was written to the cache"
