"""Domain indices -> the rows of per-domain parameters (STAR's layers).

A multi-domain layer keeps one set of parameters per known domain, `0 ..
num_domains - 1`, plus the shared ones. Every other index (the -1
`DomainIndex` gives to an out-of-vocabulary or padded domain value, or any
index out of range) is "no known domain": such rows use the shared
parameters alone. The layers stack their per-domain parameters with one more
row, the neutral one (ones for a multiplicative weight, zeros for an additive
one), and every row selects its row of the stack with a one-hot matrix.
"""

from __future__ import annotations

from keras import ops

from keras_mtl._checks import check_positive_int


def check_num_domains(owner: str, num_domains) -> int:
    return check_positive_int(owner, "num_domains", num_domains)


def domain_rows(domain, num_domains: int):
    """int32 `(batch,)`: each example's domain, `num_domains` where it is unknown.

    Args:
        domain: integer tensor `(batch,)` or `(batch, 1)` of domain indices.
        num_domains: int. The known domains are `0 .. num_domains - 1`.
    """
    d = ops.reshape(ops.cast(domain, "int32"), (-1,))
    known = ops.logical_and(ops.greater_equal(d, 0), ops.less(d, num_domains))
    return ops.where(known, d, num_domains)


def domain_selection(domain, num_domains: int, dtype="float32"):
    """`(batch, num_domains + 1)` one-hot rows: the example's domain, or the last
    column (no known domain)."""
    return ops.one_hot(domain_rows(domain, num_domains), num_domains + 1, dtype=dtype)


def check_domain_inputs(owner: str, input_shape) -> tuple:
    """`(values shape, domain shape)` of a `[values, domain]` input, checked."""
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not all(isinstance(s, (list, tuple)) for s in input_shape)
    ):
        raise ValueError(
            f"{owner}: inputs must be [values, domain]: a tensor (batch, features) "
            f"and the domain indices (batch,); got input shape {input_shape!r}."
        )
    values, domain = (tuple(s) for s in input_shape)
    if len(values) != 2 or values[-1] is None:
        raise ValueError(
            f"{owner}: values must be (batch, features) with a known width; got "
            f"shape {values}."
        )
    if len(domain) not in (1, 2) or (len(domain) == 2 and domain[1] != 1):
        raise ValueError(
            f"{owner}: the domain indices must be (batch,) or (batch, 1); got shape "
            f"{domain}."
        )
    return values, domain
