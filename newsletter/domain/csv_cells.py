"""CSV injection: a spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage
return as a formula. Exports write such cells with a leading apostrophe (OWASP's advice),
and imports take it off again, so a round trip gives back what was stored."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralized(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def restored(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2].startswith(FORMULA_STARTS) else cell
