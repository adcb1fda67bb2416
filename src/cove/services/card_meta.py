"""README card metadata: the YAML header read with limits, then checked against the Hub's known fields.

`read_card` never raises on user input: it answers the metadata that is valid (JSON-safe, within the limits)
and the list of errors, in the Hub's wording (`"pipeline_tag" must be a string`). The commit API refuses a
README with errors up front (400 "Invalid metadata in README.md", as huggingface.co does); a `git push`
lands, and the index keeps the valid fields while the repo page shows the errors.

The YAML is parsed by PyYAML's safe loader, with caps on what it composes: the aliases (``*a``), the depth,
and the size of the document once every alias is expanded (nodes and scalar characters). A few hundred bytes
of nested aliases ("billion laughs") or a self-referencing anchor are errors, not megabytes of JSON.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.cyaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from cove.errors import BadRequest
from cove.services.card_vocab import EMPTY_METADATA_WARNING, LICENSES, PIPELINE_TAGS

#: The YAML header may be at most this many characters.
MAX_YAML_CHARS = 1_000_000
#: At most this many alias nodes (``*name``) in one header.
MAX_ALIASES = 100
#: Nesting depth of sequences and mappings.
MAX_DEPTH = 64
#: Values (nodes) of the header, counting what aliases repeat.
MAX_NODES = 1_000_000
#: What expanding the aliases may add to the header: values, and characters of scalars.
MAX_ALIAS_NODES = 10_000
MAX_ALIAS_CHARS = 100_000

#: huggingface_hub's own split of a card into its YAML block and the markdown (`repocard.REGEX_YAML_BLOCK`).
YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


class CardYAMLError(yaml.YAMLError):
    """The header is beyond one of the limits."""


class _LimitedComposer(Composer):
    """PyYAML's composer, counting as it goes: aliases, depth, and the document's size with aliases expanded.

    Each node's expanded size is the sum of its children's, so the count costs one pass over the composed
    nodes however large the expansion would be; a self-referencing anchor is found as an alias to a node
    that is still being composed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._aliases = self._depth = self._nodes = self._chars = 0
        # id(node) → (values, characters) with aliases expanded; a node still being composed has no entry.
        self._weights: dict[int, tuple[int, int]] = {}
        self._keep: list[yaml.Node] = []  # keeps the ids above unique while the document is composed

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise CardYAMLError(f"too many YAML aliases (more than {MAX_ALIASES})")
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:
                raise CardYAMLError("a YAML alias refers to the node that contains it (recursive anchor)")
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise CardYAMLError(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            weight = (1, len(node.value))
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            weight = (1 + sum(self._weights[id(c)][0] for c in children),
                      sum(self._weights[id(c)][1] for c in children))
        self._nodes += 1
        self._chars += weight[1] if isinstance(node, yaml.ScalarNode) else 0
        # A subtree without aliases weighs at most what has been composed so far; the rest is expansion.
        if weight[0] > MAX_NODES or weight[0] - self._nodes > MAX_ALIAS_NODES or \
                weight[1] - self._chars > MAX_ALIAS_CHARS:
            raise CardYAMLError("the YAML is too large once its aliases are expanded")
        self._weights[id(node)] = weight
        self._keep.append(node)
        return node


if yaml.__with_libyaml__:  # libyaml's parser (as in CSafeLoader), the Python composer above

    class LimitedLoader(_LimitedComposer, yaml.cyaml.CParser, SafeConstructor, Resolver):
        """`yaml.CSafeLoader` with `_LimitedComposer`."""

        def __init__(self, stream: str) -> None:
            yaml.cyaml.CParser.__init__(self, stream)
            _LimitedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class LimitedLoader(Reader, Scanner, Parser, _LimitedComposer, SafeConstructor, Resolver):  # type: ignore[no-redef]
        """`yaml.SafeLoader` with `_LimitedComposer`."""

        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _LimitedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def load_yaml(text: str) -> Any:
    """One YAML document through `LimitedLoader` (raises `yaml.YAMLError` on bad or oversized input)."""
    if len(text) > MAX_YAML_CHARS:
        raise CardYAMLError(f"the YAML metadata is larger than {MAX_YAML_CHARS} characters")
    loader = LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


# -- the known fields ----------------------------------------------------------------------------

_STR = "a string"
_STRS = "a string or a list of strings"
Str = StrictStr | None
StrList = StrictStr | list[StrictStr] | None


def _f(description: str, alias: str | None = None) -> Any:
    return Field(None, description=description, alias=alias)


class CardMetadata(BaseModel):
    """The card fields the Hub (and Cove's index) read, with their types; other keys are free-form."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    # models
    license: StrList = _f(_STRS)
    license_name: Str = _f(_STR)
    license_link: Str = _f(_STR)
    language: StrList = _f(_STRS)
    library_name: Str = _f(_STR)
    pipeline_tag: Str = _f(_STR)
    tags: StrList = _f(_STRS)
    datasets: StrList = _f(_STRS)
    metrics: StrList = _f(_STRS)
    base_model: StrList = _f(_STRS)
    base_model_relation: Str = _f(_STR)
    new_version: Str = _f(_STR)
    thumbnail: Str = _f(_STR)
    model_index: list[dict[str, Any]] | None = _f("an array of objects", alias="model-index")
    widget: list[Any] | None = _f("an array")
    inference: StrictBool | dict[str, Any] | None = _f("a boolean or an object")
    # datasets
    pretty_name: Str = _f(_STR)
    task_categories: StrList = _f(_STRS)
    task_ids: StrList = _f(_STRS)
    size_categories: StrList = _f(_STRS)
    multilinguality: StrList = _f(_STRS)
    annotations_creators: StrList = _f(_STRS)
    language_creators: StrList = _f(_STRS)
    source_datasets: StrList = _f(_STRS)
    paperswithcode_id: Str = _f(_STR)
    configs: list[Any] | None = _f("an array")
    dataset_info: dict[str, Any] | list[Any] | None = _f("an object or an array")
    viewer: StrictBool | None = _f("a boolean")
    # spaces
    title: Str = _f(_STR)
    emoji: Str = _f(_STR)
    colorFrom: Str = _f(_STR)  # noqa: N815 - the Hub's key
    colorTo: Str = _f(_STR)  # noqa: N815
    sdk: Str = _f(_STR)
    sdk_version: StrictStr | StrictInt | StrictFloat | None = _f("a version string")
    python_version: StrictStr | StrictInt | StrictFloat | None = _f("a version string")
    app_file: Str = _f(_STR)
    app_port: StrictInt | None = _f("an integer")
    short_description: Str = _f(_STR)
    pinned: StrictBool | None = _f("a boolean")
    models: StrList = _f(_STRS)


_FIELDS = {(f.alias or name): f for name, f in CardMetadata.model_fields.items()}


def _type_errors(meta: dict[str, Any]) -> dict[str, str]:
    """{top-level key: message} for the known fields whose value has the wrong type."""
    try:
        CardMetadata.model_validate(meta)
    except ValidationError as exc:
        out: dict[str, str] = {}
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            spec = _FIELDS.get(key)
            if spec is not None:
                out.setdefault(key, f'"{key}" must be {spec.description}')
        return out
    return {}


def _model_index_errors(mi: list[dict[str, Any]]) -> list[str]:
    errs: list[str] = []
    for i, item in enumerate(mi):
        if "name" not in item:
            errs.append(f'"model-index[{i}].name" is required')
        results = item.get("results") or []
        if not isinstance(results, list):
            errs.append(f'"model-index[{i}].results" must be an array')
            continue
        for j, res in enumerate(results):
            where = f"model-index[{i}].results[{j}]"
            if not isinstance(res, dict) or not isinstance(res.get("task"), dict) or "type" not in res["task"]:
                errs.append(f'"{where}.task.type" is required')
                continue
            metrics = res.get("metrics") or []
            if not isinstance(metrics, list):
                errs.append(f'"{where}.metrics" must be an array')
                continue
            for k, m in enumerate(metrics):
                if not isinstance(m, dict) or "type" not in m or "value" not in m:
                    errs.append(f'"{where}.metrics[{k}].type" and ".value" are required')
    return errs


class _Unsupported(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f'"{where}" {what}')


def _key(k: object) -> str | None:
    """A mapping key as JSON would write it (YAML allows numbers, booleans, null); None if it has no such form."""
    if isinstance(k, bool) or k is None:
        return {True: "true", False: "false", None: "null"}[k]
    if isinstance(k, str) or (isinstance(k, (int, float)) and math.isfinite(k)):
        return str(k)
    return None


def _json_safe(value: Any, where: str) -> Any:
    """The value as JSON types (dates become ISO strings); sets, bytes, NaN... raise `_Unsupported`."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unsupported(where, "must be a finite number")
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _key(k)
            if key is None:
                raise _Unsupported(where, "has a key that is not a string")
            out[key] = _json_safe(v, f"{where}.{key}")
        return out
    kind = {set: "a set", frozenset: "a set", bytes: "binary data"}.get(type(value), type(value).__name__)
    raise _Unsupported(where, f"holds {kind}, which card metadata cannot hold")


@dataclass
class CardRead:
    """A card split and checked: the valid metadata, the markdown body, the errors (Hub wording)."""

    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_LICENSES_LOWER = {x.casefold() for x in LICENSES}


def _value_errors(meta: dict[str, Any]) -> dict[str, str]:
    """{key: message} for the fields whose values the Hub does not know (license ids, pipeline tags)."""
    out: dict[str, str] = {}
    licenses = meta.get("license")
    for lic in [licenses] if isinstance(licenses, str) else licenses or []:
        if lic.casefold() not in _LICENSES_LOWER:
            out["license"] = (f'"license" must be a license id the Hub knows (apache-2.0, mit, cc-by-4.0, ...: '
                              f'https://huggingface.co/docs/hub/repositories-licenses), or "other" with '
                              f'license_name and license_link; {lic[:100]!r} is not one')
            break
    tag = meta.get("pipeline_tag")
    if isinstance(tag, str) and tag not in PIPELINE_TAGS:
        out["pipeline_tag"] = (f'"pipeline_tag" must be one of the Hub\'s tasks (text-generation, '
                               f'text-classification, ...); {tag[:100]!r} is not one')
    return out


def validate_metadata(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """(the valid top-level fields as JSON, the errors); a field with any error is left out whole."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, ["The YAML metadata must be a mapping (key: value pairs)"]
    errors: list[str] = []
    named: dict[str, Any] = {}
    for key, value in raw.items():
        name = _key(key)
        if name is None:
            errors.append(f"A metadata key is not a string: {_one_line(Exception(repr(key)))[:80]}")
        elif value is not None:
            named[name] = value
    bad = _type_errors(named)  # on the values as YAML gave them: a date is not a string
    errors += bad.values()
    clean: dict[str, Any] = {}
    for name, value in named.items():
        if name in bad:
            continue
        try:
            clean[name] = _json_safe(value, name)
        except _Unsupported as exc:
            errors.append(str(exc))
    for name, problem in _value_errors(clean).items():
        errors.append(problem)
        clean.pop(name)
    if "model-index" in clean:
        mi_errors = _model_index_errors(clean["model-index"])
        if mi_errors:
            errors += mi_errors
            clean.pop("model-index")
    return clean, errors


def read_card(text: str) -> CardRead:
    """Split a README into its YAML header and markdown (as huggingface_hub does) and check the header."""
    match = YAML_BLOCK.search(text)
    if not match:
        return CardRead({}, text, [], [EMPTY_METADATA_WARNING])
    body = text[match.end():]
    try:
        raw = load_yaml(match.group(2))
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        return CardRead({}, body, [f"Invalid YAML in the README.md header: {_one_line(exc)}"])
    meta, errors = validate_metadata(raw)
    return CardRead(meta, body, errors, [] if raw else [EMPTY_METADATA_WARNING])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def readme_errors(data: bytes) -> list[str]:
    """The errors of a README.md about to be committed (empty: it may land)."""
    return read_card(data.decode("utf-8", "replace")).errors


def invalid_metadata_message(errors: list[str]) -> str:
    """The Hub's wording (huggingface_hub raises ``ValueError`` with the same first line)."""
    return "Invalid metadata in README.md.\n" + "\n".join(f"- {e}" for e in errors)


def require_valid_readme(data: bytes) -> None:
    """400 "Invalid metadata in README.md" when the README's YAML header has errors."""
    errors = readme_errors(data)
    if errors:
        raise BadRequest(invalid_metadata_message(errors))
