"""The course toolchain. Homework tests need only this::

    from cs330.grading import Trusted, drawn_seed, expect_tensor, graded, submission_path

and the ``student`` / ``reference`` fixtures of the pytest plugin (``plugin``).

Rooms, by which side of the trust boundary they run on (README.md draws it):

- ``api``, ``plugin``, ``code``  the test-author API, the pytest plugin, a folder's modules as a namespace
- ``cli``                        ``cs330 test``, ``cs330 submit`` (cs330.cli adds the ``instructor`` commands)
- ``authoring/``                 homework.toml, markers, zips, ``cs330 submit``, ``cs330 release``
- ``wire``                       the frame format the trusted side and the worker share
- ``trusted/``                   the grader, the test processes, the proxy to the worker: decides grades
- ``worker/``                    the untrusted worker and its jail: the only place student code runs
- ``instructor/``                mutation testing, ``cs330 demo``, the course's subcommands

The student wheel (``cs330 release``) holds ``api``, ``plugin``, ``code``, ``cli`` and ``authoring``
without ``release``; ``wire``, ``trusted``, ``worker`` and ``instructor`` stay in the course repository.
"""

from cs330.grading.api import drawn_seed, expect_tensor, graded, submission_path
from cs330.grading.code import Trusted

__all__ = ["Trusted", "drawn_seed", "expect_tensor", "graded", "submission_path"]
