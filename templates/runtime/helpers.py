"""The functions the generated code of some ops calls (convolution, pooling, dropout, logsumexp, σ).
Each is copied into a module only when one of its lines calls it, with the helpers it calls in turn."""
import numpy as np

from ._model import _CHECKED_LINES, DTYPE
from .arrays import _NP


def _sigmoid(xp, x):
    """σ(x) = 1 / (1 + e^(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows. With NumPy, one
    new array updated in place: each fresh large array costs page faults (4x the time at 256x512)."""
    if xp is not _NP or not np.ndim(x):
        return 0.5 * (xp.tanh(0.5 * x) + 1)
    out = np.multiply(x, 0.5)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


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
