#!/usr/bin/env python3
"""Checks every link of the README, the book (docs/src) and the construct's README: a file it
names exists (relative to the page), an anchor it names is a heading of that page (as GitHub and
mdBook make them), and every chapter is in the book's SUMMARY.md. A book page names a file outside
the book by its repository URL (REPO/blob/main/PATH: a relative one works on GitHub but not in the
built HTML), and that file must exist here. Exit 1 naming each broken one."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPO = "https://github.com/eddo-dev/eddo/"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(page: pathlib.Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"^#+ (.*)$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def main() -> int:
    pages = [ROOT / "README.md", ROOT / "infra/cdk/README.md", *sorted((ROOT / "docs/src").glob("*.md"))]
    broken = []
    for page in pages:
        text = FENCE.sub("", page.read_text())
        in_book = page.parent == ROOT / "docs/src"
        for target in LINK.findall(text):
            if target.startswith(REPO):
                m = re.match(r"(?:blob|tree)/main/([^#]+)", target[len(REPO):])
                if not m or not (ROOT / m[1]).exists():
                    broken.append(f"{page.relative_to(ROOT)}: {target}: no such file in the repository")
                continue
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if in_book and path and not dest.is_relative_to(ROOT / "docs/src"):
                broken.append(f"{page.relative_to(ROOT)}: {target}: outside the book; link {REPO}blob/main/...")
                continue
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    summary = (ROOT / "docs/src/SUMMARY.md").read_text()
    for chapter in sorted((ROOT / "docs/src").glob("*.md")):
        if chapter.name != "SUMMARY.md" and f"({chapter.name})" not in summary:
            broken.append(f"docs/src/{chapter.name}: not in SUMMARY.md")
    for b in broken:
        print(f"docs-check: {b}", file=sys.stderr)
    print(f"docs-check: {len(pages)} pages, {len(broken)} broken link(s)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
