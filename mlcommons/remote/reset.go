package remote

import "github.com/hashicorp/go-retryablehttp"

// Reset drops every pooled client and closes their idle connections, so no
// connection dialed under outbound rules that no longer hold (a private
// address allowed then) is used again. Calls in flight finish on their
// client; new calls get new ones.
func (e *Engine) Reset() {
	e.mu.Lock()
	old := e.clients
	e.clients = make(map[string]*retryablehttp.Client, len(old))
	e.mu.Unlock()
	for _, cl := range old {
		cl.HTTPClient.CloseIdleConnections()
	}
}
