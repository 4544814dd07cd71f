"""Security: no SQL is built by string formatting from anything but the code's own constants.

ruff's S608 flags SQL-looking f-strings; this test goes further, on the syntax tree of
every source package: each call that runs or wraps SQL — ``execute``,
``executemany``, ``exec_driver_sql``, ``executescript``, ``sa.text``,
``sa.literal_column``, Alembic's ``op.execute``, and any function of ours that hands
one of its parameters to those (found by following the parameters, e.g.
``prepaid.anomalies._query``) — is checked: its SQL argument must not be an f-string
with a placeholder, ``%`` or ``+`` with a non-constant part, ``"…".format(…)`` or
``"…".join(…)``, nor a local variable assigned such an expression.

The places that do build SQL text are listed in :data:`ALLOWED`, each with why it is
safe (only identifiers, integers or fragments from the code itself; every outside
value a bound parameter). The list must match exactly: a new place fails the test
(bind the value, or add it here with its reason after review) and so does an entry
that no longer exists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "breaker_sim", "meter_sim", "headend", "prepaid", "console", "feikong")

_METHODS = frozenset({"execute", "executemany", "exec_driver_sql", "executescript"})
_WRAPPERS = frozenset({"text", "literal_column"})
_SQLALCHEMY = frozenset({"sa", "sqlalchemy"})

ALLOWED: dict[tuple[str, str], str] = {
    (
        "headend/db.py",
        "_sqlite_pragmas",
    ): "PRAGMA busy_timeout from a module constant, formatted :d",
    ("headend/sharding.py", "_statement"): "the advisory-lock function name: one of two literals "
    "passed by the class itself (pg_try_advisory_lock / pg_advisory_unlock); key bound",
    ("prepaid/balance.py", "_statement"): "CTE and account-set fragments are module constants",
    ("prepaid/generate.py", "rows"): "table and column names from the generator's own table "
    "list; the rows go through COPY or bound '?' parameters",
    ("prepaid/generate.py", "readings"): "placeholders and the DI are module constants; "
    "values are bound",
    ("prepaid/anomalies.py", "anomaly_counts"): "the WHERE clause adds bound-parameter names "
    "(:k0, :unit) and a module constant (_OPEN)",
    ("prepaid/rating/_run.py", "_results"): "column lists of the rating module's own constants",
    ("prepaid/rating/_store.py", "fetch"): "column lists and day numbers are module constants "
    "or integers (module doc); values are bound",
    ("prepaid/rating/_store.py", "_fetch_tou"): "TOU column names from the module's constants",
    ("prepaid/rating/_store.py", "apply"): "integer day and module-constant fragments",
    ("prepaid/rating/_store.py", "_update_tou"): "SET list from the module's TOU columns",
    ("prepaid/rating/_store.py", "_closing"): "integer day and module-constant fragments",
    ("prepaid/rating/_store.py", "counts"): "module-constant fragments; kinds are bound",
    ("prepaid/rating/_store.py", "refresh_outcomes"): "a CASE built from module constants",
    ("prepaid/rating/_store.py", "_fetch_tou_pg"): "TOU column names from the module's constants",
    ("prepaid/rating/_store.py", "_update_state"): "an integer day (int()) and constants",
    ("prepaid/migrations/versions/vs0001_settings_users_audit.py", "_append_only"): "trigger "
    "and table names from the migration's fixed table list",
    ("prepaid/migrations/versions/vs0001_settings_users_audit.py", "_drop_append_only"): "the "
    "same fixed table list",
    ("prepaid/migrations/versions/va0002_rating_state_fillfactor.py", "upgrade"): "a fillfactor "
    "integer constant",
    ("prepaid/migrations/versions/va0002_rating_state_fillfactor.py", "downgrade"): "the same",
    ("prepaid/migrations/versions/vo0001_console_search.py", "upgrade"): "index names from the "
    "migration's fixed list",
}


Assigned = dict[str, list[ast.expr]]


def _dynamic(node: ast.expr, assigned: Assigned, seen: frozenset[str]) -> bool:
    """Whether ``node`` may carry a value that is not a string constant of the function."""
    if isinstance(node, ast.Constant):
        return False
    if isinstance(node, ast.Name):
        if node.id in seen:
            return False
        if node.id not in assigned:
            return True  # a parameter, a global, a loop variable: not known here
        return any(_dynamic(v, assigned, seen | {node.id}) for v in assigned[node.id])
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _dynamic(node.left, assigned, seen) or _dynamic(node.right, assigned, seen)
    return True


def _formatted(node: ast.expr, assigned: Assigned, seen: frozenset[str] = frozenset()) -> bool:
    """Whether the SQL text ``node`` is built by formatting with a non-constant part."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return _dynamic(node.left, assigned, seen) or _dynamic(node.right, assigned, seen)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join")
        and isinstance(node.func.value, ast.Constant | ast.JoinedStr)
    ):
        return True
    if isinstance(node, ast.Name) and node.id in assigned and node.id not in seen:
        return any(_formatted(v, assigned, seen | {node.id}) for v in assigned[node.id])
    return False


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``function`` outside its nested functions."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield child
        yield from _own_nodes(child)


