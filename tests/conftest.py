"""Shared fixtures: the built-in real COCOA demo data (see amodaldata/data/cocoa/PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON


@pytest.fixture
def cocoa_json() -> Path:
    """The five real COCOA annotations in the release layout."""
    return COCOA_DEMO_JSON


@pytest.fixture
def cocoa_images() -> Path:
    """The folder holding the five COCO images of the demo annotations."""
    return COCOA_DEMO_DIR


@pytest.fixture
def cocoa_raw() -> dict:
    """The parsed demo release file."""
    return json.loads(COCOA_DEMO_JSON.read_text())
