"""A tiny GPT on first names: two transformer blocks trained by the generated module, then sampled.

The letters of the names are ids in a vocabulary of 27 ('.' is 0, 'a'..'z' are 1..26). The training names
(examples/data/names.txt, 90 % of them; the other 10 % score the model) are shuffled and written one after
another, each after a '.', into one stream; each example is the 16 ids from the '.' before a name on
(`ids`), and the same 16 moved one letter on (`targets`): the next letter at every position, scored by
the cross-entropy averaged over the positions.

The model, GPT-2's layout at a small size: token and position embeddings (d = 64, context 16), dropout,
then two pre-layer-norm blocks, each x + proj(attention(ln(x))) and x + mlp(ln(x)), the attention causal
with 2 heads of 32 (split by gc.reshape and gc.transpose at the fixed context of 16), the MLP 64 -> 256
-> 64 with GELU, dropout after each; a last layer norm, and the logits read off the token embedding
itself (weight tying: logits = h Eᵀ, E the embedding table, which gets the gradients of both uses).
Training: the generated `train` with AdamW (decoupled weight decay 0.01), gradients clipped to a global
norm of 1, a linear warm-up then a cosine schedule per step; dropout is on in training only. Sampling
runs the trained module's `forward` in a NumPy loop: the letters so far at the first positions (the
causal mask keeps the positions after them from mattering), the next letter drawn from the softmax at
the last of them, until '.'.
Run: python examples/tiny_gpt.py [output directory]
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from example_data import ALPHABET, VOCAB, read_names, split, train_and_sample

CONTEXT, WIDTH, HEADS, LAYERS, DROPOUT = 16, 64, 2, 2, 0.1
# How main() trains, as the generated train()'s settings (also the defaults of the module's command line):
# AdamW (decoupled weight decay 0.01), gradients clipped to a global norm of 1, the rate rising over the
# first 100 steps, then falling along a cosine over the rest.
training = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.01, "clip": 1.0, "warmup": 100, "schedule": "cosine",
            "batch_size": 32}
loss = "loss"  # what `graphcomp compile examples/tiny_gpt.py` differentiates


def examples(names: list[str], context: int = CONTEXT) -> dict:
    """{"ids": (N, 16) int64, "targets": (N, 16) int64}: one example per name, the 16 ids of the stream
    from the '.' before it, and the 16 after each of them."""
    stream, starts = [], []
    for name in names + names[:context]:  # the last names' windows run on into the first ones
        starts.append(len(stream))
        stream += [0] + [ALPHABET.index(c) for c in name]
    stream = np.array(stream + [0] * (context + 1), dtype=np.int64)
    windows = np.array(starts[:len(names)])[:, None] + np.arange(context + 1)
    return {"ids": stream[windows[:, :-1]], "targets": stream[windows[:, 1:]]}


def layer_norm(g: gc.Graph, x, name: str):
    """PyTorch's nn.LayerNorm over the last axis: params <name>_weight (starting at 1) and <name>_bias (at 0)."""
    width = x.shape[-1]
    weight, bias = g.param(f"{name}_weight", (width,), init="ones"), g.param(f"{name}_bias", (width,), init="zeros")
    return gc.layer_norm(x, weight, bias)


def block(g: gc.Graph, x, k: int, context: int, width: int, heads: int, dropout: float):
    """One pre-layer-norm transformer block on x (N, T, d): causal self-attention, then the MLP."""
    size = width // heads
    qkv = gc.linear(g, layer_norm(g, x, f"h{k}_ln1"), 3 * width, name=f"h{k}_attn")  # (N, T, 3d): q, k, v

    def heads_of(part: int):  # (N, T, d) -> (N, H, T, d/H)
        return gc.transpose(gc.reshape(qkv[:, :, part * width:(part + 1) * width], (None, context, heads, size)),
                            (0, 2, 1, 3))
    y = gc.attention(heads_of(0), heads_of(1), heads_of(2), causal=True)  # (N, H, T, d/H)
    y = gc.reshape(gc.transpose(y, (0, 2, 1, 3)), (None, context, width))  # the heads side by side again
    x = g.let(f"x{k}a", x + gc.dropout(gc.linear(g, y, width, name=f"h{k}_proj"), dropout))
    hidden = gc.gelu(gc.linear(g, layer_norm(g, x, f"h{k}_ln2"), 4 * width, name=f"h{k}_fc"))  # GPT-2's tanh form
    return g.let(f"x{k}b", x + gc.dropout(gc.linear(g, hidden, width, name=f"h{k}_fc2"), dropout))


def build(context: int = CONTEXT, width: int = WIDTH, heads: int = HEADS, layers: int = LAYERS,
          dropout: float = DROPOUT) -> gc.Graph:
    g = gc.Graph("tiny_gpt")
    ids = g.input("ids", shape=(None, context), dtype="int64")
    targets = g.input("targets", shape=(None, context), dtype="int64")
    tokens = g.param("wte", (VOCAB, width), init="normal")  # the token embedding, also the output layer
    positions = g.param("wpe", (context, width), init="normal")
    x = g.let("x0", gc.dropout(gc.take(tokens, ids) + positions, dropout))  # (N, T, d)
    for k in range(layers):
        x = block(g, x, k, context, width, heads, dropout)
    h = g.let("h", layer_norm(g, x, "ln_f"))
    logits = g.output("logits", h @ gc.transpose(tokens))  # weight tying: (N, T, d) @ (d, V)
    g.output("loss", gc.softmax_cross_entropy(logits, targets))
    return g


def initial_params(m, seed: int = 0) -> dict:
    """The module's init_params(seed): embeddings N(0, 0.01²), linear layers PyTorch's U(-1/√in, 1/√in),
    layer-norm scales 1 and shifts 0."""
    return m.init_params(seed=seed)


def sample(m, params: dict, count: int = 10, seed: int = 0, context: int = CONTEXT, longest: int = 30) -> list[str]:
    """`count` names drawn letter by letter from the trained module's forward() (dropout off)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        ids = [0]
        while len(ids) <= longest:
            window = ids[-context:]
            row = np.zeros((1, context), dtype=np.int64)
            row[0, :len(window)] = window  # the positions after the window cannot change its logits
            logits = m.forward(ids=row, **params)["logits"][0, len(window) - 1]
            p = np.exp(logits - logits.max())
            letter = int(rng.choice(VOCAB, p=p / p.sum()))
            if letter == 0:
                break
            ids.append(letter)
        found.append("".join(ALPHABET[i] for i in ids[1:]))
    return found


def main(out_dir: Path, epochs: int = 30, names: list[str] | None = None, every: int = 5, **settings) -> dict:
    """Compile, train with the generated `train` (the settings `training`, with `settings` over them), print
    the losses and ten sampled names; return the figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss", training=training)
    model.save(out_dir / "tiny_gpt_model.py")
    m = model.load()
    train_names, val_names = split(read_names() if names is None else names)
    data, held = examples(train_names), examples(val_names)
    params = initial_params(m)
    start = m.evaluate(params, data)["loss"]
    print(f"{len(train_names)} training names, {len(val_names)} validation names, {len(data['ids'])} examples of "
          f"{CONTEXT} positions; loss before training {start:.4f} (uniform guessing: {np.log(VOCAB):.4f})")
    return train_and_sample(m, params, data, held, out_dir / "tiny_gpt_params.npz", start=start, epochs=epochs,
                            every=every, settings=training | settings, sample=sample, final="final loss (dropout off)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
