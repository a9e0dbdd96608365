// STAND-IN for the AWS ECR API (JSON 1.1 protocol): the operations the ECR
// target uses, with the real service's request checks, answer shapes and
// error codes. Not the real service.

package cloudtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

const ecrTargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

var (
	ecrRepoName   = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	ecrRegistryID = regexp.MustCompile(`^[0-9]{12}$`)
	mutabilities  = []string{"MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"}
	encryptions   = []string{"AES256", "KMS", "KMS_DSSE"}
)

// ecrError is an error answer: HTTP status, __type and message.
type ecrError struct {
	status int
	code   string
	msg    string
}

func (e *ecrError) Error() string { return e.code + ": " + e.msg }

func validation(format string, args ...any) *ecrError {
	return &ecrError{http.StatusBadRequest, "ValidationException", "1 validation error detected: " + fmt.Sprintf(format, args...)}
}

func invalidParameter(format string, args ...any) *ecrError {
	return &ecrError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func (a *AWS) serveECR(w http.ResponseWriter, r *http.Request, body []byte) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, ecrTargetPrefix)
	handler := map[string]func(jsonObj) (any, *ecrError){
		"CreateRepository":      a.createRepository,
		"SetRepositoryPolicy":   a.setRepositoryPolicy,
		"GetRepositoryPolicy":   a.getRepositoryPolicy,
		"PutLifecyclePolicy":    a.putLifecyclePolicy,
		"GetLifecyclePolicy":    a.getLifecyclePolicy,
		"GetAuthorizationToken": a.getAuthorizationToken,
	}[op]
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		writeECR(w, nil, &ecrError{http.StatusNotFound, "UnknownOperationException", "ECR takes POST /"})
		return
	case !ok || handler == nil:
		writeECR(w, nil, &ecrError{http.StatusBadRequest, "UnknownOperationException", "Unknown operation " + target})
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		writeECR(w, nil, &ecrError{http.StatusBadRequest, "SerializationException", "Content-Type must be application/x-amz-json-1.1"})
		return
	}
	akid, serr := verifySigV4(r, body, "ecr", a.Region, a.lookupKey)
	if serr != nil {
		code := map[string]string{
			"missing": "MissingAuthenticationTokenException", "incomplete": "IncompleteSignatureException",
			"unknownKey": "UnrecognizedClientException", "mismatch": "InvalidSignatureException",
			"expired": "ExpiredTokenException",
		}[serr.kind]
		writeECR(w, nil, &ecrError{http.StatusForbidden, code, serr.msg})
		return
	}
	var in jsonObj
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		writeECR(w, nil, &ecrError{http.StatusBadRequest, "SerializationException", "request body is not a JSON object"})
		return
	}
	if id, _, err := in.str("registryId"); err != nil {
		writeECR(w, nil, err)
		return
	} else if id != "" && !ecrRegistryID.MatchString(id) {
		writeECR(w, nil, validation("Value '%s' at 'registryId' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]{12}", id))
		return
	} else if id != "" && id != a.AccountID {
		writeECR(w, nil, &ecrError{http.StatusBadRequest, "AccessDeniedException",
			fmt.Sprintf("User is not authorized to perform: ecr:%s on a resource in registry %s", op, id)})
		return
	}
	out, eerr := handler(in)
	c := Call{Service: "ecr", Op: op, AccessKey: akid, Body: string(body)}
	if eerr != nil {
		c.Error = eerr.code
	}
	a.record(c)
	writeECR(w, out, eerr)
}

