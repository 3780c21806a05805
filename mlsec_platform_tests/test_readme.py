"""The README's reference tables are generated from the code, and this test keeps them so.

The commands table comes from the `mlsec` command itself (each command's first help line), the
configuration table from the settings model (each field's env name, default and description).
When they disagree, regenerate them:

    .venv/bin/python -m mlsec_platform_tests.test_readme --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
from pydantic_core import PydanticUndefined

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = "<!-- generated: {name} (python -m mlsec_platform_tests.test_readme --write) -->"
_END = "<!-- end generated: {name} -->"


def _usage(command: click.Command, path: list[str]) -> str:
    args = [p.human_readable_name for p in command.params if isinstance(p, click.Argument)]
    words = " ".join([*path, *(a if a.isupper() else a.upper() for a in args)])
    return f"`{words}`"


def _walk(command: click.Command, path: list[str]) -> list[tuple[str, str]]:
    if isinstance(command, click.Group):
        # A group that acts on its own (`mlsec erase --subject ...`) is a command too.
        acts = command.invoke_without_command and path != ["mlsec"]
        rows = [(_usage(command, path), command.get_short_help_str(limit=120))] if acts else []
        for name in sorted(command.list_commands(click.Context(command))):
            sub = command.get_command(click.Context(command), name)
            if sub is not None and not sub.hidden:
                rows += _walk(sub, [*path, name])
        return rows
    return [(_usage(command, path), command.get_short_help_str(limit=120))]


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]], per_line: int = 3) -> str:
    """A table of ``per_line`` entries a line, read down each column: reference, not
    reading, so it keeps the README short."""
    height = -(-len(rows) // per_line)
    blank = ("",) * len(header)
    padded = rows + [blank] * (height * per_line - len(rows))
    columns = [padded[i * height : (i + 1) * height] for i in range(per_line)]
    lines = [
        "| " + " | ".join(header * per_line) + " |",
        "|" + "---|" * (per_line * len(header)),
        *[
            "| " + " | ".join(c for entry in line for c in entry) + " |"
            for line in zip(*columns, strict=True)
        ],
    ]
    return "\n".join(line.replace("|  |", "| |") for line in lines)


def commands_table() -> str:
    from mlsec_platform.cli import main

    return _columns(("command", "what it does"), _walk(main, ["mlsec"]), per_line=4)


def _default(field) -> str:
    if field.default is PydanticUndefined or field.default is None:
        return ""
    value = field.default
    if isinstance(value, tuple):
        value = ",".join(value)
        if not value:
            return ""
    value = getattr(value, "value", value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 20:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
            if value % size == 0:
                return f"`{value}` ({value // size} {unit})"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def settings_table() -> str:
    from mlsec_platform.settings import PlatformSettings

    prefix = PlatformSettings.model_config["env_prefix"]
    rows = [
        (f"`{prefix}{name.upper()}` {_default(field)}".strip(), field.description or "")
        for name, field in PlatformSettings.model_fields.items()
    ]
    return _columns(("setting, default", "meaning"), rows)


GENERATED = {"commands": commands_table, "configuration": settings_table}


def _section(text: str, name: str) -> re.Match[str]:
    pattern = re.escape(_BLOCK.format(name=name)) + r"\n(.*?)" + re.escape(_END.format(name=name))
    match = re.search(pattern, text, re.S)
    assert match, f"README.md has no generated {name} section (markers missing)"
    return match


def test_commands_table_is_the_cli() -> None:
    assert _section(README.read_text(), "commands").group(1) == commands_table() + "\n", (
        "README's commands table differs from `mlsec`; regenerate: " + __doc__.split("\n\n")[-1]
    )


def test_configuration_table_is_the_settings_model() -> None:
    assert _section(README.read_text(), "configuration").group(1) == settings_table() + "\n", (
        "README's configuration table differs from the settings; regenerate: "
        + __doc__.split("\n\n")[-1]
    )


def test_every_setting_is_documented() -> None:
    from mlsec_platform.settings import PlatformSettings

    undocumented = [n for n, f in PlatformSettings.model_fields.items() if not f.description]
    assert not undocumented, f"settings without a description: {undocumented}"


def test_add_a_source_section_is_the_test() -> None:
    """The README's "Add a source" shows the code its test runs: each call it quotes is in the
    test, and the decorator names the test's dataset and source."""
    from mlsec_platform_tests.defs.silver import test_add_a_source as example

    section = README.read_text().split("## Add a source", 1)[1].split("\n## ", 1)[0]
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", section)]
    code = " ".join(Path(example.__file__).read_text().split())
    calls = [s for s in spans if "(" in s and not s.startswith("@")]
    assert calls and all(c in code for c in calls), [c for c in calls if c not in code]
    decorator = next(s for s in spans if s.startswith("@silver_transform("))
    assert decorator == (
        f'@silver_transform("{example.SILVER_LOYALTY_MEMBERS.id}", '
        f'source="{example.LOYALTY_MEMBERS.name}")'
    )
    for path in re.findall(r"`((?:catalog|transforms|defs)/[\w/]+\.py)`", section):
        root = README.parent / (
            "mlsec_platform_tests" if path.startswith("defs/") else "mlsec_platform"
        )
        assert (root / path).exists(), path


def _write() -> None:
    text = README.read_text()
    for name, render in GENERATED.items():
        match = _section(text, name)
        text = text[: match.start(1)] + render() + "\n" + text[match.end(1) :]
    README.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
    else:
        print(__doc__)
