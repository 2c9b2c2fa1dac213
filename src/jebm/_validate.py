"""Argument checks shared by every constructor: errors name the argument.

Python numbers are checked at construction (``ValueError``, never ``assert``); traced
arrays pass through unchecked, because their values are unknown until run time (kernels
report a non-finite or non-positive traced tunable as a divergence in their ``info``).
``True``/``False`` are never accepted as numbers.
"""

import math
import numbers

import numpy as np

__all__ = ["check_int", "check_float", "check_float_dtype", "is_static_number"]


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_static_number(value) -> bool:
    """Whether ``value`` is a concrete Python/NumPy real number (not an array or tracer)."""
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0)


def check_int(name: str, value, *, minimum: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int ``>= minimum``; ``None`` passes when ``optional``.

    Args:
      name: the argument's name, for the error message.
      value: the value to check.
      minimum: smallest value allowed.
      optional: accept ``None``.

    Returns:
      ``int(value)``, or ``None``.

    Raises:
      ValueError: if ``value`` is not an int (``True`` is not), or is below ``minimum``.

    Examples:
      >>> check_int("num_steps", 10)
      10
      >>> check_int("num_steps", 0)
      Traceback (most recent call last):
      ...
      ValueError: num_steps must be an int >= 1, got 0.
    """
    if value is None and optional:
        return None
    if not _is_int(value) or value < minimum:
        none = "None or " if optional else ""
        raise ValueError(f"{name} must be {none}an int >= {minimum}, got {value!r}.")
    return int(value)


def check_float(name: str, value, *, positive: bool = True, allow_zero: bool = False,
                optional: bool = False):
    """Check a real tunable given as a Python number: finite and ``> 0`` (or ``>= 0``).

    Arrays (traced or concrete, any shape) are returned unchanged: kernels see them at run
    time and report bad values in their ``info``. Scalars given as Python or NumPy numbers
    are checked here.

    Args:
      name: the argument's name, for the error message.
      value: the value to check.
      positive: require ``value > 0`` (``>= 0`` with ``allow_zero``); else only finite.
      allow_zero: with ``positive``, accept 0.
      optional: accept ``None``.

    Returns:
      ``value`` (a Python float when it was a number).

    Raises:
      ValueError: naming ``name``, for a bool, a non-finite number or one out of range.

    Examples:
      >>> check_float("step_size", 0.1)
      0.1
      >>> check_float("step_size", -1.0)
      Traceback (most recent call last):
      ...
      ValueError: step_size must be a finite number > 0, got -1.0.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool | np.bool_) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}.")
    if not is_static_number(value):
        return value
    number = float(value)
    if positive:
        ok = number >= 0 if allow_zero else number > 0
        bound = " >= 0" if allow_zero else " > 0"
    else:
        ok, bound = True, ""
    if not (math.isfinite(number) and ok):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")
    return number


def check_float_dtype(name: str, value) -> np.dtype:
    """``value`` as a floating-point dtype (``float32``, ``"bfloat16"``, ``jnp.float16``, ...).

    Args:
      name: the argument's name, for the error message.
      value: a dtype or a dtype name.

    Returns:
      The ``numpy`` dtype (``bfloat16`` is the ``ml_dtypes`` type JAX uses).

    Raises:
      ValueError: naming ``name``, if ``value`` is not a floating-point dtype.

    Examples:
      >>> check_float_dtype("dtype", "bfloat16")
      dtype(bfloat16)
      >>> check_float_dtype("dtype", "int32")
      Traceback (most recent call last):
      ...
      ValueError: dtype must be a floating-point dtype such as float32 or bfloat16, got 'int32'.
    """
    import jax.numpy as jnp

    try:
        dtype = None if value is None else jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating-point dtype such as float32 or bfloat16, "
                         f"got {value!r}.")
    return dtype
