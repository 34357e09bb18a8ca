"""The Python examples of the README and of the docs pages run as written.

A block whose first line is `# needs: <what>` (the Hub, a real corpus) is shown but not run here;
every other ```python block must run offline. A block that reads `flallm-demo/` runs next to the output
of `flallm demo --quick` (untrained, but the same files a full demo writes).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (page.relative_to(ROOT).as_posix(), index, block)
    for page in PAGES
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S))
]


def test_the_docs_have_runnable_examples():
    assert sum(not block.startswith("# needs:") for _, _, block in BLOCKS) >= 3
    assert any(page == "README.md" and not block.startswith("# needs:") for page, _, block in BLOCKS)


def test_the_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, page.name


@pytest.mark.parametrize("page,index,block", BLOCKS, ids=[f"{page}-{index}" for page, index, _ in BLOCKS])
def test_python_example_runs(page, index, block, tmp_path, monkeypatch, request):
    if block.startswith("# needs:"):
        reason = block.splitlines()[0][len("# needs:") :].strip()
        assert reason, "a '# needs:' line must say what the example needs"
        pytest.skip(f"{page} block {index} needs {reason}")
    if "flallm-demo/" in block:
        (tmp_path / "flallm-demo").symlink_to(request.getfixturevalue("quick_demo"), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"{page} python block {index}", "exec"), {"__name__": "__readme__"})
