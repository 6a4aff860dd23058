"""One rule for the names users give models, datasets, policies, schedules and monitors."""

from __future__ import annotations

import pytest

from ferryml._naming import check_name, is_name
from ferryml.automation.policy import Policy
from ferryml.data.workspace import check_name as check_dataset_name
from ferryml.errors import InvalidArgument
from ferryml.monitoring.monitors import MonitorSpec
from ferryml.registry.models import check_model_name


def _monitor(name: object) -> MonitorSpec:
    return MonitorSpec(name, "churn", "model:churn@champion")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["churn", "churn-v2", "wine_2024.csv", "_scratch", "a" * 250])
def test_names_of_letters_digits_and_separators_are_accepted(name: str) -> None:
    assert is_name(name)
    assert check_model_name(name) == name
    assert check_dataset_name(name) == name
    assert _monitor(name).name == name


@pytest.mark.parametrize("name", ["", "a b", "-x", ".hidden", "..", "a/b", "a" * 251, 3, None])
def test_other_names_are_refused_alike_everywhere(name: object) -> None:
    assert not is_name(name)
    message = f"name {name!r:.80} is invalid: use 1 to 250 letters, digits, _ . and -, not "
    for check in (check_model_name, lambda n: Policy.from_dict(n, {}), _monitor):
        with pytest.raises(InvalidArgument) as caught:
            check(name)  # type: ignore[operator]
        assert message in str(caught.value)


def test_dataset_names_may_be_paths_of_names() -> None:
    assert check_dataset_name("images/train") == "images/train"
    for bad in ("/abs", "a/../b", "a//b", "a/"):
        with pytest.raises(InvalidArgument, match="Dataset name .* is invalid"):
            check_dataset_name(bad)


def test_the_message_names_the_kind_and_an_example() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_name("a b", "Schedule", "nightly")
    assert str(caught.value) == (
        "Schedule name 'a b' is invalid: use 1 to 250 letters, digits, _ . and -, not starting "
        "with . or -, e.g. 'nightly'."
    )
