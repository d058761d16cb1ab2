"""Validates JSON documents against a JSON Schema with the `jsonschema` package.

Usage: validate_schema.py SCHEMA.json DOC.json...
Prints one line per document: `ok PATH` or `invalid PATH: message`.
"""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path))), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        print(f"invalid {path}: {where}: {errors[0].message}")
    else:
        print(f"ok {path}")
