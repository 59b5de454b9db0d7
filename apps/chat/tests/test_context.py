"""What the model is shown: schema linking, the DDL, the prompts, and reading SQL back (pure, no DB)."""

import json
from dataclasses import replace

import pytest
import sqlglot
from sqlglot import exp

from apps.chat.providers.base import QuestionContext, Turn
from apps.chat.services import context as ctx
from apps.chat.services.context import (
    SchemaIndex,
    chart_spec_extract,
    estimate_tokens,
    prompt_for_analysis,
    prompt_for_sql,
    schema_index,
    schema_link,
    schema_render,
    sql_extract,
)
from apps.connections.engines.base import ColumnInfo, TableInfo

DIALECTS = ["postgres", "mysql", "sqlite", "duckdb"]


def column(name: str, data_type: str = "integer", **kwargs) -> ColumnInfo:
    return ColumnInfo(name=name, position=0, data_type=data_type, **kwargs)


def table(schema: str, name: str, *columns: ColumnInfo, comment: str = "") -> TableInfo:
    numbered = [replace(c, position=n) for n, c in enumerate(columns, start=1)]
    return TableInfo(schema=schema, name=name, comment=comment, columns=numbered)


def key(name: str = "id") -> ColumnInfo:
    return column(name, "bigint", nullable=False, is_primary_key=True)


def fk(name: str, target: str) -> ColumnInfo:
    return column(name, "bigint", references=target)


def catalogue() -> list[TableInfo]:
    """A small warehouse in several schemas, in catalogue order (schema, name)."""
    tables = [
        table(
            "catalog",
            "categories",
            key(),
            column("name", "text", samples=["Hardware", "Software", "Services"]),
        ),
        table(
            "catalog",
            "products",
            key(),
            column("name", "text"),
            fk("category_id", "catalog.categories.id"),
            column("list_price", "numeric(12,2)"),
        ),
        table(
            "geo", "countries", key(), column("name", "text"), column("region", "text", samples=["Europe"])
        ),
        table("hr", "departments", key(), column("name", "text")),
        table(
            "hr",
            "staff",
            key(),
            column("full_name", "text"),
            fk("department_id", "hr.departments.id"),
            column("hired_on", "date"),
            column("salary", "numeric(12,2)"),
            comment="People on the payroll",
        ),
        table(
            "marketing",
            "campaigns",
            key(),
            column("name", "text"),
            column("budget", "numeric"),
            column("starts_on", "date"),
        ),
        table(
            "sales",
            "customers",
            key(),
            column("name", "text"),
            column("segment", "text"),
            fk("country_id", "geo.countries.id"),
        ),
        table(
            "sales",
            "order_items",
            key(),
            fk("order_id", "sales.orders.id"),
            fk("product_id", "catalog.products.id"),
            column("quantity"),
            column("unit_price", "numeric(12,2)"),
        ),
        table(
            "sales",
            "orders",
            key(),
            fk("customer_id", "sales.customers.id"),
            column("ordered_at", "timestamp"),
            column("total_amount", "numeric"),
        ),
        table("school", "courses", key(), column("title", "text")),
        table(
            "school",
            "enrollments",
            fk("student_id", "school.students.id"),
            fk("course_id", "school.courses.id"),
            column("grade", "text"),
        ),
        table("school", "students", key(), column("name", "text")),
        table(
            "support", "tickets", key(), fk("customer_id", "sales.customers.id"), column("priority", "text")
        ),
        table(
            "web",
            "sessions",
            key(),
            column("visitor", "text"),
            column("page", "text"),
            column("started_at", "timestamp"),
        ),
    ]
    return tables


def names(tables: list[TableInfo]) -> list[str]:
    return [t.qualified_name for t in tables]


# Which tables ------------------------------------------------------------------------------------------

# Small enough that the catalogue above does not fit, so the linker has to choose.
TIGHT = 300


