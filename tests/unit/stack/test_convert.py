"""Every supported service key, and the cross-key rules, from file to model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import StackError
from orchestrator.stack import (
    Build,
    DependsOn,
    ExtraHost,
    FileRef,
    FrozenMap,
    Healthcheck,
    IpamConfig,
    Link,
    Mount,
    Port,
    Resources,
    RestartPolicy,
    ServiceNetwork,
    Stack,
    Ulimit,
    VolumesFrom,
)
from orchestrator.stack.convert import host_oci_platform

from .conftest import Load

Fails = Callable[..., StackError]

NS = 1_000_000_000

KITCHEN_SINK = f"""
name: sink
x-top: {{a: 1}}
services:
  web:
    image: nginx:1.25
    build:
      context: ./web
      dockerfile: Dockerfile.prod
      args: [VERSION=1.2, FLAG]
      target: prod
    command: nginx -g "daemon off;"
    entrypoint: ["/docker-entrypoint.sh"]
    environment:
      A: "1"
      B: 2
      C: true
      D:
    env_file: [web.env]
    working_dir: /srv
    user: "1000:1000"
    hostname: web-1
    domainname: example.com
    labels: [com.example.role=front]
    depends_on:
      db:
        condition: service_healthy
        restart: true
      cache:
        condition: service_started
        required: false
    links: ["db:database", cache]
    volumes:
      - data:/var/lib/data
      - ./conf:/etc/conf:ro
      - /abs:/abs:rw,z,rshared
      - /anon
      - type: bind
        source: ./html
        target: /usr/share/nginx/html
        read_only: true
        bind: {{create_host_path: false, propagation: rprivate}}
      - type: volume
        source: data
        target: /data2
        volume: {{nocopy: true, subpath: sub}}
      - type: tmpfs
        target: /scratch
        tmpfs: {{size: 64m, mode: "1777"}}
    volumes_from: ["db:ro", "container:other"]
    tmpfs: ["/run:size=16m,mode=0755", /tmp]
    ports:
      - "80"
      - "8080:80"
      - "127.0.0.1:8443:443/tcp"
      - "[::1]:5353:53/udp"
      - "9000-9001:9000-9001"
      - "7000-7010:7000"
      - 22
      - target: 3000
        published: "3000-3005"
        host_ip: 0.0.0.0
        protocol: sctp
        mode: host
        name: app
        app_protocol: http
    expose: [3306, "5000-5001", "53/udp"]
    networks:
      front:
        aliases: [www, web.local]
        ipv4_address: 172.30.0.10
      back:
    extra_hosts: ["host.one:10.0.0.1", "host.two=::1"]
    restart: on-failure:5
    deploy:
      replicas: 2
      resources:
        limits: {{cpus: "1.5", memory: 512m, pids: 100}}
        reservations: {{cpus: 0.25, memory: 128m}}
    memswap_limit: 1g
    cpu_shares: 512
    cpu_quota: 50000
    cpu_period: 100000
    cpuset: 0-1,3
    ulimits:
      nofile: {{soft: 1024, hard: 4096}}
      nproc: 512
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 1m30s
      timeout: 10s
      retries: 3
      start_period: 40s
      start_interval: 5s
    stop_signal: SIGQUIT
    stop_grace_period: 1m
    init: true
    read_only: true
    cap_add: [NET_ADMIN, cap_sys_time]
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true, "seccomp:profiles/strict.json"]
    sysctls: {{net.core.somaxconn: 1024}}
    shm_size: 1.5g
    tty: true
    stdin_open: true
    profiles: [frontend]
    platform: {host_oci_platform()}
    secrets:
      - token
      - source: cert
        target: server.crt
        uid: "103"
        gid: "103"
        mode: 0440
    configs:
      - app_conf
      - source: app_conf
        target: /etc/app.conf
        mode: 0o600
    x-custom: {{anything: [1, 2]}}
  db:
    image: postgres
    scale: 1
    mem_limit: 1g
    mem_reservation: 256m
    cpus: 2
    pids_limit: -1
    restart: always
    healthcheck:
      test: pg_isready
  cache:
    image: redis
    network_mode: "service:db"
    deploy:
      restart_policy:
        condition: on-failure
        max_attempts: 3
        delay: 5s
        window: 2m
  off:
    image: busybox
    healthcheck:
      disable: true
networks:
  front:
    driver: bridge
    ipam:
      config:
        - subnet: 172.30.0.0/24
          gateway: 172.30.0.1
          ip_range: 172.30.0.128/25
  back:
    internal: true
    labels: {{tier: back}}
  outside:
    external: true
    name: real-outside
