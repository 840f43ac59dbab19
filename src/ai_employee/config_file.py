"""The config file as text: where it is, its YAML read safely and `${VAR}` filled in from the
environment. No validation here (that is `config.py`, with pydantic): this much is cheap enough for
the CLI's quick commands, which only need to know where the vault is."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ai_employee.errors import ConfigError

CONFIG_ENV = "AI_EMPLOYEE_CONFIG"
MAX_CONFIG_BYTES = 1 << 20
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


def find_config_file(explicit: Path | None) -> Path | None:
    """The config file to use: --config, else $AI_EMPLOYEE_CONFIG, else ./config.yaml if present."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} not found: fix the --config path")
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) not found: fix or unset the variable")
        return path
    default = Path("config.yaml")
    return default if default.is_file() else None


def read_config_file(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The config file's sections, interpolated; a ConfigError says what is wrong with the file."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than 1 MiB: is it the right file?")
    try:
        raw = yaml.safe_load(raw_bytes) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: fix the syntax") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of sections (app:, claude:, ...)")
    # A section whose keys are all commented out parses as null: it means "the defaults".
    return {key: value for key, value in interpolate(raw, env).items() if value is not None}


def vault_path_in(path: Path) -> tuple[bool, Path | None]:
    """(whether the file could be read, its `app.vault_path` relative to the file's folder), without
    validating the rest: an unreadable file, or a vault path that is not plainly a path, reads as
    (False, None), and the full config load then says what is wrong."""
    try:
        app = read_config_file(path, dict(os.environ)).get("app")
    except ConfigError:
        return False, None
    value = app.get("vault_path") if isinstance(app, dict) else None
    if value is None:
        return True, None
    if not isinstance(value, str) or not value:
        return False, None
    return True, (path.parent / Path(value).expanduser()).absolute()
