package mlcommons

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mlsidecar/mlsidecar/indexstore"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// Model controllers (ML Commons 2.12+, /controllers/<model_id>): per-user
// rate limits of a model's predictions, kept in the controllers index under
// the model's id and enforced by throttle (ratelimit.go). The model's
// is_controller_enabled says it has one, as in ML Commons. While
// controller_enabled is false the four APIs refuse, and the limits of
// existing controllers still apply (ML Commons deploys them whatever the
// setting).

// createController serves POST /controllers/{id}: it writes the model's
// controller, replacing one that exists (ML Commons indexes it), and
// answers CREATED or UPDATED.
func (a *API) createController(r *http.Request) (any, error) {
	if err := a.controllersEnabled(); err != nil {
		return nil, err
	}
	limiters, err := parseController(r, "Create model controller request has empty body")
	if err != nil {
		return nil, err
	}
	ctx, id := r.Context(), pathVar(r, "id")
	m, err := a.controlledModel(ctx, id, "Failed to find model to create the corresponding model controller with the provided model ID")
	if err != nil {
		return nil, err
	}
	if m.ModelState == indexstore.ModelDeploying {
		return nil, mlerr.Status(http.StatusConflict, "%s", aboutModel("Creating a model controller during its corresponding model in DEPLOYING state is not allowed, please either create the model controller after it is deployed or before deploying it.", id, m.IsHidden))
	}
	status, err := a.putController(ctx, id, &indexstore.Controller{UserRateLimiter: limiters})
	if err != nil {
		return nil, err
	}
	// The flag is what makes predictions read the controller: a failure to
	// set it is the caller's to retry, not to ignore (ML Commons logs it).
	if err := a.markController(ctx, id, true); err != nil {
		return nil, err
	}
	return map[string]string{"model_id": id, "status": status}, nil
}

// putController writes c as the controller of model id, whatever is there
// (last writer wins, as ML Commons' index request): "CREATED" or "UPDATED".
func (a *API) putController(ctx context.Context, id string, c *indexstore.Controller) (string, error) {
	repo := a.store.Controllers()
	for attempt := 1; ; attempt++ {
		_, v, err := repo.Get(ctx, id)
		switch {
		case errors.Is(err, indexstore.ErrNotFound):
			if _, err = repo.Create(ctx, id, c, indexstore.NoWait); err == nil {
				return "CREATED", nil
			}
		case err == nil:
			if _, err = repo.Replace(ctx, id, v, c, indexstore.NoWait); err == nil {
				return "UPDATED", nil
			}
		}
		// Another writer got there between the read and the write.
		if !errors.Is(err, indexstore.ErrConflict) || attempt == 3 {
			return "", err
		}
	}
}

// markController records on the model whether it has a controller
// (is_controller_enabled), as ML Commons' create and delete do. A model
// gone meanwhile has nothing to record.
func (a *API) markController(ctx context.Context, id string, enabled bool) error {
	_, _, err := indexstore.Modify(ctx, a.store.Models(), id, indexstore.NoWait, func(m *indexstore.Model) error {
		if m.IsControllerEnabled != nil && *m.IsControllerEnabled == enabled {
			return indexstore.ErrUnchanged
		}
		m.IsControllerEnabled = &enabled
		m.LastUpdatedTime = a.nowMillis()
		return nil
	})
	if errors.Is(err, indexstore.ErrUnchanged) || errors.Is(err, indexstore.ErrNotFound) {
		return nil
	}
	return err
}

// getController serves GET /controllers/{id}. ML Commons reads the
// controller before the model, so a missing controller is reported first.
func (a *API) getController(r *http.Request) (any, error) {
	if err := a.controllersEnabled(); err != nil {
		return nil, err
	}
	if _, err := boolParam(r, "return_content"); err != nil { // read, and meaningless here, as in ML Commons
		return nil, err
	}
	ctx, id := r.Context(), pathVar(r, "id")
	c, _, err := a.store.Controllers().Get(ctx, id)
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "Failed to find model controller with the provided model ID"))
	}
	m, _, err := a.store.Models().Get(ctx, id)
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "Failed to find model to get the corresponding model controller with the provided model ID"))
	}
	if err := a.checkControllerAccess(ctx, id, m); err != nil {
		return nil, err
	}
	return controllerOut(id, c), nil
}

