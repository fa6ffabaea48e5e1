// The remote-model lifecycle through mlsidecar with
// @opensearch-project/opensearch 3.9 (client.ml.*), compression 'gzip'
// (request bodies) and suggestCompression (Accept-Encoding, so answers come
// back gzipped too). One JSON line per step on stdout; exit 1 if any step
// failed. Settings come from the environment, as for the Python scripts (see
// steps.py): MLSIDECAR_URL, OPENAI_URL, OPENAI_KEY, BATCH_INPUT_FILE_ID,
// EXPECTED_EMBEDDINGS.

import { Client, errors } from '@opensearch-project/opensearch';

const env = process.env;
const s = {
  sidecar: env.MLSIDECAR_URL,
  double: env.OPENAI_URL.replace(/\/+$/, ''),
  key: env.OPENAI_KEY,
  inputFileID: env.BATCH_INPUT_FILE_ID,
  expected: JSON.parse(env.EXPECTED_EMBEDDINGS),
};
const MODEL = 'text-embedding-ada-002';
const ACTION_TYPES = ['BATCH_PREDICT', 'BATCH_PREDICT_STATUS', 'CANCEL_BATCH_PREDICT', 'PREDICT'];
const name = `js-${process.pid}`;
const index = `e2e-clients-${name}`;
const texts = ['hello', 'world'];

const client = new Client({
  node: s.sidecar,
  compression: 'gzip',
  suggestCompression: true,
  maxRetries: 0,
  requestTimeout: 30000,
});
const ml = client.ml;

// The ML Commons batch-predict documentation's OpenAI connector, pointed at
// the double (the same as steps.connector).
function connector() {
  const headers = { Authorization: 'Bearer ${credential.openAI_key}' };
  return {
    name: `connector-${name}`,
    description: 'OpenAI embeddings through mlsidecar, driven by a real client',
    version: '1',
    protocol: 'http',
    parameters: { model: MODEL, input_file_id: s.inputFileID, endpoint: '/v1/embeddings' },
    credential: { openAI_key: s.key },
    actions: [
      {
        action_type: 'predict',
        method: 'POST',
        url: `${s.double}/v1/embeddings`,
        headers,
        request_body: '{ "input": ${parameters.input}, "model": "${parameters.model}" }',
        pre_process_function: 'connector.pre_process.openai.embedding',
        post_process_function: 'connector.post_process.openai.embedding',
      },
      {
        action_type: 'batch_predict',
        method: 'POST',
        url: `${s.double}/v1/batches`,
        headers,
        request_body:
          '{ "input_file_id": "${parameters.input_file_id}", "endpoint": "${parameters.endpoint}", "completion_window": "24h" }',
      },
      { action_type: 'batch_predict_status', method: 'GET', url: `${s.double}/v1/batches/\${parameters.id}`, headers },
      { action_type: 'cancel_batch_predict', method: 'POST', url: `${s.double}/v1/batches/\${parameters.id}/cancel`, headers },
    ],
  };
}

class NotRun extends Error {}

const state = {};
const failed = [];

function need(...keys) {
  const missing = keys.filter((k) => !(k in state));
  if (missing.length) throw new NotRun(`not run: an earlier step did not produce ${missing.join(', ')}`);
  return keys.map((k) => state[k]);
}

function describe(e) {
  if (e instanceof errors.ResponseError) return { error: e.name, status: e.meta.statusCode, answer: e.meta.body };
  if (e instanceof NotRun) return e.message;
  return `${e.name}: ${e.message}`;
}

async function step(fn) {
  let ok = true;
  let detail;
  try {
    detail = await fn();
  } catch (e) {
    ok = false;
    detail = describe(e);
  }
  process.stdout.write(JSON.stringify({ step: fn.name, ok, detail: detail ?? null }) + '\n');
  if (!ok) failed.push(fn.name);
}

function expect(cond, what, got) {
  if (!cond) throw new Error(got === undefined ? what : `${what}; got ${JSON.stringify(got)}`);
}

const isID = (v) => typeof v === 'string' && v.length > 0;
const hitIDs = (answer) => (answer.hits?.hits ?? []).map((h) => h._id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fetch, done, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await fetch();
    if (done(got)) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last answer ${JSON.stringify(got)}`);
    await sleep(200);
  }
}

// checkEmbeddings checks ML Commons' tensor shape and the double's vectors,
// in order.
function checkEmbeddings(answer, want) {
  const results = answer.inference_results;
  expect(Array.isArray(results) && results.length > 0, 'inference_results is a non-empty list', answer);
  const vectors = [];
  for (const r of results) {
    expect(r.status_code === undefined || r.status_code === 200, 'status_code 200', r);
    for (const t of r.output ?? []) {
      expect(t.name === 'sentence_embedding' && t.data_type === 'FLOAT32', 'a FLOAT32 sentence_embedding tensor', t);
      expect(JSON.stringify(t.shape) === JSON.stringify([t.data.length]), 'shape is [data.length]', t);
      vectors.push(t.data);
    }
  }
  expect(vectors.length === want.length, `${want.length} vectors`, answer);
  want.forEach((text, i) => {
    const exp = s.expected[text];
    const same = vectors[i].length === exp.length && vectors[i].every((x, j) => Math.abs(x - exp[j]) <= 1e-6);
    expect(same, `the double's embedding of ${text}`, vectors[i]);
  });
  return `${vectors.length} vectors of ${vectors[0].length} floats, the double's`;
}

