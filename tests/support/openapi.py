"""Hold real answers to exporter/openapi.json: status documented, media type, body schema."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from exporter.app import openapi_document

from .http import Reply


@cache
def document() -> dict[str, Any]:
    return json.loads(openapi_document())  # type: ignore[no-any-return]


def operation(method: str, path: str) -> dict[str, Any]:
    """The document's operation, or an assertion naming what is undocumented."""
    item = document()["paths"].get(path)
    assert item is not None, f"{path} is not in exporter/openapi.json"
    found = item.get(method.lower())
    assert found is not None, f"{method} {path} is not in exporter/openapi.json"
    return found  # type: ignore[no-any-return]


def assert_documented(method: str, path: str, reply: Reply) -> None:
    """The answer's status, Content-Type, headers and body are those the document promises."""
    where = f"{method} {path} -> {reply.status}"
    responses = operation(method, path)["responses"]
    documented = responses.get(str(reply.status))
    assert documented is not None, f"{where}: status not documented ({sorted(responses)})"
    for name, header in documented.get("headers", {}).items():
        header = _resolve(header)
        value = reply.headers.get(name.lower())
        if value is None and header.get("required") is False:
            continue  # a header the document calls optional (e.g. Idempotent-Replayed)
        assert value is not None, f"{where}: header {name} missing"
        _validate(header["schema"], value, f"{where}: header {name}")
    content = documented.get("content")
    if not content or method.upper() == "HEAD":
        assert not reply.body, f"{where}: a body where the document has none"
        return
    media_type = reply.headers.get("content-type", "").split(";", 1)[0].strip()
    assert media_type in content, f"{where}: Content-Type {media_type!r} not in {sorted(content)}"
    body: Any = reply.body.decode("utf-8")
    if media_type == "application/json":
        body = json.loads(body)
    _validate(content[media_type]["schema"], body, where)


def _resolve(item: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/components/...`)."""
    while "$ref" in item:
        target: Any = document()
        for part in item["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        item = target
    return item


def _validate(schema: dict[str, Any], value: Any, where: str) -> None:
    # $ref points into the document: validate with the document's components beside it.
    rooted = {**schema, "components": document()["components"]}
    try:
        jsonschema.Draft202012Validator(
            rooted, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(value)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{where}: {exc.message} at {list(exc.absolute_path)}") from None
