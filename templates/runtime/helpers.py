"""The functions the generated code of some ops calls (convolution, pooling, dropout, logsumexp, σ).
Each is copied into a module only when one of its lines calls it, with the helpers it calls in turn."""
import numpy as np

from ._model import _CHECKED_LINES, _FINITE_LINES, DTYPE
from .arrays import _NP, _numpy


def _sigmoid(xp, x):
    """σ(x) = 1 / (1 + e^(-x)). Below x ≈ -709 (-88 in float32) e^(-x) overflows to inf, and 1 / (1 + inf)
    is 0, the correct limit: NumPy's warning is silenced, the value is right. exp, not the tanh form
    (1 + tanh(x/2)) / 2: NumPy computes it 2-3x faster, and the tanh form rounds σ(-40) = 4e-18 to 0."""
    if xp is not _NP:
        return 1 / (1 + xp.exp(-x))
    with np.errstate(over="ignore"):
        if not np.ndim(x):
            return 1 / (1 + np.exp(-x))
        return _sigmoid_into(x, np.empty_like(x, dtype=np.result_type(x.dtype, np.float16)))


def _sigmoid_into(x, out):
    """σ(x) written into the NumPy array `out` (which may be x), one pass at a time and no new array:
    each fresh large array costs page faults. Called under an errstate that lets e^(-x) overflow to inf."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _unindex(xp, grad, like, index):
    """The gradient of like[index]: grad at index, zeros elsewhere."""
    return _added(xp.zeros_like(like), index, grad)


def _take(xp, table, ids):
    """The rows of table that the integer ids pick: shape ids.shape + table.shape[1:]. The standard's
    take reads one axis of ids, so other libraries pick from the ids laid flat."""
    if xp is _NP:
        return table[ids]
    picked = xp.take(table, xp.reshape(ids, (-1,)), axis=0)
    return xp.reshape(picked, tuple(ids.shape) + tuple(table.shape[1:]))


def _take_grad(xp, grad, table, ids):
    """The gradient of table[ids]: each row of grad added into the row its id names, so a row picked
    twice gets both. NumPy adds in place (np.add.at); other libraries, whose `out[ids] += grad` keeps
    only one of repeated ids, multiply the one-hot rows of the ids into grad."""
    if xp is _NP:
        out = np.zeros_like(table)
        np.add.at(out, ids, grad)
        return out
    flat = xp.reshape(ids, (-1,))
    hits = xp.astype(flat[:, None] == xp.arange(table.shape[0], dtype=flat.dtype, device=_device(xp, flat)),
                     grad.dtype)
    width = 1
    for size in table.shape[1:]:
        width *= size
    rows = xp.reshape(grad, (flat.shape[0], width))
    return xp.reshape(xp.matmul(xp.permute_dims(hits, (1, 0)), rows), tuple(table.shape))


def _windows(xp, x, kh, kw, stride, padding):
    """Every kh x kw patch of x (N, C, H, W), shaped (N, C, OH, OW, kh, kw): a strided view with NumPy,
    strided slices stacked elsewhere (the Array API standard has no window views)."""
    if padding:
        x = _padded(xp, x, padding)
    if xp is _NP:
        return np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    rows, cols = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    return xp.stack([xp.stack([x[:, :, i:i + stride * (rows - 1) + 1:stride, j:j + stride * (cols - 1) + 1:stride]
                               for j in range(kw)], axis=-1) for i in range(kh)], axis=-2)


def _padded(xp, x, padding):
    """x (N, C, H, W) with `padding` zeros on every side of H and W."""
    if xp is _NP:
        return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    rows = xp.zeros((n, c, padding, w), dtype=x.dtype, device=_device(xp, x))
    x = xp.concat((rows, x, rows), axis=2)
    cols = xp.zeros((n, c, h + 2 * padding, padding), dtype=x.dtype, device=_device(xp, x))
    return xp.concat((cols, x, cols), axis=3)


def _fold(xp, patches, shape, stride, padding):
    """Add patches (N, C, OH, OW, kh, kw) back where they were taken from, in an array of `shape`."""
    n, c, oh, ow, kh, kw = patches.shape
    height, width = shape[2] + 2 * padding, shape[3] + 2 * padding
    out = xp.zeros((n, c, height, width), dtype=patches.dtype, device=_device(xp, patches))
    for i in range(kh):  # loops over kernel offsets only; every pixel is handled by the array library
        for j in range(kw):
            cut = (slice(None), slice(None), slice(i, i + stride * (oh - 1) + 1, stride),
                   slice(j, j + stride * (ow - 1) + 1, stride))
            out = _added(out, cut, patches[:, :, :, :, i, j])
    return out[:, :, padding:padding + shape[2], padding:padding + shape[3]]


def _columns(xp, x, kh, kw, stride, padding):
    """Every kh x kw patch of x (N, C, H, W) as one row of an (N*OH*OW, C*kh*kw) matrix, so that a
    convolution is one matrix product; and (N, OH, OW)."""
    patches = _windows(xp, x, kh, kw, stride, padding)
    n, c, oh, ow = patches.shape[:4]
    return xp.reshape(xp.permute_dims(patches, (0, 2, 3, 1, 4, 5)), (n * oh * ow, c * kh * kw)), (n, oh, ow)


def _conv2d(xp, x, w, stride, padding):
    """Cross-correlation of x (N, C, H, W) with w (O, C, kh, kw): (N, O, OH, OW)."""
    columns, (n, oh, ow) = _columns(xp, x, w.shape[2], w.shape[3], stride, padding)
    out = columns @ xp.reshape(w, (w.shape[0], -1)).T
    return xp.permute_dims(xp.reshape(out, (n, oh, ow, w.shape[0])), (0, 3, 1, 2))


def _conv2d_input_grad(xp, grad, w, x, stride, padding):
    """Gradient of conv2d w.r.t. x: each output's gradient times w, added back onto its patch."""
    patches = xp.tensordot(grad, w, axes=((1,), (0,)))  # (N, OH, OW, C, kh, kw)
    return _fold(xp, xp.permute_dims(patches, (0, 3, 1, 2, 4, 5)), x.shape, stride, padding)


