"""The floors of docs/architecture.md, enforced: imports go down (or across where allowed), never up.

Every `import` and `from … import` of toto_lens code is read with `ast` (module level and inside
functions alike; `if TYPE_CHECKING:` blocks are skipped, they run only under a type checker). A failure
names the importing file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toto_lens"

# Floor of each module, by its most specific dotted prefix (docs/architecture.md draws the same table).
FLOORS = {
    "toto_lens": 0, "toto_lens._lazy": 0, "toto_lens.errors": 0, "toto_lens.paths": 0, "toto_lens.io": 0,
    "toto_lens.progress": 0, "toto_lens.config": 0,
    "toto_lens.model": 1, "toto_lens.distributed": 1, "toto_lens.data": 1,
    "toto_lens.convert.table": 1, "toto_lens.convert.state": 1,
    "toto_lens.tokenizers": 2,
    "toto_lens.checkpoints": 3,
    "toto_lens.store": 4, "toto_lens.analysis": 4, "toto_lens.figures": 4, "toto_lens.convert": 4,
    "toto_lens.run": 5, "toto_lens.train": 5,
    "toto_lens.studies": 6, "toto_lens.widgets": 6,
    "toto_lens.report": 7,
    "toto_lens.cli": 8,
}  # fmt: skip
# Pairs that may not import each other although the floors would let them: (importer, imported).
FORBIDDEN = [
    ("toto_lens.analysis", "toto_lens.figures"),
    ("toto_lens.analysis", "toto_lens.store"),
    ("toto_lens.figures", "toto_lens.store"),
    ("toto_lens.store", "toto_lens.analysis"),
    ("toto_lens.store", "toto_lens.figures"),
    ("toto_lens.store", "toto_lens.convert"),
    ("toto_lens.run", "toto_lens.train"),
    ("toto_lens.train", "toto_lens.store"),
]
# analysis/ and figures/ know nothing of the model: results in, results out (DESIGN.md).
PURE = ("toto_lens.analysis", "toto_lens.figures")
MODEL_SIDE = ("toto_lens.model", "toto_lens.checkpoints", "toto_lens.run", "toto_lens.train",
              "toto_lens.cli", "toto_lens.convert", "toto_lens.distributed", "toto_lens.tokenizers")  # fmt: skip


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(name: str) -> int:
    best = max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len)
    return FLOORS[best]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def toto_imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) of every toto_lens import in a file."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, id(node) in top) for a in node.names if within(a.name, "toto_lens")]
        elif isinstance(node, ast.ImportFrom) and node.module and within(node.module, "toto_lens"):
            for alias in node.names:  # `from toto_lens import distributed` imports a module
                sub = f"{node.module}.{alias.name}"
                target = sub if (package.parent / (sub.replace(".", "/") + ".py")).is_file() else node.module
                out.append((node.lineno, target, id(node) in top))
    return out


FILES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Every import that breaks a floor rule, as `file:line imports target: why`."""
    broken = []
    for path in sorted(package.rglob("*.py")):
        me = module_name(path, package)
        for line, target, _ in toto_imports(path, package):
            if within(target, me.rsplit(".", 1)[0]) and floor(target) == floor(me):
                continue  # inside one package
            where = f"{path.relative_to(package.parent)}:{line} imports {target}"
            if floor(target) > floor(me):
                broken.append(f"{where}: floor {floor(target)} above its own {floor(me)}")
            for importer, imported in FORBIDDEN:
                if within(me, importer) and within(target, imported):
                    broken.append(f"{where}: {importer} may not import {imported}")
            if within(target, "toto_lens.cli") and not within(me, "toto_lens.cli"):
                broken.append(f"{where}: nothing outside cli/ imports the command line")
            if me.startswith(PURE) and any(within(target, side) for side in MODEL_SIDE):
                broken.append(f"{where}: analysis/ and figures/ take results, not models")
    return broken


def test_imports_go_down_the_floors():
    broken = upward_imports()
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_the_rules_catch_an_upward_import(tmp_path):
    """The checker itself: an analysis that loads a checkpoint, and a model that imports the store."""
    fake = tmp_path / "toto_lens"
    (fake / "analysis").mkdir(parents=True)
    (fake / "analysis" / "__init__.py").write_text("")
    (fake / "analysis" / "curves.py").write_text(
        "def f():\n    from toto_lens.checkpoints import load_checkpoint\n"
    )
    (fake / "model.py").write_text("import toto_lens.store.reader\n")
    broken = "\n".join(upward_imports(fake))
    assert "analysis/curves.py:2 imports toto_lens.checkpoints: floor 3 above its own 4" not in broken
    assert "curves.py:2 imports toto_lens.checkpoints: analysis/ and figures/ take results" in broken, broken
    assert "model.py:1 imports toto_lens.store.reader: floor 4 above its own 1" in broken, broken


def test_the_model_file_imports_only_its_config():
    imported = {target for _, target, _ in toto_imports(PACKAGE / "model.py")}
    assert imported <= {"toto_lens.config"}, f"model.py is architecture only, yet imports {imported}"


def test_no_cycles_among_module_level_imports():
    graph = {module_name(p): {t for _, t, top in toto_imports(p) if top} for p in FILES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_command_functions_stay_thin():
    """cli/: parse → study → print. A command body past ~40 lines has grown logic that belongs below."""
    long = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                body = node.end_lineno - node.body[0].lineno + 1
                if body > 40:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({body} lines)")
    assert not long, f"command functions too long: {long}"
