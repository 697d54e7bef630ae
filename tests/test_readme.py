"""The README's configuration table matches the settings class, and the README shows the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from bot.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def table() -> dict[str, str]:
    part = README.split("<!-- configuration table", 1)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| .+ \|$", part, flags=re.M)
    return dict(rows)


def test_every_setting_is_in_the_table_and_nothing_else() -> None:
    aliases = {info.alias for info in Settings.model_fields.values()}
    assert set(table()) == aliases


def test_simple_defaults_match() -> None:
    rows = table()
    for info in Settings.model_fields.values():
        if isinstance(info.default, str | int) and not isinstance(info.default, bool):
            assert rows[info.alias or ""].strip("`") == str(info.default.value if hasattr(info.default, "value")
                                                             else info.default), info.alias  # fmt: skip
    assert rows["SITREP_CADENCE"] == "`sev1=15m,sev2=30m,sev3=4h,sev4=off`"
    assert rows["SITREP_TICK"] == "`10s`" and rows["SITREP_TIMELINE_EMOJI"] == "`pushpin`"


def test_the_two_fresh_machine_commands_are_shown() -> None:
    assert "\n    make run\n" in README and "\n    make test\n" in README
