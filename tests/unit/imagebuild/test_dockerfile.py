"""The Dockerfile parser, variable substitution and .dockerignore matching (no root needed)."""

from __future__ import annotations

import pytest

from orchestrator.imagebuild.dockerfile import DockerfileError, parse, split_key_values
from orchestrator.imagebuild.ignore import IgnoreRules, clean
from orchestrator.imagebuild.substitute import SubstitutionError, expand, expand_words

# -- parser ----------------------------------------------------------------------------------------


def test_stages_lines_continuations_and_comments() -> None:
    df = parse(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox\n"
        "\n"
        "FROM $BASE AS Build\n"
        "# a comment\n"
        "RUN echo a \\\n"
        "# a comment inside\n"
        "\n"
        "    && echo b\n"
        "from build\n"
        "copy --from=build --chown=1:2 /a /b\n"
        'CMD ["sh", "-c", "echo # not a comment"]\n',
        "Dockerfile",
    )
    assert [a.args for a in df.global_args] == ["BASE=busybox"]
    assert [(s.index, s.name, s.base, s.from_line) for s in df.stages] == [
        (0, "build", "$BASE", 4),
        (1, None, "build", 10),
    ]
    run = df.stages[0].instructions[0]
    assert (run.keyword, run.line, run.args) == ("RUN", 6, "echo a     && echo b")
    copy, cmd = df.stages[1].instructions
    assert copy.keyword == "COPY" and copy.line == 11
    assert copy.flags == {"from": "build", "chown": "1:2"} and copy.args == "/a /b"
    assert cmd.exec_form == ["sh", "-c", "echo # not a comment"]
    assert df.stage("BUILD") is df.stages[0] and df.stage("1") is df.stages[1]
    assert df.stage("nope") is None


def test_escape_directive_changes_the_continuation_character() -> None:
    df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  /w\n", "D")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == "dir c:\\   /w"


def test_directives_only_at_the_top() -> None:
    df = parse("FROM scratch\n# escape=`\nRUN a \\\n b\n", "D")
    assert df.escape == "\\" and df.stages[0].instructions[0].args == "a  b"


def test_shell_form_when_not_json() -> None:
    df = parse("FROM scratch\nCMD [not json\nENTRYPOINT []\n", "D")
    cmd, entry = df.stages[0].instructions
    assert cmd.exec_form is None and cmd.args == "[not json"
    assert entry.exec_form == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "D: the Dockerfile has no instructions"),
        ("# only a comment\n", "D: the Dockerfile has no instructions"),
        ("RUN echo\n", "D:1: RUN: no FROM before this instruction"),
        ("ARG X\n", "D:1: no FROM instruction"),
        ("FROM scratch\nFOO bar\n", "D:2: FOO: unknown instruction 'FOO'"),
        ("FROM scratch\n\nRUN\n", "D:3: RUN: RUN needs at least one argument"),
        ("FROM scratch\nCOPY --bogus=1 a b\n", "D:2: COPY: unknown flag --bogus"),
        ("FROM scratch\nSHELL sh -c\n", "D:2: SHELL: SHELL needs the JSON form"),
        ("FROM a b c d\n", "D:1: FROM: expected FROM IMAGE [AS NAME]"),
        ("FROM a AS 1x\n", "D:1: FROM: invalid stage name '1x'"),
        ("FROM a AS x\nFROM b AS x\n", "D:2: FROM: duplicate stage name 'x'"),
        ("# escape=x\nFROM a\n", "D:1: invalid escape character 'x'"),
    ],
)
def test_errors_name_file_line_and_instruction(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(text, "D")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_key_values_new_and_legacy_forms() -> None:
    assert split_key_values('A=1 B="two words" C=x\\ y', "\\") == [
        ("A", "1"),
        ("B", '"two words"'),
        ("C", "x\\ y"),
    ]
    assert split_key_values("NAME some value", "\\") == [("NAME", "some value")]
    assert split_key_values("A=1 B", "\\") is None
    assert split_key_values("ALONE", "\\") is None


# -- substitution ------------------------------------------------------------------------------


ENV = {"A": "1", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "1"),
        ("${A}b", "1b"),
        ("$Ab", ""),
        ("${UNSET}", ""),
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${A:-def}", "1"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("${UNSET:-${A}x}", "1x"),
        ("'$A'", "$A"),
        ('"$A $SP"', "1 x y"),
        ("\\$A", "$A"),
        ('"\\$A\\"q"', '$A"q'),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("cost$", "cost$"),
        ("$1x", "x"),
        ("", ""),
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


def test_expand_words_splits_unquoted_values() -> None:
    assert expand_words('a "b c" $SP ${A}', ENV) == ["a", "b c", "x", "y", "1"]
    assert expand_words('"" x', ENV) == ["", "x"]
    assert expand_words("$UNSET", ENV) == []


def test_backtick_escape() -> None:
    assert expand("`$A", ENV, "`") == "$A"
    assert expand("c:\\dir", ENV, "`") == "c:\\dir"


@pytest.mark.parametrize(
    "word", ["'open", '"open', "${A", "${A:-x", "${UNSET:?must be set}", "${A%x}"]
)
def test_substitution_errors(word: str) -> None:
    with pytest.raises(SubstitutionError):
        expand(word, ENV)


def test_required_variable_message() -> None:
    with pytest.raises(SubstitutionError, match="UNSET: must be set"):
        expand("${UNSET:?must be set}", ENV)
    assert expand("${A:?x}", ENV) == "1"


# -- .dockerignore -----------------------------------------------------------------------------


def test_clean_like_go() -> None:
    assert clean("./a//b/") == "a/b"
    assert clean("a/../../b") == "../b"
    assert clean("/../a") == "/a"
    assert clean("") == "."


def test_patterns_are_anchored_at_the_root() -> None:
    rules = IgnoreRules.parse("*.log\n")
    assert rules.excluded("a.log")
    assert not rules.excluded("src/a.log")


def test_double_star_and_parent_directories() -> None:
    rules = IgnoreRules.parse("**/*.pyc\nbuild\n/dist/\n")
    assert rules.excluded("x.pyc") and rules.excluded("a/b/c.pyc")
    assert rules.excluded("build") and rules.excluded("build/deep/file")
    assert rules.excluded("dist/x")
    assert not rules.excluded("src/build") and not rules.excluded("builds")


def test_exceptions_last_match_wins() -> None:
    rules = IgnoreRules.parse("# comment\n\ndocs\n!docs/keep.md\n*.md\n!README.md\n")
    assert rules.excluded("docs/other.txt")
    assert not rules.excluded("docs/keep.md")
    assert rules.excluded("CHANGES.md")
    assert not rules.excluded("README.md")
    assert rules.has_exclusions


def test_wildcards_classes_and_escapes() -> None:
    rules = IgnoreRules.parse("a?c\n[xy]z\nlit\\*\n**\n!keep/**\n")
    assert rules.excluded("abc") and rules.excluded("anything")
    assert not rules.excluded("keep/x/y")
    rules = IgnoreRules.parse("a?c\n[^x]z\nlit\\*\n")
    assert rules.excluded("abc") and not rules.excluded("a/c")
    assert rules.excluded("yz") and not rules.excluded("xz")
    assert rules.excluded("lit*") and not rules.excluded("litx")


def test_whitespace_and_leading_slash() -> None:
    rules = IgnoreRules.parse("  /secret.txt  \n ! secret.txt.keep\n")
    assert rules.excluded("secret.txt")
    assert not rules.excluded("secret.txt.keep")
