package differential

import (
	"regexp"
	"strings"
)

// accepted is a known difference: the probe and JSON path (globs, * matches
// anything) where mlsidecar answers differently from genuine ML Commons
// 2.19.6, and why. Paths are those of the test's messages: "<status>" is the
// HTTP status, "error.type" a field, "hits.hits[0]._seq_no" one in an array.
type accepted struct {
	probe, path string
	genuine     string // if set, only where genuine shows this value
	why         string
	compat      string // the COMPATIBILITY.md row that lists it
	todo        bool   // not deliberate: a gap being closed
}

// A whole error envelope: status, type and reason wherever they are.
const envelope = "*"

var acceptedDifferences = []accepted{
	// ---- TODO ---------------------------------------------------------------
	// Gaps being closed in mlsidecar. They are accepted only so that the suite
	// tells new differences from known ones: remove each row once its gap is
	// closed (the test logs rows that no longer match anything). Deliberate
	// rows below are tried first. None open.

	// ---- Deliberate differences ----------------------------------------------
	{probe: "*", path: "*_index", why: "state lives in mlsidecar's own hidden indices", compat: "Behaviour: Index names"},
	{probe: "*-malformed", path: envelope, why: "a malformed body is 400 parse_exception with Go's decoder text (genuine: json_parse_exception with Jackson's text; predict: 500 null_pointer_exception)", compat: "Status codes: Malformed JSON body"},
	{probe: "batch/task-delete-open", path: "*status*", why: "deleting an open task is 409, not 500", compat: "Status codes: DELETE /tasks/<id> of an open task"},
	{probe: "batch/task-get*", path: "*", why: "genuine ignores a status action without request_body and cannot derive one for a URL without a provider name (500 unsupported_operation_exception); mlsidecar uses the connector's action", compat: "Batch predict: Derived status and cancel actions"},
	{probe: "batch/cancel*", path: "*", why: "as for status: genuine cannot derive a cancel action for a local URL (500); mlsidecar cancels and answers {\"status\":\"OK\"}", compat: "Batch predict: Derived status and cancel actions"},
	{probe: "batch/bodies-task-get", path: "*", why: "genuine refuses the status call to 127.0.0.1 (400 \"Remote inference host name has private ip address\") although plugins.ml_commons.connector.private_ip_enabled is true; mlsidecar allows it with --allow-private-endpoints", compat: "Behaviour: Outbound address check"},
	{probe: "batch/bodies-cancel", path: "*", why: "as for status: genuine refuses the cancel call to 127.0.0.1 despite private_ip_enabled", compat: "Behaviour: Outbound address check"},
	{probe: "model/get-undeployed", path: "model_state", genuine: `"DEPLOY_FAILED"`, why: "genuine's sync-up job races the undeploy of a model updated while deployed and leaves it DEPLOY_FAILED in some runs; mlsidecar undeploys synchronously", compat: "Behaviour: Deploy is synchronous, also with ?deploy=true"},
	{probe: "connector/create-empty-body", path: envelope, why: "an empty create body is 400 parse_exception with 2.19's reason (genuine: 500 i_o_exception)", compat: "Status codes: Empty body of POST /connectors/_create"},
	{probe: "connector/create-not-object", path: "error*.line", why: "Go's decoder gives no Jackson positions", compat: "Status codes: JSON body that is not an object"},
	{probe: "connector/create-not-object", path: "error*.col", why: "Go's decoder gives no Jackson positions", compat: "Status codes: JSON body that is not an object"},
	{probe: "stats/all", path: "nodes.<node>.*", why: "per-replica action counts: failures are counted (genuine creates a model's failure count without counting), and what the probes before did differs by side", compat: "Behaviour: Stats and profile"},
	{probe: "profile/*", path: "nodes.<node>.models.*", why: "profile summarises a replica's last 100 predictions of each deployed remote model (model_inference_stats, predict_request_stats); genuine 2.19.6 shows no remote models there", compat: "Behaviour: Stats and profile"},
	{probe: "controller/get-none", path: "error*reason", why: "before any controller exists genuine has no controller index and answers the index-less text; mlsidecar creates its indices at start-up and answers the text genuine gives once the index exists", compat: "Status codes: GET / DELETE /controllers/<id> before any controller was ever created"},
	{probe: "ingest/empty-body", path: envelope, why: "an empty _batch_ingestion body is 400 parse_exception with 2.19's reason (genuine: 500 i_o_exception)", compat: "Batch ingestion: Empty body"},
	{probe: "ingest/null-credential", path: "*", why: "genuine 2.19.6 accepts \"credential\": null and makes a task that cannot read its source; mlsidecar answers the 400 its validation text names (\"credential or connector_id cannot be null\")", compat: "Batch ingestion: credential null"},
	{probe: "unsupported/*", path: "*", why: "mlsidecar serves connectors, remote models, model groups, predict, batch predict and tasks only; agents, memory, tools, training and local models are not implemented", compat: "Remote inference: Guardrails, interface schema validation, streaming and the execute action"},
}

// accept returns the row accepting a difference of the named probe,
// preferring deliberate rows to TODO ones.
func accept(probe string, d difference) *accepted {
	for _, todo := range []bool{false, true} {
		for i := range acceptedDifferences {
			a := &acceptedDifferences[i]
			if a.todo == todo && glob(a.probe).MatchString(probe) && glob(a.path).MatchString(d.path) &&
				(a.genuine == "" || a.genuine == d.genuine) {
				return a
			}
		}
	}
	return nil
}

func glob(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$")
}

// unusedAccepted lists the rows that accepted nothing in this run, except
// those waiting for one answer of genuine's (it does not show every run).
func unusedAccepted(outcomes []*outcome) []*accepted {
	used := map[*accepted]bool{}
	for _, o := range outcomes {
		for _, a := range o.accepted {
			used[a] = true
		}
	}
	var out []*accepted
	for i := range acceptedDifferences {
		if a := &acceptedDifferences[i]; !used[a] && a.genuine == "" {
			out = append(out, a)
		}
	}
	return out
}
