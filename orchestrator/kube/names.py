"""Names and labels Kubernetes accepts, derived from stack names so that they stay stable.

Object names here are DNS-1123 labels that also start with a letter (RFC 1035), the strictest
rule any kind we write has (a Service's name): lowercase letters, digits and ``-``, at most 63.
The same stack always gives the same names; a name too long keeps a hash of the whole.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
_LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DATA_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_PORT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# Labels that tie every object to its stack and service (the Kubernetes recommended labels).
MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
MANAGER = "orchestrator"


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in a hash of the whole when cut."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return text[: limit - 9].rstrip("-._") + "-" + digest


def _clean(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")


def dns_label(text: str) -> str:
    """A DNS label (RFC 1035: starts with a letter) for a stack name: ``Web_App.1`` ->
    ``web-app-1``, ``2fa`` -> ``s-2fa``."""
    name = _clean(text) or "x"
    if not name[0].isalpha():
        name = "s-" + name
    return _shorten(name, MAX_LABEL)


def derived(base: str, suffix: str) -> str:
    """A name made of an object's name and a role or number (``web`` + ``env`` -> ``web-env``,
    ``web`` + ``2`` -> ``web-2``)."""
    tail = _clean(suffix)
    if not tail:
        return _shorten(base, MAX_LABEL)
    if len(tail) > MAX_LABEL // 2:
        return _shorten(f"{base}-{tail}", MAX_LABEL)
    # Too long: the base is cut (keeping a hash of it), the role stays readable.
    return f"{_shorten(base, MAX_LABEL - len(tail) - 1)}-{tail}"


def is_dns_label(text: str) -> bool:
    return len(text) <= MAX_LABEL and bool(_LABEL_RE.fullmatch(text))


def is_subdomain(text: str) -> bool:
    return len(text) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(text))


def label_value(text: str) -> str:
    """``text`` as a label value: kept when valid, else made valid (and stable)."""
    if len(text) <= MAX_LABEL and _LABEL_VALUE_RE.fullmatch(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")
    return _shorten(cleaned, MAX_LABEL).strip("-_.") or "x"


def is_label(key: str, value: str) -> bool:
    """Whether ``key: value`` is a valid Kubernetes label (else it can only be an annotation)."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_subdomain(prefix):
        return False
    if not (len(name) <= MAX_LABEL and _LABEL_NAME_RE.fullmatch(name)):
        return False
    return len(value) <= MAX_LABEL and bool(_LABEL_VALUE_RE.fullmatch(value))


def is_annotation_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not is_subdomain(prefix):
        return False
    return len(name) <= MAX_LABEL and bool(_LABEL_NAME_RE.fullmatch(name))


def data_key(text: str) -> str:
    """A key of a ConfigMap's or Secret's data: letters, digits, ``-``, ``_`` and ``.``."""
    if _DATA_KEY_RE.fullmatch(text) and text not in (".", ".."):
        return text
    cleaned = re.sub(r"[^-._a-zA-Z0-9]", "_", text).strip(".")
    return cleaned or "content"


def is_data_key(text: str) -> bool:
    return bool(_DATA_KEY_RE.fullmatch(text)) and text not in (".", "..")


def port_name(protocol: str, port: int, wanted: str | None = None) -> str:
    """A port's name (IANA service name: at most 15, a letter among them): ``wanted`` when
    valid, else ``tcp-8080``."""
    if (
        wanted
        and len(wanted) <= 15
        and _PORT_NAME_RE.fullmatch(wanted)
        and "--" not in wanted
        and any(c.isalpha() for c in wanted)
    ):
        return wanted
    return f"{protocol.lower()}-{port}"


def stack_labels(stack: str) -> dict[str, str]:
    """The labels of every object of a stack."""
    return {MANAGED_BY: MANAGER, PART_OF: label_value(stack)}


def service_selector(stack: str, service: str) -> dict[str, str]:
    """The labels that select a service's pods (and mark the objects that belong to it)."""
    return {PART_OF: label_value(stack), NAME: service}


def service_labels(stack: str, service: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, **service_selector(stack, service)}
