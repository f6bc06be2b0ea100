"""The CLI builds only the parser of the command it is given: the index of which module makes
which command must stay in step with the modules."""

from __future__ import annotations

import argparse
import importlib

import pytest

from orchestrator.cli import _command_word, build_parser
from orchestrator.commands import COMMAND_MODULES, COMMANDS


def commands_of(module_name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    if module_name == "orchestrator.commands.bootstrap":  # it adds to `image`
        importlib.import_module("orchestrator.commands.images").add_parsers(sub)
        before = set(sub.choices["image"]._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
        importlib.import_module(module_name).add_parsers(sub)
        after = set(sub.choices["image"]._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
        return {"image"} if after - before else set()
    importlib.import_module(module_name).add_parsers(sub)
    return set(sub.choices)


def test_the_index_names_every_command_and_its_modules() -> None:
    made: dict[str, set[str]] = {}
    for module in COMMAND_MODULES:
        for command in commands_of(module):
            made.setdefault(command, set()).add(module)
    assert {command: set(modules) for command, modules in COMMANDS.items()} == made


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--rm", "-e", "A=1", "--security-opt", "seccomp=unconfined", "busybox", "true"],
        ["--root", "/x", "ps", "-a"],
        ["image", "ls"],
        ["network", "create", "n"],
    ],
)
def test_the_one_command_parser_parses_as_the_whole_one(argv: list[str]) -> None:
    word = _command_word(argv)
    assert word == next(w for w in argv if not w.startswith("-") and w != "/x")
    whole = vars(build_parser().parse_args(argv))
    alone = vars(build_parser(only=word).parse_args(argv))
    assert alone == whole
