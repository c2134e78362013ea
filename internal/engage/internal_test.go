package engage

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestEndpointLaysOutEveryOperationAndEscapesSegments(t *testing.T) {
	t.Parallel()
	tg := Target{BaseURL: "https://api-us-site-1.imiengage.io/api/v1/", Domain: "acme corp"}
	const base = "https://api-us-site-1.imiengage.io/api/v1/acme%20corp/conversations"
	for _, tc := range []struct {
		op, conv, participant string
		method, url           string
	}{
		{OpSearch, "", "", http.MethodPost, base + "/search"},
		{OpCreate, "", "", http.MethodPost, base},
		{OpAppend, "c/1?x", "", http.MethodPost, base + "/c%2F1%3Fx/messages"},
		{OpUpdate, "c1", "", http.MethodPatch, base + "/c1"},
		{OpClose, "c1", "", http.MethodPost, base + "/c1/close"},
		{OpAddParticipant, "c1", "", http.MethodPost, base + "/c1/participants"},
		{OpRemoveParticipant, "c1", "agent/7 #x", http.MethodDelete, base + "/c1/participants/agent%2F7%20%23x"},
	} {
		rt, err := endpointString(tg, tc.op, tc.conv, tc.participant)
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		if rt.method != tc.method || rt.url != tc.url {
			t.Errorf("%s: got %s %s, want %s %s", tc.op, rt.method, rt.url, tc.method, tc.url)
		}
	}
}

func TestEndpointRefusesTargetsThatCannotAddressEngage(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		t    Target
		op   string
		conv string
	}{
		"no domain":           {Target{BaseURL: "https://x/api/v1"}, OpSearch, ""},
		"relative base":       {Target{BaseURL: "/api/v1", Domain: "d"}, OpSearch, ""},
		"ftp base":            {Target{BaseURL: "ftp://x/api/v1", Domain: "d"}, OpSearch, ""},
		"base with query":     {Target{BaseURL: "https://x/api/v1?a=b", Domain: "d"}, OpSearch, ""},
		"no conversation":     {Target{BaseURL: "https://x/api/v1", Domain: "d"}, OpClose, ""},
		"no participant":      {Target{BaseURL: "https://x/api/v1", Domain: "d"}, OpRemoveParticipant, "c1"},
		"unknown operation":   {Target{BaseURL: "https://x/api/v1", Domain: "d"}, "explode", "c1"},
		"empty base":          {Target{Domain: "d"}, OpSearch, ""},
		"base without a host": {Target{BaseURL: "https:///api/v1", Domain: "d"}, OpSearch, ""},
	} {
		if _, err := endpointString(tc.t, tc.op, tc.conv, ""); err == nil {
			t.Errorf("%s: endpoint accepted it", name)
		}
	}
}

func TestParseRetryAfterReadsSecondsAndHTTPDates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"0":                             0,
		"-3":                            0,
		"-1":                            0,
		"86401":                         24 * time.Hour,
		"18446744074":                   24 * time.Hour, // past int64 nanoseconds: no wrap to 290 ms
		"9223372037":                    24 * time.Hour,
		"soon":                          0,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:59:00 GMT": 0,
		"Mon, 02 Mar 2026 12:00:01 GMT": 24 * time.Hour, // a date says no more than the seconds do
		"Fri, 31 Dec 9999 23:59:59 GMT": 24 * time.Hour,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFlexibleDecodingAcceptsNumbersAsStringsAndBack(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"status":"200","code":1000,"description":null,"tid":12345,"value":{"conversationId":42,"chatExist":"true","status":"Active","teamId":7,"userId":null}}`)
	var w wire[searchWire]
	if err := decodeObject(raw, &w); err != nil {
		t.Fatal(err)
	}
	if w.Status != 200 || w.Code != 1000 || w.TID != "12345" || w.Value.ConversationID != "42" ||
		!bool(w.Value.ChatExist) || w.Value.TeamID != "7" || w.Value.UserID != "" {
		t.Fatalf("decoded %+v", w)
	}
	for _, bad := range []string{`[]`, `null`, ``, `{"status":`, `{"value":{"chatExist":"maybe"}}`} {
		var w wire[searchWire]
		if err := decodeObject([]byte(bad), &w); err == nil {
			t.Errorf("decodeObject(%q) accepted it", bad)
		}
	}
}

func TestReadAllReadsWhatIoReadAllReads(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("engage answer ", 100)
	for _, length := range []int64{-1, 0, 1, int64(len(body)) - 3, int64(len(body)), int64(len(body)) + 50, 1 << 30} {
		for name, r := range map[string]func() io.Reader{
			"plain":      func() io.Reader { return strings.NewReader(body) },
			"one byte":   func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
			"data + EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(body)) },
			"error": func() io.Reader {
				return io.MultiReader(strings.NewReader(body), iotest.ErrReader(errors.New("reset")))
			},
		} {
			got, gotErr := readAll(r(), length)
			want, wantErr := io.ReadAll(r())
			if string(got) != string(want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("%s, length %d: %d bytes, %v; io.ReadAll %d bytes, %v", name, length, len(got), gotErr, len(want), wantErr)
			}
		}
	}
}

func TestAClientChecksABaseURLOnceAndStillRefusesBadTargets(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	good := Target{BaseURL: "https://api-us-site-1.imiengage.io/api/v1", Domain: "acme"}
	for range 2 {
		if method, u, err := c.endpoint(good, OpSearch, "", ""); err != nil || method != http.MethodPost || u.String() != good.BaseURL+"/acme/conversations/search" {
			t.Fatalf("%s %v %v", method, u, err)
		}
	}
	for _, bad := range []Target{
		{BaseURL: good.BaseURL, Domain: ""},
		{BaseURL: "ftp://x", Domain: "acme"},
		{BaseURL: good.BaseURL + "?q=1", Domain: "acme"},
	} {
		if _, _, err := c.endpoint(bad, OpSearch, "", ""); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
	if _, _, err := c.endpoint(good, OpAppend, "", ""); err == nil {
		t.Error("an append without a conversation ID was accepted")
	}
}
