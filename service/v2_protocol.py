"""Open Inference Protocol (KServe V2) REST codec: request parsing, tensor decoding, response building.

Supports JSON tensors and the binary tensor data extension (``Inference-Header-Content-Length``: the
JSON header's size; raw little-endian tensors follow, each input sized by
``parameters.binary_data_size``; a BYTES element is a 4-byte little-endian length then its bytes),
and the classification extension (``outputs[i].parameters.classification = k`` -> BYTES ``[N, k]``
strings ``"<score>:<index>:<label>"``). Reference: kserve.github.io "Open Inference Protocol" and
Triton's ``protocol/extension_binary_data.md`` / ``extension_classification.md``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadRequest
from service.postprocess import classification_strings

OUTPUT_NAME = "probabilities"
IMAGE_INPUT, TENSOR_INPUT = "image", "input"


class RequestInput(BaseModel):
    """One input tensor: ``data`` row-major (flat or nested), or sent as binary data."""

    model_config = ConfigDict(extra="ignore")
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    """A requested output; ``parameters`` may hold ``classification`` (k) and ``binary_data`` (bool)."""

    model_config = ConfigDict(extra="ignore")
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` body (JSON part)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def parse_request(body: bytes, header_length: str | None) -> tuple[InferRequest, list[bytes | None]]:
    """Split and validate a request; return it and each input's binary data (``None`` = JSON ``data``).

    Raises ``BadRequest`` for bad JSON, bad header length, or binary sizes that do not add up.
    """
    json_part, rest = body, b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest("Inference-Header-Content-Length must be an integer") from None
        if not 0 < size <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {size} does not fit a {len(body)}-byte body")
        json_part, rest = body[:size], body[size:]
    if not json_part.strip():
        raise BadRequest("empty request body: expected an inference request JSON object")
    try:
        request = InferRequest.model_validate_json(json_part)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"malformed inference request: {where}: {first['msg']}") from None
    chunks: list[bytes | None] = []
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            chunks.append(None)
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(rest):
            raise BadRequest(f"input {tensor.name!r}: binary_data_size {size!r} exceeds the binary data")
        chunks.append(rest[offset:offset + size])
        offset += size
    if offset != len(rest):
        raise BadRequest(f"{len(rest) - offset} bytes of binary data belong to no input")
    return request, chunks


def decode_request(body: bytes, header_length: str | None, side: int
                   ) -> tuple[InferRequest, list[OutputSpec], list[bytes] | np.ndarray]:
    """A whole request (JSON, or JSON header + binary tensors) -> the request, its validated outputs
    and its one input: N encoded images (``image`` BYTES) or a float32 ``[N, 3, side, side]`` array
    (``input`` FP32, already normalised). CPU-bound on big JSON tensors (JSON parsing, base64,
    flattening nested lists): the route runs it in a worker thread, off the event loop.

    Raises ``BadRequest`` for a malformed request, not exactly one input, or an unsupported datatype.
    """
    request, chunks = parse_request(body, header_length)
    if len(request.inputs) != 1:
        raise BadRequest(f"expected exactly one input ({IMAGE_INPUT!r} BYTES or {TENSOR_INPUT!r} FP32), "
                         f"got {len(request.inputs)}")
    tensor, raw = request.inputs[0], chunks[0]
    specs = requested_outputs(request)
    if tensor.datatype == "BYTES":
        return request, specs, decode_bytes_input(tensor, raw)
    if tensor.datatype == "FP32":
        return request, specs, decode_fp32_input(tensor, raw, side)
    raise BadRequest(f"input {tensor.name!r}: unsupported datatype {tensor.datatype!r}; "
                     "use BYTES (encoded images) or FP32 [N, 3, H, W]")


def _element_count(tensor: RequestInput) -> int:
    if not tensor.shape or any(d < 0 for d in tensor.shape):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} must be non-negative dims")
    return math.prod(tensor.shape)


def decode_bytes_input(tensor: RequestInput, raw: bytes | None) -> list[bytes]:
    """BYTES input ``[N]`` or ``[N, 1]`` -> N encoded images (JSON strings are base64)."""
    count = _element_count(tensor)
    if tensor.shape[0] != count:
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape}: expected [N] or [N, 1]")
    if raw is not None:
        items = deserialize_bytes(raw, tensor.name)
    else:
        flat = _flatten(tensor.data, tensor.name)
        if not all(isinstance(x, str) for x in flat):
            raise BadRequest(f"input {tensor.name!r}: BYTES data in JSON must be base64 strings")
        try:
            items = [base64.b64decode(x, validate=True) for x in flat]
        except (binascii.Error, ValueError):
            raise BadRequest(f"input {tensor.name!r}: BYTES data in JSON must be base64-encoded images"
                             ) from None
    if len(items) != count:
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} needs {count} elements, "
                         f"got {len(items)}")
    return items


def decode_fp32_input(tensor: RequestInput, raw: bytes | None, side: int) -> np.ndarray:
    """FP32 input ``[N, 3, side, side]`` (already preprocessed) -> float32 array of that shape."""
    count = _element_count(tensor)
    if len(tensor.shape) != 4 or tensor.shape[1:] != [3, side, side] or tensor.shape[0] < 1:
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape}: expected [N, 3, {side}, {side}]")
    if raw is not None:
        if len(raw) != count * 4:
            raise BadRequest(f"input {tensor.name!r}: {len(raw)} bytes of FP32 data, expected {count * 4}")
        array = np.frombuffer(raw, dtype="<f4")
    else:
        flat = _flatten(tensor.data, tensor.name)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
            raise BadRequest(f"input {tensor.name!r}: FP32 data must be numbers")
        if len(flat) != count:
            raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} needs {count} values, "
                             f"got {len(flat)}")
        array = np.asarray(flat, dtype=np.float32)
    return array.reshape(tensor.shape).astype(np.float32, copy=False)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: 'data' must be a list (or send binary data)")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def deserialize_bytes(raw: bytes, name: str = "input") -> list[bytes]:
    """Binary BYTES tensor -> elements (each: 4-byte little-endian length, then that many bytes)."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"input {name!r}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"input {name!r}: BYTES element of {length} bytes runs past the data")
        items.append(raw[offset:offset + length])
        offset += length
    return items


