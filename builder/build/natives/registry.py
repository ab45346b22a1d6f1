"""The build systems a `[[native]]` entry can name: one module each, registered here and only here.

The recipe schema's `build-system` enum must list exactly these names (tests/build/test_natives.py
compares them), so a recipe the schema accepts is one the builder can build.
"""

from __future__ import annotations

from builder.build.natives import (
    auto,
    autotools,
    cmake,
    configure,
    debian_binary,
    make,
    meson,
    mklove,
    openssl,
)
from builder.build.natives.base import BuildSystem

BUILD_SYSTEMS: dict[str, BuildSystem] = {
    m.SYSTEM.name: m.SYSTEM
    for m in (autotools, configure, cmake, make, meson, openssl, mklove, debian_binary, auto)
}
