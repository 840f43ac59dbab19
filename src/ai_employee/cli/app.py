"""State shared by every command: the resolved config and vault, loaded on first use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ai_employee.vault.layout import DEFAULT_VAULT, Vault, explicit_vault_path, find_vault_upward

if TYPE_CHECKING:
    from ai_employee.config import Config
    from ai_employee.ledger import Ledger

# Cheap commands stay cheap: the config's validation (pydantic), the ledger and logging are imported
# on first use, and the engine (the MCP SDK) only by the commands that run it.


@dataclass
class AppState:
    vault_option: Path | None
    config_option: Path | None
    verbose: bool
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from ai_employee.config import load_config
            from ai_employee.config_file import find_config_file

            self._config = load_config(find_config_file(self.config_option))
        return self._config

    def vault(self, check: bool = True) -> Vault:
        # Where the vault is needs no validated config (pydantic): `vault status` stays cheap. A config
        # whose `app.vault_path` cannot be read plainly is loaded in full, to say what is wrong.
        root = explicit_vault_path(self.vault_option)
        if root is None and self._config is None:
            from ai_employee.config_file import find_config_file, vault_path_in

            source = find_config_file(self.config_option)
            readable, root = vault_path_in(source) if source is not None else (True, None)
            if readable and root is None:
                root = find_vault_upward(Path.cwd().absolute()) or DEFAULT_VAULT.absolute()
        if root is None:
            from ai_employee.config import resolve_vault_path

            root = resolve_vault_path(None, self.config)
        vault = Vault(root)
        if check:
            vault.check()
        return vault

    @contextmanager
    def ledger(self, vault: Vault) -> Iterator[Ledger]:
        """The vault's ledger, open for the length of a `with` block."""
        from ai_employee.ledger import Ledger

        ledger = Ledger(vault.ledger_path)
        try:
            yield ledger
        finally:
            ledger.close()

    def configure_logging(self, vault: Vault, quiet: bool = False) -> Path:
        from ai_employee.logsetup import configure_logging

        log_file = self.config.logging.file or vault.state_dir / "logs" / "app.log"
        configure_logging(
            self.config.logging.level,
            log_file,
            self.config.secrets(),
            verbose=self.verbose,
            max_bytes=self.config.logging.max_bytes,
            backups=self.config.logging.backups,
            quiet=quiet,
        )
        return log_file


pass_app = click.make_pass_decorator(AppState)
