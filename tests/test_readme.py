"""The README is read inside the repository: its links resolve to files of the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_readme_link_points_inside_the_repository() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "the README links its API reference"
    for target in targets:
        if target.startswith("#") or target.startswith(("http://127.0.0.1", "http://localhost")):
            continue
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README links {target}, which is not in the repository"
    assert not re.search(r"(?<!\.)\.\./", text), "the README names a path outside the repository"
