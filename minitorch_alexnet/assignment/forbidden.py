"""No credit for handing in the library: what a submission may not use, and how it is caught.

The manifest names forbidden objects by dotted name: a class
(``minitorch_alexnet.nn.BatchNorm2d``), a function (``...nn.batchnorm.batchnorm_forward``)
or a whole module (``minitorch_alexnet.nn.batchnorm``). :func:`resolve` expands them:

* a module: everything defined in it;
* a class: itself, and the methods of every library class in its MRO except the
  allowed bases (``Module``, ``Optimizer``, ``object``);
* an overridable function: its reference, and every backend's override registered
  under its name (read from the ``OVERRIDES`` tables; CuPy's only where it imports).

``Module``, ``Parameter``, ``init`` and ``minitorch_alexnet.testing`` are never forbidden.

Three checks use the expansion:

1. :func:`scan_source`, statically (the syntax tree): imports of a forbidden module or
   name, attribute chains reaching one (``mt.nn.BatchNorm2d``), ``getattr``,
   ``importlib.import_module``, ``__import__`` or ``sys.modules[...]`` with a
   library name, and dynamic imports whose name is computed;
2. :func:`scan_module`, after import: a class whose MRO holds a forbidden class (a
   subclass), a name bound to a forbidden object (an alias), a class attribute that
   is a forbidden function;
3. :class:`CallGuard`, while the tests run: a call into a forbidden function whose
   caller chain holds a frame of the submission (the tests' own calls of the library
   are allowed: they are the reference).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import syntax

__all__ = ["CallGuard", "Forbidden", "Violation", "resolve", "scan_module", "scan_source"]

LIBRARY = "minitorch_alexnet"
ALLOWED_MODULES = (
    "minitorch_alexnet.nn.module",
    "minitorch_alexnet.nn.init",
    "minitorch_alexnet.testing",
    "minitorch_alexnet.gradcheck",
    "minitorch_alexnet.backend",
    "minitorch_alexnet.optim.optimizer",
)
BACKEND_PACKAGES = ("numba", "cuda")
HINT = "write it yourself"


@dataclass
class Violation:
    """One forbidden use: what (a dotted name), how, where, the tasks it costs (none
    listed: every task) and what to do instead."""

    name: str
    how: str
    where: str
    tasks: list[str]
    hint: str = HINT

    def message(self) -> str:
        return (
            f"your submission {self.how} {self.name} ({self.where}), which this assignment "
            f"forbids: {self.hint}"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(name=self.name, how=self.how, where=self.where, tasks=self.tasks,
                    hint=self.hint)  # fmt: skip


@dataclass
class Forbidden:
    """The expanded forbidden objects, each with the tasks a use of it costs."""

    objects: dict[int, tuple[str, set[str]]] = field(default_factory=dict)  # id -> (name, tasks)
    modules: dict[str, set[str]] = field(default_factory=dict)  # module name -> tasks
    codes: dict[types.CodeType, tuple[str, set[str]]] = field(default_factory=dict)
    functions: list[tuple[str, Any, set[str]]] = field(default_factory=list)  # for pasted copies
    unresolved: list[str] = field(default_factory=list)
    _keep: list[Any] = field(default_factory=list)

    def lookup(self, obj: Any) -> tuple[str, set[str]] | None:
        """(dotted name, tasks) when ``obj`` is a forbidden object (or a module of one)."""
        if isinstance(obj, types.ModuleType):
            tasks = self.modules.get(obj.__name__)
            return (obj.__name__, tasks) if tasks else None
        for candidate in (obj, getattr(obj, "__func__", None)):
            if candidate is not None and id(candidate) in self.objects:
                return self.objects[id(candidate)]
        return None

    def _add(self, obj: Any, name: str, tasks: set[str]) -> None:
        if id(obj) in self.objects:
            self.objects[id(obj)][1].update(tasks)
            if inspect.isfunction(obj) and inspect.unwrap(obj).__code__ in self.codes:
                self.codes[inspect.unwrap(obj).__code__][1].update(tasks)
            return
        self.objects[id(obj)] = (name, set(tasks))
        self._keep.append(obj)
        if inspect.isfunction(obj):
            inner = inspect.unwrap(obj)
            if inner is not obj:  # the wrapper's code is shared by every wrapped function
                self._add(inner, name, tasks)
            else:
                self.codes.setdefault(obj.__code__, (name, set()))[1].update(tasks)
                self.functions.append((name, obj, set(tasks)))


def _import(name: str) -> Any:
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a module that fails to import is not a match
            return None
        for attr in parts[i:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return None
        return obj
    return None


def _allowed(obj: Any) -> bool:
    mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    if obj is object:
        return True
    return any(mod == a or mod.startswith(a + ".") for a in ALLOWED_MODULES)


def _expand(f: Forbidden, obj: Any, name: str, tasks: set[str]) -> None:
    if isinstance(obj, types.ModuleType):
        f.modules.setdefault(obj.__name__, set()).update(tasks)
        for attr, value in vars(obj).items():
            if getattr(value, "__module__", None) == obj.__name__ and (
                inspect.isclass(value) or callable(value)
            ):
                _expand(f, value, f"{obj.__name__}.{attr}", tasks)
        return
    if _allowed(obj):
        return
    if inspect.isclass(obj):
        for klass in obj.__mro__:
            if _allowed(klass) or not (klass.__module__ or "").startswith(LIBRARY):
                continue
            kname = f"{klass.__module__}.{klass.__qualname__}"
            f._add(klass, kname, tasks)
            for attr, value in vars(klass).items():
                fn = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
                if inspect.isfunction(fn):
                    f._add(fn, f"{kname}.{attr}", tasks)
        return
    f._add(obj, name, tasks)
    reference = getattr(obj, "reference", None)
    if reference is not None:  # an overridable function: its reference and the overrides
        f._add(reference, name, tasks)
        for package in BACKEND_PACKAGES:
            where = f"{LIBRARY}.backend.{package}"
            try:
                table = importlib.import_module(where).OVERRIDES
            except Exception:  # noqa: BLE001 - a backend package that cannot load
                continue
            entry = table.get(obj.__name__)
            if entry is None:
                continue
            dotted = f"{where}.{entry[0]}.{obj.__name__}"
            override = _import(dotted)
            if override is not None:
                f._add(override, dotted, tasks)


def resolve(by_task: dict[str, list[str]]) -> Forbidden:
    """Expand each task's forbidden names (see the module's text)."""
    f = Forbidden()
    for task, names in by_task.items():
        for name in names:
            obj = _import(name)
            if obj is None:
                f.unresolved.append(name)
                continue
            _expand(f, obj, name, {task})
    return f


# ---------------------------------------------------------------- 1. the syntax tree
def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``mt.nn.BatchNorm2d`` -> ``minitorch_alexnet.nn.BatchNorm2d`` (via the imports)."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Subscript):  # vars(nn)["X"], nn.__dict__["X"], sys.modules["x"]
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            inner = node.value
            if isinstance(inner, ast.Call) and getattr(inner.func, "id", "") == "vars":
                base = _dotted(inner.args[0], aliases) if inner.args else None
            elif isinstance(inner, ast.Attribute) and inner.attr == "__dict__":
                base = _dotted(inner.value, aliases)
            else:
                base = _dotted(inner, aliases)
            if base == "sys.modules":
                return key.value
            return f"{base}.{key.value}" if base else None
    return None


def _first_forbidden(dotted: str, f: Forbidden) -> tuple[str, set[str]] | None:
    """The first prefix of ``dotted`` that names a forbidden object or module."""
    if not dotted.startswith(LIBRARY):
        return None
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in f.modules:
            return prefix, f.modules[prefix]
        obj = _import(prefix)
        if obj is None:
            return None
        hit = f.lookup(obj)
        if hit:
            return (prefix if prefix == hit[0] else f"{prefix} (= {hit[0]})"), hit[1]
    return None


def scan_source(source: str, f: Forbidden, filename: str = "<submission>") -> list[Violation]:
    """Forbidden uses visible in the source text (imports, names, dynamic lookups)."""
    try:
        tree = syntax.parse(source, filename)
    except SyntaxError:
        return []  # the import will fail and say so
    aliases: dict[str, str] = {"sys": "sys"}
    found: dict[tuple[str, int], Violation] = {}
    every = sorted({t for tasks in f.modules.values() for t in tasks} |
                   {t for _, tasks in f.objects.values() for t in tasks})  # fmt: skip
    name = filename.rsplit("/", 1)[-1]

    def hit(dotted: str | None, how: str, node: ast.AST) -> None:
        if not dotted:
            return
        found_ = _first_forbidden(dotted, f)
        if found_:
            key = (found_[0], node.lineno)
            found.setdefault(key, Violation(found_[0], how, f"{name}, line {node.lineno}",
                                            sorted(found_[1])))  # fmt: skip

    for node in ast.walk(tree):  # the imports first: aliases hold wherever they are used
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases[top] = top
                hit(a.name, "imports", node)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                aliases[a.asname or a.name] = full
                hit(full, "imports", node)
                if a.name == "*":
                    hit(node.module, "imports everything from", node)
    dynamic = {"importlib.import_module", "__import__", "importlib.__import__"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            hit(_dotted(node, aliases), "uses", node)
        elif isinstance(node, ast.Call):
            func = _dotted(node.func, aliases) or getattr(node.func, "id", "")
            args = node.args
            const = [a.value for a in args if isinstance(a, ast.Constant)]
            if func in ("getattr", "builtins.getattr") and len(args) >= 2:
                base = _dotted(args[0], aliases)
                if isinstance(args[1], ast.Constant) and isinstance(args[1].value, str):
                    hit(f"{base}.{args[1].value}" if base else None, "looks up", node)
                elif base and base.startswith(LIBRARY):
                    found.setdefault(("getattr", node.lineno), Violation(
                        f"a computed attribute of {base}", "looks up", f"{name}, line "
                        f"{node.lineno}", every))  # fmt: skip
            elif func in dynamic or func.endswith("import_module"):
                if const and isinstance(const[0], str):
                    hit(const[0], "imports", node)
                else:
                    found.setdefault(("import", node.lineno), Violation(
                        "a module whose name is computed", "imports", f"{name}, line "
                        f"{node.lineno}", every))  # fmt: skip
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith(LIBRARY + "."):
                hit(node.value, "names", node)
    return sorted(found.values(), key=lambda v: (v.where, v.name))


# ---------------------------------------------------------------- 2. after import
def scan_module(module: types.ModuleType, f: Forbidden) -> list[Violation]:
    """Subclasses, aliases and borrowed methods among a loaded submission's names."""
    out = []
    file = getattr(module, "__file__", "") or ""
    where = file.rsplit("/", 1)[-1] or module.__name__
    for attr, value in list(vars(module).items()):
        if attr.startswith("__"):
            continue
        hit = f.lookup(value)
        if hit and not isinstance(value, types.ModuleType):
            how = f"binds the name {attr!r} to"
            out.append(Violation(hit[0], how, where, sorted(hit[1])))
            continue
        if inspect.isclass(value) and getattr(value, "__module__", None) == module.__name__:
            for base in value.__mro__[1:]:
                hit = f.lookup(base)
                if hit:
                    out.append(
                        Violation(hit[0], f"subclasses (class {attr})", where, sorted(hit[1]))
                    )
                    break
            for name, member in vars(value).items():
                fn = getattr(member, "__func__", member)
                hit = f.lookup(fn)
                if hit:
                    how = f"borrows (as {attr}.{name})"
                    out.append(Violation(hit[0], how, where, sorted(hit[1])))
    return out