def serialize_bytes(items: list[bytes]) -> bytes:
    """Elements -> binary BYTES tensor (the inverse of ``deserialize_bytes``)."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@dataclass(frozen=True)
class OutputSpec:
    """A validated requested output: ``classification`` k (0 = probabilities) and ``binary`` data."""

    name: str
    classification: int
    binary: bool


def requested_outputs(request: InferRequest) -> list[OutputSpec]:
    """Validate ``request.outputs`` (before any inference); none listed means all outputs.

    Raises ``BadRequest`` for an unknown output name or a ``classification`` that is not an int >= 1.
    """
    binary_default = bool((request.parameters or {}).get("binary_data_output", False))
    specs = []
    for spec in request.outputs or [RequestOutput(name=OUTPUT_NAME)]:
        if spec.name != OUTPUT_NAME:
            raise BadRequest(f"unknown output {spec.name!r}; this model has {OUTPUT_NAME!r}")
        params = spec.parameters or {}
        k = params.get("classification", 0)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0 or ("classification" in params and k < 1):
            raise BadRequest(f"output {spec.name!r}: classification must be an integer >= 1, got {k!r}")
        specs.append(OutputSpec(spec.name, k, bool(params.get("binary_data", binary_default))))
    return specs


def build_outputs(probabilities: np.ndarray, labels: list[str], specs: list[OutputSpec]
                  ) -> tuple[list[dict[str, Any]], bytes]:
    """Probabilities ``[N, C]`` -> response ``outputs`` and the binary tail (empty when all JSON)."""
    outputs, tail = [], []
    for spec in specs:
        if spec.classification:
            k = min(spec.classification, probabilities.shape[1])
            strings = classification_strings(probabilities, labels, k)
            flat = [s for row in strings for s in row]
            out: dict[str, Any] = {"name": spec.name, "datatype": "BYTES",
                                   "shape": [probabilities.shape[0], len(strings[0]) if strings else 0]}
            payload = serialize_bytes([s.encode() for s in flat]) if spec.binary else flat
        else:
            out = {"name": spec.name, "datatype": "FP32", "shape": list(probabilities.shape)}
            payload = (probabilities.astype("<f4").tobytes() if spec.binary
                       else probabilities.ravel().tolist())
        if spec.binary:
            out["parameters"] = {"binary_data_size": len(payload)}
            tail.append(payload)
        else:
            out["data"] = payload
        outputs.append(out)
    return outputs, b"".join(tail)
