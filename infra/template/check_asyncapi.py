"""Static check of docs/asyncapi.yaml (infra/template/check.sh), offline.

- the YAML parses and declares AsyncAPI 3.x;
- the messages (components, the channel's and the operation's) are exactly the four event
  types of shared/src/domain/event.rs, each named after its type;
- every message payload is a valid JSON Schema (the Draft 7 metaschema: AsyncAPI's default
  schema format is a superset of Draft 7), is closed (`additionalProperties: false`, on the
  CloudEvent and on its `data`) and requires every property it lists;
- every message example is valid against its payload, and the same example with a field
  missing, or an unknown field in `data`, is not.

Usage: python check_asyncapi.py docs/asyncapi.yaml
"""

import copy
import re
import sys

import jsonschema
import yaml

EVENT_TYPES = {
    "contact.migrated.v1",
    "account.closed.v1",
    "contact.changed.v1",
    "migration.locked.v1",
}
ENVELOPE = {
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "sequence",
    "datacontenttype",
    "data",
}


DOCUMENT = "docs/asyncapi.yaml"


def fail(message):
    print(f"{DOCUMENT}: {message}", file=sys.stderr)
    sys.exit(1)


def validator(schema):
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def check_closed(name, where, schema):
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        fail(f"{name}: {where} must be an object with additionalProperties: false")
    listed = set(schema.get("properties", {}))
    required = set(schema.get("required", []))
    if listed != required:
        differ = sorted(listed ^ required)
        fail(f"{name}: {where} must require exactly its properties; differ: {differ}")


def check_message(key, message):
    if message.get("name") != key:
        fail(f"message {key}: its name is {message.get('name')!r}, not its type")
    payload = message.get("payload")
    if not isinstance(payload, dict):
        fail(f"message {key}: no payload schema")
    try:
        jsonschema.Draft7Validator.check_schema(payload)
    except jsonschema.SchemaError as e:
        fail(f"message {key}: the payload is not a valid JSON Schema: {e.message}")
    check_closed(key, "the payload", payload)
    if set(payload["properties"]) != ENVELOPE:
        fail(f"message {key}: the CloudEvent attributes are {sorted(payload['properties'])}")
    check_closed(key, "data", payload["properties"]["data"])
    constants = {
        "specversion": "1.0",
        "source": "contact-migration",
        "type": key,
        "datacontenttype": "application/json",
    }
    for attribute, value in constants.items():
        if payload["properties"][attribute].get("const") != value:
            fail(f"message {key}: {attribute} must be the constant {value!r}")
    if payload["properties"]["sequence"].get("pattern") != "^[0-9]{12}$":
        fail(f"message {key}: sequence must be 12 digits")
    if payload["properties"]["time"].get("format") != "date-time":
        fail(f"message {key}: time must be a date-time")

    examples = message.get("examples") or []
    if not examples:
        fail(f"message {key}: no example")
    check = validator(payload)
    for example in examples:
        event = example.get("payload")
        errors = [e.message for e in check.iter_errors(event)]
        if errors:
            fail(f"message {key}: example {example.get('name')!r} is invalid: {errors}")
        # The schema must be able to refuse: a missing attribute, a missing data field, an
        # unknown data field, a malformed sequence.
        broken = []
        for attribute in sorted(ENVELOPE):
            without = copy.deepcopy(event)
            del without[attribute]
            broken.append((f"without {attribute}", without))
        for field in sorted(event["data"]):
            without = copy.deepcopy(event)
            del without["data"][field]
            broken.append((f"without data.{field}", without))
        extra = copy.deepcopy(event)
        extra["data"]["email"] = "someone@example.com"
        broken.append(("with data.email", extra))
        short = copy.deepcopy(event)
        short["sequence"] = "3"
        broken.append(("with sequence 3", short))
        for what, event in broken:
            if check.is_valid(event):
                fail(f"message {key}: the example {what} is accepted")


def main(path):
    global DOCUMENT
    DOCUMENT = path
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            fail(f"not YAML: {e}")
    if not isinstance(doc, dict) or not re.fullmatch(r"3\.\d+\.\d+", str(doc.get("asyncapi", ""))):
        fail(f"asyncapi must be 3.x.y, is {doc.get('asyncapi')!r}")
    for field in ("info", "servers", "channels", "operations", "components"):
        if field not in doc:
            fail(f"no {field}")

    messages = doc["components"].get("messages", {})
    if set(messages) != EVENT_TYPES:
        fail(f"the messages are {sorted(messages)}, not the event types {sorted(EVENT_TYPES)}")
    for key, message in messages.items():
        check_message(key, message)

    # The channel and the operation publish exactly these messages, by reference.
    for name, channel in doc["channels"].items():
        refs = {m.get("$ref") for m in channel.get("messages", {}).values()}
        if refs != {f"#/components/messages/{t}" for t in EVENT_TYPES}:
            fail(f"channel {name} does not carry exactly the four messages: {sorted(refs)}")
        for server in channel.get("servers", []):
            target = server.get("$ref", "").removeprefix("#/servers/")
            if target not in doc["servers"]:
                fail(f"channel {name} names an unknown server {server}")
    for name, operation in doc["operations"].items():
        channel = operation.get("channel", {}).get("$ref", "").removeprefix("#/channels/")
        if channel not in doc["channels"]:
            fail(f"operation {name} names an unknown channel")
        refs = {m.get("$ref") for m in operation.get("messages", [])}
        want = {f"#/channels/{channel}/messages/{t}" for t in EVENT_TYPES}
        if refs != want:
            fail(f"operation {name} does not send exactly the four messages: {sorted(refs)}")
    print(f"{path}: AsyncAPI {doc['asyncapi']}, messages {', '.join(sorted(messages))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DOCUMENT)