def test_the_whole_catalogue_is_returned_in_order_when_it_fits():
    tables = catalogue()

    linked = schema_link(tables, "anything at all")

    assert linked == tables


def test_a_fitting_catalogue_is_returned_whole_even_past_max_tables():
    tables = catalogue()

    assert len(schema_link(tables, "orders", max_tables=3)) == len(tables)


def test_the_catalogue_no_longer_fits_under_the_tight_budget():
    assert estimate_tokens(schema_render(catalogue(), "postgres")) > TIGHT


def test_a_synonym_finds_the_table_named_differently():
    linked = schema_link(
        catalogue(), "How many employees were hired in 2023?", token_budget=TIGHT, max_tables=1
    )

    assert names(linked) == ["hr.staff"]


def test_a_sample_value_points_at_its_table():
    linked = schema_link(catalogue(), "What do we sell in Hardware?", token_budget=TIGHT, max_tables=1)

    assert names(linked) == ["catalog.categories"]


def test_a_bridge_table_joins_the_two_tables_a_question_names():
    tables = [
        table("campus", "courses", key(), column("title", "text")),
        # Shares no word with the question: only the foreign keys say it joins the two.
        table(
            "campus",
            "roster",
            fk("person_ref", "campus.students.id"),
            fk("offering_ref", "campus.courses.id"),
            column("joined_on", "date"),
        ),
        table(
            "campus", "student_notes", key(), fk("student_id", "campus.students.id"), column("note", "text")
        ),
        table("campus", "students", key(), column("name", "text")),
        table("training", "course_feedback", key(), column("remarks", "text")),
        *[t for t in catalogue() if t.schema != "school"],
    ]

    linked = schema_link(
        tables, "Which students take the Databases course?", token_budget=TIGHT, max_tables=4
    )

    # Ahead of course_feedback and the other weaker matches of "students" and "course".
    assert names(linked) == ["campus.courses", "campus.roster", "campus.student_notes", "campus.students"]


def test_a_foreign_key_neighbour_of_a_strong_match_outranks_an_unrelated_table():
    index = SchemaIndex.from_tables(catalogue())
    scores = dict(zip(names(index.tables), index.scores("How many orders last week?"), strict=True))

    assert scores["sales.orders"] > scores["sales.customers"] > scores["web.sessions"] == 0


def test_synonyms_reach_a_fact_table_and_its_dimension():
    linked = schema_link(catalogue(), "Revenue per client segment", token_budget=TIGHT, max_tables=3)

    assert {"sales.customers", "sales.orders"} <= set(names(linked))


def test_ordering_words_do_not_pull_in_the_orders_table():
    linked = schema_link(
        catalogue(), "List the products ordered by list price", token_budget=TIGHT, max_tables=3
    )

    assert "catalog.products" in names(linked)
    assert "sales.orders" not in names(linked)


def test_the_history_carries_a_follow_up_that_names_no_table():
    history = [
        Turn(
            question="What is the total salary per department?",
            sql="SELECT d.name, sum(s.salary) FROM hr.staff AS s "
            "JOIN hr.departments AS d ON d.id = s.department_id GROUP BY d.name",
            columns=["name", "sum"],
            row_count=4,
        )
    ]
    follow_up = "And for last year only?"

    alone = schema_link(catalogue(), follow_up, token_budget=TIGHT, max_tables=2)
    with_history = schema_link(catalogue(), follow_up, history, token_budget=TIGHT, max_tables=2)

    assert names(with_history) == ["hr.departments", "hr.staff"]
    assert names(alone) != names(with_history)


def test_earlier_questions_as_plain_text_count_too():
    linked = schema_link(
        catalogue(),
        "and only the open ones?",
        ["How many support tickets are there?"],
        token_budget=TIGHT,
        max_tables=1,
    )

    assert names(linked) == ["support.tickets"]


def test_a_question_that_matches_nothing_gets_the_most_referenced_tables():
    linked = schema_link(catalogue(), "hello there", token_budget=TIGHT, max_tables=1)

    assert names(linked) == ["sales.customers"]


