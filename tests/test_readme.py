"""The README's Python examples run as written.

A block whose first line is `# needs: <what>` (the Hub, a real corpus) is shown but not run here;
every other ```python block must run offline.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_runnable_examples():
    assert sum(not block.startswith("# needs:") for block in BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    block = BLOCKS[index]
    if block.startswith("# needs:"):
        reason = block.splitlines()[0][len("# needs:") :].strip()
        assert reason, "a '# needs:' line must say what the example needs"
        pytest.skip(f"README block {index} needs {reason}")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
