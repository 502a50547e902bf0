"""Built-in demo data: five real COCOA annotations with their COCO images (see ``cocoa/PROVENANCE.md``)."""

from pathlib import Path

#: Folder of the demo files: ``COCOA_demo.json`` (release layout), ``{1..5}.json`` and ``{1..5}.jpg``.
COCOA_DEMO_DIR = Path(__file__).parent / "cocoa"
#: The five annotations assembled into the release's ``{"images": [...], "annotations": [...]}`` layout.
COCOA_DEMO_JSON = COCOA_DEMO_DIR / "COCOA_demo.json"
