"""The trusted side: code that decides grades. It never imports or runs student code.

- ``grader``  ``cs330 grade``: unpack a submission, lay it over the starter, run the tests, write
  ``results.json`` (Gradescope's format, ``results_schema.json``) or a batch's gradebook
- ``runner``  the test processes: their command and environment, their event stream, the clock,
  and who is blamed when a process dies
- ``remote``  in the test process: the ``student`` fixture's proxy to the worker (requests out,
  data back through ``cs330.grading.wire``)
- ``callbacks``  in the test process: the answers to the worker's calls of a test's ``Trusted`` functions

May use ``authoring``, ``wire`` and ``worker.jail`` (to start a worker); nothing here is in the
student wheel.
"""
