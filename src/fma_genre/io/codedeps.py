"""Which package modules a piece of code runs: its package-internal import closure.

The workflow lists the closure of each rule's script as the rule's code inputs, so that editing
any module that can change a stage's result reruns that stage, and editing a module it never
imports does not. Training keys its resume state by the closure's content. Imports are read with
`ast`, not executed, so planning the DAG imports nothing heavy; imports inside functions count
too, since the code can run them.

Every import form counts, as Python runs it: `import fma_genre.data.download`, `from
fma_genre.data import download` (a module of a package), `from fma_genre.data.download import
x` and relative imports inside the package; importing a module also runs the `__init__.py` of
each package above it, which counts when it holds code besides its docstring. An import of a
module that does not exist, or a relative import beyond the package, stops with an error instead
of being dropped (`from package import name` may name what its `__init__.py` defines, and counts
that file). `io/logs.py` is left
out (see RESULT_NEUTRAL).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

PACKAGE = "fma_genre"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Modules that cannot change any result: `logs` only routes a script's stderr to its log file.
# Left out, so that a logging tweak does not rerun the whole DAG.
RESULT_NEUTRAL = {f"{PACKAGE}.io.logs"}


class UnknownModule(ImportError):
    """Code imports a package module that does not exist: the closure would be incomplete."""


def module_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module or package `name` (`fma_genre.x.y`): x/y.py or x/y/__init__.py; None
    when it is neither."""
    base = Path(package_dir).joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str | None:
    """The dotted name of a file inside `package_dir` (None for a file outside it)."""
    try:
        parts = Path(path).resolve().relative_to(Path(package_dir).resolve()).with_suffix("").parts
    except ValueError:
        return None
    return ".".join((PACKAGE, *parts[: -1 if parts[-1] == "__init__" else None]))


def imported_package_modules(source: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Names of the package modules (`fma_genre.x.y`) in `package_dir` that a Python file runs
    by its imports: each module imported, and each package above it whose `__init__.py` holds
    code."""
    imported, _ = _parse(str(source), os.stat(source).st_mtime_ns, Path(package_dir))
    return {name for name in imported if _holds_code(module_path(name, package_dir), Path(package_dir))}


@functools.cache
def _parse(source: str, mtime_ns: int, package_dir: Path) -> tuple[frozenset[str], bool]:
    """(the modules and packages `source` imports, with the packages above each; whether it
    holds code besides a docstring). Parsed once per file version: planning the DAG asks for
    every rule's closure."""
    tree = ast.parse(Path(source).read_text(), filename=source)
    own_name = module_name(Path(source), package_dir)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if _in_package(alias.name)}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_base(node, own_name, source)
            if base is None or not _in_package(base):
                continue
            names.add(base)
            # `from package import name`: a module of the package, or a name its __init__ defines.
            names |= {f"{base}.{a.name}" for a in node.names if module_path(f"{base}.{a.name}", package_dir)}
    for name in sorted(names):
        if module_path(name, package_dir) is None:
            raise UnknownModule(f"{source} imports {name}, which is no module or package of {package_dir}")
    with_parents = {
        ".".join(name.split(".")[:end]) for name in names for end in range(1, name.count(".") + 2)
    }
    return frozenset(with_parents - RESULT_NEUTRAL - {own_name}), _body_holds_code(tree)


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


def _absolute_base(node: ast.ImportFrom, own_name: str | None, source: str) -> str | None:
    """The module a `from ... import` names, relative imports resolved against `own_name`."""
    if node.level == 0:
        return node.module
    if own_name is None:
        raise UnknownModule(f"{source}: a relative import outside the package")
    is_package = Path(source).name == "__init__.py"
    parts = own_name.split(".")
    kept = len(parts) - node.level + is_package
    if kept < 1:  # Python: "attempted relative import beyond top-level package"
        raise UnknownModule(f"{source}: a relative import (level {node.level}) beyond the package")
    return ".".join(parts[:kept] + ([node.module] if node.module else []))


def _holds_code(path: Path | None, package_dir: Path) -> bool:
    """A module always counts; a package's `__init__.py` only when it holds more than a docstring
    (a folder without one, a namespace package, runs nothing)."""
    if path is None:
        return False
    if path.name != "__init__.py":
        return True
    return _parse(str(path), os.stat(path).st_mtime_ns, package_dir)[1]


def _body_holds_code(tree: ast.Module) -> bool:
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return bool(body)


def import_closure(*sources: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package module files that `sources` run, directly or through each other, sorted.

    `package_dir`: the package's folder (default: this one), e.g. another checkout's.
    """
    seen: set[str] = set()
    pending = set().union(*(imported_package_modules(source, package_dir) for source in sources))
    while pending:
        name = pending.pop()
        seen.add(name)
        pending |= imported_package_modules(module_path(name, package_dir), package_dir) - seen
    return sorted(module_path(name, package_dir) for name in seen)


def module_closure_digest(name: str, package_dir: Path = PACKAGE_DIR) -> str:
    """SHA1 over the source of module `name` and of every package module it runs."""
    digest = hashlib.sha1()
    own_file = module_path(name, package_dir)
    for path in sorted({own_file, *import_closure(own_file, package_dir=package_dir)}):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
