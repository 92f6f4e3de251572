"""Validating ``[[ops]]``: the method, its fields, and what a right answer looks like."""

from __future__ import annotations

import re
from typing import Any

from loadtest.scenario.fields import (
    _bool,
    _check_keys,
    _Context,
    _did_you_mean,
    _got,
    _int,
    _jsonable,
    _number,
    _string,
    _table,
)
from loadtest.scenario.op import EXPECT_KINDS, LIST_KEYS, METHODS, TEXT_METHODS, Expect, Op

_BLOB_URI = re.compile(r"blob://\d+(?:/\d+)?")
_SAMPLE_NONCE = "nonce-000000-0000000000"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_OP_KEYS = (
    "name",
    "method",
    "tool",
    "arguments",
    "uri",
    "prompt",
    "weight",
    "progress",
    "expect_progress",
    "expect",
    "check_foreign_nonces",
)
_LIST_CHECKS = ("min_items", "max_items", *LIST_KEYS.values())
_EXPECT_KEYS = (*EXPECT_KINDS, "is_error", *_LIST_CHECKS)
#: What every answer can be checked for; text checks need an answer that carries text.
_ANY_RESULT = ("json", "consistent")
#: Which of tool/uri/prompt/arguments each method takes (and requires, for the first three).
_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "tools/call": ("tool", "arguments", "progress", "expect_progress"),
    "resources/read": ("uri",),
    "prompts/get": ("prompt", "arguments"),
    "tools/list": (),
    "prompts/list": (),
    "resources/list": (),
    "ping": (),
}
_METHOD_REQUIRES = {"tools/call": "tool", "resources/read": "uri", "prompts/get": "prompt"}


def validate_ops(ctx: _Context, raw: Any) -> tuple[Op, ...]:
    if isinstance(raw, dict):
        ctx.fail("ops", "expected an array of tables ([[ops]]), got a table ([ops])")
    if not isinstance(raw, list) or not raw:
        ctx.fail("ops", f"expected a non-empty array of tables ([[ops]]), got {_got(raw)}")
    ops: list[Op] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        op = _op(ctx, item, f"ops[{i}]")
        if op.name in seen:
            ctx.fail(
                f"ops[{i}].name",
                f"{op.name!r} is also the name of ops[{seen[op.name]}]; give each op a distinct name",
            )
        seen[op.name] = i
        ops.append(op)
    return tuple(ops)


def _op(ctx: _Context, raw: Any, where: str) -> Op:
    table = _table(ctx, raw, where)
    _check_keys(ctx, table, _OP_KEYS, f"{where}.")
    if "method" in table:
        method = table["method"]
        if method not in METHODS:
            hint = _did_you_mean(method, METHODS)
            ctx.fail(f"{where}.method", f"expected one of {', '.join(METHODS)}, got {_got(method)}{hint}")
    else:
        # `tool = "echo"` alone says tools/call; no need to repeat it.
        implied = [m for m, k in _METHOD_REQUIRES.items() if k in table]
        if len(implied) != 1:
            ctx.fail(f"{where}.method", f"missing; expected one of {', '.join(METHODS)}")
        method = implied[0]
    allowed = _METHOD_FIELDS[method]
    for key in ("tool", "uri", "prompt", "arguments", "progress", "expect_progress"):
        if key in table and key not in allowed:
            ctx.fail(f"{where}.{key}", f"not used by {method}")
    required = _METHOD_REQUIRES.get(method)
    if required is not None and required not in table:
        ctx.fail(f"{where}.{required}", f"missing; {method} needs a {required}")

    tool = _string(ctx, table["tool"], f"{where}.tool") if "tool" in table else None
    uri = _string(ctx, table["uri"], f"{where}.uri") if "uri" in table else None
    prompt = _string(ctx, table["prompt"], f"{where}.prompt") if "prompt" in table else None
    arguments: dict[str, Any] | None = None
    if "arguments" in table:
        arguments = _table(ctx, table["arguments"], f"{where}.arguments")
        _jsonable(ctx, arguments, f"{where}.arguments")
        if method == "prompts/get":
            for name, value in arguments.items():
                _string(ctx, value, f"{where}.arguments.{name}", empty=True)

    if "name" in table:
        name = _string(ctx, table["name"], f"{where}.name")
    elif tool is not None:
        name = tool
    elif uri is not None:
        name = "read:" + (uri.split(":", 1)[0] if ":" in uri else uri)
    elif prompt is not None:
        name = prompt
    else:
        name = method

    weight = _number(ctx, table.get("weight", 1), f"{where}.weight", positive=True)
    progress = _bool(ctx, table.get("progress", False), f"{where}.progress")
    expect_progress = _int(ctx, table.get("expect_progress", 0), f"{where}.expect_progress")
    if expect_progress and not progress:
        ctx.fail(f"{where}.expect_progress", "needs progress = true (no progress token, no notifications)")
    expect = _expect(ctx, table.get("expect", {}), f"{where}.expect", method, arguments, uri)
    check_foreign_nonces: bool | None = None
    if "check_foreign_nonces" in table:
        check_foreign_nonces = _bool(ctx, table["check_foreign_nonces"], f"{where}.check_foreign_nonces")
    return Op(
        name=name,
        method=method,
        tool=tool,
        uri=uri,
        prompt=prompt,
        arguments=arguments,
        weight=weight,
        progress=progress,
        expect_progress=expect_progress,
        expect=expect,
        check_foreign_nonces=check_foreign_nonces,
    )


