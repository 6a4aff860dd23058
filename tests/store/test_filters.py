import re

import pytest

from ferryml.errors import InvalidArgument
from ferryml.store.filters import (
    And,
    Comparison,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)

EXAMPLE = "Example: metrics.acc > 0.9 and params.model = 'rf'"


def fails(text: str, message: str) -> None:
    """parse_filter(text) raises InvalidArgument whose message contains ``message``."""
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        parse_filter(text)


# --- valid filters ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_filter_parses_to_none(text: str) -> None:
    assert parse_filter(text) is None


def test_metric_comparison_parses_to_a_float_value() -> None:
    assert parse_filter("metrics.acc > 0.9") == Comparison("metric", "acc", ">", 0.9)


def test_param_and_tag_comparisons_parse_to_string_values() -> None:
    assert parse_filter("params.model = 'rf'") == Comparison("param", "model", "=", "rf")
    assert parse_filter('tags.team = "vision"') == Comparison("tag", "team", "=", "vision")


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("metric", "metric"),
        ("param", "param"),
        ("tag", "tag"),
        ("METRICS", "metric"),
    ],
)
def test_singular_and_uppercase_prefixes_are_accepted(prefix: str, kind: str) -> None:
    value = 1.0 if kind == "metric" else "1"
    literal = "1" if kind == "metric" else "'1'"
    assert parse_filter(f"{prefix}.k = {literal}") == Comparison(kind, "k", "=", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["attributes.", "attribute.", "attr.", "run.", ""])
def test_attribute_prefixes_and_bare_attribute_names_are_accepted(prefix: str) -> None:
    assert parse_filter(f"{prefix}run_name = 'a'") == Comparison("attribute", "run_name", "=", "a")


def test_mlflow_user_id_is_an_alias_of_user() -> None:
    assert parse_filter("attributes.user_id = 'bob'") == Comparison("attribute", "user", "=", "bob")
    assert parse_filter("user = 'bob'") == Comparison("attribute", "user", "=", "bob")


@pytest.mark.parametrize(
    ("operator", "normalized"),
    [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="),
     (">", ">"), (">=", ">=")],
)  # fmt: skip
def test_comparison_operators_are_normalized(operator: str, normalized: str) -> None:
    assert parse_filter(f"metrics.a {operator} 1") == Comparison("metric", "a", normalized, 1.0)


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("params.m LIKE 'a%'", "LIKE"),
        ("params.m like 'a%'", "LIKE"),
        ("params.m ILike 'a%'", "ILIKE"),
        ("params.m not  like 'a%'", "NOT LIKE"),
    ],
)
def test_like_operators_are_case_insensitive_keywords(text: str, op: str) -> None:
    assert parse_filter(text) == Comparison("param", "m", op, "a%")


def test_in_and_not_in_parse_to_tuples() -> None:
    assert parse_filter("params.m IN ('a', \"b\")") == Comparison("param", "m", "IN", ("a", "b"))
    assert parse_filter("tags.t not in ('x')") == Comparison("tag", "t", "NOT IN", ("x",))


def test_is_null_and_is_not_null_have_no_value() -> None:
    assert parse_filter("metrics.a IS NULL") == Comparison("metric", "a", "IS NULL", None)
    assert parse_filter("tags.t is not null") == Comparison("tag", "t", "IS NOT NULL", None)


def test_operators_need_no_surrounding_spaces() -> None:
    assert parse_filter("metrics.a>=-1") == Comparison("metric", "a", ">=", -1.0)
    assert parse_filter("params.p<>'x'") == Comparison("param", "p", "!=", "x")


