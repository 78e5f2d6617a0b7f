"""Discord's OpenAPI description: route matching and JSON Schema validation.

The spec (``spec/openapi.json``, discord/discord-api-spec at commit
74fda0fad044407ea280043a03ffc9bc64c4e49e) is loaded once per process. Validators are built lazily per
schema location and cached, so validating a request costs a few milliseconds.

Where the published spec disagrees with what Discord actually does, two narrow, documented tolerances
are applied (everything else is validated exactly as published):

* requests: ``SnowflakeType`` also accepts non-negative integers. The spec only allows strings, but
  Discord accepts integer snowflakes in request bodies and discord.py relies on that
  (``attachments[].id`` is the file index, ``message_reference.message_id`` is an ``int``);
* responses: the per-field ``errors`` of an error body (``InnerErrors._errors[].code``) may be a string.
  The spec reuses the top-level ``Error`` schema (integer ``code``) there, but Discord sends string codes
  such as ``"BASE_TYPE_MAX_LENGTH"``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import referencing
import referencing.jsonschema
from jsonschema import Draft202012Validator, ValidationError

SPEC_DIR = Path(__file__).resolve().parent / "spec"
SPEC_PATH = SPEC_DIR / "openapi.json"
SPEC_COMMIT = "74fda0fad044407ea280043a03ffc9bc64c4e49e"
API_PREFIX = "/api/v10"

_RESPONSE_URI = "urn:discord-openapi:response"
_REQUEST_URI = "urn:discord-openapi:request"
_KNOWN_VALID_MAX = 4096
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

JSON = Any
PathPart = str | int


@dataclass(frozen=True)
class SchemaError:
    """One validation failure, located by its path inside the validated document."""

    path: tuple[PathPart, ...]
    message: str
    code: str

    def describe(self) -> str:
        where = ".".join(str(p) for p in self.path) or "<root>"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" or "query"
    required: bool
    pointer: str  # JSON pointer of the parameter's schema inside the spec


@dataclass(frozen=True)
class Operation:
    """One (method, path template) pair of the spec."""

    method: str
    template: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    request_bodies: Mapping[str, str]  # content type -> schema pointer
    request_required: bool
    responses: Mapping[str, str | None]  # status key ("200", "4XX") -> schema pointer (None: no body)
    security: tuple[frozenset[str], ...]  # alternatives; an empty set means "no authentication"

    @property
    def auth_optional(self) -> bool:
        return any(not alt for alt in self.security) or not self.security

    @property
    def accepts_bot_token(self) -> bool:
        return any("BotToken" in alt for alt in self.security)

    def response_pointer(self, status: int) -> tuple[bool, str | None]:
        """(documented, schema pointer) for a response status."""
        key = str(status)
        if key in self.responses:
            return True, self.responses[key]
        family = f"{key[0]}XX"
        if family in self.responses:
            return True, self.responses[family]
        return False, None


@dataclass(frozen=True)
class RouteMatch:
    operation: Operation
    path_params: dict[str, str]


@dataclass
class _Template:
    template: str
    segments: tuple[str | None, ...]  # None for a {parameter}
    names: tuple[str, ...]
    methods: dict[str, Operation] = field(default_factory=dict)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        names = iter(self.names)
        for literal, part in zip(self.segments, parts, strict=True):
            if literal is None:
                if not part:
                    return None
                values[next(names)] = part
            elif literal != part:
                return None
        return values

    @property
    def specificity(self) -> tuple[int, ...]:
        # Literal segments win over parameters, earliest position first ("/users/@me" beats "/users/{id}").
        return tuple(0 if s is None else 1 for s in self.segments)


_ESCAPE = str.maketrans({"~": "~0", "/": "~1"})


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.translate(_ESCAPE) for p in parts)


def _pointer_get(doc: JSON, pointer: str) -> JSON:
    node = doc
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class DiscordSpec:
    """The parsed spec with route matching and cached validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.version: str = document.get("info", {}).get("version", "?")
        request_document = copy.copy(document)
        request_document["components"] = dict(document["components"])
        schemas = dict(document["components"]["schemas"])
        schemas["SnowflakeType"] = {
            "anyOf": [document["components"]["schemas"]["SnowflakeType"], {"type": "integer", "minimum": 0}]
        }
        request_document["components"]["schemas"] = schemas
        response_document = copy.copy(document)
        response_document["components"] = dict(document["components"])
        schemas = dict(document["components"]["schemas"])
        inner = copy.deepcopy(schemas["InnerErrors"])
        inner["properties"]["_errors"]["items"] = {
            "type": "object",
            "properties": {"code": {"type": ["string", "integer"]}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
        schemas["InnerErrors"] = inner
        response_document["components"]["schemas"] = schemas
        spec = referencing.jsonschema.DRAFT202012
        self._registries = {
            _RESPONSE_URI: referencing.Registry().with_resource(_RESPONSE_URI, spec.create_resource(response_document)),
            _REQUEST_URI: referencing.Registry().with_resource(_REQUEST_URI, spec.create_resource(request_document)),
        }
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}
        self._file_fields: dict[str, frozenset[str]] = {}
        self._known_valid: set[tuple[str, bool, str]] = set()
        self._templates: dict[int, list[_Template]] = {}
        self.operations: dict[str, Operation] = {}
        self._index()

    # ------------------------------------------------------------------ loading and matching

    def _index(self) -> None:
        for template, item in self.document["paths"].items():
            segments = tuple(None if s.startswith("{") else s for s in template.strip("/").split("/"))
            names = tuple(s[1:-1] for s in template.strip("/").split("/") if s.startswith("{"))
            entry = _Template(template, segments, names)
            shared = item.get("parameters", [])
            for method in _HTTP_METHODS:
                raw = item.get(method)
                if raw is None:
                    continue
                op = self._operation(template, method, raw, shared)
                entry.methods[method.upper()] = op
                self.operations[op.operation_id] = op
            self._templates.setdefault(len(segments), []).append(entry)
        for entries in self._templates.values():
            entries.sort(key=lambda t: t.specificity, reverse=True)

    def _operation(self, template: str, method: str, raw: dict[str, Any], shared: list[dict[str, Any]]) -> Operation:
        base = _pointer("paths", template)
        params: dict[tuple[str, str], Parameter] = {}
        for where, plist in (
            (base + "/parameters", shared),
            (base + f"/{method}/parameters", raw.get("parameters", [])),
        ):
            for i, p in enumerate(plist):
                params[(p["in"], p["name"])] = Parameter(
                    name=p["name"],
                    location=p["in"],
                    required=bool(p.get("required", False)),
                    pointer=f"{where}/{i}/schema",
                )
        bodies: dict[str, str] = {}
        body = raw.get("requestBody", {})
        for ctype in body.get("content", {}):
            bodies[ctype] = base + f"/{method}/requestBody/content/{ctype.translate(_ESCAPE)}/schema"
        responses: dict[str, str | None] = {}
        for status, declared in raw.get("responses", {}).items():
            pointer = base + f"/{method}/responses/{status}"
            resp = declared
            if "$ref" in declared:
                pointer = declared["$ref"].lstrip("#")
                resp = _pointer_get(self.document, pointer)
            content = resp.get("content", {})
            responses[status] = pointer + "/content/application~1json/schema" if "application/json" in content else None
        security = tuple(frozenset(alt) for alt in raw.get("security", []))
        return Operation(
            method=method.upper(),
            template=template,
            operation_id=raw.get("operationId", f"{method} {template}"),
            parameters=tuple(params.values()),
            request_bodies=bodies,
            request_required=bool(body.get("required", False)),
            responses=responses,
            security=security,
        )

    def match(self, method: str, path: str) -> RouteMatch | None:
        """Match a concrete path relative to ``/api/v10`` (e.g. ``/channels/1/messages``)."""
        parts = path.strip("/").split("/")
        for entry in self._templates.get(len(parts), ()):
            values = entry.match(parts)
            if values is None:
                continue
            op = entry.methods.get(method.upper())
            if op is not None:
                return RouteMatch(op, values)
        return None

    def methods_for(self, path: str) -> list[str]:
        parts = path.strip("/").split("/")
        found: list[str] = []
        for entry in self._templates.get(len(parts), ()):
            if entry.match(parts) is not None:
                found.extend(m for m in entry.methods if m not in found)
        return found

    # ------------------------------------------------------------------ validation

    def _validator(self, pointer: str, *, request: bool) -> Draft202012Validator:
        uri = _REQUEST_URI if request else _RESPONSE_URI
        key = (uri, pointer)
        validator = self._validators.get(key)
        if validator is None:
            validator = Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=self._registries[uri])
            self._validators[key] = validator
        return validator

    def validate(self, pointer: str, instance: JSON, *, request: bool) -> list[SchemaError]:
        validator = self._validator(pointer, request=request)
        try:
            key = (pointer, request, json.dumps(instance, sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError):
            key = None
        if key is not None and key in self._known_valid:
            return []  # the same document was valid a moment ago (e.g. a stored message, then the response)
        if validator.is_valid(instance):  # fast path, no error objects built
            if key is not None:
                if len(self._known_valid) >= _KNOWN_VALID_MAX:
                    self._known_valid.clear()
                self._known_valid.add(key)
            return []
        return [err for error in validator.iter_errors(instance) for err in _convert(error)]

    def validate_component(self, name: str, instance: JSON, *, request: bool = False) -> list[SchemaError]:
        """Validate against ``#/components/schemas/<name>``."""
        return self.validate(_pointer("components", "schemas", name), instance, request=request)

    def resolve(self, pointer: str) -> JSON:
        """The schema at ``pointer`` with top-level ``$ref``s followed."""
        node = _pointer_get(self.document, pointer)
        while isinstance(node, dict) and "$ref" in node and len(node) <= 2:
            node = _pointer_get(self.document, node["$ref"].lstrip("#"))
        return node

    def validate_path_params(self, match: RouteMatch) -> list[SchemaError]:
        errors: list[SchemaError] = []
        for param in match.operation.parameters:
            if param.location != "path" or param.name not in match.path_params:
                continue
            for err in self.validate(param.pointer, match.path_params[param.name], request=True):
                errors.append(SchemaError((param.name, *err.path), err.message, err.code))
        return errors

    def validate_query(self, op: Operation, query: Mapping[str, str]) -> list[SchemaError]:
        """Coerce query strings per their schema type, then validate. Unknown parameters are ignored."""
        errors: list[SchemaError] = []
        for param in op.parameters:
            if param.location != "query":
                continue
            if param.name not in query:
                if param.required:
                    errors.append(SchemaError((param.name,), "This field is required", "BASE_TYPE_REQUIRED"))
                continue
            value = _coerce_query(query[param.name], self.resolve(param.pointer))
            for err in self.validate(param.pointer, value, request=True):
                errors.append(SchemaError((param.name, *err.path), err.message, err.code))
        return errors

    def coerce_query(self, op: Operation, query: Mapping[str, str]) -> dict[str, Any]:
        """The operation's query parameters, converted to their schema types."""
        return {
            p.name: _coerce_query(query[p.name], self.resolve(p.pointer))
            for p in op.parameters
            if p.location == "query" and p.name in query
        }

    def validate_request_body(self, op: Operation, content_type: str, instance: JSON) -> list[SchemaError]:
        pointer = op.request_bodies.get(content_type)
        if pointer is None:
            allowed = ", ".join(op.request_bodies) or "none"
            return [
                SchemaError(
                    (), f"content type {content_type!r} not accepted (allowed: {allowed})", "CONTENT_TYPE_INVALID"
                )
            ]
        return self.validate(pointer, instance, request=True)

    def validate_response(self, op: Operation, status: int, body: JSON) -> list[SchemaError]:
        documented, pointer = op.response_pointer(status)
        if not documented:
            return [SchemaError((), f"status {status} is not documented for {op.operation_id}", "UNDOCUMENTED_STATUS")]
        if pointer is None:
            if body is not None:
                return [
                    SchemaError((), f"status {status} of {op.operation_id} must not have a body", "UNEXPECTED_BODY")
                ]
            return []
        return self.validate(pointer, body, request=False)

    def multipart_file_fields(self, op: Operation) -> frozenset[str]:
        """``files[n]`` field names the multipart schema of an operation declares (may be empty)."""
        cached = self._file_fields.get(op.operation_id)
        if cached is None:
            pointer = op.request_bodies.get("multipart/form-data")
            found = re.findall(r'"(files\[\d+\])"', json.dumps(self.resolve(pointer))) if pointer else []
            cached = self._file_fields[op.operation_id] = frozenset(found)
        return cached


def _coerce_query(raw: str, schema: JSON) -> JSON:
    types = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(types, str):
        types = [types]
    types = types or []
    if "boolean" in types:
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    if "integer" in types:
        try:
            return int(raw)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(raw)
        except ValueError:
            pass
    return raw


# ---------------------------------------------------------------------- error conversion

_TYPE_CODES = {
    "string": "STRING_TYPE_CONVERT",
    "integer": "NUMBER_TYPE_COERCE",
    "number": "NUMBER_TYPE_COERCE",
    "boolean": "BOOLEAN_TYPE_CONVERT",
    "object": "DICT_TYPE_CONVERT",
    "array": "LIST_TYPE_CONVERT",
}
_DISCRIMINATING = frozenset({"enum", "const", "type"})


def _code_for(error: ValidationError) -> str:
    v = error.validator
    if v in ("maxLength", "maxItems", "maxProperties"):
        return "BASE_TYPE_MAX_LENGTH"
    if v in ("minLength", "minItems", "minProperties"):
        return "BASE_TYPE_MIN_LENGTH"
    if v in ("enum", "const"):
        return "BASE_TYPE_CHOICES"
    if v == "required":
        return "BASE_TYPE_REQUIRED"
    if v == "pattern":
        return "NUMBER_TYPE_COERCE"
    if v in ("minimum", "exclusiveMinimum"):
        return "NUMBER_TYPE_MIN"
    if v in ("maximum", "exclusiveMaximum"):
        return "NUMBER_TYPE_MAX"
    if v == "type":
        expected = error.validator_value
        first = expected[0] if isinstance(expected, list) else expected
        return _TYPE_CODES.get(str(first), "BASE_TYPE_BAD_TYPE")
    if v == "uniqueItems":
        return "BASE_TYPE_DUPLICATE"
    return "BASE_TYPE_INVALID"


def _message_for(error: ValidationError) -> str:
    """Discord's wording for the common failures; jsonschema's message otherwise."""
    v, limit, value = error.validator, error.validator_value, error.instance
    if v in ("maxLength", "maxItems", "maxProperties"):
        return f"Must be {limit} or fewer in length."
    if v in ("minLength", "minItems", "minProperties"):
        return f"Must be {limit} or more in length."
    if v == "enum":
        return f"Value must be one of {tuple(limit)}."
    if v == "const":
        return f"Value must be {limit!r}."
    if v == "pattern" and limit == "^(0|[1-9][0-9]*)$":
        return f'Value "{value}" is not snowflake.'
    if v == "type":
        expected = " or ".join(limit) if isinstance(limit, list) else str(limit)
        return f'Could not interpret "{json.dumps(value)[:50]}" as {expected}.'
    if v == "minimum":
        return f"Value should be greater than or equal to {limit}."
    if v == "maximum":
        return f"Value should be less than or equal to {limit}."
    return str(error.message)


def _is_discriminator_failure(error: ValidationError) -> bool:
    rel = list(error.relative_path)
    return error.validator in _DISCRIMINATING and rel in ([], ["type"])


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Dig through anyOf/oneOf to the branch the instance was most likely meant for."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        yield error
        return
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    candidates = [errs for errs in branches.values() if not any(_is_discriminator_failure(e) for e in errs)]
    if len(candidates) < 1:
        yield error
        return
    best = min(candidates, key=len)
    for sub in best:
        yield from _leaves(sub)


def _convert(error: ValidationError) -> Iterable[SchemaError]:
    for leaf in _leaves(error):
        path = tuple(leaf.absolute_path)
        if leaf.validator == "required" and isinstance(leaf.instance, dict):
            for name in leaf.validator_value:
                if name not in leaf.instance:
                    yield SchemaError((*path, name), "This field is required", "BASE_TYPE_REQUIRED")
            continue
        yield SchemaError(path, _message_for(leaf), _code_for(leaf))


def discord_error_tree(errors: Iterable[SchemaError], prefix: tuple[PathPart, ...] = ()) -> dict[str, Any]:
    """Discord's nested ``errors`` object: ``{"content": {"_errors": [{"code", "message"}]}}``."""
    tree: dict[str, Any] = {}
    for err in errors:
        node = tree
        for part in (*prefix, *err.path):
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": err.code, "message": err.message})
    return tree


@functools.cache
def load_spec(path: str = str(SPEC_PATH)) -> DiscordSpec:
    """The process-wide parsed spec (parsing takes ~50 ms; do it once)."""
    with open(path, encoding="utf-8") as fh:
        return DiscordSpec(json.load(fh))
