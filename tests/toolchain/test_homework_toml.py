"""The homework.toml examples in the README and in homework.py's docstring are valid homework.toml files."""

import re
from pathlib import Path

import pytest

from cs330.grading.authoring import homework

REPO = Path(__file__).resolve().parents[2]


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, flags=re.S)


EXAMPLES = {"README.md": toml_blocks((REPO / "README.md").read_text()),
            "homework.py": [re.search(r"``homework.toml``::\n\n(.*?)\n\n[A-Z]", homework.__doc__, flags=re.S).group(1)]}


@pytest.mark.parametrize("where", sorted(EXAMPLES))
def test_documented_homework_toml_loads(tmp_path, where):
    (example,) = EXAMPLES[where]
    (tmp_path / "homework.toml").write_text(example)
    hw = homework.load(tmp_path)
    assert hw.name == "hw2" and hw.submit and hw.timeout > 0, f"{where}: the example did not load as written"


def test_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "homework.toml").write_text('name = "hw9"\n[grading]\ntrusted = false\n')
    with pytest.raises(homework.HomeworkError, match=r"\[grading\] keys are"):
        homework.load(tmp_path)
