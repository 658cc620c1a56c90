"""XML shapes for structured output: an XSD subset or a JSON element description, compiled to Lark.

Both forms describe the same model: an element has a name, attributes (in the declared order,
each required or optional) and either a sequence/choice of child elements or text of a simple
type. The output is compact XML (no whitespace between tags), which is what makes it enforceable
token by token. What is accepted is listed in docs/structured-output.md; anything else is refused
by name rather than ignored.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

XS = "{http://www.w3.org/2001/XMLSchema}"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
ENTITY = r"&(amp|lt|gt|quot|apos);"
LEAF_REGEX = {
    "string": rf"([^<&]|{ENTITY})+",
    # Numbers are bounded (18 digits fit in 64 bits) so a weak model cannot write digits forever.
    "integer": r"-?(0|[1-9][0-9]{0,17})",
    "nonNegativeInteger": r"(0|[1-9][0-9]{0,17})",
    "positiveInteger": r"[1-9][0-9]{0,17}",
    "number": r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?",
    "boolean": r"(true|false)",
    "date": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
    "dateTime": r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?",
}
XSD_BUILTINS = {
    "string": "string",
    "token": "string",
    "normalizedString": "string",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "short": "integer",
    "nonNegativeInteger": "nonNegativeInteger",
    "positiveInteger": "positiveInteger",
    "decimal": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "date": "date",
    "dateTime": "dateTime",
}
UNBOUNDED = -1
# A shape expands (a named type used ten times, each using another ten times, ...): these bound the
# grammar it becomes, whatever the size of the text that describes it.
MAX_ELEMENTS = 1000
MAX_DEPTH = 32


class _Budget:
    def __init__(self) -> None:
        self.elements = self.depth = 0

    @contextmanager
    def nested(self, path: str, element: bool) -> Iterator[None]:
        """Inside an element (counted) or a group: both deepen the nesting."""
        self.elements += element
        if self.elements > MAX_ELEMENTS:
            raise ShapeError(f"{path}: the shape expands to more than {MAX_ELEMENTS} elements")
        if self.depth >= MAX_DEPTH:
            raise ShapeError(f"{path}: elements and groups nest deeper than {MAX_DEPTH} levels (no recursive types)")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


class ShapeError(ValueError):
    """The shape is not one this module accepts; the message says what and where."""


@dataclass
class Leaf:
    """Text content or an attribute value: a built-in type, an enumeration or a pattern."""

    kind: str = "string"
    enum: list[str] | None = None
    pattern: str | None = None

    def lark(self, in_attribute: bool) -> str:
        if self.enum is not None:
            return "(" + " | ".join(json.dumps(escape(v, in_attribute)) for v in self.enum) + ")"
        if self.pattern is not None:
            from llguidance import regex_to_lark

            return f"/{regex_to_lark(self.pattern)}/"
        regex = LEAF_REGEX[self.kind]
        return "/" + (regex.replace("[^<&]", '[^<&"]') if in_attribute else regex) + "/"

    def may_be_empty(self) -> bool:
        return self.kind == "string" and self.enum is None and self.pattern is None


@dataclass
class Attribute:
    name: str
    value: Leaf
    required: bool = True


@dataclass
class Element:
    name: str
    attributes: list[Attribute] = field(default_factory=list)
    content: Group | None = None  # child elements; None: text content
    text: Leaf = field(default_factory=Leaf)


@dataclass
class Particle:
    item: Element | Group
    min_occurs: int = 1
    max_occurs: int = 1  # UNBOUNDED: no upper bound


@dataclass
class Group:
    kind: str  # "sequence" or "choice"
    particles: list[Particle] = field(default_factory=list)


def escape(text: str, in_attribute: bool) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if in_attribute else text


def to_lark(root: Element) -> str:
    """One rule per element or group; repetition bounds become Lark's x{m,n}."""
    rules: list[str] = []
    names: dict[int, str] = {}

    def rule_for(item: Element | Group) -> str:
        if id(item) not in names:
            names[id(item)] = f"r{len(names)}"
            body = element_body(item) if isinstance(item, Element) else group_body(item)
            rules.append(f"{names[id(item)]}: {body}")
        return names[id(item)]

    def element_body(element: Element) -> str:
        parts = [json.dumps("<" + element.name)]
        for attribute in element.attributes:
            opening = json.dumps(f' {attribute.name}="')
            value = attribute.value.lark(True) + ("?" if attribute.value.may_be_empty() else "")
            parts.append(f"({opening} {value} {json.dumps(chr(34))})" + ("" if attribute.required else "?"))
        parts.append('">"')
        if element.content is not None:
            if element.content.particles:
                parts.append(group_body(element.content))
        else:
            parts.append(element.text.lark(False) + ("?" if element.text.may_be_empty() else ""))
        parts.append(json.dumps(f"</{element.name}>"))
        return " ".join(parts)

    def group_body(group: Group) -> str:
        joiner = " " if group.kind == "sequence" else " | "
        return "(" + joiner.join(particle(p) for p in group.particles) + ")"

    def particle(p: Particle) -> str:
        name = rule_for(p.item)
        if (p.min_occurs, p.max_occurs) == (1, 1):
            return name
        if p.max_occurs == UNBOUNDED:
            return f"{name}*" if p.min_occurs == 0 else f"{name}{{{p.min_occurs},}}"
        return f"{name}{{{p.min_occurs},{p.max_occurs}}}"

    start = rule_for(root)
    return "\n".join([f"start: {start}", *rules])


