"""One guard for every request: text with control characters or lone surrogates is refused.

PostgreSQL cannot store NUL in text and a lone surrogate cannot be encoded as UTF-8, so such
input would otherwise fail deep in a query as a 500. Checking once here covers every field of
every endpoint, present and future; schemas need not each remember it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Flask, request

from volunteer_hub.errors import ValidationFailed

# Tab, line feed and carriage return are ordinary in descriptions; the rest of C0, DEL and
# lone UTF-16 surrogates are not text a person typed.
_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_MESSAGE = "Remove control characters (such as NUL) and invalid Unicode from this value."


def _bad_strings(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if _BAD.search(value):
            yield path or "_body"
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if _BAD.search(str(key)):
                yield name
            yield from _bad_strings(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_strings(item, f"{path}[{index}]")


def check_request_text() -> None:
    """:raise ValidationFailed: naming every field that holds such characters."""
    fields: list[str] = []
    for key, values in request.args.lists():
        fields.extend(f"{key}" for value in values if _BAD.search(value) or _BAD.search(key))
    for key, value in (request.view_args or {}).items():
        fields.extend(_bad_strings(value, key))
    if request.is_json:
        fields.extend(_bad_strings(request.get_json(silent=True), ""))
    if fields:
        raise ValidationFailed(
            "Some fields hold characters that are not text: " + ", ".join(sorted(set(fields))),
            errors={field: [_MESSAGE] for field in sorted(set(fields))},
        )


def init_text_guard(app: Flask) -> None:
    app.before_request(check_request_text)
