"""How every generated module reads the arrays it is given: names, shapes, numbers of examples, class
labels, integer ids and finite values checked once, each array made one of DTYPE (an integer input one
of its integer dtype) in its own library's namespace."""
import numpy as np

from ._model import BUFFERS, DTYPE, INPUTS, INTEGERS, LABELS, NEEDS, OUTPUTS, PARAMS, forward


def _forward_without(absent, arrays, **mode):
    """forward() for the outputs that do not need the `absent` inputs (those are filled with zeros,
    which such outputs never read); `mode`: forward's training=..., passed on."""
    wanted = [name for name in OUTPUTS if not set(NEEDS[name]) & set(absent)]
    if not wanted:
        raise TypeError(f"forward() is missing array(s) {', '.join(absent)}, which every output needs")
    given = [value for name, value in arrays.items() if value is not None]
    xp = _namespace(given)
    sizes = {None: 1}  # the number of examples, and each length named in shapes ("T"), read off the arrays given
    for name, value in arrays.items():
        if name in INPUTS and np.ndim(value) == len(INPUTS[name]):
            sizes.update({d: size for d, size in zip(INPUTS[name], np.shape(value)) if not isinstance(d, int)})
    filled = {name: xp.zeros(tuple(sizes.get(d, 1) if not isinstance(d, int) else d for d in INPUTS[name]),
                             dtype=getattr(xp, INTEGERS[name][0]) if name in INTEGERS else _dtype(xp))
              for name in absent}  # an absent integer input: id 0, a row every table has
    outputs = forward(**mode, **arrays, **filled)
    return {name: outputs[name] for name in wanted}


def _read(caller, arrays, names):
    """[xp, *arrays]: the namespace of the arrays `names`, then each as an array of DTYPE (an integer
    input of its integer dtype), after checking names, shapes, numbers of examples, class labels and ids."""
    shapes = {**INPUTS, **PARAMS, **BUFFERS}
    unknown = sorted(set(arrays) - set(shapes))
    if unknown:
        raise TypeError(f"{caller}() got unknown array(s) {', '.join(unknown)}; it takes {', '.join(shapes)}")
    missing = [name for name in names if name not in arrays]
    if missing:
        raise TypeError(f"{caller}() is missing array(s) {', '.join(missing)}" + (
            " (batch norm's running statistics, which init_params() gives and train() updates"
            + (", or call forward(..., training=True) to use the batch's own)" if caller == "forward" else ")")
            if set(missing) & set(BUFFERS) else ""))
    for name in names:
        if arrays[name] is None:
            raise TypeError(f"{caller}(): array {name!r} is None")
    xp = _namespace([arrays[name] for name in names])
    values, examples, lengths = [xp], {}, {}
    for name in names:
        value = (_as_integers if name in INTEGERS else _as_array)(xp, caller, name, arrays[name])
        expected = shapes[name]
        if value.ndim != len(expected) or any(isinstance(want, int) and want != got for want, got in zip(expected, value.shape)):
            raise ValueError(f"{caller}(): array {name!r} has shape {tuple(value.shape)}, expected {_shape_text(expected)}")
        for want, got in zip(expected, value.shape):  # a length named in shapes ("T"): one size in every array
            if isinstance(want, str) and lengths.setdefault(want, (name, got))[1] != got:
                raise ValueError(f"{caller}(): arrays {lengths[want][0]!r} and {name!r} have {want} = {lengths[want][1]} and {got}")
        if None in expected:
            examples[name] = value.shape[expected.index(None)]
        if name in LABELS:
            _check_labels(xp, caller, name, value)
        if name in INTEGERS:
            _check_ids(xp, caller, name, value)
        values.append(value)
    if len(set(examples.values())) > 1:
        raise ValueError(f"{caller}(): arrays hold different numbers of examples: "
                         + ", ".join(f"{name} {count}" for name, count in examples.items()))
    return values


def _namespace(values):
    """NumPy's namespace for NumPy arrays and anything NumPy reads (numbers, lists); for arrays of
    another library, its namespace under the Array API standard (through array_api_compat)."""
    foreign = [value for value in values if _foreign(value)]
    if not foreign:
        return _NP
    try:
        import array_api_compat
    except ImportError:
        raise TypeError("arrays other than NumPy's need the array_api_compat package "
                        "(pip install array-api-compat)") from None
    try:
        return array_api_compat.array_namespace(*foreign)
    except TypeError as error:
        raise TypeError(f"the arrays come from different libraries: {error}") from None


def _foreign(value):
    """Whether a value is an array of a library other than NumPy."""
    if isinstance(value, (np.ndarray, np.generic)):
        return False
    return hasattr(value, "__array_namespace__") or type(value).__module__.split(".")[0] in (
        "torch", "cupy", "jax", "jaxlib", "dask")