def test_the_choice_stays_within_max_tables_and_the_budget():
    linked = schema_link(
        catalogue(), "orders, customers, products, staff and tickets", token_budget=TIGHT, max_tables=3
    )

    assert len(linked) <= 3
    assert estimate_tokens(schema_render(linked, "postgres")) <= TIGHT


def test_a_wide_table_keeps_its_keys_and_the_columns_the_question_names():
    wide = table(
        "dw",
        "facts",
        key(),
        fk("customer_id", "dw.customers.id"),
        *[column(f"metric_{n:03d}", "numeric") for n in range(300)],
        column("churn_score", "numeric"),
    )
    tables = [table("dw", "customers", key(), column("name", "text")), wide]

    linked = schema_link(tables, "average churn score of facts", token_budget=400, max_tables=5)

    facts = next(t for t in linked if t.name == "facts")
    kept = [c.name for c in facts.columns]
    assert {"id", "customer_id", "churn_score"} <= set(kept)
    assert len(kept) < 303
    assert kept == [c.name for c in sorted(facts.columns, key=lambda c: c.position)]
    assert facts.comment == f"{len(kept)} of 303 columns shown"
    assert estimate_tokens(schema_render(linked, "postgres")) <= 400


def test_identifiers_split_on_case_underscores_and_compounds():
    tables = [
        table("world", "countrylanguage", column("CountryCode", "text"), column("IsOfficial", "text")),
        table("world", "city", key(), column("Name", "text"), column("HomeTown", "text")),
        *[table("other", f"t{n}", key(), column("code", "text")) for n in range(30)],
    ]
    index = SchemaIndex.from_tables(tables)

    best = index.link("Which language is official?", token_budget=50, max_tables=1)
    town = index.link("people by home town", token_budget=50, max_tables=1)

    assert names(best) == ["world.countrylanguage"]
    assert names(town) == ["world.city"]


def test_without_expansion_a_synonym_finds_nothing():
    index = SchemaIndex.from_tables(catalogue(), synonyms=[])

    plain = index.link("How many personnel?", token_budget=TIGHT, max_tables=1, expand=False)
    expanded = SchemaIndex.from_tables(catalogue()).link(
        "How many personnel?", token_budget=TIGHT, max_tables=1
    )

    assert names(plain) != ["hr.staff"]
    assert names(expanded) == ["hr.staff"]


def test_the_index_is_built_once_per_cache_key():
    tables = catalogue()

    first = schema_index(tables, key=("connection", 1, "v1"))
    again = schema_index(tables, key=("connection", 1, "v1"))
    newer = schema_index(tables, key=("connection", 1, "v2"))

    assert first is again
    assert newer is not first


def test_the_cache_forgets_the_least_recently_used_index():
    tables = catalogue()
    first = schema_index(tables, key=("lru", 0))
    for n in range(1, ctx._INDEX_CACHE_SIZE + 1):
        schema_index(tables, key=("lru", n))

    assert schema_index(tables, key=("lru", 0)) is not first


# The DDL ----------------------------------------------------------------------------------------------

ORDERS = TableInfo(
    schema="sales",
    name="orders",
    comment="One row per order,\nplaced online",
    row_estimate=123_456,
    columns=[
        ColumnInfo("id", 1, "bigint", nullable=False, is_primary_key=True),
        ColumnInfo(
            "customer_id", 2, "bigint", nullable=False, references="sales.customers.id", comment="Buyer"
        ),
        ColumnInfo("Region", 3, "text", samples=["Europe", "Asia Pacific", "O'Hare", "never shown"]),
        ColumnInfo("order", 4, "integer", samples=["1", "2"]),
    ],
)


