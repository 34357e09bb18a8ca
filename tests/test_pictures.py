"""The pictures the docs show are made by the commands they name, and are valid images."""

import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _valid_png(path: Path, min_size: int = 200) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= min_size, (path, image.size)
        image.verify()


def test_the_sign_picture_command_draws_the_signs(tmp_path):
    out = tmp_path / "signs.png"
    subprocess.run([sys.executable, "-m", "train.plots", "signs", str(out)], cwd=ROOT, check=True, capture_output=True)
    _valid_png(out)


def test_the_pictures_the_docs_link_exist_and_are_valid():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked = {
        (page.parent / target).resolve()
        for page in pages
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text(encoding="utf-8"))
    }
    assert len(linked) >= 4
    for path in linked:
        _valid_png(path)
