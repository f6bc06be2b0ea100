"""Thin wrappers for Linux calls the ``os`` module lacks (unshare, mount, pivot_root, openat2...).

Each wrapper raises ``OSError`` with errno and the call's name, like the os module does.
"""
