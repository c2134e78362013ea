package nodes

import (
	"net/http"
	"strings"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// This file holds every "our decision" of ../shared/ENGAGE.md that the nodes make: the
// wire strings they send, which message types a channel allows, what a conversation
// status means, which Engage answer leads to which outcome column, the retry policy and
// the limits. A real tenant's API reference may correct any of them; this is the one
// place to do it. (Engage's paths and wire keys are internal/engage's paths.go and
// types.go.)

// Channels (ENGAGE.md §3). Input accepts the wire value, the display name or an alias,
// case-insensitively; Engage gets the wire value. Only "livechat" is confirmed as a
// wire value; the others are our decision.
var channelTable = []struct {
	wire, display string
	aliases       []string
}{
	{"sms", "SMS", nil},
	{"facebook", "Facebook Messenger", nil},
	{"email", "Email", nil},
	{"livechat", "Live Chat", nil},
	{"whatsapp", "WhatsApp", nil},
	{"amb", "Apple Messages for Business", []string{"abc"}},
	{"api", "API", nil},
}

// channelWire maps every accepted spelling, lower-cased, to the wire value.
var channelWire = func() map[string]string {
	m := map[string]string{}
	for _, c := range channelTable {
		m[c.wire] = c.wire
		m[strings.ToLower(c.display)] = c.wire
		for _, a := range c.aliases {
			m[a] = c.wire
		}
	}
	return m
}()

// Message directions, as sent.
const (
	dirInbound      = "inbound"
	dirOutbound     = "outbound"
	dirAnnouncement = "announcement"
)

// directionOrder is the order directions are listed in the catalog.
var directionOrder = []string{dirInbound, dirOutbound, dirAnnouncement}

// A messageSet is the set of message types of one Append Message version. Create
// Conversation reuses them: its 1.0 allows what Append 1.0 allows, its 1.2 and 1.3 what
// Append 1.3 allows (ENGAGE.md §3).
type messageSet int

const (
	messagesAppend10 messageSet = iota + 1
	messagesAppend13
	messagesAppend14
)

// messageRules say which message types a channel allows in a direction, from which
// message set on ("" direction: inbound and outbound). The live chat additions of 1.3
// and the WhatsApp interactive types follow the documentation; what 1.4 adds (amb) is
// our decision, as are the exact type strings and that the amb "-response" types are
// inbound only.
var messageRules = []struct {
	since     messageSet
	channel   string
	direction string
	types     []string
}{
	{messagesAppend10, "sms", "", []string{"text"}},
	{messagesAppend10, "facebook", "", []string{"text", "text-with-attachments"}},
	{messagesAppend10, "email", "", []string{"email"}},
	{messagesAppend10, "whatsapp", "", []string{"text", "text-with-attachments"}},
	{messagesAppend13, "whatsapp", dirOutbound, []string{"wab-buttons", "wab-list"}},
	{messagesAppend13, "whatsapp", dirInbound, []string{"wab-interactive-response"}},
	{messagesAppend10, "livechat", dirInbound, []string{"text"}},
	{messagesAppend13, "livechat", dirInbound, []string{"text-with-attachments", "lc-form-response", "lc-carousel-response", "lc-quick-replies-response"}},
	{messagesAppend13, "livechat", dirOutbound, []string{"text-with-attachments", "text-with-lc-carousel", "text-with-lc-quick-replies"}},
	{messagesAppend13, "livechat", dirAnnouncement, []string{"text"}},
	{messagesAppend14, "amb", "", []string{"text-with-attachments"}},
	{messagesAppend14, "amb", dirInbound, []string{"amb-list-picker-response", "amb-time-picker-response", "amb-quick-replies-response", "amb-form-response"}},
	{messagesAppend10, "api", "", []string{"text", "text-with-attachments"}},
}

// messageTypes say what each message type needs and may carry besides the fields every
// message has (direction, messageType, timestamp, messageAliasId). needs is a list of
// groups: at least one field of each group must be given. A rich type carries its JSON
// object in the field named rich.
var messageTypes = []messageType{
	{name: "text", needs: [][]string{{"text"}}},
	{name: "text-with-attachments", needs: [][]string{{"attachments"}}, uses: []string{"text"}},
	// Which email fields are required is our decision: a sender and a body.
	{name: "email", needs: [][]string{{"fromAddress"}, {"plainBody", "htmlBody"}},
		uses: []string{"subject", "toRecipients", "ccRecipients", "emailHeaders", "strippedHtml"}},
	{name: "wab-buttons", rich: "wabButtons"},
	{name: "wab-list", rich: "wabList"},
	{name: "wab-interactive-response", rich: "wabInteractiveResponse"},
	{name: "lc-form-response", rich: "lcFormResponse"},
	{name: "lc-carousel-response", rich: "lcCarouselResponse"},
	{name: "lc-quick-replies-response", rich: "lcQuickRepliesResponse"},
	{name: "text-with-lc-carousel", rich: "lcCarousel"},
	{name: "text-with-lc-quick-replies", rich: "lcQuickReplies"},
	{name: "amb-list-picker-response", rich: "ambListPickerResponse"},
	{name: "amb-time-picker-response", rich: "ambTimePickerResponse"},
	{name: "amb-quick-replies-response", rich: "ambQuickRepliesResponse"},
	{name: "amb-form-response", rich: "ambFormResponse"},
}

// MaxTextLength bounds a message's text, in characters (our decision: WhatsApp's limit,
// the largest of the channels').
const MaxTextLength = 4096

// An ID that Engage's URL path carries (a conversation ID, a participant) is escaped on
// the wire, but a proxy in front of Engage that decodes the path once gives each of
// these characters its meaning back: / and \ a path separator, ? a query, # a fragment,
// ; a path parameter (which servlet containers strip: "agent-1;x" would name agent-1),
// and % a second escape ("%2e%2e" becomes "..", "%2F" a slash, for the server behind
// it). An ID holds none of them, nor a control character (our decision: Engage's IDs
// are not documented; these are never part of one).
const (
	pathIDForbidden     = `/\?#%;`
	pathIDForbiddenList = `/ \ ? # % ;`
)

// pathIDPattern is the same rule as a JSON Schema pattern (ECMA-262, which Go's regexp
// reads alike), for the catalog: no character of pathIDForbidden, no C0 or C1 control
// character, no DEL.
const pathIDPattern = `^[^/\\?#%;\x00-\x1f\x7f-\x9f]*$`

// MaxPathIDLength bounds such an ID, in characters (our decision: Engage's IDs are far
// shorter; a value of thousands of characters is a flow's mistake, which Engage would
// only answer with a proxy's 414).
const MaxPathIDLength = 256

// searchStatuses map a conversation status, lower-cased, to Search's outcome (our
// decision: the wire strings are not documented). Any other status is onInvalidChoice;
// no conversation at all is noConversationFound.
var searchStatuses = map[string]outcomes.Outcome{
	"queued": outcomes.ConversationInQueue,
	"active": outcomes.ConversationActive,
	"picked": outcomes.ConversationActive,
	"onhold": outcomes.ConversationOnHold,
	"closed": outcomes.ConversationClosed,
}

// searchNotFound reports whether a failed search means "no conversation": Engage's 404.
func searchNotFound(e *engage.Error) bool {
	return e.Kind == engage.KindBusiness && e.HTTPStatus == http.StatusNotFound
}

// updateForTask is what Update Conversation sends: the task ID becomes the
// conversation's alias ID (our decision; the page does not say).
func updateForTask(taskID string) engage.UpdateRequest {
	return engage.UpdateRequest{AliasID: taskID}
}

// reopenUpdate is what Re-open Conversation sends: a closed conversation goes back to
// the queue (our decision). Engage answers 409 for one that is not closed.
var reopenUpdate = engage.UpdateRequest{Status: engage.StatusQueued}

// A column is one of the outcome columns of ENGAGE.md §2.
type column int

const (
	columnTimeout       column = iota + 1 // onTimeout
	columnAuthorization                   // onAuthorizationFailure
	columnRejected                        // Engage said no: the node's business failure
	columnFailed                          // any other run-time failure: the node's failure edge
	columnError                           // the runtime itself failed: onError
)

// classify says which column a failed Engage call leads to, and the error code (our
// decision: the documentation gives each edge's meaning, not its trigger).
//
//	4xx with Engage's envelope (404, 409, 400, ...)    rejected   engage_rejected
//	429                                                failed     engage_rate_limited
//	5xx, connection refused, reset or timed out        failed     engage_unavailable
//	malformed body, 4xx without envelope, redirect     failed     engage_bad_response
//	circuit breaker open (Engage failing persistently) failed     engage_circuit_open
//	401 after the one refresh and repeat, 403 at once  authorization  engage_unauthorized
//	deadline passed                                    timeout    timeout
//	call never left, caller went away                  error      internal
func classify(e *engage.Error) (column, string) {
	switch e.Kind {
	case engage.KindTimeout:
		return columnTimeout, outcomes.CodeTimeout
	case engage.KindUnauthorized:
		return columnAuthorization, outcomes.CodeEngageUnauthorized
	case engage.KindBusiness:
		return columnRejected, outcomes.CodeEngageRejected
	case engage.KindRateLimited:
		return columnFailed, outcomes.CodeEngageRateLimited
	case engage.KindUpstream:
		if e.HTTPStatus == 0 || e.HTTPStatus >= 500 {
			return columnFailed, outcomes.CodeEngageUnavailable
		}
		return columnFailed, outcomes.CodeEngageBadResponse
	case engage.KindCircuitOpen:
		return columnFailed, outcomes.CodeCircuitOpen
	}
	return columnError, outcomes.CodeInternal
}

// refreshes reports whether a failed call earns one token refresh and one repeat: a 401
// is never a change in Engage, so every node repeats it (ENGAGE.md §2). A 403 (a token
// valid for another domain) is not helped by a refresh.
func refreshes(e *engage.Error) bool {
	return e.Kind == engage.KindUnauthorized && e.HTTPStatus == http.StatusUnauthorized
}

// retriesRead reports whether a read-only call (search) may be repeated once, inside the
// deadline: after a connection failure or a 502/503/504 (our decision). Calls that may
// have changed something in Engage are never repeated.
func retriesRead(e *engage.Error) bool {
	if e.Kind != engage.KindUpstream {
		return false
	}
	switch e.HTTPStatus {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