def _sql_position(call: ast.Call, sinks: dict[str, int]) -> int | None:
    """The index of the SQL argument if ``call`` runs or wraps SQL."""
    func = call.func
    if isinstance(func, ast.Attribute):
        if func.attr in _METHODS:
            return 0
        if func.attr in _WRAPPERS:
            return 0 if isinstance(func.value, ast.Name) and func.value.id in _SQLALCHEMY else None
        return sinks.get(func.attr)
    if isinstance(func, ast.Name):
        if func.id in _WRAPPERS:
            return 0
        return sinks.get(func.id)
    return None


def _sinks(trees: list[tuple[str, ast.Module]]) -> dict[str, int]:
    """Our functions that pass one of their parameters on as SQL: name → its index."""
    sinks: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for _, tree in trees:
            for function in _functions(tree):
                if function.name in sinks:
                    continue
                params = [a.arg for a in function.args.args]
                for node in _own_nodes(function):
                    if not isinstance(node, ast.Call):
                        continue
                    at = _sql_position(node, sinks)
                    if at is None or len(node.args) <= at:
                        continue
                    arg = node.args[at]
                    if isinstance(arg, ast.Name) and arg.id in params:
                        index = params.index(arg.id)
                        if params and params[0] in ("self", "cls"):
                            index -= 1
                        sinks[function.name] = index
                        changed = True
                        break
    return sinks


def formatted_sql(trees: list[tuple[str, ast.Module]] | None = None) -> set[tuple[str, str]]:
    """(file, function) of every call whose SQL argument is built by formatting."""
    trees = list(_sources()) if trees is None else trees
    sinks = _sinks(trees)
    found: set[tuple[str, str]] = set()
    for path, tree in trees:
        for function in _functions(tree):
            assigned: Assigned = {}
            nodes = list(_own_nodes(function))
            for node in nodes:
                if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and node.value is not None:
                            value = node.value
                            if isinstance(node, ast.AugAssign):  # x += f"…" is formatting
                                value = ast.BinOp(ast.Name(target.id), ast.Add(), node.value)
                            assigned.setdefault(target.id, []).append(value)
            for node in nodes:
                if not isinstance(node, ast.Call):
                    continue
                at = _sql_position(node, sinks)
                if at is None or len(node.args) <= at:
                    continue
                arg = node.args[at]
                if _formatted(arg, assigned):
                    found.add((path, function.name))
    return found


def test_no_sql_is_built_by_formatting_outside_the_reviewed_places() -> None:
    found = formatted_sql()
    new = sorted(found - ALLOWED.keys())
    assert new == [], (
        "SQL built by string formatting (bind the values as parameters, or review and add "
        f"the place to ALLOWED with its reason): {new}"
    )
    gone = sorted(ALLOWED.keys() - found)
    assert gone == [], f"ALLOWED lists places that no longer build SQL text: {gone}"


def test_the_scanner_finds_each_kind_of_formatting() -> None:
    """The check itself: each way of building SQL from a value is caught, bound SQL is not."""
    source = """
def a(c, x):
    c.execute(f"SELECT * FROM t WHERE id = {x}")
def b(c, x):
    c.execute("SELECT * FROM t WHERE id = %s" % x)
def d(c, x):
    c.execute("SELECT * FROM t WHERE id = " + x)
def e(c, x):
    c.exec_driver_sql("SELECT * FROM t WHERE id = {}".format(x))
def f(x):
    return sa.text(f"SELECT {x}")
def g(c, x):
    q = f"DELETE FROM t WHERE id = {x}"
    c.execute(q)
def h(c, x):
    q = "DELETE FROM t WHERE id = "
    q += x
    c.execute(q)
def _run(c, sql, params):
    return c.execute(text(sql), params)
def i(c, x):
    _run(c, f"SELECT {x}", {})
def safe(c, x):
    c.execute(sa.text("SELECT * FROM t WHERE id = :x"), {"x": x})
    c.execute("SELECT " "1")
    r.text(f"{x}.period", 1)
"""
    found = {name for _, name in formatted_sql([("fake.py", ast.parse(source))])}
    assert found == {"a", "b", "d", "e", "f", "g", "h", "i"}