def test_a_table_renders_with_keys_comments_and_samples():
    assert schema_render([ORDERS], "postgres") == (
        "-- One row per order, placed online (about 120,000 rows)\n"
        "CREATE TABLE sales.orders (\n"
        "  id BIGINT NOT NULL,\n"
        "  customer_id BIGINT NOT NULL, -- Buyer\n"
        "  \"Region\" TEXT, -- e.g. 'Europe', 'Asia Pacific', 'O''Hare'\n"
        '  "order" INTEGER, -- e.g. 1, 2\n'
        "  PRIMARY KEY (id),\n"
        "  FOREIGN KEY (customer_id) REFERENCES sales.customers (id)\n"
        ");"
    )


def test_mysql_quotes_with_backticks_and_keeps_mixed_case_bare():
    rendered = schema_render([ORDERS], "mysql")

    assert "  Region TEXT, -- e.g. 'Europe', 'Asia Pacific', 'O''Hare'\n" in rendered
    assert "  `order` INTEGER, -- e.g. 1, 2\n" in rendered


def test_a_table_without_schema_keys_or_comments_renders_plainly():
    plain = TableInfo(schema="", name="Track Names", is_view=True, columns=[ColumnInfo("name", 1, "")])

    assert schema_render([plain], "sqlite") == '-- view\nCREATE TABLE "Track Names" (\n  name\n);'


def test_sqlite_references_without_a_schema_or_column_render():
    track = TableInfo(
        "",
        "track",
        columns=[
            ColumnInfo("album_id", 1, "INTEGER", references="album"),
            ColumnInfo("genre_id", 2, "INTEGER", references="genre.id"),
        ],
    )

    rendered = schema_render([track], "sqlite")

    assert "FOREIGN KEY (album_id) REFERENCES album,\n" in rendered
    assert "FOREIGN KEY (genre_id) REFERENCES genre (id)\n" in rendered


def test_rendering_is_deterministic_and_separates_tables_with_a_blank_line():
    tables = catalogue()

    first = schema_render(tables, "duckdb")

    assert first == schema_render(tables, "duckdb")
    assert first.count("\n\nCREATE TABLE") + first.count("\n\n--") == len(tables) - 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_rendered_schema_parses_as_create_table_statements(dialect):
    tables = [ORDERS, *catalogue()]

    statements = sqlglot.parse(schema_render(tables, dialect), read=dialect)

    assert [s.find(exp.Table).name for s in statements] == [t.name for t in tables]
    assert all(isinstance(s, exp.Create) and s.kind == "TABLE" for s in statements)
    orders = statements[0]
    assert [c.name for c in orders.find_all(exp.ColumnDef)] == ["id", "customer_id", "Region", "order"]
    assert orders.find(exp.ForeignKey) is not None


def test_long_samples_are_cut_and_numbers_stay_unquoted_only_in_numeric_columns():
    wide = TableInfo(
        "",
        "t",
        columns=[
            ColumnInfo("note", 1, "text", samples=["x" * 80, "42"]),
            ColumnInfo("amount", 2, "numeric(10,2)", samples=["42.50"]),
        ],
    )

    rendered = schema_render([wide], "postgres")

    assert f"-- e.g. '{'x' * 39}…', '42'" in rendered
    assert "amount NUMERIC(10,2) -- e.g. 42.50" in rendered


def test_tokens_are_estimated_from_characters():
    assert estimate_tokens("") == 0
    assert estimate_tokens("x" * 35) == 10


# The prompts ------------------------------------------------------------------------------------------


def sql_context(**kwargs) -> QuestionContext:
    return QuestionContext(
        question=kwargs.pop("question", "Revenue by region last month?"),
        dialect=kwargs.pop("dialect", "postgres"),
        tables=kwargs.pop("tables", [ORDERS]),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("dialect", "label", "rule"),
    [
        ("postgres", "PostgreSQL", "date_trunc('month', col)"),
        ("postgresql", "PostgreSQL", "interval '30 days'"),
        ("mysql", "MySQL", "DATE_FORMAT(col, '%Y-%m')"),
        ("sqlite", "SQLite", "strftime('%Y-%m', col)"),
        ("duckdb", "DuckDB", "QUALIFY"),
    ],
)
def test_the_sql_prompt_states_the_dialect_and_its_rules(dialect, label, rule):
    prompt = prompt_for_sql(sql_context(dialect=dialect))

    assert f"for a {label} database" in prompt.system
    assert rule in prompt.system
    assert "LIMIT n" in prompt.system