@pytest.mark.parametrize(
    ("literal", "value"),
    [("3", 3.0), ("-2", -2.0), ("+2.5", 2.5), (".5", 0.5), ("1e3", 1000.0), ("2.5E-2", 0.025)],
)
def test_numbers_accept_sign_fraction_and_exponent(literal: str, value: float) -> None:
    assert parse_filter(f"metrics.a = {literal}") == Comparison("metric", "a", "=", value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ("'back\\\\slash'", "back\\slash"),
        ("'50\\%'", "50\\%"),
        ("''", ""),
    ],
)
def test_strings_unescape_doubled_and_backslashed_quotes(literal: str, value: str) -> None:
    assert parse_filter(f"params.p = {literal}") == Comparison("param", "p", "=", value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("metrics.`val loss` < 1", "val loss"),
        ('metrics."val loss" < 1', "val loss"),
        ("metrics.`a``b` < 1", "a`b"),
        ("metrics.val/loss:top-1.x_2 < 1", "val/loss:top-1.x_2"),
    ],
)
def test_keys_may_be_quoted_or_contain_path_characters(text: str, key: str) -> None:
    assert parse_filter(text) == Comparison("metric", key, "<", 1.0)


def test_status_values_are_normalized_to_uppercase() -> None:
    assert parse_filter("status = 'finished'") == Comparison("attribute", "status", "=", "FINISHED")
    assert parse_filter("status IN ('RUNNING', 'killed')") == Comparison(
        "attribute", "status", "IN", ("RUNNING", "KILLED")
    )


def test_experiment_id_accepts_a_string_or_an_integer() -> None:
    expected = Comparison("attribute", "experiment_id", "=", "3")
    assert parse_filter("experiment_id = '3'") == expected
    assert parse_filter("experiment_id = 3") == expected
    assert parse_filter("experiment_id in ('1', 2)") == Comparison(
        "attribute", "experiment_id", "IN", ("1", "2")
    )


def test_times_compare_with_integers() -> None:
    assert parse_filter("start_time >= 1700000000000") == Comparison(
        "attribute", "start_time", ">=", 1700000000000.0
    )
    assert parse_filter("end_time IS NULL") == Comparison("attribute", "end_time", "IS NULL", None)


def test_parent_run_id_may_be_null() -> None:
    assert parse_filter("parent_run_id IS NOT NULL") == Comparison(
        "attribute", "parent_run_id", "IS NOT NULL", None
    )


A = Comparison("metric", "a", ">", 1.0)
B = Comparison("metric", "b", ">", 2.0)
C = Comparison("metric", "c", ">", 3.0)


def test_and_binds_tighter_than_or() -> None:
    assert parse_filter("metrics.a > 1 or metrics.b > 2 and metrics.c > 3") == Or((A, And((B, C))))
    assert parse_filter("metrics.a > 1 AND metrics.b > 2 OR metrics.c > 3") == Or((And((A, B)), C))


def test_parentheses_override_precedence() -> None:
    assert parse_filter("(metrics.a > 1 or metrics.b > 2) and metrics.c > 3") == And(
        (Or((A, B)), C)
    )


def test_chains_of_the_same_connective_are_flattened() -> None:
    assert parse_filter("metrics.a > 1 and (metrics.b > 2 and metrics.c > 3)") == And((A, B, C))
    assert parse_filter("((metrics.a > 1)) or metrics.b > 2 or metrics.c > 3") == Or((A, B, C))


# --- invalid filters -------------------------------------------------------------------


def test_error_message_shows_filter_column_expectation_and_example() -> None:
    fails(
        "metrics.acc >> 0.9",
        "Invalid filter \"metrics.acc >> 0.9\": unexpected '>' at column 14; "
        f"expected a value. {EXAMPLE}",
    )


def test_missing_value_at_end_is_reported() -> None:
    fails("metrics.acc >", "unexpected end of input at column 14; expected a value.")


def test_unknown_prefix_is_reported() -> None:
    fails(
        "metircs.acc > 1",
        "unknown prefix 'metircs' at column 1; "
        "expected metrics, params, tags or attributes before the dot.",
    )


def test_missing_key_after_prefix_is_reported() -> None:
    fails("metrics. > 1", "missing key after 'metrics.' at column 9; expected a key.")


def test_empty_quoted_key_is_reported() -> None:
    fails("tags.`` = 'a'", "empty key at column 6; expected a key.")


def test_unterminated_string_is_reported() -> None:
    fails("params.a = 'rf", "unterminated string at column 12; expected a closing '.")


def test_unterminated_quoted_key_is_reported() -> None:
    fails("metrics.`val loss < 1", "unterminated key at column 9; expected a closing `.")


