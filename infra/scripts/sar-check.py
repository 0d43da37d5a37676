#!/usr/bin/env python3
"""Checks template.yaml's AWS::ServerlessRepo::Application metadata as `sam publish` and the
Serverless Application Repository would: every field SAR requires, within its limits, the files it
uploads present, and the semantic version the workspace's (Cargo.toml), so a release publishes the
code it names. Exit 1 naming each mistake. It also says what the repository refuses that the
template holds (the webhook's function URL, today): the metadata can be right and the template
still not publishable (docs/src/deploying-sam.md)."""

import pathlib
import re
import sys

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main() -> int:
    template, matches = decode(str(ROOT / "template.yaml"))
    if matches:
        print(f"sar-check: template.yaml does not parse: {matches}", file=sys.stderr)
        return 1
    app = template.get("Metadata", {}).get("AWS::ServerlessRepo::Application")
    if not isinstance(app, dict):
        print("sar-check: template.yaml has no AWS::ServerlessRepo::Application metadata", file=sys.stderr)
        return 1
    mistakes = []
    for field in ("Name", "Description", "Author", "SemanticVersion", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SourceCodeUrl"):
        if not app.get(field):
            mistakes.append(f"{field} is missing")
    limits = {"Name": 140, "Description": 256, "Author": 127}
    for field, most in limits.items():
        if len(str(app.get(field, ""))) > most:
            mistakes.append(f"{field} is {len(str(app[field]))} characters; SAR allows {most}")
    if not re.fullmatch(r"[a-zA-Z0-9\-]+", str(app.get("Name", ""))):
        mistakes.append("Name: only letters, digits and hyphens")
    labels = app.get("Labels", [])
    if len(labels) > 10:
        mistakes.append(f"{len(labels)} labels; SAR allows 10")
    for label in labels:
        if not re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label):
            mistakes.append(f"label {label!r} is not one SAR accepts")
    for field in ("LicenseUrl", "ReadmeUrl"):
        if app.get(field) and not (ROOT / app[field]).is_file():
            mistakes.append(f"{field}: {app[field]} is not a file beside template.yaml")
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', cargo, re.M | re.S)
    if not version or app.get("SemanticVersion") != version[1]:
        mistakes.append(f"SemanticVersion {app.get('SemanticVersion')} is not the workspace's ({version[1] if version else 'none'})")
    for m in mistakes:
        print(f"sar-check: template.yaml: {m}", file=sys.stderr)
    refused = [name for name, r in template.get("Resources", {}).items()
               if r.get("Type") == "AWS::Lambda::Url" or "FunctionUrlConfig" in r.get("Properties", {})]
    if refused:
        print(f"sar-check: metadata {'has mistakes' if mistakes else 'valid'}; not publishable as it is: the "
              f"repository refuses function URLs ({', '.join(refused)}; docs/src/deploying-sam.md)")
    return 1 if mistakes else 0


if __name__ == "__main__":
    sys.exit(main())