def test_the_sql_prompt_holds_the_rules_and_the_schema():
    context = sql_context()

    prompt = prompt_for_sql(context)

    assert prompt.task == "sql"
    assert prompt.context is context
    assert "Read-only: write exactly one SELECT statement" in prompt.system
    assert "```sql fenced block" in prompt.system
    assert "one-sentence explanation" in prompt.system
    assert "cannot be answered from these tables, say so and why" in prompt.system
    assert "write no SQL" in prompt.system
    assert schema_render([ORDERS], "postgres") in prompt.system
    assert prompt.messages == [{"role": "user", "content": "Revenue by region last month?"}]


def test_the_sql_prompt_replays_the_conversation_so_a_follow_up_reads_naturally():
    history = [
        Turn(
            "How many orders?",
            sql="SELECT count(*) AS orders FROM sales.orders",
            columns=["orders"],
            row_count=1,
        ),
        Turn("Why is that?", analysis="I cannot tell why from these tables."),
    ]

    prompt = prompt_for_sql(sql_context(question="And by region?", history=history))

    assert [m["role"] for m in prompt.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert prompt.messages[0]["content"] == "How many orders?"
    assert prompt.messages[1]["content"] == (
        "```sql\nSELECT count(*) AS orders FROM sales.orders\n```\nIt returned 1 row with columns: orders."
    )
    assert prompt.messages[3]["content"] == "I cannot tell why from these tables."
    assert prompt.messages[-1] == {"role": "user", "content": "And by region?"}


def test_a_repair_prompt_shows_each_failed_attempt_and_its_error():
    attempts = [
        {"sql": "SELECT regoin FROM sales.orders", "error": 'column "regoin" does not exist'},
        {"sql": "SELECT Region FROM sales.orders", "error": 'column "region" does not exist'},
    ]

    prompt = prompt_for_sql(sql_context(attempts=attempts))

    roles = [m["role"] for m in prompt.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert prompt.messages[1]["content"] == "```sql\nSELECT regoin FROM sales.orders\n```"
    assert 'column "regoin" does not exist' in prompt.messages[2]["content"]
    assert 'column "region" does not exist' in prompt.messages[4]["content"]
    assert "Fix the query" in prompt.messages[-1]["content"]


def test_a_prompt_without_tables_says_so():
    prompt = prompt_for_sql(sql_context(tables=[]))

    assert "(no tables available)" in prompt.system


def test_the_analysis_prompt_shows_the_question_sql_and_a_capped_preview():
    rows = [[f"region {n}", n * 1.5, None] for n in range(50)]
    context = sql_context(
        sql="SELECT region, sum(total_amount) AS revenue, NULL AS note FROM sales.orders GROUP BY region",
        columns=[
            {"name": "region", "type": "text"},
            {"name": "revenue", "type": "numeric"},
            {"name": "note", "type": ""},
        ],
        rows=rows,
        row_count=1234,
    )

    prompt = prompt_for_analysis(context)

    content = prompt.messages[0]["content"]
    assert prompt.task == "analysis"
    assert "Question: Revenue by region last month?" in content
    assert "```sql\nSELECT region, sum(total_amount)" in content
    assert (
        "Result: 1,234 rows (the first 20 shown); columns region (text), revenue (numeric), note (?):"
        in content
    )
    assert "region | revenue | note\nregion 0 | 0 | NULL\nregion 1 | 1.5 | NULL\n" in content
    assert "region 19 | 28.5 | NULL" in content
    assert "region 20" not in content
    assert "2 to 4 plain sentences" in prompt.system
    assert "Vega-Lite v5" in prompt.system
    assert 'no "data"' in prompt.system


def test_the_analysis_preview_is_capped_in_characters():
    rows = [["y" * 200, "z" * 200] for _ in range(20)]

    preview = ctx.result_preview([{"name": "a", "type": "text"}, {"name": "b", "type": "text"}], rows, 20)

    assert len(preview) < ctx.PREVIEW_CHARS + 200
    assert "y" * (ctx.PREVIEW_CELL_CHARS - 1) + "…" in preview
    assert "y" * ctx.PREVIEW_CELL_CHARS not in preview


# Reading the reply -----------------------------------------------------------------------------------


def test_the_sql_of_a_fenced_block_is_extracted_without_its_semicolon():
    reply = (
        "This counts orders per region.\n```sql\nSELECT region, count(*) FROM orders GROUP BY region;\n```"
    )

    assert sql_extract(reply) == "SELECT region, count(*) FROM orders GROUP BY region"


def test_prose_after_the_block_is_ignored():
    reply = "Here it is:\n```SQL\nSELECT 1 AS one;;\n```\nThis returns one row. Let me know if you need more."

    assert sql_extract(reply) == "SELECT 1 AS one"


def test_the_last_complete_block_wins():
    reply = (
        "A first try:\n```sql\nSELECT * FROM orders\n```\nBetter:\n```sql\nSELECT id FROM orders\n```\n"
        "and you could add:\n```sql\nWHERE id > 10\n```"
    )

    assert sql_extract(reply) == "SELECT id FROM orders"


def test_sql_tags_are_read_when_there_is_no_fenced_block():
    assert sql_extract("Counting:\n<sql>\nSELECT count(*) FROM t;\n</sql>") == "SELECT count(*) FROM t"


def test_a_bare_block_counts_only_when_it_parses_as_a_query():
    assert sql_extract("```\nWITH x AS (SELECT 1 AS a) SELECT a FROM x\n```") == (
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x"
    )
    assert sql_extract("```\nregion | total\nEurope | 12\n```") is None
    assert sql_extract("```\nselect the rows you need\n```") is None


def test_a_tagged_block_beats_a_bare_one():
    reply = "```\nSELECT 1\n```\n```sql\nSELECT 2\n```"

    assert sql_extract(reply) == "SELECT 2"


def test_a_reply_without_sql_gives_none():
    assert sql_extract("These tables hold no revenue figures, so I cannot answer that.") is None
    assert sql_extract("") is None


def test_a_reply_cut_off_inside_its_block_still_gives_the_query():
    assert sql_extract("Counting:\n```sql\nSELECT count(*) FROM orders") == "SELECT count(*) FROM orders"


def test_a_tagged_block_that_does_not_parse_is_still_returned_for_the_database_to_judge():
    assert sql_extract("```sql\nSELECT FROM WHERE\n```") == "SELECT FROM WHERE"


def test_the_dialect_helps_parse_dialect_specific_sql():
    reply = "```\nSELECT `order date` FROM `orders`\n```"

    assert sql_extract(reply, dialect="mysql") == "SELECT `order date` FROM `orders`"


def test_the_chart_spec_is_the_json_block_without_data():
    spec = {"mark": "bar", "encoding": {"x": {"field": "region", "type": "nominal"}}, "data": {"values": [1]}}
    reply = f"Europe leads with 12.\n```json\n{json.dumps(spec)}\n```"

    assert chart_spec_extract(reply) == {
        "mark": "bar",
        "encoding": {"x": {"field": "region", "type": "nominal"}},
    }


def test_no_chart_without_a_valid_spec():
    assert chart_spec_extract("Just text.") is None
    assert chart_spec_extract("```json\n{not json}\n```") is None
    assert chart_spec_extract('```json\n{"title": "no mark"}\n```') is None
    assert chart_spec_extract('```json\n["a list"]\n```') is None
