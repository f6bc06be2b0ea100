"""The supervisor: one long-running trio process per state root that keeps every stack the way
its file says.

    store.py     the SQLite file: desired projects, per-container restart history, events
    plan.py      pure: (desired stack, observed containers) -> operations, each with its cause
    observe.py   what exists: container records, their identity, and the kernel's view
    engine.py    the operations, done: creates, starts, stops and removes containers
    execute.py   runs a plan in dependency order, independent operations in parallel
    health.py    healthchecks, run inside the container through the runtime's enter job
    watch.py     one task per container: its exit, its restart policy, its health
    daemon.py    the process: lock, adoption after a crash, per-project reconcile loops
    http.py      HTTP/1.1 + JSON over the unix socket in the state root (server and client)
    api.py       the API's routes

The kernel and the monitors are the truth for what runs; the database is the index. The
process never forks: containers, exec and healthchecks go through the runtime's fork server.
"""

# Files in the state root (here, where the CLI finds them without importing the supervisor).
LOCK_NAME = "supervisor.lock"
SOCKET_NAME = "supervisor.sock"
DB_NAME = "supervisor.db"
