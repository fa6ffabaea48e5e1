package provider

import (
	"net/http"
	"strings"
)

// awsThrottled is how AWS services say "slow down": a 400 whose error type
// header names ThrottlingException.
func awsThrottled(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), "ThrottlingException")
}
