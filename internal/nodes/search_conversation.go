package nodes

import (
	"context"
	"fmt"
	"strings"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Search Conversation finds a customer's conversation on a channel and follows its
// status (ENGAGE.md §3). 1.1 adds the description output; 1.3 adds the amb and api
// channels and the outputs that report Engage's answer as such.
func searchConversation() *definition {
	return &definition{
		id: "search-conversation", displayName: "Search Conversation", method: "Search Chat",
		success: []outcomes.Outcome{
			outcomes.NoConversationFound, outcomes.ConversationInQueue, outcomes.ConversationActive,
			outcomes.ConversationOnHold, outcomes.ConversationClosed,
		},
		when: map[outcomes.Outcome]string{
			outcomes.NoConversationFound: "Engage has no conversation for the customer on the channel (an answer without a conversationId, or a 404 in Engage's envelope; a bare 404 from a proxy is onError, engage_bad_response).",
			outcomes.ConversationInQueue: "The conversation waits in the queue (status queued).",
			outcomes.ConversationActive:  "An agent has the conversation (status active or picked).",
			outcomes.ConversationOnHold:  "The conversation is on hold (status onhold).",
			outcomes.ConversationClosed:  "The conversation is closed (status closed).",
			// No failure edge of its own: every Engage failure is onError (ENGAGE.md §2).
			outcomes.OnError:         "The runtime itself failed (the credential store is unreachable, a stored secret does not decrypt, the token endpoint failed while the stored token had expired or just after Engage rejected it (a 401 earns one refresh), an internal error), or Engage did: every Engage failure but a 404 (noConversationFound), a 401 or 403 (onAuthorizationFailure) and the deadline (onTimeout); that is another 4xx, a 5xx, a 429, a connection failure, an answer that is not Engage's readable envelope, or the circuit breaker open.",
			outcomes.OnInvalidChoice: "Engage found a conversation in a status no other outcome covers: not queued, active, picked, onhold or closed (in any case), an empty status included. The error's code is unknown_status; the status is output as Engage gave it.",
		},
		rejected: outcomes.OnError,
		failed:   outcomes.OnError,
		readOnly: true,
		required: []string{"channel"},
		versions: []delta{
			{version: "1.0",
				channels: []string{"sms", "facebook", "email", "livechat", "whatsapp"},
				inputs:   []string{"channel", "bizAddress", "customerAddress", "subject", "toRecipients", "ccRecipients", "inReplyTo", "threadId", "browserFingerprint"},
				outputs:  []string{"conversationId", "conversationExistsBool", "status"}},
			{version: "1.1", outputs: []string{"description"}},
			{version: "1.3", channels: []string{"amb", "api"},
				outputs: []string{"aliasId", "teamId", "userId", "apiStatus", "code", "responsePayload"}},
		},
		prepare:    prepareSearch,
		succeed:    searchAnswer,
		onReject:   searchRejected,
		conditions: func(v *Version) []any { return channelConditions(v, searchNeeds) },
	}
}

// searchNeeds are the fields each channel asks for besides the channel itself.
var searchNeeds = map[string]channelNeeds{
	"sms":      {required: []string{"bizAddress", "customerAddress"}},
	"facebook": {required: []string{"bizAddress", "customerAddress"}},
	"email":    {required: []string{"bizAddress", "customerAddress", "subject"}, optional: []string{"toRecipients", "ccRecipients", "inReplyTo"}},
	"livechat": {required: []string{"bizAddress", "customerAddress", "threadId"}, optional: []string{"browserFingerprint"}},
	"whatsapp": {required: []string{"bizAddress", "customerAddress"}},
	"amb":      {required: []string{"bizAddress", "customerAddress"}},
	"api":      {required: []string{"bizAddress", "customerAddress"}},
}

func prepareSearch(v *Version, in *input) (call, error) {
	ch, err := in.channel()
	if err != nil {
		return call{}, err
	}
	if err := in.require(searchNeeds[ch].required, "for channel "+ch); err != nil {
		return call{}, err
	}
	req := engage.SearchRequest{Channel: ch}
	req.BizAddress, _ = in.str("bizAddress")
	req.CustomerAddress, _ = in.str("customerAddress")
	switch ch {
	case "email":
		req.Subject, _ = in.str("subject")
		if req.ToRecipients, err = in.strs("toRecipients"); err != nil {
			return call{}, err
		}
		if req.CcRecipients, err = in.strs("ccRecipients"); err != nil {
			return call{}, err
		}
		if req.InReplyTo, err = in.str("inReplyTo"); err != nil {
			return call{}, err
		}
	case "livechat":
		req.ThreadID, _ = in.str("threadId")
		if req.BrowserFingerprint, err = in.str("browserFingerprint"); err != nil {
			return call{}, err
		}
	}
	return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
		resp, err := c.Search(ctx, t, token, req)
		if err != nil {
			return nil, err
		}
		return &reply{env: resp.Envelope, search: resp.Value}, nil
	}}, nil
}

// searchAnswer picks the outcome from the conversation's status (decisions.go), never
// from the chatExist flag alone.
func searchAnswer(v *Version, r *reply) outcomes.Result {
	s := r.search
	out := engageOutput(r.env.HTTPStatus, r.env.Code, r.env.Description, r.env.Raw, 10)
	out["conversationId"] = s.ConversationID
	out["conversationExistsBool"] = s.ConversationID != ""
	out["status"] = s.Status
	out["aliasId"] = s.AliasID
	out["teamId"] = s.TeamID
	out["userId"] = s.UserID
	if s.ConversationID == "" {
		return outcomes.Success(outcomes.NoConversationFound, out)
	}
	if o, ok := searchStatuses[strings.ToLower(strings.TrimSpace(s.Status))]; ok {
		return outcomes.Success(o, out)
	}
	return outcomes.Result{Outcome: outcomes.OnInvalidChoice, Output: out, Error: &outcomes.Error{
		Code:              outcomes.CodeUnknownStatus,
		Message:           fmt.Sprintf("Engage answered conversation status %q, which no outcome of %s covers", clip(s.Status), v),
		EngageStatus:      r.env.HTTPStatus,
		EngageCode:        r.env.Code,
		EngageDescription: r.env.Description,
	}}
}

// searchRejected: Engage's 404 means there is no conversation, an answer like any other.
func searchRejected(_ *Version, e *engage.Error) (outcomes.Result, bool) {
	if !searchNotFound(e) {
		return outcomes.Result{}, false
	}
	out := engageOutput(e.HTTPStatus, e.Code, e.Description, e.Raw, 5)
	out["conversationExistsBool"] = false
	return outcomes.Success(outcomes.NoConversationFound, out), true
}