# --- the JSON element description ---------------------------------------------------------------


def from_description(description: dict[str, Any]) -> Element:
    return _element(description, "", _Budget())


def _element(spec: Any, path: str, budget: _Budget) -> Element:
    with budget.nested(path or "/", element=True):
        return _element_body(spec, path, budget)


def _element_body(spec: Any, path: str, budget: _Budget) -> Element:
    if not isinstance(spec, dict) or not isinstance(spec.get("element"), str):
        raise ShapeError(f"{path or '/'}: an element is an object with an 'element' name")
    unknown = set(spec) - {"element", "attributes", "children", "choice", "text", "min_occurs", "max_occurs"}
    if unknown:
        raise ShapeError(f"{path or '/'}: unsupported keys {sorted(unknown)}")
    element = Element(_name(spec["element"], path))
    for name, value in (spec.get("attributes") or {}).items():
        required = not (isinstance(value, dict) and value.get("required") is False)
        element.attributes.append(Attribute(_name(name, path), _leaf(value, f"{path}/attributes/{name}"), required))
    if "children" in spec and "choice" in spec:
        raise ShapeError(f"{path or '/'}: give 'children' (a sequence) or 'choice', not both")
    for key, kind in (("children", "sequence"), ("choice", "choice")):
        if key in spec:
            element.content = _group(spec[key], kind, f"{path}/{key}", budget)
    if "text" in spec:
        if element.content is not None:
            raise ShapeError(f"{path or '/'}: an element has child elements or text, not both")
        element.text = _leaf(spec["text"], f"{path}/text")
    return element


def _group(items: Any, kind: str, path: str, budget: _Budget) -> Group:
    if not isinstance(items, list) or not items:
        raise ShapeError(f"{path}: must be a non-empty list of elements")
    with budget.nested(path, element=False):
        return _group_items(items, kind, path, budget)


def _group_items(items: list[Any], kind: str, path: str, budget: _Budget) -> Group:
    group = Group(kind)
    for index, item in enumerate(items):
        where = f"{path}/{index}"
        nested = next((k for k in ("sequence", "choice") if isinstance(item, dict) and k in item), None)
        child: Element | Group = (
            _group(item[nested], nested, f"{where}/{nested}", budget) if nested else _element(item, where, budget)
        )
        group.particles.append(_occurs(child, item, "min_occurs", "max_occurs", where))
    return group


def _leaf(spec: Any, path: str) -> Leaf:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise ShapeError(f"{path}: a value type is a type name or an object")
    unknown = set(spec) - {"type", "enum", "pattern", "required"}
    if unknown:
        raise ShapeError(f"{path}: unsupported keys {sorted(unknown)}")
    if "enum" in spec:
        if not isinstance(spec["enum"], list) or not spec["enum"] or not all(isinstance(v, str) for v in spec["enum"]):
            raise ShapeError(f"{path}/enum: must be a non-empty list of strings")
        return Leaf(enum=list(spec["enum"]))
    if "pattern" in spec:
        if not isinstance(spec["pattern"], str):
            raise ShapeError(f"{path}/pattern: must be a string")
        return Leaf(pattern=spec["pattern"])
    kind = spec.get("type", "string")
    if kind not in LEAF_REGEX:
        raise ShapeError(f"{path}/type: {kind!r} is not one of {sorted(LEAF_REGEX)}")
    return Leaf(kind)


