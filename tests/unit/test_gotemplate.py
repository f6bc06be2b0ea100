"""The Go-template subset of ``--format`` and ``inspect -f`` (orchestrator.gotemplate)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.gotemplate import Format, StrMap, TemplateError, align, parse, render

DATA: dict[str, Any] = {
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "ExitCode": 0, "Running": True},
    "Config": {"Labels": {"tier": "front", "a.b": "x"}, "Cmd": ["sleep", "1d"], "Env": []},
    "NetworkSettings": {"Networks": {"shop": {"IPAddress": "10.0.0.2"}}},
    "Labels": StrMap({"k": "v", "z": "1"}),
    "Size": 1234.0,
    "Nothing": None,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Name}}", "/web"),
        ("{{.State.Status}} {{.State.Pid}}", "running 42"),
        ("{{.State.Running}}", "true"),
        ("{{json .State}}", '{"Status":"running","Pid":42,"ExitCode":0,"Running":true}'),
        ("{{json .Config.Cmd}}", '["sleep","1d"]'),
        ('{{index .Config.Labels "tier"}}', "front"),
        ('{{index .Config.Labels "a.b"}}', "x"),
        ('{{index .Labels "k"}}', "v"),
        ("{{.Labels}}", "k=v,z=1"),
        ("{{json .Labels}}", '"k=v,z=1"'),
        ('{{join .Config.Cmd ","}}', "sleep,1d"),
        ("{{upper .State.Status}}", "RUNNING"),
        ("{{lower (upper .Name)}}", "/web"),
        ("{{.State.Status | upper}}", "RUNNING"),
        ('{{printf "%s:%v" .Name .State.Pid}}', "/web:42"),
        ("{{.Config.Cmd}}", "[sleep 1d]"),
        ("{{.NetworkSettings.Networks}}", "map[shop:map[IPAddress:10.0.0.2]]"),
        ("{{.Size}}", "1234"),
        ("{{.Nothing}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        ("{{len .Config.Cmd}}", "2"),
        (r"a\tb\n{{.Name}}", "a\tb\n/web"),
        ("x {{- .Name -}} y", "x/weby"),
        ("{{`raw`}} {{1}}", "raw 1"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(parse(template), DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Name", "unclosed action"),
        ("{{.Name}}}}", "unclosed action"),
        ("{{nosuch .Name}}", 'function "nosuch" not defined'),
        ("{{range .Config.Cmd}}{{.}}{{end}}", "'range' is not supported"),
        ("{{}}", "missing value"),
        ("{{.Name .State}}", "non-function"),
        ('{{"unclosed}}', "cannot parse"),
        ("{{(.Name}}", "unclosed left paren"),
    ],
)
def test_bad_templates_are_one_line_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(template)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_field_is_an_error_when_strict() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render(parse("{{.State.Nope}}"), DATA, strict=True)
    with pytest.raises(TemplateError, match="can't index"):
        render(parse('{{index .Name "x"}}'), DATA)


def test_table_has_headers_and_aligned_columns() -> None:
    rows = [{"Names": "web", "Status": "Up 2 seconds"}, {"Names": "a-longer-name", "Status": "x"}]
    fmt = Format(r"table {{.Names}}\t{{.Status}}", {"Names": "NAMES"}, "")
    assert fmt.lines(rows) == [
        "NAMES           STATUS",
        "web             Up 2 seconds",
        "a-longer-name   x",
    ]
    assert Format("{{.Names}}", {}, "").lines(rows) == ["web", "a-longer-name"]
    default = Format("table", {"Names": "NAMES"}, r"{{.Names}}")
    assert default.lines(rows)[0] == "NAMES"


def test_align_uses_a_minimum_width() -> None:
    assert align(["a\tb", "cc\td"]) == ["a         b", "cc        d"]
