// STAND-IN: reading AWS JSON 1.1 request members the way the ECR service
// does. Not the real service.

package cloudtest

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// jsonObj reads members by their exact, case-sensitive names, as the
// service does (encoding/json alone would match names case-insensitively).
type jsonObj map[string]json.RawMessage

func serialization(member, want string) *ecrError {
	return &ecrError{http.StatusBadRequest, "SerializationException", fmt.Sprintf("member %s: expected %s", member, want)}
}

func (o jsonObj) str(k string) (string, bool, *ecrError) {
	raw, ok := o[k]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false, serialization(k, "a string")
	}
	return s, true, nil
}

func (o jsonObj) boolean(k string) (bool, bool, *ecrError) {
	raw, ok := o[k]
	if !ok || string(raw) == "null" {
		return false, false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return false, false, serialization(k, "a boolean")
	}
	return b, true, nil
}

func (o jsonObj) obj(k string) (jsonObj, bool, *ecrError) {
	raw, ok := o[k]
	if !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var v jsonObj
	if json.Unmarshal(raw, &v) != nil || v == nil {
		return nil, false, serialization(k, "a structure")
	}
	return v, true, nil
}

func (o jsonObj) list(k string) ([]jsonObj, bool, *ecrError) {
	raw, ok := o[k]
	if !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var v []json.RawMessage
	if json.Unmarshal(raw, &v) != nil {
		return nil, false, serialization(k, "a list")
	}
	out := make([]jsonObj, 0, len(v))
	for _, e := range v {
		var m jsonObj
		if json.Unmarshal(e, &m) != nil {
			// registryIds is a list of strings; keep non-objects as empty.
			var s string
			if json.Unmarshal(e, &s) != nil {
				return nil, false, serialization(k, "a list of structures or strings")
			}
		}
		out = append(out, m)
	}
	return out, true, nil
}