function checkDeleted(answer, id) {
  expect(answer.result === 'deleted' && answer._id === id, `result deleted for ${id}`, answer);
  return answer;
}

function profiledState(profile, modelID) {
  for (const n of Object.values(profile.nodes ?? {})) {
    const m = (n.models ?? {})[modelID];
    if (m) return m.model_state;
  }
  return undefined;
}

// ----- the steps -----

async function health() {
  const { body } = await client.cluster.health();
  expect(['green', 'yellow'].includes(body.status), 'cluster status green or yellow', body);
  return { status: body.status, number_of_nodes: body.number_of_nodes };
}

async function index_and_search() {
  const { body: r } = await client.index({ index, id: '1', body: { title: 'sidecar in front', n: 1 }, refresh: true });
  expect(r.result === 'created', 'the document is created', r);
  const { body: found } = await client.search({ index, body: { query: { match: { title: 'sidecar' } } } });
  expect(found.hits.total.value === 1 && hitIDs(found)[0] === '1', 'the search finds it', found);
  return { indexed: r._id, hits: hitIDs(found) };
}

async function create_connector() {
  const { body } = await ml.createConnector({ body: connector() });
  expect(isID(body.connector_id), 'a connector_id', body);
  state.connectorID = body.connector_id;
  return body;
}

async function get_connector() {
  const [cid] = need('connectorID');
  const { body: c } = await ml.getConnector({ connector_id: cid });
  const types = (c.actions ?? []).map((a) => a.action_type).sort();
  expect(c.name === `connector-${name}` && JSON.stringify(types) === JSON.stringify(ACTION_TYPES),
    'the connector and its four actions', c);
  expect(!JSON.stringify(c).includes(s.key), 'the API key is not shown', c);
  return { name: c.name, actions: types };
}

async function search_connectors() {
  const [cid] = need('connectorID');
  const { body } = await ml.searchConnectors({ body: { query: { ids: { values: [cid] } } } });
  expect(JSON.stringify(hitIDs(body)) === JSON.stringify([cid]), 'the search finds the connector', body);
  return hitIDs(body);
}

async function register_model_group() {
  const { body } = await ml.registerModelGroup({ body: { name: `group-${name}`, description: 'opensearch-js e2e' } });
  expect(isID(body.model_group_id) && body.status === 'CREATED', 'a model_group_id, CREATED', body);
  state.groupID = body.model_group_id;
  return body;
}

async function get_model_group() {
  const [gid] = need('groupID');
  const { body } = await ml.getModelGroup({ model_group_id: gid });
  expect(body.name === `group-${name}`, "the group's name", body);
  return { name: body.name, latest_version: body.latest_version };
}

async function register_model() {
  const [cid, gid] = need('connectorID', 'groupID');
  const { body } = await ml.registerModel({
    deploy: true,
    body: {
      name: `model-${name}`, function_name: 'remote', model_group_id: gid, connector_id: cid,
      description: 'OpenAI embeddings via the double',
    },
  });
  expect(isID(body.model_id) && isID(body.task_id), 'a model_id and a task_id', body);
  state.modelID = body.model_id;
  state.registerTaskID = body.task_id;
  return body;
}

async function get_register_task() {
  const [tid, mid] = need('registerTaskID', 'modelID');
  const t = await waitFor(async () => (await ml.getTask({ task_id: tid })).body,
    (t) => !['CREATED', 'RUNNING'].includes(t.state), 'the register task to finish');
  expect(t.state === 'COMPLETED' && t.model_id === mid, 'COMPLETED for the model', t);
  return { state: t.state, task_type: t.task_type, model_id: t.model_id };
}

async function get_model() {
  const [mid, cid, gid] = need('modelID', 'connectorID', 'groupID');
  const m = await waitFor(async () => (await ml.getModel({ model_id: mid })).body,
    (m) => m.model_state === 'DEPLOYED', 'DEPLOYED');
  expect(m.connector_id === cid && m.model_group_id === gid && m.algorithm === 'REMOTE',
    "the model's connector, group and algorithm REMOTE", m);
  return { name: m.name, model_state: m.model_state, algorithm: m.algorithm };
}

async function get_model_filtered() {
  const [mid] = need('modelID');
  const { body } = await ml.getModel({ model_id: mid, filter_path: 'name,model_state' });
  expect(JSON.stringify(Object.keys(body).sort()) === '["model_state","name"]' &&
    body.name === `model-${name}` && body.model_state === 'DEPLOYED', 'only name and model_state', body);
  return body;
}

async function predict_parameters() {
  const [mid] = need('modelID');
  const { body } = await ml.predictModel({ model_id: mid, body: { parameters: { input: texts } } });
  return checkEmbeddings(body, texts);
}

