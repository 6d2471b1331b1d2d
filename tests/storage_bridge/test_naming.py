"""Conflict-copy names (ARCHITECTURE §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from storage_bridge.naming import conflict_copy_name

WHEN = datetime(2022, 1, 25, 19, 35, 50, tzinfo=UTC)


def test_design_example() -> None:
    assert (
        conflict_copy_name("visualization.ipynb", "marcin", WHEN)
        == "visualization.ipynb.marcin.2022-01-25_19_35_50.conflict.ipynb"
    )


def test_unknown_user_is_external() -> None:
    assert (
        conflict_copy_name("a.ipynb", "", WHEN)
        == "a.ipynb.external.2022-01-25_19_35_50.conflict.ipynb"
    )
    assert conflict_copy_name("a.ipynb", "  ", WHEN).startswith("a.ipynb.external.")


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("marie/curie", "marie_curie"),
        ("a\\b", "a_b"),
        ("..", "external"),
        ("../../etc", "_.._etc"),
        ("x y?#%", "x_y_"),
        ("einstein@cern.ch", "einstein@cern.ch"),
        ("Zoë", "Zoë"),
    ],
)
def test_user_part_is_sanitized(user: str, expected: str) -> None:
    name = conflict_copy_name("n.ipynb", user, WHEN)
    assert name == f"n.ipynb.{expected}.2022-01-25_19_35_50.conflict.ipynb"
    assert "/" not in name
    assert "\\" not in name


def test_user_part_is_bounded() -> None:
    name = conflict_copy_name("n.ipynb", "u" * 500, WHEN)
    assert len(name) < 120


def test_time_is_rendered_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2022, 1, 25, 20, 35, 50, 999_999, tzinfo=cet)
    assert conflict_copy_name("a.ipynb", "m", local) == conflict_copy_name("a.ipynb", "m", WHEN)


def test_naive_time_is_taken_as_utc() -> None:
    naive = datetime(2022, 1, 25, 19, 35, 50)
    assert conflict_copy_name("a.ipynb", "m", naive) == conflict_copy_name("a.ipynb", "m", WHEN)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.txt", "notes.txt.m.2022-01-25_19_35_50.conflict.txt"),
        ("Makefile", "Makefile.m.2022-01-25_19_35_50.conflict"),
        (".bashrc", ".bashrc.m.2022-01-25_19_35_50.conflict"),
        ("data.tar.gz", "data.tar.gz.m.2022-01-25_19_35_50.conflict.gz"),
    ],
)
def test_extension_is_repeated(name: str, expected: str) -> None:
    assert conflict_copy_name(name, "m", WHEN) == expected


@pytest.mark.parametrize("name", ["", ".", "..", "dir/a.ipynb"])
def test_rejects_non_names(name: str) -> None:
    with pytest.raises(ValueError):
        conflict_copy_name(name, "m", WHEN)
