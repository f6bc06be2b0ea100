"""One task per running container: it hears the container's end from its monitor (no polling),
applies the restart policy (orchestrator.backoff), and runs its healthcheck.

A watch ends when its container ends for good (the policy says no more), is stopped by hand,
or is removed. The supervisor keeps one per container id and never two.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import trio

from orchestrator.backoff import RestartLoop, backoff_of
from orchestrator.containers import Container
from orchestrator.stack.model import RestartPolicy
from orchestrator.supervisor import health
from orchestrator.supervisor.faults import describe
from runtime.errors import Error

if TYPE_CHECKING:
    from orchestrator.supervisor.daemon import Supervisor


class Watch:
    def __init__(
        self,
        supervisor: Supervisor,
        container: Container,
        policy: RestartPolicy,
        check: health.Check | None,
        restart_when_unhealthy: bool = False,
    ) -> None:
        self.supervisor = supervisor
        self.container = container
        self.policy = policy
        self.check = check
        self.restart_when_unhealthy = restart_when_unhealthy
        self.loop = RestartLoop(
            supervisor.client, container.id, policy, self._relaunch, backoff=backoff_of(policy)
        )
        self._health_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self.last_error: str | None = None  # why its latest restart failed (``ps``)
        self.done = trio.Event()

    @property
    def id(self) -> str:
        return self.container.id

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            if self.check is None:
                # (no healthcheck: the loop alone, without a nursery of its own to start it in;
                # an up of 50 services starts 50 of these)
                await self._loop(task_status=task_status)
                return
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._start_health()
                await nursery.start(self._loop)  # once the loop listens for the exit
                task_status.started()
                started = True
            # (the loop cancels the health checks when it ends)
        except Exception as exc:
            # It runs in the supervisor's nursery: whatever goes wrong here (a bug, a fault of
            # the host) ends this watch, said in the log, never the supervisor.
            self.supervisor._log(f"{self.container.name}: its watch ended: {_said(exc)}")
            if not started:
                with contextlib.suppress(RuntimeError):  # (unless the loop said so already)
                    task_status.started()
        finally:
            self.done.set()

    async def _loop(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        decision = await self.loop.run(task_status=task_status)
        await self.supervisor.record_exit(self.container, self.loop.last_exit)
        await self.supervisor.emit(
            self.container,
            "die" if decision.reason != "stopped by hand" else "stop",
            decision.reason,
        )
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _start_health(self) -> None:
        if self.check is None or self._nursery is None:
            return
        if self._health_scope is not None:
            self._health_scope.cancel()
        scope = trio.CancelScope()
        self._health_scope = scope
        self._nursery.start_soon(self._health, scope)

    async def _health(self, scope: trio.CancelScope) -> None:
        assert self.check is not None
        with scope:
            await health.monitor_health(
                self.supervisor.client, self.id, self.check, self._health_changed
            )

    async def _health_changed(self, status: str) -> None:
        await self.supervisor.set_health(self.container, status)
        if status == health.UNHEALTHY and self.restart_when_unhealthy:
            # (Docker never does this; Kubernetes' liveness probes do.) The restart policy
            # then decides, as after any other exit.
            try:
                await self.supervisor.client.kill(self.id, 9)
            except Exception:
                pass

    async def _relaunch(self) -> None:
        sup = self.supervisor
        if not self.container.directory.exists():
            # removed behind the supervisor's back (``rm -f`` with none running): nothing to
            # start, ever again
            self.loop.cancel()
            raise Error(f"container {self.container.name} was removed")
        try:
            # (``up`` may have started it meanwhile: then this run is the one to watch)
            await sup.start_if_stopped(self.container)
        except Exception as exc:
            # Whatever it is (a full disk, a bundle gone, the runtime's refusal), the loop
            # counts a failed start as a run that failed at once: backoff, then again.
            self.last_error = _said(exc)
            sup._log(f"{self.container.name}: restart failed: {self.last_error}")
            await sup.emit(self.container, "restart failed", self.last_error)
            await sup.record_exit(self.container, self.loop.last_exit)
            if isinstance(exc, Error):
                raise
            raise Error(self.last_error) from exc
        self.last_error = None
        self._start_health()
        # (written after the start: the container is back first)
        await sup.record_exit(self.container, self.loop.last_exit)
        await self.supervisor.count_restart(self.container)
        if self.supervisor._nursery is not None:
            # (not waited for: this loop must hear the container's next exit meanwhile)
            self.supervisor._nursery.start_soon(
                self.supervisor.dependency_restarted, self.container
            )

    async def stop(self, timeout: float, signal: int | None = None) -> Any:
        """A stop by hand: no restart after it."""
        if self._health_scope is not None:
            self._health_scope.cancel()
        result = await self.loop.stop(timeout, signal)
        return result


def _said(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # (a nursery's group of one: say what it holds)
    return describe(exc)
