"""State shared by every command: the resolved config and vault, loaded on first use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from ai_employee.config import Config, find_config_file, load_config, resolve_vault_path
from ai_employee.ledger import Ledger
from ai_employee.logsetup import configure_logging
from ai_employee.vault.layout import Vault


@dataclass
class AppState:
    vault_option: Path | None
    config_option: Path | None
    verbose: bool
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_file(self.config_option))
        return self._config

    def vault(self, check: bool = True) -> Vault:
        vault = Vault(resolve_vault_path(self.vault_option, self.config))
        if check:
            vault.check()
        return vault

    @contextmanager
    def ledger(self, vault: Vault) -> Iterator[Ledger]:
        """The vault's ledger, open for the length of a `with` block."""
        ledger = Ledger(vault.ledger_path)
        try:
            yield ledger
        finally:
            ledger.close()

    def configure_logging(self, vault: Vault) -> Path:
        log_file = self.config.logging.file or vault.state_dir / "logs" / "app.log"
        configure_logging(
            self.config.logging.level,
            log_file,
            self.config.secrets(),
            verbose=self.verbose,
            max_bytes=self.config.logging.max_bytes,
            backups=self.config.logging.backups,
        )
        return log_file


pass_app = click.make_pass_decorator(AppState)
