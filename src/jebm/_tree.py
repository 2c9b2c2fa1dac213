"""Pytree helpers shared by the samplers and the training loop."""

import jax
import jax.numpy as jnp

from jebm.types import Array, ArrayTree

__all__ = ["tree_all_finite"]


def tree_all_finite(tree: ArrayTree) -> Array:
    """True when every entry of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
