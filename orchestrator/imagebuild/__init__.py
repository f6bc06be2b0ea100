"""Building images: ``orchestrator build`` (Dockerfiles) and ``orchestrator commit``.

dockerfile.py   the parser: stages of instructions with their line numbers
substitute.py   $VAR, ${VAR:-x}... and quote removal, as Docker's shell lexer does
ignore.py       .dockerignore patterns (``**``, ``!`` exceptions)
trees.py        the context and an image's layers as read-only trees, symlinks kept inside
copy.py         COPY and ADD: sources, their digests, writing them into a layer
cache.py        the step cache under ``<root>/build-cache/``
builder.py      runs the steps (RUN in a container of our runtime) into an image
commit.py       a container's writable layer as an image
"""