// updateController serves PUT /controllers/{id}: the body's users are
// merged into the controller (a user's limit and unit each replace the
// stored one when given; new users are added; none is removed).
func (a *API) updateController(r *http.Request) (any, error) {
	if err := a.controllersEnabled(); err != nil {
		return nil, err
	}
	update, err := parseController(r, "Update model controller request has empty body")
	if err != nil {
		return nil, err
	}
	ctx, id := r.Context(), pathVar(r, "id")
	// "create" in the text, as in ML Commons.
	m, err := a.controlledModel(ctx, id, "Failed to find model to create the corresponding model controller with the provided model ID")
	if err != nil {
		return nil, err
	}
	res, _, err := indexstore.Modify(ctx, a.store.Controllers(), id, indexstore.NoWait, func(c *indexstore.Controller) error {
		if c.UserRateLimiter == nil {
			c.UserRateLimiter = map[string]indexstore.RateLimiter{}
		}
		for user, rl := range update {
			cur := c.UserRateLimiter[user]
			if rl.Limit != "" {
				cur.Limit = rl.Limit
			}
			if rl.Unit != "" {
				cur.Unit = rl.Unit
			}
			c.UserRateLimiter[user] = cur
		}
		return nil
	})
	switch {
	case errors.Is(err, indexstore.ErrNotFound) && (m.IsControllerEnabled == nil || !*m.IsControllerEnabled):
		return nil, mlerr.Status(http.StatusConflict, "%s", aboutModel("Model controller haven't been created for the model. Consider calling create model controller api instead.", id, m.IsHidden))
	case err != nil:
		return nil, notFoundAs(err, errControllerNotFound)
	}
	return res, nil
}

// deleteController serves DELETE /controllers/{id}. A controller whose
// model is gone is deleted alone, as in ML Commons.
func (a *API) deleteController(r *http.Request) (any, error) {
	if err := a.controllersEnabled(); err != nil {
		return nil, err
	}
	ctx, id := r.Context(), pathVar(r, "id")
	m, _, err := a.store.Models().Get(ctx, id)
	switch {
	case errors.Is(err, indexstore.ErrNotFound):
		m = nil
	case err != nil:
		return nil, err
	default:
		if err := a.checkControllerAccess(ctx, id, m); err != nil {
			return nil, err
		}
	}
	if _, _, err := a.store.Controllers().Get(ctx, id); err != nil {
		return nil, notFoundAs(err, errControllerNotFound)
	}
	// Unconditional, as ML Commons' delete request: an update racing it
	// loses.
	res, err := a.store.Controllers().Delete(ctx, id, indexstore.Missing)
	if err != nil {
		return nil, err
	}
	if m != nil {
		// The controller is gone whatever the flag says: a flag left set
		// only costs predictions a read that finds nothing.
		if err := a.markController(ctx, id, false); err != nil {
			a.log.WarnContext(ctx, "cannot record a deleted model controller on its model", "model_id", id, "err", err)
		}
	}
	return res, nil
}

// deleteControllerOf deletes the controller of a deleted (or missing)
// model, if it has one, as ML Commons' model delete does. Failing that, the
// answer is ML Commons' 500, and the caller's retry, which finds no model,
// deletes the controller.
func (a *API) deleteControllerOf(ctx context.Context, id string, hidden bool) error {
	_, err := a.store.Controllers().Delete(ctx, id, indexstore.Missing)
	if err != nil && !errors.Is(err, indexstore.ErrNotFound) {
		return fmt.Errorf("%w: %v", mlerr.IllegalState("%s", aboutModel("Model is not all cleaned up, please try again.", id, hidden)), err)
	}
	return nil
}

// errControllerNotFound is ML Commons' getController answer.
var errControllerNotFound = mlerr.Status(http.StatusNotFound, "Failed to find model controller")