def _conv2d_weight_grad(xp, grad, x, w, stride, padding):
    """Gradient of conv2d w.r.t. w: sum over examples and positions of grad times the input patch."""
    columns, _ = _columns(xp, x, w.shape[2], w.shape[3], stride, padding)
    return xp.reshape(xp.reshape(xp.permute_dims(grad, (1, 0, 2, 3)), (w.shape[0], -1)) @ columns, w.shape)


def _pool_cuts(shape, size, stride):
    """For each position (i, j) inside a size x size window, the index that reads that position of
    every window of an (N, C, H, W) array at once: pooling works on size**2 strided slices, which
    NumPy handles far faster than a reduction over two small window axes (25x at 64x8x28x28)."""
    rows, cols = (shape[2] - size) // stride + 1, (shape[3] - size) // stride + 1
    return [(slice(None), slice(None), slice(i, i + stride * (rows - 1) + 1, stride),
             slice(j, j + stride * (cols - 1) + 1, stride)) for i in range(size) for j in range(size)]


def _pool_hits(xp, x, pooled, size, stride):
    """(cuts, where each cut reaches its window's max as 1s and 0s, how many positions of each window do)."""
    cuts = _pool_cuts(x.shape, size, stride)
    hits = [xp.astype(x[cut] == pooled, x.dtype) for cut in cuts]
    count = hits[0]
    for hit in hits[1:]:
        count = count + hit
    return cuts, hits, count


def _max_pool2d(xp, x, size, stride):
    """The max of each size x size window of x (N, C, H, W)."""
    cuts = _pool_cuts(x.shape, size, stride)
    if xp is _NP:  # in place: one new array
        out = x[cuts[0]].copy()
        for cut in cuts[1:]:
            np.maximum(out, x[cut], out=out)
        return out
    out = x[cuts[0]]
    for cut in cuts[1:]:
        out = xp.maximum(out, x[cut])
    return out


def _max_pool2d_grad(xp, grad, x, pooled, size, stride):
    """Each window's gradient, routed to its maximal position (shared equally at ties)."""
    cuts, hits, count = _pool_hits(xp, x, pooled, size, stride)
    share = grad / count
    out = xp.zeros_like(x)
    for cut, hit in zip(cuts, hits):
        out = _added(out, cut, hit * share)
    return out


def _max_pool2d_select(xp, values, x, pooled, size, stride):
    """Each window of `values` read where x reaches its window's max (averaged over ties)."""
    cuts, hits, count = _pool_hits(xp, x, pooled, size, stride)
    total = hits[0] * values[cuts[0]]
    for cut, hit in zip(cuts[1:], hits[1:]):
        total = total + hit * values[cut]
    return total / count


