"""The running example of Baydin et al., "Automatic differentiation in machine learning: a survey"
(JMLR 2018): f(x1, x2) = ln x1 + x1 x2 - sin x2, differentiated at x1 = 2, x2 = 5 in forward mode (the
survey's Table 2: each value followed by its tangent along x1) and in reverse mode (its Table 3).

Run: python examples/ad_survey.py
It prints the forward-mode trace, the gradient formulas and the reverse sweep with its numbers
(examples/ad_survey.toml is the same graph as a spec file: `graphcomp grad examples/ad_survey.toml
--at x1=2,x2=5 --tangent x1=1,x2=0` and `graphcomp grad examples/ad_survey.toml --at x1=2,x2=5`).
"""
import graphcomp as gc


def build() -> gc.Graph:
    """The survey's evaluation trace: v1 = ln x1, v2 = x1 x2, v3 = sin x2, v4 = v1 + v2, y = v4 - v3."""
    g = gc.Graph("ad_survey")
    x1, x2 = g.input("x1"), g.input("x2")
    v1 = g.let("v1", gc.log(x1))
    v2 = g.let("v2", x1 * x2)
    v3 = g.let("v3", gc.sin(x2))
    v4 = g.let("v4", v1 + v2)
    g.output("y", v4 - v3)
    return g


def build_forward() -> gc.Graph:
    """The same trace with the tangents of forward mode: inputs dot_x1, dot_x2 (the direction) and the
    output dot_y, the directional derivative of y, computed by gc.jvp (v̇1 = ẋ1/x1, v̇2 = ẋ1 x2 + x1 ẋ2, ...)."""
    g = build()
    x1, x2 = g.inputs["x1"], g.inputs["x2"]
    g.output("dot_y", gc.jvp(g.outputs["y"], [x1, x2], [g.input("dot_x1"), g.input("dot_x2")]))
    return g


def main() -> dict:
    forward = gc.compile(build_forward(), loss="y").load().forward(x1=2.0, x2=5.0, dot_x1=1.0, dot_x2=0.0)
    print(f"forward mode along x1: y = {forward['y']:.4f}, dot_y = {forward['dot_y']:.4f}")
    print(gc.compile(build()).tangent_derivation({"x1": 1.0, "x2": 0.0}, at={"x1": 2.0, "x2": 5.0}).text())
    model = gc.compile(build())
    for name, formula in model.gradient_text().items():
        print(f"# gradient of y with respect to {name}\n{formula}")
    print(model.derivation(at={"x1": 2.0, "x2": 5.0}).text())
    outputs, grads = model.load().gradients(x1=2.0, x2=5.0)
    print(f"y = {outputs['y']:.4f}, dy/dx1 = {grads['x1']:.4f}, dy/dx2 = {grads['x2']:.4f}")
    return grads


if __name__ == "__main__":
    main()
