"""Errors raised by the runtime.

Error                     anything the runtime refuses or fails at; one clear message
 ├── BundleError          the OCI bundle or its config.json is invalid
 ├── NotFound             no container (or image) of that id
 ├── AlreadyExists        the id is taken
 ├── StateError           the operation is not allowed in the container's current state
 └── SetupError           the kernel refused a step of container setup (carries the step)
"""

from __future__ import annotations


class Error(Exception):
    """Base of every runtime error; ``str()`` is a one-line message for people."""


class BundleError(Error):
    pass


class NotFound(Error):
    pass


class AlreadyExists(Error):
    pass


class StateError(Error):
    """An illegal state transition: names the container, the state it is in and the operation."""

    def __init__(self, container_id: str, state: str, operation: str) -> None:
        super().__init__(f"container {container_id} is {state}: cannot {operation} it")
        self.container_id = container_id
        self.state = state
        self.operation = operation


class SetupError(Error):
    pass