// controlledModel reads the model a controller create or update is for and
// checks the caller may use it; notFound is the answer for no model.
func (a *API) controlledModel(ctx context.Context, id, notFound string) (*indexstore.Model, error) {
	m, _, err := a.store.Models().Get(ctx, id)
	if err != nil {
		return nil, notFoundAs(err, mlerr.Status(http.StatusNotFound, "%s", notFound))
	}
	if m.Algorithm != indexstore.AlgorithmRemote {
		return nil, mlerr.Status(http.StatusForbidden, "Creating model controller on this operation on the function category %s is not supported.", m.Algorithm)
	}
	if err := a.checkControllerAccess(ctx, id, m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkControllerAccess refuses a caller who cannot access model m's group
// (model access control), with ML Commons' controller text.
func (a *API) checkControllerAccess(ctx context.Context, id string, m *indexstore.Model) error {
	ok, err := a.groupAccessible(ctx, m.ModelGroupID)
	if err != nil || !ok {
		return orDenied(err, mlerr.Status(http.StatusForbidden, "%s",
			aboutModel("User doesn't have privilege to perform this operation on this model controller.", id, m.IsHidden)))
	}
	return nil
}

// aboutModel is ML Commons' getErrorMessage: the text and the model's id,
// which a hidden model's answers leave out.
func aboutModel(text, id string, hidden bool) string {
	if hidden {
		return text
	}
	return text + " Model ID: " + id
}

// parseController reads a create or update body as ML Commons'
// MLController.parse does: user_rate_limiter maps user names to rate
// limiters (a limiter may also come as a string holding its JSON);
// limiters with neither limit nor unit are dropped; other fields are
// ignored (model_id comes from the path only). empty is the answer to an
// empty body.
func parseController(r *http.Request, empty string) (map[string]indexstore.RateLimiter, error) {
	var in struct {
		UserRateLimiter json.RawMessage `json:"user_rate_limiter"`
	}
	if err := decodeBody(r, &in, mlerr.Parse("%s", empty)); err != nil {
		return nil, err
	}
	out := map[string]indexstore.RateLimiter{}
	switch mlerr.JSONToken(in.UserRateLimiter) {
	case "START_OBJECT":
	case "START_ARRAY":
		return nil, mlerr.NotObject("START_ARRAY")
	default:
		// XContentParser.map() of a scalar is an empty map.
		return out, nil
	}
	users, err := objectFields(in.UserRateLimiter)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		v := u.value
		if mlerr.JSONToken(v) == "VALUE_STRING" {
			// A string is parsed as the limiter's JSON.
			var s string
			_ = json.Unmarshal(v, &s)
			switch v = json.RawMessage(s); {
			case strings.TrimSpace(s) == "":
				return nil, mlerr.NotObject("null")
			case !json.Valid(v):
				return nil, mlerr.NotObject("VALUE_STRING")
			}
		}
		if tok := mlerr.JSONToken(v); tok != "START_OBJECT" {
			return nil, mlerr.NotObject(tok)
		}
		rl, err := parseRateLimiter(v)
		if err != nil {
			return nil, err
		}
		if rl.Limit != "" || rl.Unit != "" {
			out[u.name] = rl
		}
	}
	return out, nil
}

// parseRateLimiter is ML Commons' MLRateLimiter.parse of one limiter
// object: limit a number of at least 0 (kept as its text), unit a
// java.util.concurrent.TimeUnit name, each checked where it stands.
func parseRateLimiter(v json.RawMessage) (indexstore.RateLimiter, error) {
	var rl indexstore.RateLimiter
	fields, err := objectFields(v)
	if err != nil {
		return rl, err
	}
	for _, f := range fields {
		if mlerr.JSONToken(f.value) == "VALUE_NULL" {
			continue // Gson drops null members before ML Commons parses them
		}
		text, scalar := scalarText(f.value)
		switch f.name {
		case "limit":
			if n, ok := javaDouble(text); !scalar || !ok || n < 0 {
				return rl, mlerr.Parse("Limit field must be a positive number.")
			}
			rl.Limit = text
		case "unit":
			if _, ok := timeUnits[text]; !scalar || !ok {
				return rl, mlerr.IllegalArgument("No enum constant java.util.concurrent.TimeUnit.%s", text)
			}
			rl.Unit = text
		}
	}
	return rl, nil
}

// field is one member of a JSON object, in document order.
type field struct {
	name  string
	value json.RawMessage
}

// objectFields lists the members of a JSON object in document order (a
// later duplicate wins when they are stored, as in a Java map).
func objectFields(obj json.RawMessage) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		return nil, mlerr.Parse("Failed to parse request body: %s", err)
	}
	var out []field
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, mlerr.Parse("Failed to parse request body: %s", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, mlerr.Parse("Failed to parse request body: %s", err)
		}
		out = append(out, field{name: k.(string), value: v})
	}
	return out, nil
}

// scalarText is XContentParser.text() of a scalar: a string's value, a
// number's or boolean's literal; false for an object or array.
func scalarText(v json.RawMessage) (string, bool) {
	switch mlerr.JSONToken(v) {
	case "VALUE_STRING":
		var s string
		_ = json.Unmarshal(v, &s)
		return s, true
	case "VALUE_NUMBER", "VALUE_BOOLEAN":
		return string(bytes.TrimSpace(v)), true
	}
	return string(v), false
}
