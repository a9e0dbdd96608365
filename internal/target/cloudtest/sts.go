// STAND-IN for AWS STS (query protocol, XML answers): AssumeRole only, with
// the real service's parameter checks and error codes. Not the real service.

package cloudtest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

var (
	roleARN     = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	sessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

type stsError struct {
	status int
	code   string
	msg    string
}

func (a *AWS) serveSTS(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeSTS(w, nil, &stsError{http.StatusBadRequest, "InvalidAction", "STS takes a form POST"})
		return
	}
	akid, serr := verifySigV4(r, body, "sts", a.Region, a.lookupKey)
	if serr != nil {
		code := map[string]string{
			"missing": "MissingAuthenticationToken", "incomplete": "IncompleteSignature",
			"unknownKey": "InvalidClientTokenId", "mismatch": "SignatureDoesNotMatch", "expired": "ExpiredToken",
		}[serr.kind]
		writeSTS(w, nil, &stsError{http.StatusForbidden, code, serr.msg})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeSTS(w, nil, &stsError{http.StatusBadRequest, "MalformedInput", err.Error()})
		return
	}
	if form.Get("Action") != "AssumeRole" {
		writeSTS(w, nil, &stsError{http.StatusBadRequest, "InvalidAction", "Could not find operation " + form.Get("Action") + " for version " + form.Get("Version")})
		return
	}
	if form.Get("Version") != "2011-06-15" {
		writeSTS(w, nil, &stsError{http.StatusBadRequest, "InvalidAction", "Could not find operation AssumeRole for version " + form.Get("Version")})
		return
	}
	out, eerr := a.assumeRole(form)
	c := Call{Service: "sts", Op: "AssumeRole", AccessKey: akid, Body: string(body)}
	if eerr != nil {
		c.Error = eerr.code
	}
	a.record(c)
	writeSTS(w, out, eerr)
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"Credentials"`
		AssumedRoleUser struct {
			Arn           string `xml:"Arn"`
			AssumedRoleID string `xml:"AssumedRoleId"`
		} `xml:"AssumedRoleUser"`
	} `xml:"AssumeRoleResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

func (a *AWS) assumeRole(form url.Values) (any, *stsError) {
	role, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	switch {
	case !form.Has("RoleArn"):
		return nil, &stsError{http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"}
	case !roleARN.MatchString(role):
		return nil, &stsError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("%s is invalid", role)}
	case !form.Has("RoleSessionName"):
		return nil, &stsError{http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"}
	case !sessionName.MatchString(session):
		return nil, &stsError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", session)}
	}
	if d := form.Get("DurationSeconds"); d != "" {
		if n, err := strconv.Atoi(d); err != nil || n < 900 || n > 43200 {
			return nil, &stsError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", d)}
		}
	}
	a.mu.Lock()
	ttl := a.roleTTL
	a.mu.Unlock()
	id, secret, token := "ASIA"+strings.ToUpper(randomString(16)), randomString(40), "FwoGZXIvYXdzE"+randomString(60)
	expires := time.Now().Add(ttl).UTC()
	a.mu.Lock()
	a.keys[id] = key{secret: secret, session: token, expires: expires}
	a.mu.Unlock()

	out := assumeRoleResponse{Xmlns: stsNamespace, RequestID: requestID()}
	c := &out.Result.Credentials
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = id, secret, token
	c.Expiration = expires.Format(time.RFC3339)
	roleName := role[strings.LastIndex(role, "/")+1:]
	account := strings.Split(role, ":")[4]
	out.Result.AssumedRoleUser.Arn = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, roleName, session)
	out.Result.AssumedRoleUser.AssumedRoleID = "AROA" + strings.ToUpper(randomString(16)) + ":" + session
	return out, nil
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeSTS(w http.ResponseWriter, out any, e *stsError) {
	w.Header().Set("Content-Type", "text/xml")
	rid := requestID()
	w.Header().Set("X-Amzn-Requestid", rid)
	if e != nil {
		var er stsErrorResponse
		er.Xmlns, er.RequestID = stsNamespace, rid
		er.Error.Type, er.Error.Code, er.Error.Message = "Sender", e.code, e.msg
		w.WriteHeader(e.status)
		out = er
	}
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(out)
}
