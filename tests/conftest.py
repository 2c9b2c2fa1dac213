import os

# Tests are dominated by XLA compilation on CPU: skip its expensive LLVM passes (about a
# third less CPU time; the programs compute the same functions, checked by the suite's
# tolerances). Set before JAX is imported; a user's own XLA_FLAGS are kept.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
