"""A stack as Kubernetes objects (``orchestrator export kubernetes``).

One module per job, in the order :func:`export.export_stack` runs them:

- ``base``        options, manifests, warnings (``Note``), the shared ``Context``, ``PodParts``
- ``names``       DNS-1123 names and labels derived from stack names; collisions
- ``images``      image names; ``--registry`` rewriting and the pushes it needs
- ``storage``     PersistentVolumeClaims, emptyDir, tmpfs, bind mounts, ``volumes_from``
- ``data``        ConfigMaps and Secrets: configs, secrets, environment (env_file included)
- ``waits``       ``depends_on`` as waiting init containers; the job waiter's RBAC
- ``container``   the service's container (with ``resources``, ``probes``, ``security``)
- ``networking``  network_mode, hostname, extra_hosts; the stack's networks
- ``services``    Services: the service's name, published ports, aliases
- ``policies``    NetworkPolicies for stacks whose networks separate services
- ``workloads``   Deployment, StatefulSet or Job, restart policies, the pod spec
- ``output``      YAML: a stream, or one file per object
- ``hostfiles``   the only reader of host files (everything else is pure)

See docs/kubernetes.md for what each stack key becomes.
"""
