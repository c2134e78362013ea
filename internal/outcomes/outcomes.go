// Package outcomes is the closed vocabulary every layer speaks: the outcome edges a
// flow can follow, the result of one node execution, and the error object that explains
// a failure outcome. It knows nothing of HTTP, Postgres or Engage.
package outcomes

import "errors"

// Outcome is the name of an edge the flow follows after a node ran. Names are spelled
// exactly as the flow designer sees them, capitals included.
type Outcome string

// The standard outcomes every node has.
const (
	OnError                Outcome = "onError"
	OnInvalidData          Outcome = "onInvalidData"
	OnInvalidChoice        Outcome = "onInvalidChoice"
	OnTimeout              Outcome = "onTimeout"
	OnAuthorizationFailure Outcome = "onAuthorizationFailure"
)

// Standard lists the standard outcomes in catalog order, a fresh slice each call.
func Standard() []Outcome {
	return []Outcome{OnError, OnInvalidData, OnInvalidChoice, OnTimeout, OnAuthorizationFailure}
}

// Node-specific outcomes (../shared/ENGAGE.md §2).
const (
	// search-conversation
	NoConversationFound Outcome = "noConversationFound"
	ConversationInQueue Outcome = "conversationInQueue"
	ConversationActive  Outcome = "conversationActive"
	ConversationOnHold  Outcome = "conversationOnHold"
	ConversationClosed  Outcome = "conversationClosed"

	// append-message
	OnAppendMessageSuccess Outcome = "onAppendMessageSuccess"
	OnAppendMessageFailure Outcome = "onAppendMessageFailure"

	// create-conversation
	OnConversationCreated Outcome = "onConversationCreated"
	OnConversationFailed  Outcome = "onConversationFailed"

	// update-conversation
	OnConversationUpdatedSuccess Outcome = "onConversationUpdatedSuccess"
	OnConversationUpdatedFailure Outcome = "onConversationUpdatedFailure"

	// add-participant
	OnAddParticipantSuccess Outcome = "OnAddParticipantSuccess"
	OnAddParticipantFailure Outcome = "OnAddParticipantFailure"

	// remove-participant
	OnParticipantRemoved       Outcome = "onParticipantRemoved"
	OnRemoveParticipantFailure Outcome = "onRemoveParticipantFailure"

	// close-conversation
	OnConversationClosed       Outcome = "onConversationClosed"
	OnCloseConversationFailure Outcome = "onCloseConversationFailure"

	// reopen-conversation
	ConversationReopened     Outcome = "ConversationReopened"
	ConversationReopenFailed Outcome = "ConversationReopenFailed"

	// The run-time failure edges; which one a node has is part of its definition.
	Failure   Outcome = "Failure"
	OnFailure Outcome = "onFailure"
)

// Aliases that flows built elsewhere may use for an outcome (ENGAGE.md §2).
const (
	// AliasAuthorizationFail is Connect's spelling of onAuthorizationFailure.
	AliasAuthorizationFail = "onauthorizationfail"
	// AliasSuccess is the plain success edge on the Update Conversation and Add
	// Participant pages.
	AliasSuccess = "Success"
)

// Error codes carried by failure outcomes. They are stable: flows and dashboards
// may match on them.
const (
	CodeInvalidInput          = "invalid_input"
	CodeAuthorizationNotFound = "authorization_not_found"
	CodeAuthorizationPending  = "authorization_pending"
	CodeNeedsReauthorization  = "authorization_needs_reauthorization"
	CodeEngageUnauthorized    = "engage_unauthorized"
	CodeTimeout               = "timeout"
	CodeEngageRejected        = "engage_rejected"
	CodeEngageRateLimited     = "engage_rate_limited"
	CodeEngageUnavailable     = "engage_unavailable"
	CodeEngageBadResponse     = "engage_bad_response"
	CodeCircuitOpen           = "engage_circuit_open"
	CodeUnknownStatus         = "unknown_status"
	CodeTokenUnavailable      = "token_unavailable"
	CodeInternal              = "internal"
	// CodeCanceled: the caller left (or the connection was cut at shutdown) before the
	// execution ended. No one reads that answer; it is not counted as an outcome.
	CodeCanceled = "canceled"
)

// Error explains a failure outcome. Engage* fields are set when Engage answered.
type Error struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	EngageStatus      int    `json:"engageStatus,omitempty"`
	EngageCode        int    `json:"engageCode,omitempty"`
	EngageDescription string `json:"engageDescription,omitempty"`
}

// Result is what one node execution produced: the edge to follow, the node's output
// variables, and for failure outcomes the error that explains it.
type Result struct {
	Outcome Outcome        `json:"outcome"`
	Output  map[string]any `json:"output"`
	Error   *Error         `json:"error,omitempty"`
	// Unapplied marks a failure that certainly left Engage as it was: the execution
	// ended before any call left (its input, its authorization or its token failed, the
	// breaker refused the call), or Engage refused the call without acting on it (the
	// token refused, rate limited). Running the same request again is safe, and is what
	// a retry wants: an idempotency store does not keep such an answer.
	Unapplied bool `json:"-"`
}

// Success builds a result without an error.
func Success(o Outcome, output map[string]any) Result {
	if output == nil {
		output = map[string]any{}
	}
	return Result{Outcome: o, Output: output}
}

// Fail builds a failure result.
func Fail(o Outcome, code, message string) Result {
	return Result{Outcome: o, Output: map[string]any{}, Error: &Error{Code: code, Message: message}}
}

// AuthorizationError means an authorization cannot be used for this execution
// (unknown, deleted, another tenant's, pending, needs re-authorization, or rejected by
// Engage again after a refresh). Any layer may return it; the node answers
// onAuthorizationFailure with its Code and Message. It never carries a secret.
type AuthorizationError struct {
	Code    string
	Message string
}

func (e *AuthorizationError) Error() string { return "authorization: " + e.Message }

// ErrTokenUnavailable marks a failure to get an access token that is the token
// endpoint's, not the authorization's: it failed (or failed moments ago and is left
// alone meanwhile) while the stored token has expired or Engage rejected it. The
// authorization stays usable; the node answers onError with CodeTokenUnavailable, and a
// later execution may succeed.
var ErrTokenUnavailable = errors.New("the token endpoint failed, and the stored access token has expired or was rejected")