volumes:
  data:
    driver: local
    driver_opts: {{type: tmpfs, device: tmpfs}}
  ext:
    external: true
secrets:
  token:
    environment: TOKEN
  cert:
    file: ./cert.pem
configs:
  app_conf:
    content: "key = value"
"""


@pytest.fixture
def sink(load: Load, project: Path) -> Stack:
    (project / "web.env").write_text("FROM_FILE=yes\nA=overridden-by-environment\n")
    return load(
        KITCHEN_SINK, env={"TOKEN": "s3cret", "FLAG": "x", "D": "from-shell"}, profiles=["frontend"]
    )


def test_kitchen_sink_service(sink: Stack, project: Path) -> None:
    stack = sink
    web = stack.services["web"]
    p = str(project)
    assert web.image == "nginx:1.25"
    assert web.build == Build(
        f"{p}/web", "Dockerfile.prod", FrozenMap({"VERSION": "1.2", "FLAG": None}), "prod"
    )
    assert web.command == ("nginx", "-g", "daemon off;")
    assert web.entrypoint == ("/docker-entrypoint.sh",)
    assert dict(web.environment) == {
        "FROM_FILE": "yes",
        "A": "1",
        "B": "2",
        "C": "true",
        "D": "from-shell",
    }
    assert (web.working_dir, web.user, web.hostname, web.domainname) == (
        "/srv",
        "1000:1000",
        "web-1",
        "example.com",
    )
    assert dict(web.labels) == {"com.example.role": "front"}
    assert web.depends_on == (  # sorted by name
        DependsOn("cache", "service_started", required=False),
        DependsOn("db", "service_healthy", restart=True),
    )
    assert web.links == (Link("db", "database"), Link("cache", "cache"))
    assert web.volumes == (
        Mount("volume", "/var/lib/data", "data"),
        Mount("bind", "/etc/conf", f"{p}/conf", read_only=True),
        Mount("bind", "/abs", "/abs", selinux="z", propagation="rshared"),
        Mount("volume", "/anon"),
        Mount(
            "bind",
            "/usr/share/nginx/html",
            f"{p}/html",
            True,
            create_host_path=False,
            propagation="rprivate",
        ),
        Mount("volume", "/data2", "data", nocopy=True, subpath="sub"),
        Mount("tmpfs", "/scratch", tmpfs_size=64 * 2**20, tmpfs_mode=0o1777),
    )
    assert web.volumes_from == (
        VolumesFrom("db", read_only=True),
        VolumesFrom("other", "container"),
    )
    assert web.tmpfs == (
        Mount("tmpfs", "/run", tmpfs_size=16 * 2**20, tmpfs_mode=0o755),
        Mount("tmpfs", "/tmp"),
    )
    assert web.ports == (
        Port(80),
        Port(80, 8080, 8080),
        Port(443, 8443, 8443, "127.0.0.1"),
        Port(53, 5353, 5353, "::1", "udp"),
        Port(9000, 9000, 9000),
        Port(9001, 9001, 9001),
        Port(7000, 7000, 7010),
        Port(22),
        Port(3000, 3000, 3005, "0.0.0.0", "sctp", "host", "app", "http"),
    )
    assert web.ports[6].published == "7000-7010"
    assert web.expose == ("3306", "5000-5001", "53/udp")
    assert web.networks == (  # sorted by name, as Compose orders them
        ServiceNetwork("back"),
        ServiceNetwork("front", ("www", "web.local"), "172.30.0.10"),
    )
    assert web.extra_hosts == (ExtraHost("host.one", "10.0.0.1"), ExtraHost("host.two", "::1"))
    assert web.restart == RestartPolicy("on-failure", 5)
    assert web.replicas == 2
    assert web.resources == Resources(
        memory_limit=512 * 2**20,
        memory_reservation=128 * 2**20,
        memswap_limit=2**30,
        cpus=1.5,
        cpu_reservation=0.25,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset="0-1,3",
        pids_limit=100,
        shm_size=int(1.5 * 2**30),
    )
    assert web.ulimits == (Ulimit("nofile", 1024, 4096), Ulimit("nproc", 512, 512))
    assert web.healthcheck == Healthcheck(
        ("CMD", "curl", "-f", "http://localhost"), 90 * NS, 10 * NS, 3, 40 * NS, 5 * NS
    )
    assert (web.stop_signal, web.stop_grace_period_ns) == ("SIGQUIT", 60 * NS)
    assert (web.init, web.read_only, web.tty, web.stdin_open) == (True, True, True, True)
    assert web.cap_add == ("NET_ADMIN", "SYS_TIME")
    assert web.cap_drop == ("ALL",)
    assert web.no_new_privileges
    assert web.seccomp == f"{p}/profiles/strict.json"  # read when the container is made
    assert dict(web.sysctls) == {"net.core.somaxconn": "1024"}
    assert web.profiles == ("frontend",)
    assert web.platform == host_oci_platform()
    assert web.secrets == (
        FileRef("token", "/run/secrets/token"),
        FileRef("cert", "/run/secrets/server.crt", "103", "103", 0o440),
    )
    assert web.configs == (
        FileRef("app_conf", "/app_conf"),
        FileRef("app_conf", "/etc/app.conf", mode=0o600),
    )
    assert dict(web.extensions) == {"x-custom": {"anything": [1, 2]}}
    assert len(web.config_hash) == 64


def test_kitchen_sink_others(sink: Stack, project: Path) -> None:
    stack = sink
    db = stack.services["db"]
    assert db.resources == Resources(
        memory_limit=2**30, memory_reservation=256 * 2**20, cpus=2.0, pids_limit=-1
    )
    assert db.restart == RestartPolicy("always")
    assert db.healthcheck == Healthcheck(("CMD-SHELL", "pg_isready"))
    cache = stack.services["cache"]
    assert cache.network_mode == "service:db"
    assert cache.networks == ()
    assert cache.restart == RestartPolicy("on-failure", 3, 5 * NS, 120 * NS)
    assert stack.services["off"].healthcheck == Healthcheck(("NONE",), disable=True)
    assert stack.services["off"].networks == (ServiceNetwork("default"),)

    nets = stack.networks
    assert nets["front"].name == "sink_front"
    assert nets["front"].ipam == (IpamConfig("172.30.0.0/24", "172.30.0.1", "172.30.0.128/25"),)
    assert nets["back"].internal and dict(nets["back"].labels) == {"tier": "back"}
    assert nets["outside"].external and nets["outside"].name == "real-outside"
    assert nets["default"].name == "sink_default"
    vols = stack.volumes
    assert vols["data"].name == "sink_data" and dict(vols["data"].driver_opts) == {
        "type": "tmpfs",
        "device": "tmpfs",
    }
    assert vols["ext"].external and vols["ext"].name == "ext"
    assert stack.secrets["token"].content == "s3cret"
    assert stack.secrets["cert"].file == f"{project}/cert.pem"
    assert stack.configs["app_conf"].content == "key = value"
    assert dict(stack.extensions) == {"x-top": {"a": 1}}


def test_profiles_disable_services(load: Load) -> None:
    text = """
    services:
      a: {image: x}
      b: {image: x, profiles: [debug]}
    """
    stack = load(text)
    assert list(stack.services) == ["a"] and stack.disabled_services == ("b",)
    assert list(load(text, profiles=["debug"]).services) == ["a", "b"]
    assert list(load(text, env={"COMPOSE_PROFILES": "debug"}).services) == ["a", "b"]


def test_model_is_frozen(load: Load) -> None:
    stack = load("services: {a: {image: x, environment: {K: v}}}")
    svc = stack.services["a"]
    with pytest.raises(AttributeError):
        svc.image = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        svc.environment["K"] = "w"  # type: ignore[index]
    assert hash(svc) == hash(stack.services["a"])


@pytest.mark.parametrize(
    ("service", "path", "words"),
    [
        ("{image: x, scale: 2, deploy: {replicas: 3}}", "services.s.scale", "differ"),
        (
            "{image: x, container_name: one, scale: 2}",
            "services.s.container_name",
            "must be unique",
        ),
        (
            "{image: x, mem_limit: 1g, deploy: {resources: {limits: {memory: 2g}}}}",
            "services.s.mem_limit",
            "must be the same",
        ),
        (
            "{image: x, cpus: 1, deploy: {resources: {limits: {cpus: 2}}}}",
            "services.s.cpus",
            "must be the same",
        ),
        ("{image: x, memswap_limit: 1g}", "services.s.memswap_limit", "needs a memory limit"),
        (
            "{image: x, mem_limit: 2g, memswap_limit: 1g}",
            "services.s.memswap_limit",
            "at least the memory limit",
        ),
        (
            "{image: x, mem_limit: 1g, mem_reservation: 2g}",
            "services.s.mem_reservation",
            "not be more than",
        ),
        ("{image: x, cpu_shares: 1}", "services.s.cpu_shares", "at least 2"),
        ("{image: x, cpu_quota: 10}", "services.s.cpu_quota", "at least 1000"),
        ("{image: x, cpu_period: 10}", "services.s.cpu_period", "at least 1000"),
        ("{image: x, volumes: [nope:/x]}", "services.s.volumes[0]", "undefined volume 'nope'"),
        ("{image: x, volumes: ['rel/x']}", "services.s.volumes[0]", "must be an absolute path"),
        (
            "{image: x, volumes: ['/a:/b:bogus']}",
            "services.s.volumes[0]",
            "unknown volume option 'bogus'",
        ),
        (
            "{image: x, volumes: [{type: bind, target: /x}]}",
            "services.s.volumes[0]",
            "needs a 'source'",
        ),
        ("{image: x, networks: [nope]}", "services.s.networks[0]", "undefined network 'nope'"),
        (
            "{image: x, network_mode: host, networks: [default]}",
            "services.s.networks",
            "cannot be combined",
        ),
        ("{image: x, secrets: [nope]}", "services.s.secrets[0]", "undefined secret 'nope'"),
        ("{image: x, configs: [nope]}", "services.s.configs[0]", "undefined config 'nope'"),
        ("{image: x, platform: wasi/wasm}", "services.s.platform", "does not match this machine"),
        (
            "{image: x, healthcheck: {test: [CMD]}}",
            "services.s.healthcheck.test",
            "needs a command",
        ),
        (
            "{image: x, healthcheck: {test: [RUN, x]}}",
            "services.s.healthcheck.test",
            "must start with CMD",
        ),
        (
            "{image: x, healthcheck: {test: [], interval: 1s}}",
            "services.s.healthcheck.test",
            "is empty",
        ),
        (
            "{image: x, healthcheck: {test: x, disable: true}}",
            "services.s.healthcheck.test",
            "disable",
        ),
        (
            "{image: x, healthcheck: {test: x, interval: 10}}",
            "services.s.healthcheck.interval",
            "needs a unit",
        ),
        (
            "{image: x, security_opt: [apparmor=unconfined]}",
            "services.s.security_opt[0]",
            "not supported yet",
        ),
        ("{image: x, cap_add: [FLY]}", "services.s.cap_add[0]", "unknown capability"),
        ("{image: x, ulimits: {bogus: 1}}", "services.s.ulimits.bogus", "unknown ulimit"),
        (
            "{image: x, ulimits: {nofile: {soft: 10, hard: 5}}}",
            "services.s.ulimits.nofile",
            "above the hard limit",
        ),
        ("{image: x, hostname: 'a b'}", "services.s.hostname", "not a valid host name"),
        ("{image: x, hostname: 'evil#x'}", "services.s.hostname", "not a valid host name"),
        (
            "{image: x, extra_hosts: ['bad host:1.2.3.4']}",
            "services.s.extra_hosts[0]",
            "not a valid host name",
        ),
        ("{image: x, extra_hosts: ['h:not-ip']}", "services.s.extra_hosts[0]", "not an IP address"),
        ("{image: x, links: ['db:bad alias']}", "services.s.links[0]", "not a valid host name"),
        ("{image: x, container_name: '-x'}", "services.s.container_name", "container_name"),
        ("{image: x, stop_signal: SIGNOPE}", "services.s.stop_signal", "not a signal"),
        ("{image: x, ports: ['99999:80']}", "services.s.ports[0]", "out of range"),
        (
            "{image: x, ports: [{target: 80, published: 'x'}]}",
            "services.s.ports[0].published",
            "not a port",
        ),
        ("{image: x, restart: sometimes}", "services.s.restart", "must be one of"),
        (
            "{image: x, restart: always, deploy: {restart_policy: {condition: none}}}",
            "services.s.restart",
            "disagree",
        ),
        (
            "{image: x, x-restart-backoff: {delay: 1}}",
            "services.s.x-restart-backoff.delay",
            "needs a unit",
        ),
        (
            "{image: x, x-restart-backoff: {often: 1s}}",
            "services.s.x-restart-backoff.often",
            "not a backoff setting",
        ),
        (
            "{image: x, x-restart-backoff: {delay: 2s, max_delay: 1s}}",
            "services.s.x-restart-backoff.max_delay",
            "shorter than delay",
        ),
        ("{image: x, x-restart-backoff: 5s}", "services.s.x-restart-backoff", "mapping"),
        ("{image: x, x-restart-on-unhealthy: 'yes'}", "services.s.x-restart-on-unhealthy", "true"),
        ("{image: x, mem_limit: -1}", "services.s.mem_limit", "cannot be negative"),
        ("{image: x, shm_size: 10q}", "services.s.shm_size", "not a size"),
        ("{image: x, command: 'echo \"unterminated'}", "services.s.command", "cannot split"),
        (
            "{build: {dockerfile: x}, secrets: [{source: s, uid: root}]}",
            "services.s.secrets[0].uid",
            "must be a number",
        ),
        ("{image: x, env_file: missing.env}", "services.s.env_file", "not found"),
        ("{command: x}", "services.s", "needs an 'image' or a 'build'"),
        (
            "{image: x, networks: {default: {ipv4_address: '::1'}}}",
            "services.s.networks.default.ipv4_address",
            "not an IPv4",
        ),
    ],
)
def test_service_rules(fails: Fails, service: str, path: str, words: str) -> None:
    err = fails(f"services:\n  s: {service}\nsecrets:\n  s: {{file: ./s}}\n")
    assert err.path == path, str(err)
    assert words in err.message, str(err)
    assert err.line is not None


@pytest.mark.parametrize(
    ("top", "path", "words"),
    [
        (
            "networks: {n: {external: true, driver: bridge}}",
            "networks.n.driver",
            "conflicts with 'external'",
        ),
        (
            "volumes: {v: {external: true, driver: local}}",
            "volumes.v.driver",
            "conflicts with 'external'",
        ),
        (
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/33}]}}}",
            "networks.n.ipam.config[0].subnet",
            "CIDR",
        ),
        (
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.1.0.1}]}}}",
            "networks.n.ipam.config[0].gateway",
            "not in subnet",
        ),
        ("secrets: {s: {}}", "secrets.s", "needs one of"),
        ("secrets: {s: {file: a, environment: B}}", "secrets.s.environment", "only one"),
        ("secrets: {s: {environment: UNSET_VAR}}", "secrets.s.environment", "is not set"),
    ],
)
def test_top_level_rules(fails: Fails, top: str, path: str, words: str) -> None:
    err = fails(f"services: {{a: {{image: x}}}}\n{top}\n")
    assert err.path == path, str(err)
    assert words in err.message, str(err)


def test_environment_list_and_unset(load: Load) -> None:
    stack = load("services: {a: {image: x, environment: [A=1, B=, C, D=x=y]}}", env={})
    assert dict(stack.services["a"].environment) == {"A": "1", "B": "", "C": None, "D": "x=y"}


def test_env_file_errors_name_the_file_and_line(fails: Fails, project: Path) -> None:
    (project / "bad.env").write_text("OK=1\nthis is not an assignment\n")
    err = fails("services: {a: {image: x, env_file: bad.env}}")
    assert err.file is not None and err.file.endswith("bad.env") and err.line == 2


def test_env_file_long_syntax_optional(load: Load) -> None:
    stack = load("services: {a: {image: x, env_file: [{path: none.env, required: false}]}}")
    assert dict(stack.services["a"].environment) == {}


def test_platform_of_this_machine_is_accepted(load: Load) -> None:
    import platform

    assert host_oci_platform().startswith("linux/")
    if platform.machine() == "x86_64":
        assert (
            load("services: {a: {image: x, platform: linux/amd64}}").services["a"].platform
            == "linux/amd64"
        )
        assert load("services: {a: {image: x, platform: Linux/AMD64/v2}}")


def test_duplicate_container_names(fails: Fails) -> None:
    err = fails("services: {a: {image: x, container_name: c1}, b: {image: x, container_name: c1}}")
    assert "also used by service 'a'" in err.message


def test_empty_and_no_services(fails: Fails) -> None:
    assert "no services" in fails("services: {}\n").message
    assert "no services" in fails("name: x\n").message
    assert "empty" in fails("# nothing\n").message
    assert "mapping" in fails("- a\n- b\n").message


def test_backoff_knobs_reach_the_restart_policy(load: Load) -> None:
    from orchestrator.backoff import DEFAULT_BACKOFF, Backoff, backoff_of

    stack = load(
        "services:\n"
        "  a: {image: x, restart: always, x-restart-backoff: {delay: 250ms, reset_after: 1m}}\n"
        "  b: {image: x, restart: always}\n"
    )
    policy = stack.services["a"].restart
    assert (policy.backoff_delay_ns, policy.backoff_max_ns) == (NS // 4, None)
    assert backoff_of(policy) == Backoff(0.25, DEFAULT_BACKOFF.cap, 60.0)
    assert backoff_of(stack.services["b"].restart) is DEFAULT_BACKOFF
