"""The safe YAML reader: hostile input is refused quickly, with its line, in bounded memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import StackError
from orchestrator.stack import yamlsafe
from orchestrator.stack.yamlsafe import parse_yaml_bytes, parse_yaml_text, read_yaml_file


def refuse(text: str | bytes) -> StackError:
    """Parse, expect a StackError, and check the refusal was quick and small."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(StackError) as info:
            if isinstance(text, bytes):
                parse_yaml_bytes(text, "f.yaml")
            else:
                parse_yaml_text(text, "f.yaml")
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    return info.value


def test_plain_values_and_positions() -> None:
    doc = parse_yaml_text("a:\n  b: [1, x]\n  c: {d: true}\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, "x"], "c": {"d": True}}}
    assert doc.position(("a", "b")) == (2, 3)
    assert doc.position(("a", "b", 1)) == (2, 10)
    assert doc.position(("a", "c", "d")) == (3, 7)
    assert doc.position(("a", "c", "d", "deeper")) == (3, 7)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("off", "off"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("12", 12),
        ("-3", -3),
        ("0x1F", 31),
        ("0o17", 15),
        ("0440", "0440"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("22:22", "22:22"),
        ("80:80", "80:80"),
        ("2001-01-01", "2001-01-01"),
        ("'12'", "12"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!int '7'", 7),
    ],
)
def test_yaml_1_2_core_scalars(text: str, value: object) -> None:
    assert parse_yaml_text(f"k: {text}\n").data == {"k": value}


def test_merge_keys() -> None:
    doc = parse_yaml_text(
        "base: &b {image: x, restart: always}\nother: &o {tty: true}\n"
        "s:\n  <<: [*b, *o]\n  restart: 'no'\n"
    )
    assert doc.data["s"] == {"restart": "no", "image": "x", "tty": True}


def test_duplicate_key_names_both_lines() -> None:
    err = refuse("services:\n  web: {}\n  db: {}\n  web: {}\n")
    assert (err.line, err.path) == (4, "services.web")
    assert "duplicate key 'web' (first defined on line 2)" in err.message


def test_duplicate_key_in_flow_mapping() -> None:
    assert "duplicate key 'a'" in refuse("{a: 1, a: 2}").message


def test_billion_laughs_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    err = refuse("\n".join(lines) + "\n")
    assert "alias" in err.message and err.line is not None


def test_recursive_alias() -> None:
    assert "recursive alias" in refuse("a: &x [1, *x]\n").message


def test_unknown_alias() -> None:
    assert (
        "invalid YAML" in refuse("a: *nope\n").message
        or "unknown alias" in refuse("a: *nope\n").message
    )


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "{a: " * 50_000, "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 2000))],
)
def test_deep_nesting(text: str) -> None:
    err = refuse(text)
    assert "nesting" in err.message or "depth" in err.message


def test_file_size_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * yamlsafe.MAX_FILE_BYTES + b"\n")
    with pytest.raises(StackError, match="larger than"):
        read_yaml_file(big)


def test_tab_indentation() -> None:
    err = refuse("services:\n\tweb: {}\n")
    assert err.line == 2 and "tab" in err.message


def test_tab_inside_a_value_is_fine() -> None:
    assert parse_yaml_text('a: "x\ty"\nb: |\n  line\twith tab\n').data == {
        "a": "x\ty",
        "b": "line\twith tab\n",
    }


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x9b"])
def test_control_characters(char: str) -> None:
    err = refuse(f"a: 1\nb: x{char}y\n")
    assert (err.line, err.column) == (2, 5)
    assert "control character" in err.message


def test_bad_utf8() -> None:
    err = refuse(b"a: 1\nb: caf\xe9\n")
    assert (err.line, err.column) == (2, 7)
    assert "UTF-8" in err.message


def test_utf8_bom_and_unicode() -> None:
    assert parse_yaml_bytes("\ufeffa: café ✓\n".encode()).data == {"a": "café ✓"}


def test_several_documents_refused() -> None:
    assert "several YAML documents" in refuse("a: 1\n---\nb: 2\n").message


@pytest.mark.parametrize(
    "text", ["a: !!python/object:os.system x\n", "a: !reset []\n", "a: !!binary aGk=\n"]
)
def test_unknown_tags(text: str) -> None:
    assert "tag" in refuse(text).message


def test_complex_keys_refused() -> None:
    assert "mapping key" in refuse("? [a, b]\n: c\n").message


def test_huge_integer_refused() -> None:
    assert "too large" in refuse("a: " + "9" * 5000 + "\n").message


def test_syntax_error_has_position() -> None:
    err = refuse("a: [1, 2\nb: 3\n")
    assert err.line is not None and err.message.startswith("invalid YAML")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_yaml_text(text)
    except StackError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        parse_yaml_bytes(data)
    except StackError:
        pass
