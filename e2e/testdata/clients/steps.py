"""What py_client.py and py_ml_client.py share: the run's settings, the
connector, a step runner that prints one JSON line per step, and the checks
of ML Commons answers.

The settings come from the environment (e2e/clients_test.go sets them):
MLSIDECAR_URL, OPENAI_URL (the double's root, without /v1), OPENAI_KEY,
BATCH_INPUT_FILE_ID (a file already uploaded to the double) and
EXPECTED_EMBEDDINGS (a JSON object: text -> the double's vector).
"""

import contextlib
import json
import math
import os
import sys
import time

from opensearchpy.exceptions import TransportError

# The OpenAI embedding model every connector here names.
MODEL = "text-embedding-ada-002"


class Settings:
    def __init__(self):
        env = os.environ
        self.sidecar = env["MLSIDECAR_URL"]
        self.double = env["OPENAI_URL"].rstrip("/")
        self.key = env["OPENAI_KEY"]
        self.input_file_id = env["BATCH_INPUT_FILE_ID"]
        self.expected = json.loads(env["EXPECTED_EMBEDDINGS"])


def connector(s, name):
    """The ML Commons batch-predict documentation's OpenAI connector, pointed
    at the double: predict on /v1/embeddings, batch on /v1/batches."""
    auth = {"Authorization": "Bearer ${credential.openAI_key}"}
    return {
        "name": name,
        "description": "OpenAI embeddings through mlsidecar, driven by a real client",
        "version": "1",
        "protocol": "http",
        "parameters": {
            "model": MODEL,
            "input_file_id": s.input_file_id,
            "endpoint": "/v1/embeddings",
        },
        "credential": {"openAI_key": s.key},
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": s.double + "/v1/embeddings",
                "headers": auth,
                "request_body": '{ "input": ${parameters.input}, "model": "${parameters.model}" }',
                "pre_process_function": "connector.pre_process.openai.embedding",
                "post_process_function": "connector.post_process.openai.embedding",
            },
            {
                "action_type": "batch_predict",
                "method": "POST",
                "url": s.double + "/v1/batches",
                "headers": auth,
                "request_body": '{ "input_file_id": "${parameters.input_file_id}", '
                '"endpoint": "${parameters.endpoint}", "completion_window": "24h" }',
            },
            {
                "action_type": "batch_predict_status",
                "method": "GET",
                "url": s.double + "/v1/batches/${parameters.id}",
                "headers": auth,
            },
            {
                "action_type": "cancel_batch_predict",
                "method": "POST",
                "url": s.double + "/v1/batches/${parameters.id}/cancel",
                "headers": auth,
            },
        ],
    }


class NotRun(Exception):
    """A step needs what an earlier, failed step should have produced."""


class Runner:
    """Runs steps, prints {"step", "ok", "detail"} for each, and remembers
    failures. What the libraries print themselves goes to stderr, so stdout
    holds only the step lines."""

    def __init__(self):
        self.failed = []
        self.state = {}

    def need(self, *keys):
        missing = [k for k in keys if k not in self.state]
        if missing:
            raise NotRun("not run: an earlier step did not produce " + ", ".join(missing))
        return [self.state[k] for k in keys]

    def step(self, name, fn):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                detail = fn()
            ok = True
        except Exception as e:  # every failure is a step result, never a crash
            ok, detail = False, describe(e)
        print(json.dumps({"step": name, "ok": ok, "detail": detail}, default=str), flush=True)
        if not ok:
            self.failed.append(name)
        return ok

    def exit(self):
        if self.failed:
            print("failed steps: " + ", ".join(self.failed), file=sys.stderr)
        sys.exit(1 if self.failed else 0)


def describe(e):
    if isinstance(e, TransportError):
        return {"error": type(e).__name__, "status": e.status_code, "answer": e.info}
    if isinstance(e, NotRun):
        return str(e)
    return "%s: %s" % (type(e).__name__, e)


def expect(cond, what, got=None):
    if not cond:
        raise AssertionError(what if got is None else "%s; got %s" % (what, json.dumps(got, default=str)))


def is_id(v):
    return isinstance(v, str) and len(v) > 0


def wait_for(fetch, done, what, timeout=60.0):
    """Polls fetch() until done(answer) holds; returns the answer."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if done(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s; last answer %s" % (timeout, what, json.dumps(got)))
        time.sleep(0.2)


def check_embeddings(answer, texts, expected):
    """Checks ML Commons' tensor shape and the double's vectors, in order."""
    results = answer.get("inference_results")
    expect(isinstance(results, list) and results, "inference_results is a non-empty list", answer)
    vectors = []
    for r in results:
        expect(r.get("status_code") in (None, 200), "status_code 200", r)
        for t in r.get("output", []):
            expect(t.get("name") == "sentence_embedding" and t.get("data_type") == "FLOAT32",
                   "a FLOAT32 sentence_embedding tensor", t)
            expect(t.get("shape") == [len(t.get("data", []))], "shape is [len(data)]", t)
            vectors.append(t["data"])
    expect(len(vectors) == len(texts), "%d vectors" % len(texts), answer)
    for text, got in zip(texts, vectors):
        want = expected[text]
        same = len(got) == len(want) and all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want))
        expect(same, "the double's embedding of %r" % text, got)
    return "%d vectors of %d floats, the double's" % (len(vectors), len(vectors[0]))


def check_deleted(answer, wanted_id):
    expect(answer.get("result") == "deleted" and answer.get("_id") == wanted_id,
           "result deleted for %s" % wanted_id, answer)
    return answer


def profiled_state(profile, model_id):
    """The model_state of model_id in a profile answer, on any node."""
    for n in (profile.get("nodes") or {}).values():
        m = (n.get("models") or {}).get(model_id)
        if m:
            return m.get("model_state")
    return None


def undeployed(answer, model_id):
    """ML Commons' undeploy answer: {node: {"stats": {model_id: "undeployed"}}}."""
    return any((n.get("stats") or {}).get(model_id) == "undeployed"
               for n in answer.values() if isinstance(n, dict))


def action_types(conn):
    """A connector's action types, as ML Commons shows them (PREDICT, ...)."""
    return sorted(a.get("action_type") for a in conn.get("actions", []))


ACTION_TYPES = ["BATCH_PREDICT", "BATCH_PREDICT_STATUS", "CANCEL_BATCH_PREDICT", "PREDICT"]


def hit_ids(answer):
    return [h.get("_id") for h in answer.get("hits", {}).get("hits", [])]