def _expect(
    ctx: _Context, raw: Any, where: str, method: str, arguments: dict[str, Any] | None, uri: str | None
) -> Expect:
    table = _table(ctx, raw, where)
    _check_keys(ctx, table, _EXPECT_KEYS, f"{where}.")
    kinds = [k for k in EXPECT_KINDS if k in table and table[k] is not False]
    if len(kinds) > 1:
        ctx.fail(
            f"{where}.{kinds[1]}",
            f"give at most one of {', '.join(EXPECT_KINDS)}; {kinds[0]} is already set",
        )
    if method not in TEXT_METHODS and kinds and kinds[0] not in _ANY_RESULT:
        ctx.fail(
            f"{where}.{kinds[0]}",
            f"{method} answers carry no text to check; use json (a subset of the result)"
            + (", min_items, max_items or " + LIST_KEYS[method] if method in LIST_KEYS else "")
            + " or consistent",
        )
    fields: dict[str, Any] = {}
    if "is_error" in table:
        fields["is_error"] = _bool(ctx, table["is_error"], f"{where}.is_error")
        if fields["is_error"] and method != "tools/call":
            ctx.fail(f"{where}.is_error", "only tools/call results carry isError")
    for kind in EXPECT_KINDS:
        if kind not in table:
            continue
        key = f"{where}.{kind}"
        value = table[kind]
        if kind == "text":
            fields[kind] = _string(ctx, value, key, empty=True)
        elif kind == "regex":
            pattern = _string(ctx, value, key, empty=True)
            try:
                fields[kind] = re.compile(pattern)
                # As it will be per request, with a nonce and a seed filled in.
                re.compile(pattern.replace("{nonce}", re.escape(_SAMPLE_NONCE)).replace("{seed}", "0"))
            except re.error as exc:
                ctx.fail(key, f"invalid regular expression {pattern!r}: {exc}")
        elif kind == "length":
            fields[kind] = _int(ctx, value, key)
        elif kind == "sha256":
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                ctx.fail(key, f"expected 64 hex digits, got {_got(value)}")
            fields[kind] = value.lower()
        elif kind == "json":
            fields[kind] = _table(ctx, value, key)
            _jsonable(ctx, value, key)
        else:
            fields[kind] = _bool(ctx, value, key)
    if fields.get("blob"):
        _check_blob(ctx, f"{where}.blob", method, arguments, uri)
    fields.update(_list_checks(ctx, table, where, method))
    return Expect(**fields)


def _list_checks(ctx: _Context, table: dict[str, Any], where: str, method: str) -> dict[str, Any]:
    """``min_items``, ``max_items`` and the names a listing must hold."""
    given = [key for key in _LIST_CHECKS if key in table]
    if not given:
        return {}
    list_key = LIST_KEYS.get(method)
    for key in given:
        if list_key is None:
            listings = ", ".join(LIST_KEYS)
            ctx.fail(f"{where}.{key}", f"applies to listings ({listings}), not to {method}")
        if key in LIST_KEYS.values() and key != list_key:
            ctx.fail(f"{where}.{key}", f"{method} lists {list_key}; expected {list_key} = [...]")
    fields: dict[str, Any] = {}
    for key in ("min_items", "max_items"):
        if key in table:
            fields[key] = _int(ctx, table[key], f"{where}.{key}")
    if fields.get("min_items", 0) > fields.get("max_items", fields.get("min_items", 0)):
        ctx.fail(f"{where}.max_items", f"{fields['max_items']} is below min_items = {fields['min_items']}")
    assert list_key is not None
    if list_key in table:
        key = f"{where}.{list_key}"
        raw = table[list_key]
        if not isinstance(raw, list):
            ctx.fail(key, f'expected an array of names like ["echo", "add"], got {_got(raw)}')
        fields["names"] = tuple(_string(ctx, name, f"{key}[{i}]") for i, name in enumerate(raw))
    return fields


def _check_blob(
    ctx: _Context, key: str, method: str, arguments: dict[str, Any] | None, uri: str | None
) -> None:
    """The checker derives size and seed from the request; make sure it will be able to."""
    if method == "resources/read":
        assert uri is not None
        if not _BLOB_URI.fullmatch(uri.replace("{seed}", "0")):
            ctx.fail(key, f"needs a uri like 'blob://65536/{{seed}}' (size, then a seed), got {uri!r}")
        return
    if method != "tools/call":
        ctx.fail(key, "applies to tools/call (arguments n_bytes, seed) or resources/read (uri blob://N/SEED)")
    args = arguments or {}
    n_bytes = args.get("n_bytes")
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        ctx.fail(
            key,
            f"needs arguments.n_bytes, a whole number of bytes; got {_got(n_bytes) if n_bytes is not None else 'none'}",
        )
    seed = args.get("seed", 0)
    if not (seed == "{seed}" or (isinstance(seed, int) and not isinstance(seed, bool))):
        ctx.fail(key, f'needs arguments.seed to be a whole number or "{{seed}}"; got {_got(seed)}')
