"""The code in the README runs and prints what it says."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_tree_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## A tree in 20 lines\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert len(code.strip().splitlines()) <= 22
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "4"
    assert "inventory" in out.stdout and "running" in out.stdout


def test_the_configuration_reference_is_generated_from_the_spec_types():
    from stalwart.cli._reference import reference_markdown

    # regenerate with: python -m stalwart.cli._reference > docs/configuration.md
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown()


def test_every_documentation_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name
