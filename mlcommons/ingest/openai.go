package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// OpenAIBaseURL is where ML Commons reads OpenAI files from
// (OpenAIDataIngestion.API_URL without its path).
const OpenAIBaseURL = "https://api.openai.com"

// OpenAIOptions say which OpenAI file to read, and how.
type OpenAIOptions struct {
	// Client must be built on the outbound guard (see HTTPOptions.Client).
	Client *http.Client
	// BaseURL is the scheme and host, OpenAIBaseURL when empty; with a
	// connector_id, those of the connector's batch action.
	BaseURL string
	// APIKey is the credential's openAI_key.
	APIKey string
	FileID string
	// CheckURL vets the file URL before each request (the guard's CheckURL).
	CheckURL     func(rawURL string) error
	MaxLineBytes int
}

// OpenOpenAIFile streams GET <base>/v1/files/<id>/content with the bearer
// key, from offset.
func OpenOpenAIFile(ctx context.Context, o OpenAIOptions, offset int64) (*Reader, error) {
	if o.FileID == "" {
		return nil, mlerr.IllegalArgument("The OpenAI file id is empty")
	}
	base := strings.TrimSuffix(o.BaseURL, "/")
	if base == "" {
		base = OpenAIBaseURL
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+o.APIKey)
	id := o.FileID
	return OpenHTTP(ctx, HTTPOptions{
		Client: o.Client,
		// ML Commons pastes the id in as it is; escaped, an id cannot
		// reach another path or add a query.
		URL:          base + "/v1/files/" + url.PathEscape(id) + "/content",
		Header:       h,
		CheckURL:     o.CheckURL,
		MaxLineBytes: o.MaxLineBytes,
		Describe: func(status int, body []byte) error {
			return mlerr.Provider(status, "Failed to read the OpenAI file [%s]: HTTP %d: %s", id, status, openAIMessage(status, body))
		},
	}, offset)
}

// openAIMessage is the message of OpenAI's error body
// {"error":{"message","type","code"}}, or the status text.
func openAIMessage(status int, body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return http.StatusText(status)
}
