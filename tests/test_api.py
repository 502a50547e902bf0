"""The public surface, pinned (as kornia pins its own): what ``import amodaldata``, ``converters`` and
``generators`` offer, that every name resolves, and that the front door refuses what it cannot use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import amodaldata
import converters
import generators

AMODALDATA = [
    "AmodalDataError", "AnnotationError", "DepthCycleError", "ErrorPolicy", "FormatError", "GeometryError",
    "LayerStack", "Mask", "MissingImageError", "OcclusionOrder", "Region", "Scene", "__version__", "atomic_path",
    "ShardSet", "compute_stats", "format_report", "read_shards", "run_tasks", "scene_targets", "write_shards",
]
CONVERTERS = ["EMBEDS_IMAGES", "READERS", "WRITERS", "detect_format", "read", "read_results", "write",
              "write_results"]
GENERATORS = ["OverlayConfig", "ShapesConfig", "generate_dataset", "generator_config"]
READ_FORMATS = ["bsds", "cocoa", "cocoa-cls", "d2sa", "kins", "layered", "parquet", "semdist"]
WRITE_FORMATS = ["bsds", "cocoa", "cocoa-cls", "d2sa", "kins", "kins-2020", "layered", "parquet", "semdist"]


@pytest.mark.parametrize("module, names", [(amodaldata, AMODALDATA), (converters, CONVERTERS),
                                           (generators, GENERATORS)])
def test_the_public_names_are_pinned_and_resolve(module, names):
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name) is not None
        assert name in dir(module)
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")


def test_the_formats_are_pinned():
    assert sorted(converters.READERS) == READ_FORMATS
    assert sorted(converters.WRITERS) == WRITE_FORMATS


def test_the_front_door_is_light():
    """``import amodaldata, converters, generators`` pulls in neither numba nor pyarrow (the CLI's help, polygon
    readers); the re-exported names load them on first use."""
    code = ("import sys, amodaldata, generators; heavy = {'numba', 'pyarrow'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_option_no_reader_knows_is_an_error(cocoa_json, tmp_path):
    with pytest.raises(TypeError, match="on_eror"):
        converters.read(cocoa_json, format="cocoa", on_eror="skip")
    with pytest.raises(TypeError, match="on_eror"):
        converters.read(cocoa_json, on_eror="skip")
    assert len(list(converters.read(cocoa_json, format="cocoa", on_error="skip", threshold=None))) > 0
    with pytest.raises(TypeError, match="max_levle"):
        converters.write(converters.read(cocoa_json), tmp_path / "w", "semdist", max_levle=3)
    from converters.convert import convert

    with pytest.raises(TypeError, match="max_levle"):
        convert("cocoa", cocoa_json, "semdist", tmp_path / "t", max_levle=3)
    assert not (tmp_path / "t").exists()


def test_read_tells_the_format_and_write_takes_it(cocoa_json, tmp_path):
    """``read(path, format=None)`` / ``write(scenes, path, format)``: the format is told from the content when not
    given, and what is written reads back the same."""
    told = list(converters.read(cocoa_json))
    assert [s.id for s in told] == [s.id for s in converters.read(cocoa_json, "cocoa")]
    converters.write(told, tmp_path / "shards", "parquet")
    assert [s.id for s in converters.read(tmp_path / "shards")] == [s.id for s in told]
    with pytest.raises(amodaldata.FormatError, match="unknown output format"):
        converters.write(told, tmp_path / "x", format="no-such-format")


def test_the_readme_first_example_runs(cocoa_json, tmp_path):
    from converters import read

    amodaldata.write_shards(read(cocoa_json, format="cocoa"), tmp_path / "shards")
    read_back = [s.id for s in amodaldata.read_shards(tmp_path / "shards")]
    assert read_back == [s.id for s in read(cocoa_json, format="cocoa")]


def test_the_architecture_map_names_only_paths_that_exist():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`([\w/]+(?:\.py|/))`", text))
    assert {"amodaldata/rle.py", "amodaldata/engines.py", "amodaldata/atomic.py", "converters/"} <= paths
    assert [p for p in sorted(paths) if not (root / p).exists()] == []
