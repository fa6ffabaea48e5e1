"""The remote-model lifecycle through mlsidecar with opensearch-py-ml 1.3's
MLCommonClient on an opensearch-py client with http_compress=True. Where
MLCommonClient 1.3 has no method (registering a remote model, the trusted
endpoint setting) the package's own connector CLI helpers are used, on the
same compressing client; batch predict, which neither has, goes through the
client's transport. One JSON line per step on stdout; exit 1 if any step
failed. Settings: see steps.py."""

import os

from opensearch_py_ml.ml_commons import MLCommonClient
from opensearch_py_ml.ml_commons.cli.ai_connector_helper import AIConnectorHelper
from opensearch_py_ml.ml_commons.cli.aws_config import AWSConfig
from opensearch_py_ml.ml_commons.cli.ml_models.openai_model import OpenAIModel
from opensearch_py_ml.ml_commons.cli.opensearch_domain_config import OpenSearchDomainConfig
from opensearchpy import NotFoundError, OpenSearch, RequestError

from steps import (ACTION_TYPES, MODEL, Runner, Settings, action_types, check_deleted, check_embeddings, connector,
                   expect, hit_ids, is_id, profiled_state, undeployed, wait_for)

s = Settings()
run = Runner()
st = run.state
client = OpenSearch(hosts=[s.sidecar], http_compress=True, timeout=30, max_retries=0)
ml = MLCommonClient(client)
name = "pyml-%d" % os.getpid()
index = "e2e-clients-" + name
texts = ["hello", "world"]
trusted = r"^http://127\.0\.0\.1:[0-9]+/.*$"

# The CLI's helper for an open-source cluster, on the compressing client.
helper = AIConnectorHelper(
    service_type=AIConnectorHelper.OPEN_SOURCE,
    opensearch_config=OpenSearchDomainConfig(None, None, None, None, s.sidecar),
    aws_config=AWSConfig(None, None, None, None, None),
)
helper.opensearch_client = client


def health():
    h = client.cluster.health()
    expect(h.get("status") in ("green", "yellow"), "cluster status green or yellow", h)
    return {"status": h["status"]}


def index_and_search():
    r = client.index(index=index, id="1", body={"title": "sidecar in front"}, refresh=True)
    found = client.search(index=index, body={"query": {"match": {"title": "sidecar"}}})
    expect(r.get("result") == "created" and hit_ids(found) == ["1"], "indexed and found", found)
    return {"hits": hit_ids(found)}


def set_trusted_endpoint():
    # What the CLI's model setup does first: PUT _cluster/settings with
    # plugins.ml_commons.trusted_connector_endpoints_regex (a regex that still
    # lets the sidecar reach the double).
    # It raises on an error answer and returns nothing.
    OpenAIModel(service_type=AIConnectorHelper.OPEN_SOURCE).set_trusted_endpoint(helper, trusted)
    return {"set": trusted}


def get_trusted_endpoint():
    got = client.cluster.get_settings(flat_settings=True)
    regexes = got.get("persistent", {}).get("plugins.ml_commons.trusted_connector_endpoints_regex")
    expect(regexes == [trusted], "GET _cluster/settings shows the regex that was set", got)
    return {"persistent": {"plugins.ml_commons.trusted_connector_endpoints_regex": regexes}}


def create_connector():
    r = ml.connector.create_standalone_connector(body=connector(s, "connector-" + name))
    expect(is_id(r.get("connector_id")), "a connector_id", r)
    st["connector_id"] = r["connector_id"]
    return r


def get_connector():
    (cid,) = run.need("connector_id")
    c = ml.connector.get_connector(cid)
    expect(c.get("name") == "connector-" + name and action_types(c) == ACTION_TYPES, "the connector and its actions", c)
    expect(s.key not in str(c), "the API key is not shown", c)
    return {"name": c["name"], "actions": action_types(c)}


def list_connectors():
    (cid,) = run.need("connector_id")
    r = ml.connector.list_connectors()
    expect(cid in hit_ids(r), "the connector is listed", r)
    return hit_ids(r)


def register_group_refused():
    # MLCommonClient 1.3 always sends add_all_backend_roles (and access_mode
    # unless None): ML Commons refuses both on a cluster without security.
    try:
        r = ml.model_access_control.register_model_group(name="group-" + name, access_mode=None)
    except RequestError as e:
        reason = str(e.info.get("error", {}).get("reason", ""))
        expect(e.status_code == 400 and "You cannot specify model access control parameters" in reason,
               "ML Commons' refusal of access control parameters", e.info)
        return {"status": e.status_code, "reason": reason}
    raise AssertionError("registered with access control parameters on a cluster without security: %s" % r)


def register_group():
    r = client.plugins.ml.register_model_group(body={"name": "group-" + name, "description": "opensearch-py-ml e2e"})
    expect(is_id(r.get("model_group_id")), "a model_group_id", r)
    st["group_id"] = r["model_group_id"]
    return r


def find_group_by_name():
    (gid,) = run.need("group_id")
    got = ml.model_access_control.get_model_group_id_by_name("group-" + name)
    expect(got == gid, "search_model_group (GET with a body) finds the group", got)
    return got


def register_model():
    (cid,) = run.need("connector_id")
    mid = helper.register_model("model-" + name, "OpenAI embeddings via the double", cid, deploy=False)
    expect(is_id(mid), "a model_id", mid)
    st["model_id"] = mid
    return {"model_id": mid}


def deploy_model():
    (mid,) = run.need("model_id")
    t = ml.deploy_model(mid, wait_until_deployed=True)
    expect(t.get("state") == "COMPLETED" and t.get("task_type") == "DEPLOY_MODEL" and t.get("model_id") == mid,
           "a COMPLETED DEPLOY_MODEL task of the model", t)
    return {k: t.get(k) for k in ("state", "task_type", "model_id")}


