"""QR codes of enrollment codes, for a terminal and as SVG (segno: maintained, pure Python)."""

from __future__ import annotations

import io

import segno


def _make(text: str) -> segno.QRCode:
    # Never a Micro QR: phone cameras and the Expo scanner read only full QR codes.
    return segno.make(text, error="m", micro=False)


def terminal(text: str) -> str:
    """Half-block characters, two modules per character row: fits an 80x24 terminal."""
    out = io.StringIO()
    _make(text).terminal(out=out, compact=True)
    return out.getvalue()


def svg(text: str, scale: int = 8) -> str:
    """A standalone SVG document (with its XML declaration), to print or show on a page."""
    out = io.BytesIO()
    _make(text).save(out, kind="svg", scale=scale, title=f"Enrollment code {text}")
    return out.getvalue().decode("utf-8")
