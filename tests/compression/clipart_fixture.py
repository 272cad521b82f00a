"""Fixture drawings in the Debian clip art layout (svg/ + png/ with the same relative paths)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

SVG = """<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:cc="http://web.resource.org/cc/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:title>{title}</dc:title>
    <dc:description>{description}</dc:description>
    <dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>
    <dc:publisher><cc:Agent><dc:title>Open Clip Art Library</dc:title></cc:Agent></dc:publisher>
    <dc:creator><cc:Agent><dc:title>{creator}</dc:title></cc:Agent></dc:creator>
  </cc:Work></rdf:RDF></metadata>
</svg>"""


def write_drawing(root: Path, key: str, title: str = "", subjects=(), creator: str = "Ann Author",
                  description: str = "", colour=(200, 30, 30), size: int = 8) -> Path:
    """Writes one drawing (a plain square of ``colour``) and returns its PNG path."""
    svg, png = root / "svg" / f"{key}.svg", root / "png" / f"{key}.png"
    svg.parent.mkdir(parents=True, exist_ok=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    lis = "".join(f"<rdf:li>{s}</rdf:li>" for s in subjects)
    svg.write_text(SVG.format(title=title, description=description, subjects=lis, creator=creator))
    Image.new("RGBA", (size, size), (*colour, 255)).save(png)
    return png
