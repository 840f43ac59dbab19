"""The Gmail OAuth token: the installed-app flow (`vault gmail auth`), and a token file outside the vault,
readable by its owner only (mode 0600), rewritten atomically whenever Google refreshes the token."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ai_employee.errors import ConfigError

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

    from ai_employee.config_sections import GmailConfig

# Read mail, change its labels (mark read, add a label, archive), create drafts and send: `gmail.modify`
# covers all of it and nothing more (it cannot delete mail for good). See docs/gmail.md.
SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
FIX = "run `vault gmail auth`"


class NotAuthorized(Exception):
    """There is no usable token: the human must run `vault gmail auth`."""


def check_outside(path: Path, vault_root: Path | None, what: str = "gmail.token_file") -> None:
    """A token never lives in the vault (it syncs, it is shared, the planner reads it)."""
    if vault_root is None:
        return
    resolved, root = path.expanduser().resolve(), vault_root.resolve()
    if resolved == root or root in resolved.parents:
        raise ConfigError(
            f"{what} ({path}) is inside the vault: keep secrets out of it (default: ~/.config/ai-employee)"
        )


def load_token(path: Path) -> dict[str, Any]:
    """The stored token's fields; NotAuthorized if there is none or it cannot be read."""
    try:
        info = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise NotAuthorized(f"no Gmail token at {path}: {FIX}") from None
    except (OSError, ValueError) as exc:
        raise NotAuthorized(f"the Gmail token at {path} cannot be read ({exc}): {FIX}") from None
    if not isinstance(info, dict) or not info.get("refresh_token"):
        raise NotAuthorized(f"the Gmail token at {path} has no refresh token: {FIX}")
    with contextlib.suppress(OSError):  # a copy restored from a backup may have lost its mode
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
    return info


def load_credentials(config: GmailConfig) -> Credentials:
    """Credentials from the token file, pointed at `gmail.token_uri` when that is set."""
    from google.oauth2.credentials import Credentials

    info = load_token(config.token_path())
    try:
        creds: Credentials = Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, info.get("scopes") or SCOPES
        )
    except ValueError as exc:
        raise NotAuthorized(f"the Gmail token at {config.token_path()} is incomplete ({exc}): {FIX}") from None
    token_uri = config.token_uri or info.get("token_uri")
    if token_uri and token_uri != creds.token_uri:
        creds = cast("Credentials", creds.with_token_uri(token_uri))  # the parser resets it to Google's
    return creds


def save_credentials(creds: Credentials, path: Path, account: str | None = None) -> None:
    """Write the token atomically with mode 0600 (its folder 0700), keeping the account it belongs to."""
    info = json.loads(creds.to_json())  # type: ignore[no-untyped-call]
    if account is None:
        with contextlib.suppress(NotAuthorized):
            account = load_token(path).get("account")
    if account:
        info["account"] = account
    data = json.dumps(info, indent=2).encode("utf-8")
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def authorize(config: GmailConfig, open_browser: bool, port: int = 0, timeout_s: float = 300.0) -> Credentials:
    """The installed-app flow: a local redirect on 127.0.0.1, the consent URL printed (and opened in a
    browser when one can be). Returns the new credentials (not yet saved)."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    secret = config.client_secret_path()
    if not secret.is_file():
        raise ConfigError(
            f"no OAuth client file at {secret}: create a Desktop OAuth client in Google Cloud, download its"
            " JSON there (or set gmail.client_secret_file); see docs/gmail.md"
        )
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(secret), scopes=SCOPES)
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"{secret} is not an OAuth client file for a desktop app ({exc}); see docs/gmail.md"
        ) from None
    if config.token_uri:
        flow.client_config["token_uri"] = config.token_uri
    if open_browser:
        import webbrowser

        try:
            webbrowser.get()
        except webbrowser.Error:
            open_browser = False  # no browser here (a server, SSH): the printed URL is the way
    creds: Credentials = flow.run_local_server(
        host="localhost",
        bind_addr="127.0.0.1",
        port=port,
        open_browser=open_browser,
        authorization_prompt_message="Open this URL in a browser and allow access:\n{url}\n",
        success_message="AI Employee may now read your Gmail. You can close this tab.",
        timeout_seconds=int(timeout_s),
        access_type="offline",
        prompt="consent",
    )
    return creds
