"""check: the one-line verdict a visible test prints in an exercise notebook.

    check(lambda: pages_needed(4097), 2)          # ✓ passed
    check(lambda: 3 in free_orders(m))            # a predicate: False fails
    check(test_pages_needed, what="edge cases")   # a function full of asserts

A student runs the exercise as handed out and sees "not attempted" under
every test, and the notebook still runs clean from top to bottom (nbval
checks that).  The grader sets MMLAB_GRADING=1 in the kernel's environment
(nbgrader sets NBGRADER_EXECUTION); then a test that did not pass raises, so
its cell fails and scores 0.
"""
import os

import numpy as _np

GRADING_ENV = "MMLAB_GRADING"
NBGRADER_ENV = "NBGRADER_EXECUTION"
MAX_REPR = 120          # keep a verdict on one readable line

_MISSING = object()


class NotAttempted(AssertionError):
    """A test reached a stub: the student has not written this part yet.

    The grader reports a cell that raised this (or a bare NotImplementedError)
    as "not attempted" rather than "failed"; both score 0.
    """


def grading():
    """True when a grader runs this kernel.

    mmlab grade sets MMLAB_GRADING=1; nbgrader's autograde and validate set
    NBGRADER_EXECUTION (nbgrader/converters/autograde.py, validator.py), so
    the same notebooks grade alike under nbgrader.
    """
    return os.environ.get(GRADING_ENV) == "1" or bool(os.environ.get(NBGRADER_ENV))


def check(test, expected=_MISSING, *, what=None):
    """Run one visible or hidden test and print its verdict on one line.

    `test` is a callable taking no arguments: a lambda wrapping the call
    under test, or a function holding asserts.  With `expected`, the test
    passes when test() == expected; without it, when test() neither raises
    nor returns False.  `what`, if given, names the case in the verdict.

    Prints exactly one of "✓ passed", "✗ failed: <reason>" or "not attempted"
    (prefixed by "what: "), always the same text for the same outcome, since
    nbval compares printed output.  Returns None, so nothing else is shown.

    Outside grading mode check never raises on a test's outcome.  In grading
    mode a failure raises AssertionError and an untouched stub NotAttempted.
    """
    if not callable(test):
        raise TypeError(f"test must be a callable taking no arguments (write lambda: ...), "
                        f"not {type(test).__name__}")
    prefix = f"{what}: " if what is not None else ""
    try:
        got = test()
    except (NotImplementedError, NotAttempted):
        # The student's stub raised: that part is not written yet.
        return _verdict(prefix, None, NotAttempted("not attempted"))
    except AssertionError as e:
        return _verdict(prefix, _one_line(str(e)) or "assertion failed", e)
    except Exception as e:      # their code crashed: a failure, named as Python names it
        return _verdict(prefix, _one_line(f"{type(e).__name__}: {e}"), e)
    reason = _compare(got, expected)
    return _verdict(prefix, reason, None)


def _compare(got, expected):
    """Why `got` fails the test, or None when it passes."""
    if expected is _MISSING:
        if got is False or (isinstance(got, _np.bool_) and not got):
            return "the test returned False"
        return None
    try:
        if isinstance(got, _np.ndarray) or isinstance(expected, _np.ndarray):
            equal = _np.array_equal(got, expected)
        else:
            equal = got == expected
    except Exception:
        equal = False
    # An answer whose == gives something other than a bool (an array, say)
    # counts as unequal rather than crashing the test.
    equal = equal if isinstance(equal, (bool, _np.bool_)) else False
    if equal:
        return None
    return f"got {_short(got)}, expected {_short(expected)}"


def _verdict(prefix, reason, error):
    """Print the verdict line; in grading mode raise for anything but a pass."""
    if isinstance(error, NotAttempted):
        print(f"{prefix}not attempted")
        if grading():
            raise error
        return None
    if reason is None:
        print(f"{prefix}✓ passed")
        return None
    print(f"{prefix}✗ failed: {reason}")
    if grading():
        raise AssertionError(f"{prefix}{reason}") from error
    return None


def _short(value):
    """repr of value cut to MAX_REPR characters, on one line."""
    return _one_line(repr(value))


def _one_line(text):
    text = " ".join(text.split())
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 1] + "…"