# --- the XSD subset --------------------------------------------------------------------------------


def from_xsd(text: str) -> Element:
    try:
        schema = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ShapeError(f"the XSD is not well-formed XML: {exc}") from None
    if schema.tag != XS + "schema":
        raise ShapeError("the XSD's root must be xs:schema (namespace http://www.w3.org/2001/XMLSchema)")
    types: dict[str, ET.Element] = {}
    roots: list[ET.Element] = []
    for child in schema:
        local = _local(child, "schema")
        if local in ("complexType", "simpleType") and child.get("name"):
            types[child.get("name", "")] = child
        elif local == "element":
            roots.append(child)
        elif local != "annotation":
            raise ShapeError(f"xs:{local} is not supported at the top of the schema")
    if not roots:
        raise ShapeError("the XSD declares no top-level xs:element")
    return _XsdReader(types).element(roots[0], "/xs:schema/xs:element")


def _local(node: ET.Element, where: str) -> str:
    if not node.tag.startswith(XS):
        raise ShapeError(f"{node.tag} inside xs:{where} is not an XML Schema element")
    return node.tag[len(XS) :]


class _XsdReader:
    def __init__(self, types: dict[str, ET.Element]) -> None:
        self.types = types
        self.budget = _Budget()

    def element(self, node: ET.Element, path: str) -> Element:
        for attr in node.attrib:
            if attr not in ("name", "type", "minOccurs", "maxOccurs"):
                raise ShapeError(f"{path}: attribute {attr!r} of xs:element is not supported")
        with self.budget.nested(path, element=True):
            return self._element_body(node, path)

    def _element_body(self, node: ET.Element, path: str) -> Element:
        element = Element(_name(node.get("name"), path))
        body = [c for c in node if _local(c, "element") != "annotation"]
        type_name = node.get("type")
        if type_name and body:
            raise ShapeError(f"{path}: give a type attribute or an inline type, not both")
        definition = self._named(type_name, path) if type_name and _builtin(type_name) is None else None
        if type_name and definition is None:
            element.text = Leaf(_builtin_or_fail(type_name, path))
        for node_type in body if body else ([definition] if definition is not None else []):
            self._apply_type(element, node_type, path)
        return element

    def _named(self, type_name: str, path: str) -> ET.Element:
        local = type_name.split(":")[-1]
        if local not in self.types:
            raise ShapeError(f"{path}: unknown type {type_name!r}")
        return self.types[local]

    def _apply_type(self, element: Element, node: ET.Element, path: str) -> None:
        local = _local(node, "element")
        if local == "simpleType":
            element.text = self.simple(node, f"{path}/xs:simpleType")
        elif local == "complexType":
            self.complex(element, node, f"{path}/xs:complexType")
        else:
            raise ShapeError(f"{path}: xs:{local} is not supported inside xs:element")

    def complex(self, element: Element, node: ET.Element, path: str) -> None:
        if node.get("mixed") in ("true", "1"):
            raise ShapeError(f"{path}: mixed content is not supported")
        for child in node:
            local = _local(child, "complexType")
            if local in ("sequence", "choice"):
                element.content = self.group(child, f"{path}/xs:{local}")
            elif local == "attribute":
                element.attributes.append(self.attribute(child, f"{path}/xs:attribute"))
            elif local == "simpleContent":
                self.simple_content(element, child, f"{path}/xs:simpleContent")
            elif local != "annotation":
                raise ShapeError(f"{path}: xs:{local} is not supported (use xs:sequence or xs:choice)")
        if element.content is None and not _has(node, "simpleContent"):
            element.content = Group("sequence")  # a complex type without content: an empty element

    def simple_content(self, element: Element, node: ET.Element, path: str) -> None:
        extension = next((c for c in node if _local(c, "simpleContent") == "extension"), None)
        if extension is None:
            raise ShapeError(f"{path}: only xs:extension is supported in xs:simpleContent")
        element.text = Leaf(_builtin_or_fail(extension.get("base", ""), path))
        for child in extension:
            if _local(child, "extension") != "attribute":
                raise ShapeError(f"{path}/xs:extension: only xs:attribute is supported here")
            element.attributes.append(self.attribute(child, f"{path}/xs:extension/xs:attribute"))

    def group(self, node: ET.Element, path: str) -> Group:
        with self.budget.nested(path, element=False):
            return self._group_body(node, path)

    def _group_body(self, node: ET.Element, path: str) -> Group:
        group = Group(_local(node, "complexType"))
        for index, child in enumerate(node):
            local = _local(child, group.kind)
            where = f"{path}/{index}"
            if local == "element":
                item: Element | Group = self.element(child, where)
            elif local in ("sequence", "choice"):
                item = self.group(child, where)
            elif local == "annotation":
                continue
            else:
                raise ShapeError(f"{where}: xs:{local} is not supported inside xs:{group.kind}")
            group.particles.append(_occurs(item, child.attrib, "minOccurs", "maxOccurs", where))
        return group

    def attribute(self, node: ET.Element, path: str) -> Attribute:
        use = node.get("use", "optional")
        if use not in ("optional", "required"):
            raise ShapeError(f"{path}: use={use!r} is not supported")
        inline = [c for c in node if _local(c, "attribute") == "simpleType"]
        if inline:
            value = self.simple(inline[0], f"{path}/xs:simpleType")
        elif node.get("type") and _builtin(node.get("type", "")) is None:
            value = self.simple(self._named(node.get("type", ""), path), path)
        else:
            value = Leaf(_builtin_or_fail(node.get("type", "xs:string"), path))
        return Attribute(_name(node.get("name"), path), value, use == "required")

    def simple(self, node: ET.Element, path: str) -> Leaf:
        if _local(node, "element") != "simpleType":
            raise ShapeError(f"{path}: expected xs:simpleType")
        restriction = next((c for c in node if _local(c, "simpleType") == "restriction"), None)
        if restriction is None:
            raise ShapeError(f"{path}: only xs:restriction is supported in xs:simpleType")
        kind = _builtin_or_fail(restriction.get("base", ""), f"{path}/xs:restriction")
        enum, pattern = [], None
        for facet in restriction:
            local = _local(facet, "restriction")
            if local == "enumeration":
                enum.append(facet.get("value", ""))
            elif local == "pattern":
                pattern = facet.get("value", "")
            elif local != "annotation":
                raise ShapeError(f"{path}/xs:restriction: facet xs:{local} is not supported")
        return Leaf(kind, enum or None, pattern)


