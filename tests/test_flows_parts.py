"""The small pure pieces under the engine: templating, the JSONPath subset, value checks, keyword
classification."""
import pytest

from gateway.flows import jsonpath, template, values
from gateway.flows.classify import by_name, classify
from gateway.flows.model import Category, ClassifyNode, CollectValue
from gateway.flows.template import MISSING


def resolver(variables):
    def resolve(path):
        root, *keys = path.split(".")
        value = variables.get(root, MISSING)
        return template.lookup_path(value, keys) if keys and value is not MISSING else value
    return resolve


# -- templates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("Hi {{name}}!", "Hi Ada!"),
    ("{{ name }}/{{name}}", "Ada/Ada"),
    ("{{missing}}|{{name.first}}|{{crm.orders.1.id}}|{{crm.orders.9.id}}", "||o2|"),
    ("{{n}} {{f}} {{t}} {{none}} {{crm.vip}}", "3 2.5 true  false"),
    ("{{crm.orders.0}}", '{"id":"o1"}'),
    ("no braces", "no braces"),
    ("{{ not valid }} {name}", "{{ not valid }} {name}"),
])
def test_render(text, expected):
    variables = {"name": "Ada", "n": 3.0, "f": 2.5, "t": True, "none": None,
                 "crm": {"vip": False, "orders": [{"id": "o1"}, {"id": "o2"}]}}
    assert template.render(text, resolver(variables)) == expected


def test_render_never_touches_python_attributes():
    class Secretive:
        password = "hunter2"

        def __str__(self):
            return "object"
    rendered = template.render("{{o.password}} {{o.__class__}} {{s.upper}}",
                               resolver({"o": Secretive(), "s": "abc"}))
    assert rendered == "  "


def test_references_and_malformed():
    assert list(template.references("{{a}} {{ b.c }} {{a}}")) == ["a", "b.c", "a"]
    assert template.malformed("{{a}} {{1x}} {{a b}} {{unclosed") == ["{{1x}}", "{{a b}}",
                                                                     "{{unclosed"]
    assert template.malformed("plain { text }") == []


def test_render_json_keeps_keys_and_non_strings():
    body = {"{{k}}": ["{{v}}", 1, None, {"x": "{{v}}"}]}
    assert template.render_json(body, resolver({"k": "K", "v": "V"})) == {
        "{{k}}": ["V", 1, None, {"x": "V"}]}
    assert list(template.json_strings(body, "body")) == [("body.{{k}}.0", "{{v}}"),
                                                        ("body.{{k}}.3.x", "{{v}}")]


# -- JSONPath subset -------------------------------------------------------------------------


DOC = {"a": {"b": [{"c": 1}, {"c": 2}]}, "weird key": {"x": "y"}, "list": [10, 20, 30]}


@pytest.mark.parametrize("path,expected", [
    ("$", DOC),
    ("$.a.b[0].c", 1),
    ("$.a.b[-1].c", 2),
    ("$['weird key'].x", "y"),
    ('$["weird key"]["x"]', "y"),
    ("$.list[2]", 30),
    ("$.list[3]", MISSING),
    ("$.list[-4]", MISSING),
    ("$.a.nope", MISSING),
    ("$.list.x", MISSING),
    ("$.a[0]", MISSING),
])
def test_jsonpath_extract(path, expected):
    assert jsonpath.extract(DOC, jsonpath.parse(path)) == expected


@pytest.mark.parametrize("path", ["a.b", "$..a", "$.*", "$.a[*]", "$[?(@.x)]", "$.a[0:2]",
                                  "$.", "$[abc]", "$.a" + ".b" * 40, "", 5])
def test_jsonpath_rejects_what_it_does_not_support(path):
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.parse(path)


# -- collected values ------------------------------------------------------------------------


def spec(**fields):
    return CollectValue(name="v", prompt="?", **fields)


@pytest.mark.parametrize("fields,raw,expected", [
    ({}, "  hello ", "hello"),
    ({}, "   ", None),
    ({"validation": "digits"}, "12-34 56", "123456"),
    ({"validation": "digits"}, "four two oh", "420"),
    ({"validation": "digits"}, "12a", None),
    ({"validation": "digits"}, "١٢٣", None),                 # non-ASCII digits are not digits
    ({"validation": "digits", "min_length": 4}, "123", None),
    ({"validation": "digits", "max_length": 3}, "1234", None),
    ({"validation": "email"}, "Ann@Example.ORG", "Ann@example.org"),
    ({"validation": "email"}, "ann at example dot org", "ann@example.org"),
    ({"validation": "email"}, "ann@", None),
    ({"validation": "email"}, "a@b@c.de", None),
    ({"validation": "regex", "pattern": "[A-Z]{2}\\d"}, " AB1 ", "AB1"),
    ({"validation": "regex", "pattern": "[A-Z]{2}\\d"}, "AB12", None),
])
def test_normalise(fields, raw, expected):
    assert values.normalise(spec(**fields), raw) == expected


# -- keyword classification ------------------------------------------------------------------


NODE = ClassifyNode(default="other", categories=[
    Category(name="billing", keywords=["bill", "direct debit"], next="b"),
    Category(name="Tech", regex=r"\berr(or)?\b", next="t"),
])


@pytest.mark.parametrize("text,expected", [
    ("my BILL", "billing"), ("about my direct  debit", None), ("About my Direct Debit", "billing"),
    ("billing", None), ("an ERROR appeared", "Tech"), ("terror", None), ("", None),
])
def test_keywords_are_whole_words_and_case_insensitive(text, expected):
    found = classify(NODE, text)
    assert (found.name if found else None) == expected


def test_external_category_names_match_exactly_then_case_insensitively():
    assert by_name(NODE, "Tech").name == "Tech"
    assert by_name(NODE, "tech").name == "Tech"
    assert by_name(NODE, "sales") is None and by_name(NODE, None) is None


# -- drawing ---------------------------------------------------------------------------------


def test_to_dot_draws_every_node_and_edge():
    import json
    import pathlib

    from gateway.flows import validate
    from gateway.flows.graph import to_dot
    path = pathlib.Path(__file__).resolve().parent.parent / "examples/flows/support_menu.json"
    flow = validate({**json.loads(path.read_text()), "name": 'Say "hi" ☎'})
    dot = to_dot(flow)
    assert dot.startswith('digraph "Say \\"hi\\" ☎" {')
    assert '"menu" [label="menu\\n(dtmf_menu)", shape=box, peripheries=2];' in dot
    assert '"menu" -> "support_account" [label="options.2"];' in dot
    assert dot.count("->") == 9 and dot.rstrip().endswith("}")
