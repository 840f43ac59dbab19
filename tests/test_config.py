"""Configuration: loading, interpolation, validation and where paths point (config.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ai_employee.config import (
    Config,
    load_config,
    resolve_vault_path,
)
from ai_employee.config_file import CONFIG_ENV, MAX_CONFIG_BYTES, find_config_file, interpolate
from ai_employee.errors import ConfigError, UserError
from ai_employee.vault.layout import DEFAULT_VAULT, VAULT_ENV

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env or {})


# defaults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "# only comments\n", "app: {}\n", "mcp_servers:\n"])
def test_defaults(tmp_path: Path, text: str | None) -> None:
    config = load_config(None, {}) if text is None else load(tmp_path, text)
    assert config.dry_run is True
    assert config.execution.dry_run is True
    assert config.claude.api_key is None
    assert config.app.vault_path is None
    assert config.logging.level == "INFO"
    assert config.policy.auto_approve == "low"
    assert config.policy.rules == {}
    assert set(config.mcp_servers) == {"vault", "email", "calendar"}
    assert config.mcp_servers["vault"].command == sys.executable
    assert config.mcp_servers["email"].tool("draft_email").idempotent
    assert config.secrets() == []


@pytest.mark.parametrize("section", ["app", "approval", "execution", "policy"])
def test_empty_section_means_defaults(tmp_path: Path, section: str) -> None:
    config = load(tmp_path, f"{section}:\n  # every key commented out\n")
    assert config.dry_run is True


def test_source_is_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, "app: {}\n")
    assert load_config(path, {}).source == path
    assert load_config(None, {}).source is None


# ${VAR} interpolation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${OWNER}", {"OWNER": "Ann"}, "Ann"),
        ("${OWNER}", {}, ""),
        ("${OWNER:-Bob}", {}, "Bob"),
        ("${OWNER:-Bob}", {"OWNER": "Ann"}, "Ann"),
        ("${OWNER:-Bob}", {"OWNER": ""}, "Bob"),  # empty counts as unset, like the shell's :-
        ("${OWNER:-}", {}, ""),
        ("${A}-${B:-b}-${C}", {"A": "a", "C": "c"}, "a-b-c"),
        ("Dear ${OWNER:-you and me}", {}, "Dear you and me"),
        ("${OWNER}", {"OWNER": "${OTHER}", "OTHER": "x"}, "${OTHER}"),  # not recursive
        ("$OWNER and ${1BAD}", {"OWNER": "x"}, "$OWNER and ${1BAD}"),
        ("${DEFAULT:-a:-b}", {}, "a:-b"),
    ],
)
def test_interpolate_strings(value: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(value, env) == expected


def test_interpolate_walks_lists_and_mappings_but_not_keys_or_other_types() -> None:
    tree = {"${K}": ["${A}", {"n": 5, "b": True, "s": "${A:-d}"}], "none": None}
    assert interpolate(tree, {"A": "a", "K": "k"}) == {"${K}": ["a", {"n": 5, "b": True, "s": "a"}], "none": None}


def test_load_config_interpolates_and_coerces(tmp_path: Path) -> None:
    text = (
        "app:\n  owner_name: ${OWNER}\n  name: ${NAME:-Fallback}\n"
        "claude:\n  model: ${MODEL:-claude-x}\n"
        "watcher:\n  poll_interval: ${POLL:-2.5}\n  polling: ${POLLING:-false}\n"
        "execution:\n  dry_run: ${DRY_RUN}\n"
    )
    config = load(tmp_path, text, {"OWNER": "Ann Example", "DRY_RUN": "false"})
    assert config.app.owner_name == "Ann Example"
    assert config.app.name == "Fallback"
    assert config.claude.model == "claude-x"
    assert config.watcher.poll_interval == 2.5
    assert config.watcher.polling is False
    assert config.dry_run is False


def test_load_config_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_EMPLOYEE_TEST_OWNER", "From Environ")
    path = write(tmp_path, "app:\n  owner_name: ${AI_EMPLOYEE_TEST_OWNER}\n")
    assert load_config(path).app.owner_name == "From Environ"


def test_unset_variable_for_a_boolean_is_an_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`execution\.dry_run`: Input should be a valid boolean"):
        load(tmp_path, "execution:\n  dry_run: ${DRY_RUN}\n")


# errors name the key --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus: 1\n", "bogus"),
        ("app:\n  nmae: x\n", "app.nmae"),
        ("execution:\n  dryrun: false\n", "execution.dryrun"),
        ("approval:\n  dry-run: false\n", "approval.dry-run"),
        ("watcher:\n  poll_intervall: 3\n", "watcher.poll_intervall"),
        ("mcp_servers:\n  mine:\n    command: x\n    enviroment: {}\n", "mcp_servers.mine.enviroment"),
        ("policy:\n  rule:\n    a.b: low\n", "policy.rule"),
    ],
)
def test_unknown_key_names_the_dotted_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown key `{key}`: remove it or check its spelling"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("watcher:\n  poll_interval: fast\n", "watcher.poll_interval"),
        ("watcher:\n  poll_interval: 0\n", "watcher.poll_interval"),
        ("watcher:\n  settle_s: -1\n", "watcher.settle_s"),
        ("execution:\n  dry_run: maybe\n", "execution.dry_run"),
        ("execution:\n  step_timeout_s: [1]\n", "execution.step_timeout_s"),
        ("approval:\n  dry_run: sometimes\n", "approval.dry_run"),
        ("logging:\n  level: LOUD\n", "logging.level"),
        ("logging:\n  backups: -1\n", "logging.backups"),
        ("claude:\n  max_tokens: 0\n", "claude.max_tokens"),
        ("ingest:\n  max_preview_bytes: 999999999999\n", "ingest.max_preview_bytes"),
        ("policy:\n  auto_approve: medium\n", "policy.auto_approve"),
        ("policy:\n  rules:\n    email.send_email: urgent\n", "policy.rules.email.send_email"),
        ("app: [1, 2]\n", "app"),
        ("app:\n  owner_name: [Ann]\n", "app.owner_name"),
        ("mcp_servers:\n  mine:\n    args: []\n", "mcp_servers.mine"),
        ("mcp_servers:\n  mine:\n    url: ftp://x\n", "mcp_servers.mine.url"),
        (
            "mcp_servers:\n  mine:\n    command: x\n    tools: {send: {rate_limit: lots}}\n",
            "mcp_servers.mine.tools.send.rate_limit",
        ),
        ("mcp_servers:\n  mine:\n    command: x\n    args: -m\n", "mcp_servers.mine.args"),
        ("mcp_servers:\n  mine:\n    command: x\n    env: {PORT: [587]}\n", "mcp_servers.mine.env.PORT"),
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config\.yaml: `{key}`: .*\(see docs/configuration\.md\)"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "line"),
    [("app:\n  name: x\n  bad: [\n", 4), ("app:\n  name: x\n    nested: y\n", 3), ("a: 'x\n", 2), ("\tapp: 1\n", 1)],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(ConfigError, match=rf"config\.yaml line {line}: not valid YAML: fix the syntax"):
        load(tmp_path, text)


@pytest.mark.parametrize("text", ["- app\n- claude\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"must be a mapping of sections"):
        load(tmp_path, text)


def test_unreadable_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, {})  # a directory
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", {})
    big = write(tmp_path, "# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(big, {})


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, UserError)


# approval.dry_run alias -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("approval:\n  dry_run: false\n", False),
        ("approval:\n  dry_run: true\n", True),
        ("execution:\n  dry_run: false\n", False),
        ("approval:\n  dry_run: false\nexecution:\n  dry_run: false\n", False),
        ("approval:\n  dry_run: true\nexecution:\n  dry_run: true\n", True),
        ("approval:\n  dry_run: false\nexecution:\n  step_timeout_s: 5\n", False),
        ("approval:\n  dry_run: ${LIVE:-true}\n", True),
    ],
)
def test_dry_run_alias(tmp_path: Path, text: str, expected: bool) -> None:
    config = load(tmp_path, text)
    assert config.dry_run is expected
    assert config.execution.dry_run is expected


@pytest.mark.parametrize(
    "text",
    [
        "approval:\n  dry_run: false\nexecution:\n  dry_run: true\n",
        "approval:\n  dry_run: true\nexecution:\n  dry_run: false\n",
    ],
)
def test_dry_run_alias_conflict(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"approval\.dry_run and execution\.dry_run disagree: keep one of them"):
        load(tmp_path, text)


# API key fallback -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("claude:\n  model: m\n", {"ANTHROPIC_API_KEY": "sk-ant"}, "sk-ant"),
        ("claude:\n  model: m\n", {"CLAUDE_API_KEY": "sk-cl"}, "sk-cl"),
        ("claude:\n  model: m\n", {"CLAUDE_API_KEY": "sk-cl", "ANTHROPIC_API_KEY": "sk-ant"}, "sk-cl"),
        ("claude:\n  model: m\n", {"CLAUDE_API_KEY": "", "ANTHROPIC_API_KEY": "sk-ant"}, "sk-ant"),
        ("claude:\n  api_key: ${CLAUDE_API_KEY:-}\n", {"ANTHROPIC_API_KEY": "sk-ant"}, "sk-ant"),
        ("claude:\n  api_key: ''\n", {"ANTHROPIC_API_KEY": "sk-ant"}, "sk-ant"),
        ("claude:\n  api_key: sk-file\n", {"CLAUDE_API_KEY": "sk-cl"}, "sk-file"),
        ("claude:\n  api_key: ${MY_KEY}\n", {"MY_KEY": "sk-mine", "ANTHROPIC_API_KEY": "sk-ant"}, "sk-mine"),
        ("claude:\n  model: m\n", {}, None),
        ("claude:\n  api_key: ${CLAUDE_API_KEY:-}\n", {}, None),
    ],
)
def test_api_key_fallback(tmp_path: Path, text: str, env: dict[str, str], expected: str | None) -> None:
    key = load(tmp_path, text, env).claude.api_key
    assert (key.get_secret_value() if key is not None else None) == expected


def test_api_key_fallback_without_a_file() -> None:
    key = load_config(None, {"ANTHROPIC_API_KEY": "sk-ant"}).claude.api_key
    assert key is not None and key.get_secret_value() == "sk-ant"


def test_api_key_is_not_shown_in_repr_or_dump(tmp_path: Path) -> None:
    config = load(tmp_path, "claude:\n  api_key: sk-secret-value\n")
    assert "sk-secret-value" not in repr(config)
    assert "sk-secret-value" not in str(config.model_dump())
    assert "sk-secret-value" not in config.model_dump_json()


# secrets() ----------------------------------------------------------------------------------------------


def test_secrets_are_every_server_env_value_whatever_its_name(tmp_path: Path) -> None:
    text = (
        "claude:\n  api_key: sk-claude\n"
        "mcp_servers:\n"
        "  mail:\n    command: x\n    env:\n"
        "      SMTP_PASSWORD: hunter2\n      API_KEY: k1\n      GITHUB_TOKEN: t1\n      client_secret: s1\n"
        "      SMTP_PASS: pw\n      LOGIN: ann@example.com\n"
        "      SMTP_HOST: smtp.example.com\n      SMTP_PORT: 587\n      SMTP_STARTTLS: true\n      EMPTY_TOKEN: ''\n"
        "  other:\n    command: y\n    env:\n      OTHER_SECRET: s2\n      RETRIES: '3'\n"
    )
    secrets = load(tmp_path, text).secrets()
    assert sorted(secrets) == sorted(["sk-claude", "hunter2", "k1", "t1", "s1", "pw", "ann@example.com", "s2"])


def test_secrets_of_a_remote_server_are_its_headers_and_what_its_url_carries(tmp_path: Path) -> None:
    text = (
        "mcp_servers:\n  zap:\n"
        "    url: https://user:pa55word@mcp.example.com/s/sk_live_0123456789abcdef/mcp?api_key=qwerty123&v=2\n"
        "    headers:\n      Authorization: Bearer tok-abcdef\n      Accept: json\n"
    )
    secrets = load(tmp_path, text).secrets()
    for secret in ("pa55word", "sk_live_0123456789abcdef", "qwerty123", "tok-abcdef", "Bearer tok-abcdef"):
        assert secret in secrets
    assert "mcp" not in secrets and "json" not in secrets and "2" not in secrets


def test_secrets_from_environment_fallback(tmp_path: Path) -> None:
    assert load(tmp_path, "app: {}\n", {"CLAUDE_API_KEY": "sk-env"}).secrets() == ["sk-env"]


# relative paths -------------------------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir, "app:\n  vault_path: My Vault\nlogging:\n  file: logs/app.log\n")
    config = load_config(path, {})
    assert config.app.vault_path == conf_dir / "My Vault"
    assert config.logging.file == conf_dir / "logs" / "app.log"
    monkeypatch.delenv(VAULT_ENV, raising=False)
    assert resolve_vault_path(None, config) == conf_dir / "My Vault"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    vault, log = tmp_path / "abs vault", tmp_path / "abs.log"
    config = load(tmp_path / "..", f"app:\n  vault_path: '{vault}'\nlogging:\n  file: '{log}'\n")
    assert config.app.vault_path == vault
    assert config.logging.file == log


def test_relative_path_with_the_config_given_relatively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "app:\n  vault_path: v\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(VAULT_ENV, raising=False)
    config = load_config(Path("sub/config.yaml"), {})
    assert resolve_vault_path(None, config) == tmp_path / "sub" / "v"


def test_home_relative_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(VAULT_ENV, raising=False)
    config = load(tmp_path, "app:\n  vault_path: ~/Vault\nlogging:\n  file: ~/logs/app.log\n")
    assert resolve_vault_path(None, config) == home / "Vault"
    assert config.logging.file == home / "logs" / "app.log"


# resolve_vault_path -----------------------------------------------------------------------------------------


@pytest.fixture
def config_with_vault(tmp_path: Path) -> Config:
    return load(tmp_path, f"app:\n  vault_path: '{tmp_path / 'from-config'}'\n")


def test_vault_precedence_cli_first(tmp_path: Path, config_with_vault: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAULT_ENV, str(tmp_path / "from-env"))
    assert resolve_vault_path(tmp_path / "from-cli", config_with_vault) == tmp_path / "from-cli"


def test_vault_precedence_env_second(
    tmp_path: Path, config_with_vault: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAULT_ENV, str(tmp_path / "from-env"))
    assert resolve_vault_path(None, config_with_vault) == tmp_path / "from-env"


def test_vault_precedence_config_third(
    tmp_path: Path, config_with_vault: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VAULT_ENV, raising=False)
    assert resolve_vault_path(None, config_with_vault) == tmp_path / "from-config"
    monkeypatch.setenv(VAULT_ENV, "")  # empty counts as unset
    assert resolve_vault_path(None, config_with_vault) == tmp_path / "from-config"


def test_vault_precedence_default_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAULT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_vault_path(None, load_config(None, {})) == tmp_path / DEFAULT_VAULT


def test_vault_paths_are_made_absolute_and_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    defaults = load_config(None, {})
    assert resolve_vault_path(Path("rel/vault"), defaults) == tmp_path / "rel" / "vault"
    assert resolve_vault_path(Path("~/v"), defaults) == tmp_path / "home" / "v"
    monkeypatch.setenv(VAULT_ENV, "env-rel")
    assert resolve_vault_path(None, defaults) == tmp_path / "env-rel"


# find_config_file -------------------------------------------------------------------------------------------


def test_find_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert find_config_file(None) is None
    local = write(tmp_path, "app: {}\n")
    assert find_config_file(None) == Path("config.yaml")
    other = write(tmp_path, "app: {}\n", "other.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert find_config_file(None) == other
    assert find_config_file(local) == local
    with pytest.raises(ConfigError, match="not found: fix the --config path"):
        find_config_file(tmp_path / "nope.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=rf"from \${CONFIG_ENV}\) not found"):
        find_config_file(None)


# the repository's own config.yaml ---------------------------------------------------------------------


@pytest.fixture
def repo_config() -> Path:
    if not REPO_CONFIG.is_file():
        pytest.skip("config.yaml is not written yet")
    return REPO_CONFIG


def test_repo_config_loads_with_safe_defaults(repo_config: Path) -> None:
    config = load_config(repo_config, {})
    assert config.dry_run is True
    assert config.claude.api_key is None
    assert config.policy.auto_approve in ("low", "none")
    assert {"vault", "email"} <= set(config.mcp_servers)
    assert config.secrets() == []
    if config.app.vault_path is not None:
        assert config.app.vault_path.is_absolute()
    if config.logging.file is not None:
        assert config.logging.file.is_absolute()


def test_repo_config_takes_secrets_from_the_environment(repo_config: Path) -> None:
    env = {"CLAUDE_API_KEY": "sk-test-key", "SMTP_PASSWORD": "hunter2", "AI_EMPLOYEE_OWNER": "Ann"}
    config = load_config(repo_config, env)
    key = config.claude.api_key
    assert key is not None and key.get_secret_value() == "sk-test-key"
    assert "sk-test-key" in config.secrets()
    text = repo_config.read_text("utf-8")
    if "SMTP_PASSWORD" in text:
        assert "hunter2" in config.secrets()
    assert "sk-test-key" not in text and "hunter2" not in text


def test_mcp_env_numbers_and_booleans_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "mcp_servers:\n  email:\n    command: python\n    cwd: servers\n"
        "    env: {SMTP_PORT: 587, SMTP_STARTTLS: true, RATE: 1.5}\n"
    )
    server = load_config(path, env={}).mcp_servers["email"]
    assert server.env == {"SMTP_PORT": "587", "SMTP_STARTTLS": "true", "RATE": "1.5"}
    assert server.cwd == tmp_path / "servers"


def test_run_from_inside_a_vault_the_cli_finds_it_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ai_employee.vault.layout import init_vault

    init_vault(tmp_path / "MyVault")
    monkeypatch.delenv(VAULT_ENV, raising=False)
    monkeypatch.chdir(tmp_path / "MyVault" / "Plans")
    assert resolve_vault_path(None, load_config(None, {})) == tmp_path / "MyVault"
