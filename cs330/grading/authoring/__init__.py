"""Authoring: a homework as the course writes it, and what is made from it.

- ``homework``  reads ``homework.toml`` (what is submitted, graded, excluded; grading limits)
- ``markers``   the solution and hidden-region markers, and the student copy made by removing them
- ``archive``   deterministic zips (the release's zips, ``cs330 submit``'s zip)
- ``submit``    ``cs330 submit``: check a student's folder and zip what to hand in
- ``release``   ``cs330 release``: the student tree, its wheel, the Gradescope autograder bundle
  (course repository only: not in the student wheel)

Runs no student code. Uses nothing of ``trusted``, ``worker`` or ``instructor``.
"""
