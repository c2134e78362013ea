package engagesim_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engagesim"
)

// drainReader records whether it was read to the end.
type drainReader struct {
	r       io.Reader
	drained bool
}

func (d *drainReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF {
		d.drained = true
	}
	return n, err
}

// Canned answers every call as Engage's 200 with its JSON body, and reads the request
// body to the end as a server would, so that benchmarks measure the client's whole work.
func TestCannedAnswersEveryCallWithItsBody(t *testing.T) {
	t.Parallel()
	const body = `{"status":200,"code":1000,"description":"ok","value":{"chatExist":false}}`
	client := &http.Client{Transport: engagesim.Canned{Body: body}}
	for range 2 {
		sent := &drainReader{r: strings.NewReader(`{"channel":"sms"}`)}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://engage.invalid/api/v1/acme/conversations/search", sent)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || string(got) != body || resp.ContentLength != int64(len(body)) {
			t.Fatalf("answer %d %q %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, got)
		}
		if !sent.drained {
			t.Fatal("the request body was not read")
		}
	}
}
