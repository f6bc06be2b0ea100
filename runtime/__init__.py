"""An OCI container runtime in Python.

It takes an OCI runtime-spec bundle (``config.json`` plus a root filesystem) and runs it in Linux
namespaces under cgroups, with the lifecycle runc and crun implement (create, start, state, kill,
delete). It knows nothing of stack files; ``orchestrator`` drives it.

Layout, in the order a container comes to life:
  api.py         Runtime: the lifecycle over a state directory (the Python API)
  cli.py         ``python -m runtime``: the OCI command line
  spec.py        config.json -> a validated, frozen ContainerConfig; specgen.py: Docker's defaults
  forkserver.py  the warm process (and its template) that forks monitors; pool.py: pre-made ones
                 (cgroup v1), pool2.py: pre-made ones on cgroup v2 (the init cloned into its cgroup)
  zygote.py      the fork server's warm copy of a command line; warmcli.py: its caller's side
  monitor.py     the per-container monitor, its short-lived setup child, exit records, waiters
  userns.py      user namespaces: id maps and host paths staged for an unprivileged root
  init.py        the container's first process, from fork to execve
  rootfs.py      mounts inside the container root, pivot_root, masked and read-only paths
  users.py       user[:group] from the image's own /etc/passwd and /etc/group
  state.py       state files, liveness from the kernel, the state machine
  logs.py        JSON-lines logs, rotation, tails; attach.py: joining a container's terminal
  channel.py     line-delimited JSON (and file descriptors) between the processes above
  trace.py       phase timestamps for benchmarks (ORCHESTRATOR_TRACE)
  errors.py      the error tree
  linux/         ctypes wrappers for syscalls the os module lacks; capabilities
  cgroups/       one Resources model, v1 and v2 managers, the v2 eBPF device filter
  image/         the image store, safe layer extraction, formats, the registry client
"""
