"""The untrusted side: the only process that runs a submission's code.

- ``jail``   the worker's world by mode: private root, own uid, no network, limits
- ``serve``  the worker itself (``python -I -m cs330.grading.worker.serve CONFIG``): enters its jail,
  imports torch once, then forks a child per test that imports the student's modules and answers
  requests (``cs330.grading.code``, ``cs330.grading.wire``)
- ``callback``  a test's ``Trusted`` function as the worker holds it: a handle whose calls (and their
  gradients) are computed by the test process

It decides nothing and holds nothing secret. It imports nothing of ``trusted``, ``authoring`` or
``instructor`` (a test checks it); not in the student wheel.
"""
