"""An OCI container runtime in Python.

It takes an OCI runtime-spec bundle (``config.json`` plus a root filesystem) and runs it in Linux
namespaces under cgroups, with the lifecycle runc and crun implement (create, start, state, kill,
delete). It knows nothing of stack files; ``orchestrator`` drives it.

Layout:
  errors.py     the error tree
  linux/        thin ctypes wrappers for syscalls the os module lacks
  cgroups/      one Resources model, v1 and v2 managers
  image/        the content-addressed image store and the safe layer extractor
"""
