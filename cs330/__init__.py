"""cs330: a PyTorch course library for deep multi-task and meta-learning.

Rooms, with one-way dependencies (a room imports only the ones above it):

- ``cs330.data``     datasets, episodic samplers, synthetic tasks
- ``cs330.models``   networks shared by several homeworks
- ``cs330.grading``  the course toolchain: release, autograder, submit
- ``cs330.cli``      the ``cs330`` command

Homework folders (``hw0_multitask/`` ...) import from ``cs330``, never the reverse.
"""

__version__ = "0.1.0"