# ---------------------------------------------------------------- 3. calls at test time
class CallGuard:
    """Records calls into forbidden functions made from the submission's code.

    A profile hook (``sys.setprofile``) is on only while a function of the submission
    runs (:meth:`wrap_module` wraps them); a call of a forbidden function then is a
    violation when a frame of the submission's file is among its callers.
    """

    def __init__(self, f: Forbidden, files: Iterable[str]):
        self.f = f
        self.files = {str(p) for p in files}
        self.depth = 0
        self.previous: Any = None
        self.found: list[Violation] = []

    def _profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            hit = self.f.codes.get(frame.f_code)
        elif event == "c_call":
            hit = self.f.lookup(arg)
        else:
            return
        if hit is None:
            return
        caller = frame.f_back if event == "call" else frame
        while caller is not None:
            if caller.f_code.co_filename in self.files:
                where = f"{caller.f_code.co_filename.rsplit('/', 1)[-1]}, line {caller.f_lineno}"
                v = Violation(hit[0], "calls", where, sorted(hit[1]))
                if all((v.name, v.where) != (o.name, o.where) for o in self.found):
                    self.found.append(v)
                return
            caller = caller.f_back

    def enter(self) -> None:
        if self.depth == 0:
            self.previous = sys.getprofile()
            sys.setprofile(self._profile)
        self.depth += 1

    def exit(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            sys.setprofile(self.previous)

    def guarded(self, fn: Any) -> Any:
        import functools

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            self.enter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()

        run.__assignment_guarded__ = True  # type: ignore[attr-defined]
        return run

    def wrap_module(self, module: types.ModuleType) -> None:
        """Guard every function and method the submission's file defines."""

        def own(fn: Any) -> bool:
            code = getattr(fn, "__code__", None)
            return code is not None and code.co_filename in self.files

        for attr, value in list(vars(module).items()):
            if inspect.isfunction(value) and own(value):
                setattr(module, attr, self.guarded(value))
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                for name, member in list(vars(value).items()):
                    if isinstance(member, (staticmethod, classmethod)) and own(member.__func__):
                        setattr(value, name, type(member)(self.guarded(member.__func__)))
                    elif isinstance(member, property) and own(member.fget):
                        setattr(value, name, property(self.guarded(member.fget), member.fset,
                                                      member.fdel, member.__doc__))  # fmt: skip
                    elif inspect.isfunction(member) and own(member):
                        setattr(value, name, self.guarded(member))
