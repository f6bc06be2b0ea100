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
        ('{{template "x"}}', "'template' is not supported"),
        ('{{define "x"}}y{{end}}', "'define' is not supported"),
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


# -- control structures and variables: the templates Docker users copy ---------------------

INSPECT: dict[str, Any] = {
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "ExitCode": 0, "Pid": 42, "Health": None},
    "Config": {"Labels": {"tier": "front", "app": "shop", "empty": ""}, "Env": ["A=1", "B=2"]},
    "NetworkSettings": {
        "Networks": {
            "shop": {"IPAddress": "10.0.0.2", "Gateway": "10.0.0.1"},
            "bridge": {"IPAddress": "172.17.0.5", "Gateway": "172.17.0.1"},
        }
    },
    "Mounts": [
        {"Type": "bind", "Source": "/srv/conf", "Destination": "/etc/app"},
        {"Type": "volume", "Source": "/var/lib/v/data", "Destination": "/data"},
        {"Type": "bind", "Source": "/srv/logs", "Destination": "/logs"},
    ],
    "Exited": {"Status": "exited", "Running": False, "ExitCode": 3, "Health": {"Status": "ok"}},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # the Docker examples; maps go in sorted key order, as Go ranges over them
        ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "172.17.0.5 10.0.0.2 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "app=shop empty= tier=front "),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if .Exited.Running}}up{{else}}down{{end}}", "down"),
        (
            "{{json .Mounts}}",
            '[{"Type":"bind","Source":"/srv/conf","Destination":"/etc/app"},'
            '{"Type":"volume","Source":"/var/lib/v/data","Destination":"/data"},'
            '{"Type":"bind","Source":"/srv/logs","Destination":"/logs"}]',
        ),
        (
            '{{range .Mounts}}{{if eq .Type "bind"}}{{.Source}} {{end}}{{end}}',
            "/srv/conf /srv/logs ",
        ),
        ("{{with .State.Health}}{{.Status}}{{else}}none{{end}}", "none"),
        ("{{with .Exited.Health}}{{.Status}}{{else}}none{{end}}", "ok"),
        ("{{with .Missing}}{{.}}{{else}}none{{end}}", "none"),
        (
            "{{$name := .Name}}{{range .Mounts}}{{$name}}:{{.Destination}} {{end}}",
            "/web:/etc/app /web:/data /web:/logs ",
        ),
        (
            "{{range .NetworkSettings.Networks}}{{.}}{{end}}",
            "map[Gateway:172.17.0.1 IPAddress:172.17.0.5]map[Gateway:10.0.0.1 IPAddress:10.0.0.2]",
        ),
        # range forms, else, break and continue
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
        ("{{range $e := .Config.Env}}[{{$e}}]{{end}}", "[A=1][B=2]"),
        (
            "{{range $k, $n := .NetworkSettings.Networks}}{{$k}}/{{$n.Gateway}} {{end}}",
            "bridge/172.17.0.1 shop/10.0.0.1 ",
        ),
        ("{{range .Nothing}}x{{else}}no items{{end}}", "no items"),
        ("{{range .Missing}}x{{else}}no items{{end}}", "no items"),
        ("{{range .Config.Cmd}}x{{else}}none{{end}}", "none"),
        (
            '{{range .Mounts}}{{if eq .Type "volume"}}{{continue}}{{end}}{{.Destination}}{{end}}',
            "/etc/app/logs",
        ),
        ("{{range .Mounts}}{{.Destination}}{{break}}{{end}}", "/etc/app"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        # if chains, Go's truth
        ('{{if eq .State.Status "exited"}}e{{else if .State.Running}}r{{else}}?{{end}}', "r"),
        ('{{if eq .Exited.Status "paused"}}p{{else if .Exited.Running}}r{{else}}?{{end}}', "?"),
        ("{{with .Missing}}a{{else with .State}}{{.Pid}}{{else}}c{{end}}", "42"),
        ('{{if 0}}a{{end}}{{if 0.0}}b{{end}}{{if ""}}c{{end}}{{if .Config.Cmd}}d{{end}}', ""),
        ("{{if .Nothing}}a{{end}}{{if .Missing}}b{{end}}{{if false}}c{{end}}", ""),
        ('{{if 1}}a{{end}}{{if "x"}}b{{end}}{{if .Mounts}}c{{end}}{{if .State}}d{{end}}', "abcd"),
        ('{{if index .Config.Labels "empty"}}set{{else}}unset{{end}}', "unset"),
        # variables: $, paths on variables, assignment to an outer variable, scopes
        ("{{$.Name}} {{$.State.Pid}}", "/web 42"),
        ("{{range .Mounts}}{{$.Name}}{{end}}", "/web/web/web"),
        ("{{$s := .State}}{{$s.Pid}}", "42"),
        (
            '{{$b := false}}{{range .Mounts}}{{if eq .Type "volume"}}{{$b = true}}{{end}}{{end}}{{$b}}',
            "true",
        ),
        ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),
        ("{{$x := 1}}{{range .Mounts}}{{$x = 2}}{{end}}{{$x}}", "2"),
        ("{{with $h := .Exited.Health}}{{$h.Status}}{{end}}", "ok"),
        ("{{$n := len .Mounts}}{{$n}}", "3"),
        # comparison and logic functions
        ('{{eq .State.Status "created" "running"}}', "true"),
        ('{{eq .State.Status "created" "exited"}}', "false"),
        ("{{eq .State.Pid 42}} {{eq .State.Running true}} {{eq .Nothing nil}}", "true true true"),
        ('{{ne .State.Status "running"}} {{ne 1 2}}', "false true"),
        (
            '{{lt 1 2}} {{le 2 2}} {{gt 1 2.5}} {{ge .State.Pid 42}} {{lt "a" "b"}}',
            "true true false true true",
        ),
        (
            '{{and .State.Running .Name}} {{and 1 0 "x"}} {{or .Missing "default"}} {{or 0 ""}}',
            "/web 0 default ",
        ),
        ("{{not .State.Running}} {{not .Config.Cmd}}", "false true"),
        ("{{if and .State.Running (not .State.Health)}}up, no check{{end}}", "up, no check"),
        ("{{if or (eq .State.ExitCode 1) (eq .State.ExitCode 0)}}ok{{end}}", "ok"),
        ("{{.State.Running | not}}", "false"),
        # len, index, slice, parentheses with fields, printf's numbers, comments
        ("{{len .Mounts}} {{len .Config.Labels}} {{len .Name}}", "3 3 4"),
        ("{{(index .Mounts 1).Destination}}", "/data"),
        ('{{index .NetworkSettings.Networks "shop" "IPAddress"}}', "10.0.0.2"),
        ("{{slice .Name 1}} {{slice .Name 1 3}} {{slice .Config.Env 1}}", "web we [B=2]"),
        ('{{printf "%d-%03d %.1f %s %q" .State.Pid 7 2.25 .Name .Name}}', '42-007 2.2 /web "/web"'),
        ('{{printf "%d" "x"}} {{printf "%s"}} {{printf "%%"}}', "%!d(string=x) %!s(MISSING) %"),
        ("a {{/* a comment */}}b {{- /* trimmed */ -}} c", "a bc"),
        ('{{"a}}b"}}', "a}}b"),
        ("{{range .Mounts}}\n  {{- .Destination}}{{end}}", "/etc/app/data/logs"),
    ],
)
def test_control_structures(template: str, expected: str) -> None:
    assert render(parse(template), INSPECT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{if .State.Running}}up", "unclosed {{if}}: missing {{end}}"),
        ("{{range .Mounts}}{{if .Type}}x{{end}}", "unclosed {{range}}: missing {{end}}"),
        ("{{with .State}}{{else}}", "unclosed {{with}}: missing {{end}}"),
        ("x{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{if 1}}a{{else}}b{{else}}c{{end}}", "{{if}} has two {{else}}"),
        ("{{range .Mounts}}{{else if 1}}{{end}}", "unexpected 'if' after {{else}}"),
        ("{{if 1}}{{end .Name}}", "unexpected '.Name' in {{end}}"),
        ("{{if}}{{end}}", "missing value for if"),
        ("{{range}}{{end}}", "missing value for range"),
        ("{{$x}}", 'undefined variable "$x"'),
        ("{{$x = 1}}", 'undefined variable "$x"'),
        ("{{if 1}}{{$y := 1}}{{end}}{{$y}}", 'undefined variable "$y"'),
        ("{{range $i, $e := .Mounts}}{{end}}{{$e}}", 'undefined variable "$e"'),
        ("{{$x := $x}}", 'undefined variable "$x"'),
        ("{{with $a, $b := .State}}{{end}}", "too many declarations in with"),
        ("{{$a.B := 1}}", "cannot assign to $a.B"),
        ("{{break}}", "{{break}} outside {{range}}"),
        ("{{range .Mounts}}{{else}}{{continue}}{{end}}", "{{continue}} outside {{range}}"),
        (
            "{{range .Mounts}}{{if eq .Type}}{{nosuch}}{{end}}{{end}}",
            'function "nosuch" not defined',
        ),
        ("{{/* unclosed", "unclosed comment"),
        ("{{/* x */ .Name}}", "comment ends before closing delimiter"),
        ("{{nil}}", "nil is not a command"),
        ("{{.Name | if}}", "unexpected 'if'"),
    ],
)
def test_bad_control_structures_are_one_line_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(template)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{range .Name}}{{end}}", "range can't iterate over /web"),
        ('{{eq .State.Pid "42"}}', "incompatible types for comparison"),
        ("{{eq .Mounts .Mounts}}", "non-comparable type"),
        ("{{lt .Mounts 1}}", "invalid type for comparison"),
        ("{{eq .Name}}", "missing argument for comparison"),
        ("{{index .Mounts 3}}", "index out of range: 3"),
        ("{{slice .Name 2 9}}", "index out of range"),
        ("{{with .State.Health}}{{.Status}}{{end}}{{.State.Health.Status}}", "can't evaluate"),
        ("{{and}}", "and needs at least 1 argument"),
        ("{{range $m := .Mounts}}{{$m.Type.X}}{{end}}", "can't evaluate field X (at <$m.Type.X>)"),
    ],
)
def test_errors_while_rendering_are_one_line(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(parse(template), INSPECT)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_strict_rows_make_a_missing_field_an_error_inside_blocks_too() -> None:
    template = parse("{{range .Mounts}}{{.Nope}}{{end}}")
    assert render(template, INSPECT) == "<no value><no value><no value>"
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render(template, INSPECT, strict=True)


def test_variables_do_not_leak_between_renders() -> None:
    template = parse("{{$n := .Name}}{{range .Mounts}}{{$n = .Type}}{{end}}{{$n}}")
    assert render(template, INSPECT) == "bind"
    assert render(template, {"Name": "x", "Mounts": []}) == "x"


def test_a_table_with_ranges_and_ifs_in_its_cells() -> None:
    rows = [
        {"Names": "web", "Labels": StrMap({"tier": "front", "app": "shop"}), "State": "running"},
        {"Names": "a-longer-name", "Labels": StrMap(), "State": "exited"},
    ]
    fmt = Format(
        r"table {{.Names}}\t{{range $k, $v := .Labels}}{{$k}}={{$v}};{{else}}-{{end}}"
        r'\t{{if eq .State "running"}}up{{else}}down{{end}}\t{{with .State}}{{.}}{{end}}',
        {"Names": "NAMES", "State": "STATUS"},
        "",
    )
    # the header row: a block over a column (or a comparison of it) prints the column's name
    assert fmt.lines(rows) == [
        "NAMES           LABELS                 STATUS    STATUS",
        "web             app=shop;tier=front;   up        running",
        "a-longer-name   -                      down      exited",
    ]
