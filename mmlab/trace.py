"""Recording the kernel path an operation takes.

    with m.trace() as t:
        m.alloc_pages(2)
    print(t)

prints a call tree in the manner of ftrace's function_graph tracer: each
modelled kernel function with its arguments and result, and the decisions
taken inside it ("expand: ...").  Model code marks functions with @traced and
decisions with note(); both cost one global read when no trace is running.
"""
import functools
import inspect

_active = None          # the Trace being recorded, or None


class Event:
    """One line of a trace: a call (with its result once it returns) or a note."""

    __slots__ = ("depth", "kind", "func", "args", "result", "text")

    def __init__(self, depth, kind, func, args=None, text=""):
        self.depth, self.kind, self.func, self.args = depth, kind, func, args or {}
        self.result = None
        self.text = text

    def __str__(self):
        pad = "  " * self.depth
        if self.kind == "note":
            return f"{pad}· {self.text}"
        line = f"{pad}{self.func}({self.text})"
        if self.result is not None:
            line += f" = {self.result}"
        return line

    def __repr__(self):
        return f"Event({self})"


class Trace:
    """The events recorded on one machine while a `with m.trace()` block ran."""

    def __init__(self, machine):
        self.machine = machine
        self.events = []
        self._depth = 0
        self._saved = None

    def __enter__(self):
        global _active
        self._saved, _active = _active, self
        return self

    def __exit__(self, *exc):
        global _active
        _active = self._saved
        return False

    def calls(self):
        """The names of the functions called, in order."""
        return [e.func for e in self.events if e.kind == "call"]

    def notes(self):
        """The decisions noted, in order, as text."""
        return [e.text for e in self.events if e.kind == "note"]

    def __str__(self):
        return "\n".join(str(e) for e in self.events)

    def __repr__(self):
        return f"<Trace: {len(self.events)} events>"

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def _plain(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 4096:
        return hex(value)
    return repr(value) if isinstance(value, str) else str(value)


def traced(fn=None, *, fmt=None, result=None, name=None):
    """Mark a model function for tracing.

    `fmt` maps argument names to formatters (for instance gfp=gfp_name);
    `result` formats the return value; `name` overrides the function's name
    where the kernel's name differs from the Python one.  The first argument
    must have a `machine` attribute: only the machine being traced records.
    """
    if fn is None:
        return lambda f: traced(f, fmt=fmt, result=result, name=name)
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters if p != "self"]
    fmt = fmt or {}
    fname = name or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = _active
        if t is None or getattr(args[0], "machine", None) is not t.machine:
            return fn(*args, **kwargs)
        bound = sig.bind(*args, **kwargs)
        shown = {k: v for k, v in bound.arguments.items() if k in params and v is not t.machine}
        text = ", ".join(f"{k}={fmt.get(k, _plain)(v)}" for k, v in shown.items())
        event = Event(t._depth, "call", fname, shown, text)
        t.events.append(event)
        t._depth += 1
        try:
            value = fn(*args, **kwargs)
        finally:
            t._depth -= 1
        event.result = (result or _plain)(value) if value is not None else None
        return value

    wrapper.__wrapped__ = fn
    return wrapper


def note(obj, text, *args):
    """Record a decision on obj's machine; `text % args` is only built when tracing."""
    t = _active
    if t is not None and getattr(obj, "machine", None) is t.machine:
        t.events.append(Event(t._depth, "note", "", text=(text % args) if args else text))


def tracing(obj):
    """True while obj's machine is being traced (to skip building costly notes)."""
    t = _active
    return t is not None and getattr(obj, "machine", None) is t.machine
