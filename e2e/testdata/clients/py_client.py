"""The remote-model lifecycle through mlsidecar with opensearch-py 3.2
(client.plugins.ml), http_compress=True. One JSON line per step on stdout;
exit 1 if any step failed. Settings: see steps.py."""

import os

from opensearchpy import NotFoundError, OpenSearch

from steps import (ACTION_TYPES, MODEL, Runner, Settings, action_types, check_deleted, check_embeddings, connector,
                   expect, hit_ids, is_id, profiled_state, undeployed, wait_for)

s = Settings()
run = Runner()
st = run.state
client = OpenSearch(hosts=[s.sidecar], http_compress=True, timeout=30, max_retries=0)
ml = client.plugins.ml
name = "py-%d" % os.getpid()
index = "e2e-clients-" + name
texts = ["hello", "world"]


def health():
    h = client.cluster.health()
    expect(h.get("status") in ("green", "yellow"), "cluster status green or yellow", h)
    return {"status": h["status"], "number_of_nodes": h.get("number_of_nodes")}


def index_and_search():
    r = client.index(index=index, id="1", body={"title": "sidecar in front", "n": 1}, refresh=True)
    expect(r.get("result") == "created", "the document is created", r)
    found = client.search(index=index, body={"query": {"match": {"title": "sidecar"}}})
    expect(found["hits"]["total"]["value"] == 1 and hit_ids(found) == ["1"], "the search finds it", found)
    return {"indexed": r["_id"], "hits": hit_ids(found)}


def create_connector():
    r = ml.create_connector(body=connector(s, "connector-" + name))
    expect(is_id(r.get("connector_id")), "a connector_id", r)
    st["connector_id"] = r["connector_id"]
    return r


def get_connector():
    (cid,) = run.need("connector_id")
    c = ml.get_connector(connector_id=cid)
    expect(c.get("name") == "connector-" + name and c.get("protocol") == "http", "the connector's name and protocol", c)
    expect(action_types(c) == ACTION_TYPES, "its four actions", c)
    expect(s.key not in str(c), "the API key is not shown", c)
    return {"name": c["name"], "actions": len(c["actions"])}


def search_connectors():
    (cid,) = run.need("connector_id")
    r = ml.search_connectors(body={"query": {"ids": {"values": [cid]}}})
    expect(hit_ids(r) == [cid], "the search finds the connector", r)
    return hit_ids(r)


def register_group():
    r = ml.register_model_group(body={"name": "group-" + name, "description": "opensearch-py e2e"})
    expect(is_id(r.get("model_group_id")) and r.get("status") == "CREATED", "a model_group_id, CREATED", r)
    st["group_id"] = r["model_group_id"]
    return r


def get_group():
    (gid,) = run.need("group_id")
    g = ml.get_model_group(model_group_id=gid)
    expect(g.get("name") == "group-" + name, "the group's name", g)
    return {"name": g["name"], "latest_version": g.get("latest_version")}


def register_model():
    cid, gid = run.need("connector_id", "group_id")
    r = ml.register_model(body={"name": "model-" + name, "function_name": "remote", "model_group_id": gid,
                                "connector_id": cid, "description": "OpenAI embeddings via the double"},
                          params={"deploy": "true"})
    expect(is_id(r.get("model_id")) and is_id(r.get("task_id")), "a model_id and a task_id", r)
    st["model_id"], st["register_task_id"] = r["model_id"], r["task_id"]
    return r


def get_register_task():
    tid, mid = run.need("register_task_id", "model_id")
    t = wait_for(lambda: ml.get_task(task_id=tid), lambda t: t.get("state") not in ("CREATED", "RUNNING"),
                 "the register task to finish")
    expect(t.get("state") == "COMPLETED" and t.get("model_id") == mid, "COMPLETED for the model", t)
    return {k: t.get(k) for k in ("state", "task_type", "function_name", "model_id")}


def get_model():
    mid, cid, gid = run.need("model_id", "connector_id", "group_id")
    m = wait_for(lambda: ml.get_model(model_id=mid), lambda m: m.get("model_state") == "DEPLOYED", "DEPLOYED")
    expect(m.get("connector_id") == cid and m.get("model_group_id") == gid and m.get("algorithm") == "REMOTE",
           "the model's connector, group and algorithm REMOTE", m)
    return {k: m.get(k) for k in ("name", "model_state", "algorithm", "model_version")}


def get_model_filtered():
    (mid,) = run.need("model_id")
    m = ml.get_model(model_id=mid, params={"filter_path": "name,model_state"})
    expect(m == {"name": "model-" + name, "model_state": "DEPLOYED"}, "only name and model_state", m)
    return m


