"""A persistent XLA compilation cache for jebm's entry points (the CLI, scripts).

JAX can keep compiled executables on disk and reuse them in a later process that
compiles the same program with the same JAX version, backend and flags. A repeated
``jebm train`` then skips most of its compilation. This is process-wide JAX
configuration, so it belongs to programs, never to library functions: the CLI calls
:func:`enable_compilation_cache` once, before its first compilation.

The cache lives in the user's cache directory, ``$XDG_CACHE_HOME/jebm/jax`` (default
``~/.cache/jebm/jax``), never in the repository or the run's workdir. A cache directory
that the user already chose for JAX (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update("jax_compilation_cache_dir", ...)``) is left as it is.
"""

import os
from pathlib import Path

import jax

__all__ = ["default_cache_dir", "enable_compilation_cache"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jebm/jax``, or ``~/.cache/jebm/jax`` when it is unset or empty.

    Examples:
      >>> from jebm._cache import default_cache_dir
      >>> default_cache_dir().parts[-2:]
      ('jebm', 'jax')
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jebm" / "jax"


def enable_compilation_cache(
    directory: str | os.PathLike | None = None, *, min_compile_time_secs: float = 0.0
) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process.

    Call it before the first compilation (JAX decides once per process whether the
    cache is used). Failures to create the directory disable nothing and raise
    nothing: the run then simply compiles as usual.

    Args:
      directory: where to keep the cache; default :func:`default_cache_dir`. Ignored
        when JAX already has a cache directory configured.
      min_compile_time_secs: only programs that took at least this long to compile
        are written. The default, 0, writes every program: JAX's own default (1 s)
        would keep only the train chunk of the default job, whose dozens of smaller
        programs (0.01 to 0.8 s each, the eager set-up ops among them) cost more to
        compile again than to read back (a read takes milliseconds).

    Returns:
      The cache directory in use, or ``None`` if it could not be created.
    """
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    path = Path(directory) if directory is not None else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