def test_unknown_attribute_is_reported() -> None:
    fails(
        "attributes.colour = 'red'",
        "unknown attribute 'colour' at column 1; expected one of run_id, run_name, user, "
        "parent_run_id, status, experiment_id, start_time, end_time.",
    )


def test_unknown_bare_identifier_suggests_prefixes() -> None:
    fails(
        "acc > 0.9",
        "unknown identifier 'acc' at column 1; expected metrics.acc, params.acc, tags.acc "
        "or an attribute (run_id,",
    )


@pytest.mark.parametrize(
    ("text", "column", "token"),
    [
        ("and metrics.a > 1", 1, "'and'"),
        ("metrics.a > 1 and 'x'", 19, "string 'x'"),
        ("> 1", 1, "'>'"),
    ],
)
def test_missing_identifier_is_reported(text: str, column: int, token: str) -> None:
    fails(
        text,
        f"unexpected {token} at column {column}; "
        "expected an identifier such as metrics.KEY, params.KEY, tags.KEY or an attribute.",
    )


def test_missing_operator_is_reported_with_the_operators_that_apply() -> None:
    fails(
        "metrics.a 1",
        "unexpected number 1 at column 11; "
        "expected an operator (=, !=, <, <=, >, >=, IS NULL, IS NOT NULL).",
    )


def test_not_must_be_followed_by_like_or_in() -> None:
    fails(
        "params.a NOT ILIKE 'x'", "unexpected 'ILIKE' at column 14; expected LIKE or IN after NOT."
    )


def test_is_must_be_followed_by_null_or_not_null() -> None:
    fails(
        "tags.a IS 'x'", "unexpected string 'x' at column 11; expected NULL or NOT NULL after IS."
    )
    fails("tags.a IS NOT 'x'", "unexpected string 'x' at column 15; expected NULL after IS NOT.")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metrics.a LIKE '1'",
            (
                "operator LIKE does not apply to metrics at column 11; "
                "expected one of =, !=, <, <=, >, >=, IS NULL, IS NOT NULL."
            ),
        ),
        (
            "params.lr < '0.1'",
            (
                "operator < does not apply to params at column 11; "
                "expected one of =, !=, LIKE, ILIKE, NOT LIKE, IN, NOT IN, IS NULL, IS NOT NULL."
            ),
        ),
        ("status LIKE 'R%'", "operator LIKE does not apply to attribute status at column 8"),
        ("start_time IN (1)", "operator IN does not apply to attribute start_time at column 12"),
        ("run_id IS NULL", "operator IS NULL does not apply to attribute run_id at column 8"),
    ],
)
def test_operator_that_does_not_apply_to_the_identifier_is_reported(
    text: str, message: str
) -> None:
    fails(text, message)


def test_metrics_compare_with_numbers_only() -> None:
    fails(
        "metrics.acc > '0.9'",
        "unexpected string '0.9' at column 15; expected a number, since metrics compare with numbers.",  # noqa: E501
    )


def test_params_and_tags_compare_with_strings_only() -> None:
    fails(
        "params.lr = 0.1",
        "unexpected number 0.1 at column 13; "
        "expected a quoted string such as '0.1', since params compare with strings.",
    )
    fails("tags.n IN ('a', 2)", "unexpected number 2 at column 17; expected a quoted string")


def test_times_must_be_integers() -> None:
    fails("start_time > 1.5", "unexpected number 1.5 at column 14; expected an integer")
    fails("end_time < 'x'", "expected a number, since attribute end_time compare with numbers")


def test_unknown_status_is_reported() -> None:
    fails(
        "status = 'DONE'",
        "unknown status 'DONE' at column 10; "
        "expected one of 'RUNNING', 'FINISHED', 'FAILED', 'KILLED'.",
    )


@pytest.mark.parametrize("value", ["'abc'", "1.5", "-1", "'²'", "'99999999999999999999'"])
def test_experiment_id_must_be_digits(value: str) -> None:
    fails(f"experiment_id = {value}", "at column 17; expected an experiment id such as '1'.")


def test_out_of_range_number_is_reported() -> None:
    fails("metrics.a > 1e999", "number 1e999 out of range at column 13; expected a finite number.")


