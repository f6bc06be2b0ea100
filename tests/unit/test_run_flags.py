"""run/create flags of issue 9: --init, --sig-proxy (Docker's boolean), --pull."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.cli import build_parser
from orchestrator.commands.containers import _options


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(only=argv[0]).parse_args(list(argv))


@pytest.mark.parametrize("verb", ["run", "create"])
def test_init_sets_the_description(verb: str) -> None:
    assert _options(parse(verb, "--init", "busybox", "true")).init is True
    assert _options(parse(verb, "busybox", "true")).init is False


def test_sig_proxy_is_a_boolean_flag_that_never_takes_the_image() -> None:
    assert parse("run", "busybox", "true").sig_proxy is True
    assert parse("run", "--sig-proxy", "busybox", "true").sig_proxy is True
    args = parse("run", "--sig-proxy=false", "busybox", "true")
    assert args.sig_proxy is False and args.image == "busybox"
    assert parse("run", "--sig-proxy=true", "busybox").sig_proxy is True
    with pytest.raises(SystemExit):
        parse("run", "--sig-proxy=maybe", "busybox")


def test_pull_policy() -> None:
    assert parse("run", "busybox").pull == "missing"
    assert parse("create", "--pull", "never", "busybox").pull == "never"
    with pytest.raises(SystemExit):
        parse("run", "--pull", "sometimes", "busybox")
