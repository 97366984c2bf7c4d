"""The statements of a generated module, planned once: `ModuleCode` plans forward() (the outputs) and,
given a backward pass, _gradients() (the outputs, then every gradient), under names from one
`ValueNames`. Each node's NumPy text is made once and shared by both functions, so that both name its
parts alike; cheap views used once are written inside the line that uses them; the repeated parts of
a fused formula are computed once each; backward lines carry their comment.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..diff.forward import TANGENT_OF, interleaved
from ..diff.reverse import Backward
from ..formulas.printing import number_text, numpy_text, sympy_number
from ..formulas.derivatives import placeholder
from ..formulas.renaming import Renaming, renaming
from ..ir import Graph, Node, toposort, use_counts
from ..passes import MAX_REGION
from ..ops import OPS, scalar_expr
from .comments import comment, literal
from .listing import FunctionCode, Listing, Statement
from .loops import loop_lines, loop_results, prepare
from .names import ValueNames

FUSED_FORMULA = "formula"  # the op of a fused chain of elementwise ops: one SymPy formula


class ModuleCode:
    """The lines of one generated module: `forward`, and `gradients` (None without a backward pass)."""

    def __init__(self, graph: Graph, wrt: list[Node], backward: Backward | None, dtype: str,
                 written: Graph | None = None, origins: dict[Node, Node] | None = None) -> None:
        """`written`, `origins`: the graph as the user wrote it, and which of its values each value of
        `graph` stands for (`passes.optimize`): the code then names values as every view does."""
        self.graph, self.wrt, self.backward, self.dtype = graph, wrt, backward, dtype
        self.names = ValueNames(graph, backward, written, origins)
        self.outputs = list(graph.outputs.values())
        self.forward_values = set(graph.nodes())
        self.roots = self.outputs if backward is None else self.outputs + [backward.gradients[x] for x in wrt]
        self.lines_of: dict[Node, list[Statement]] = {}  # node -> the lines computing it (common parts first)
        self._uses = use_counts(self.roots)              # how often the code reads each value
        self._custom_results = {n.inputs[0] for n in toposort(self.roots) if n.op == "custom"}
        # (node, its operands' texts) -> its code, for forward() and gradients() alike (a checkpointed loop's
        # step computed again reads other variables)
        self._texts: dict[tuple, str] = {}
        self._common: dict[tuple, tuple[list[Statement], str]] = {}
        # one compile's formulas by shape (formulas.renaming): sympy.cse's parts, and their code
        self._shapes: dict[tuple, tuple] = {}
        self._printed: dict[tuple, tuple[list[str], str]] = {}
        self._own_texts: dict[tuple, str] = {}
        # (node, args) -> what its formula over its common parts' names is made from, for `formula`
        self._reduced: dict[tuple, tuple] = {}
        # values the code computes as Python numbers (counts of examples, formulas of counts and constants),
        # which the standard's functions refuse: filled in topological order as statements are planned
        self._numbers: dict[Node, bool] = {}
        self._computing: dict[Node, Node] | None = None
        self.forward = self._plan(self.outputs)
        self.gradients = None if backward is None else self._plan(self.roots)

    def listing(self) -> Listing | None:
        """What gradients() computes, for the formulas and `graphcomp grad`; None without a backward pass."""
        if self.gradients is None:
            return None
        return Listing(self.names.variables, self.names.symbols, self.gradients.inlined, dict(self.lines_of),
                       self.gradients.order)

    def _plan(self, roots: list[Node]) -> FunctionCode:
        """The lines of the function computing `roots`."""
        function = FunctionCode(self.names)
        order = interleaved(toposort(roots), self._primal)
        results = loop_results(order)
        prepare(self, order, function)
        for node in order:
            if node.is_leaf or node.op == "scan_result" or node in function.inlined:  # (a loop's results: by its loop)
                continue
            if node.op == "scan":
                lines = loop_lines(self, node, function, results[node])
                (function.forward_lines if node in self.forward_values else function.backward_lines).extend(lines)
                continue
            self._numbers[node] = node.op == "count" or (OPS[node.op].has_formula and all(
                x.op == "const" or self._numbers.get(x, False) for x in node.inputs))
            args = tuple(function.operand(x) for x in node.inputs)
            if OPS[node.op].transparent and node not in self.names:
                function.inlined[node] = literal(args[0])
                continue
            # a fused formula's text is made with its common parts, and only when it has none
            text = None if node.op == FUSED_FORMULA else self._text(node, args)
            if self._inlined(node, args):
                function.inlined[node] = text if text is not None else self._common_parts(node, args, None)[1]
                continue
            self.lines_of[node] = self._lines(node, args, text)
            function.order.append(node)
            if node in self.forward_values:
                function.forward_lines.extend(self.lines_of[node])
            else:
                note = comment(node, self.backward, function)
                function.backward_lines.extend(replace(line, comment=note) for line in self.lines_of[node])
        return function

    def _primal(self, node: Node) -> Node | None:
        """For a tangent of forward mode (gc.jvp), the value it is the tangent of; else None."""
        origin = self.names.origin(node)
        primal = TANGENT_OF.get(node if origin is None else origin)
        if primal is None:
            return None
        if self._computing is None:  # which value of the code stands for each value as written
            self._computing = {written: value for value, written in self.names.origins.items()}
        return self._computing.get(primal, primal)

    def _text(self, node: Node, args: tuple) -> str:
        """The node's code over its operands' texts, made once (forward() and gradients() both emit it)."""
        if (node, args) not in self._texts:
            self._texts[node, args] = _constant_text(node) or OPS[node.op].emit(
                node, tuple(_operand_text(node, a, self.dtype) for a in args))
        return self._texts[node, args]

    def _lines(self, node: Node, args: tuple, text: str | None) -> list[Statement]:
        """The lines that compute a node: the common parts of its formula, then its own."""
        common, text = self._common_parts(node, args, text)
        if self._numbers[node]:  # a line of its own is read by functions too: an array, not an int
            text = f"xp.asarray({text}, dtype=xp.{self.dtype})"
        return common + [Statement(self.names.variable(node), text, computes=(node, args))]

    def _common_parts(self, node: Node, args: tuple, text: str | None) -> tuple[list[Statement], str]:
        """A fused formula's repeated subexpressions, computed once each (sympy.cse): (their lines,
        the formula's own text). Cached per node, so `forward` and `gradients` give them the same names."""
        if node.op != FUSED_FORMULA:
            return [], text
        if (node, args) not in self._common:
            stand_ins = renaming([(k, a) for k, a in enumerate(args) if isinstance(a, str)])
            if stand_ins is None or _constant_text(node) is not None:
                self._common[node, args] = self._parts_of(node, args, lambda a: sp.Symbol(a, real=True))
            else:
                self._common[node, args] = self._parts_once(node, args, stand_ins)
        return self._common[node, args]

    def reads(self, node: Node) -> int:
        """How many times the code reads the value (being returned counts once)."""
        return self._uses.get(node, 0)

    def computes_formula(self, node: Node) -> bool:
        """Whether the node's line computes an elementwise formula on arrays (not Python numbers)."""
        return OPS[node.op].has_formula and not self._numbers.get(node) and _constant_text(node) is None

    def has_parts(self, node: Node, args: tuple) -> bool:
        """Whether the node's line reads common parts of its formula computed before it."""
        self._common_parts(node, args, None)
        return (node, args) in self._reduced

    def is_number(self, node: Node) -> bool:
        """Whether the code computes the value as a Python number (a count of examples, a formula of counts)."""
        return self._numbers.get(node, False)

    def formula(self, node: Node, args: tuple, operand=None) -> sp.Basic | None:
        """The formula a line of an elementwise node computes, over its operands' texts and the names of
        its formula's common parts (which lines before it compute); None for other nodes. `operand(text)`:
        the symbol of an operand, for a formula without common parts (its texts by default)."""
        if not self.computes_formula(node):
            return None
        if not self.has_parts(node, args):
            return _bound_formula(node, args, operand or (lambda a: sp.Symbol(a, real=True)))
        (kept, conditions, reduced), operands, parts = self._reduced[node, args]
        names = {symbol: sp.Symbol(a, real=True) for a, symbol in operands.items()}
        names.update((part, name) for (part, _), name in zip(kept, parts))
        return reduced.xreplace(conditions).xreplace(names)

    def _parts_once(self, node: Node, args: tuple, stand_ins: Renaming) -> tuple[list[Statement], str]:
        """`_parts_of`, done once per formula, numbers and order of names (formulas.renaming): the
        parts found and their code, under stand-ins, are shared by every formula of that shape. Each
        node still names its own parts, in the order the code reads them."""
        operands = {a: stand_ins.symbols[k] for k, a in enumerate(args) if isinstance(a, str)}
        key = (scalar_expr(node), stand_ins.pattern,
               tuple(None if isinstance(a, str) else (type(a), repr(a)) for a in args))
        if key not in self._shapes:
            self._shapes[key] = _cse(_bound_formula(node, args, operands.__getitem__))
        kept, conditions, reduced = self._shapes[key]
        if not kept:
            return [], self._own_text(node, args)
        parts = self._part_names(kept, self._written_parts(node, args, operands.__getitem__))
        self._reduced[node, args] = (self._shapes[key], operands, parts)
        numbers = tuple(k for k, (a, x) in enumerate(zip(args, node.inputs))
                        if isinstance(a, str) and self._numbers.get(x))
        named = renaming([*((("operand", k), a) for k, a in enumerate(args) if isinstance(a, str)),
                          *((("part", j), str(name)) for j, name in enumerate(parts))], split=None)
        if named is None:  # a part named as an operand: printed as it is
            real = {symbol: sp.Symbol(a, real=True) for a, symbol in operands.items()}
            real.update((part, name) for (part, _), name in zip(kept, parts))
            lines, text = self._part_texts(kept, conditions, reduced, real,
                                           {sp.Symbol(args[k], real=True) for k in numbers})
        else:
            printed = (key, named.pattern, numbers)
            if printed not in self._printed:
                by_stand_in = {operands[a]: named.symbols["operand", k]
                               for k, a in enumerate(args) if isinstance(a, str)}
                by_stand_in.update((part, named.symbols["part", j]) for j, (part, _) in enumerate(kept))
                self._printed[printed] = self._part_texts(kept, conditions, reduced, by_stand_in,
                                                          {named.symbols["operand", k] for k in numbers})
            lines, text = self._printed[printed]
            lines, text = [named.named_back(line) for line in lines], named.named_back(text)
        return [Statement(str(name), line) for name, line in zip(parts, lines)], text

    def _own_text(self, node: Node, args: tuple) -> str:
        """`_text` of a fused formula, printed once per formula and order of its operands' texts."""
        if (node, args) not in self._texts:
            named = renaming([(k, literal(a)) for k, a in enumerate(args)], split=None)
            if named is None:
                return self._text(node, args)
            key = (scalar_expr(node), named.pattern)
            if key not in self._own_texts:
                self._own_texts[key] = OPS[node.op].emit(node, tuple(str(named.symbols[k]) for k in range(len(args))))
            self._texts[node, args] = named.named_back(self._own_texts[key])
        return self._texts[node, args]

    def _part_texts(self, kept: list, conditions: dict, reduced: sp.Basic, names: dict,
                    numbers: set) -> tuple[list[str], str]:
        """The code of each part and of the formula, the parts and operands named by `names`; a part
        computed from `numbers` alone (counts of examples) is made an array."""
        texts = []
        for part, formula in kept:
            part_text = numpy_text(formula.xreplace(names))
            if formula.xreplace(names).free_symbols <= numbers:
                numbers.add(names[part])
                part_text = f"xp.asarray({part_text}, dtype=xp.{self.dtype})"
            texts.append(part_text)
        return texts, numpy_text(reduced.xreplace(conditions).xreplace(names))

    def _part_names(self, kept: list, inside: dict) -> list[sp.Symbol]:
        """The name of each part: a value the user's graph has keeps that value's name, others are
        temporaries, given in the order the parts are computed."""
        names, expanded = [], {}
        for part, formula in kept:
            expanded[part] = formula.xreplace(expanded)
            written = inside.get(expanded[part])
            name = self.names.part_of_formula(written) if written is not None else None
            names.append(sp.Symbol(name or self.names.temporary(), real=True))
        return names

    def _parts_of(self, node: Node, args: tuple, operand) -> tuple[list[Statement], str]:
        """`_common_parts` of one node, its operands named `operand(text)`."""
        kept, conditions, reduced = _cse(_bound_formula(node, args, operand))
        if not kept:
            return [], self._text(node, args)
        inside = self._written_parts(node, args, operand)
        names = dict(zip((part for part, _ in kept), self._part_names(kept, inside)))
        self._reduced[node, args] = ((kept, conditions, reduced), {}, list(names.values()))
        numbers = {sp.Symbol(a, real=True) for a, x in zip(args, node.inputs) if isinstance(a, str) and self._numbers.get(x)}
        lines, text = self._part_texts(kept, conditions, reduced, names, numbers)
        return [Statement(str(names[part]), line) for (part, _), line in zip(kept, lines)], text

    def _written_parts(self, node: Node, args: tuple, operand) -> dict[sp.Basic, Node]:
        """{formula over the operands' symbols `operand(text)`: value of the graph as written} for the
        values a fused formula took in, found by walking back from the value it stands for to its operands."""
        root = self.names.origin(node)
        if root is None:
            return {}
        stops = {_or(self.names.origin(x), x): sympy_number(a) if not isinstance(a, str) else operand(a)
                 for x, a in zip(node.inputs, args)}
        formulas: dict[Node, sp.Basic | None] = {}
        stack = [(root, False)]
        while stack and len(formulas) <= 4 * MAX_REGION:  # a region is small: a long walk has left it
            value, ready = stack.pop()
            if value in formulas:
                continue
            if value in stops or value.op == "const":
                formulas[value] = stops[value] if value in stops else sympy_number(value.attr("value"))
            elif value.is_leaf or not OPS[value.op].has_formula:
                formulas[value] = None
            elif not ready:
                stack += [(value, True)] + [(x, False) for x in value.inputs]
            elif all(formulas.get(x) is not None for x in value.inputs):
                formulas[value] = scalar_expr(value).xreplace({placeholder(i): formulas[x] for i, x in enumerate(value.inputs)})
            else:
                formulas[value] = None
        return {formula: value for value, formula in formulas.items()
                if formula is not None and value is not root and value not in stops and value.op != "const"}

    def _inlined(self, node: Node, args: tuple) -> bool:
        """A cheap view used once, with no name of its own to show: written inside its user's line. So is
        the forward of a custom op (ops/custom.py) that nothing else reads: `h = xp.sign(t1)`, not
        `t2 = xp.sign(t1)` and `h = t2` (a fused formula only when it has no common parts).

        The same decision holds in `forward` and `gradients`, so temporaries keep one numbering.
        """
        has_adjoint = self.backward is not None and node in self.backward.adjoints
        if self._uses.get(node) != 1 or has_adjoint or node in self.names:
            return False
        if node not in self._custom_results:
            return OPS[node.op].inlined
        return node.op != FUSED_FORMULA or not self._common_parts(node, args, None)[0]


