"""Instructor tools, run in the course repository (not in the student wheel).

- ``mutants``  mutation score of a homework's tests: grades mutants of the reference
- ``demo``     ``cs330 demo``: release a homework, grade its reference and its starter
- ``cli``      the course's subcommands: ``release``, ``grade``, ``mutants``, ``demo``
"""
