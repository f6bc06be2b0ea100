"""Building images: ``orchestrator build`` (Dockerfiles) and ``orchestrator commit``.

dockerfile.py   the parser: stages of instructions with their line numbers
substitute.py   $VAR, ${VAR:-x}... and quote removal, as Docker's shell lexer does
ignore.py       .dockerignore patterns (``**``, ``!`` exceptions)
trees.py        the context and an image's layers as read-only trees, symlinks kept inside
copy.py         COPY and ADD: sources, their digests, writing them into a layer
cache.py        the step cache under ``<root>/build-cache/``
state.py        what a build carries: its options, the image state of each step, a stage's progress
steps.py        what every step uses: errors, substitution, the cache, history, layers, commits
metadata.py     the instructions that change the config only (ENV, CMD, HEALTHCHECK...)
files.py        COPY, ADD and WORKDIR: files into a new layer without a container
run_step.py     RUN: a container of our runtime; its upper directory becomes the layer
builder.py      runs the stages, each instruction by its handler, into an image
commit.py       a container's writable layer as an image
bootstrap.py    ``image bootstrap``: a Debian base image made with debootstrap, cached
"""
