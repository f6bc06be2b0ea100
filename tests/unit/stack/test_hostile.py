"""Hostile stack files through the whole loader: each is refused in under a second, in bounded
memory, with a message that says why."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from orchestrator.errors import StackError
from orchestrator.stack import load_stack


def _bomb() -> str:
    lines = ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghij":
        lines.append(f"x-{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
        prev = name
    return "\n".join(lines) + "\nservices: {a: {image: x}}\n"


HOSTILE = {
    "billion laughs": (_bomb(), "alias"),
    "recursive alias": ("services: &s {a: {image: x, x-self: *s}}\n", "alias"),
    "deep flow nesting": ("services: " + "[" * 200_000 + "\n", "nesting"),
    "deep block nesting": (
        "services:\n" + "".join("  " * i + "a:\n" for i in range(1, 500)),
        "nesting",
    ),
    "duplicate service": ("services:\n  a: {image: x}\n  a: {image: y}\n", "duplicate key 'a'"),
    "too many values": (
        "services:\n  a:\n    image: x\n    cap_add: ["
        + ",".join(f"{{k: {i}}}" for i in range(200_000))
        + "]\n",
        "more than 100000 values",
    ),
    "unique mappings in a list": (
        "services:\n  a:\n    image: x\n    cap_add: ["
        + ",".join(f"{{k: {i}}}" for i in range(25_000))
        + "]\n",
        "must be a string",
    ),
    "long repeated list": (
        "services:\n  a:\n    image: x\n    expose: ["
        + ",".join(str(1000 + i % 30000) for i in range(60_000))
        + "]\n",
        "contains the same entry twice",
    ),
    "many bad services": (
        "services:\n" + "".join(f"  s{i}: {{image: 1}}\n" for i in range(20_000)),
        "must be a string",
    ),
    "tab indentation": ("services:\n\ta: {image: x}\n", "tab"),
    "control character": ('services: {a: {image: "x\x1b[2J"}}\n', "control character"),
    "hosts file injection": (
        "services: {a: {image: x, extra_hosts: ['evil\\n1.2.3.4 bank:1.2.3.4']}}\n",
        "not a valid host name",
    ),
    "hostname injection": (
        'services: {a: {image: x, hostname: "a #b"}}\n',
        "not a valid host name",
    ),
    "size overflow": ("services: {a: {image: x, mem_limit: 99999999999999999999g}}\n", "too large"),
    "duration overflow": (
        "services: {a: {image: x, stop_grace_period: 9999999999999h}}\n",
        "too long",
    ),
    "negative cpus": ("services: {a: {image: x, cpus: -1}}\n", "negative"),
    "interpolation nesting": (
        "services: {a: {image: '" + "${A:-" * 5000 + "}" * 5000 + "'}}\n",
        "nests deeper",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_input_is_refused_quickly(tmp_path: Path, case: str) -> None:
    text, words = HOSTILE[case]
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(StackError) as info:
        load_stack([path], environ={})
    elapsed = time.perf_counter() - start
    assert words in str(info.value)
    assert elapsed < 1.0, f"{case}: {elapsed:.2f}s"
    # Again under tracemalloc (which slows Python down) for the memory peak.
    tracemalloc.start()
    try:
        with pytest.raises(StackError):
            load_stack([path], environ={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"{case}: peak {peak / 2**20:.0f} MiB"


def test_bad_utf8_through_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_bytes(b'services:\n  a: {image: "\xff"}\n')
    with pytest.raises(StackError) as info:
        load_stack([path], environ={})
    assert (info.value.line, info.value.column) == (2, 15)
