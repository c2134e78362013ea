package nodes

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

func TestEveryKindOfEngageFailureLeadsToItsColumn(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	appendV, _ := r.Lookup("append-message", "1.4")
	closeV, _ := r.Lookup("close-conversation", "1.0")
	searchV, _ := r.Lookup("search-conversation", "1.3")
	for _, tc := range []struct {
		name string
		e    engage.Error
		// outcome for append, close and search
		wantAppend, wantClose, wantSearch outcomes.Outcome
		wantCode                          string
	}{
		{"business 409", engage.Error{Kind: engage.KindBusiness, HTTPStatus: 409, Code: 1009, Description: "closed"},
			outcomes.OnAppendMessageFailure, outcomes.OnCloseConversationFailure, outcomes.OnError, outcomes.CodeEngageRejected},
		{"rate limited", engage.Error{Kind: engage.KindRateLimited, HTTPStatus: 429},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeEngageRateLimited},
		{"5xx", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 503},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeEngageUnavailable},
		{"connection refused", engage.Error{Kind: engage.KindUpstream, Err: errors.New("dial tcp: refused")},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeEngageUnavailable},
		{"malformed 200", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 200},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeEngageBadResponse},
		{"4xx without an envelope", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 404},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeEngageBadResponse},
		{"circuit open", engage.Error{Kind: engage.KindCircuitOpen},
			outcomes.Failure, outcomes.OnFailure, outcomes.OnError, outcomes.CodeCircuitOpen},
		{"timeout", engage.Error{Kind: engage.KindTimeout},
			outcomes.OnTimeout, outcomes.OnTimeout, outcomes.OnTimeout, outcomes.CodeTimeout},
		{"403", engage.Error{Kind: engage.KindUnauthorized, HTTPStatus: 403},
			outcomes.OnAuthorizationFailure, outcomes.OnAuthorizationFailure, outcomes.OnAuthorizationFailure, outcomes.CodeEngageUnauthorized},
		{"canceled", engage.Error{Kind: engage.KindCanceled},
			outcomes.OnError, outcomes.OnError, outcomes.OnError, outcomes.CodeInternal},
		{"call never left", engage.Error{Kind: engage.KindInvalidRequest, Err: errors.New("need domain")},
			outcomes.OnError, outcomes.OnError, outcomes.OnError, outcomes.CodeInternal},
	} {
		for _, c := range []struct {
			v    *Version
			want outcomes.Outcome
		}{{appendV, tc.wantAppend}, {closeV, tc.wantClose}, {searchV, tc.wantSearch}} {
			e := tc.e
			res := engageFailure(c.v, &e, false)
			if res.Outcome != c.want || res.Error == nil || res.Error.Code != tc.wantCode || res.Error.Message == "" {
				t.Errorf("%s on %s: %s %+v, want %s %s", tc.name, c.v, res.Outcome, res.Error, c.want, tc.wantCode)
				continue
			}
			if res.Error.EngageStatus != tc.e.HTTPStatus || res.Error.EngageCode != tc.e.Code || res.Error.EngageDescription != tc.e.Description {
				t.Errorf("%s on %s: error %+v does not carry Engage's answer", tc.name, c.v, res.Error)
			}
		}
	}
	if got := engageFailure(searchV, &engage.Error{Kind: engage.KindBusiness, HTTPStatus: 404}, false); got.Outcome != outcomes.NoConversationFound || got.Error != nil {
		t.Errorf("search 404: %+v", got)
	}
}

func TestSearchFollowsTheStatusNotTheChatExistFlag(t *testing.T) {
	t.Parallel()
	v, _ := NewRegistry().Lookup("search-conversation", "1.3")
	for _, tc := range []struct {
		value engage.SearchValue
		want  outcomes.Outcome
	}{
		{engage.SearchValue{ConversationID: "c", ChatExist: false, Status: "closed"}, outcomes.ConversationClosed},
		{engage.SearchValue{ConversationID: "", ChatExist: true, Status: "active"}, outcomes.NoConversationFound},
		{engage.SearchValue{ConversationID: "c", ChatExist: true, Status: " OnHold "}, outcomes.ConversationOnHold},
		{engage.SearchValue{ConversationID: "c", ChatExist: true, Status: "PICKED"}, outcomes.ConversationActive},
		{engage.SearchValue{ConversationID: "c", ChatExist: true, Status: ""}, outcomes.OnInvalidChoice},
		{engage.SearchValue{ConversationID: "c", ChatExist: true, Status: "transferred"}, outcomes.OnInvalidChoice},
	} {
		res := v.shape(searchAnswer(v, &reply{env: engage.Envelope{HTTPStatus: 200}, search: tc.value}))
		if res.Outcome != tc.want {
			t.Errorf("%+v: %s, want %s", tc.value, res.Outcome, tc.want)
		}
		if res.Output["conversationExistsBool"] != (tc.value.ConversationID != "") {
			t.Errorf("%+v: conversationExistsBool %v", tc.value, res.Output["conversationExistsBool"])
		}
	}
}

// The message of an Engage failure is for the person reading the flow's log: it names
// what happened, Engage's status, code and description (clipped to 256 bytes), and how
// long Engage asked a rate-limited caller to wait.
func TestAnEngageFailuresMessageSaysWhatEngageAnswered(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("d", 300)
	for _, tc := range []struct {
		name string
		e    engage.Error
		want string
	}{
		{"business", engage.Error{Kind: engage.KindBusiness, HTTPStatus: 409, Code: 1009, Description: "conversation is not closed"},
			"Engage refused the request: HTTP 409, code 1009: conversation is not closed"},
		{"rate limited with Retry-After", engage.Error{Kind: engage.KindRateLimited, HTTPStatus: 429, RetryAfter: 30 * time.Second},
			"Engage is rate limiting (retry after 30s): HTTP 429"},
		{"rate limited without Retry-After", engage.Error{Kind: engage.KindRateLimited, HTTPStatus: 429},
			"Engage is rate limiting: HTTP 429"},
		{"5xx", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 503}, "Engage failed: HTTP 503"},
		// 500 is the first status that is Engage failing, not an answer it could not read.
		{"a 500", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 500}, "Engage failed: HTTP 500"},
		{"a 499 without Engage's envelope", engage.Error{Kind: engage.KindUpstream, HTTPStatus: 499},
			"Engage's answer could not be read: HTTP 499"},
		{"a long description", engage.Error{Kind: engage.KindBusiness, HTTPStatus: 400, Code: 1001, Description: long},
			"Engage refused the request: HTTP 400, code 1001: " + long[:256] + "..."},
	} {
		if got := describe(&tc.e, false); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
