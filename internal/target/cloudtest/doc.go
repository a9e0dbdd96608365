// Package cloudtest holds STAND-INS for cloud services, for tests only: no
// cloud account is reachable where the tests run. They are not the real
// services and prove only what they check:
//
//   - AWS: a local HTTP server playing the ECR API (JSON 1.1) and STS
//     (query protocol, AssumeRole) that verifies SigV4 signatures, required
//     fields and enum values and answers with the real shapes and error
//     codes; its registry data plane is a real docker-registry process that
//     requires the credentials GetAuthorizationToken handed out.
//   - GCP: a local OAuth2 token endpoint that verifies the JWT assertion of a
//     generated service-account key, a gRPC Artifact Registry service
//     (GetRepository only) that checks the bearer token, and a real
//     docker-registry requiring oauth2accesstoken and that token.
package cloudtest
