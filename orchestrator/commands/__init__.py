"""CLI command groups.

Each module here defines ``add_parsers(subparsers)``, which adds its commands with
``set_defaults(func=handler)``; a handler takes the parsed ``argparse.Namespace`` and returns the
exit status. Modules import heavy dependencies inside handlers so that ``--help`` and commands that
only ask a running process stay fast.
"""

# Which modules make each command's parser: the CLI builds only the one it is asked for (a
# test keeps this in step with what the modules add).
COMMANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        [
            "create",
            "exec",
            "inspect",
            "kill",
            "logs",
            "pause",
            "ps",
            "restart",
            "rm",
            "run",
            "start",
            "stop",
            "unpause",
            "wait",
        ],
        ("orchestrator.commands.containers",),
    ),
    "config": ("orchestrator.commands.config",),
    "image": ("orchestrator.commands.images", "orchestrator.commands.bootstrap"),
    **dict.fromkeys(("images", "rmi", "tag"), ("orchestrator.commands.images",)),
    **dict.fromkeys(("login", "logout", "pull", "push"), ("orchestrator.commands.registry",)),
    **dict.fromkeys(("build", "commit"), ("orchestrator.commands.imagebuild",)),
    **dict.fromkeys(("network", "port"), ("orchestrator.commands.networks",)),
    "volume": ("orchestrator.commands.volumes",),
    **dict.fromkeys(
        ("down", "events", "ls", "scale", "supervisor", "up"), ("orchestrator.commands.stack",)
    ),
    "export": ("orchestrator.commands.export",),
    **dict.fromkeys(("top", "stats"), ("orchestrator.commands.usage",)),
    **dict.fromkeys(("attach", "container", "cp", "rename"), ("orchestrator.commands.dailyverbs",)),
    # `events`: the stack's parser, given single containers' flags by dailyverbs
    "events": ("orchestrator.commands.stack", "orchestrator.commands.dailyverbs"),
    **dict.fromkeys(("save", "load"), ("orchestrator.commands.imagestdio",)),
    **dict.fromkeys(("version", "info", "system"), ("orchestrator.commands.system",)),
}

COMMAND_MODULES = (
    "orchestrator.commands.config",
    "orchestrator.commands.containers",
    "orchestrator.commands.images",
    "orchestrator.commands.bootstrap",
    "orchestrator.commands.registry",
    "orchestrator.commands.imagebuild",
    "orchestrator.commands.networks",
    "orchestrator.commands.volumes",
    "orchestrator.commands.stack",
    "orchestrator.commands.export",
    "orchestrator.commands.usage",
    "orchestrator.commands.dailyverbs",
    "orchestrator.commands.imagestdio",
    "orchestrator.commands.system",
)