func writeECR(w http.ResponseWriter, out any, e *ecrError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", requestID())
	if e != nil {
		w.WriteHeader(e.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

// repoName reads and checks the repositoryName member.
func repoName(in jsonObj) (string, *ecrError) {
	name, ok, err := in.str("repositoryName")
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", validation("Value null at 'repositoryName' failed to satisfy constraint: Member must not be null")
	case len(name) < 2 || len(name) > 256:
		return "", validation("Value '%s' at 'repositoryName' failed to satisfy constraint: Member must have length between 2 and 256", name)
	case !ecrRepoName.MatchString(name):
		return "", validation("Value '%s' at 'repositoryName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, ecrRepoName)
	}
	return name, nil
}

func (a *AWS) existing(in jsonObj) (*Repository, *ecrError) {
	name, err := repoName(in)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	repo, ok := a.repos[name]
	if !ok {
		return nil, &ecrError{http.StatusBadRequest, "RepositoryNotFoundException",
			fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", name, a.AccountID)}
	}
	return repo, nil
}

func (a *AWS) createRepository(in jsonObj) (any, *ecrError) {
	name, err := repoName(in)
	if err != nil {
		return nil, err
	}
	repo := &Repository{Name: name, Tags: map[string]string{}, ImageTagMutability: "MUTABLE", EncryptionType: "AES256"}
	tags, _, err := in.list("tags")
	if err != nil {
		return nil, err
	}
	if len(tags) > 50 {
		return nil, &ecrError{http.StatusBadRequest, "TooManyTagsException", "a resource takes at most 50 tags"}
	}
	for i, tag := range tags {
		k, okK, err := tag.str("Key")
		if err != nil {
			return nil, err
		}
		v, okV, err := tag.str("Value")
		if err != nil {
			return nil, err
		}
		switch {
		case !okK:
			return nil, validation("Value null at 'tags.%d.member.Key' failed to satisfy constraint: Member must not be null", i+1)
		case !okV:
			return nil, validation("Value null at 'tags.%d.member.Value' failed to satisfy constraint: Member must not be null", i+1)
		case len(k) < 1 || len(k) > 128 || len(v) > 256:
			return nil, &ecrError{http.StatusBadRequest, "InvalidTagParameterException", "tag keys take 1-128 characters, values 0-256"}
		}
		if _, dup := repo.Tags[k]; dup {
			return nil, &ecrError{http.StatusBadRequest, "InvalidTagParameterException", "duplicate tag key " + k}
		}
		repo.Tags[k] = v
	}
	if m, ok, err := in.str("imageTagMutability"); err != nil {
		return nil, err
	} else if ok {
		if !slices.Contains(mutabilities, m) {
			return nil, validation("Value '%s' at 'imageTagMutability' failed to satisfy constraint: Member must satisfy enum value set: [%s]", m, strings.Join(mutabilities, ", "))
		}
		repo.ImageTagMutability = m
	}
	if scan, ok, err := in.obj("imageScanningConfiguration"); err != nil {
		return nil, err
	} else if ok {
		if repo.ScanOnPush, _, err = scan.boolean("scanOnPush"); err != nil {
			return nil, err
		}
	}
	if enc, ok, err := in.obj("encryptionConfiguration"); err != nil {
		return nil, err
	} else if ok {
		typ, okT, err := enc.str("encryptionType")
		if err != nil {
			return nil, err
		}
		kms, okK, err := enc.str("kmsKey")
		if err != nil {
			return nil, err
		}
		switch {
		case !okT:
			return nil, validation("Value null at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: Member must not be null")
		case !slices.Contains(encryptions, typ):
			return nil, validation("Value '%s' at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: Member must satisfy enum value set: [%s]", typ, strings.Join(encryptions, ", "))
		case okK && !strings.HasPrefix(typ, "KMS"):
			return nil, invalidParameter("Invalid parameter at 'encryptionConfiguration' failed to satisfy constraint: 'kmsKey can only be specified when encryptionType is KMS'")
		case okK && (len(kms) < 1 || len(kms) > 2048):
			return nil, validation("Value '%s' at 'encryptionConfiguration.kmsKey' failed to satisfy constraint: Member must have length between 1 and 2048", kms)
		}
		repo.EncryptionType, repo.KmsKey = typ, kms
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.repos[name]; ok {
		return nil, &ecrError{http.StatusBadRequest, "RepositoryAlreadyExistsException",
			fmt.Sprintf("The repository with name '%s' already exists in the registry with id '%s'", name, a.AccountID)}
	}
	a.repos[name] = repo
	return map[string]any{"repository": a.describe(repo)}, nil
}

func (a *AWS) describe(r *Repository) map[string]any {
	enc := map[string]any{"encryptionType": r.EncryptionType}
	if r.KmsKey != "" {
		enc["kmsKey"] = r.KmsKey
	}
	return map[string]any{
		"repositoryArn":              fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", a.Region, a.AccountID, r.Name),
		"registryId":                 a.AccountID,
		"repositoryName":             r.Name,
		"repositoryUri":              a.RegistryAddr + "/" + r.Name,
		"createdAt":                  float64(time.Now().UnixMilli()) / 1000,
		"imageTagMutability":         r.ImageTagMutability,
		"imageScanningConfiguration": map[string]any{"scanOnPush": r.ScanOnPush},
		"encryptionConfiguration":    enc,
	}
}

func (a *AWS) setRepositoryPolicy(in jsonObj) (any, *ecrError) {
	repo, err := a.existing(in)
	if err != nil {
		return nil, err
	}
	text, ok, err := in.str("policyText")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, validation("Value null at 'policyText' failed to satisfy constraint: Member must not be null")
	case len(text) > 10240:
		return nil, validation("Value at 'policyText' failed to satisfy constraint: Member must have length less than or equal to 10240")
	case !jsonWith(text, "Statement"):
		return nil, invalidParameter("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
	}
	a.mu.Lock()
	repo.Policy = text
	a.mu.Unlock()
	return map[string]any{"registryId": a.AccountID, "repositoryName": repo.Name, "policyText": text}, nil
}

func (a *AWS) getRepositoryPolicy(in jsonObj) (any, *ecrError) {
	repo, err := a.existing(in)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	text := repo.Policy
	a.mu.Unlock()
	if text == "" {
		return nil, &ecrError{http.StatusBadRequest, "RepositoryPolicyNotFoundException",
			fmt.Sprintf("Repository policy does not exist for the repository with name '%s' in the registry with id '%s'", repo.Name, a.AccountID)}
	}
	// ECR hands the policy back re-formatted, not as it was sent.
	return map[string]any{"registryId": a.AccountID, "repositoryName": repo.Name, "policyText": reformat(text)}, nil
}

func (a *AWS) putLifecyclePolicy(in jsonObj) (any, *ecrError) {
	repo, err := a.existing(in)
	if err != nil {
		return nil, err
	}
	text, ok, err := in.str("lifecyclePolicyText")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, validation("Value null at 'lifecyclePolicyText' failed to satisfy constraint: Member must not be null")
	case len(text) < 100 || len(text) > 30720:
		return nil, validation("Value at 'lifecyclePolicyText' failed to satisfy constraint: Member must have length between 100 and 30720")
	case !jsonWith(text, "rules"):
		return nil, invalidParameter("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: object has missing required properties ([\"rules\"])'")
	}
	a.mu.Lock()
	repo.LifecyclePolicy = text
	a.mu.Unlock()
	return map[string]any{"registryId": a.AccountID, "repositoryName": repo.Name, "lifecyclePolicyText": text}, nil
}

func (a *AWS) getLifecyclePolicy(in jsonObj) (any, *ecrError) {
	repo, err := a.existing(in)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	text := repo.LifecyclePolicy
	a.mu.Unlock()
	if text == "" {
		return nil, &ecrError{http.StatusBadRequest, "LifecyclePolicyNotFoundException",
			fmt.Sprintf("Lifecycle policy does not exist for the repository with name '%s' in the registry with id '%s'", repo.Name, a.AccountID)}
	}
	return map[string]any{
		"registryId": a.AccountID, "repositoryName": repo.Name, "lifecyclePolicyText": reformat(text),
		"lastEvaluatedAt": float64(time.Now().Unix()),
	}, nil
}

func (a *AWS) getAuthorizationToken(in jsonObj) (any, *ecrError) {
	if _, _, err := in.list("registryIds"); err != nil {
		return nil, err
	}
	a.mu.Lock()
	ttl := a.tokenTTL
	a.mu.Unlock()
	expires := time.Now().Add(ttl)
	return map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": basicToken("AWS", a.password),
		"expiresAt":          float64(expires.UnixMilli()) / 1000,
		"proxyEndpoint":      "http://" + a.RegistryAddr,
	}}}, nil
}

// jsonWith tells whether s is a JSON object with member m.
func jsonWith(s, m string) bool {
	var v map[string]json.RawMessage
	if json.Unmarshal([]byte(s), &v) != nil {
		return false
	}
	_, ok := v[m]
	return ok
}

func reformat(s string) string {
	var b bytes.Buffer
	if json.Indent(&b, []byte(s), "", "  ") != nil {
		return s
	}
	return b.String()
}
