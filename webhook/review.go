package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	sigjson "sigs.k8s.io/json"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The AdmissionReview versions the API server may send; the answer is in
// the version asked.
const (
	versionV1      = "admission.k8s.io/v1"
	versionV1beta1 = "admission.k8s.io/v1beta1"
	reviewKind     = "AdmissionReview"
)

// request is what the webhook needs of an AdmissionRequest of either version.
type request struct {
	uid         types.UID
	kind        metav1.GroupVersionKind
	subResource string
	operation   string
	namespace   string
	name        string
	dryRun      bool
	object      []byte
	oldObject   []byte
}

// response is the webhook's answer; a review is always allowed.
type response struct {
	patch []byte // a JSON Patch, nil for none
}

// decodeReview reads an AdmissionReview of either version. Their JSON is
// the same (k8s.io/api defines v1beta1's types field for field as v1's),
// so both are read into v1's types.
func decodeReview(body []byte) (*request, string, error) {
	var tm metav1.TypeMeta
	if err := strictUnmarshal(body, &tm); err != nil {
		return nil, "", fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if tm.Kind != reviewKind {
		return nil, "", fmt.Errorf("want kind %s, got %q", reviewKind, tm.Kind)
	}
	if tm.APIVersion != versionV1 && tm.APIVersion != versionV1beta1 {
		return nil, "", fmt.Errorf("unsupported AdmissionReview version %q, want %s or %s", tm.APIVersion, versionV1, versionV1beta1)
	}
	var r admissionv1.AdmissionReview
	if err := strictUnmarshal(body, &r); err != nil {
		return nil, "", fmt.Errorf("decode %s AdmissionReview: %w", tm.APIVersion, err)
	}
	q := r.Request
	if q == nil {
		return nil, "", errors.New("AdmissionReview has no request")
	}
	return &request{uid: q.UID, kind: q.Kind, subResource: q.SubResource, operation: string(q.Operation),
		namespace: q.Namespace, name: q.Name, dryRun: q.DryRun != nil && *q.DryRun,
		object: q.Object.Raw, oldObject: q.OldObject.Raw}, tm.APIVersion, nil
}

// strictUnmarshal decodes as the API server does: field names match case
// sensitively (unknown ones are ignored, so newer API servers work), and a
// duplicated field is an error, since it could be read two ways and a patch
// must apply to exactly the object the API server holds.
func strictUnmarshal(data []byte, v any) error {
	strict, err := sigjson.UnmarshalStrict(data, v, sigjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// encodeReview answers uid in version, v1's types standing for v1beta1's.
func encodeReview(version string, uid types.UID, resp response) ([]byte, error) {
	if version != versionV1 && version != versionV1beta1 {
		return nil, fmt.Errorf("unsupported AdmissionReview version %q", version)
	}
	r := &admissionv1.AdmissionResponse{UID: uid, Allowed: true}
	if resp.patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		r.Patch, r.PatchType = resp.patch, &pt
	}
	return json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: version, Kind: reviewKind}, Response: r})
}
