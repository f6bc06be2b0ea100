"""The one duration parser: Go's grammar, exact nanoseconds, and the same answers for a stack
file's healthcheck and a Dockerfile's HEALTHCHECK."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.durations import (
    MAX_NS,
    MAX_TEXT,
    DurationError,
    format_duration,
    parse_duration,
)
from orchestrator.errors import StackError
from orchestrator.imagebuild.dockerfile import DockerfileError, parse
from orchestrator.imagebuild.metadata import healthcheck_config
from orchestrator.stack.context import Context
from orchestrator.stack.healthcheck import convert_healthcheck
from orchestrator.stack.units import UnitError
from orchestrator.stack.units import parse_duration as units_parse_duration
from orchestrator.stack.yamlsafe import Locator

NS = 1_000_000_000
UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
}
# Go's time.ParseDuration, without the sign we refuse.
GO_GRAMMAR = re.compile(r"0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        (0, 0),
        (0.0, 0),
        ("0s", 0),
        ("000ms", 0),
        ("7ns", 7),
        ("10us", 10_000),
        ("10µs", 10_000),
        ("10μs", 10_000),
        ("250ms", 250 * 10**6),
        ("1.5s", 3 * NS // 2),
        ("2.3s", 2_300_000_000),  # a float sum would give 2299999999
        (".5s", NS // 2),
        ("1.s", NS),
        ("1m30s", 90 * NS),
        ("1h", 3600 * NS),
        ("1h2m3s4ms", 3723 * NS + 4_000_000),
        ("1s1s", 2 * NS),
        ("1m.5s", 60 * NS + NS // 2),
        ("0.5ns0.5ns", 1),  # exact sum, truncated once
        (" 30s ", 30 * NS),
        ("2562047h47m16.854775807s", MAX_NS),
    ],
)
def test_accepted(text: object, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "interval is empty"),
        ("   ", "interval is empty"),
        ("-1s", "interval '-1s' cannot be negative"),
        ("-0", "cannot be negative"),
        ("+1s", "interval '+1s' is not a duration"),
        ("10", "interval '10' is not a duration"),
        (10, "interval 10 needs a unit, such as '10s'"),
        (1.5, "needs a unit"),
        ("1d", "not a duration"),
        ("1S", "not a duration"),
        ("s", "not a duration"),
        (".s", "not a duration"),
        (".", "not a duration"),
        ("1..5s", "not a duration"),
        ("1.5.5s", "not a duration"),
        ("1m30", "not a duration"),
        ("1 s", "not a duration"),
        ("1mss", "not a duration"),
        ("٣s", "not a duration"),  # digits are ASCII, as in Go
        ("2562047h47m16.854775808s", "interval '2562047h47m16.854775808s' is too long"),
        ("9" * (MAX_TEXT + 1) + "s", "too long"),
        (True, "must be a string or a number"),
        (None, "must be a string or a number"),
        (["1s"], "must be a string or a number"),
    ],
)
def test_refused(text: object, words: str) -> None:
    with pytest.raises(DurationError, match=re.escape(words)):
        parse_duration(text, "interval")


def test_the_stack_parser_is_the_same_with_unit_errors() -> None:
    assert units_parse_duration("1m30s", "stop_grace_period") == 90 * NS
    with pytest.raises(UnitError, match="stop_grace_period '1x' is not a duration"):
        units_parse_duration("1x", "stop_grace_period")


def test_huge_input_is_refused_quickly() -> None:
    with pytest.raises(DurationError, match="too long"):
        parse_duration("1" * 1_000_000 + "s")


# -- properties ------------------------------------------------------------------------------------

_component = st.tuples(
    st.text("0123456789", max_size=4),
    st.one_of(st.none(), st.text("0123456789", max_size=4)),
    st.sampled_from(sorted(UNITS)),
).filter(lambda c: bool(c[0] or c[1]))


def _spell(components: list[tuple[str, str | None, str]]) -> str:
    return "".join(w + ("" if f is None else "." + f) + u for w, f, u in components)


def _exact(components: list[tuple[str, str | None, str]]) -> int:
    total = sum(
        (Fraction(int(w or "0")) + Fraction(int(f or "0"), 10 ** len(f or ""))) * UNITS[u]
        for w, f, u in components
    )
    return int(total)  # positive: int() truncates, as the parser does


@given(st.lists(_component, min_size=1, max_size=5))
def test_value_is_the_exact_sum(components: list[tuple[str, str | None, str]]) -> None:
    assert parse_duration(_spell(components)) == _exact(components)


@given(st.integers(min_value=0, max_value=MAX_NS))
def test_format_round_trip(ns: int) -> None:
    text = format_duration(ns)
    assert GO_GRAMMAR.fullmatch(text)
    assert parse_duration(text) == ns


@settings(max_examples=500)
@given(st.text("0123456789.nsuµμmhd+- ", max_size=20))
def test_accepts_exactly_gos_grammar(text: str) -> None:
    go = GO_GRAMMAR.fullmatch(text.strip())
    try:
        parse_duration(text)
    except DurationError as exc:
        assert not go or "too long" in exc.message  # Go refuses more than an int64 too
    else:
        assert go


@given(
    st.lists(
        st.tuples(
            st.text("0123456789", min_size=1, max_size=3),
            st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=3)),
            st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_everything_the_old_dockerfile_grammar_took_is_taken(
    components: list[tuple[str, str | None, str]],
) -> None:
    """The builder's former grammar was ``(\\d+(\\.\\d+)?(ns|us|µs|ms|s|m|h))+``."""
    assert parse_duration(_spell(components)) == _exact(components)


