package webhook

// patchOp is one JSON Patch (RFC 6902) operation; the webhook writes only
// "replace" of an image field it read from the object.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}
