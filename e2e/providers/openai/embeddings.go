package openai

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
)

// maxEmbeddingInputs is OpenAI's cap on inputs in one embeddings request.
const maxEmbeddingInputs = 2048

// Embedding is the vector the double answers for text with dim dimensions:
// unit length, derived from SHA-256 of the text, so a test can compute the
// vectors it expects to find downstream. Token-array inputs are embedded as
// their JSON text (e.g. "[1,2,3]").
func Embedding(text string, dim int) []float32 {
	v := make([]float64, dim)
	var sum [sha256.Size]byte
	var norm float64
	for i := range v {
		if i%8 == 0 {
			h := sha256.New()
			_ = binary.Write(h, binary.BigEndian, uint32(i/8))
			h.Write([]byte(text))
			h.Sum(sum[:0])
		}
		u := binary.BigEndian.Uint32(sum[(i%8)*4:])
		v[i] = float64(u)/math.MaxUint32*2 - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	out := make([]float32, dim)
	for i, x := range v {
		if norm > 0 {
			out[i] = float32(x / norm)
		}
	}
	return out
}

type embeddingsRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

type embeddingsResponse struct {
	Object string          `json:"object"`
	Data   []embeddingItem `json:"data"`
	Model  string          `json:"model"`
	Usage  embeddingsUsage `json:"usage"`
}

type embeddingItem struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type embeddingsUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

func (s *Server) createEmbeddings(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, 16<<20)
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, invalidRequest("Request body too large.", "", ""))
		return
	}
	status, resp := s.embed(body)
	writeJSON(w, status, resp)
}

// embed answers one embeddings request body, the synchronous endpoint and a
// batch line alike: the status and the body of the answer (an embeddings
// response or an error).
func (s *Server) embed(body []byte) (int, any) {
	fail := func(e apiError) (int, any) {
		return http.StatusBadRequest, struct {
			Error apiError `json:"error"`
		}{e}
	}
	var req embeddingsRequest
	if e := decodeStrict(bytes.NewReader(body), &req); e != nil {
		return fail(*e)
	}
	if req.Model == "" {
		return fail(invalidRequest("you must provide a model parameter", "", ""))
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		return fail(invalidRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter"))
	}
	texts, ok := embeddingTexts(req.Input)
	if !ok {
		return fail(invalidRequest("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", "", ""))
	}
	if len(texts) > maxEmbeddingInputs {
		return fail(invalidRequest(fmt.Sprintf("Invalid 'input': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", maxEmbeddingInputs, len(texts)), "input", "array_above_max_length"))
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return fail(invalidRequest(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'float' and 'base64'.", req.EncodingFormat), "encoding_format", "invalid_value"))
	}
	dim := s.opts.Dim
	if req.Dimensions != nil {
		if req.Model == "text-embedding-ada-002" {
			return fail(invalidRequest("This model does not support specifying dimensions.", "", ""))
		}
		if *req.Dimensions < 1 {
			return fail(invalidRequest(fmt.Sprintf("Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got %d instead.", *req.Dimensions), "dimensions", "integer_below_min_value"))
		}
		dim = *req.Dimensions
	}
	resp := embeddingsResponse{Object: "list", Model: req.Model, Data: make([]embeddingItem, len(texts))}
	for i, text := range texts {
		v := Embedding(text, dim)
		var enc any = v
		if req.EncodingFormat == "base64" {
			raw := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(x))
			}
			enc = base64.StdEncoding.EncodeToString(raw)
		}
		resp.Data[i] = embeddingItem{Object: "embedding", Index: i, Embedding: enc}
		resp.Usage.PromptTokens += tokens(text)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	return http.StatusOK, resp
}

// embeddingTexts reads the four shapes of input: a string, strings, a token
// array, token arrays. Empty inputs are refused, as OpenAI does.
func embeddingTexts(raw json.RawMessage) ([]string, bool) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, one != ""
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, s := range many {
			if s == "" {
				return nil, false
			}
		}
		return many, len(many) > 0
	}
	var tokenArray []int64
	if json.Unmarshal(raw, &tokenArray) == nil {
		return []string{tokenText(tokenArray)}, len(tokenArray) > 0
	}
	var tokenArrays [][]int64
	if json.Unmarshal(raw, &tokenArrays) == nil {
		texts := make([]string, len(tokenArrays))
		for i, t := range tokenArrays {
			if len(t) == 0 {
				return nil, false
			}
			texts[i] = tokenText(t)
		}
		return texts, len(texts) > 0
	}
	return nil, false
}

func tokenText(t []int64) string {
	b, _ := json.Marshal(t)
	return string(b)
}

// tokens approximates a token count by words; tests need a stable, plausible
// number, not OpenAI's tokenizer.
func tokens(text string) int {
	if strings.HasPrefix(text, "[") {
		var t []int64
		if json.Unmarshal([]byte(text), &t) == nil {
			return len(t)
		}
	}
	return max(1, len(strings.Fields(text)))
}
