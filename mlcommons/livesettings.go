package mlcommons

import (
	"github.com/mlsidecar/mlsidecar/mlcommons/batch"
	"github.com/mlsidecar/mlsidecar/mlcommons/ingest"
	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
	"github.com/mlsidecar/mlsidecar/mlcommons/settings"
)

// liveSettings are the ML Commons cluster settings the API reads itself.
type liveSettings struct {
	modelACL, connectorACL bool
	remoteInference        bool
	controllers            bool
}

// ApplySettings puts ML Commons cluster settings in force in the API and
// its batch lifecycle: requests that start after it returns see them. The
// outbound guard takes its own (outbound.Guard.Update).
func (a *API) ApplySettings(e *settings.Effective) {
	a.live.Store(&liveSettings{modelACL: e.ModelAccessControl, connectorACL: e.ConnectorAccessControl,
		remoteInference: e.RemoteInference, controllers: e.ControllerEnabled})
	rules := batch.StatusRules{Fields: e.StatusFields}
	for _, r := range e.StatusRules {
		rules.Rules = append(rules.Rules, batch.StatusRule{State: r.State, Regex: r.Regex})
	}
	a.batch.SetDynamic(batch.Dynamic{Enabled: e.OfflineBatchInference, MaxTasks: e.MaxBatchInferenceTasks, Status: rules})
	a.ingest.SetDynamic(ingest.Dynamic{Enabled: e.OfflineBatchIngestion, MaxTasks: e.MaxBatchIngestionTasks})
}

// modelAccessControl is model_access_control_enabled in force.
func (a *API) modelAccessControl() bool { return a.live.Load().modelACL }

// connectorAccessControl is connector_access_control_enabled in force.
func (a *API) connectorAccessControl() bool { return a.live.Load().connectorACL }

// errRemoteInferenceDisabled is ML Commons' answer while
// remote_inference.enabled is false: an IllegalStateException (500), its
// text naming the setting wrongly, as ML Commons' does.
var errRemoteInferenceDisabled = mlerr.IllegalState("Remote Inference is currently disabled. " +
	"To enable it, update the setting \"plugins.ml_commons.remote_inference_enabled\" to true.")

// remoteInference refuses a request while remote inference is disabled, as
// ML Commons refuses connector create and update, and the register, deploy
// and predict of remote models.
func (a *API) remoteInference() error {
	if !a.live.Load().remoteInference {
		return errRemoteInferenceDisabled
	}
	return nil
}

// errControllerDisabled is ML Commons' answer to the controller APIs while
// controller_enabled is false: an IllegalStateException (500).
var errControllerDisabled = mlerr.IllegalState("Controller is currently disabled. " +
	"To enable it, update the setting \"plugins.ml_commons.controller_enabled\" to true.")

// controllersEnabled refuses a controller API request while controllers
// are disabled, as ML Commons does.
func (a *API) controllersEnabled() error {
	if !a.live.Load().controllers {
		return errControllerDisabled
	}
	return nil
}