def _has(node: ET.Element, local: str) -> bool:
    return any(child.tag == XS + local for child in node)


def _builtin(type_name: str) -> str | None:
    prefix, _, local = type_name.rpartition(":")
    return XSD_BUILTINS.get(local) if prefix in ("xs", "xsd") else None


def _builtin_or_fail(type_name: str, path: str) -> str:
    kind = _builtin(type_name)
    if kind is None:
        raise ShapeError(f"{path}: type {type_name!r} is not a supported built-in ({', '.join(XSD_BUILTINS)})")
    return kind


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ShapeError(f"{path or '/'}: {value!r} is not a valid XML name")
    return value


def _occurs(item: Element | Group, spec: Any, min_key: str, max_key: str, path: str) -> Particle:
    spec = spec if isinstance(spec, dict) else {}
    try:
        low = int(spec.get(min_key, 1))
        high_raw = spec.get(max_key, 1)
        high = UNBOUNDED if high_raw in ("unbounded", None) else int(high_raw)
    except (TypeError, ValueError):
        raise ShapeError(f"{path}: {min_key}/{max_key} must be integers (or 'unbounded')") from None
    if low < 0 or (high != UNBOUNDED and (high < low or high > 1000)):
        raise ShapeError(f"{path}: {min_key}={low}, {max_key}={high_raw} is not a valid range (max 1000)")
    return Particle(item, low, high)