def predict_parameters():
    (mid,) = run.need("model_id")
    return check_embeddings(ml.predict_model(model_id=mid, body={"parameters": {"input": texts}}), texts, s.expected)


def predict_text_docs():
    (mid,) = run.need("model_id")
    return check_embeddings(ml.predict(algorithm_name="text_embedding", model_id=mid, body={"text_docs": texts}),
                            texts, s.expected)


def search_models():
    mid, gid = run.need("model_id", "group_id")
    r = ml.search_models(body={"query": {"term": {"model_group_id": gid}}})
    expect(hit_ids(r) == [mid], "the search finds the model", r)
    return hit_ids(r)


def batch_predict():
    (mid,) = run.need("model_id")
    # opensearch-py 3.2 has no batch predict method.
    r = client.transport.perform_request("POST", "/_plugins/_ml/models/%s/_batch_predict" % mid,
                                         body={"parameters": {"model": MODEL}})
    job = r.get("remote_job") or {}
    expect(is_id(r.get("task_id")) and r.get("status") == "CREATED", "a task_id, CREATED", r)
    expect(str(job.get("id", "")).startswith("batch_") and job.get("input_file_id") == s.input_file_id,
           "the double's batch for the connector's input file", r)
    st["batch_task_id"] = r["task_id"]
    return r


def get_batch_task():
    tid, mid = run.need("batch_task_id", "model_id")
    t = wait_for(lambda: ml.get_task(task_id=tid), lambda t: t.get("state") not in ("CREATED", "RUNNING"),
                 "the batch task to finish")
    job = t.get("remote_job") or {}
    expect(t.get("state") == "COMPLETED" and t.get("task_type") == "BATCH_PREDICTION" and t.get("model_id") == mid,
           "a COMPLETED BATCH_PREDICTION task of the model", t)
    expect(job.get("status") == "completed" and job.get("request_counts", {}).get("completed") == 2,
           "the double's batch completed both lines", t)
    return {"state": t["state"], "remote_status": job["status"], "request_counts": job["request_counts"]}


def search_tasks():
    mid, tid = run.need("model_id", "batch_task_id")
    r = ml.search_tasks(body={"query": {"term": {"model_id": mid}}, "size": 10})
    expect(tid in hit_ids(r), "the batch task among the model's tasks", r)
    return hit_ids(r)


def profile():
    (mid,) = run.need("model_id")
    p = ml.get_profile_models(model_id=mid)
    expect(profiled_state(p, mid) == "DEPLOYED", "the model DEPLOYED in the profile", p)
    return p


def undeploy():
    (mid,) = run.need("model_id")
    r = ml.undeploy_model(model_id=mid)
    expect(undeployed(r, mid), "the model undeployed on a node", r)
    m = ml.get_model(model_id=mid)
    expect(m.get("model_state") == "UNDEPLOYED", "get model says UNDEPLOYED", m)
    return r


def delete_batch_task():
    (tid,) = run.need("batch_task_id")
    return check_deleted(ml.delete_task(task_id=tid), tid)


def delete_model():
    (mid,) = run.need("model_id")
    return check_deleted(ml.delete_model(model_id=mid), mid)


def get_deleted_model():
    (mid,) = run.need("model_id")
    try:
        m = ml.get_model(model_id=mid)
    except NotFoundError as e:
        expect(e.status_code == 404, "404", e.info)
        return {"status": e.status_code, "answer": e.info}
    raise AssertionError("got the deleted model: %s" % m)


def delete_group():
    (gid,) = run.need("group_id")
    return check_deleted(ml.delete_model_group(model_group_id=gid), gid)


def delete_connector():
    (cid,) = run.need("connector_id")
    return check_deleted(ml.delete_connector(connector_id=cid), cid)


def delete_unknown_connector():
    r = ml.delete_connector(connector_id="no-such-connector-" + name)
    expect(r.get("result") == "not_found", "result not_found, without an exception", r)
    return r


def delete_index():
    r = client.indices.delete(index=index)
    expect(r.get("acknowledged") is True, "acknowledged", r)
    return r


for step in (health, index_and_search, create_connector, get_connector, search_connectors, register_group,
             get_group, register_model, get_register_task, get_model, get_model_filtered, predict_parameters,
             predict_text_docs, search_models, batch_predict, get_batch_task, search_tasks, profile, undeploy,
             delete_batch_task, delete_model, get_deleted_model, delete_group, delete_connector,
             delete_unknown_connector, delete_index):
    run.step(step.__name__, step)
run.exit()
