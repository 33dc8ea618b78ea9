"""The course toolchain: solution markers, release, autograder and submission checks.

Homework tests need only the ``student`` and ``reference`` fixtures (cs330.grading.plugin) and::

    from cs330.grading import graded, expect_tensor, submission_path

(``student_module`` / ``reference_module`` serve the homeworks still on the legacy in-process design.)
"""

from cs330.grading.api import expect_tensor, graded, reference_module, student_module, submission_path

__all__ = ["expect_tensor", "graded", "reference_module", "student_module", "submission_path"]