async function predict_text_docs() {
  const [mid] = need('modelID');
  const { body } = await ml.predict({ algorithm_name: 'text_embedding', model_id: mid, body: { text_docs: texts } });
  return checkEmbeddings(body, texts);
}

async function search_models() {
  const [mid, gid] = need('modelID', 'groupID');
  const { body } = await ml.searchModels({ body: { query: { term: { model_group_id: gid } } } });
  expect(JSON.stringify(hitIDs(body)) === JSON.stringify([mid]), 'the search finds the model', body);
  return hitIDs(body);
}

async function batch_predict() {
  const [mid] = need('modelID');
  // 3.9 has no batch predict method.
  const { body } = await client.transport.request({
    method: 'POST',
    path: `/_plugins/_ml/models/${encodeURIComponent(mid)}/_batch_predict`,
    body: { parameters: { model: MODEL } },
  });
  const job = body.remote_job ?? {};
  expect(isID(body.task_id) && body.status === 'CREATED', 'a task_id, CREATED', body);
  expect(String(job.id ?? '').startsWith('batch_') && job.input_file_id === s.inputFileID,
    "the double's batch for the connector's input file", body);
  state.batchTaskID = body.task_id;
  return { task_id: body.task_id, status: body.status, remote_job: { id: job.id, status: job.status } };
}

async function get_batch_task() {
  const [tid, mid] = need('batchTaskID', 'modelID');
  const t = await waitFor(async () => (await ml.getTask({ task_id: tid })).body,
    (t) => !['CREATED', 'RUNNING'].includes(t.state), 'the batch task to finish');
  const job = t.remote_job ?? {};
  expect(t.state === 'COMPLETED' && t.task_type === 'BATCH_PREDICTION' && t.model_id === mid,
    'a COMPLETED BATCH_PREDICTION task of the model', t);
  expect(job.status === 'completed' && job.request_counts?.completed === 2, "the double's batch completed both lines", t);
  return { state: t.state, remote_status: job.status, request_counts: job.request_counts };
}

async function search_tasks() {
  const [mid, tid] = need('modelID', 'batchTaskID');
  const { body } = await ml.searchTasks({ body: { query: { term: { model_id: mid } }, size: 10 } });
  expect(hitIDs(body).includes(tid), "the batch task among the model's tasks", body);
  return hitIDs(body);
}

async function profile() {
  const [mid] = need('modelID');
  const { body } = await ml.getProfileModels({ model_id: mid });
  expect(profiledState(body, mid) === 'DEPLOYED', 'the model DEPLOYED in the profile', body);
  return body;
}

async function undeploy() {
  const [mid] = need('modelID');
  const { body } = await ml.undeployModel({ model_id: mid });
  expect(Object.values(body).some((n) => n?.stats?.[mid] === 'undeployed'), 'the model undeployed on a node', body);
  const { body: m } = await ml.getModel({ model_id: mid });
  expect(m.model_state === 'UNDEPLOYED', 'get model says UNDEPLOYED', m);
  return body;
}

async function delete_batch_task() {
  const [tid] = need('batchTaskID');
  return checkDeleted((await ml.deleteTask({ task_id: tid })).body, tid);
}

async function delete_model() {
  const [mid] = need('modelID');
  return checkDeleted((await ml.deleteModel({ model_id: mid })).body, mid);
}

async function get_deleted_model() {
  const [mid] = need('modelID');
  try {
    const { body } = await ml.getModel({ model_id: mid });
    throw new Error(`got the deleted model: ${JSON.stringify(body)}`);
  } catch (e) {
    if (!(e instanceof errors.ResponseError)) throw e;
    expect(e.meta.statusCode === 404, '404', e.meta.body);
    return { status: e.meta.statusCode, answer: e.meta.body };
  }
}

async function delete_model_group() {
  const [gid] = need('groupID');
  return checkDeleted((await ml.deleteModelGroup({ model_group_id: gid })).body, gid);
}

async function delete_connector() {
  const [cid] = need('connectorID');
  return checkDeleted((await ml.deleteConnector({ connector_id: cid })).body, cid);
}

async function delete_unknown_connector() {
  const { body } = await ml.deleteConnector({ connector_id: `no-such-connector-${name}` });
  expect(body.result === 'not_found', 'result not_found, without an exception', body);
  return body;
}

async function delete_index() {
  const { body } = await client.indices.delete({ index });
  expect(body.acknowledged === true, 'acknowledged', body);
  return body;
}

for (const fn of [health, index_and_search, create_connector, get_connector, search_connectors, register_model_group,
  get_model_group, register_model, get_register_task, get_model, get_model_filtered, predict_parameters,
  predict_text_docs, search_models, batch_predict, get_batch_task, search_tasks, profile, undeploy,
  delete_batch_task, delete_model, get_deleted_model, delete_model_group, delete_connector,
  delete_unknown_connector, delete_index]) {
  await step(fn);
}
await client.close();
if (failed.length) {
  process.stderr.write(`failed steps: ${failed.join(', ')}\n`);
  process.exitCode = 1;
}
