"""Credentials: basic auth (a registry with htpasswd), Bearer tokens (a token proxy in front of a
plain registry), ``login`` / ``logout`` and the credentials file."""

from __future__ import annotations

import io
import json
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from runtime.image import ImageStore
from runtime.image.auth import AUTH_FILE, ENV_VAR, Credentials
from runtime.image.registry import AuthenticationError, RegistryClient
from runtime.image.transfer import pull, push
from tests.integration.registry.conftest import PASSWORD, USER
from tests.integration.registry.helpers import Proxy, ProxyConfig, Registry

pytestmark = pytest.mark.root  # the store extracts layers


def _login(root: Path, registry: str, user: str, password: str) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdin", io.StringIO(password + "\n"))
        return main(["--root", str(root), "login", registry, "-u", user, "--password-stdin"])


def test_basic_auth_login_push_pull_logout(
    auth_registry: Registry,
    state_root: Path,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    small_image: Callable[[str, bytes], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = f"{auth_registry.domain}/private:1"
    image_id = small_image(ref, b"secret\n")

    with pytest.raises(AuthenticationError, match=r"requires authentication.*orchestrator login"):
        push(store, ref)

    assert _login(state_root, auth_registry.domain, USER, "wrong") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"login to {auth_registry.domain} failed" in err and "wrong user name or password" in err
    assert not (state_root / AUTH_FILE).exists()

    assert _login(state_root, auth_registry.domain, USER, PASSWORD) == 0
    assert capsys.readouterr().out == "Login Succeeded\n"
    auth_file = state_root / AUTH_FILE
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert list(json.loads(auth_file.read_text())["auths"]) == [auth_registry.domain]

    assert main(["push", ref]) == 0
    assert main(["--root", str(state_root), "pull", ref]) == 0
    capsys.readouterr()
    creds = Credentials.load(state_root)
    assert pull(new_store(), ref, credentials=creds).image.id == image_id

    # Stored but wrong credentials: one clear line naming the reference.
    Credentials.load(state_root).set(auth_registry.domain, USER, "stale")
    with pytest.raises(AuthenticationError) as info:
        pull(new_store(), ref, credentials=Credentials.load(state_root))
    assert str(info.value) == (
        f"cannot pull {ref}: {auth_registry.domain} denied access (pull on private) to user "
        "'alice': wrong user name or password, or no permission"
    )

    assert main(["logout", auth_registry.domain]) == 0
    assert capsys.readouterr().out == f"Removing login credentials for {auth_registry.domain}\n"
    assert Credentials.load(state_root).get(auth_registry.domain) is None
    assert main(["logout", auth_registry.domain]) == 0
    assert "Not logged in" in capsys.readouterr().out
    assert main(["pull", ref]) == 1
    assert "requires authentication" in capsys.readouterr().err


def test_credentials_from_the_environment(
    auth_registry: Registry,
    store: ImageStore,
    small_image: Callable[[str, bytes], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = f"{auth_registry.domain}/fromenv:1"
    small_image(ref, b"env\n")
    value = {"auths": {auth_registry.domain: {"username": USER, "password": PASSWORD}}}
    monkeypatch.setenv(ENV_VAR, json.dumps(value))
    assert main(["push", "-q", ref]) == 0


@pytest.fixture
def token_proxy(registry: Registry) -> Iterator[Proxy]:
    with Proxy(ProxyConfig(upstream=registry.port, token_user=(USER, PASSWORD))) as proxy:
        yield proxy


def test_bearer_token_flow(
    token_proxy: Proxy,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    small_image: Callable[[str, bytes], str],
) -> None:
    ref = f"{token_proxy.domain}/tok:1"
    image_id = small_image(ref, b"token\n")
    with RegistryClient(token_proxy.domain, (USER, PASSWORD)) as client:
        push(store, ref, client=client)
        tokens = client.statistics()
    assert "repository:tok:pull,push" in token_proxy.config.scopes
    assert token_proxy.count("GET", "/token") <= 3  # one per scope, not one per request
    assert tokens["requests"] >= 5
    with RegistryClient(token_proxy.domain, (USER, PASSWORD)) as client:
        assert pull(new_store(), ref, client=client).image.id == image_id
    assert "repository:tok:pull" in token_proxy.config.scopes

    wrong = RegistryClient(token_proxy.domain, (USER, "nope"))
    with (
        wrong,
        pytest.raises(
            AuthenticationError, match=r"cannot pull .*: token server .* refused user 'alice'"
        ),
    ):
        pull(new_store(), ref, client=wrong)
    with pytest.raises(AuthenticationError):
        pull(new_store(), ref)  # anonymous: the token is refused too


def test_redirected_blobs_get_no_credentials(
    registry: Registry,
    store: ImageStore,
    new_store: Callable[[], ImageStore],
    small_image: Callable[[str, bytes], str],
) -> None:
    """Blob downloads redirected to another origin (blob storage) are followed, without the
    registry's Authorization header."""
    with (
        Proxy(ProxyConfig(upstream=registry.port)) as storage,
        Proxy(
            ProxyConfig(
                upstream=registry.port, token_user=(USER, PASSWORD), redirect_blobs_to=storage
            )
        ) as front,
    ):
        ref = f"{front.domain}/redirected:1"
        image_id = small_image(ref, b"redirect me\n")
        with RegistryClient(front.domain, (USER, PASSWORD)) as client:
            push(store, ref, client=client)
            assert pull(new_store(), ref, client=client).image.id == image_id
        assert front.count("GET", "/blobs/sha256:") == 2
        blob_gets = [r for r in storage.config.requests if "/blobs/" in r[1]]
        assert len(blob_gets) == 2
        assert all(auth is None for _, _, auth in blob_gets)
