"""Every stack setting Kubernetes cannot keep is a warning naming the service and key: one case
per warning. (Warnings shown alongside a translation are tested with it, in the other files.)"""

from __future__ import annotations

import pytest

from .conftest import Export, notes

BIG = "x" * (1024 * 1024 + 1)

CASES = [
    # (stack, files, key, words the warning says)
    (
        "services: {a: {image: x, restart: 'no'}}",
        {},
        "services.a.restart",
        "restarts the containers",
    ),
    ("services: {a: {image: x}}", {}, "services.a.restart", "'no' (the default)"),
    (
        "services: {a: {image: x, restart: on-failure}}",
        {},
        "services.a.restart",
        "also a successful one",
    ),
    (
        "services: {a: {image: x, deploy: {restart_policy: {condition: any, delay: 5s}}}}",
        {},
        "services.a.deploy.restart_policy",
        "back-off",
    ),
    (
        "services: {j: {image: x, restart: on-failure}, a: {image: x, restart: always, depends_on: {j: {condition: service_completed_successfully}}}}",
        {},
        "services.j.restart",
        "gives up after 6 retries",
    ),
    (
        "services: {j: {image: x, restart: always}, a: {image: x, restart: always, depends_on: {j: {condition: service_completed_successfully}}}}",
        {},
        "services.j.restart",
        "not restarted once it succeeds",
    ),
    (
        "services: {a: {image: x, restart: always, network_mode: none}}",
        {},
        "services.a.network_mode",
        "always has a network",
    ),
    (
        "services: {b: {image: x, restart: always}, a: {image: x, restart: always, network_mode: 'service:b'}}",
        {},
        "services.a.network_mode",
        "only inside one pod",
    ),
    (
        "services: {a: {image: x, restart: always, networks: {n: {ipv4_address: 172.20.0.5}}}}\nnetworks: {n: {ipam: {config: [{subnet: 172.20.0.0/16}]}}}",
        {},
        "services.a.networks.n",
        "static addresses",
    ),
    (
        "services: {a: {image: x, restart: always, networks: [n]}}\nnetworks: {n: {ipam: {config: [{subnet: 172.20.0.0/16}]}}}",
        {},
        "networks.n.ipam",
        "no networks to configure",
    ),
    (
        "services: {a: {image: x, restart: always, networks: [n]}}\nnetworks: {n: {external: true}}",
        {},
        "networks.n.external",
        "external networks",
    ),
    (
        "services: {a: {image: x, restart: always, networks: [f, b]}, c: {image: x, restart: always, networks: [b]}}\nnetworks: {f: {}, b: {}}",
        {},
        "networks",
        "NetworkPolicies",
    ),
    (
        "services: {a: {image: x, restart: always, hostname: a.example.com}}",
        {},
        "services.a.hostname",
        "not a DNS label",
    ),
    (
        "services: {a: {image: x, restart: always, domainname: example.com}}",
        {},
        "services.a.domainname",
        "no equivalent",
    ),
    (
        "services: {a: {image: x, restart: always, extra_hosts: ['host.docker.internal:host-gateway']}}",
        {},
        "services.a.extra_hosts[0]",
        "host gateway",
    ),
    (
        "services: {a: {image: x, restart: always, user: 'app:staff'}}",
        {},
        "services.a.user",
        "'app', 'staff'",
    ),
    (
        "services: {a: {image: x, restart: always, sysctls: {net.core.somaxconn: 1024}}}",
        {},
        "services.a.sysctls.net.core.somaxconn",
        "allowed-unsafe-sysctls",
    ),
    (
        "services: {a: {image: x, restart: always, mem_limit: 1g, memswap_limit: 2g}}",
        {},
        "services.a.memswap_limit",
        "swap",
    ),
    (
        "services: {a: {image: x, restart: always, cpu_shares: 512}}",
        {},
        "services.a.cpu_shares",
        "reservations.cpus",
    ),
    (
        "services: {a: {image: x, restart: always, cpuset: '0-1'}}",
        {},
        "services.a.cpuset",
        "CPU manager",
    ),
    (
        "services: {a: {image: x, restart: always, pids_limit: 100}}",
        {},
        "services.a.pids_limit",
        "podPidsLimit",
    ),
    (
        "services: {a: {image: x, restart: always, cpu_period: 50000}}",
        {},
        "services.a.cpu_period",
        "without cpu_quota",
    ),
    (
        "services: {a: {image: x, restart: always, deploy: {resources: {limits: {cpus: '0.5'}, reservations: {cpus: '1'}}}}}",
        {},
        "services.a.deploy.resources.reservations.cpus",
        "more than the CPU limit",
    ),
    (
        "services: {a: {image: x, restart: always, ulimits: {nofile: 1024}}}",
        {},
        "services.a.ulimits.nofile",
        "ulimits",
    ),
    (
        "services: {a: {image: x, restart: always, healthcheck: {test: 'true', start_interval: 1s}}}",
        {},
        "services.a.healthcheck.start_interval",
        "every interval",
    ),
    (
        "services: {a: {image: x, restart: always, entrypoint: []}}",
        {},
        "services.a.entrypoint",
        "cannot clear",
    ),
    (
        "services: {a: {image: x, restart: always, command: []}}",
        {},
        "services.a.command",
        "cannot clear",
    ),
    (
        "services: {a: {image: x, restart: always, tmpfs: ['/t:mode=1777']}}",
        {},
        "services.a.tmpfs[0]",
        "tmpfs mode 1777",
    ),
    (
        "services: {a: {image: x, restart: always, volumes: ['/srv:/srv:rshared']}}",
        {},
        "services.a.volumes[0]",
        "propagation rshared is not kept",
    ),
    (
        "services: {a: {image: x, restart: always, volumes: ['./d:/d:ro']}}",
        {"d/sub/f": "x"},
        "services.a.volumes[0]",
        "it holds a directory (sub)",
    ),
    (
        "services: {a: {image: x, restart: always, volumes: ['./big:/big']}}",
        {"big": BIG},
        "services.a.volumes[0]",
        "more than a ConfigMap holds",
    ),
    (
        "services: {a: {image: x, restart: always, volumes_from: ['container:other']}}",
        {},
        "services.a.volumes_from[0]",
        "not known to the export",
    ),
    (
        "services: {a: {image: x, restart: always, volumes: [v:/v]}}\nvolumes: {v: {driver_opts: {type: none, o: bind, device: /srv}}}",
        {},
        "volumes.v.driver_opts",
        "storage class",
    ),
    (
        "services: {a: {image: x, restart: always, secrets: [{source: s, uid: '1000'}]}}\nsecrets: {s: {file: ./s}}",
        {"s": "x"},
        "services.a.secrets[0]",
        "fsGroup",
    ),
    (
        "services: {a: {image: x, restart: always, configs: [c]}}\nconfigs: {c: {file: ./c}}",
        {"c": BIG},
        "configs.c",
        "more than a ConfigMap holds",
    ),
    (
        "services: {a: {image: x, restart: always, depends_on: {b: {condition: service_started, restart: true}}}, b: {image: x, restart: always}}",
        {},
        "services.a.depends_on.b.restart",
        "no equivalent",
    ),
    (
        "services: {a: {image: x, restart: always, depends_on: {b: {condition: service_healthy}}}, b: {image: x, restart: always}}",
        {},
        "services.a.depends_on.b",
        "no healthcheck in the stack",
    ),
    (
        "services: {a: {image: x, restart: always, depends_on: {b: {condition: service_started, required: false}}}, b: {image: x, restart: always, profiles: [p]}}",
        {},
        "services.a.depends_on.b",
        "not exported",
    ),
    (
        "services: {a: {image: x, restart: always, depends_on: {b: {condition: service_started}}}, b: {image: x, restart: always, ports: ['53:53/udp']}}",
        {},
        "services.a.depends_on.b",
        "no TCP port",
    ),
    (
        "services: {j: {image: x, expose: [80]}, a: {image: x, restart: always, links: [j], depends_on: {j: {condition: service_completed_successfully}}}, c: {image: x, restart: always, depends_on: {j: {condition: service_started}}}}",
        {},
        "services.c.depends_on.j",
        "runs as a Job",
    ),
    (
        "services: {j: {image: x, expose: [80]}, a: {image: x, restart: always, depends_on: {j: {condition: service_completed_successfully}}}}",
        {},
        "services.j.expose",
        "gets no Service",
    ),
    (
        "services: {j: {image: x, container_name: task}, a: {image: x, restart: always, depends_on: {j: {condition: service_completed_successfully}}}}",
        {},
        "services.j.container_name",
        "has no Service",
    ),
    (
        "services: {a: {image: x, restart: always, ports: ['10.1.2.3:80:80']}}",
        {},
        "services.a.ports[0]",
        "host address 10.1.2.3",
    ),
    (
        "services: {a: {image: x, restart: always, ports: ['8000-8010:80']}}",
        {},
        "services.a.ports[0]",
        "host port range",
    ),
    (
        "services: {a: {image: x, restart: always, labels: {'bad key!': v}}}",
        {},
        "services.a.labels",
        "neither a label nor an annotation key",
    ),
]


@pytest.mark.parametrize(
    ("text", "files", "key", "words"), CASES, ids=[c[2] + ":" + c[3] for c in CASES]
)
def test_warning(export: Export, text: str, files: dict[str, str], key: str, words: str) -> None:
    found = notes(export(text, files=files))
    assert key in found, f"no warning for {key}: {found}"
    assert words in found[key]


def test_a_faithful_stack_warns_of_nothing(export: Export) -> None:
    result = export(
        """
        services:
          web:
            image: nginx
            restart: unless-stopped
            ports: ["80:80"]
            environment: {A: "1"}
            deploy: {resources: {limits: {memory: 256M}}}
            healthcheck: {test: ["CMD", "true"]}
            depends_on: {db: {condition: service_healthy}}
          db:
            image: postgres
            restart: always
            volumes: [data:/var/lib/postgresql/data]
            healthcheck: {test: pg_isready}
        volumes: {data: {}}
        """
    )
    assert result.notes == []
