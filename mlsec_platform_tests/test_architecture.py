"""The house plan as a test: the import-linter contracts in pyproject.toml hold.

A broken contract fails the test command with import-linter's own report (which import, on
which line, crosses which floor).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


#: Modules of data rather than logic (vocabularies of the sample-data generator).
SIZE_EXEMPT = ("mlsec_platform/sample_data/",)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules("mlsec_platform", "broker_api")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
        and not str(p.relative_to(ROOT)).startswith(SIZE_EXEMPT)
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"


def test_no_function_over_80_lines_in_the_services() -> None:
    import ast

    long = {}
    for path in _modules("broker_api", "mlsec_platform/gateway"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
