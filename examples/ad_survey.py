"""The running example of Baydin et al., "Automatic differentiation in machine learning: a survey"
(JMLR 2018): f(x1, x2) = ln x1 + x1 x2 - sin x2, differentiated in reverse mode at x1 = 2, x2 = 5.

Run: python examples/ad_survey.py
It prints the gradient formulas and the reverse sweep with its numbers (examples/ad_survey.toml is
the same graph as a spec file: `graphcomp grad examples/ad_survey.toml --at x1=2,x2=5`).
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


def main() -> dict:
    model = gc.compile(build())
    for name, formula in model.gradient_text().items():
        print(f"{name} = {formula}")
    print(model.derivation(at={"x1": 2.0, "x2": 5.0}).text())
    outputs, grads = model.load().gradients(x1=2.0, x2=5.0)
    print(f"y = {outputs['y']:.4f}, dy/dx1 = {grads['x1']:.4f}, dy/dx2 = {grads['x2']:.4f}")
    return grads


if __name__ == "__main__":
    main()
