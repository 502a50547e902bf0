"""The ``amodaldata`` command. Thin: it parses options and calls the library; the work is done in the packages."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from amodaldata import __version__
from amodaldata.errors import AmodalDataError


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an :class:`AmodalDataError` into a one-line message on stderr and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmodalDataError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amodaldata")
def main() -> None:
    """Read, convert, measure, generate and evaluate amodal segmentation data."""


if __name__ == "__main__":
    main()
