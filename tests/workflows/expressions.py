"""A small evaluator for the GitHub Actions `if:` expressions the workflows use, so tests can ask which jobs
run for a given event: `==`, `!=`, `&&`, `||`, `!`, parentheses, 'string' literals, true/false and
context paths such as `github.event.pull_request.head.repo.full_name` (docs.github.com, "Evaluate
expressions in workflows and actions": string comparison ignores case; a missing property is null).
Raises ValueError on anything else, so a workflow using more than this fails the test loudly."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\s*(?:(==|!=|&&|\|\||!|\(|\))|'((?:[^']|'')*)'|(true|false|null)\b|([A-Za-z_][\w.-]*))")


def _tokens(text: str) -> list[tuple[str, Any]]:
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unsupported expression at {text[pos:]!r}")
        op, string, literal, path = match.groups()
        if op:
            tokens.append(("op", op))
        elif string is not None:
            tokens.append(("value", string.replace("''", "'")))
        elif literal:
            tokens.append(("value", {"true": True, "false": False, "null": None}[literal]))
        else:
            tokens.append(("path", path))
        pos = match.end()
    return tokens


def evaluate(expression: str, context: dict[str, Any]) -> bool:
    """Truthiness of `expression` with `context` (e.g. {"github": {...}}) for the context paths."""
    return bool(value(expression, context))


def interpolate(text: str, context: dict[str, Any]) -> str:
    """`text` with each `${{ expression }}` replaced by its value as a string (null as ''), as GitHub
    substitutes expressions in `env:` values and `with:` inputs."""
    def one(match: re.Match[str]) -> str:
        result = value(match.group(1), context)
        return "" if result is None else str(result).lower() if isinstance(result, bool) else str(result)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def value(expression: str, context: dict[str, Any]) -> Any:
    """The value of `expression` (a context path's value, a literal, or a comparison's boolean)."""
    tokens = _tokens(expression)
    position = 0

    def peek() -> tuple[str, Any] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary() -> Any:
        kind, value = take()
        if (kind, value) == ("op", "!"):
            return not primary()
        if (kind, value) == ("op", "("):
            result = disjunction()
            if take() != ("op", ")"):
                raise ValueError("missing )")
            return result
        if kind == "value":
            return value
        if kind == "path":
            node: Any = context
            for part in value.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            return node
        raise ValueError(f"unexpected {value!r}")

    def comparison() -> Any:
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            op = take()[1]
            right = primary()
            same = (left.lower() == right.lower()) if isinstance(left, str) and isinstance(right, str) \
                else left == right
            left = same if op == "==" else not same
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            left = left and right
        return left

    def disjunction() -> Any:
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left or right
        return left

    result = disjunction()
    if position != len(tokens):
        raise ValueError(f"trailing tokens in {expression!r}")
    return result