# -- one grammar for the stack file and the Dockerfile ---------------------------------------------

_STACK = Context(
    locator=Locator("compose.yaml"), project="p", project_dir=Path("/"), lookup=lambda _: None
)


def _stack_healthcheck(key: str, value: str) -> int | None:
    """The nanoseconds of a stack healthcheck's ``key``, or None when the stack refuses it."""
    try:
        check = convert_healthcheck(
            _STACK, ("services", "s", "healthcheck"), {"test": "true", key: value}
        )
    except StackError:
        return None
    assert check is not None
    result: Any = getattr(check, f"{key}_ns")
    return int(result)


def _dockerfile_healthcheck(flag: str, value: str) -> int | None:
    """The nanoseconds of a Dockerfile HEALTHCHECK's ``--flag``, or None when it is refused."""
    df = parse(f"FROM scratch\nHEALTHCHECK --{flag}={value} CMD true\n")
    (inst,) = df.stages[0].instructions
    try:
        check = healthcheck_config(inst, "Dockerfile")
    except DockerfileError:
        return None
    key = {"interval": "Interval", "start-period": "StartPeriod"}[flag]
    return int(check[key])


# Flag values are single words: no whitespace, and no backslash (a line continuation).
_word = st.text("0123456789.nsuµμmhd+-", min_size=1, max_size=16)


@settings(max_examples=300)
@given(st.one_of(_word, st.builds(_spell, st.lists(_component, min_size=1, max_size=4))))
def test_stack_and_dockerfile_healthchecks_agree(text: str) -> None:
    stack = _stack_healthcheck("start_period", text)
    assert _dockerfile_healthcheck("start-period", text) == stack
    # Docker refuses an interval of zero; the stack file takes it (the default applies).
    assert _stack_healthcheck("interval", text) == stack
    assert _dockerfile_healthcheck("interval", text) == (stack or None)


@pytest.mark.parametrize("text", ["30s", "1m30s", "1.5s", ".5s", "250ms", "10µs", "1h0m0s"])
def test_stack_file_and_dockerfile_examples(text: str, tmp_path: Path) -> None:
    from orchestrator.stack import load_stack

    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  s:\n"
        "    image: x\n"
        f"    healthcheck: {{test: 'true', interval: '{text}', start_period: '{text}'}}\n"
    )
    stack = load_stack([str(tmp_path / "compose.yaml")], environ={})
    check = stack.services["s"].healthcheck
    assert check is not None
    expected = parse_duration(text)
    assert check.interval_ns == check.start_period_ns == expected
    assert _dockerfile_healthcheck("interval", text) == expected


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("interval", "5x", "--interval '5x' is not a duration"),
        ("interval", "0s", "--interval '0s' must be more than 0"),
        ("timeout", "-1s", "--timeout '-1s' cannot be negative"),
        ("start-interval", "", "--start-interval is empty"),
    ],
)
def test_dockerfile_errors_name_the_flag_and_the_value(flag: str, value: str, words: str) -> None:
    df = parse(f"FROM scratch\nHEALTHCHECK --{flag}={value} CMD true\n")
    (inst,) = df.stages[0].instructions
    with pytest.raises(DockerfileError) as info:
        healthcheck_config(inst, "Dockerfile")
    assert str(info.value).startswith("Dockerfile:2: HEALTHCHECK")
    assert words in str(info.value)


def test_stack_errors_name_the_key_and_the_value() -> None:
    with pytest.raises(StackError, match="interval '5x' is not a duration"):
        convert_healthcheck(
            _STACK, ("services", "s", "healthcheck"), {"test": "x", "interval": "5x"}
        )
