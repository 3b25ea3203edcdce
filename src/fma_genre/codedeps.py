"""Which package modules a piece of code runs: its package-internal import closure.

The workflow lists the closure of each rule's script as the rule's code inputs, so that editing
any module that can change a stage's result reruns that stage, and editing a module it never
imports does not. Training keys its resume state by the closure's content. Imports are read with
`ast`, not executed, so planning the DAG imports nothing heavy; imports inside functions count
too, since the code can run them. The package's `__init__.py` holds no code and is not counted,
nor is `logs.py` (see RESULT_NEUTRAL).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

PACKAGE = "fma_genre"
PACKAGE_DIR = Path(__file__).resolve().parent
# Modules that cannot change any result: `logs` only routes a script's stderr to its log file.
# Left out, so that a logging tweak does not rerun the whole DAG.
RESULT_NEUTRAL = {f"{PACKAGE}.logs"}


def module_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The file of module `fma_genre.x` in `package_dir`."""
    return Path(package_dir).joinpath(*name.split(".")[1:]).with_suffix(".py")


def imported_package_modules(source: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Names of the package modules (`fma_genre.x`) in `package_dir` that a Python file imports."""
    return set(_imports(str(source), os.stat(source).st_mtime_ns, Path(package_dir)))


@functools.lru_cache(maxsize=None)
def _imports(source: str, mtime_ns: int, package_dir: Path) -> frozenset[str]:
    """Parsed once per file version: planning the DAG asks for every rule's closure."""
    tree = ast.parse(Path(source).read_text(), filename=source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith(f"{PACKAGE}.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE:  # `from fma_genre import x`, where x is a module
                names |= {f"{PACKAGE}.{alias.name}" for alias in node.names}
            elif node.module.startswith(f"{PACKAGE}."):
                names.add(node.module)
    return frozenset(name for name in names - RESULT_NEUTRAL if module_path(name, package_dir).is_file())


def import_closure(*sources: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package module files that `sources` import, directly or through each other, sorted.

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
    """SHA1 over the source of module `name` and of every package module it imports."""
    digest = hashlib.sha1()
    own_file = module_path(name, package_dir)
    for path in sorted({own_file, *import_closure(own_file, package_dir=package_dir)}):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
