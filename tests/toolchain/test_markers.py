"""The source transforms behind `cs330 release`."""

import ast

import pytest

from cs330.grading.authoring import markers

REF = '''\
def f(x):
    """Doc."""
    # BEGIN SOLUTION hint="double it"
    y = 2 * x
    return y
    # END SOLUTION


def g(x):
    # BEGIN SOLUTION replace="out = None"
    out = x + 1
    # END SOLUTION
    return out


def h(x):
    z = x * 3  # SOLUTION
    return z  # SOLUTION
'''


def test_solution_blocks_become_stubs():
    copy = markers.student_copy(REF, "ref.py")
    assert "2 * x" not in copy.text and "x + 1" not in copy.text and "x * 3" not in copy.text
    assert "raise NotImplementedError('TODO: double it')" in copy.text
    assert "    out = None  # TODO" in copy.text
    assert "    z = None  # TODO" in copy.text
    assert copy.n_solutions == 4
    ast.parse(copy.text)
    namespace = {}
    exec(copy.text, namespace)
    with pytest.raises(NotImplementedError, match="double it"):
        namespace["f"](1)
    assert namespace["g"](1) is None  # a replace= stub keeps the function running


def test_hidden_regions_are_removed_and_file_tagged():
    src = "def test_a():\n    out = 1\n    # BEGIN HIDDEN\n    assert out == 12345\n    # END HIDDEN\n"
    copy = markers.student_copy(src, "t.py")
    assert "12345" not in copy.text
    assert copy.text.startswith(markers.STUDENT_COPY_TAG)
    assert markers.HIDDEN_STUB in copy.text
    exec(copy.text, {})


@pytest.mark.parametrize(
    "src, line, message",
    [
        ("x = 1\n# BEGIN SOLUTION\ny = 2\n", 2, "without a matching END SOLUTION"),
        ("x = 1\n# END SOLUTION\n", 2, "without a matching BEGIN SOLUTION"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", 2, "nested"),
        ("# BEGIN HIDDEN\nx = 1\n", 1, "without a matching END HIDDEN"),
        ("# BEGIN SOLUTION bogus=1\n# END SOLUTION\n", 1, "cannot read marker arguments"),
        ('# BEGIN SOLUTION colour="red"\n# END SOLUTION\n', 1, "unknown marker argument"),
        ("if True:\n    # BEGIN SOLUTION replace=\"x = (\"\n    x = 1\n    # END SOLUTION\n", 2, "does not parse"),
    ],
)
def test_bad_markers_name_file_and_line(src, line, message):
    with pytest.raises(markers.MarkerError, match=message) as err:
        markers.student_copy(src, "bad.py")
    assert err.value.line == line and str(err.value).startswith(f"bad.py:{line}:")


def test_hidden_file_marker():
    assert markers.is_hidden_file("# HIDDEN FILE\nimport x\n")
    assert not markers.is_hidden_file("import x\n")


def test_count_stubs_sees_every_kind_of_stub():
    src = '''def f(x):
    # BEGIN SOLUTION
    return x
    # END SOLUTION


def g(x):
    # BEGIN SOLUTION replace="y = None"
    y = x + 1
    # END SOLUTION
    return y


def h(x):
    z = x * 2  # SOLUTION
    return x + 1  # SOLUTION
'''
    copy = markers.student_copy(src, "stubs.py")
    assert markers.count_stubs(copy.text) == 4, copy.text
    assert markers.count_stubs(src) == 0


def test_a_long_hint_goes_on_in_the_next_comment_line():
    src = ('def f(x):\n    # BEGIN SOLUTION hint="average the support embeddings \\\n    #     of each class"\n'
           "    return x.mean(0)\n    # END SOLUTION\n")
    student = markers.student_copy(src, "t.py")
    assert "NotImplementedError('TODO: average the support embeddings of each class')" in student.text
    assert "of each class\"" not in student.text.replace("embeddings of each class')", "")
    assert student.removed == ["    return x.mean(0)"]
    assert markers.solved_copy(src, "t.py") == "def f(x):\n    return x.mean(0)\n"
    with pytest.raises(markers.MarkerError, match=r"t\.py:3: a marker line ending in"):
        markers.student_copy('def f(x):\n    # BEGIN SOLUTION hint="a \\\n    return x\n    # END SOLUTION\n', "t.py")
