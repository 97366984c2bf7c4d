"""Specs of 10,000 nodes, in any order: read without recursion, in time linear in their size, and
compiled. `chain_spec` and `wide_spec` also serve benchmarks/bench_compile.py."""
import numpy as np

import graphcomp as gc
from graphcomp.frontend.spec import build, load


def chain_spec(entries: int, reverse: bool = False, steps: tuple[str, ...] = ("{h} * 1.01 + w", "tanh({h}) * 0.9 + 0.1")) -> str:
    """A TOML spec whose [nodes] are a chain h1, h2, ..., each computed from the one before by the
    `steps` in turn (`{h}` stands for the previous value; the first reads the input x); with `reverse`
    the entries are written last first, so each refers to the one written after it."""
    lines = [f'h{k} = "{steps[(k - 1) % len(steps)].format(h="x" if k == 1 else f"h{k - 1}")}"'
             for k in range(1, entries + 1)]
    if reverse:
        lines.reverse()
    return "\n".join(['[inputs]', 'x = ["N", 4]', '[params]', 'w = [4]', '[nodes]', *lines,
                      '[outputs]', f'loss = "sum(h{entries})"']) + "\n"


def wide_spec(terms: int, term: str = "tanh(x * {k} + w)", group: int = 100) -> str:
    """A TOML spec of `terms` independent nodes t1, t2, ... (`term` with its number k), summed in
    groups of `group` (a flat sum of thousands of terms is deeper than Python's parser goes), then
    the group sums all together."""
    lines = [f't{k} = "{term.format(k=k)}"' for k in range(1, terms + 1)]
    sums = [f"s{j}" for j in range(0, terms, group)]
    lines += [f's{j} = "' + " + ".join(f"t{k}" for k in range(j + 1, min(j + group, terms) + 1)) + '"'
              for j in range(0, terms, group)]
    return "\n".join(['[inputs]', 'x = ["N", 4]', '[params]', 'w = [4]', '[nodes]', *lines,
                      '[outputs]', f'loss = "sum({" + ".join(sums)})"']) + "\n"


def test_a_10000_node_chain_written_last_first_and_a_10000_term_sum_are_read_and_compiled(tmp_path):
    """Each entry of the chain refers to the one written after it (this once raised RecursionError);
    the wide spec's gradient of x sums 10,000 paths. Compiled as written to keep the test short
    (benchmarks/bench_compile.py times both, with simplification too)."""
    chain = tmp_path / "chain.toml"
    chain.write_text(chain_spec(10000, reverse=True, steps=("{h} + w",)))
    wide = tmp_path / "wide.toml"
    wide.write_text(wide_spec(10000, term="x + {k}"))
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=4)

    s = load(chain)
    assert len(s.graph.labels) == 10000
    m = gc.compile(s.graph, loss=s.loss, simplify=False).load()
    outputs, grads = m.gradients(x=x, w=w)
    assert np.isclose(outputs["loss"], np.sum(x) + 3 * 10000 * np.sum(w))
    assert np.allclose(grads["w"], 3 * 10000)

    s = load(wide)
    assert len(s.graph.labels) == 10000 + 100
    m = gc.compile(s.graph, loss=s.loss, wrt=["x"], simplify=False).load()
    outputs, grads = m.gradients(x=x, w=w)
    assert np.isclose(outputs["loss"], 10000 * np.sum(x) + x.size * 10000 * 10001 / 2)
    assert np.allclose(grads["x"], 10000)


def test_the_generators_write_the_specs_they_describe():
    s = build(__import__("tomllib").loads(chain_spec(3, reverse=True)), "chain.toml")
    names = {name: node for node, name in s.graph.labels.items()}
    assert list(names) == ["h1", "h2", "h3"]  # built in the order they use each other
    assert names["h3"].inputs[0].inputs[0] is names["h2"]
    s = build(__import__("tomllib").loads(wide_spec(250, group=100)), "wide.toml")
    assert sorted(name for name in s.graph.labels.values() if name.startswith("s")) == ["s0", "s100", "s200"]
