"""The project's SQL files (bike_assets/sql), rendered with Jinja as dbt renders a model.

- `sql/<layer>/<model>.sql`: one model per file; `{{ ref('model') }}` is the model's table
  (`<layer>.<model>`), `{{ source('name') }}` a working table of the run (the export as read,
  the lookups), `{{ as_of_date }}` and other variables are passed by the asset.
- `sql/macros/rules.sql`: the business rules of the contract, one macro each, expanded into
  plain SQL wherever a model or a check calls them (so the text translates to other engines).
- `sql/macros/keys.sql`: the key checks (unique keys, references, layers agree), in a form
  that stays fast on large tables; each shows the plain query it equals.
- `sql/checks/<check>.sql`: the failing rows of a check; `{{ this }}` is the audited table.
"""

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

SQL_DIR = Path(__file__).parent.parent / "sql"
LAYERS = ("staging", "intermediate", "marts")
WORK_SCHEMA = "work"  # the run's working tables: never published
MACRO_FILES = ("rules", "keys")  # sql/macros/<file>.sql: macros every SQL file can call


@cache
def model_schemas() -> dict[str, str]:
    """Each model's schema, from the folder its SQL file is in: {'stg_customers': 'staging'}."""
    return {path.stem: layer for layer in LAYERS for path in (SQL_DIR / layer).glob("*.sql")}


def ref(model: str) -> str:
    """The table of a model: `ref('stg_customers')` is `staging.stg_customers`.

    Raises KeyError naming the model when no `sql/<layer>/<model>.sql` exists.
    """
    try:
        return f"{model_schemas()[model]}.{model}"
    except KeyError:
        raise KeyError(f"no model {model!r}: expected a file sql/<layer>/{model}.sql") from None


def source(name: str) -> str:
    """A working table of the run (the export's rows as read, a lookup): `work.<name>`."""
    return f"{WORK_SCHEMA}.{name}"


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SQL_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.globals.update(ref=ref, source=source)
    for macros in MACRO_FILES:
        module = environment.get_template(f"macros/{macros}.sql").module
        environment.globals.update(
            {name: getattr(module, name) for name in dir(module) if not name.startswith("_")}
        )
    return environment


def render(path: str, **variables: Any) -> str:
    """The SQL of `sql/<path>.sql` (e.g. 'marts/customers_enriched'), with its macros expanded.

    Raises jinja2.UndefinedError when the file uses a variable that is not passed.
    """
    return _environment().get_template(f"{path}.sql").render(**variables)


def date_literal(day: Any) -> str:
    """A SQL date literal: date '2019-01-01' (for `{{ as_of_date }}`)."""
    return f"date '{day.isoformat()}'"


def expand(call: str, **variables: Any) -> str:
    """A macro call expanded to plain SQL: expand("ltv_segment('total_spent')"), or with
    variables: expand("repeated_keys(rows, columns, id)", rows=..., columns=..., id=...)."""
    return _environment().from_string("{{ " + call + " }}").render(**variables)
