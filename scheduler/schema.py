"""The service's OpenAPI document, written for the loaded policy.

A request's device, access-point and target names are the policy's, so the request schema
is generated from its tables at start-up: a client (or a fuzzer) can tell from
``GET /openapi.json`` exactly which snapshots the policy accepts. Every schema is
self-contained (no ``$ref`` inside), so each can be used on its own with a JSON Schema
validator. The validator that judges requests is still
:meth:`edgesplit.scheduler.Scheduler.decide`; ``tests/test_scheduler_service.py`` checks that
the two agree (every request the schema admits is answered 200).

>>> from types import SimpleNamespace
>>> import numpy as np
>>> ta = SimpleNamespace(device_names=["pi"], access_point_names=["edge0"],
...     target_names=["edge0", "cloud"], reachable=np.array([[True, True]]), queue_capacity=4,
...     battery_j=np.array([100.0]))
>>> s = request_schema(ta)
>>> s["properties"]["devices"]["required"], s["additionalProperties"]
(['pi'], False)
>>> s["properties"]["devices"]["properties"]["pi"]["required"]  # a battery: its charge too
['task', 'link_mbps', 'charge_j']
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR", "MAX_NUMBER", "openapi", "request_schema", "response_schema"]

MAX_NUMBER = 1e300  # Scheduler.decide refuses magnitudes from here on

_NUMBER = {"type": "number", "minimum": 0, "exclusiveMaximum": MAX_NUMBER}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong"},
        "field": {"type": "string", "description": "the request field at fault (400 only)"},
        "value": {"description": "the value at fault, or null for a missing field (400 only)"},
    },
}


def request_schema(ta: Any) -> dict[str, Any]:
    """JSON Schema of ``POST /v1/decide``'s body for a policy's :class:`Tables` ``ta``."""
    devices: dict[str, Any] = {}
    for i, name in enumerate(ta.device_names):
        aps = [ap for m, ap in enumerate(ta.access_point_names) if ta.reachable[i, m]]
        devices[name] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["task", "link_mbps"],
            "properties": {
                "task": {
                    "description": "the pending task, or null when there is none",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["app"],
                            "properties": {
                                "app": {
                                    "type": "string",
                                    "minLength": 1,
                                    "description": "application name; one the policy was "
                                    "not trained on gets the Neurosurgeon rule",
                                },
                                "waited_s": {**_NUMBER, "description": "time waited so far"},
                            },
                        },
                    ],
                },
                "queue_length": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": int(ta.queue_capacity),
                    "description": "pending tasks, this one included (default 1 with a task)",
                },
                "backlog_s": {**_NUMBER, "description": "work queued on the device (s)"},
                "link_mbps": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": aps,
                    "properties": {ap: _NUMBER for ap in aps},
                    "description": "measured rate to each access point the device reaches",
                },
                "energy_debt_j": {
                    **_NUMBER,
                    "description": "the device's energy-budget deficit (J, default 0)",
                },
            },
            # a device with a task has it in its queue
            "if": {"required": ["task"], "properties": {"task": {"type": "object"}}},
            "then": {"properties": {"queue_length": {"minimum": 1}}},
        }
        cap = float(ta.battery_j[i])
        if cap > 0:  # a battery: its charge is part of the observation
            devices[name]["required"] = ["task", "link_mbps", "charge_j"]
            devices[name]["properties"]["charge_j"] = {
                "type": "number",
                "minimum": 0,
                "maximum": cap,
                "description": "battery charge (J), at most the capacity",
            }
    return {
        "title": "DecideRequest",
        "type": "object",
        "additionalProperties": False,
        "required": ["devices"],
        "properties": {
            "slot": {"type": "integer", "minimum": 0, "description": "slot number (time)"},
            "devices": {
                "type": "object",
                "additionalProperties": False,
                "required": list(ta.device_names),
                "properties": devices,
            },
            "server_backlog_s": {
                "type": "object",
                "additionalProperties": False,
                "properties": {t: _NUMBER for t in ta.target_names},
            },
        },
    }


def response_schema(ta: Any) -> dict[str, Any]:
    """JSON Schema of ``POST /v1/decide``'s 200 answer."""
    names = list(ta.device_names)
    no_task = {
        "type": "object",
        "additionalProperties": False,
        "required": ["device", "task"],
        "properties": {"device": {"enum": names}, "task": {"const": False}},
    }
    decided = {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "device",
            "task",
            "app",
            "split",
            "split_index",
            "runs_locally",
            "target",
            "offload_target",
            "bandwidth_weight",
            "compute_weight",
            "source",
        ],
        "properties": {
            "device": {"enum": names},
            "task": {"const": True},
            "app": {"type": "string"},
            "split": {"type": ["string", "null"]},
            "split_index": {"type": ["integer", "null"], "minimum": 0},
            "runs_locally": {"type": "boolean"},
            "target": {"type": ["string", "null"]},
            "offload_target": {
                "type": ["string", "null"],
                "description": "where the raw input goes when the device's battery cannot "
                "pay for the head (the simulator's full offload): the policy's target, also "
                "for a local split",
            },
            "bandwidth_weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "compute_weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "source": {"enum": ["policy", "neurosurgeon", "local"]},
            "note": {"type": ["string", "null"], "description": "why it is a fallback"},
        },
    }
    return {
        "title": "DecideResponse",
        "type": "object",
        "additionalProperties": False,
        "required": ["policy", "decisions", "fallback"],
        "properties": {
            "policy": {
                "type": "object",
                "required": ["algorithm", "sha256"],
                "properties": {"algorithm": {"type": "string"}, "sha256": {"type": "string"}},
            },
            "decisions": {
                "type": "array",
                "minItems": len(names),
                "maxItems": len(names),
                "items": {"oneOf": [no_task, decided]},
            },
            "fallback": {"type": ["string", "null"], "description": "why the policy failed"},
        },
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi(ta: Any, describe: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service for a policy (``describe``: its
    :meth:`~edgesplit.scheduler.policy.LoadedPolicy.describe`; ``limits``: the server's)."""
    err = {"$ref": "#/components/schemas/Error"}
    policy_info = {"type": "object", "required": ["algorithm", "devices", "sha256", "digest"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EdgeSplit scheduler",
            "version": "1",
            "description": (
                f"Decisions of the {describe['algorithm']} policy trained on scenario "
                f"{describe['scenario']!r} (digest {describe['digest'][:12]}...). Limits: "
                + ", ".join(f"{k} {v}" for k, v in limits.items())
            ),
        },
        "paths": {
            "/v1/decide": {
                "post": {
                    "summary": "Decisions for a snapshot of the live system",
                    "operationId": "decide",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/DecideRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/DecideResponse"}, "decided"),
                        "400": _json(err, "malformed request: the field and the value named"),
                        "408": _json(err, "the request was not received in time"),
                        "413": _json(err, "body over the size limit"),
                        "415": _json(err, "Content-Type is not application/json"),
                    },
                }
            },
            "/v1/policy": {
                "get": {
                    "summary": "The loaded policy and what it decides for",
                    "operationId": "policy",
                    "responses": {"200": _json(policy_info, "the policy")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "healthz",
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"status": {"const": "ok"}}}, "up"
                        )
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "DecideRequest": request_schema(ta),
                "DecideResponse": response_schema(ta),
                "Error": ERROR,
            }
        },
    }
