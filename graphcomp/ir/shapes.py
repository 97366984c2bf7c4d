"""Shapes: how users write them, how they are checked, and the rules every op shares (broadcasting,
axes, basic indexing). `None` in a shape is the batch dimension, first axis only (second, after a time
axis "T" of a time-major sequence); a name such as "T" is a length known only at run time.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import ShapeError

Shape = tuple  # of int | None | str; None is the batch dimension (first axis, or second after a time axis);
# a str is a length known only at run time ("T", a sequence's length), the same wherever that name is used
MAX_ELEMENTS = 10 ** 10  # elements of one leaf (per example): 80 GB in float64


def format_shape(shape: Shape) -> str:
    """`(None, 3)` as users write it."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def shapes_text(shapes: Sequence[Shape]) -> str:
    return " and ".join(format_shape(s) for s in shapes)


def check_shape(shape: Any, what: str, allow_batch: bool) -> Shape:
    """Validate a user's shape: a tuple of positive ints, `None` allowed as the first axis only."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(f"{what}: shape must be a tuple, got {shape!r}")
    shape = tuple(shape)
    for axis, d in enumerate(shape):
        if isinstance(d, str):  # a length known at run time only, the same wherever its name is used
            if not allow_batch:
                raise ShapeError(f"{what}: shape {format_shape(shape)} has a length known at run time ({d!r}); parameters need fixed sizes")
            if not d.isidentifier() or d.startswith("_") or axis > 1:
                raise ShapeError(f"{what}: shape {format_shape(shape)}: a run-time length must be a name such as 'T', "
                                 "on the first or second axis")
            continue
        if d is None:
            if not allow_batch:
                raise ShapeError(f"{what}: shape {format_shape(shape)} has a batch dimension (None); parameters need fixed sizes")
            if axis != 0 and not (axis == 1 and isinstance(shape[0], str)):
                raise ShapeError(f"{what}: shape {format_shape(shape)} has None at axis {axis}; the batch dimension must be the first axis")
        elif not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ShapeError(f"{what}: shape {format_shape(shape)} must hold positive integers (or None first), got {d!r}")
    size = math.prod(d for d in shape if isinstance(d, int))
    if size > MAX_ELEMENTS:
        raise ShapeError(f"{what}: shape {format_shape(shape)} has {size:.3g} elements (per example); "
                         f"at most {MAX_ELEMENTS:.0e} fit in memory here")
    return shape


def broadcast_shapes(shapes: tuple, what: str = "elementwise op") -> Shape:
    """NumPy broadcasting, where the batch dimension None only meets None or 1."""
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise ShapeError(f"{what}: shapes {shapes_text(shapes)} do not broadcast together")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def normalize_axes(axis, ndim: int, what: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (int, tuple, list)):
        raise ShapeError(f"{what}: axis must be an int or a tuple of ints, got {axis!r}")
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = set()
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ShapeError(f"{what}: axis {a!r} is out of range for {ndim} dimension(s)")
        out.add(a % ndim)
    return tuple(sorted(out))


def inferred_shape(source: Shape, target: Shape) -> Shape:
    """A reshape's `target` with its one -1 replaced by the size that keeps the number of elements.
    Batch axes (None) are sizes known only at run time: each of the source's stays one of the
    target's, so -1 is inferred from the other axes alone, (None, 2, 3) to (None, -1) is (None, 6);
    where the target lacks one and the other axes take every other element, -1 is that batch axis,
    as NumPy would find: (None, 2, 3) to (-1, 6) is (None, 6)."""
    if -1 not in target:
        return target
    rest = math.prod(d for d in target if d not in (-1, None))
    known = math.prod(d for d in source if d is not None)
    batches = source.count(None) - target.count(None)
    if target.count(-1) == 1 and batches == 1 and known == rest:
        return tuple(None if d == -1 else d for d in target)
    if target.count(-1) > 1 or batches or rest < 1 or known % rest:
        raise ShapeError(f"reshape: cannot infer -1 in {format_shape(target)} from shape {format_shape(source)}")
    return tuple(known // rest if d == -1 else d for d in target)


def axis_text(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


def normalize_index(index, shape: Shape) -> tuple:
    """A basic index as a tuple of ("int", i) / ("slice", start, stop, step), one per leading axis."""
    if not isinstance(index, tuple):
        index = (index,)
    if sum(1 for k in index if k is Ellipsis) > 1:
        raise ShapeError("index: at most one '...' is allowed")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    if len(index) > len(shape):
        raise ShapeError(f"index: {len(index)} indices for shape {format_shape(shape)}")
    out = []
    for axis, (k, d) in enumerate(zip(index, shape)):
        if isinstance(k, slice):
            if d is None or isinstance(d, str):
                if k != slice(None):
                    what = "the batch axis" if d is None else f"the axis of run-time length {d!r}"
                    raise ShapeError(f"index: {what} (axis {axis}) can only be taken whole with ':'; "
                                     "walk a sequence with gc.scan")
                out.append(("slice", None, None, None))
                continue
            for part in (k.start, k.stop, k.step):
                if part is not None and (not isinstance(part, int) or isinstance(part, bool)):
                    raise ShapeError(f"index: slice bounds must be ints, got {part!r}")
            if k.step is not None and k.step < 1:
                raise ShapeError(f"index: slice steps must be positive, got {k.step}")
            out.append(("slice", k.start, k.stop, k.step))
        elif isinstance(k, int) and not isinstance(k, bool):
            if d is None:
                raise ShapeError(f"index: cannot pick one example of the batch axis (axis {axis})")
            if isinstance(d, str):
                raise ShapeError(f"index: cannot pick one step of axis {axis}, whose length {d!r} is known only "
                                 "at run time; walk the sequence with gc.scan")
            if not -d <= k < d:
                raise ShapeError(f"index: {k} is out of range for axis {axis} of size {d}")
            out.append(("int", k % d))
        else:
            raise ShapeError(f"index: only ints, slices and '...' are supported, got {k!r}")
    return tuple(out)
