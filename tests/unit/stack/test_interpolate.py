"""Compose interpolation and .env files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.stack.interpolate import (
    DotenvError,
    InterpolationError,
    Interpolator,
    interpolate_value,
    parse_dotenv,
)
from orchestrator.stack.normalize import escape

from .conftest import Load

ENV = {"SET": "value", "EMPTY": "", "N": "3"}
NOTHING: dict[str, str] = {}


@pytest.mark.parametrize(
    ("template", "result"),
    [
        ("plain", "plain"),
        ("$SET", "value"),
        ("${SET}", "value"),
        ("a${SET}b", "avalueb"),
        ("$SET.x", "value.x"),
        ("${UNSET}", ""),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${SET:-dflt}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO:-deep}}", "deep"),
        ("${UNSET:-a}b}", "ab}"),
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: $$5", "cost: $5"),
        ("${SET:?must be set}", "value"),
        ("${EMPTY?only if unset}", ""),
    ],
)
def test_forms(template: str, result: str) -> None:
    assert interpolate_value(template, ENV.get) == result


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("${UNSET:?give it a value}", "required variable UNSET is not set: give it a value"),
        ("${EMPTY:?}", "required variable EMPTY is empty"),
        ("${UNSET?}", "required variable UNSET is not set"),
        ("${", "unterminated"),
        ("${SET", "unterminated"),
        ("${}", "expected a variable name"),
        ("${1X}", "expected a variable name"),
        ("${SET*x}", "after the name"),
        ("a $ b", "must be followed"),
        ("trailing $", "must be followed"),
        ("$1", "must be followed"),
    ],
)
def test_errors(template: str, words: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate_value(template, ENV.get)
    assert words in info.value.message


def test_nesting_is_bounded() -> None:
    with pytest.raises(InterpolationError, match="nests deeper"):
        interpolate_value("${A:-" * 50 + "x" + "}" * 50, NOTHING.get)


def test_unset_variables_are_collected_once() -> None:
    interp = Interpolator(NOTHING.get)
    interp.value("$A $B ${A}")
    assert interp.unset == ["A", "B"]


@given(st.text(max_size=60))
def test_escaped_text_comes_back_unchanged(text: str) -> None:
    assert interpolate_value(escape(text), NOTHING.get) == text


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=60))
def test_text_without_dollar_is_untouched(text: str) -> None:
    assert interpolate_value(text, ENV.get) == text


@given(st.text(max_size=40))
def test_never_crashes(text: str) -> None:
    try:
        interpolate_value(text, ENV.get)
    except InterpolationError:
        pass


def test_dotenv_parsing() -> None:
    text = """
# comment
export A=1
B = two words  # a comment
C='single $A \\n kept'
D="double ${A} \\n escaped \\" quote"
E=
F="multi
line"
G=${A}${B}
H=#not-a-comment
"""
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "two words",
        "C": "single $A \\n kept",
        "D": 'double 1 \n escaped " quote',
        "E": "",
        "F": "multi\nline",
        "G": "1two words",
        "H": "#not-a-comment",
    }


def test_dotenv_errors_have_line() -> None:
    with pytest.raises(DotenvError) as info:
        parse_dotenv("A=1\nnot valid line\n")
    assert info.value.line == 2
    with pytest.raises(DotenvError, match="unterminated"):
        parse_dotenv('A="open\n')


def test_dotenv_bare_key_taken_from_environment() -> None:
    assert parse_dotenv("A\nB\n", {"A": "x"}.get) == {"A": "x"}


def test_dotenv_beside_stack_and_environment_wins(load: Load, project: Path) -> None:
    (project / ".env").write_text("TAG=from-dotenv\nPORT=8080\n")
    stack = load(
        "services: {web: {image: 'app:${TAG}', ports: ['${PORT}:80']}}", env={"TAG": "from-shell"}
    )
    assert stack.services["web"].image == "app:from-shell"
    assert stack.services["web"].ports[0].published == "8080"


def test_interpolation_error_has_position(load: Load) -> None:
    from orchestrator.errors import StackError

    with pytest.raises(StackError) as info:
        load("services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n")
    err = info.value
    assert (err.line, err.path) == (3, "services.web.image")
    assert "required variable IMAGE is not set: set IMAGE" in str(err)


def test_unset_variables_warn(load: Load) -> None:
    stack = load("services: {web: {image: 'app:${TAG}x'}}")
    assert stack.services["web"].image == "app:x"
    assert any("TAG variable is not set" in w for w in stack.warnings)


def test_keys_are_not_interpolated(load: Load) -> None:
    stack = load("services: {web: {image: x, environment: {$$KEY: v, '${X}': w}}}")
    assert dict(stack.services["web"].environment) == {"$$KEY": "v", "${X}": "w"}
