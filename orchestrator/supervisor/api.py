"""The supervisor's API (HTTP/1.1 + JSON over ``<state root>/supervisor.sock``). See
docs/supervisor-api.md for the reference; every route answers ``{"error": ...}`` with a 4xx
status for a request it cannot do.

    GET  /v1/ping                          {"pid": N, "root": "..."}
    GET  /v1/projects                      the projects that are up
    POST /v1/projects/NAME/up              body {"spec": {...}, "options": {...}}: a stream of
                                           progress events, then {"result": {...}}
    POST /v1/projects/NAME/down            body {"timeout": S, "volumes": bool}: {"removed": [...]}
    GET  /v1/projects/NAME/containers      ps rows
    POST /v1/projects/NAME/stop|start|restart   body {"services": [...], "timeout": S}
    GET  /v1/events[?project=NAME]         a stream of events, until the client goes
    POST /v1/shutdown                      the supervisor stops (its containers go on)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from orchestrator.errors import NotFoundError, StackError, UserError
from orchestrator.supervisor import http
from orchestrator.supervisor.faults import describe, is_host_fault
from orchestrator.supervisor.store import ProjectSpec
from runtime.trace import mark

if TYPE_CHECKING:
    from orchestrator.supervisor.daemon import Supervisor, UpOptions


async def serve(supervisor: Supervisor, path: Path, *, task_status: Any) -> None:
    async def handle(request: http.Request, respond: http.Responder) -> None:
        try:
            await _route(supervisor, request, respond)
        except (UserError, StackError) as exc:
            status = 404 if isinstance(exc, NotFoundError) else 400
            raise http.HttpError(status, str(exc)) from None
        except (http.HttpError, trio.BrokenResourceError, trio.ClosedResourceError):
            raise  # (the client gone mid-answer is no bug: http drops the connection)
        except Exception as exc:  # a bug here must not take the supervisor down
            import traceback

            error: BaseException = exc
            while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
                error = error.exceptions[0]  # (a nursery's group of one: say what it holds)
            if is_host_fault(error):  # (a full disk, say: no bug, so no traceback)
                supervisor._log(f"{request.method} {request.path}: {describe(error)}")
                raise http.HttpError(500, describe(error)) from None
            supervisor._log(
                f"{request.method} {request.path}: "
                + "".join(traceback.format_exception(error)).rstrip()
            )
            raise http.HttpError(500, f"{type(error).__name__}: {error}") from None

    await http.serve(path, handle, task_status=task_status)


async def _route(sup: Supervisor, request: http.Request, respond: http.Responder) -> None:
    parts = [p for p in request.path.split("/") if p]
    method = request.method
    body = request.body if isinstance(request.body, dict) else {}
    if parts == ["v1", "ping"] and method == "GET":
        await respond.json(200, {"pid": os.getpid(), "root": str(sup.root)})
        return
    if parts == ["v1", "shutdown"] and method == "POST":
        await respond.json(200, {"stopping": True})
        sup.stop_serving()
        return
    if parts == ["v1", "projects"] and method == "GET":
        result = []
        for spec in await sup.thread(sup.store.projects):
            rows = await sup.rows(spec.name)
            result.append(
                {
                    "name": spec.name,
                    "files": list(spec.files),
                    "containers": len(rows),
                    "running": sum(1 for r in rows if r["state"] == "running"),
                }
            )
        await respond.json(200, result)
        return
    if parts == ["v1", "events"] and method == "GET":
        project = (request.query.get("project") or [""])[0]
        await respond.begin_stream()
        async with sup.events.subscribe() as events, trio.open_nursery() as nursery:

            async def until_gone() -> None:
                # (a client gone while no event comes would otherwise hold its task and
                # socket until the next one)
                await respond.until_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_gone)
            async for event in events:
                if not project or event.project == project:
                    await respond.line(event.to_dict())
        return
    if len(parts) == 4 and parts[:2] == ["v1", "containers"] and method == "POST":
        # single containers kept for their restart policy (orchestrator.keep)
        if parts[3] == "keep":
            container = await sup.thread(sup.container, parts[2])
            await sup.keep(container)
            await respond.json(200, {"kept": container.name})
            return
        if parts[3] == "release":
            container = await sup.thread(sup.container, parts[2])
            await sup.release(container.id)
            await respond.json(200, {"released": container.name})
            return
    if len(parts) == 4 and parts[:2] == ["v1", "projects"]:
        name, verb = parts[2], parts[3]
        services = tuple(str(s) for s in body.get("services") or ())
        timeout = body.get("timeout")
        timeout = float(timeout) if timeout is not None else None
        if verb == "up" and method == "POST":
            await _up(sup, name, body, respond)
            return
        if verb == "down" and method == "POST":
            removed = await sup.down(name, timeout, bool(body.get("volumes")))
            await respond.json(200, {"removed": removed})
            return
        if verb == "containers" and method == "GET":
            await respond.json(200, await sup.rows(name))
            return
        if verb == "stop" and method == "POST":
            await respond.json(200, {"stopped": await sup.stop_project(name, services, timeout)})
            return
        if verb == "start" and method == "POST":
            await respond.json(200, {"started": await sup.start_project(name, services)})
            return
        if verb in ("kill", "pause", "unpause", "rm") and method == "POST":
            names = await sup.each_container(
                name, services, verb, int(body.get("signal") or 9), bool(body.get("stop"))
            )
            key = {"kill": "killed", "pause": "paused", "unpause": "unpaused", "rm": "removed"}
            await respond.json(200, {key[verb]: names})
            return
        if verb == "restart" and method == "POST":
            stopped, started = await sup.restart_project(name, services, timeout)
            await respond.json(200, {"stopped": stopped, "started": started})
            return
    raise http.HttpError(404, f"no route {method} {request.path}")


async def _up(sup: Supervisor, name: str, body: dict[str, Any], respond: http.Responder) -> None:

    raw_spec = body.get("spec") or {}
    spec = ProjectSpec(
        name=name,
        files=tuple(raw_spec.get("files") or ()),
        workdir=str(raw_spec.get("workdir") or "."),
        environ=dict(raw_spec.get("environ") or {}),
        profiles=tuple(raw_spec.get("profiles") or ()),
        scale={str(k): int(v) for k, v in (raw_spec.get("scale") or {}).items()},
    )
    options = _up_options(body.get("options") or {})
    await respond.begin_stream()
    async with sup.events.subscribe() as events, trio.open_nursery() as nursery:

        async def forward() -> None:
            try:
                async for event in events:
                    if event.project == name:
                        await respond.line({"event": event.to_dict()})
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the client went away: the ``up`` goes on all the same, to its end

        nursery.start_soon(forward)
        try:
            plan, outcome = await sup.up(spec, options)
        except (UserError, StackError) as exc:
            await respond.line({"error": str(exc)})
            nursery.cancel_scope.cancel()
            return
        await trio.sleep(0)  # let the last events through
        nursery.cancel_scope.cancel()
    mark("up-answer")
    await respond.line(
        {
            "result": {
                "plan": plan.text(),
                "done": outcome.done,
                "failed": outcome.failed,
                "orphans": [o.name for o in plan.orphans],
            }
        }
    )


def _up_options(raw: dict[str, Any]) -> UpOptions:
    from orchestrator.supervisor.daemon import UpOptions

    return UpOptions(
        services=tuple(str(s) for s in raw.get("services") or ()),
        no_deps=bool(raw.get("no_deps")),
        force_recreate=bool(raw.get("force_recreate")),
        no_recreate=bool(raw.get("no_recreate")),
        no_start=bool(raw.get("no_start")),
        remove_orphans=bool(raw.get("remove_orphans")),
        wait=bool(raw.get("wait")),
        timeout=float(raw.get("timeout") or 120.0),
        build=bool(raw.get("build")),
    )
