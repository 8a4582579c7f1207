from pathlib import Path

from cli.admin import README_END, README_START, settings_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    region = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert region == settings_markdown(), (
        "README's settings table is stale: run `.venv/bin/allim settings --write-readme README.md`"
    )


def test_every_setting_has_a_meaning() -> None:
    for line in settings_markdown().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line
