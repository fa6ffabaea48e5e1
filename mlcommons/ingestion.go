package mlcommons

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/auth"
	"github.com/mlsidecar/mlsidecar/mlcommons/ingest"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// batchIngestion starts a BATCH_INGEST task (POST /_batch_ingestion).
func (a *API) batchIngestion(r *http.Request) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	in, err := ingest.ParseInput(body)
	if err != nil {
		return nil, err
	}
	if in.ConnectorID != "" && len(in.Credential) == 0 {
		// The connector's credential is used: the caller must be allowed
		// the connector.
		denied := mlerr.Status(http.StatusForbidden, "You don't have permission to access this connector")
		notFound := mlerr.Status(http.StatusBadRequest, "Fail to fetch credentials from the connector in the batch ingestion input: Failed to find connector")
		if !indexstore.ValidID(in.ConnectorID) {
			return nil, notFound
		}
		if err := a.checkConnectorID(r.Context(), in.ConnectorID, denied, notFound); err != nil {
			return nil, err
		}
	}
	u, ok := auth.UserFrom(r.Context())
	return a.ingest.Submit(r.Context(), body, r.Header, ownerOf(u, ok))
}

// ingestSpec checks the ingest object of a _batch_predict: the
// _batch_ingestion body without data_source and credential (they come from
// the job). nil when none is given.
func (a *API) ingestSpec(r *http.Request, raw json.RawMessage) (*indexstore.IngestSpec, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, mlerr.Parse("ingest must be an object: the _batch_ingestion body without data_source and credential")
	}
	for _, k := range []string{"data_source", "credential", "connector_id"} {
		if _, ok := fields[k]; ok {
			return nil, mlerr.IllegalArgument("ingest takes no %s: the batch job's output and its connector's credential are used", k)
		}
	}
	// Checked as a _batch_ingestion body would be, with a stand-in source.
	probe := map[string]json.RawMessage{}
	for k, v := range fields {
		probe[k] = v
	}
	probe["data_source"] = json.RawMessage(`{"type":"openAI","source":["output"]}`)
	probe["credential"] = json.RawMessage(`{}`)
	b, _ := json.Marshal(probe)
	in, err := ingest.ParseInput(b)
	if err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	sealed, err := a.ingest.SealCaller(r.Header)
	if err != nil {
		return nil, err
	}
	req, _ := json.Marshal(fields)
	return &indexstore.IngestSpec{Request: req, Caller: sealed}, nil
}
