"""A character-level language model after Bengio et al. (2003): the next letter of a first name from the
three before it, trained by the generated module and then asked for ten new names.

Each letter is an id in a vocabulary of 27 ('.' is 0 and marks a name's start and end, 'a'..'z' are
1..26); a name such as "emma" gives five examples, the contexts "...", "..e", ".em", "emm", "mma" and the
letters that follow them, "e", "m", "m", "a", ".". The model: an embedding of each id in 10 dimensions,
the three embeddings side by side (30 numbers), a hidden layer of 200 with batch normalisation and tanh,
and the logits of the 27 letters (gc.embedding and gc.linear, PyTorch's layouts). The names (6,824, from
examples/data/names.txt, made by examples/data/make_names.py) are split 90/10 into training and
validation names. `train` keeps batch norm's running mean and variance, with which `forward` normalises:
sampling runs the trained module's `forward` on a batch of one context at a time in a NumPy loop, drawing
each letter from the softmax of the logits, until it draws '.'.
Run: python examples/bengio_lm.py [output directory]
"""
import sys
from pathlib import Path

import numpy as np

import graphcomp as gc
from example_data import ALPHABET, VOCAB, read_names, split, train_and_sample

CONTEXT, EMBED, HIDDEN = 3, 10, 200
# How main() trains, as the generated train()'s settings (also the defaults of the module's command line):
# Adam, its rate falling along a cosine over the epochs.
training = {"optimizer": "adam", "lr": 0.003, "schedule": "cosine", "batch_size": 32}
loss = "loss"  # what `graphcomp compile examples/bengio_lm.py` differentiates


def examples(names: list[str], context: int = CONTEXT) -> dict:
    """{"context": (N, 3) int64 ids of the letters before each position, "next": (N,) the letter there}."""
    contexts, following = [], []
    for name in names:
        window = [0] * context
        for letter in [ALPHABET.index(c) for c in name] + [0]:
            contexts.append(window)
            following.append(letter)
            window = window[1:] + [letter]
    return {"context": np.array(contexts, dtype=np.int64), "next": np.array(following, dtype=np.int64)}


def build(context: int = CONTEXT, embed: int = EMBED, hidden: int = HIDDEN) -> gc.Graph:
    g = gc.Graph("bengio_lm")
    ids = g.input("context", shape=(None, context), dtype="int64")
    following = g.input("next", shape=(None,), dtype="int64")
    e = gc.embedding(g, ids, VOCAB, embed, name="C")  # (N, 3, 10)
    x = g.let("x", gc.reshape(e, (None, context * embed)))  # the three embeddings side by side
    a = g.let("a", gc.linear(g, x, hidden, name="hidden", bias=False))  # batch norm brings its own shift
    gamma, beta = g.param("bn_weight", (hidden,), init="ones"), g.param("bn_bias", (hidden,), init="zeros")
    h = g.let("h", gc.tanh(gc.batch_norm(a, gamma, beta, name="bn")))  # running statistics bn_running_mean, _var
    logits = g.output("logits", gc.linear(g, h, VOCAB, name="out"))
    g.output("loss", gc.softmax_cross_entropy(logits, following))
    return g


def initial_params(m, seed: int = 0) -> dict:
    """The module's init_params(seed) (batch norm's scale starts at 1 and its shift at 0), with the output
    layer's weight drawn 10 times smaller and its bias 0, so that the first predictions are close to uniform."""
    params = m.init_params(seed=seed)
    params["out_weight"] = params["out_weight"] * 0.1
    params["out_bias"] = np.zeros_like(params["out_bias"])
    return params


def sample(m, params: dict, count: int = 10, seed: int = 0, context: int = CONTEXT, longest: int = 30) -> list[str]:
    """`count` names drawn letter by letter from the trained module: forward() on the last `context` ids."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        window, letters = [0] * context, []
        while len(letters) < longest:
            logits = m.forward(context=np.array([window], dtype=np.int64), **params)["logits"][0]
            p = np.exp(logits - logits.max())
            letter = int(rng.choice(VOCAB, p=p / p.sum()))
            if letter == 0:
                break
            letters.append(letter)
            window = window[1:] + [letter]
        found.append("".join(ALPHABET[i] for i in letters))
    return found


def main(out_dir: Path, epochs: int = 20, names: list[str] | None = None, every: int = 2, **settings) -> dict:
    """Compile, train with the generated `train` (the settings `training`, with `settings` over them), print
    the losses and ten sampled names; return the figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = gc.compile(build(), loss="loss", training=training)
    model.save(out_dir / "bengio_lm_model.py")
    m = model.load()
    train_names, val_names = split(read_names() if names is None else names)
    data, held = examples(train_names), examples(val_names)
    params = initial_params(m)
    start = m.evaluate(params, data)["loss"]
    print(f"{len(train_names)} training names ({len(data['next'])} examples), {len(val_names)} validation names; "
          f"loss before training {start:.4f} (uniform guessing: {np.log(VOCAB):.4f})")
    return train_and_sample(m, params, data, held, out_dir / "bengio_lm_params.npz", start=start, epochs=epochs,
                            every=every, settings=training | settings, sample=sample, final="final loss")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out"))