def _dropout_mask(xp, rng, like, rate):
    """Inverted dropout: 0 with probability rate, else 1/(1 - rate); all ones outside training. The
    draw is NumPy's (the same for every library), then moved to the array's library and device."""
    if rng is None:
        return xp.ones_like(like)
    mask = (rng.random(tuple(like.shape)) >= rate).astype(DTYPE) / (1 - rate)
    return mask.astype(like.dtype) if xp is _NP else xp.asarray(mask, dtype=like.dtype, device=_device(xp, like))


def _logsumexp(xp, x, axis, keepdims=False):
    """log Σ exp(x) along `axis`, with the max taken out first so that exp never overflows."""
    if type(x) is np.ndarray and x.ndim:  # NumPy's ufuncs called directly; one new array of the size of x,
        top = np.maximum.reduce(x, axis=axis, keepdims=True)  # its exponentials made in place
        shifted = np.subtract(x, top)
        np.exp(shifted, out=shifted)
        out = np.add.reduce(shifted, axis=axis, keepdims=True)
        np.log(out, out=out)
        out += top
    else:
        top = xp.max(x, axis=axis, keepdims=True)
        out = top + xp.log(xp.sum(xp.exp(x - top), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


def _device(xp, x):
    """The device an array lives on: None for NumPy's; array_api_compat knows every other library's."""
    if xp is _NP:
        return None
    import array_api_compat

    return array_api_compat.device(x)


def _added(out, index, value):
    """out with value added at index: in place where the library allows it, through JAX's .at where
    arrays cannot be assigned into."""
    if hasattr(out, "at"):
        return out.at[index].add(value)
    out[index] += value
    return out


def _expect_shape(value, expected, name):
    """check_shapes: the shape a line computed must be the one the graph gives its value (N, the number
    of examples, stands for every batch-sized axis)."""
    shape = tuple(getattr(value, "shape", ()))
    if shape != expected:
        raise ValueError(f"check_shapes: {name} = {_CHECKED_LINES[name]} computed shape {shape}, "
                         f"but the graph gives {name} the shape {expected}")


class NotFiniteValue(FloatingPointError):
    """check_finite: a line of the model computed a value holding NaN or an infinity. `line`: the line of
    the module; `name`: the value's variable; `index`: the first element that is not finite."""

    def __init__(self, message, line, name, index):
        super().__init__(message)
        self.line, self.name, self.index = line, name, index


def _expect_finite(xp, value, line, operands=()):
    """check_finite: the value the line above computed must hold finite numbers only; else stop, with its
    line, formula, operands and where it was declared (_FINITE_LINES[line])."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not (dtype.kind in "fc" if xp is _NP else xp.isdtype(dtype, ("real floating", "complex floating"))):
        return  # integers (ids) and booleans are finite
    if not bool(xp.all(xp.isfinite(value))):
        _not_finite(value, line, operands)


def _not_finite(value, line, operands):
    """Raise NotFiniteValue with the report: the line, the formula, where the value was declared, its
    first element that is not finite, and each operand's value there."""
    name, code, formula, labels, place = _FINITE_LINES[line]
    values = _numpy(value)
    bad = ~np.isfinite(values)
    index = tuple(int(k) for k in np.argwhere(bad)[0])
    kinds = ((np.isnan(values), "nan"), (values == np.inf, "inf"), (values == -np.inf, "-inf"))
    counts = ", ".join(f"{int(found.sum())} {kind}" for found, kind in kinds if found.any())
    module = str(globals().get("__file__", "model.py")).replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    report = [f"not a finite number at {module} line {line}: {name} = {code}",
              f"  formula:  {name} = {formula}",
              f"  declared: {place or 'by graphcomp (part of a derivative)'}",
              f"  {name}{_index_text(index)} = {values[index]}  "
              f"({int(bad.sum())} of {values.size} not finite: {counts})"]
    for label, operand in zip(labels, operands):
        array = _numpy(operand)
        report.append(f"  {label}{_at(array, index, values.shape)}  ({_summary(array)})")
    raise NotFiniteValue("\n".join(report), line, name, index)


def _index_text(index):
    return "[" + ", ".join(map(str, index)) + "]" if index else ""


def _at(array, index, shape):
    """An operand's value at the bad element: broadcasting reads index 0 along its axes of size 1; an
    operand of another shape (a matmul's, a reduction's) has no one element there."""
    if array.ndim > len(shape) or any(d not in (1, s) for d, s in zip(array.shape[::-1], shape[::-1])):
        return ""
    position = tuple(0 if d == 1 else k for d, k in zip(array.shape, index[len(shape) - array.ndim:]))
    return f"{_index_text(position)} = {array[position]}"


def _summary(array):
    """An operand in one phrase: its shape, its range and how many of its values are not finite."""
    finite = np.isfinite(array)
    shape = "(" + ", ".join(map(str, array.shape)) + ("," if array.ndim == 1 else "") + ")"
    if not array.ndim:
        return "a number"
    described = f"shape {shape}"
    if finite.any():
        described += f", from {array[finite].min():.6g} to {array[finite].max():.6g}"
    missing = int(array.size - finite.sum())
    return described + (f", {missing} not finite" if missing else ", all finite")


def _variance(xp, x, mean, axis):
    """The biased variance of a normalisation (batch norm, layer norm), mean((x - mean)²) over `axis`,
    kept; refused when each statistic has one value (a batch of one example): x̂ would be 0 everywhere."""
    count = 1
    for a in (axis,) if isinstance(axis, int) else axis:
        count *= x.shape[a]
    if count < 2:
        raise ValueError(f"normalisation (batch_norm, layer_norm): the statistics over axis {axis} of an array of shape "
                         f"{tuple(x.shape)} takes the statistics of one value each (every x̂ would be 0); "
                         "give a batch of 2 or more examples")
    centred = x - mean
    return xp.mean(centred * centred, axis=axis, keepdims=True)


def _causal_mask(xp, scores, fill=-np.inf):
    """scores with every entry above the diagonal of the last two axes (T, T) set to fill: -inf before a
    softmax keeps each position from attending to later ones; 0 masks a gradient the same way."""
    t = scores.shape[-1]
    device = _device(xp, scores)
    later = xp.arange(t, device=device)[None, :] > xp.arange(t, device=device)[:, None]
    return xp.where(later, xp.asarray(fill, dtype=scores.dtype, device=device), scores)


# erf to float64 accuracy (relative error below 1e-15; tests/test_attention.py checks it against math.erf):
# for |x| <= 1 its Taylor series in x²; for 1 < |x| < 6, 1 - erfc(x) with erfc(x) exp(x²) a polynomial
# in t on [1, 2.5] and on [2.5, 6] (t the interval mapped to [-1, 1]; Chebyshev series computed at 50
# digits, written in powers of t); from 6 on erf(x) is 1 to float64 precision.
_ERF_TAYLOR = (
    1.1283791670955126, -0.37612638903183754, 0.11283791670955126, -0.026866170645131252,
    0.005223977625442188, -0.0008548327023450853, 0.00012055332981789664, -1.492565035840625e-05,
    1.6462114365889248e-06, -1.6365844691234924e-07, 1.4807192815879218e-08, -1.2290555301717928e-09,
    9.422759064650411e-11, -6.7113668551641105e-12, 4.4632242632864775e-13, -2.7835162072109215e-14,
    1.6342614095367152e-15, -9.063970842808673e-17, 4.763348040515068e-18,
)
_ERFCX_LOW = (  # erfc(x) exp(x²) on [1, 2.5], in powers of t = (x - 1.75) / 0.75
    0.2849722347374364, -0.0982322591358639, 0.03136704192398659, -0.009390935492460714,
    0.002659179124193896, -0.0007168914456015594, 0.0001849560783354874, -4.585616724176669e-05,
    1.0962893641234043e-05, -2.534510243293251e-06, 5.680165886224904e-07, -1.2366191598553323e-07,
    2.6200532128047877e-08, -5.410908380625636e-09, 1.0908147919190852e-09, -2.1507013485507301e-10,
    4.146118681647178e-11, -7.715551866957852e-12, 1.4298996795132786e-12, -3.104162929511523e-13,
    5.506855611791358e-14,
)
_ERFCX_HIGH = (  # erfc(x) exp(x²) on [2.5, 6], in powers of t = (x - 4.25) / 1.75
    0.12934527478598792, -0.05065257997557684, 0.019391340463735297, -0.007266954317447898,
    0.0026690037170827856, -0.0009617329805689539, 0.00034031161357331617, -0.00011835417895477999,
    4.048627722743803e-05, -1.3631776041716644e-05, 4.520580258336236e-06, -1.477357889393604e-06,
    4.7606316322881645e-07, -1.5135107489746624e-07, 4.748591429563135e-08, -1.4686832721446569e-08,
    4.4949678922228044e-09, -1.386111985546415e-09, 4.138186975679798e-10, -1.0342841463791621e-10,
    3.046781797241105e-11, -1.6375013208408523e-11, 4.6439513514071766e-12,
)


def _erf(xp, x):
    """erf(x) elementwise without SciPy: one short polynomial per element, chosen by its interval. NumPy
    evaluates each interval's elements only, in place; other libraries evaluate every piece and pick."""
    a = xp.abs(x)
    if xp is _NP and np.ndim(x):
        out = np.ones_like(a)
        near, low, high = a <= 1, (a > 1) & (a < 2.5), (a >= 2.5) & (a < 6)
        out[near] = _erf_near(a[near])
        out[low] = 1 - _erfc_far(np, a[low], _ERFCX_LOW, 1.75, 0.75)
        out[high] = 1 - _erfc_far(np, a[high], _ERFCX_HIGH, 4.25, 1.75)
        return np.copysign(out, x)
    near = _erf_near(xp.clip(a, 0.0, 1.0))
    low = 1 - _erfc_far(xp, xp.clip(a, 1.0, 2.5), _ERFCX_LOW, 1.75, 0.75)
    high = 1 - _erfc_far(xp, xp.clip(a, 2.5, 6.0), _ERFCX_HIGH, 4.25, 1.75)
    far = xp.where(a < 2.5, low, xp.where(a < 6, high, 1.0))
    return xp.sign(x) * xp.where(a <= 1, near, far)


def _erf_near(a):
    """erf(a) for 0 <= a <= 1: a Σ c_n a^(2n)."""
    return a * _horner(a * a, _ERF_TAYLOR)


def _erfc_far(xp, a, coefficients, centre, half_width):
    """erfc(a) on one interval: exp(-a²) times the polynomial of erfc(a) exp(a²) in t."""
    return _horner((a - centre) / half_width, coefficients) * xp.exp(-(a * a))


def _horner(t, coefficients):
    """Σ c_k t^k, in place on a fresh array."""
    total = t * coefficients[-1] + coefficients[-2]
    for c in coefficients[-3::-1]:
        total *= t
        total += c
    return total


def _matmul_rows(xp, a, w):
    """a @ w for a stack a (..., K) and a matrix w (K, M), as one product over all rows of a: (N, T, K)
    is multiplied as (N·T, K), where NumPy's matmul would multiply the N matrices (T, K) one by one."""
    rows = xp.reshape(a, (-1, a.shape[-1])) @ w
    return xp.reshape(rows, (*a.shape[:-1], w.shape[-1]))


def _logdet(xp, x):
    """log det x through slogdet (det itself overflows long before its log does): NaN where det x < 0,
    -inf where it is 0, as torch.logdet."""
    sign, logabsdet = xp.linalg.slogdet(x)
    return xp.where(sign < 0, xp.asarray(np.nan, dtype=logabsdet.dtype), logabsdet)


def _einsum(xp, spec, *operands):
    """einsum with an explicit output ("ij,jk->ik"): the library's own where it has one; otherwise every
    operand laid out on the axes of all the spec's letters (size 1 where it lacks one), multiplied, and
    summed over the letters the output leaves out, with standard functions only."""
    if hasattr(xp, "einsum"):
        return xp.einsum(spec, *operands)
    inputs, output = spec.split("->")
    letters = output + "".join(sorted(set(inputs.replace(",", "")) - set(output)))
    product = None
    for term, x in zip(inputs.split(","), operands):
        order = sorted(range(len(term)), key=lambda k: letters.index(term[k]))
        x = xp.permute_dims(x, tuple(order)) if order else x
        sizes = {term[k]: x.shape[i] for i, k in enumerate(order)}
        x = xp.reshape(x, tuple(sizes.get(c, 1) for c in letters))
        product = x if product is None else product * x
    summed = tuple(range(len(output), len(letters)))
    return xp.sum(product, axis=summed) if summed else product