def _or(node: Node | None, default: Node) -> Node:
    return default if node is None else node


def _bound_formula(node: Node, args: tuple, operand) -> sp.Basic:
    """A fused formula over its operands: numbers as numbers, names as the symbols `operand(text)`."""
    return scalar_expr(node).xreplace({placeholder(i): sympy_number(a) if not isinstance(a, str) else operand(a)
                                       for i, a in enumerate(args)})


def _cse(bound: sp.Basic) -> tuple[list, dict, sp.Basic]:
    """sympy.cse of a formula: (parts kept, {condition's symbol: condition}, the formula over them)."""
    replacements, (reduced,) = sp.cse(bound, symbols=sp.numbered_symbols("_part", real=True), order="none")
    kept, conditions = _without_conditions(replacements)
    return kept, conditions, reduced


def _without_conditions(replacements: list) -> tuple[list, dict]:
    """sympy.cse's parts without the conditions, which stay inside the formula that tests them (a mask
    takes its dtype from a number): (kept parts, {condition's symbol: condition})."""
    conditions: dict[sp.Symbol, sp.Basic] = {}
    kept = []
    for symbol, part in replacements:
        part = part.xreplace(conditions)
        if isinstance(part, sp.logic.boolalg.Boolean):
            conditions[symbol] = part
        else:
            kept.append((symbol, part))
    return kept, conditions


def _constant_text(node: Node) -> str | None:
    """An elementwise op of numbers alone (exp(1) as the user wrote it) as its value, computed here."""
    if not OPS[node.op].has_formula or not node.inputs or any(x.op != "const" for x in node.inputs):
        return None
    return numpy_text(scalar_expr(node).xreplace({placeholder(i): sympy_number(x.attr("value"))
                                                  for i, x in enumerate(node.inputs)}))


def _operand_text(node: Node, arg: str | int | float, dtype: str) -> str:
    """A variable name, or a number; a number read by an array method (reshape, .T, ...) is an array."""
    if isinstance(arg, str) or OPS[node.op].has_formula or OPS[node.op].number_operands:
        return literal(arg)
    return f"xp.asarray({number_text(arg)}, dtype=xp.{dtype})"
