package settings

import (
	"bytes"
	"encoding/json"
	"strings"
)

// The cluster's answers to GET and PUT _cluster/settings show settings in
// objects named by scope, nested ({"plugins":{"ml_commons":{"x":"1"}}}) or,
// with flat_settings=true, flat ({"plugins.ml_commons.x":"1"}). The ML
// Commons settings are merged into those objects in the same form; the
// rest of an answer is left as the cluster wrote it.

// Merge adds the values this update set to the cluster's answer to it
// ({"acknowledged":true,"persistent":{…},"transient":{…}}), as OpenSearch
// shows the settings an update applied. flat is the request's
// flat_settings.
func (ch *Changes) Merge(answer []byte, flat bool) ([]byte, error) {
	add := map[string]map[string]json.RawMessage{}
	for scope, sc := range ch.scopes {
		add[scope] = sc.set
	}
	return mergeAnswer(answer, add, flat)
}

// Merge adds the stored ML Commons settings to the cluster's answer to GET
// _cluster/settings and, when withDefaults (include_defaults=true), every
// other ML Commons setting with its default to "defaults". flat is the
// request's flat_settings. In locked mode only the defaults show: the
// flags.
func (s *Service) Merge(answer []byte, flat, withDefaults bool) ([]byte, error) {
	cur := s.cur.Load()
	add := map[string]map[string]json.RawMessage{}
	set := map[string]bool{}
	if cur.doc != nil && s.mode == ModeCluster {
		add[Persistent], add[Transient] = cur.doc.Persistent, cur.doc.Transient
		for _, m := range add {
			for k := range m {
				set[k] = true
			}
		}
	}
	if withDefaults {
		defaults := map[string]json.RawMessage{}
		for k, v := range s.defaults {
			if !set[k] {
				defaults[k] = v
			}
		}
		add["defaults"] = defaults
	}
	return mergeAnswer(answer, add, flat)
}

// mergeAnswer adds values (by full key) to the settings objects of answer
// named by add's keys; objects the answer does not have (filter_path) stay
// out. With nothing to add, the answer is returned as it is.
func mergeAnswer(answer []byte, add map[string]map[string]json.RawMessage, flat bool) ([]byte, error) {
	top, err := members(answer)
	if err != nil {
		return nil, err
	}
	changed := false
	for i, m := range top {
		values := add[m.key]
		if len(values) == 0 {
			continue
		}
		if top[i].value, err = mergeObject(m.value, values, flat); err != nil {
			return nil, err
		}
		changed = true
	}
	if !changed {
		return answer, nil
	}
	return encodeMembers(top), nil
}

// mergeObject adds values to one settings object. OpenSearch writes them
// in key order, as encoding/json writes a map.
func mergeObject(raw json.RawMessage, values map[string]json.RawMessage, flat bool) (json.RawMessage, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, ErrNotSettings
	}
	for key, raw := range values {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		if flat {
			obj[key] = v
			continue
		}
		parts := strings.Split(key, ".")
		m := obj
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // OpenSearch writes <, > and & as they are
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
