// STAND-IN: verification of AWS Signature Version 4 as AWS services do it,
// for the local AWS stand-in. Not the real service.

package cloudtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDate      = "20060102T150405Z"
	maxSkew      = 15 * time.Minute // AWS refuses requests signed further off
)

// sigError is why a request's signature was refused, in AWS's terms.
type sigError struct {
	kind string // missing, incomplete, unknownKey, mismatch
	msg  string
}

// key is a credential the stand-in knows.
type key struct {
	secret  string
	session string // non-empty for temporary (assumed-role) credentials
	expires time.Time
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// verifySigV4 checks r's Authorization header against the secret of its
// access key and returns that key.
func verifySigV4(r *http.Request, body []byte, service, region string, lookup func(string) (key, bool)) (string, *sigError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", &sigError{"missing", "Missing Authentication Token"}
	}
	algo, rest, _ := strings.Cut(h, " ")
	if algo != sigAlgorithm {
		return "", &sigError{"incomplete", "Authorization header requires the " + sigAlgorithm + " algorithm"}
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return "", &sigError{"incomplete", "Authorization header requires each component to be KEY=VALUE"}
		}
		parts[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if parts[k] == "" {
			return "", &sigError{"incomplete", "Authorization header requires '" + k + "' parameter"}
		}
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || len(scope[1]) != 8 {
		return "", &sigError{"incomplete", "Credential must be ACCESSKEY/DATE/REGION/SERVICE/aws4_request"}
	}
	akid, date, sregion, sservice := scope[0], scope[1], scope[2], scope[3]
	if sservice != service {
		return "", &sigError{"mismatch", "Credential should be scoped to correct service: '" + service + "'."}
	}
	if sregion != region {
		return "", &sigError{"mismatch", "Credential should be scoped to a valid region, not '" + sregion + "'."}
	}
	if !hex64.MatchString(parts["Signature"]) {
		return "", &sigError{"incomplete", "Signature must be 64 lower-case hex digits"}
	}
	stamp := r.Header.Get("X-Amz-Date")
	when, err := time.Parse(amzDate, stamp)
	if err != nil {
		return "", &sigError{"incomplete", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"}
	}
	if stamp[:8] != date {
		return "", &sigError{"mismatch", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"}
	}
	if d := time.Since(when); d > maxSkew || d < -maxSkew {
		return "", &sigError{"mismatch", "Signature expired: " + stamp + " is now earlier than the allowed window"}
	}
	signed := strings.Split(parts["SignedHeaders"], ";")
	if !slices.IsSorted(signed) || !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return "", &sigError{"incomplete", "SignedHeaders must be sorted, lower case, and include host and x-amz-date"}
	}
	k, ok := lookup(akid)
	if !ok {
		return "", &sigError{"unknownKey", "The security token included in the request is invalid."}
	}
	if k.session != "" {
		if r.Header.Get("X-Amz-Security-Token") != k.session || !slices.Contains(signed, "x-amz-security-token") {
			return "", &sigError{"unknownKey", "The security token included in the request is invalid."}
		}
		if time.Now().After(k.expires) {
			return "", &sigError{"expired", "The security token included in the request is expired"}
		}
	}

	payload := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payload[:])
	if ph := r.Header.Get("X-Amz-Content-Sha256"); ph != "" && ph != payloadHex {
		return "", &sigError{"mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	canon.WriteString(canonicalPath(r.URL) + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, name := range signed {
		canon.WriteString(name + ":" + headerValue(r, name) + "\n")
	}
	canon.WriteString("\n" + parts["SignedHeaders"] + "\n" + payloadHex)
	canonHash := sha256.Sum256([]byte(canon.String()))
	credScope := strings.Join(scope[1:], "/")
	toSign := sigAlgorithm + "\n" + stamp + "\n" + credScope + "\n" + hex.EncodeToString(canonHash[:])

	sk := hmacSHA256([]byte("AWS4"+k.secret), date)
	sk = hmacSHA256(sk, sregion)
	sk = hmacSHA256(sk, sservice)
	sk = hmacSHA256(sk, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(sk, toSign))
	if !hmac.Equal([]byte(want), []byte(parts["Signature"])) {
		return "", &sigError{"mismatch", "The request signature we calculated does not match the signature you provided. " +
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	}
	return akid, nil
}

func hmacSHA256(k []byte, s string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape is RFC 3986 percent-encoding of everything but unreserved characters.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
