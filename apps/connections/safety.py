"""The first lock on user SQL: prove a statement is a single read-only query before it runs.

The check parses the statement with sqlglot in the connection's dialect and walks the tree once,
accepting it only when every node is something we know to be a read. It is an *allowlist*:
node classes, function classes and function names have to be listed here to pass. A denylist
cannot keep up with four SQL dialects, their extensions and sqlglot's own growth; with an
allowlist a construct nobody thought about is refused instead of run. The few denylists that
remain (dangerous function names, server-wide tables) are a regression net and give refusals a
precise reason; they never let anything through.

It fails closed: text sqlglot cannot parse, or only parses as an opaque `Command`, is refused, and
so is anything the walk does not recognise. The SQL handed back is rendered from the very tree
that was checked (without comments), so text the database reads differently from sqlglot, such
as a MySQL executable comment, never reaches it; when the tree holds text whose quoting a
renderer could get wrong, the rendered SQL is parsed and checked again.

The second lock, the database's own read-only mode, lives in the executor: either lock alone
must stop a write.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from datamind.lib.exceptions import DataMindError

__all__ = ["MAX_SQL_BYTES", "SUPPORTED_DIALECTS", "UnsafeSQLError", "validate_readonly"]

MAX_SQL_BYTES = 100 * 1024
SUPPORTED_DIALECTS = ("postgres", "mysql", "sqlite", "duckdb")

_DIALECT_ALIASES = {"postgresql": "postgres"}
_DIALECT_LABELS = {"postgres": "PostgreSQL", "mysql": "MySQL", "sqlite": "SQLite", "duckdb": "DuckDB"}
_WRAPPER_ALIAS = "_q"


class UnsafeSQLError(DataMindError):
    """This SQL cannot run: only a single read-only query is allowed."""

    code = "unsafe_sql"
    status = 400

    def __init__(self, detail: str, *, rule: str) -> None:
        super().__init__(detail)
        self.rule = rule


def validate_readonly(sql: str | bytes, dialect: str, *, row_cap: int | None = None) -> str:
    """Return the SQL to run for `sql` if it is one read-only query, else raise `UnsafeSQLError`.

    With `row_cap`, the query is wrapped as `SELECT * FROM (<query>) AS _q LIMIT <row_cap + 1>`,
    so a caller that receives more than `row_cap` rows knows the result was truncated.
    """
    if row_cap is not None and row_cap < 0:
        raise ValueError("row_cap must be zero or more.")
    if isinstance(sql, str) and len(sql) <= _MEMO_MAX_CHARS:
        return _validate_memo(sql, dialect, row_cap)
    return _validate(sql, dialect, row_cap)


# The verdict depends only on the text, the dialect and the cap (the policies are constants), so a
# statement checked once need not be parsed again: a dashboard's widgets send the same few
# statements on every view, and the parse is most of a warm widget's CPU. Refusals raise, and
# lru_cache keeps no exception, so they are checked (and audited by the caller) every time. Only
# short texts are kept, which bounds the memory to a few megabytes.
_MEMO_MAX_CHARS = 8 * 1024


@functools.lru_cache(maxsize=512)
def _validate_memo(sql: str, dialect: str, row_cap: int | None) -> str:
    return _validate(sql, dialect, row_cap)


def _validate(sql: str | bytes, dialect: str, row_cap: int | None) -> str:
    policy = _policy_for(dialect)
    text = _checked_text(sql)
    query = _parse_single(text, policy)
    needs_round_trip = _inspect(query, policy)
    if row_cap is not None:
        query = _wrap_with_limit(query, row_cap + 1)
    return _render(query, policy, verify=needs_round_trip)


# Raw text -------------------------------------------------------------------------------------

# MySQL and MariaDB execute the body of `/*! ... */` and `/*M! ... */`; sqlglot, like every other
# engine, skips it as a comment. A '/*!' has no place in a read-only question, so it is refused in
# every dialect rather than only where it would run.
_EXECUTABLE_COMMENT = re.compile(r"/\*[mM]?!")


def _checked_text(sql: str | bytes) -> str:
    if isinstance(sql, bytes):
        if len(sql) > MAX_SQL_BYTES:
            raise _too_large()
        try:
            text = sql.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeSQLError("This SQL is not valid UTF-8 text.", rule="raw_text")
    else:
        text = sql
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise UnsafeSQLError("This SQL is not valid UTF-8 text.", rule="raw_text")
        if size > MAX_SQL_BYTES:
            raise _too_large()
    if "\x00" in text:
        raise UnsafeSQLError("This SQL contains a NUL character.", rule="raw_text")
    if _EXECUTABLE_COMMENT.search(text):
        raise UnsafeSQLError("MySQL executable comments (/*! ... */) are not allowed.", rule="raw_text")
    return text


def _too_large() -> UnsafeSQLError:
    return UnsafeSQLError(f"This SQL is longer than {MAX_SQL_BYTES // 1024} KB.", rule="raw_text")


# Parsing --------------------------------------------------------------------------------------

_QUERY_ROOTS = frozenset({exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values, exp.Subquery})
_CLASS_REPR = re.compile(r"<class '(?:\w+\.)*(\w+)'>")


def _parse_single(text: str, policy: _Policy) -> exp.Expr:
    try:
        statements = policy.dialect.parse(text)
    # sqlglot reports bad input with several exception types (and deep nesting with
    # RecursionError); whatever it raises, the statement was not understood, so it is refused.
    except Exception as error:
        raise UnsafeSQLError(
            f"Could not parse this SQL as {policy.label}: {_short_parser_message(error)}", rule="parse_error"
        )
    # Empty statements (`;;`, or a comment after the last semicolon) come back as None or as
    # exp.Semicolon holding the comment; they run nothing.
    real = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not real:
        raise UnsafeSQLError("There is no SQL statement to run.", rule="empty")
    if len(real) > 1:
        raise UnsafeSQLError("Only one statement can run at a time.", rule="multiple_statements")
    return real[0]


def _short_parser_message(error: Exception) -> str:
    details = getattr(error, "errors", None)
    if details:
        first = details[0]
        description = _CLASS_REPR.sub(r"\1", str(first.get("description", "invalid syntax")))
        message = f"{description} (line {first.get('line')}, column {first.get('col')})."
    elif type(error).__name__ == "TokenError":
        message = "an unterminated string, identifier or comment."
    elif isinstance(error, RecursionError):
        message = "the statement is nested too deeply."
    else:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return message if len(message) <= 160 else message[:157] + "..."


# The walk -------------------------------------------------------------------------------------

_PLAIN_NODES: frozenset[type[exp.Expr]] = frozenset(
    {
        # query structure
        exp.Union, exp.Intersect, exp.Except, exp.Values, exp.Subquery, exp.With,
        exp.CTE, exp.From, exp.Join, exp.Lateral, exp.Where, exp.Group, exp.Having, exp.Qualify,
        exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Fetch, exp.LimitOptions, exp.Distinct,
        exp.Window, exp.WindowSpec, exp.TableAlias, exp.Tuple, exp.Cube, exp.Rollup,
        exp.GroupingSets, exp.TableSample, exp.Pivot, exp.PivotAlias, exp.UnpivotColumns,
        exp.IndexTableHint, exp.Lambda, exp.ColumnDef, exp.Star, exp.Alias, exp.Aliases, exp.Var,
        exp.Bracket, exp.Slice, exp.Paren, exp.Null, exp.Boolean, exp.PositionalColumn,
        exp.Introducer,
        # types
        exp.DataType, exp.DataTypeParam, exp.Interval, exp.IntervalSpan, exp.PseudoType,
        exp.ObjectIdentifier,
        # operators and predicates
        exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe, exp.Neg, exp.Not,
        exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift,
        exp.BitwiseRightShift, exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.GT, exp.GTE,
        exp.LT, exp.LTE, exp.Is, exp.Like, exp.ILike, exp.Glob, exp.SimilarTo, exp.Escape,
        exp.Between, exp.In, exp.Any, exp.All, exp.Overlaps, exp.AtTimeZone, exp.Filter,
        exp.WithinGroup, exp.IgnoreNulls, exp.RespectNulls, exp.Kwarg, exp.PropertyEQ,
        # JSON paths
        exp.JSONPath, exp.JSONPathKey, exp.JSONPathRoot, exp.JSONPathSubscript,
        exp.JSONPathWildcard, exp.JSONPathSlice, exp.JSONPathUnion, exp.JSONPathRecursive,
        exp.JSONPathSelector, exp.JSONKeyValue, exp.FormatJson,
    }
)  # fmt: skip

# Nodes whose text is rendered back into SQL: a quote, backslash or dollar inside them is where a
# renderer's escaping could go wrong, so such trees are parsed and checked again after rendering.
_TEXT_NODES: frozenset[type[exp.Expr]] = frozenset(
    {exp.Identifier, exp.Literal, exp.RawString, exp.ByteString, exp.National, exp.HexString,
     exp.BitString, exp.UnicodeString}
)  # fmt: skip
_ESCAPE_SENSITIVE = frozenset("'\"`\\$")


def _inspect(tree: exp.Expr, policy: _Policy) -> bool:
    """Refuse `tree` unless every node is allowed; return whether its text needs a round trip."""
    if type(tree) not in _QUERY_ROOTS:
        raise _refusal(tree, policy, at_root=True)
    needs_round_trip = False
    for node in tree.walk():
        cls = type(node)
        if cls in _TEXT_NODES:
            if not needs_round_trip:
                needs_round_trip = not _ESCAPE_SENSITIVE.isdisjoint(node.name)
        elif cls in _PLAIN_NODES or cls in policy.function_classes:
            continue
        elif (check := _NODE_CHECKS.get(cls)) is not None:
            check(node, policy)
        else:
            raise _refusal(node, policy, at_root=False)
    return needs_round_trip


def _check_select(node: exp.Expr, policy: _Policy) -> None:
    # sqlglot accepts a bare `SELECT`; nobody means to run a query without columns.
    if not node.expressions:
        raise UnsafeSQLError(
            f"Could not parse this SQL as {policy.label}: the SELECT has no columns.", rule="parse_error"
        )


def _check_anonymous(node: exp.Expr, policy: _Policy) -> None:
    # sqlglot parses functions it does not know as exp.Anonymous; only their name says what runs.
    name = node.name.lower()
    if name not in policy.functions:
        raise _function_refusal(name, policy)


def _check_column(node: exp.Expr, policy: _Policy) -> None:
    # PostgreSQL reads a bare `user` or `current_role` as a call to the identity function, not as
    # a column; quoting or qualifying the name makes it a column again.
    if not policy.keyword_columns or node.args.get("table") is not None:
        return
    identifier = node.this
    if isinstance(identifier, exp.Identifier) and not identifier.quoted:
        name = identifier.name.lower()
        if name in policy.keyword_columns:
            raise _server_refusal(name)


def _check_dot(node: exp.Expr, policy: _Policy) -> None:
    # `some_schema.lower(x)` calls whatever that schema defines under an allowed name.
    if isinstance(node.expression, exp.Func):
        raise UnsafeSQLError(
            f"Function {node.sql(dialect=policy.dialect).split('(')[0]} is not allowed: "
            "functions cannot be qualified with a schema.",
            rule="function",
        )


def _check_table(node: exp.Expr, policy: _Policy) -> None:
    source = node.this
    if isinstance(source, exp.Func):
        if node.args.get("db") is not None or node.args.get("catalog") is not None:
            raise UnsafeSQLError("Table functions cannot be qualified with a schema.", rule="function")
        return
    if not isinstance(source, exp.Identifier):
        raise _refusal(node, policy, at_root=False)
    name = source.name.lower()
    schema = node.db.lower()
    if (
        schema in policy.server_schemas
        or name in policy.server_tables
        or name.startswith(policy.server_table_prefixes)
        or (schema, name) in policy.server_qualified_tables
    ):
        shown = f"{schema}.{name}" if schema else name
        raise UnsafeSQLError(
            f"Table {shown} describes the database server, not your data, and cannot be read.",
            rule="server_object",
        )
    if policy.reads_files_by_name and not _FILE_NAME_CHARS.isdisjoint(name):
        raise UnsafeSQLError(
            f"'{source.name}' looks like a file or URL; only tables of this database can be read.",
            rule="file_access",
        )


# DuckDB treats an unknown table name such as 'orders.csv' or 's3://bucket/x.parquet' as a file
# to scan; a dot or path separator inside a single name part is how such names look.
_FILE_NAME_CHARS = frozenset("./\\:*?")

_NODE_CHECKS: Mapping[type[exp.Expr], Callable[[exp.Expr, _Policy], None]] = {
    exp.Select: _check_select,
    exp.Anonymous: _check_anonymous,
    exp.Column: _check_column,
    exp.Dot: _check_dot,
    exp.Table: _check_table,
}


# Refusals -------------------------------------------------------------------------------------

_WRITE_LABELS: Mapping[type[exp.Expr], str] = {
    exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE", exp.Merge: "MERGE",
    exp.Create: "CREATE", exp.Drop: "DROP", exp.Alter: "ALTER", exp.TruncateTable: "TRUNCATE",
    exp.Copy: "COPY", exp.Into: "SELECT ... INTO", exp.Lock: "a row lock (FOR UPDATE / FOR SHARE)",
    exp.Returning: "RETURNING", exp.Set: "SET", exp.SetItem: "SET", exp.Pragma: "PRAGMA",
    exp.Attach: "ATTACH", exp.Detach: "DETACH", exp.Transaction: "BEGIN", exp.Commit: "COMMIT",
    exp.Rollback: "ROLLBACK", exp.Grant: "GRANT", exp.Revoke: "REVOKE", exp.Comment: "COMMENT",
    exp.Analyze: "ANALYZE", exp.Use: "USE", exp.Kill: "KILL", exp.Install: "INSTALL",
    exp.LoadData: "LOAD DATA", exp.Export: "EXPORT", exp.Refresh: "REFRESH", exp.Cache: "CACHE",
    exp.Uncache: "UNCACHE", exp.Declare: "DECLARE", exp.Execute: "EXECUTE", exp.Put: "PUT",
    exp.Get: "GET", exp.LockingStatement: "LOCKING", exp.StoredProcedure: "a procedure",
    exp.Block: "a procedural block",
}  # fmt: skip

_SPECIAL_REFUSALS: Mapping[type[exp.Expr], tuple[str, str]] = {
    exp.SessionParameter: ("server_object", "Server variables such as @@version are not allowed."),
    exp.Parameter: (
        "syntax",
        "Variables and parameters (@name, $1) are not allowed: write the values into the query.",
    ),
    exp.Placeholder: ("syntax", "Query parameters are not allowed: write the values into the query."),
    exp.Show: ("not_a_query", "Only SELECT queries can run: SHOW is not allowed."),
    # MySQL's EXPLAIN parses as exp.Describe too.
    exp.Describe: ("not_a_query", "Only SELECT queries can run: DESCRIBE and EXPLAIN are not allowed."),
}


def _refusal(node: exp.Expr, policy: _Policy, *, at_root: bool) -> UnsafeSQLError:
    cls = type(node)
    label = _WRITE_LABELS.get(cls)
    if label is not None:
        return UnsafeSQLError(
            f"Only read-only queries can run: this statement contains {label}.", rule="write_node"
        )
    special = _SPECIAL_REFUSALS.get(cls)
    if special is not None:
        return UnsafeSQLError(special[1], rule=special[0])
    if isinstance(node, exp.Command):
        keyword = str(node.this).upper()
        return UnsafeSQLError(f"Only SELECT queries can run: {keyword} is not allowed.", rule="not_a_query")
    if isinstance(node, exp.Func):
        name = _display_name(node, policy)
        if cls in _SERVER_FUNCTION_CLASSES:
            return _server_refusal(name)
        return _function_refusal(name, policy)
    if at_root:
        return UnsafeSQLError(
            "Only SELECT queries can run: this statement is not a query.", rule="not_a_query"
        )
    return UnsafeSQLError(
        f"This query uses syntax that is not allowed here ({node.key.upper()}).", rule="syntax"
    )


def _function_refusal(name: str, policy: _Policy) -> UnsafeSQLError:
    if name in policy.server_functions:
        return _server_refusal(name)
    return UnsafeSQLError(f"Function {name} is not allowed.", rule="function")


def _server_refusal(name: str) -> UnsafeSQLError:
    return UnsafeSQLError(
        f"Function {name} is not allowed: it reveals details of the database server.", rule="server_object"
    )


def _display_name(node: exp.Expr, policy: _Policy) -> str:
    # sqlglot's class names are its own (CurrentVersion); the rendered call is what the user wrote.
    try:
        return node.sql(dialect=policy.dialect).split("(")[0].strip().lower() or node.key
    except Exception:
        return node.key


# Rendering ------------------------------------------------------------------------------------


def _wrap_with_limit(query: exp.Expr, limit: int) -> exp.Expr:
    inner = query.unnest() if isinstance(query, exp.Subquery) else query
    wrapped = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(_WRAPPER_ALIAS)))
    # A Literal node, not the int: the builder would parse an int through the tokenizer.
    return exp.select(exp.Star()).from_(wrapped, copy=False).limit(exp.Literal.number(limit), copy=False)


def _render(tree: exp.Expr, policy: _Policy, *, verify: bool) -> str:
    try:
        sql = tree.sql(dialect=policy.dialect, comments=False, copy=False)
    except Exception:
        raise UnsafeSQLError("This query could not be prepared safely for execution.", rule="render")
    if verify:
        try:
            _inspect(_parse_single(sql, policy), policy)
        except UnsafeSQLError:
            raise UnsafeSQLError("This query could not be prepared safely for execution.", rule="render")
    return sql


# Functions ------------------------------------------------------------------------------------
#
# sqlglot turns most functions into their own classes (exp.Sum, exp.TimestampTrunc...). Their
# meaning is fixed by the class, so the decision is per class: the families sqlglot files as
# aggregate, array, JSON, math, string and date/time functions are pure computations on values
# and are allowed, minus the few below; of the general-purpose families only the listed classes
# are. Functions sqlglot does not know (exp.Anonymous) are checked by name against each dialect's
# own list. A name on a dialect's denylist is refused even where a list above would allow it.


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PURE_FUNCTION_FAMILIES = ("aggregate", "array", "json", "math", "string", "temporal")
_IMPURE_IN_PURE_FAMILIES: frozenset[type[exp.Expr]] = frozenset(
    {exp.ToFile, exp.Secret, exp.AIAgg, exp.AISummarizeAgg}
)
_GENERAL_FUNCTION_CLASSES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.And, exp.Or, exp.Xor, exp.Pow, exp.RegexpLike, exp.Typeof, exp.ApproxDistinct,
        exp.Case, exp.If, exp.Cast, exp.TryCast, exp.Coalesce, exp.Collate, exp.Columns,
        exp.Convert, exp.Exists, exp.Greatest, exp.Least, exp.Nullif, exp.Nvl2, exp.EqualNull,
        exp.DecodeCase, exp.Rand, exp.Uuid, exp.WidthBucket, exp.ToBoolean,
    }
)  # fmt: skip
_SERVER_FUNCTION_CLASSES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.CurrentUser, exp.SessionUser, exp.CurrentRole, exp.CurrentUserId, exp.CurrentVersion,
        exp.CurrentDatabase, exp.CurrentSchema, exp.CurrentSchemas, exp.CurrentCatalog,
        exp.CurrentAccount, exp.CurrentAccountName, exp.CurrentIpAddress, exp.CurrentSession,
        exp.CurrentClient, exp.CurrentRegion, exp.CurrentWarehouse, exp.CurrentStatement,
        exp.CurrentTransaction, exp.CurrentAvailableRoles, exp.CurrentSecondaryRoles,
        exp.CurrentRoleType, exp.CurrentOrganizationName, exp.CurrentOrganizationUser,
    }
)  # fmt: skip


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _subclasses(sub)
    return found


def _pure_function_classes() -> frozenset[type[exp.Expr]]:
    families = {f"sqlglot.expressions.{family}" for family in _PURE_FUNCTION_FAMILIES}
    pure = {cls for cls in _subclasses(exp.Func) if cls.__module__ in families}
    return frozenset(pure - _IMPURE_IN_PURE_FAMILIES - _SERVER_FUNCTION_CLASSES) | _GENERAL_FUNCTION_CLASSES


_PURE_FUNCTION_CLASSES = _pure_function_classes()


_COMMON_FUNCTIONS = _names(
    """
    abs acos asin atan atan2 avg ceil ceiling coalesce concat concat_ws cos cot count cume_dist
    degrees dense_rank exp first_value floor greatest lag last_value lead least left length ln
    log log10 lower ltrim max min mod nth_value ntile nullif percent_rank pi power radians rank
    replace reverse right round row_number rtrim sign sin sqrt substr substring sum tan trim upper
    """
)

_POSTGRES_FUNCTIONS = _names(
    """
    acosd acosh asind asinh atand atan2d atanh cbrt cosd cosh cotd div factorial gcd lcm
    min_scale random scale sind sinh tand tanh trim_scale trunc width_bucket
    ascii bit_length btrim char_length character_length chr convert_from convert_to decode encode
    format initcap lpad md5 normalize octet_length overlay position quote_ident quote_literal
    quote_nullable regexp_count regexp_instr regexp_like regexp_match regexp_matches
    regexp_replace regexp_split_to_array regexp_split_to_table regexp_substr repeat rpad sha224
    sha256 sha384 sha512 split_part starts_with string_to_array string_to_table strpos to_ascii
    to_hex translate unistr
    age clock_timestamp date_bin date_part date_trunc extract isfinite justify_days
    justify_hours justify_interval make_date make_interval make_time make_timestamp
    make_timestamptz now statement_timestamp timeofday to_char to_date to_number to_timestamp
    transaction_timestamp
    array_agg bit_and bit_or bit_xor bool_and bool_or corr covar_pop covar_samp every json_agg
    jsonb_agg json_object_agg jsonb_object_agg mode percentile_cont percentile_disc regr_avgx
    regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy stddev
    stddev_pop stddev_samp string_agg var_pop var_samp variance grouping
    array_append array_cat array_dims array_fill array_length array_lower array_ndims
    array_position array_positions array_prepend array_remove array_replace array_to_string
    array_upper cardinality generate_series generate_subscripts trim_array unnest
    array_to_json json_array_elements json_array_elements_text json_array_length
    json_build_array json_build_object json_each json_each_text json_extract_path
    json_extract_path_text json_object json_object_keys json_strip_nulls json_typeof
    jsonb_array_elements jsonb_array_elements_text jsonb_array_length jsonb_build_array
    jsonb_build_object jsonb_each jsonb_each_text jsonb_extract_path jsonb_extract_path_text
    jsonb_insert jsonb_object_keys jsonb_path_exists jsonb_path_match jsonb_path_query
    jsonb_path_query_array jsonb_path_query_first jsonb_pretty jsonb_set jsonb_strip_nulls
    jsonb_typeof row_to_json to_json to_jsonb
    currval gen_random_uuid isempty lower_inc lower_inf num_nonnulls num_nulls range_merge row
    upper_inc upper_inf
    """
)

_MYSQL_FUNCTIONS = _names(
    """
    bin bit_count conv crc32 div format hex log2 oct ord pow rand truncate unhex
    ascii bit_length char char_length character_length elt field find_in_set insert instr lcase
    locate lpad md5 mid position quote regexp_instr regexp_like regexp_replace regexp_substr
    repeat rpad sha sha1 sha2 soundex space strcmp substring_index ucase
    adddate addtime convert_tz curdate current_date current_time current_timestamp curtime date
    date_add date_format date_sub datediff day dayname dayofmonth dayofweek dayofyear extract
    from_days from_unixtime get_format hour last_day localtime localtimestamp makedate maketime
    microsecond minute month monthname now period_add period_diff quarter sec_to_time second
    str_to_date subdate subtime sysdate time time_format time_to_sec timediff timestamp
    timestampadd timestampdiff to_days to_seconds unix_timestamp utc_date utc_time utc_timestamp
    week weekday weekofyear year yearweek
    any_value bit_and bit_or bit_xor group_concat std stddev stddev_pop stddev_samp var_pop
    var_samp variance
    if ifnull isnull uuid
    json_array json_array_append json_array_insert json_arrayagg json_contains
    json_contains_path json_depth json_extract json_insert json_keys json_length
    json_merge_patch json_merge_preserve json_object json_objectagg json_overlaps json_pretty
    json_quote json_remove json_replace json_search json_set json_table json_type json_unquote
    json_valid json_value
    """
)

_SQLITE_FUNCTIONS = _names(
    """
    acosh asinh atanh ceil cosh log2 random sinh tanh trunc
    char format glob hex ifnull iif instr like likelihood likely octet_length printf quote
    randomblob unhex unicode unlikely zeroblob
    date datetime julianday strftime time timediff unixepoch
    group_concat string_agg total
    json json_array json_array_length json_each json_extract json_group_array json_group_object
    json_insert json_object json_patch json_quote json_remove json_replace json_set json_tree
    json_type json_valid jsonb jsonb_array jsonb_extract jsonb_object
    """
)

_DUCKDB_FUNCTIONS = _names(
    """
    acosh asinh atanh bit_count cbrt even factorial gamma gcd isfinite isinf isnan lcm lgamma
    log2 nextafter random trunc
    ascii bar base64 bin chr contains editdistance ends_with format from_base64 hamming hex
    ilike_escape instr jaccard jaro_similarity jaro_winkler_similarity lcase len
    length_grapheme levenshtein like_escape lpad md5 mismatches nfc_normalize ord position prefix
    printf regexp_escape regexp_extract regexp_extract_all regexp_full_match regexp_matches
    regexp_replace regexp_split_to_array repeat rpad sha1 sha256 split_part starts_with
    str_split str_split_regex string_split string_split_regex string_to_array strip_accents
    strlen strpos suffix to_base64 translate ucase unhex unicode
    age century current_date date_add date_diff date_part date_sub date_trunc datediff datepart
    datesub datetrunc day dayname dayofmonth dayofweek dayofyear decade epoch epoch_ms epoch_ns
    epoch_us era extract hour isodow isoyear julian last_day make_date make_time make_timestamp
    microsecond millennium millisecond minute month monthname now quarter second strftime
    strptime time_bucket timezone to_centuries to_days to_decades to_hours to_microseconds
    to_millennia to_milliseconds to_minutes to_months to_seconds to_timestamp to_weeks to_years
    today try_strptime week weekday weekofyear year yearweek
    any_value approx_count_distinct approx_quantile arbitrary arg_max arg_max_null arg_min
    arg_min_null argmax argmin array_agg avg bit_and bit_or bit_xor bool_and bool_or corr
    count_if count_star covar_pop covar_samp entropy favg first fsum histogram kahan_sum kurtosis
    kurtosis_pop last list mad max_by median min_by mode product quantile quantile_cont
    quantile_disc regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
    regr_sxy regr_syy reservoir_quantile sem skewness stddev stddev_pop stddev_samp string_agg
    sumkahan var_pop var_samp variance weighted_avg
    array_aggregate array_append array_apply array_cat array_concat array_contains
    array_distinct array_extract array_filter array_has array_has_all array_has_any
    array_intersect array_length array_position array_prepend array_reduce array_reverse
    array_reverse_sort array_select array_slice array_sort array_to_string array_transform
    array_unique array_value array_where array_zip cardinality element_at flatten generate_series
    list_aggregate list_any_value list_append list_apply list_avg list_bool_and list_bool_or
    list_cat list_concat list_contains list_count list_distinct list_extract list_filter
    list_first list_has list_has_all list_has_any list_intersect list_last list_max list_median
    list_min list_mode list_position list_prepend list_product list_reduce list_reverse
    list_reverse_sort list_select list_slice list_sort list_string_agg list_sum list_transform
    list_unique list_value list_where list_zip map map_concat map_contains map_entries
    map_extract map_from_entries map_keys map_values range struct_extract struct_insert
    struct_pack unnest
    gen_random_uuid ifnull typeof uuid
    json json_array json_array_length json_contains json_extract json_extract_path
    json_extract_path_text json_extract_string json_group_array json_group_object json_keys
    json_merge_patch json_object json_quote json_structure json_transform json_type json_valid
    json_value to_json
    """
)

# Server fingerprints: identity, version, settings and network details of the server.
_POSTGRES_SERVER_FUNCTIONS = _names(
    """
    version current_user session_user current_role system_user user current_database
    current_schema current_schemas current_catalog current_setting inet_server_addr
    inet_server_port inet_client_addr inet_client_port
    """
)
_MYSQL_SERVER_FUNCTIONS = _names(
    "version user current_user session_user system_user current_role database schema connection_id"
)
_SQLITE_SERVER_FUNCTIONS = _names(
    "sqlite_version sqlite_source_id sqlite_compileoption_get sqlite_compileoption_used"
)
_DUCKDB_SERVER_FUNCTIONS = _names(
    """
    version current_setting current_user session_user current_role user current_database
    current_schema current_schemas current_catalog pragma_version platform
    """
)

# The regression net: calls with side effects (sleep, locks, sequences, large objects, files,
# network, settings) or that run SQL text the parser never saw. Prefixes cover whole families.
_POSTGRES_DENIED = _names(
    """
    set_config nextval setval lastval loread lowrite txid_current query_to_xml query_to_xmlschema
    query_to_xml_and_xmlschema table_to_xml table_to_xmlschema table_to_xml_and_xmlschema
    cursor_to_xml cursor_to_xmlschema schema_to_xml schema_to_xmlschema
    schema_to_xml_and_xmlschema database_to_xml database_to_xmlschema
    database_to_xml_and_xmlschema
    """
)
_POSTGRES_DENIED_PREFIXES = ("pg_", "lo_", "dblink", "txid_")
_MYSQL_DENIED = _names(
    """
    load_file sleep benchmark get_lock release_lock release_all_locks is_free_lock is_used_lock
    master_pos_wait source_pos_wait last_insert_id found_rows row_count sys_exec sys_eval
    """
)
_SQLITE_DENIED = _names(
    "load_extension readfile writefile edit fts3_tokenizer changes total_changes last_insert_rowid"
)
_SQLITE_DENIED_PREFIXES = ("sqlite_", "pragma_")
_DUCKDB_DENIED = _names("glob sniff_csv getenv query query_table")
_DUCKDB_DENIED_PREFIXES = (
    "read_", "parquet_", "duckdb_", "pragma_", "iceberg_", "delta_", "postgres_", "mysql_",
    "sqlite_", "json_execute",
)  # fmt: skip


# Tables ---------------------------------------------------------------------------------------
#
# The database's own catalogue (information_schema, sqlite_master, pg_catalog's per-database
# tables) may be read; views of the whole server (sessions, settings, roles, password hashes) not.

_POSTGRES_SERVER_TABLES = _names(
    """
    pg_authid pg_shadow pg_user pg_roles pg_group pg_auth_members pg_database pg_tablespace
    pg_db_role_setting pg_shdescription pg_shdepend pg_shseclabel pg_settings pg_file_settings
    pg_hba_file_rules pg_ident_file_mappings pg_config pg_user_mapping pg_user_mappings pg_locks
    pg_prepared_xacts pg_prepared_statements pg_cursors pg_replication_slots
    pg_replication_origin pg_subscription pg_largeobject pg_largeobject_metadata
    pg_available_extensions pg_available_extension_versions pg_shmem_allocations
    pg_backend_memory_contexts pg_seclabels
    """
)
_POSTGRES_SERVER_TABLE_PREFIXES = ("pg_stat", "pg_ls_")
_MYSQL_SERVER_SCHEMAS = frozenset({"mysql", "performance_schema", "sys"})
_MYSQL_SERVER_QUALIFIED_TABLES = frozenset(
    ("information_schema", name)
    for name in _names(
        """
        processlist user_privileges schema_privileges table_privileges column_privileges
        global_variables session_variables global_status session_status plugins user_attributes
        innodb_trx innodb_locks innodb_lock_waits
        """
    )
)


# Policies -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Policy:
    """Everything the walk needs to know about one dialect, precomputed as frozensets."""

    dialect: Dialect
    label: str
    functions: frozenset[str]
    function_classes: frozenset[type[exp.Expr]]
    server_functions: frozenset[str]
    keyword_columns: frozenset[str]
    server_tables: frozenset[str]
    server_table_prefixes: tuple[str, ...]
    server_schemas: frozenset[str]
    server_qualified_tables: frozenset[tuple[str, str]]
    reads_files_by_name: bool


def _build_policy(
    name: str,
    *,
    functions: Iterable[str],
    server_functions: frozenset[str],
    denied: frozenset[str],
    denied_prefixes: tuple[str, ...] = (),
    keyword_columns: frozenset[str] = frozenset(),
    server_tables: frozenset[str] = frozenset(),
    server_table_prefixes: tuple[str, ...] = (),
    server_schemas: frozenset[str] = frozenset(),
    server_qualified_tables: frozenset[tuple[str, str]] = frozenset(),
    reads_files_by_name: bool = False,
) -> _Policy:
    refused = denied | server_functions

    def is_refused(function_name: str) -> bool:
        return function_name in refused or function_name.startswith(denied_prefixes)

    # The denylists win over both allowlists, so a name on both is simply refused.
    classes = frozenset(
        cls
        for cls in _PURE_FUNCTION_CLASSES
        if not any(is_refused(sql_name.lower()) for sql_name in cls.sql_names())
    )
    return _Policy(
        dialect=Dialect.get_or_raise(name),
        label=_DIALECT_LABELS[name],
        functions=frozenset(f for f in _COMMON_FUNCTIONS | frozenset(functions) if not is_refused(f)),
        function_classes=classes,
        server_functions=server_functions,
        keyword_columns=keyword_columns,
        server_tables=server_tables,
        server_table_prefixes=server_table_prefixes,
        server_schemas=server_schemas,
        server_qualified_tables=server_qualified_tables,
        reads_files_by_name=reads_files_by_name,
    )


_POLICIES: Mapping[str, _Policy] = {
    "postgres": _build_policy(
        "postgres",
        functions=_POSTGRES_FUNCTIONS,
        server_functions=_POSTGRES_SERVER_FUNCTIONS,
        denied=_POSTGRES_DENIED,
        denied_prefixes=_POSTGRES_DENIED_PREFIXES,
        keyword_columns=_names(
            "user current_user session_user current_role system_user current_catalog current_schema"
        ),
        server_tables=_POSTGRES_SERVER_TABLES,
        server_table_prefixes=_POSTGRES_SERVER_TABLE_PREFIXES,
    ),
    "mysql": _build_policy(
        "mysql",
        functions=_MYSQL_FUNCTIONS,
        server_functions=_MYSQL_SERVER_FUNCTIONS,
        denied=_MYSQL_DENIED,
        server_schemas=_MYSQL_SERVER_SCHEMAS,
        server_qualified_tables=_MYSQL_SERVER_QUALIFIED_TABLES,
    ),
    "sqlite": _build_policy(
        "sqlite",
        functions=_SQLITE_FUNCTIONS,
        server_functions=_SQLITE_SERVER_FUNCTIONS,
        denied=_SQLITE_DENIED,
        denied_prefixes=_SQLITE_DENIED_PREFIXES,
    ),
    "duckdb": _build_policy(
        "duckdb",
        functions=_DUCKDB_FUNCTIONS,
        server_functions=_DUCKDB_SERVER_FUNCTIONS,
        denied=_DUCKDB_DENIED,
        denied_prefixes=_DUCKDB_DENIED_PREFIXES,
        keyword_columns=_names("current_user session_user current_role"),
        server_table_prefixes=("duckdb_",),
        reads_files_by_name=True,
    ),
}


def _policy_for(dialect: str) -> _Policy:
    name = dialect.lower()
    policy = _POLICIES.get(_DIALECT_ALIASES.get(name, name))
    if policy is None:
        raise ValueError(
            f"Unsupported SQL dialect {dialect!r}; expected one of {', '.join(SUPPORTED_DIALECTS)}."
        )
    return policy
