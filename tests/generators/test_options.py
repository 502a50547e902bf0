"""Generator options parsed by one piece of code: the ``gen`` commands and ``parse_generator`` (``--generate``)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.errors import AmodalDataError
from cli import main
from generators.options import parse_generator
from generators.overlay import OverlayConfig
from generators.shapes import ShapesConfig


def test_shapes_options_give_the_config_the_command_builds():
    config = parse_generator("shapes --per-class 2-4 --classes 'circle, star' --fill random --size 96")
    assert config == ShapesConfig(size=96, classes=("circle", "star"), per_class=(2, 4), fill="random")
    assert parse_generator(["shapes"]) == ShapesConfig()                    # the paper's defaults


def test_overlay_options_default_to_the_demo_data():
    config = parse_generator("overlay --objects 2 --scale 0.5-1")
    assert config == OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR), objects=(2, 2),
                                   scale=(0.5, 1.0))


@pytest.mark.parametrize("spec, message", [
    ("shapes --per-class x", "Invalid value for '--per-class': expected an integer or LOW-HIGH, got 'x'"),
    ("shapes --classes blob", "unknown shape class(es) ['blob']"),
    ("shapes --n 3", "No such option '--n'"),                               # a run option, not a generator's
    ("blob --size 3", "unknown generator 'blob'; choose one of shapes, overlay"),
    ("", "no generator given"),
])
def test_bad_options_are_refused_with_clicks_message(spec, message):
    with pytest.raises(AmodalDataError) as info:
        parse_generator(spec)
    assert message in str(info.value)


def test_the_command_refuses_the_same_values(tmp_path):
    result = CliRunner().invoke(main, ["gen", "shapes", "--n", "1", "--classes", "blob", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown shape class(es) ['blob']" in result.output


def test_help_lists_the_generators_options(capsys):
    with pytest.raises(SystemExit) as info:
        parse_generator("shapes --help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--per-class" in out and "--image-mode" in out and "--seed" not in out
