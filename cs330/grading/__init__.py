"""The course toolchain: solution markers, release, autograder and submission checks.

Homework tests need only::

    from cs330.grading import graded, student_module, reference_module, submission_path
"""

from cs330.grading.api import graded, reference_module, student_module, submission_path

__all__ = ["graded", "reference_module", "student_module", "submission_path"]
