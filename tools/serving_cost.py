"""VM list prices from docs/deploy.md's price table (the one source of prices for the docs' cost figures).

    from tools.serving_cost import vm_prices
"""

from __future__ import annotations

import re

_PRICE_ROW = re.compile(
    r"^\| (Standard_\S+(?: / \S+)*) \| (\$[\d.]+(?: / \$[\d.]+)*) per hour \|$", re.MULTILINE
)


def vm_prices(deploy_md: str) -> dict[str, float]:
    """USD per hour by VM size from the rows `| Standard_A / B ... | $a / $b ... per hour |` of deploy_md's
    price table (after its `<!-- price-table` marker); a short name (`D4ds_v5`) means `Standard_D4ds_v5`.
    Raises ValueError when the table has no such row or a row's names and prices differ in number."""
    table = deploy_md[deploy_md.index("<!-- price-table") :]
    prices: dict[str, float] = {}
    for row in _PRICE_ROW.finditer(table):
        names = [n if n.startswith("Standard_") else f"Standard_{n}" for n in row.group(1).split(" / ")]
        values = [float(p.strip("$")) for p in row.group(2).split(" / ")]
        if len(names) != len(values):
            raise ValueError(f"price table row {row.group(0)!r}: {len(names)} sizes, {len(values)} prices")
        prices.update(zip(names, values, strict=True))
    if not prices:
        raise ValueError("docs/deploy.md: no `| Standard_... | $... per hour |` row in the price table")
    return prices
