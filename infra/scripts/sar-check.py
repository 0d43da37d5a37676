#!/usr/bin/env python3
"""Checks template.yaml's AWS::ServerlessRepo::Application metadata as `sam publish` and the
Serverless Application Repository would: every field SAR requires, within its limits, the files it
uploads present, and the semantic version the workspace's (Cargo.toml), so a release publishes the
code it names. Exit 1 naming each mistake. It then says what stands between the template and the
repository, from the template as CloudFormation runs it (infra/local/translate.py): the types the
repository refuses (the webhook's function URL; aws/serverless-application-model#3402), and the
types its last published list (infra/sar/supported-resources.txt) does not hold, unconfirmed
rather than refused (docs/src/deploying-sam.md)."""

import json
import pathlib
import re
import subprocess
import sys

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
# What the repository refuses though CloudFormation takes it (aws/serverless-application-model#3402).
REFUSED = {"AWS::Lambda::Url"}


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
    translated = subprocess.run([sys.executable, str(ROOT / "infra/local/translate.py"), str(ROOT / "template.yaml")],
                                capture_output=True, text=True)
    if translated.returncode != 0:
        print(f"sar-check: template.yaml does not translate: {translated.stderr.strip()}", file=sys.stderr)
        return 1
    types = sorted({r["Type"] for r in json.loads(translated.stdout)["template"]["Resources"].values()})
    listed = {line.strip() for line in (ROOT / "infra/sar/supported-resources.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    refused = [t for t in types if t in REFUSED]
    unlisted = [t for t in types if t not in listed and t not in REFUSED]
    print(f"sar-check: metadata {'has mistakes' if mistakes else 'valid'}; {len(types)} resource types after the transform")
    if refused:
        print(f"sar-check: refused by the repository: {', '.join(refused)}: not publishable as it is")
    if unlisted:
        print(f"sar-check: not on its last published list (unconfirmed): {', '.join(unlisted)}")
    return 1 if mistakes else 0


if __name__ == "__main__":
    sys.exit(main())
