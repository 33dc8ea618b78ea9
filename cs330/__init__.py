"""cs330: a PyTorch course library for deep multi-task and meta-learning.

Rooms, with one-way dependencies (tests/toolchain/test_rooms.py checks them):

- ``cs330.data``      datasets (Omniglot, MovieLens, text sets), episodic samplers, synthetic tasks, ``cs330 data``
- ``cs330.models``    networks shared by several homeworks (Conv4, MLP, pre-trained LMs)
- ``cs330.training``  the training toolkit: loops, checkpoints, metrics, plots, results files
- ``cs330.runtime``   devices, threads and seeds for scripts and tests
- ``cs330.grading``   the course toolchain: the test-author API, release, autograder, submit
  (its own ``__init__`` lists its rooms: authoring, trusted, worker, instructor)
- ``cs330.cli``       the ``cs330`` command

Homework folders (``hw0_multitask/`` ...) import from ``cs330``, never the reverse.
"""

__version__ = "0.1.0"
