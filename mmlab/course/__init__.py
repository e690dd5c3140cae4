'''Course machinery: checks for exercise notebooks, exercise generation, grading.

    from mmlab.course import check          # in notebooks
    mmlab exercises [--check]                # solutions/ -> exercises/
    mmlab grade NOTEBOOK... [--json]         # score submissions

How to write an exercise (for chapter authors)
==============================================

solutions/NN-topic.ipynb is the source of truth, in nbgrader 0.9's markup
and cell metadata, so an instructor can drop it into nbgrader unchanged.
`mmlab exercises` writes exercises/NN-topic.ipynb from it; never edit
exercises/ by hand (a test fails when it is out of date).

The first code cell imports what the tests need:

    from mmlab.course import check

Each graded part is an answer cell followed by a test cell.

1. The answer cell holds a function; the student's part of it is a
   solution region INSIDE the function body.  Cell metadata:

    "nbgrader": {"grade": false, "grade_id": "pages_needed", "locked": false,
                 "schema_version": 3, "solution": true, "task": false}

    def pages_needed(size):
        """How many 4 KiB pages hold `size` bytes."""
        ### BEGIN SOLUTION
        return (size + 4095) // 4096
        ### END SOLUTION

   In the exercise the region becomes nbgrader's stub at the same indent,

        # YOUR CODE HERE
        raise NotImplementedError()

   so the cell still runs clean; only calling the function raises.  The
   region may be a few lines inside a longer body (a loop's step, say).

2. The test cell checks the answer through check(), visible tests first,
   hidden tests (removed from the exercise, restored by the grader) last:

    "nbgrader": {"grade": true, "grade_id": "test_pages_needed", "locked": true,
                 "points": 2, "schema_version": 3, "solution": false, "task": false}

    check(lambda: pages_needed(1), 1)
    check(lambda: pages_needed(4096), 1)
    ### BEGIN HIDDEN TESTS
    check(lambda: pages_needed(4097), 2)
    ### END HIDDEN TESTS

   check(test, expected) passes when test() == expected; check(test) when
   test() neither raises nor returns False (a predicate, or a def full of
   asserts); what="..." labels the line.  It prints "✓ passed",
   "✗ failed: got 1, expected 2" or "not attempted" and never raises, so
   the exercise runs clean under nbval; the grader sets MMLAB_GRADING=1,
   and then anything but a pass raises and the cell scores 0.

Predictions ("what will the model show?") are answer cells too: the
student returns the prediction from a function, since a stub at the top
level of a cell would raise as the notebook runs.  Check the value only in
hidden tests (a visible one would give it away); check its type visibly:

    def predict_order():
        """Which order does alloc_pages use for a 3-page request?"""
        ### BEGIN SOLUTION
        return 2
        ### END SOLUTION

    check(lambda: isinstance(predict_order(), int), what="an order is an int")
    ### BEGIN HIDDEN TESTS
    check(lambda: predict_order(), 2)
    ### END HIDDEN TESTS

Rules `mmlab exercises` enforces (nbgrader's, then the course's):
  - grade_ids are unique and match [A-Za-z0-9_-]+; test cells have
    grade=true, locked=true, solution=false and points; answer cells
    solution=true and grade=false (a graded answer cell would earn its
    points with the stub in place);
  - every solution cell has a region, and every region is indented inside
    a def; hidden tests only in test cells; graded cells are code (mmlab
    grades everything automatically: no markdown answers or tasks);
  - set-up cells students must not change may be locked (locked=true,
    grade=false, solution=false, a grade_id): the grader restores them.
Not enforced, but needed for the exercise to run clean: only check() calls
a student's function (a demo cell calling it would raise on the stub), and
tests reach the student's work only through such calls.

Save solutions with their outputs (nbval compares them; keep them
deterministic); exercises are written with outputs cleared.  Grading runs a
submission in a fresh kernel with every locked cell restored from the
solution, and scores each test cell by whether it ran without error.
mmlab.course.markup.answer_cell / test_cell / locked_cell build these cells
from Python.
'''
from .checks import check, grading, NotAttempted, GRADING_ENV

__all__ = ["check", "grading", "NotAttempted", "GRADING_ENV"]
