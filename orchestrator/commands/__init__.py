"""CLI command groups.

Each module here defines ``add_parsers(subparsers)``, which adds its commands with
``set_defaults(func=handler)``; a handler takes the parsed ``argparse.Namespace`` and returns the
exit status. Modules import heavy dependencies inside handlers so that ``--help`` and commands that
only ask a running process stay fast.
"""

COMMAND_MODULES = (
    "orchestrator.commands.config",
    "orchestrator.commands.containers",
    "orchestrator.commands.images",
    "orchestrator.commands.registry",
    "orchestrator.commands.imagebuild",
    "orchestrator.commands.networks",
    "orchestrator.commands.volumes",
    "orchestrator.commands.stack",
    "orchestrator.commands.export",
)
