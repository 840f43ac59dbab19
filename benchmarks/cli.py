"""How long the cheap `vault` commands take, next to a floor measured in the same run.

The floor is `python -c "import click"`: the interpreter starting and importing the CLI library, which
every command pays. The target is each command within 150 ms of that floor. Runs are interleaved (floor,
then each command, round after round) so a noisy moment of the machine hits them all alike.

    python benchmarks/cli.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def timed(args: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - start


def prepared_vault(root: Path) -> Path:
    """A vault the engine has worked on: the repo's samples planned, some waiting, some done."""
    vault = root / "vault"
    subprocess.run([sys.executable, "-m", "ai_employee", "init", str(vault)], check=True, capture_output=True)
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, vault / "Inbox" / sample.name)
    subprocess.run(
        [sys.executable, "-m", "ai_employee", "--vault", str(vault), "start", "--once"], check=True, capture_output=True
    )
    return vault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    vault_cli = [str(Path(sys.executable).with_name("vault"))]
    if not Path(vault_cli[0]).exists():
        vault_cli = [sys.executable, "-m", "ai_employee"]
    with tempfile.TemporaryDirectory() as tmp:
        vault = prepared_vault(Path(tmp))
        (Path(tmp) / "config.yaml").write_text("app:\n  vault_path: vault\n")
        commands = {
            'python -c "import click" (floor)': [sys.executable, "-c", "import click"],
            "vault --help": [*vault_cli, "--help"],
            "vault status": [*vault_cli, "--vault", str(vault), "status"],
            "vault status --json": [*vault_cli, "--vault", str(vault), "status", "--json"],
            "vault status (vault from config)": [*vault_cli, "status"],
            "vault list": [*vault_cli, "--vault", str(vault), "list"],
            "vault history": [*vault_cli, "--vault", str(vault), "history"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for args in commands.values():
            timed(args, Path(tmp))  # warm the page cache and the bytecode
        for _ in range(rounds):
            for name, args in commands.items():
                samples[name].append(timed(args, Path(tmp)))
    floor = statistics.median(next(iter(samples.values())))
    print(f"{rounds} rounds, interleaved; wall time per command (ms)")
    print(f"{'command':34} {'median':>8} {'p90':>8} {'above floor':>12}")
    for name, values in samples.items():
        values.sort()
        median, p90 = statistics.median(values), values[int(0.9 * (len(values) - 1))]
        extra = "" if name.endswith("(floor)") else f"{(median - floor) * 1000:+.0f}"
        print(f"{name:34} {median * 1000:8.0f} {p90 * 1000:8.0f} {extra:>12}")


if __name__ == "__main__":
    main()
