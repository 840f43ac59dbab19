"""`vault doctor`: checks the whole installation and says, for each problem, how to fix it.

Each check returns `Finding`s (ok, warn, fail). Nothing here changes anything: servers are started to
list their tools and stopped, the SMTP server is greeted (and logged in to, if credentials are set)
without sending, the model API and Gmail are asked one read-only question each.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ai_employee.config import Config
from ai_employee.vault.layout import Vault

Level = Literal["ok", "warn", "fail"]
SERVER_TIMEOUT_S = 20.0
NETWORK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Finding:
    level: Level
    what: str
    detail: str
    fix: str = ""


def check_vault(vault: Vault) -> Iterator[Finding]:
    if not vault.root.is_dir():
        yield Finding("fail", "vault", f"{vault.root} is not a folder", f"run `vault init {vault.root}`")
        return
    missing = [
        name for name in ("Inbox", "Needs_Action", "Plans", "Approved", "Done") if not vault.folder(name).is_dir()
    ]
    if missing:
        yield Finding("fail", "vault", f"missing folders: {', '.join(missing)}", f"run `vault init {vault.root}`")
    else:
        yield Finding("ok", "vault", str(vault.root))
    probe = vault.root / f".doctor-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        yield Finding(
            "fail", "vault permissions", f"cannot write in the vault: {exc.strerror}", "make it writable by you"
        )
    state = vault.state_dir
    if state.exists():
        mode = stat.S_IMODE(state.stat().st_mode)
        if mode & 0o002:
            yield Finding("fail", "state folder", f"{state} is writable by anyone ({oct(mode)})", f"chmod o-w {state}")
        elif mode & 0o077:
            yield Finding(
                "warn",
                "state folder",
                f"{state} can be read by others ({oct(mode)}): the ledger holds your plans' history",
                f"chmod 700 {state}",
            )
    fs = os.statvfs(vault.root)
    free = fs.f_bavail * fs.f_frsize
    if free < 100 << 20:
        yield Finding("warn", "disk space", f"only {free >> 20} MiB free where the vault is", "free some space")


def check_inotify(vault: Vault, polling: bool) -> Iterator[Finding]:
    if polling:
        yield Finding("ok", "file watching", "polling (watcher.polling: true)")
        return
    limit_file = Path("/proc/sys/fs/inotify/max_user_watches")
    if not limit_file.exists():
        yield Finding("ok", "file watching", "no inotify here (the platform's own watcher is used)")
        return
    limit = int(limit_file.read_text().strip() or 0)
    folders = sum(1 for _ in _folders(vault.root))
    if folders * 2 > limit:
        yield Finding(
            "fail" if folders > limit else "warn",
            "file watching",
            f"the vault has {folders} folders and inotify allows {limit} watches for your user",
            "raise it: `sudo sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.d/ to keep it), or set"
            " watcher.polling: true",
        )
    else:
        yield Finding("ok", "file watching", f"inotify: {folders} folders, limit {limit} watches")


def _folders(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        yield Path(dirpath)


async def check_servers(config: Config, vault: Vault) -> list[Finding]:
    from ai_employee.executor.failures import describe
    from ai_employee.executor.mcp_pool import McpPool

    pool = McpPool.for_engine(config, vault)
    pool.start_timeout_s = SERVER_TIMEOUT_S
    found: list[Finding] = []
    try:
        for server, settings in config.engine_servers().items():
            where = pool.redact(settings.url or " ".join([settings.command or "", *settings.args]))
            try:
                tools = await pool.session_for(server)
            except Exception as exc:
                reason = pool.redact(describe(exc))[:300]
                log_hint = f"; see .ai_employee/logs/mcp-{server}.log" if settings.command else ""
                found.append(
                    Finding(
                        "fail", f"server {server}", f"does not start or answer: {reason}", f"check `{where}`{log_hint}"
                    )
                )
                continue
            found.append(Finding("ok", f"server {server}", f"{len(tools)} tools ({', '.join(sorted(tools)[:8])})"))
            unknown = sorted(set(settings.tools) - set(tools))
            if unknown:
                found.append(
                    Finding(
                        "warn",
                        f"server {server}",
                        f"settings for tools it does not have: {', '.join(unknown)}",
                        f"fix the names under mcp_servers.{server}.tools",
                    )
                )
    finally:
        await pool.aclose()
    return found


def check_smtp(config: Config) -> Iterator[Finding]:
    """Each server running the built-in email server: its SMTP server greets, offers STARTTLS when
    asked to use it, and accepts the login (nothing is sent)."""
    from ai_employee.errors import ConfigError
    from ai_employee.mcp_servers.email_server import EmailSettings

    for name, server in config.engine_servers().items():
        if "ai_employee.mcp_servers.email_server" not in server.args:
            continue
        try:
            settings = EmailSettings.from_env(server.env)
        except ConfigError as exc:
            yield Finding("fail", f"smtp ({name})", str(exc), f"fix mcp_servers.{name}.env")
            continue
        if not settings.smtp_from:
            yield Finding(
                "warn",
                f"smtp ({name})",
                "SMTP_FROM is not set: send_email refuses to send",
                f"set SMTP_FROM in mcp_servers.{name}.env",
            )
        target = f"{settings.smtp_host}:{settings.smtp_port}"
        try:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=NETWORK_TIMEOUT_S) as smtp:
                smtp.ehlo()
                if settings.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
        except smtplib.SMTPAuthenticationError as exc:
            yield Finding(
                "fail",
                f"smtp ({name})",
                f"{target} refused the login ({exc.smtp_code})",
                "check SMTP_USERNAME and SMTP_PASSWORD (an app password, for most providers)",
            )
            continue
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            level: Level = "fail" if not config.dry_run else "warn"
            yield Finding(
                level,
                f"smtp ({name})",
                f"cannot reach {target}: {exc}",
                "check SMTP_HOST/SMTP_PORT (587 with STARTTLS for most providers); needed in live mode",
            )
            continue
        login = " and accepted the login" if settings.smtp_username else ""
        yield Finding("ok", f"smtp ({name})", f"{target} answered{login}")


def check_gmail(config: Config, vault: Vault) -> Iterator[Finding]:
    from ai_employee.gmail.auth import NotAuthorized, check_outside, load_credentials, load_token

    gmail = config.gmail
    if not gmail.enabled:
        yield Finding("ok", "gmail", "not enabled (gmail.enabled: false)")
        return
    token = gmail.token_path()
    try:
        check_outside(token, vault.root)
        load_token(token)
    except (NotAuthorized, ValueError, OSError) as exc:
        yield Finding("fail", "gmail", str(exc), "run `vault gmail auth`")
        return
    mode = stat.S_IMODE(token.stat().st_mode)
    if mode & 0o077:
        yield Finding("fail", "gmail", f"the token {token} can be read by others ({oct(mode)})", f"chmod 600 {token}")
    try:
        from ai_employee.gmail.client import GmailClient, GmailError

        client = GmailClient(load_credentials(gmail), gmail.api_endpoint)
        profile = client.profile()
        client.close()
    except (NotAuthorized, GmailError) as exc:
        yield Finding("fail", "gmail", f"Google refused the token: {exc}", "run `vault gmail auth`")
        return
    except Exception as exc:
        yield Finding("warn", "gmail", f"Google could not be reached: {exc}", "check the network")
        return
    yield Finding("ok", "gmail", f"{profile.get('emailAddress')}: the token works")


def check_claude(config: Config) -> Iterator[Finding]:
    key = config.claude.api_key.get_secret_value() if config.claude.api_key else ""
    if not key:
        yield Finding(
            "warn",
            "claude",
            "no API key: plans come from the template planner",
            "set CLAUDE_API_KEY (or ANTHROPIC_API_KEY) for the Claude planner",
        )
        return
    import anthropic

    client = anthropic.Anthropic(api_key=key, base_url=config.claude.base_url, max_retries=0, timeout=NETWORK_TIMEOUT_S)
    where = config.claude.base_url or "api.anthropic.com"
    try:
        client.models.retrieve(config.claude.model)
    except anthropic.AuthenticationError:
        yield Finding("fail", "claude", f"{where} refused the API key", "set a valid CLAUDE_API_KEY")
        return
    except anthropic.NotFoundError:
        yield Finding("fail", "claude", f"{where} does not know the model {config.claude.model}", "fix claude.model")
        return
    except anthropic.APIError as exc:
        yield Finding(
            "warn",
            "claude",
            f"{where} could not be asked: {type(exc).__name__}: {exc}",
            "check the network, or claude.base_url; meanwhile the template planner plans",
        )
        return
    finally:
        client.close()
    yield Finding("ok", "claude", f"{where}: the key works, model {config.claude.model}")


def check_notifications(config: Config, vault: Vault) -> Iterator[Finding]:
    """Each channel's URL read by Apprise (nothing is sent: `vault notify test` sends), and the Telegram
    bot's token asked about (`getMe`)."""
    from ai_employee.errors import ConfigError
    from ai_employee.logsetup import Redactor
    from ai_employee.notify.channels import AppriseChannel

    redact = Redactor(config.secrets()).scrub
    for name, urls in config.notify.channels.items():
        try:
            channel = AppriseChannel(name, urls, redact)
        except ConfigError as exc:
            yield Finding("fail", f"notify {name}", str(exc), "fix the URL in notify.channels (docs/notifications.md)")
            continue
        yield Finding("ok", f"notify {name}", f"{channel.described()} (`vault notify test {name}` sends one)")
    if not config.notify.telegram.enabled:
        return
    from ai_employee.notify.telegram import BotApi, BotError

    settings = config.notify.telegram
    token = settings.token.get_secret_value() if settings.token is not None else ""
    api = BotApi(settings.api_base, token, redact, NETWORK_TIMEOUT_S)
    try:
        bot = api.call("getMe")
    except BotError as exc:
        yield Finding("fail", "telegram", str(exc), "check notify.telegram.token (from @BotFather) and the network")
        return
    finally:
        api.close()
    chats = ", ".join(str(c) for c in settings.allowed_chats)
    yield Finding("ok", "telegram", f"bot @{bot.get('username', '?')}; allowed chats: {chats}")


def check_all(config: Config, vault: Vault) -> list[Finding]:
    findings = [Finding("ok", "config", str(config.source) if config.source else "built-in defaults")]
    findings.append(
        Finding("ok", "mode", config.mode() + (" (nothing outside the vault is changed)" if config.dry_run else ""))
    )
    findings += list(check_vault(vault))
    findings += list(check_inotify(vault, config.watcher.polling))
    findings += asyncio.run(check_servers(config, vault))
    findings += list(check_smtp(config))
    findings += list(check_gmail(config, vault))
    findings += list(check_claude(config))
    findings += list(check_notifications(config, vault))
    return findings