def test_in_requires_a_parenthesized_list() -> None:
    fails("params.a IN 'x'", "unexpected string 'x' at column 13; expected '(' after IN.")
    fails("params.a IN ()", "unexpected ')' at column 14; expected a value.")
    fails("params.a NOT IN ('x' 'y')", "unexpected string 'y' at column 22; expected ',' or ')'.")


def test_like_pattern_ending_in_escape_character_is_reported() -> None:
    fails(
        "params.a LIKE 'x\\\\'",
        "LIKE pattern 'x\\\\' ends with the escape character \\ at column 15; "
        "expected a character after it, or two backslashes for a literal one.",
    )


def test_unclosed_parenthesis_is_reported() -> None:
    fails("(metrics.a > 1", "unexpected end of input at column 15; expected AND, OR or ')'.")


def test_unbalanced_closing_parenthesis_is_reported() -> None:
    fails(
        "metrics.a > 1)", "unexpected ')' at column 14; expected AND, OR or the end of the filter."
    )


def test_comparisons_without_connective_are_reported() -> None:
    fails(
        "metrics.a > 1 metrics.b > 2",
        "unexpected 'metrics.b' at column 15; expected AND, OR or the end of the filter.",
    )


def test_unexpected_character_is_reported() -> None:
    fails("metrics.a > 1 & metrics.b > 2", "unexpected '&' at column 15; expected AND, OR")


def test_deep_nesting_is_rejected_without_recursion_error() -> None:
    fails(
        "(" * 500 + "metrics.a > 1" + ")" * 500, "parentheses nested more than 50 deep at column 51"
    )


def test_column_counts_from_the_start_of_the_filter_including_spaces() -> None:
    fails("   metrics.a ! 1", "unexpected '!' at column 14")


# --- order by --------------------------------------------------------------------------


def test_order_by_parses_direction_and_defaults_to_ascending() -> None:
    assert parse_order_by(
        ["metrics.acc DESC", "params.lr", "attributes.start_time ASC", "end_time"]
    ) == [
        OrderKey("metric", "acc", ascending=False),
        OrderKey("param", "lr", ascending=True),
        OrderKey("attribute", "start_time", ascending=True),
        OrderKey("attribute", "end_time", ascending=True),
    ]


def test_order_by_accepts_quoted_keys_aliases_and_lowercase_direction() -> None:
    assert parse_order_by(["tag.`my tag` desc", "attr.user_id asc"]) == [
        OrderKey("tag", "my tag", ascending=False),
        OrderKey("attribute", "user", ascending=True),
    ]


def test_empty_order_by_list_parses_to_no_keys() -> None:
    assert parse_order_by([]) == []


def test_order_by_rejects_an_unknown_direction() -> None:
    with pytest.raises(
        InvalidArgument,
        match=re.escape(
            "Invalid order_by item \"metrics.acc DOWN\": unexpected 'DOWN' at column 13; "
            "expected ASC, DESC or the end. Example: metrics.acc DESC"
        ),
    ):
        parse_order_by(["metrics.acc DOWN"])


def test_order_by_rejects_text_after_the_direction() -> None:
    with pytest.raises(InvalidArgument, match="unexpected 'x' at column 18; expected the end"):
        parse_order_by(["metrics.acc DESC x"])


def test_order_by_rejects_an_empty_item() -> None:
    with pytest.raises(InvalidArgument, match="empty item at column 1; expected an identifier"):
        parse_order_by(["start_time", " "])


def test_order_by_rejects_an_unknown_attribute() -> None:
    with pytest.raises(InvalidArgument, match="unknown identifier 'acc' at column 1"):
        parse_order_by(["acc"])


def test_order_by_rejects_a_plain_string() -> None:
    with pytest.raises(
        InvalidArgument,
        match=re.escape(
            "order_by must be a list of strings such as ['metrics.acc DESC'], not the string 'start_time'."  # noqa: E501
        ),
    ):
        parse_order_by("start_time")


def test_order_by_rejects_items_that_are_not_strings() -> None:
    with pytest.raises(
        InvalidArgument, match="order_by items must be strings such as 'metrics.acc DESC', not 3"
    ):
        parse_order_by([3])  # type: ignore[list-item]
