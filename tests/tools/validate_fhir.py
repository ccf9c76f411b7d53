"""Validates FHIR R4 resources with two independent checkers: the HL7 R4 JSON schema and the
`fhir.resources` 6.4.0 R4 models (pydantic, extra elements forbidden). Reads one JSON resource per line (NDJSON) from the file named
on the command line; Bundles are checked whole and entry by entry. Prints one line per problem
and exits 1 if there is any; prints how many resources were checked otherwise."""

import importlib
import json
import sys
from pathlib import Path

import jsonschema

schema = json.loads((Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "fhir.schema.json").read_text())
validators = {}


def allow_401(node):
    """The schema in the npm package is R4's 4.0.0 release, whose version enum predates the 4.0.1
    technical correction; accept "4.0.1" wherever "4.0.0" is accepted, and change nothing else."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "4.0.0" in enum and "4.0.1" not in enum:
            enum.append("4.0.1")
        for v in node.values():
            allow_401(v)
    elif isinstance(node, list):
        for v in node:
            allow_401(v)


allow_401(schema)


def schema_for(resource_type):
    if resource_type not in validators:
        one = {"$ref": f"#/definitions/{resource_type}", "definitions": schema["definitions"]}
        validators[resource_type] = jsonschema.Draft6Validator(one)
    return validators[resource_type]


def check(resource, where, problems):
    rt = resource.get("resourceType")
    if rt not in schema["definitions"]:
        problems.append(f"{where}: unknown resourceType {rt!r}")
        return 0
    for err in schema_for(rt).iter_errors(resource):
        path = "/".join(str(p) for p in err.absolute_path)
        problems.append(f"{where} {rt} schema: {path}: {err.message[:200]}")
    try:
        model = getattr(importlib.import_module(f"fhir.resources.{rt.lower()}"), rt)
        model.parse_obj(resource)
    except Exception as exc:  # pydantic's ValidationError and friends
        problems.append(f"{where} {rt} model: {str(exc)[:400]}")
    count = 1
    if rt == "Bundle":
        for i, entry in enumerate(resource.get("entry", [])):
            if "resource" in entry:
                count += check(entry["resource"], f"{where}.entry[{i}]", problems)
    return count


def main():
    problems = []
    checked = 0
    for n, line in enumerate(Path(sys.argv[1]).read_text().splitlines(), 1):
        if line.strip():
            checked += check(json.loads(line), f"line {n}", problems)
    for p in problems:
        print(p)
    print(f"checked {checked} resources, {len(problems)} problems")
    sys.exit(1 if problems else 0)


main()
