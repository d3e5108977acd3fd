"""The event-type catalog: data files, examples, and schema errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from prometora_webhooks.domain.catalog import Catalog, EventType
from prometora_webhooks.domain.errors import ValidationFailed

CATALOG = Catalog.load()
CONTRACT_TYPES = ["order.created", "seller.registered"]


def test_the_contracts_types_are_there_sorted() -> None:
    names = CATALOG.names()
    assert set(CONTRACT_TYPES) <= set(names)
    assert names == sorted(names)
    assert [t.name for t in CATALOG.all()] == names


@pytest.mark.parametrize("name", CATALOG.names())
def test_every_type_is_complete_and_its_example_validates(name: str) -> None:
    et = CATALOG.get(name)
    assert et.name == name
    assert et.description.strip()
    Draft202012Validator.check_schema(et.schema)
    assert et.schema.get("type") == "object"
    assert isinstance(et.example, dict)
    assert et.example
    assert set(et.schema.get("required", [])) <= set(et.example)
    CATALOG.validate(name, et.example)  # does not raise


@pytest.mark.parametrize("name", CATALOG.names())
def test_extra_properties_are_allowed(name: str) -> None:
    data = {**CATALOG.get(name).example, "x_extra": {"anything": [1, 2]}}
    CATALOG.validate(name, data)


@pytest.mark.parametrize("name", CATALOG.names())
def test_every_required_field_is_enforced(name: str) -> None:
    et = CATALOG.get(name)
    for field in et.schema["required"]:
        data = {k: v for k, v in et.example.items() if k != field}
        with pytest.raises(ValidationFailed) as info:
            CATALOG.validate(name, data)
        assert info.value.message == f"data: '{field}' is a required property"


ORDER = CATALOG.get("order.created").example


def order(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(ORDER)
    data.update(changes)
    return data


def with_item(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(ORDER)
    data["items"] = [dict(data["items"][0]), {**data["items"][0], **changes}]
    return data


def test_order_created_example_matches_the_product_page() -> None:
    assert ORDER == {
        "id": "ord_xyz789",
        "total": 9999,
        "currency": "usd",
        "customer": {"email": "john@example.com", "name": "John Doe"},
        "items": [
            {"listing_id": "lst_123", "title": "Handmade Pottery", "quantity": 1, "price": 9999}
        ],
    }


@pytest.mark.parametrize(
    ("data", "path", "detail"),
    [
        (order(total="9999"), "data.total", "is not of type 'integer'"),
        (order(total=99.5), "data.total", "is not of type 'integer'"),
        (order(total=-1), "data.total", "less than the minimum"),
        (order(currency="dollars"), "data.currency", "does not match"),
        (order(currency="US"), "data.currency", "does not match"),
        (order(currency=840), "data.currency", "is not of type 'string'"),
        (order(id=""), "data.id", "should be non-empty"),
        (order(id=123), "data.id", "is not of type 'string'"),
        (order(customer="john@example.com"), "data.customer", "is not of type 'object'"),
        (order(customer={"name": "John"}), "data.customer", "'email' is a required property"),
        (order(customer={"email": "j@x", "name": 5}), "data.customer.name", "not of type"),
        (order(items=[]), "data.items", "should be non-empty"),
        (order(items={}), "data.items", "is not of type 'array'"),
        (with_item(quantity=0), "data.items[1].quantity", "less than the minimum of 1"),
        (with_item(quantity=1.5), "data.items[1].quantity", "is not of type 'integer'"),
        (with_item(price="10"), "data.items[1].price", "is not of type 'integer'"),
        (with_item(listing_id=""), "data.items[1].listing_id", "should be non-empty"),
        (order(items=[{"title": "x", "quantity": 1, "price": 1}]), "data.items[0]", "listing_id"),
        (order(items=["lst_1"]), "data.items[0]", "is not of type 'object'"),
    ],
)
def test_order_schema_errors_name_the_field_path(
    data: dict[str, Any], path: str, detail: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        CATALOG.validate("order.created", data)
    message = info.value.message
    assert message.startswith(f"{path}: "), message
    assert detail in message
    assert info.value.status == 422
    assert info.value.code == "validation_error"


@pytest.mark.parametrize(
    ("data", "path", "detail"),
    [
        ({"id": "sel_1", "name": "Jane"}, "data", "'email' is a required property"),
        ({"id": "sel_1", "name": 7, "email": "a@b"}, "data.name", "is not of type 'string'"),
        ({"id": "", "name": "J", "email": "a@b"}, "data.id", "should be non-empty"),
        ({"id": "sel_1", "name": "J", "email": ""}, "data.email", "should be non-empty"),
        ({"id": "x" * 256, "name": "J", "email": "a@b"}, "data.id", "is too long"),
    ],
)
def test_seller_schema_errors_name_the_field_path(
    data: dict[str, Any], path: str, detail: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        CATALOG.validate("seller.registered", data)
    assert info.value.message.startswith(f"{path}: ")
    assert detail in info.value.message


@pytest.mark.parametrize("data", [None, [], "text", 42, True])
@pytest.mark.parametrize("name", CONTRACT_TYPES)
def test_data_must_be_an_object(name: str, data: object) -> None:
    with pytest.raises(ValidationFailed, match=r"^data: .* is not of type 'object'$"):
        CATALOG.validate(name, data)


@pytest.mark.parametrize(
    "name", ["order.deleted", "", "ORDER.CREATED", "order.created ", None, 42, ["order.created"]]
)
def test_unknown_types_list_the_known_ones(name: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        CATALOG.get(name)
    message = info.value.message
    assert message.startswith(f"unknown event type {name!r}; known types: ")
    assert message.endswith(", ".join(CATALOG.names()))
    for known in CONTRACT_TYPES:
        assert known in message


def test_validate_of_an_unknown_type_raises_the_same_error() -> None:
    with pytest.raises(ValidationFailed, match=r"unknown event type 'listing\.nope'; known types"):
        CATALOG.validate("listing.nope", {})


def test_a_catalog_is_data() -> None:
    schema = {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}
    extra = EventType("listing.created", "d", schema, {"sku": "a"}, Draft202012Validator(schema))
    catalog = Catalog([*CATALOG.all(), extra])
    assert catalog.names() == sorted([*CATALOG.names(), "listing.created"])
    catalog.validate("listing.created", {"sku": "a"})
    with pytest.raises(ValidationFailed, match=r"^data.sku: 1 is not of type 'string'$"):
        catalog.validate("listing.created", {"sku": 1})
    known = r"known types: listing\.created, order\.created, seller\.registered$"
    with pytest.raises(ValidationFailed, match=known):
        catalog.get("nope")


# -- the fast path (jsonschema-rs) and the wording path (jsonschema) agree ----------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _mutations(example: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The example with one value somewhere replaced by arbitrary JSON, or removed."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix]
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    def apply(path: tuple[Any, ...], value: Any, remove: bool) -> Any:
        doc = copy.deepcopy(example)
        if not path:
            return value
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if remove and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return doc

    return st.builds(apply, st.sampled_from(paths(example)), _json, st.booleans())


@pytest.mark.parametrize("name", CATALOG.names())
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fast_validator_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    et = CATALOG.get(name)
    doc = data.draw(_mutations(et.example))
    assert et.fast is not None
    assert et.fast.is_valid(doc) == et.validator.is_valid(doc), doc
