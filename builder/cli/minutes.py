"""The runner-minute model's options, shared by `wheelfarm plan` and `wheelfarm fanout`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from builder.plan.estimate import MinuteModel

_DEFAULT = MinuteModel()


def minute_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --minutes-setup/--minutes-per-build/--minutes-per-native; the command gets `model`."""
    options = [
        click.option(
            "--minutes-setup",
            type=click.FloatRange(min=0),
            default=_DEFAULT.setup,
            show_default=True,
            help="Estimated runner minutes per cibuildwheel run (checkout, install, image).",
        ),
        click.option(
            "--minutes-per-build",
            type=click.FloatRange(min=0),
            default=_DEFAULT.per_build,
            show_default=True,
            help="Estimated minutes per wheel (one Python on one target: build, repair, test).",
        ),
        click.option(
            "--minutes-per-native",
            type=click.FloatRange(min=0),
            default=_DEFAULT.per_native,
            show_default=True,
            help="Estimated minutes per [[native]] library, once per run.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def model_from(kwargs: dict[str, Any]) -> MinuteModel:
    """Pop the three options out of a command's keyword arguments."""
    return MinuteModel(
        setup=kwargs.pop("minutes_setup"),
        per_build=kwargs.pop("minutes_per_build"),
        per_native=kwargs.pop("minutes_per_native"),
    )
