"""The package's layering, read from the source with ``ast`` (nothing is imported).

- TransformerLens is imported only inside ``rhlens/adapter``.
- Outside the adapter no module touches TransformerLens's module layout (``model.blocks``,
  ``W_Q`` ..., ``unembed``, ``ln_final``, ``stop_at_layer=``) or spells hook names in code
  (``"blocks.3.attn.hook_z"``); documentation strings may mention them.
- The import graph of ``rhlens`` modules, function-local imports included, has no cycle, and every
  import points down (or sideways) the layer table ``LAYERS`` (README's "Layout" table).

Every remaining exception is listed in ``ALLOWED`` with the reason it is still there; an entry that
no longer matches anything fails too, so the list only shrinks.
"""

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "rhlens"
ADAPTER = "rhlens.adapter"

# TransformerLens module-layout attributes (per-head weights, blocks, final norm, unembedding).
LAYOUT_ATTRS = {"blocks", "W_Q", "W_K", "W_V", "W_O", "_W_K", "_W_V", "unembed", "ln_final", "W_U", "embed", "W_E"}
LAYOUT_KEYWORDS = {"stop_at_layer", "start_at_layer"}
HOOK_STRING = re.compile(r"(^|[^\w])blocks\.|\bhook_(z|pattern|q|k|v|rot_q|rot_k|attn_scores|result|resid_\w+|attn_out|mlp_out|embed)\b")

# Bottom to top; a module may import its own layer or a lower one. README's "Layout" table says the same.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["rhlens.version", "rhlens.dtypes", "rhlens._lazy", "rhlens.files", "rhlens.progress", "rhlens.heads", "rhlens.stats"]),
    ("tasks and figures", ["rhlens.tasks", "rhlens.plot"]),
    ("adapter", ["rhlens.adapter"]),
    ("models", ["rhlens.models", "rhlens.stopping", "rhlens.encoding"]),
    ("run engine", ["rhlens.engine", "rhlens.decoding", "rhlens.evaluation", "rhlens.scoring", "rhlens.interventions"]),
    ("training", ["rhlens.training", "rhlens.distributed_eval"]),
    ("tools", ["rhlens.tools"]),
    ("command line", ["rhlens.cli"]),
    ("public API", ["rhlens"]),
]

# (module, what) -> why it is still allowed.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES: dict[str, ast.Module] = {name: ast.parse(p.read_text(encoding="utf-8"), str(p)) for name, p in MODULES.items()}


