"""One home per concept (docs/architecture.md), read off the source: who imports whom, the one module that
renames output into place, the one Parquet reader, no file format's field names in the core (but where it hands
masks to pycocotools), and papers cited as a user can look them up."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("amodaldata", "converters", "generators", "models")
#: Field names that belong to one annotation or results format (FORMATS.md), never to the core.
FORMAT_FIELDS = {
    "segmentation", "visible_mask", "invisible_mask", "depth_constraint", "isStuff", "occlude_rate", "a_segm",
    "i_segm", "inmodal_seg", "inmodal_bbox", "a_bbox", "i_bbox", "a_area", "i_area", "oco_id", "ico_id",
    "occl_depth", "amodal_region", "amodal_base", "iscrowd",
}
#: Where the core hands masks to pycocotools' COCOeval, whose in-memory API takes COCO's field names.
PYCOCOTOOLS_BRIDGE = {"amodaldata/evaluation/analysis.py"}


def _sources(*tops: str) -> list[Path]:
    out = []
    for top in tops:
        path = ROOT / top
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function (relative imports resolved)."""
    package = _relative(path).split("/")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            out.add(".".join([*base, node.module] if node.module else base))
    return out


def _calls(path: Path) -> list[tuple[str, int]]:
    """``(dotted name, line)`` of every call whose function is an attribute chain (``os.replace``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            parts, value = [node.func.attr], node.func.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                parts.append(value.id)
            out.append((".".join(reversed(parts)), node.lineno))
    return out


@pytest.mark.parametrize("package, allowed", [
    ("amodaldata", set()),
    ("converters", {"amodaldata"}),
    ("generators", {"amodaldata", "converters"}),
    ("models", {"amodaldata", "generators", "converters.results"}),
])
def test_imports_run_one_way(package, allowed):
    wrong = []
    for path in _sources(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in PACKAGES and top != package and not any(name == a or name.startswith(a + ".")
                                                                   for a in allowed):
                wrong.append(f"{_relative(path)} imports {name}")
    assert wrong == []


def test_only_the_atomic_helper_renames():
    renames = {"os.replace", "os.rename", "os.renames", "shutil.move"}
    found = [f"{_relative(p)}:{line} {name}" for p in _sources(*PACKAGES, "cli.py", "bench")
             for name, line in _calls(p) if name in renames or name.endswith(".rename")]
    assert [f for f in found if not f.startswith("amodaldata/atomic.py:")] == []
    assert any(f.startswith("amodaldata/atomic.py:") for f in found)


def test_only_the_shard_module_reads_parquet():
    readers = {"read_table", "ParquetFile", "read_schema", "read_metadata", "ParquetDataset", "read_pandas"}
    found = [f"{_relative(p)}:{line} {name}" for p in _sources(*PACKAGES, "cli.py", "bench")
             for name, line in _calls(p) if name.split(".")[-1] in readers]
    assert [f for f in found if not f.startswith("amodaldata/shards.py:")] == []
    for path in _sources(*PACKAGES, "cli.py", "bench"):
        assert "pyarrow.dataset" not in _imports(path), _relative(path)


def _code_strings(path: Path) -> set[str]:
    """The string constants of ``path`` that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings}


def test_the_core_names_no_file_format_field():
    found = {}
    for path in _sources("amodaldata"):
        rel = _relative(path)
        fields = _code_strings(path) & FORMAT_FIELDS
        if rel in PYCOCOTOOLS_BRIDGE:
            fields -= {"segmentation", "iscrowd"}
        if fields:
            found[rel] = sorted(fields)
    assert found == {}


def test_the_field_names_are_those_the_formats_use():
    """The list above is not a guess: every name in it is read or written by a converter."""
    used = set().union(*(_code_strings(p) for p in _sources("converters")))
    assert FORMAT_FIELDS <= used


def test_papers_are_cited_by_authors_and_year_not_by_an_internal_number():
    """A user can look up "Liu et al. (2019), Table 2"; the project's private numbering of its source papers
    means nothing outside it, in code, docs or help texts."""
    internal = re.compile(r"\bseeds?[ _-]?0\d\d\b", re.IGNORECASE)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = [f"{name}:{n}" for name in tracked.split()
             if Path(name).suffix in {".py", ".md", ".txt", ".sh", ".toml", ".cfg", ""} and (ROOT / name).is_file()
             for n, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
             if internal.search(line)]
    assert found == []
