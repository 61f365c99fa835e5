"""The allocator controls reach glibc (a typo in a ctypes name would silently do nothing)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_arena_limit_and_trim_reach_glibc():
    # In a child: mallopt changes the allocator of the whole process it runs in.
    code = (
        "from exporter.memory import limit_arenas, trim;"
        "print(limit_arenas(2, 1 << 20), isinstance(trim(), bool))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "True"]