def _numpy_namespace():
    """NumPy as the namespace of NumPy arrays: NumPy's own functions, except that the reductions and
    astype call the array's methods, which skip NumPy's Python-level dispatch (about 1 us a call)."""
    import types

    def reduction(name):
        function, method = getattr(np, name), getattr(np.ndarray, name)

        def reduce(x, axis=None, keepdims=False):
            if type(x) is np.ndarray:
                return method(x, axis=axis, keepdims=keepdims)
            return function(x, axis=axis, keepdims=keepdims)
        return reduce

    def astype(x, dtype):
        return x.astype(dtype) if type(x) is np.ndarray else np.astype(x, dtype)

    def mean(x, axis=None, keepdims=False):  # as NumPy's: the sum divided by the count (a float's own
        if type(x) is not np.ndarray or x.dtype.kind != "f":  # dtype), without its Python-level checks
            return np.mean(x, axis=axis, keepdims=keepdims)
        axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
        count = 1
        for a in axes:
            count *= x.shape[a]
        return x.sum(axis=axis, keepdims=keepdims) / count

    reductions = {name: reduction(name) for name in ("sum", "max", "min")}
    return types.SimpleNamespace(**{**vars(np), **reductions, "mean": mean, "astype": astype})


_NP = _numpy_namespace()


def _dtype(xp):
    """DTYPE in the namespace xp (xp.float64 or xp.float32)."""
    return getattr(xp, DTYPE.__name__)


def _as_array(xp, caller, name, value):
    """A given value as an array of DTYPE in the namespace xp."""
    import warnings

    try:
        if xp is _NP:
            return np.asarray(value, dtype=DTYPE)
        if getattr(value, "requires_grad", False):  # PyTorch's autograd has no part in this module's gradients
            value = value.detach()
        with warnings.catch_warnings():  # JAX warns of a dtype it cannot make: the check below says it better
            warnings.simplefilter("ignore")
            array = xp.astype(xp.asarray(value), _dtype(xp))
    except (TypeError, ValueError):
        raise TypeError(f"{caller}(): array {name!r} is not numeric: {value!r:.60}") from None
    if array.dtype != _dtype(xp):  # JAX without 64-bit mode makes float32 of a float64 request
        raise TypeError(f"{caller}(): array {name!r} computes in {array.dtype}, not {DTYPE.__name__} as this module "
                        "was compiled for" + (": enable JAX's 64-bit mode (jax.config.update('jax_enable_x64', True)) "
                                              "or compile with dtype='float32'" if "jax" in xp.__name__ else ""))
    return array


def _as_integers(xp, caller, name, value):
    """A given value as an array of the integer input's dtype in the namespace xp. Anything but integers
    (floats, even whole ones, and booleans) is refused: an id computed in floats is a mistake upstream."""
    dtype = INTEGERS[name][0]
    if getattr(value, "requires_grad", False):
        value = value.detach()
    try:
        array = np.asarray(value) if xp is _NP else xp.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{caller}(): array {name!r} is not numeric: {value!r:.60}") from None
    integral = array.dtype.kind in "iu" if xp is _NP else (
        xp.isdtype(array.dtype, "integral") and not xp.isdtype(array.dtype, "bool"))
    if not integral:
        first = _numpy(array).reshape(-1)[:1].tolist()
        raise ValueError(f"{caller}(): input {name!r} holds integer ids ({dtype}), but was given an array of "
                         f"{array.dtype}" + (f" (first value {first[0]!r})" if first else "")
                         + f"; pass integers, e.g. {name}.astype(np.int64)")
    return array.astype(dtype, copy=False) if xp is _NP else xp.astype(array, getattr(xp, dtype))


def _check_ids(xp, caller, name, value):
    """Ids must pick a row of the table they index (class labels a class): 0 to INTEGERS[name][1] - 1,
    where NumPy would read -1 as the last row and a library on a GPU might read past the table."""
    rows = INTEGERS[name][1]
    if rows is None or not bool(xp.any((value < 0) | (value >= rows))):
        return
    values = _numpy(value)
    position = tuple(int(k) for k in np.argwhere((values < 0) | (values >= rows))[0])
    raise ValueError(f"{caller}(): input {name!r} holds {values[position]} at index {list(position)}; its ids "
                     f"pick one of {rows} rows (or classes), 0 to {rows - 1}")


def _check_labels(xp, caller, name, value):
    """Class labels must be whole numbers from 0 to LABELS[name] - 1."""
    valid = (value == xp.round(value)) & (value >= 0) & (value < LABELS[name])
    if not bool(xp.all(valid)):
        detail = ""
        if xp is _NP:
            detail = f"; got {value[~valid][0]:g}"
        raise ValueError(f"{caller}(): array {name!r} holds class labels, whole numbers from 0 to "
                         f"{LABELS[name] - 1}{detail}")


def _shape_text(shape):
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _result(value):
    """Plain floats for scalars, arrays otherwise."""
    return float(value) if np.ndim(value) == 0 else value


def _numpy(value):
    """Any library's array as a NumPy array (moved to the CPU)."""
    if isinstance(value, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(value)
    if getattr(value, "requires_grad", False):
        value = value.detach()
    try:
        import array_api_compat

        value = array_api_compat.to_device(value, "cpu")
    except (ImportError, TypeError, ValueError, AttributeError):
        pass
    return np.asarray(value)


def _check_finite(xp, where, arrays):
    """Refuse NaN and infinities in data, naming the array and the first bad position."""
    for name, value in arrays.items():
        if bool(xp.all(xp.isfinite(value))):
            continue
        values = _numpy(value)
        position = tuple(int(k) for k in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(f"{where}: input {name!r} holds {values[position]} at index {list(position)}; "
                         "data must be finite numbers")