def _docstring_ids(tree: ast.AST) -> set[int]:
    """ids of string constants that are documentation (bare string statements)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def _type_checking_ids(tree: ast.AST) -> set[int]:
    """ids of import statements inside ``if TYPE_CHECKING:`` (never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _findings(name: str, tree: ast.AST) -> set[str]:
    docs = _docstring_ids(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(f"import {a.name}" for a in node.names if a.name.split(".")[0] == "transformer_lens")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "transformer_lens":
            found.add(f"import {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in LAYOUT_ATTRS:
            found.add(f"attribute .{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in LAYOUT_KEYWORDS:
            found.add(f"keyword {node.arg}=")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if HOOK_STRING.search(node.value):
                found.add(f"hook-name string {node.value!r}")
    return found


def _all_findings() -> dict[tuple[str, str], int]:
    return {(name, what): 1 for name, tree in TREES.items() if not name.startswith(ADAPTER) for what in _findings(name, tree)}


def test_transformer_lens_internals_stay_in_the_adapter():
    found = _all_findings()
    unexplained = sorted(f"{m}: {w}" for (m, w) in found if (m, w) not in ALLOWED)
    assert not unexplained, "TransformerLens internals outside rhlens/adapter (route them through the adapter):\n" + "\n".join(unexplained)


def test_allow_list_has_no_stale_entries():
    found = _all_findings()
    stale = sorted(f"{m}: {w}" for (m, w) in ALLOWED if (m, w) not in found)
    assert not stale, "ALLOWED entries that no longer occur (remove them):\n" + "\n".join(stale)


def test_the_checks_catch_what_they_look_for():
    code = 'import transformer_lens\nx = model.blocks[0].attn.W_Q\ny = model(t, stop_at_layer=2)\nh = "blocks.1.attn.hook_z"\n'
    assert _findings("rhlens.example", ast.parse('"""Docs may say blocks.0.attn.hook_z."""\n')) == set()
    assert _findings("rhlens.example", ast.parse(code)) == {
        "import transformer_lens",
        "attribute .blocks",
        "attribute .W_Q",
        "keyword stop_at_layer=",
        "hook-name string 'blocks.1.attn.hook_z'",
    }


def _resolve(name: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = name.split(".")
    is_package = MODULES[name].name == "__init__.py"
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, tree in TREES.items():
        skip = _type_checking_ids(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(name, node)
                # ``from pkg import submodule`` imports the submodule.
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
            for target in targets:
                if target in MODULES and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_import_graph_has_no_cycle_even_through_function_local_imports():
    cycle = _cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["rhlens.models.hf.loader", "rhlens.training.loop", "rhlens.training.lora", "rhlens.training.loss"])
def test_rooms_rebuilt_for_issue_15_import_the_adapter(module):
    assert any(t.startswith(ADAPTER) for t in _import_graph()[module])


def test_public_names_are_visible_to_type_checkers():
    """``rhlens/__init__.py`` imports every ``_EXPORTS`` name under ``if TYPE_CHECKING:`` from the
    module the lazy map names, so a type checker sees exactly the public API."""
    tree = TREES["rhlens"]
    exports = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_EXPORTS"
    )
    seen = {
        alias.asname or alias.name: stmt.module
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for stmt in node.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    assert seen == exports


def _layer(module: str) -> int:
    """Index in ``LAYERS`` of the longest prefix naming ``module``'s layer."""
    best = max(
        ((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
         if module == prefix or module.startswith(prefix + ".")),
        default=None,
    )
    assert best is not None, f"{module} is in no layer of LAYERS: add it to the table (and to README's)"
    return best[1]


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, targets in graph.items() for b in targets if _layer(b) > _layer(a)
    )


def test_every_module_has_a_layer():
    for name in MODULES:
        _layer(name)


def test_imports_point_down_the_layers_even_function_local_ones():
    upward = _upward_imports(_import_graph())
    assert not upward, "imports that point up the layer table:\n" + "\n".join(upward)


def test_the_layer_check_finds_an_upward_import():
    assert _upward_imports({"rhlens.tasks.example": {"rhlens.engine"}}) == [
        "rhlens.tasks.example (tasks and figures) imports rhlens.engine (run engine)"
    ]
    assert _upward_imports({"rhlens.engine": {"rhlens.tasks.example"}}) == []


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80  # code lines: a function's docstring (its examples) does not count


def _function_code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_module_over_400_lines():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"


def test_no_function_over_80_lines():
    long = {
        f"{name}.{node.name} (line {node.lineno})": n
        for name, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := _function_code_lines(node)) > MAX_FUNCTION_LINES
    }
    assert not long, f"functions over {MAX_FUNCTION_LINES} code lines (split them): {long}"


def test_the_size_checks_count_code_not_docstrings():
    tree = ast.parse('def f():\n    """Doc\n    >>> f()\n    """\n    return 1\n')
    assert _function_code_lines(tree.body[0]) == 2


def test_every_adapter_export_is_used_outside_the_adapter():
    """The adapter's door lists what the rest of rhlens (or its tests) calls, nothing more."""
    exports = next(
        ast.literal_eval(node.value) for node in TREES[ADAPTER].body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__"
    )
    outside = [p for name, p in MODULES.items() if not name.startswith(ADAPTER)]
    outside += sorted((ROOT.parent / "tests").rglob("*.py"))
    text = "\n".join(p.read_text(encoding="utf-8") for p in outside)
    unused = [name for name in exports if not re.search(rf"\b{re.escape(name)}\b", text)]
    assert not unused, f"rhlens.adapter exports names nothing outside it uses (drop them from __all__): {unused}"
