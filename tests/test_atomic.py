"""Atomic output: one file or folder, or a group of files named at the end, appears whole or not at all."""

from __future__ import annotations

import os

import pytest

from amodaldata.atomic import atomic_files, atomic_path


def test_a_file_appears_only_when_its_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert list((tmp_path / "sub").iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_folder_replaces_the_one_there(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new"]


def test_a_group_is_published_under_names_known_at_the_end(tmp_path):
    (tmp_path / "b-of-2").write_text("old")
    with atomic_files(tmp_path) as group:
        for name in "ab":
            group.temporary(name).write_text(name)
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".a.{os.getpid()}.tmp", f".b.{os.getpid()}.tmp", "b-of-2"]
        group.publish([tmp_path / "a-of-2", tmp_path / "b-of-2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-of-2", "b-of-2"]
    assert (tmp_path / "b-of-2").read_text() == "b"


def test_a_failed_or_unpublished_group_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="died"):
        with atomic_files(tmp_path / "g") as group:
            group.temporary("a").write_text("a")
            raise RuntimeError("died")
    with pytest.raises(RuntimeError, match="without publish"):
        with atomic_files(tmp_path / "g") as group:
            group.temporary("a").write_text("a")
    with pytest.raises(ValueError, match="1 names for 2 temporary files"):
        with atomic_files(tmp_path / "g") as group:
            group.temporary("a").write_text("a")
            group.temporary("b").write_text("b")
            group.publish([tmp_path / "g" / "a"])
    assert list((tmp_path / "g").iterdir()) == []