def get_model_info():
    mid, cid = run.need("model_id", "connector_id")
    m = ml.get_model_info(mid)
    expect(m.get("model_state") == "DEPLOYED" and m.get("connector_id") == cid and is_id(m.get("model_group_id")),
           "DEPLOYED, with its connector and a model group", m)
    st["auto_group_id"] = m["model_group_id"]  # ML Commons made one: register_model sent none
    return {k: m.get(k) for k in ("name", "model_state", "algorithm", "model_group_id")}


def predict():
    (mid,) = run.need("model_id")
    return check_embeddings(ml.predict(mid, {"parameters": {"input": texts}}), texts, s.expected)


def generate_model_inference():
    (mid,) = run.need("model_id")
    return check_embeddings(ml.generate_model_inference(mid, {"parameters": {"input": texts}}), texts, s.expected)


def generate_embedding():
    (mid,) = run.need("model_id")
    return check_embeddings(ml.generate_embedding(mid, texts), texts, s.expected)


def search_model():
    mid, gid = run.need("model_id", "auto_group_id")
    r = ml.search_model({"query": {"term": {"model_group_id": gid}}})
    expect(hit_ids(r) == [mid], "the search finds the model", r)
    return hit_ids(r)


def batch_predict():
    (mid,) = run.need("model_id")
    # Neither MLCommonClient 1.3 nor opensearch-py 3.2 has batch predict.
    r = client.transport.perform_request("POST", "/_plugins/_ml/models/%s/_batch_predict" % mid,
                                         body={"parameters": {"model": MODEL}})
    expect(is_id(r.get("task_id")) and r.get("status") == "CREATED" and
           str((r.get("remote_job") or {}).get("id", "")).startswith("batch_"), "a task_id, CREATED, a batch", r)
    st["batch_task_id"] = r["task_id"]
    return {"task_id": r["task_id"], "status": r["status"]}


def get_task_info():
    tid, mid = run.need("batch_task_id", "model_id")
    t = ml.get_task_info(tid, wait_until_task_done=True)
    job = t.get("remote_job") or {}
    expect(t.get("state") == "COMPLETED" and t.get("model_id") == mid and job.get("status") == "completed" and
           job.get("request_counts", {}).get("completed") == 2, "the batch COMPLETED both lines", t)
    return {"state": t["state"], "request_counts": job["request_counts"]}


def search_task():
    tid, mid = run.need("batch_task_id", "model_id")
    r = ml.search_task({"query": {"term": {"model_id": mid}}})
    expect(tid in hit_ids(r), "the batch task among the model's tasks", r)
    return hit_ids(r)


def get_profile_models():
    (mid,) = run.need("model_id")
    p = ml.get_profile("model")  # GET /_plugins/_ml/profile/models/
    expect(profiled_state(p, mid) == "DEPLOYED", "the model DEPLOYED in the profile", p)
    one = ml.get_profile("model", ids=mid)
    expect(profiled_state(one, mid) == "DEPLOYED", "the model DEPLOYED in its own profile", one)
    return one


def get_profile_all():
    (mid,) = run.need("model_id")
    p = ml.get_profile()
    expect(profiled_state(p, mid) == "DEPLOYED", "the model DEPLOYED in the whole profile", p)
    return {"nodes": list(p.get("nodes", {}))}


def undeploy_model():
    (mid,) = run.need("model_id")
    r = ml.undeploy_model(mid)
    expect(undeployed(r, mid), "the model undeployed on a node", r)
    expect(ml.get_model_info(mid).get("model_state") == "UNDEPLOYED", "get_model_info says UNDEPLOYED")
    return r


def delete_task():
    (tid,) = run.need("batch_task_id")
    return check_deleted(ml.delete_task(tid), tid)


def delete_model():
    (mid,) = run.need("model_id")
    return check_deleted(ml.delete_model(mid), mid)


def get_deleted_model():
    (mid,) = run.need("model_id")
    try:
        m = ml.get_model_info(mid)
    except NotFoundError as e:
        return {"status": e.status_code, "answer": e.info}
    raise AssertionError("got the deleted model: %s" % m)


def delete_model_groups():
    gid, auto = run.need("group_id", "auto_group_id")
    r = ml.model_access_control.delete_model_group_by_name("group-" + name)
    check_deleted(r, gid)
    return [r, check_deleted(ml.model_access_control.delete_model_group(auto), auto)]


def delete_connector():
    (cid,) = run.need("connector_id")
    return check_deleted(ml.connector.delete_connector(cid), cid)


def delete_unknown_connector():
    r = ml.connector.delete_connector("no-such-connector-" + name)
    expect(r.get("result") == "not_found", "result not_found, without an exception", r)
    return r


def reset_trusted_endpoint():
    # Back to the sidecar's flags: a persistent setting outlives this run.
    r = client.cluster.put_settings(body={"persistent": {"plugins.ml_commons.trusted_connector_endpoints_regex": None}})
    expect(r.get("acknowledged") is True, "acknowledged", r)
    return r


def delete_index():
    r = client.indices.delete(index=index)
    expect(r.get("acknowledged") is True, "acknowledged", r)
    return r


for step in (health, index_and_search, set_trusted_endpoint, get_trusted_endpoint, create_connector,
             get_connector, list_connectors, register_group_refused, register_group, find_group_by_name,
             register_model, deploy_model, get_model_info, predict, generate_model_inference, generate_embedding,
             search_model, batch_predict, get_task_info, search_task, get_profile_models, get_profile_all,
             undeploy_model, delete_task, delete_model, get_deleted_model, delete_model_groups, delete_connector,
             delete_unknown_connector, delete_index, reset_trusted_endpoint):
    run.step(step.__name__, step)
run.exit()
