package nodes_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/nodes"
)

// echoingGateway answers every call as a gateway in front of Engage that echoes the
// request: the bearer token in base64 (a dump of the request) and in a JSON text quoted
// inside the description (escaped twice).
type echoingGateway struct{ status int }

func (g echoingGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	inner := fmt.Sprintf(`{"auth":"Bearer \u%04x%s"}`, tok[0], tok[1:])
	desc, _ := json.Marshal("upstream said " + inner + " dump " + base64.StdEncoding.EncodeToString([]byte("GET / HTTP/1.1\r\nAuthorization: Bearer "+tok+"\r\n")))
	body := fmt.Sprintf(`{"status":%d,"code":4001,"description":%s,"value":{"conversationId":"","chatExist":false}}`, g.status, desc)
	return &http.Response{StatusCode: g.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// What a flow gets back (its output variables and the error object, which idempotency
// records keep and replay) holds no encoding of the token a gateway echoed, in a refusal
// and in a success alike: no base64 of it, nothing that decodes to it twice.
func TestAnEchoedTokenInAnyEncodingNeverReachesTheExecutionsAnswer(t *testing.T) {
	t.Parallel()
	const token = "simat_ECHO0123456789ABCDEFGHIJKLMNOP"
	for _, status := range []int{http.StatusOK, http.StatusBadRequest} {
		creds := &countingCredentials{token: token}
		x := nodes.NewExecutor(nodes.ExecutorOptions{Engage: engage.New(engage.Options{Transport: echoingGateway{status}}), Credentials: creds})
		v, err := nodes.NewRegistry().Lookup("search-conversation", "1.3")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		res := x.Execute(ctx, v, nodes.Request{Tenant: "acme", AuthorizationID: "a1",
			Input: json.RawMessage(`{"channel":"sms","bizAddress":"+15559999","customerAddress":"+15550001"}`)})
		cancel()
		answer, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(answer), "[redacted]") {
			t.Errorf("HTTP %d: nothing was redacted: %s", status, answer)
		}
		// Decode the answer, then each string in it as JSON, and look in everything.
		texts := []string{string(answer)}
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				texts = append(texts, v)
				if i := strings.IndexByte(v, '{'); i >= 0 {
					var inner any // the first JSON value quoted in it
					if json.NewDecoder(strings.NewReader(v[i:])).Decode(&inner) == nil {
						walk(inner)
					}
				}
				for _, word := range strings.Fields(v) {
					if b, err := base64.StdEncoding.DecodeString(strings.Trim(word, `"}`)); err == nil {
						texts = append(texts, string(b))
					}
				}
			case map[string]any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		var decoded any
		_ = json.Unmarshal(answer, &decoded)
		walk(decoded)
		for _, s := range texts {
			if strings.Contains(s, token) {
				t.Errorf("HTTP %d: the answer holds the token: %q", status, s)
			}
		}
	}
}
